//! The routing table of BEP 5: 160 buckets of up to [`K`] nodes, bucket `i` holding the nodes
//! whose XOR distance from our id has `i` leading zero bits.
//!
//! Liveness: a node is *good* while it answered (or queried us) within [`QUESTIONABLE_AFTER`];
//! after that it is *questionable*, and *bad* once [`BAD_AFTER_FAILURES`] requests to it in a row
//! went unanswered. A full bucket takes a new node only in place of a bad one; otherwise the
//! newcomer waits in the bucket's replacement cache (also [`K`] long) and the table asks the
//! caller to ping the least recently seen questionable node, whose silence makes room. A node id
//! keeps the address it was first seen with, so a forged packet cannot move a known node.

use std::net::SocketAddrV4;
use std::time::{Duration, Instant};

use rand::Rng;
use shoal_proto::dht::{CompactNode, NodeId};

/// Nodes per bucket (and per replacement cache).
pub const K: usize = 8;
/// A node not heard from for this long is questionable.
pub const QUESTIONABLE_AFTER: Duration = Duration::from_secs(15 * 60);
/// Unanswered requests in a row that make a node bad.
pub const BAD_AFTER_FAILURES: u8 = 2;
const BUCKETS: usize = 160;

#[derive(Clone, Debug)]
struct Entry {
    id: NodeId,
    addr: SocketAddrV4,
    last_seen: Instant,
    failures: u8,
    pinged: bool,
}

impl Entry {
    fn new(id: NodeId, addr: SocketAddrV4, now: Instant) -> Self {
        Entry {
            id,
            addr,
            last_seen: now,
            failures: 0,
            pinged: false,
        }
    }

    fn is_bad(&self) -> bool {
        self.failures >= BAD_AFTER_FAILURES
    }

    fn is_good(&self, now: Instant) -> bool {
        self.failures == 0 && now.saturating_duration_since(self.last_seen) < QUESTIONABLE_AFTER
    }
}

#[derive(Clone, Debug)]
struct Bucket {
    nodes: Vec<Entry>,
    replacements: Vec<Entry>,
    last_changed: Instant,
}

/// The table; see the module doc.
#[derive(Clone, Debug)]
pub struct RoutingTable {
    own: NodeId,
    buckets: Vec<Bucket>,
}

impl RoutingTable {
    pub fn new(own: NodeId, now: Instant) -> Self {
        let bucket = Bucket {
            nodes: Vec::new(),
            replacements: Vec::new(),
            last_changed: now,
        };
        RoutingTable {
            own,
            buckets: vec![bucket; BUCKETS],
        }
    }

    fn bucket_index(&self, id: &NodeId) -> Option<usize> {
        let distance = self.own.distance(&id.0);
        let mut zeros = 0;
        for byte in distance {
            if byte != 0 {
                return Some(zeros + byte.leading_zeros() as usize);
            }
            zeros += 8;
        }
        None
    }

    /// Records that `id` at `addr` answered us (`responded`) or queried us. Returns a node to
    /// ping when the bucket is full and holds a questionable node.
    pub fn heard_from(
        &mut self,
        id: NodeId,
        addr: SocketAddrV4,
        now: Instant,
        responded: bool,
    ) -> Option<SocketAddrV4> {
        let index = self.bucket_index(&id)?;
        if addr.port() == 0 {
            return None;
        }
        let bucket = &mut self.buckets[index];
        if let Some(entry) = bucket.nodes.iter_mut().find(|e| e.id == id) {
            if entry.addr == addr {
                entry.last_seen = now;
                entry.failures = 0;
                entry.pinged = false;
                bucket.last_changed = now;
            }
            return None;
        }
        if bucket.nodes.iter().any(|e| e.addr == addr) {
            return None;
        }
        if bucket.nodes.len() < K {
            bucket.nodes.push(Entry::new(id, addr, now));
            bucket.replacements.retain(|e| e.id != id && e.addr != addr);
            bucket.last_changed = now;
            return None;
        }
        if let Some(bad) = bucket.nodes.iter_mut().find(|e| e.is_bad()) {
            *bad = Entry::new(id, addr, now);
            bucket.last_changed = now;
            return None;
        }
        if responded {
            remember_replacement(bucket, Entry::new(id, addr, now));
        }
        let stale = bucket
            .nodes
            .iter_mut()
            .filter(|e| !e.is_good(now) && !e.pinged)
            .min_by_key(|e| e.last_seen)?;
        stale.pinged = true;
        Some(stale.addr)
    }

    /// Records an unanswered request to `addr`; a node that turns bad is replaced by the newest
    /// entry of its replacement cache, if any.
    pub fn failed(&mut self, addr: SocketAddrV4) {
        for bucket in &mut self.buckets {
            let Some(at) = bucket.nodes.iter().position(|e| e.addr == addr) else {
                bucket.replacements.retain(|e| e.addr != addr);
                continue;
            };
            let entry = &mut bucket.nodes[at];
            entry.failures = entry.failures.saturating_add(1);
            if entry.is_bad() {
                if let Some(replacement) = bucket.replacements.pop() {
                    bucket.nodes[at] = replacement;
                }
            }
            return;
        }
    }

    /// Up to `count` nodes closest to `target`, bad nodes left out, closest first.
    pub fn closest(&self, target: &[u8; 20], count: usize) -> Vec<CompactNode> {
        let mut all: Vec<&Entry> = self
            .buckets
            .iter()
            .flat_map(|b| b.nodes.iter())
            .filter(|e| !e.is_bad())
            .collect();
        all.sort_by_key(|e| e.id.distance(target));
        all.into_iter()
            .take(count)
            .map(|e| CompactNode {
                id: e.id,
                addr: e.addr,
            })
            .collect()
    }

    /// Nodes in the table (bad ones included until replaced).
    pub fn len(&self) -> usize {
        self.buckets.iter().map(|b| b.nodes.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Addresses of the nodes that are not bad, nearest buckets first (to save for a restart).
    pub fn live_addrs(&self) -> Vec<SocketAddrV4> {
        self.buckets
            .iter()
            .rev()
            .flat_map(|b| b.nodes.iter())
            .filter(|e| !e.is_bad())
            .map(|e| e.addr)
            .collect()
    }

    /// Buckets worth refreshing: unchanged for [`QUESTIONABLE_AFTER`], from the farthest to one
    /// past the nearest non-empty bucket.
    pub fn stale_buckets(&self, now: Instant) -> Vec<usize> {
        let deepest = self.buckets.iter().rposition(|b| !b.nodes.is_empty());
        let Some(deepest) = deepest else {
            return Vec::new();
        };
        (0..=(deepest + 1).min(BUCKETS - 1))
            .filter(|&i| {
                now.saturating_duration_since(self.buckets[i].last_changed) >= QUESTIONABLE_AFTER
            })
            .collect()
    }

    /// Marks a bucket as just refreshed.
    pub fn touch_bucket(&mut self, index: usize, now: Instant) {
        if let Some(bucket) = self.buckets.get_mut(index) {
            bucket.last_changed = now;
        }
    }

    /// A random id that falls into bucket `index`.
    pub fn random_id_in_bucket(&self, index: usize, rng: &mut impl Rng) -> [u8; 20] {
        let mut distance: [u8; 20] = rng.gen();
        let index = index.min(BUCKETS - 1);
        for (byte_at, byte) in distance.iter_mut().enumerate() {
            let first_bit = byte_at * 8;
            for bit in 0..8 {
                let at = first_bit + bit;
                let mask = 0x80u8 >> bit;
                if at < index {
                    *byte &= !mask;
                } else if at == index {
                    *byte |= mask;
                }
            }
        }
        self.own.distance(&distance)
    }

    /// A rough size of the whole DHT: [`K`] nodes over the span that the [`K`] nodes closest to
    /// us cover. 0 with fewer than [`K`] nodes.
    pub fn size_estimate(&self) -> usize {
        let closest = self.closest(&self.own.0, K);
        let Some(farthest) = closest.get(K - 1) else {
            return 0;
        };
        let distance = self.own.distance(&farthest.id.0);
        let mut top = [0u8; 8];
        top.copy_from_slice(&distance[..8]);
        let top = u64::from_be_bytes(top).max(1);
        let estimate = (K as f64) * (u64::MAX as f64) / (top as f64);
        estimate.min(usize::MAX as f64) as usize
    }
}

fn remember_replacement(bucket: &mut Bucket, entry: Entry) {
    if let Some(known) = bucket.replacements.iter_mut().find(|e| e.id == entry.id) {
        known.last_seen = entry.last_seen;
        return;
    }
    if bucket.replacements.len() >= K {
        bucket.replacements.remove(0);
    }
    bucket.replacements.push(entry);
}

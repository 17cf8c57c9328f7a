//! The peers other nodes announced to us (`announce_peer`), per infohash, for answering
//! `get_peers`. Bounded: at most [`MAX_INFOHASHES`] infohashes and [`MAX_PEERS_PER_HASH`] peers
//! each (a full list drops the announcement closest to expiry); every entry expires
//! [`PEER_TTL`] after its last announcement.

use std::collections::HashMap;
use std::net::SocketAddrV4;
use std::time::{Duration, Instant};

/// How long an announcement is kept.
pub const PEER_TTL: Duration = Duration::from_secs(30 * 60);
/// Most infohashes stored.
pub const MAX_INFOHASHES: usize = 2_000;
/// Most peers stored per infohash.
pub const MAX_PEERS_PER_HASH: usize = 100;
/// Most peers put in one `get_peers` reply (keeps it within one datagram).
pub const MAX_VALUES_PER_REPLY: usize = 50;

/// See the module doc.
#[derive(Clone, Debug, Default)]
pub struct PeerStore {
    map: HashMap<[u8; 20], Vec<(SocketAddrV4, Instant)>>,
}

impl PeerStore {
    /// Stores (or refreshes) `peer` for `info_hash`; `false` when the store is full of other
    /// infohashes.
    pub fn insert(&mut self, info_hash: [u8; 20], peer: SocketAddrV4, now: Instant) -> bool {
        if !self.map.contains_key(&info_hash) && self.map.len() >= MAX_INFOHASHES {
            self.expire(now);
            if self.map.len() >= MAX_INFOHASHES {
                return false;
            }
        }
        let expires = now + PEER_TTL;
        let peers = self.map.entry(info_hash).or_default();
        if let Some(known) = peers.iter_mut().find(|(addr, _)| *addr == peer) {
            known.1 = expires;
            return true;
        }
        if peers.len() >= MAX_PEERS_PER_HASH {
            if let Some(oldest) = (0..peers.len()).min_by_key(|&i| peers[i].1) {
                peers.swap_remove(oldest);
            }
        }
        peers.push((peer, expires));
        true
    }

    /// Unexpired peers for `info_hash`, most recently announced first, at most
    /// [`MAX_VALUES_PER_REPLY`].
    pub fn get(&self, info_hash: &[u8; 20], now: Instant) -> Vec<SocketAddrV4> {
        let Some(peers) = self.map.get(info_hash) else {
            return Vec::new();
        };
        let mut live: Vec<_> = peers.iter().filter(|(_, exp)| *exp > now).collect();
        live.sort_by_key(|(_, exp)| std::cmp::Reverse(*exp));
        live.into_iter()
            .take(MAX_VALUES_PER_REPLY)
            .map(|(addr, _)| *addr)
            .collect()
    }

    /// Drops expired announcements and empty infohashes.
    pub fn expire(&mut self, now: Instant) {
        self.map.retain(|_, peers| {
            peers.retain(|(_, exp)| *exp > now);
            !peers.is_empty()
        });
    }

    /// Infohashes stored.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

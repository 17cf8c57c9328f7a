//! The address book of one torrent: every peer address we know, whether we may connect to it now,
//! and the bans.
//!
//! Guarantees: an address is never connected twice at once (it is `Connecting` or `Connected`
//! until released), a banned address is never handed out again, and an address that keeps
//! failing waits twice as long after each failure and is forgotten after
//! [`super::TorrentConfig::max_connect_failures`]. Iteration is in address order, so the choice is
//! deterministic.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use shoal_proto::PeerId;

use super::types::PeerSource;
use crate::PeerKey;

/// The most addresses one torrent remembers; more are ignored.
const MAX_KNOWN_ADDRESSES: usize = 2000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum AddrState {
    Idle { retry_at: Instant },
    Connecting,
    Connected(PeerKey),
}

#[derive(Clone, Debug)]
struct AddrEntry {
    source: PeerSource,
    failures: u32,
    state: AddrState,
}

/// Known addresses and bans.
#[derive(Debug, Default)]
pub(crate) struct AddressBook {
    entries: BTreeMap<SocketAddr, AddrEntry>,
    banned_addrs: BTreeSet<SocketAddr>,
    banned_ids: BTreeSet<PeerId>,
    connecting: usize,
}

impl AddressBook {
    pub(crate) fn add(&mut self, now: Instant, addr: SocketAddr, source: PeerSource) {
        if self.banned_addrs.contains(&addr) || self.entries.len() >= MAX_KNOWN_ADDRESSES {
            return;
        }
        self.entries.entry(addr).or_insert(AddrEntry {
            source,
            failures: 0,
            state: AddrState::Idle { retry_at: now },
        });
    }

    /// Up to `max` addresses to connect to now; each becomes `Connecting`.
    pub(crate) fn take_ready(&mut self, now: Instant, max: usize) -> Vec<SocketAddr> {
        let mut out = Vec::new();
        for (addr, entry) in &mut self.entries {
            if out.len() >= max {
                break;
            }
            if matches!(entry.state, AddrState::Idle { retry_at } if retry_at <= now) {
                entry.state = AddrState::Connecting;
                out.push(*addr);
            }
        }
        self.connecting += out.len();
        out
    }

    /// The earliest time an idle address becomes ready, if any waits.
    pub(crate) fn next_retry(&self) -> Option<Instant> {
        self.entries
            .values()
            .filter_map(|e| match e.state {
                AddrState::Idle { retry_at } => Some(retry_at),
                _ => None,
            })
            .min()
    }

    pub(crate) fn has_ready(&self, now: Instant) -> bool {
        self.entries
            .values()
            .any(|e| matches!(e.state, AddrState::Idle { retry_at } if retry_at <= now))
    }

    /// Our connect to `addr` succeeded. False when we were not connecting to it.
    pub(crate) fn connected(&mut self, addr: SocketAddr, key: PeerKey) -> bool {
        match self.entries.get_mut(&addr) {
            Some(entry) if entry.state == AddrState::Connecting => {
                entry.state = AddrState::Connected(key);
                entry.failures = 0;
                self.connecting -= 1;
                true
            }
            _ => false,
        }
    }

    /// Our connect failed: back off, or forget the address after too many failures.
    pub(crate) fn connect_failed(
        &mut self,
        now: Instant,
        addr: SocketAddr,
        backoff: Duration,
        max_failures: u32,
    ) {
        let Some(entry) = self.entries.get_mut(&addr) else {
            return;
        };
        if entry.state == AddrState::Connecting {
            self.connecting -= 1;
        }
        self.back_off(now, addr, backoff, max_failures);
    }

    fn back_off(&mut self, now: Instant, addr: SocketAddr, backoff: Duration, max_failures: u32) {
        let Some(entry) = self.entries.get_mut(&addr) else {
            return;
        };
        entry.failures += 1;
        if entry.failures >= max_failures {
            self.entries.remove(&addr);
            return;
        }
        let wait = backoff.saturating_mul(1 << entry.failures.min(10));
        entry.state = AddrState::Idle {
            retry_at: now + wait,
        };
    }

    /// A connection to `addr` (made by us) ended; it may be retried after a back-off.
    pub(crate) fn disconnected(
        &mut self,
        now: Instant,
        addr: SocketAddr,
        key: PeerKey,
        backoff: Duration,
        max_failures: u32,
    ) {
        match self.entries.get(&addr) {
            Some(entry) if entry.state == AddrState::Connected(key) => {
                self.back_off(now, addr, backoff, max_failures);
            }
            _ => {}
        }
    }

    /// We closed the connection to `addr` ourselves (the torrent paused): not the peer's
    /// failure, so it may be dialled again at once, with no back-off and no failure counted.
    pub(crate) fn released(&mut self, now: Instant, addr: SocketAddr, key: PeerKey) {
        if let Some(entry) = self.entries.get_mut(&addr) {
            if entry.state == AddrState::Connected(key) {
                entry.state = AddrState::Idle { retry_at: now };
            }
        }
    }

    pub(crate) fn ban(&mut self, addr: SocketAddr, peer_id: Option<PeerId>) {
        if let Some(entry) = self.entries.remove(&addr) {
            if entry.state == AddrState::Connecting {
                self.connecting -= 1;
            }
        }
        self.banned_addrs.insert(addr);
        self.banned_ids.extend(peer_id);
    }

    pub(crate) fn is_banned(&self, addr: SocketAddr, peer_id: Option<PeerId>) -> bool {
        self.banned_addrs.contains(&addr) || peer_id.is_some_and(|id| self.banned_ids.contains(&id))
    }

    pub(crate) fn source(&self, addr: SocketAddr) -> Option<PeerSource> {
        self.entries.get(&addr).map(|e| e.source)
    }

    /// Every known address, in order.
    pub(crate) fn addresses(&self) -> impl Iterator<Item = SocketAddr> + '_ {
        self.entries.keys().copied()
    }

    /// Every banned address, in order.
    pub(crate) fn banned_addresses(&self) -> impl Iterator<Item = SocketAddr> + '_ {
        self.banned_addrs.iter().copied()
    }

    pub(crate) fn connecting(&self) -> usize {
        self.connecting
    }
    pub(crate) fn known(&self) -> usize {
        self.entries.len()
    }
    pub(crate) fn banned(&self) -> usize {
        self.banned_addrs.len()
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // tests need a base instant
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([10, 0, 0, 1], port))
    }

    #[test]
    fn never_hands_out_an_address_twice_and_backs_off() {
        let t0 = Instant::now();
        let mut book = AddressBook::default();
        book.add(t0, addr(1), PeerSource::Tracker);
        book.add(t0, addr(1), PeerSource::Dht);
        assert_eq!(book.take_ready(t0, 10), vec![addr(1)]);
        assert!(book.take_ready(t0, 10).is_empty(), "already connecting");
        book.connect_failed(t0, addr(1), Duration::from_secs(10), 3);
        assert!(book.take_ready(t0 + Duration::from_secs(19), 10).is_empty());
        assert_eq!(book.next_retry(), Some(t0 + Duration::from_secs(20)));
        assert_eq!(
            book.take_ready(t0 + Duration::from_secs(20), 10),
            vec![addr(1)]
        );
        book.connect_failed(t0, addr(1), Duration::from_secs(10), 3);
        book.take_ready(t0 + Duration::from_secs(100), 10);
        book.connect_failed(t0, addr(1), Duration::from_secs(10), 3);
        assert_eq!(book.known(), 0, "forgotten after 3 failures");
        assert_eq!(book.connecting(), 0);
    }

    #[test]
    fn banned_addresses_are_never_connected() {
        let t0 = Instant::now();
        let mut book = AddressBook::default();
        book.add(t0, addr(1), PeerSource::Tracker);
        book.ban(addr(1), None);
        book.add(t0, addr(1), PeerSource::Pex);
        assert!(book.take_ready(t0, 10).is_empty());
        assert!(book.is_banned(addr(1), None));
    }
}

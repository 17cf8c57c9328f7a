//! BEP 11 peer exchange inside a torrent: each peer that speaks `ut_pex` hears which peers we
//! connected to and dropped since our last message to it; what peers tell us goes to the
//! address book as [`PeerSource::Pex`].
//!
//! When: a peer's first message is due [`ExtensionConfig::pex_first_delay`] after its extended
//! handshake names `ut_pex`, each later one [`ExtensionConfig::pex_interval`] after the previous
//! (BEP 11: at most once a minute per peer, which nothing here can shorten). A peer due while we
//! have nothing new for it stays due: when another peer's handshake completes (so there is
//! someone to tell of), a round runs `pex_first_delay` later and tells it.
//!
//! What we send: a connected peer is listed under the address others can dial: its address for
//! a connection we opened (flagged reachable), its IP with the port from its extended handshake
//! for one it opened (not listed when it gave no port). A message holds at most 50 added and 50
//! dropped peers (BEP 11); the rest go in the next one. A peer never hears of itself. Nothing is
//! sent when nothing changed.
//!
//! What we accept: a message arriving sooner than [`ExtensionConfig::pex_min_receive_interval`]
//! after the previous one from the same peer is ignored (counted in `pex_ignored`); lists over
//! the codec's cap drop the peer (`PexError::TooManyPeers`); addresses with port 0 or an
//! unspecified, multicast or broadcast IP are skipped. `dropped` entries are not acted on: the
//! address book forgets addresses that fail on its own.
//!
//! Private torrents (BEP 27) do none of this: `ut_pex` is not in our handshake, nothing is sent,
//! and whatever arrives is ignored.
//!
//! [`ExtensionConfig::pex_interval`]: super::ExtensionConfig::pex_interval
//! [`ExtensionConfig::pex_min_receive_interval`]: super::ExtensionConfig::pex_min_receive_interval

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use bytes::Bytes;
use shoal_proto::wire::ut_pex::{PexFlags, PexMessage, PexPeer, MAX_PEX_PEERS_SENT};

use super::ext::canonical_ip;
use super::types::ExtensionError;
use super::{DisconnectReason, PeerSource, Torrent};
use crate::peer::PeerCommand;
use crate::PeerKey;

/// PEX state of one connection.
#[derive(Debug, Default)]
pub(crate) struct PeerPex {
    /// The addresses this peer last heard from us as connected.
    told_connected: BTreeSet<SocketAddr>,
    /// When the peer's last accepted message arrived.
    last_received: Option<Instant>,
    /// When the peer may get our next message; `None` until its extended handshake names
    /// `ut_pex`.
    next_send: Option<Instant>,
}

impl Torrent {
    /// Where other peers can reach each connected peer, with its BEP 11 flags.
    fn pex_directory(&self) -> BTreeMap<SocketAddr, PexFlags> {
        let mut out = BTreeMap::new();
        for peer in self.peers.values() {
            if peer.conn.their_peer_id().is_none() {
                continue;
            }
            let dialable = if peer.outgoing {
                Some(peer.addr)
            } else {
                peer.ext
                    .listen_port
                    .map(|port| SocketAddr::new(canonical_ip(peer.addr.ip()), port))
            };
            let Some(addr) = dialable else {
                continue;
            };
            let mut flags = 0;
            if peer.outgoing {
                flags |= PexFlags::REACHABLE;
            }
            if peer.conn.their_pieces().is_full() {
                flags |= PexFlags::SEED;
            }
            out.insert(addr, PexFlags(flags));
        }
        out
    }

    /// The peer's extended handshake named `ut_pex`: its first message is due shortly.
    pub(super) fn pex_peer_ready(&mut self, now: Instant, key: PeerKey) {
        if self.private {
            return;
        }
        let first = now + self.config.extensions.pex_first_delay;
        if let Some(peer) = self.peers.get_mut(&key) {
            peer.ext.pex.next_send.get_or_insert(first);
        }
        self.pex_directory_changed(now);
    }

    /// A peer others can be told of may have joined (a handshake completed): peers whose next
    /// message is due hear of it after [`ExtensionConfig::pex_first_delay`].
    ///
    /// [`ExtensionConfig::pex_first_delay`]: super::ExtensionConfig::pex_first_delay
    pub(super) fn pex_directory_changed(&mut self, now: Instant) {
        if !self.private {
            self.next_pex = self
                .next_pex
                .min(now + self.config.extensions.pex_first_delay);
        }
    }

    /// Sends every PEX-capable peer whose next message is due what changed since our last
    /// message to it, then schedules the next round.
    pub(super) fn pex_round(&mut self, now: Instant) {
        if !(self.private || self.paused) {
            self.pex_send_due(now);
        }
        let interval = self.config.extensions.pex_interval;
        let next_due = self
            .peers
            .values()
            .filter_map(|p| p.ext.pex.next_send)
            .filter(|&at| at > now)
            .min();
        self.next_pex = next_due.map_or(now + interval, |at| at.min(now + interval));
    }

    fn pex_send_due(&mut self, now: Instant) {
        let interval = self.config.extensions.pex_interval;
        let directory = self.pex_directory();
        let own: BTreeMap<PeerKey, SocketAddr> = self
            .peers
            .iter()
            .map(|(&key, p)| {
                let port = if p.outgoing {
                    p.addr.port()
                } else {
                    p.ext.listen_port.unwrap_or(0)
                };
                (key, SocketAddr::new(canonical_ip(p.addr.ip()), port))
            })
            .collect();
        for (key, peer) in &mut self.peers {
            let Some(their_id) = peer.ext.ut_pex else {
                continue;
            };
            let state = &mut peer.ext.pex;
            if state.next_send.is_none_or(|at| at > now) {
                continue;
            }
            let itself = own.get(key).copied();
            let added: Vec<PexPeer> = directory
                .iter()
                .filter(|(addr, _)| Some(**addr) != itself && !state.told_connected.contains(addr))
                .take(MAX_PEX_PEERS_SENT)
                .map(|(&addr, &flags)| PexPeer { addr, flags })
                .collect();
            let dropped: Vec<SocketAddr> = state
                .told_connected
                .iter()
                .filter(|addr| !directory.contains_key(addr))
                .take(MAX_PEX_PEERS_SENT)
                .copied()
                .collect();
            if added.is_empty() && dropped.is_empty() {
                continue;
            }
            state.next_send = Some(now + interval);
            state.told_connected.extend(added.iter().map(|p| p.addr));
            for addr in &dropped {
                state.told_connected.remove(addr);
            }
            let payload = Bytes::from(PexMessage { added, dropped }.encode());
            peer.conn.handle_command(
                now,
                PeerCommand::Extended {
                    id: their_id,
                    payload,
                },
            );
        }
    }

    /// A `ut_pex` message from a peer.
    pub(super) fn on_pex_message(&mut self, now: Instant, key: PeerKey, payload: &[u8]) {
        if self.private {
            return;
        }
        let message = match PexMessage::decode(payload) {
            Ok(message) => message,
            Err(error) => {
                let reason = DisconnectReason::Extension(ExtensionError::Pex(error));
                self.disconnect(now, key, reason);
                return;
            }
        };
        let min_gap = self.config.extensions.pex_min_receive_interval;
        let Some(peer) = self.peers.get_mut(&key) else {
            return;
        };
        let state = &mut peer.ext.pex;
        if state
            .last_received
            .is_some_and(|last| now.saturating_duration_since(last) < min_gap)
        {
            self.pex_ignored += 1;
            return;
        }
        state.last_received = Some(now);
        let addrs: Vec<SocketAddr> = message
            .added
            .iter()
            .map(|p| SocketAddr::new(canonical_ip(p.addr.ip()), p.addr.port()))
            .filter(|addr| is_dialable(*addr))
            .collect();
        self.add_peer_addresses(now, addrs, PeerSource::Pex);
    }
}

/// Port set, and an IP one can connect to.
fn is_dialable(addr: SocketAddr) -> bool {
    if addr.port() == 0 || addr.ip().is_unspecified() || addr.ip().is_multicast() {
        return false;
    }
    match addr.ip() {
        IpAddr::V4(ip) => !ip.is_broadcast(),
        IpAddr::V6(_) => true,
    }
}

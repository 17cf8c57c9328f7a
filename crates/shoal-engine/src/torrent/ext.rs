//! The BEP 10 extension protocol inside a torrent: our extended handshake, the peer's (its
//! extension ids, listen port, request queue), BEP 9 metadata serving, and the BEP 6
//! allowed-fast set we offer.
//!
//! Data flow: [`Torrent::extended_handshake_for`] builds the payload each new connection sends;
//! `PeerEvent::ExtendedHandshake` lands in [`Torrent::on_extended_handshake`];
//! `PeerEvent::Extended` is routed by *our* id ([`OUR_UT_METADATA_ID`], [`OUR_UT_PEX_ID`]) to
//! metadata serving here or to PEX in `pex.rs`; answers go out with the *peer's* id.
//!
//! Metadata serving (BEP 9), decided once: we serve from `TorrentParams::info_bytes`; a request
//! is rejected when we have none, when the torrent is private (BEP 27: peers of a private
//! torrent get the `.torrent` from the tracker's site, so nothing is lost and nothing leaks),
//! for a piece past the end, and when the peer spent its allowance: a full copy of the metadata
//! plus [`ExtensionConfig::metadata_burst_extra`] pieces at once, then one piece per
//! [`ExtensionConfig::metadata_refill`]. A malformed `ut_metadata` or extended handshake drops
//! the peer with [`ExtensionError`]; `data` and `reject` messages are ignored (we fetch nothing).
//!
//! Allowed fast (BEP 6): to each IPv4 peer that speaks fast we offer the canonical set of
//! [`ExtensionConfig::allowed_fast_count`] pieces at the handshake (we always choke a new peer);
//! pieces of the set we do not have yet are offered when they are verified. `suggest` is
//! ignored: the picker's rarest-first order is a better guide than a peer's hint.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use bytes::Bytes;
use shoal_proto::wire::allowed_fast::allowed_fast_set;
use shoal_proto::wire::ext_handshake::{
    ExtendedHandshake, OUR_UT_METADATA_ID, OUR_UT_PEX_ID, UT_METADATA, UT_PEX,
};
use shoal_proto::wire::ut_metadata::{MetadataLayout, MetadataMessage};
use shoal_proto::PieceIndex;

use super::types::{ExtensionConfig, ExtensionError};
use super::{DisconnectReason, Torrent};
use crate::peer::PeerCommand;
use crate::PeerKey;

/// What we learnt from a peer's extended handshake, and the per-peer extension state.
#[derive(Debug)]
pub(super) struct PeerExtensions {
    /// The peer's id for `ut_metadata`, if it speaks it.
    pub(super) ut_metadata: Option<u8>,
    /// The peer's id for `ut_pex`, if it speaks it.
    pub(super) ut_pex: Option<u8>,
    /// The port the peer accepts connections on (`p`).
    pub(super) listen_port: Option<u16>,
    /// The peer's client name (`v`).
    pub(super) client: Option<String>,
    /// Metadata pieces the peer may still fetch at once, and when the allowance last grew.
    metadata_allowance: u32,
    metadata_refilled_at: Instant,
    /// Our allowed-fast set for the peer (empty: none offered).
    pub(super) allowed_fast: Vec<PieceIndex>,
    pub(super) pex: super::pex::PeerPex,
}

impl PeerExtensions {
    pub(super) fn new(now: Instant, metadata_allowance: u32) -> Self {
        PeerExtensions {
            ut_metadata: None,
            ut_pex: None,
            listen_port: None,
            client: None,
            metadata_allowance,
            metadata_refilled_at: now,
            allowed_fast: Vec::new(),
            pex: super::pex::PeerPex::default(),
        }
    }

    /// Takes one metadata piece from the allowance; false when it is spent.
    fn take_metadata_allowance(
        &mut self,
        now: Instant,
        config: &ExtensionConfig,
        cap: u32,
    ) -> bool {
        let refill = config.metadata_refill.max(Duration::from_millis(1));
        let earned = now
            .saturating_duration_since(self.metadata_refilled_at)
            .as_nanos()
            / refill.as_nanos();
        if earned > 0 {
            let earned = u32::try_from(earned).unwrap_or(u32::MAX);
            self.metadata_allowance = self.metadata_allowance.saturating_add(earned).min(cap);
            self.metadata_refilled_at = now;
        }
        if self.metadata_allowance == 0 {
            return false;
        }
        self.metadata_allowance -= 1;
        true
    }
}

impl Torrent {
    /// The most metadata pieces a peer may fetch at once.
    pub(super) fn metadata_allowance_cap(&self) -> u32 {
        let pieces = self
            .info_bytes
            .as_ref()
            .and_then(|info| MetadataLayout::new(info.len() as u64).ok())
            .map_or(0, |layout| layout.piece_count());
        pieces.saturating_add(self.config.extensions.metadata_burst_extra)
    }

    /// Whether we serve our metadata over BEP 9.
    fn serves_metadata(&self) -> Option<MetadataLayout> {
        if self.private {
            return None;
        }
        let info = self.info_bytes.as_ref()?;
        MetadataLayout::new(info.len() as u64).ok()
    }

    /// The extended handshake for a new connection to `addr` (`yourip` is per peer).
    pub(super) fn extended_handshake_for(&self, addr: SocketAddr) -> Bytes {
        if let Some(fixed) = &self.extended_handshake {
            return fixed.clone();
        }
        let mut ours = ExtendedHandshake::shoal();
        ours.client = Some(concat!("shoal ", env!("CARGO_PKG_VERSION")).to_owned());
        if self.private {
            ours.extensions.remove(UT_PEX);
            ours.extensions.remove(UT_METADATA);
        }
        ours.listen_port = self.listen_port;
        ours.your_ip = Some(canonical_ip(addr.ip()));
        ours.request_queue_len = u32::try_from(self.config.peer.max_queued_requests).ok();
        ours.metadata_size = self.serves_metadata().map(|layout| layout.total_size());
        Bytes::from(ours.encode())
    }

    /// The peer's extended handshake (the first, or a later update: BEP 10 lets a peer change
    /// or disable (id 0) single extensions; names it leaves out keep their ids).
    pub(super) fn on_extended_handshake(&mut self, now: Instant, key: PeerKey, payload: &[u8]) {
        let theirs = match ExtendedHandshake::decode(payload) {
            Ok(theirs) => theirs,
            Err(error) => {
                let reason = DisconnectReason::Extension(ExtensionError::Handshake(error));
                self.disconnect(now, key, reason);
                return;
            }
        };
        let Some(peer) = self.peers.get_mut(&key) else {
            return;
        };
        let ext = &mut peer.ext;
        if let Some(&id) = theirs.extensions.get(UT_METADATA) {
            ext.ut_metadata = (id != 0).then_some(id);
        }
        if let Some(&id) = theirs.extensions.get(UT_PEX) {
            ext.ut_pex = (id != 0).then_some(id);
        }
        ext.listen_port = theirs.listen_port.or(ext.listen_port);
        ext.client = theirs.client.or(ext.client.take());
        let speaks_pex = ext.ut_pex.is_some();
        if let Some(reqq) = theirs.request_queue_len {
            peer.pipeline.set_peer_reqq(reqq);
        }
        // Its listen port may make it a peer others can be told of.
        self.pex_directory_changed(now);
        if speaks_pex {
            self.pex_peer_ready(now, key);
        }
    }

    /// A BEP 10 message, `id` being the id *we* assigned to its extension.
    pub(super) fn on_extended(&mut self, now: Instant, key: PeerKey, id: u8, payload: Bytes) {
        match id {
            OUR_UT_METADATA_ID => self.on_metadata_message(now, key, payload),
            OUR_UT_PEX_ID => self.on_pex_message(now, key, &payload),
            _ => {}
        }
    }

    fn on_metadata_message(&mut self, now: Instant, key: PeerKey, payload: Bytes) {
        let message = match MetadataMessage::decode(payload) {
            Ok(message) => message,
            Err(error) => {
                let reason = DisconnectReason::Extension(ExtensionError::Metadata(error));
                self.disconnect(now, key, reason);
                return;
            }
        };
        let MetadataMessage::Request { piece } = message else {
            return;
        };
        let layout = self.serves_metadata();
        let cap = self.metadata_allowance_cap();
        let config = self.config.extensions.clone();
        let Some(peer) = self.peers.get_mut(&key) else {
            return;
        };
        let Some(their_id) = peer.ext.ut_metadata else {
            // It never said how to address ut_metadata messages to it.
            return;
        };
        let range = layout.and_then(|layout| Some((layout, layout.piece_range(piece)?)));
        let reply = match (range, &self.info_bytes) {
            (Some((layout, range)), Some(info))
                if peer.ext.take_metadata_allowance(now, &config, cap) =>
            {
                MetadataMessage::Data {
                    piece,
                    total_size: layout.total_size(),
                    data: info.slice(range),
                }
            }
            _ => MetadataMessage::Reject { piece },
        };
        peer.conn.handle_command(
            now,
            PeerCommand::Extended {
                id: their_id,
                payload: Bytes::from(reply.encode()),
            },
        );
    }

    /// BEP 6: computes the peer's allowed-fast set and offers the pieces of it we have.
    pub(super) fn offer_allowed_fast(&mut self, now: Instant, key: PeerKey) {
        let count = self.config.extensions.allowed_fast_count;
        let (info_hash, geometry) = (self.info_hash, self.geometry);
        let Some(peer) = self.peers.get_mut(&key) else {
            return;
        };
        if count == 0 || !peer.conn.supports_fast() || !peer.conn.am_choking() {
            return;
        }
        let IpAddr::V4(ip) = canonical_ip(peer.addr.ip()) else {
            return; // BEP 6 defines the set for IPv4 only.
        };
        let set: Vec<PieceIndex> = allowed_fast_set(ip, info_hash, geometry.piece_count(), count)
            .into_iter()
            .filter_map(|index| geometry.piece(index))
            .collect();
        for &piece in &set {
            if self.picker.have().get(piece) {
                peer.conn.handle_command(now, PeerCommand::AllowFast(piece));
            }
        }
        peer.ext.allowed_fast = set;
    }

    /// A piece was verified: offer it to the peers whose allowed-fast set holds it.
    pub(super) fn offer_verified_allowed_fast(&mut self, now: Instant, piece: PieceIndex) {
        for peer in self.peers.values_mut() {
            if peer.ext.allowed_fast.contains(&piece) {
                peer.conn.handle_command(now, PeerCommand::AllowFast(piece));
            }
        }
    }
}

/// An IPv4-mapped IPv6 address as the IPv4 address it is.
pub(super) fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

//! Fetching a torrent's info dictionary from peers when only its infohash is known (a magnet
//! link): BEP 9 over BEP 10, sans-IO, driven like [`crate::torrent::Torrent`].
//!
//! Data flow: addresses come in ([`MetadataFetch::add_peer_addresses`]), the fetch asks to
//! connect to them ([`MetadataOutput::Connect`]), each connection is a metadata-only
//! [`PeerConn`] (no geometry yet). A peer whose extended handshake names `ut_metadata` and a
//! `metadata_size` within [`MetadataConfig::max_metadata_size`] is asked for 16 KiB pieces
//! ([`MetadataConfig::max_requests_per_peer`] at once); once all arrived the bytes are checked
//! with [`Info::from_bytes_checked`], and [`MetadataOutput::Done`] hands out the parsed info
//! with every address worth dialing. Connections are not handed over: the runtime starts a
//! `Torrent` that dials again (simple, and the torrent's own handshake then carries the
//! bitfield and `metadata_size` it needs).
//!
//! Guarantees: nothing is allocated from a peer's size before the cap check; the first peer with
//! a sane size fixes the size, and every peer that disagrees is dropped
//! ([`FetchDropReason::SizeMismatch`]); a piece is only stored when it was requested from that
//! peer and agrees with the size; only bytes that hash to the infohash leave the fetch. When the
//! hash fails, a sole contributor is banned at once; with several contributors nobody can be
//! blamed, so every later attempt takes all pieces from a single peer, which makes the next
//! failure a ban. A size chosen from a liar is dropped with its assembly and chosen again.
//! Time-outs: a piece unanswered after [`MetadataConfig::request_timeout`] goes to another peer
//! and the slow one is dropped; a peer that rejects a piece is dropped (its address is retried
//! after a back-off). PEX messages from peers feed the address book, rate-limited as in a
//! torrent.
//!
//! # Call order
//! As for `Torrent`: `handle_*` with the current time, then drain [`MetadataFetch::poll_output`]
//! until `None`, then sleep until [`MetadataFetch::poll_timeout`] and call
//! [`MetadataFetch::handle_timeout`]. After `Done` or `Unusable` the fetch is finished: every
//! later connection is refused with [`FetchDropReason::Finished`].

mod types;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::SocketAddr;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use shoal_proto::metainfo::{Info, MetainfoError};
use shoal_proto::wire::ext_handshake::{ExtendedHandshake, OUR_UT_METADATA_ID, OUR_UT_PEX_ID};
use shoal_proto::wire::ut_metadata::{MetadataLayout, MetadataMessage, MAX_METADATA_SIZE};
use shoal_proto::wire::ut_pex::PexMessage;
use shoal_proto::wire::{Handshake, Reserved};
use shoal_proto::{InfoHash, PeerId};

use crate::bitfield::Bitfield;
use crate::peer::{PeerCommand, PeerConn, PeerEvent, PeerSetup};
use crate::torrent::addrs::AddressBook;
use crate::torrent::{ExtensionError, PeerSource};
use crate::PeerKey;

pub use types::{
    FetchDropReason, FetchedMetadata, MetadataConfig, MetadataEvent, MetadataOutput, MetadataParams,
};

/// One connected (or handshaking) peer of the fetch.
#[derive(Debug)]
struct FetchPeer {
    addr: SocketAddr,
    outgoing: bool,
    conn: PeerConn,
    /// The peer's id for `ut_metadata`.
    metadata_id: Option<u8>,
    /// The size from its extended handshake, checked against the cap.
    layout: Option<MetadataLayout>,
    listen_port: Option<u16>,
    /// Metadata pieces asked of it, and when.
    in_flight: BTreeMap<u32, Instant>,
    last_pex: Option<Instant>,
}

impl FetchPeer {
    /// Where other clients can dial it.
    fn dialable(&self) -> Option<SocketAddr> {
        if self.outgoing {
            Some(self.addr)
        } else {
            let port = self.listen_port?;
            Some(SocketAddr::new(self.addr.ip(), port))
        }
    }
}

/// Who sent a stored piece (kept after the peer left, to blame it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Contributor {
    key: PeerKey,
    addr: SocketAddr,
    peer_id: Option<PeerId>,
}

/// The metadata being put together.
#[derive(Debug)]
struct Assembly {
    layout: MetadataLayout,
    bytes: Vec<u8>,
    received: Vec<Option<Contributor>>,
}

impl Assembly {
    fn new(layout: MetadataLayout) -> Self {
        Assembly {
            layout,
            bytes: vec![0; layout.total_size() as usize],
            received: vec![None; layout.piece_count() as usize],
        }
    }

    fn is_complete(&self) -> bool {
        self.received.iter().all(Option::is_some)
    }
}

/// A magnet link's metadata fetch. See the module documentation.
#[derive(Debug)]
pub struct MetadataFetch {
    info_hash: InfoHash,
    our_peer_id: PeerId,
    listen_port: Option<u16>,
    config: MetadataConfig,
    peers: BTreeMap<PeerKey, FetchPeer>,
    addrs: AddressBook,
    next_key: u64,
    outputs: VecDeque<MetadataOutput>,
    assembly: Option<Assembly>,
    /// After a hash failure with several contributors: the one peer all pieces come from.
    single_source: bool,
    source: Option<PeerKey>,
    finished: bool,
}

impl MetadataFetch {
    pub fn new(params: MetadataParams) -> Self {
        let MetadataParams {
            info_hash,
            our_peer_id,
            listen_port,
            mut config,
        } = params;
        config.max_metadata_size = config.max_metadata_size.min(MAX_METADATA_SIZE);
        MetadataFetch {
            info_hash,
            our_peer_id,
            listen_port,
            config,
            peers: BTreeMap::new(),
            addrs: AddressBook::default(),
            next_key: 0,
            outputs: VecDeque::new(),
            assembly: None,
            single_source: false,
            source: None,
            finished: false,
        }
    }

    pub fn info_hash(&self) -> InfoHash {
        self.info_hash
    }
    /// `Done` or `Unusable` was handed out.
    pub fn is_finished(&self) -> bool {
        self.finished
    }
    /// Metadata pieces received and the total, once the size is known.
    pub fn progress(&self) -> Option<(u32, u32)> {
        let assembly = self.assembly.as_ref()?;
        let got = assembly.received.iter().filter(|r| r.is_some()).count();
        Some((got as u32, assembly.layout.piece_count()))
    }
    /// Connected (or handshaking) peers.
    pub fn peer_count(&self) -> usize {
        self.peers.len()
    }

    /// New peer addresses (tracker, DHT, PEX, ...). Known and banned ones are ignored.
    pub fn add_peer_addresses(
        &mut self,
        now: Instant,
        addrs: impl IntoIterator<Item = SocketAddr>,
        source: PeerSource,
    ) {
        for addr in addrs {
            self.addrs.add(now, addr, source);
        }
        self.connect_more(now);
    }

    /// Our outgoing connect to `addr` (asked for with `Connect`) succeeded.
    pub fn handle_connected(&mut self, now: Instant, addr: SocketAddr) -> PeerKey {
        let key = self.new_key();
        self.addrs.connected(addr, key);
        if self.finished {
            self.refuse(key, FetchDropReason::Finished);
            return key;
        }
        let conn = PeerConn::outgoing(now, self.peer_setup(addr));
        self.peers.insert(key, FetchPeer::new(addr, true, conn));
        self.flush();
        key
    }

    /// Our outgoing connect to `addr` failed.
    pub fn handle_connect_failed(&mut self, now: Instant, addr: SocketAddr) {
        let (backoff, max) = (
            self.config.reconnect_backoff,
            self.config.max_connect_failures,
        );
        self.addrs.connect_failed(now, addr, backoff, max);
        self.connect_more(now);
    }

    /// A peer connected to us; the runtime read its handshake (for our infohash).
    pub fn handle_incoming(
        &mut self,
        now: Instant,
        addr: SocketAddr,
        theirs: Handshake,
    ) -> PeerKey {
        let key = self.new_key();
        let refusal = if self.finished {
            Some(FetchDropReason::Finished)
        } else if self.addrs.is_banned(addr, Some(theirs.peer_id)) {
            Some(FetchDropReason::Banned)
        } else if self.peers.len() + self.addrs.connecting() >= self.config.max_peers {
            Some(FetchDropReason::TooManyPeers)
        } else {
            None
        };
        if let Some(reason) = refusal {
            self.refuse(key, reason);
            return key;
        }
        match PeerConn::incoming(now, self.peer_setup(addr), theirs) {
            Ok(conn) => {
                self.peers.insert(key, FetchPeer::new(addr, false, conn));
                self.drain_events(now, key);
            }
            Err(error) => self.refuse(key, FetchDropReason::Protocol(error)),
        }
        self.after_input(now);
        key
    }

    /// Bytes read from a peer's socket.
    pub fn handle_peer_data(&mut self, now: Instant, peer: PeerKey, data: &[u8]) {
        let Some(state) = self.peers.get_mut(&peer) else {
            return;
        };
        let result = state.conn.handle_read(now, data);
        self.drain_events(now, peer);
        if let Err(error) = result {
            self.disconnect(now, peer, FetchDropReason::Protocol(error));
        }
        self.after_input(now);
    }

    /// The peer's socket closed (or failed).
    pub fn handle_peer_closed(&mut self, now: Instant, peer: PeerKey) {
        if self.remove_peer(now, peer).is_some() {
            self.after_input(now);
        }
    }

    /// Time-outs: handshakes, keep-alives, unanswered pieces, reconnects.
    pub fn handle_timeout(&mut self, now: Instant) {
        let keys: Vec<PeerKey> = self.peers.keys().copied().collect();
        for key in keys {
            let Some(peer) = self.peers.get_mut(&key) else {
                continue;
            };
            let result = peer.conn.handle_timeout(now);
            let late = peer.in_flight.iter().find_map(|(&piece, &sent)| {
                let waited = now.saturating_duration_since(sent);
                (waited >= self.config.request_timeout).then_some((piece, waited))
            });
            self.drain_events(now, key);
            if let Err(error) = result {
                self.disconnect(now, key, FetchDropReason::Protocol(error));
            } else if let Some((piece, waited)) = late {
                self.disconnect(now, key, FetchDropReason::RequestTimeout { piece, waited });
            }
        }
        self.after_input(now);
    }

    /// The next thing to do for the runtime.
    pub fn poll_output(&mut self) -> Option<MetadataOutput> {
        self.outputs.pop_front()
    }

    /// When [`MetadataFetch::handle_timeout`] must be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut deadlines: Vec<Instant> = Vec::new();
        for peer in self.peers.values() {
            deadlines.extend(peer.conn.poll_timeout());
            if let Some(&oldest) = peer.in_flight.values().min() {
                deadlines.push(oldest + self.config.request_timeout);
            }
        }
        if self.can_connect_more() {
            deadlines.extend(self.addrs.next_retry());
        }
        deadlines.into_iter().min()
    }

    fn new_key(&mut self) -> PeerKey {
        self.next_key += 1;
        PeerKey(self.next_key)
    }

    fn peer_setup(&self, addr: SocketAddr) -> PeerSetup {
        let mut ours = ExtendedHandshake::shoal();
        ours.client = Some(concat!("shoal ", env!("CARGO_PKG_VERSION")).to_owned());
        ours.listen_port = self.listen_port;
        ours.your_ip = Some(addr.ip());
        PeerSetup {
            info_hash: self.info_hash,
            our_peer_id: self.our_peer_id,
            geometry: None,
            our_pieces: Bitfield::new(0),
            extended_handshake: Some(Bytes::from(ours.encode())),
            reserved: Reserved::shoal(),
            config: self.config.peer.clone(),
        }
    }

    /// Everything that follows any input: dial, ask for pieces, send.
    fn after_input(&mut self, now: Instant) {
        self.connect_more(now);
        self.request_more(now);
        self.flush();
    }

    fn flush(&mut self) {
        for (&key, peer) in &mut self.peers {
            let mut buf = BytesMut::new();
            if peer.conn.poll_transmit(&mut buf) {
                self.outputs.push_back(MetadataOutput::Transmit {
                    peer: key,
                    data: buf.freeze(),
                });
            }
        }
    }

    fn can_connect_more(&self) -> bool {
        !self.finished
            && self.peers.len() + self.addrs.connecting() < self.config.max_peers
            && self.addrs.connecting() < self.config.max_connecting
    }

    fn connect_more(&mut self, now: Instant) {
        if !self.can_connect_more() || !self.addrs.has_ready(now) {
            return;
        }
        let room = (self.config.max_peers - self.peers.len() - self.addrs.connecting())
            .min(self.config.max_connecting - self.addrs.connecting());
        for addr in self.addrs.take_ready(now, room) {
            self.outputs.push_back(MetadataOutput::Connect(addr));
        }
    }

    /// A connection we never kept.
    fn refuse(&mut self, key: PeerKey, reason: FetchDropReason) {
        self.outputs
            .push_back(MetadataOutput::Disconnect { peer: key, reason });
    }

    fn disconnect(&mut self, now: Instant, key: PeerKey, reason: FetchDropReason) {
        if self.remove_peer(now, key).is_some() {
            self.refuse(key, reason);
        }
    }

    /// Forgets a peer; the pieces it had in flight are free again.
    fn remove_peer(&mut self, now: Instant, key: PeerKey) -> Option<FetchPeer> {
        let peer = self.peers.remove(&key)?;
        if peer.outgoing {
            let (backoff, max) = (
                self.config.reconnect_backoff,
                self.config.max_connect_failures,
            );
            self.addrs.disconnected(now, peer.addr, key, backoff, max);
        }
        if self.source == Some(key) {
            self.source = None;
        }
        Some(peer)
    }

    fn drain_events(&mut self, now: Instant, key: PeerKey) {
        while let Some(event) = self.peers.get_mut(&key).and_then(|p| p.conn.poll_event()) {
            match event {
                PeerEvent::HandshakeDone { peer_id, reserved } => {
                    self.on_handshake(now, key, peer_id, reserved);
                }
                PeerEvent::ExtendedHandshake(payload) => {
                    self.on_extended_handshake(now, key, &payload);
                }
                PeerEvent::Extended {
                    id: OUR_UT_METADATA_ID,
                    payload,
                } => self.on_metadata_message(now, key, payload),
                PeerEvent::Extended {
                    id: OUR_UT_PEX_ID,
                    payload,
                } => self.on_pex_message(now, key, &payload),
                _ => {}
            }
        }
    }

    fn on_handshake(&mut self, now: Instant, key: PeerKey, peer_id: PeerId, reserved: Reserved) {
        let Some(addr) = self.peers.get(&key).map(|p| p.addr) else {
            return;
        };
        let twin = self
            .peers
            .iter()
            .any(|(&other, p)| other != key && p.conn.their_peer_id() == Some(peer_id));
        let refusal = if self.addrs.is_banned(addr, Some(peer_id)) {
            Some(FetchDropReason::Banned)
        } else if twin {
            Some(FetchDropReason::Duplicate)
        } else if !reserved.has(Reserved::EXTENSION_PROTOCOL) {
            Some(FetchDropReason::NoExtensionProtocol)
        } else {
            None
        };
        match refusal {
            Some(reason) => self.disconnect(now, key, reason),
            None => self
                .outputs
                .push_back(MetadataOutput::Event(MetadataEvent::PeerConnected {
                    peer: key,
                    addr,
                    peer_id,
                })),
        }
    }

    /// The peer's extended handshake: it must serve metadata of a size we accept and agree
    /// with the size being fetched.
    fn on_extended_handshake(&mut self, now: Instant, key: PeerKey, payload: &[u8]) {
        let theirs = match ExtendedHandshake::decode(payload) {
            Ok(theirs) => theirs,
            Err(error) => {
                let reason = FetchDropReason::Extension(ExtensionError::Handshake(error));
                self.disconnect(now, key, reason);
                return;
            }
        };
        let (Some(id), Some(size)) = (theirs.ut_metadata_id(), theirs.metadata_size) else {
            self.disconnect(now, key, FetchDropReason::NoMetadataSupport);
            return;
        };
        let layout = match self.checked_layout(size) {
            Ok(layout) => layout,
            Err(reason) => {
                self.disconnect(now, key, reason);
                return;
            }
        };
        if let Some(peer) = self.peers.get_mut(&key) {
            peer.metadata_id = Some(id);
            peer.layout = Some(layout);
            peer.listen_port = theirs.listen_port.or(peer.listen_port);
        }
    }

    /// A size from a peer, within our cap and equal to the one being fetched (if any).
    fn checked_layout(&self, size: u32) -> Result<MetadataLayout, FetchDropReason> {
        let size = u64::from(size);
        let layout = MetadataLayout::new(size)
            .map_err(|source| FetchDropReason::BadMetadataSize { size, source })?;
        if layout.total_size() > self.config.max_metadata_size {
            let source = shoal_proto::wire::ut_metadata::MetadataError::BadSize {
                size,
                max: self.config.max_metadata_size,
            };
            return Err(FetchDropReason::BadMetadataSize { size, source });
        }
        match &self.assembly {
            Some(assembly) if assembly.layout != layout => Err(FetchDropReason::SizeMismatch {
                theirs: size,
                ours: assembly.layout.total_size(),
            }),
            _ => Ok(layout),
        }
    }

    fn on_metadata_message(&mut self, now: Instant, key: PeerKey, payload: Bytes) {
        let message = match MetadataMessage::decode(payload) {
            Ok(message) => message,
            Err(error) => {
                let reason = FetchDropReason::Extension(ExtensionError::Metadata(error));
                self.disconnect(now, key, reason);
                return;
            }
        };
        match message {
            MetadataMessage::Data {
                piece,
                total_size,
                data,
            } => self.on_metadata_piece(now, key, piece, total_size, &data),
            MetadataMessage::Reject { piece } => {
                let asked = self
                    .peers
                    .get(&key)
                    .is_some_and(|p| p.in_flight.contains_key(&piece));
                if asked {
                    self.disconnect(now, key, FetchDropReason::Rejected { piece });
                }
            }
            MetadataMessage::Request { piece } => {
                // We have nothing to serve yet.
                if let Some(peer) = self.peers.get_mut(&key) {
                    if let Some(id) = peer.metadata_id {
                        let payload = Bytes::from(MetadataMessage::Reject { piece }.encode());
                        peer.conn
                            .handle_command(now, PeerCommand::Extended { id, payload });
                    }
                }
            }
            MetadataMessage::Unknown { .. } => {}
        }
    }

    /// A data message: stored when asked of this peer and of the size being fetched.
    fn on_metadata_piece(
        &mut self,
        now: Instant,
        key: PeerKey,
        piece: u32,
        total_size: u32,
        data: &[u8],
    ) {
        let Some(peer) = self.peers.get_mut(&key) else {
            return;
        };
        if peer.in_flight.remove(&piece).is_none() {
            return; // Never asked, or given up on: ignore.
        }
        let contributor = Contributor {
            key,
            addr: peer.addr,
            peer_id: peer.conn.their_peer_id(),
        };
        let Some(assembly) = self.assembly.as_mut() else {
            return;
        };
        if total_size != assembly.layout.total_size() {
            let ours = assembly.layout.total_size();
            let theirs = u64::from(total_size);
            self.disconnect(now, key, FetchDropReason::SizeMismatch { theirs, ours });
            return;
        }
        // The decoder checked `piece` and the data length against `total_size`, which is ours.
        let (Some(range), Some(slot)) = (
            assembly.layout.piece_range(piece),
            assembly.received.get_mut(piece as usize),
        ) else {
            return;
        };
        if let Some(target) = assembly.bytes.get_mut(range) {
            if target.len() == data.len() {
                target.copy_from_slice(data);
                *slot = Some(contributor);
            }
        }
        if assembly.is_complete() {
            self.verify(now);
        }
    }

    /// All pieces are in: check them against the infohash.
    fn verify(&mut self, now: Instant) {
        let Some(assembly) = self.assembly.take() else {
            return;
        };
        match Info::from_bytes_checked(&assembly.bytes, self.info_hash) {
            Ok(info) => self.finish(now, MetadataOutput::Done(self.fetched(info))),
            Err(MetainfoError::InfoHashMismatch { .. }) => self.hash_failed(now, &assembly),
            Err(error) => self.finish(now, MetadataOutput::Unusable(error)),
        }
    }

    fn fetched(&self, info: Info) -> FetchedMetadata {
        let mut peers: BTreeSet<SocketAddr> = self
            .peers
            .values()
            .filter_map(FetchPeer::dialable)
            .collect();
        peers.extend(self.addrs.addresses());
        FetchedMetadata {
            info,
            peers: peers.into_iter().collect(),
            banned: self.addrs.banned_addresses().collect(),
        }
    }

    /// Drops every connection, then hands out the result.
    fn finish(&mut self, now: Instant, result: MetadataOutput) {
        self.finished = true;
        let keys: Vec<PeerKey> = self.peers.keys().copied().collect();
        for key in keys {
            self.disconnect(now, key, FetchDropReason::Finished);
        }
        self.outputs.push_back(result);
    }

    /// The metadata did not hash to the infohash: blame, then start over.
    fn hash_failed(&mut self, now: Instant, assembly: &Assembly) {
        let contributors: BTreeSet<Contributor> =
            assembly.received.iter().flatten().copied().collect();
        let addrs = contributors.iter().map(|c| c.addr).collect();
        self.outputs
            .push_back(MetadataOutput::Event(MetadataEvent::HashFailed {
                contributors: addrs,
            }));
        if let [only] = contributors.iter().collect::<Vec<_>>()[..] {
            self.ban(now, *only);
        } else {
            self.single_source = true;
        }
        self.source = None;
        for peer in self.peers.values_mut() {
            peer.in_flight.clear();
        }
    }

    fn ban(&mut self, now: Instant, who: Contributor) {
        self.addrs.ban(who.addr, who.peer_id);
        self.outputs
            .push_back(MetadataOutput::Event(MetadataEvent::PeerBanned {
                addr: who.addr,
                peer_id: who.peer_id,
            }));
        let banned: Vec<PeerKey> = self
            .peers
            .iter()
            .filter(|(_, p)| self.addrs.is_banned(p.addr, p.conn.their_peer_id()))
            .map(|(&k, _)| k)
            .collect();
        for key in banned {
            self.disconnect(now, key, FetchDropReason::Banned);
        }
    }

    /// Fixes the size when none is (from the first peer that told one; the others that disagree
    /// are dropped), then gives free pieces to peers with room.
    fn request_more(&mut self, now: Instant) {
        if self.finished {
            return;
        }
        if self.assembly.is_none() && !self.choose_layout(now) {
            return;
        }
        let eligible: Vec<PeerKey> = self
            .peers
            .iter()
            .filter(|(_, p)| p.metadata_id.is_some() && p.layout.is_some())
            .map(|(&k, _)| k)
            .collect();
        if self.single_source {
            if self.source.is_none() {
                self.source = eligible.first().copied();
            }
            if let Some(source) = self.source {
                self.fill_peer(now, source);
            }
            return;
        }
        for key in eligible {
            self.fill_peer(now, key);
        }
    }

    fn choose_layout(&mut self, now: Instant) -> bool {
        let Some(layout) = self.peers.values().find_map(|p| p.layout) else {
            return false;
        };
        let size = layout.total_size();
        self.assembly = Some(Assembly::new(layout));
        self.outputs
            .push_back(MetadataOutput::Event(MetadataEvent::SizeKnown { size }));
        let disagreeing: Vec<(PeerKey, u32)> = self
            .peers
            .iter()
            .filter_map(|(&k, p)| Some((k, p.layout?.total_size())))
            .filter(|&(_, theirs)| theirs != size)
            .collect();
        for (key, theirs) in disagreeing {
            let theirs = u64::from(theirs);
            let reason = FetchDropReason::SizeMismatch { theirs, ours: size };
            self.disconnect(now, key, reason);
        }
        true
    }

    /// Asks one peer for free pieces, lowest first, up to its share.
    fn fill_peer(&mut self, now: Instant, key: PeerKey) {
        let Some(assembly) = self.assembly.as_ref() else {
            return;
        };
        let busy: BTreeSet<u32> = self
            .peers
            .values()
            .flat_map(|p| p.in_flight.keys().copied())
            .collect();
        let Some(peer) = self.peers.get_mut(&key) else {
            return;
        };
        let Some(id) = peer.metadata_id else {
            return;
        };
        let room = self
            .config
            .max_requests_per_peer
            .saturating_sub(peer.in_flight.len());
        let free = (0..assembly.layout.piece_count())
            .filter(|&piece| {
                let missing = assembly.received.get(piece as usize) == Some(&None);
                missing && !busy.contains(&piece)
            })
            .take(room);
        for piece in free {
            peer.in_flight.insert(piece, now);
            let payload = Bytes::from(MetadataMessage::Request { piece }.encode());
            peer.conn
                .handle_command(now, PeerCommand::Extended { id, payload });
        }
    }

    /// PEX from a peer of the fetch: more addresses, rate-limited like a torrent's.
    fn on_pex_message(&mut self, now: Instant, key: PeerKey, payload: &[u8]) {
        let message = match PexMessage::decode(payload) {
            Ok(message) => message,
            Err(error) => {
                let reason = FetchDropReason::Extension(ExtensionError::Pex(error));
                self.disconnect(now, key, reason);
                return;
            }
        };
        let min_gap = self.config.pex_min_receive_interval;
        let Some(peer) = self.peers.get_mut(&key) else {
            return;
        };
        if peer
            .last_pex
            .is_some_and(|last| now.saturating_duration_since(last) < min_gap)
        {
            return;
        }
        peer.last_pex = Some(now);
        let addrs: Vec<SocketAddr> = message
            .added
            .iter()
            .map(|p| p.addr)
            .filter(|a| a.port() != 0 && !a.ip().is_unspecified() && !a.ip().is_multicast())
            .collect();
        for addr in addrs {
            self.addrs.add(now, addr, PeerSource::Pex);
        }
    }
}

impl FetchPeer {
    fn new(addr: SocketAddr, outgoing: bool, conn: PeerConn) -> Self {
        FetchPeer {
            addr,
            outgoing,
            conn,
            metadata_id: None,
            layout: None,
            listen_port: None,
            in_flight: BTreeMap::new(),
            last_pex: None,
        }
    }
}

#[cfg(test)]
mod tests;

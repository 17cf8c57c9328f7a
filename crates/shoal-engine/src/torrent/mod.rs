//! One torrent's engine, event-shaped like quinn's `Endpoint`: it owns the [`PeerConn`]s of its
//! peers, the piece picker, the upload choker and the address book, and talks to the outside only
//! through `handle_*` (input) and `poll_*` (output) calls.
//!
//! Data flow: the runtime feeds socket bytes ([`Torrent::handle_peer_data`]), connection results,
//! disk completions ([`Torrent::handle_disk`]) and time-outs in; out come [`Output`]s: bytes to
//! send, disk requests, addresses to connect to, peers to drop (with a typed reason) and user
//! events. A received block goes to disk as `DiskRequest::Write`; once every block of a piece is
//! written the engine asks for `DiskRequest::Hash`; only `Hashed { result: Ok(true) }` makes the
//! piece ours (counted, announced with `have`, served). A failed piece goes back to the picker,
//! its contributors get strikes and a sole contributor is banned.
//!
//! # Call order
//! 1. [`Torrent::new`], then [`Torrent::add_peer_addresses`] as trackers, DHT and PEX find peers.
//! 2. Feed input with the `handle_*` methods, each with the current time.
//! 3. After every `handle_*` call drain [`Torrent::poll_output`] until `None` and carry each
//!    [`Output`] out, then sleep until [`Torrent::poll_timeout`] and call
//!    [`Torrent::handle_timeout`].
//!
//! A key named in `Output::Disconnect` is dead: later calls with it are ignored, and the runtime
//! needs no `handle_peer_closed` for it.
//!
//! Extensions: the BEP 10 handshake, BEP 9 metadata serving and BEP 6 allowed fast live in
//! `ext.rs`, BEP 11 peer exchange in `pex.rs`.

pub(crate) mod addrs;
mod choke;
mod ext;
mod peers;
mod pex;
mod pieces;
mod serve;
mod types;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::SocketAddr;
use std::time::Instant;

use bytes::Bytes;
use rand::rngs::StdRng;
use rand::SeedableRng;
use shoal_proto::wire::{Handshake, Reserved};
use shoal_proto::{Geometry, InfoHash, PeerId, PieceIndex};

use crate::bitfield::Bitfield;
use crate::choker::Choker;
use crate::disk::DiskDone;
use crate::peer::{PeerConn, PeerSetup};
use crate::picker::{FileSpan, Picker, Priority};
use crate::pipeline::{RateEstimator, RequestPipeline};
use crate::PeerKey;

use addrs::AddressBook;
pub use types::{
    DisconnectReason, ExtensionConfig, ExtensionError, Output, PeerInfo, PeerSource, TorrentConfig,
    TorrentEvent, TorrentParams, TorrentStats,
};

/// One connected (or handshaking) peer.
#[derive(Debug)]
struct Peer {
    addr: SocketAddr,
    source: PeerSource,
    /// We opened the connection.
    outgoing: bool,
    connected_at: Instant,
    conn: PeerConn,
    /// Our requests in flight, queue depth, time-outs, snubbing, download rate.
    pipeline: RequestPipeline,
    upload: RateEstimator,
    /// Its requests waiting for a disk read, and the bytes we hold for it (see `serve.rs`).
    serve: serve::ServeQueue,
    /// BEP 10 state: the peer's extension ids, listen port, PEX and metadata bookkeeping.
    ext: ext::PeerExtensions,
}

/// One torrent's engine. See the module documentation for the call order.
#[derive(Debug)]
pub struct Torrent {
    info_hash: InfoHash,
    our_peer_id: PeerId,
    geometry: Geometry,
    config: TorrentConfig,
    picker: Picker,
    rng: StdRng,
    peers: BTreeMap<PeerKey, Peer>,
    /// Address and id of peers that left, so a later hash failure can still ban them.
    gone_peers: BTreeMap<PeerKey, (SocketAddr, Option<PeerId>)>,
    addrs: AddressBook,
    next_key: u64,
    outputs: VecDeque<Output>,
    /// Blocks sent to disk and not yet written, per piece.
    writes_in_flight: BTreeMap<PieceIndex, u32>,
    /// Pieces sent to the disk for hashing.
    hashing: BTreeSet<PieceIndex>,
    choker: Choker,
    paused: bool,
    complete_announced: bool,
    extended_handshake: Option<Bytes>,
    info_bytes: Option<Bytes>,
    listen_port: Option<u16>,
    private: bool,
    /// When the next PEX round is due.
    next_pex: Instant,
    /// PEX messages ignored for arriving too soon.
    pex_ignored: u64,
    wasted: u64,
    hash_failures: u32,
    /// Totals of peers that left (their `PeerConn` counters are gone).
    downloaded_by_gone: u64,
    uploaded_by_gone: u64,
}

impl Torrent {
    /// An engine starting from `params.have` (pieces already verified).
    pub fn new(params: TorrentParams, now: Instant) -> Self {
        let TorrentParams {
            info_hash,
            our_peer_id,
            geometry,
            have,
            piece_priorities,
            config,
            rng_seed,
            info_bytes,
            listen_port,
            private,
        } = params;
        let mut picker = Picker::new(geometry, config.picker);
        for index in have.iter_ones() {
            if let Some(piece) = geometry.piece(index) {
                picker.on_piece_verified(piece);
            }
        }
        for (piece, priority) in geometry.pieces().zip(piece_priorities) {
            picker.set_piece_priority(piece, priority);
        }
        let complete_announced = picker.is_complete();
        Torrent {
            info_hash,
            our_peer_id,
            geometry,
            picker,
            rng: StdRng::seed_from_u64(rng_seed),
            peers: BTreeMap::new(),
            gone_peers: BTreeMap::new(),
            addrs: AddressBook::default(),
            next_key: 0,
            outputs: VecDeque::new(),
            writes_in_flight: BTreeMap::new(),
            hashing: BTreeSet::new(),
            choker: Choker::new(now + config.choker.round_interval, config.choker),
            paused: false,
            complete_announced,
            extended_handshake: None,
            info_bytes,
            listen_port,
            private,
            next_pex: now + config.extensions.pex_interval,
            pex_ignored: 0,
            wasted: 0,
            hash_failures: 0,
            downloaded_by_gone: 0,
            uploaded_by_gone: 0,
            config,
        }
    }

    pub fn info_hash(&self) -> InfoHash {
        self.info_hash
    }
    pub fn geometry(&self) -> &Geometry {
        &self.geometry
    }
    /// Our verified pieces.
    pub fn have(&self) -> &Bitfield {
        self.picker.have()
    }
    /// Every wanted piece is verified.
    pub fn is_complete(&self) -> bool {
        self.picker.is_complete()
    }
    pub fn is_paused(&self) -> bool {
        self.paused
    }
    /// The raw `info` bytes this torrent serves over BEP 9, if any.
    pub fn info_bytes(&self) -> Option<&Bytes> {
        self.info_bytes.as_ref()
    }

    /// Replaces the BEP 10 extended handshake payload sent to peers that connect from now on
    /// (`None`, the default: the engine builds its own, see `ext.rs`). For tests.
    pub fn set_extended_handshake(&mut self, payload: Option<Bytes>) {
        self.extended_handshake = payload;
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

    /// Our outgoing connect to `addr` (asked for with `Output::Connect`) succeeded.
    pub fn handle_connected(&mut self, now: Instant, addr: SocketAddr) -> PeerKey {
        let key = self.new_key();
        self.addrs.connected(addr, key);
        let source = self.addrs.source(addr).unwrap_or(PeerSource::Manual);
        let conn = PeerConn::outgoing(now, self.peer_setup(addr));
        let peer = self.new_peer(now, addr, source, true, conn);
        self.peers.insert(key, peer);
        if self.paused {
            self.disconnect(now, key, DisconnectReason::Paused);
        }
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

    /// A peer connected to us; the runtime read its handshake (for our infohash). The returned
    /// key may already be named in an `Output::Disconnect` (banned, too many peers, paused).
    pub fn handle_incoming(
        &mut self,
        now: Instant,
        addr: SocketAddr,
        theirs: Handshake,
    ) -> PeerKey {
        let key = self.new_key();
        let refusal = if self.addrs.is_banned(addr, Some(theirs.peer_id)) {
            Some(DisconnectReason::Banned)
        } else if self.paused {
            Some(DisconnectReason::Paused)
        } else if self.peers.len() + self.addrs.connecting() >= self.config.max_peers {
            Some(DisconnectReason::TooManyPeers)
        } else {
            None
        };
        if let Some(reason) = refusal {
            self.outputs
                .push_back(Output::Disconnect { peer: key, reason });
            return key;
        }
        match PeerConn::incoming(now, self.peer_setup(addr), theirs) {
            Ok(conn) => {
                let peer = self.new_peer(now, addr, PeerSource::Incoming, false, conn);
                self.peers.insert(key, peer);
                self.drain_events(now, key);
                self.fill_requests(now, key);
            }
            Err(error) => {
                let reason = DisconnectReason::Protocol(error);
                self.outputs
                    .push_back(Output::Disconnect { peer: key, reason });
            }
        }
        self.flush();
        key
    }

    /// Bytes read from a peer's socket.
    pub fn handle_peer_data(&mut self, now: Instant, peer: PeerKey, data: &[u8]) {
        self.handle_peer_bytes(now, peer, Bytes::copy_from_slice(data));
    }

    /// [`Torrent::handle_peer_data`] for bytes already held as [`Bytes`]: block data is handed
    /// on as slices of them, without a copy (see [`PeerConn::handle_read_bytes`]).
    pub fn handle_peer_bytes(&mut self, now: Instant, peer: PeerKey, data: Bytes) {
        let Some(state) = self.peers.get_mut(&peer) else {
            return;
        };
        let result = state.conn.handle_read_bytes(now, data);
        self.drain_events(now, peer);
        if let Err(error) = result {
            self.disconnect(now, peer, DisconnectReason::Protocol(error));
        } else {
            self.fill_requests(now, peer);
        }
        self.flush();
    }

    /// The peer's socket closed (or failed).
    pub fn handle_peer_closed(&mut self, now: Instant, peer: PeerKey) {
        if self.remove_peer(now, peer).is_some() {
            self.connect_more(now);
            self.fill_all(now);
            self.flush();
        }
    }

    /// The runtime's socket for `peer` took `bytes` of what [`Output::Transmit`] handed out:
    /// room for the next blocks we serve it (see `serve.rs`). A runtime that never reports
    /// this serves each peer no more than [`crate::peer::PeerConfig::upload_buffer_bytes`].
    pub fn handle_peer_sent(&mut self, _now: Instant, peer: PeerKey, bytes: u64) {
        if let Some(state) = self.peers.get_mut(&peer) {
            state.serve.sent(bytes);
            self.serve_more(peer);
        }
    }

    /// A disk request finished.
    pub fn handle_disk(&mut self, now: Instant, done: DiskDone) {
        match done {
            DiskDone::Written { block, result } => self.on_written(now, block, result),
            DiskDone::Hashed { piece, result } => self.on_hashed(now, piece, result),
            DiskDone::Read {
                peer,
                block,
                result,
            } => self.on_read(now, peer, block, result),
        }
        self.fill_all(now);
        self.flush();
    }

    /// Time-outs: connection keep-alives and inactivity, request time-outs, choker rounds,
    /// reconnects.
    pub fn handle_timeout(&mut self, now: Instant) {
        let keys: Vec<PeerKey> = self.peers.keys().copied().collect();
        for key in keys {
            let Some(state) = self.peers.get_mut(&key) else {
                continue;
            };
            let result = state.conn.handle_timeout(now);
            self.drain_events(now, key);
            if let Err(error) = result {
                self.disconnect(now, key, DisconnectReason::Protocol(error));
            }
        }
        self.expire_requests(now);
        self.choke_round_if_due(now);
        if now >= self.next_pex {
            self.pex_round(now);
        }
        self.connect_more(now);
        self.fill_all(now);
        self.flush();
    }

    /// The next thing to do for the runtime.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// When [`Torrent::handle_timeout`] must be called next.
    /// With no peers there is nothing to choke: an idle torrent sets no choker deadline, so a
    /// daemon with many idle torrents does not wake for them.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut next = if self.peers.is_empty() {
            None
        } else {
            self.choker.poll_timeout()
        };
        let mut earliest = |t: Option<Instant>| {
            if let Some(t) = t {
                next = Some(next.map_or(t, |n| n.min(t)));
            }
        };
        for peer in self.peers.values() {
            earliest(peer.conn.poll_timeout());
            earliest(peer.pipeline.poll_timeout());
        }
        if self.can_connect_more() {
            earliest(self.addrs.next_retry());
        }
        if !self.private && !self.peers.is_empty() {
            earliest(Some(self.next_pex));
        }
        next
    }

    /// Stops all transfers: every peer is dropped and no connection is made until
    /// [`Torrent::resume`]. Verified pieces stay verified.
    pub fn pause(&mut self, now: Instant) {
        self.paused = true;
        let keys: Vec<PeerKey> = self.peers.keys().copied().collect();
        for key in keys {
            self.disconnect(now, key, DisconnectReason::Paused);
        }
    }

    /// Undoes [`Torrent::pause`].
    pub fn resume(&mut self, now: Instant) {
        self.paused = false;
        self.connect_more(now);
    }

    /// Per-piece priorities from per-file ones (see [`crate::picker::piece_priorities`]).
    pub fn set_file_priorities(&mut self, now: Instant, files: &[FileSpan]) {
        self.picker.set_file_priorities(files);
        self.after_priority_change(now);
    }

    pub fn set_piece_priority(&mut self, now: Instant, piece: PieceIndex, priority: Priority) {
        self.picker.set_piece_priority(piece, priority);
        self.after_priority_change(now);
    }

    /// Download pieces in order (for streaming) instead of rarest first.
    pub fn set_sequential(&mut self, sequential: bool) {
        self.picker.set_sequential(sequential);
    }

    fn after_priority_change(&mut self, now: Instant) {
        self.complete_announced = self.picker.is_complete();
        let keys: Vec<PeerKey> = self.peers.keys().copied().collect();
        for key in keys {
            self.update_interest(now, key);
        }
        self.fill_all(now);
        self.flush();
    }

    /// Figures for the UI, the tracker and tests.
    pub fn stats(&self, now: Instant) -> TorrentStats {
        let mut downloaded = self.downloaded_by_gone;
        let mut uploaded = self.uploaded_by_gone;
        let mut peers = Vec::with_capacity(self.peers.len());
        for (&key, peer) in &self.peers {
            let info = peer.info(now, key);
            downloaded += info.downloaded;
            uploaded += info.uploaded;
            peers.push(info);
        }
        let download_rate = peers.iter().map(|p| p.download_rate).sum();
        let upload_rate = peers.iter().map(|p| p.upload_rate).sum();
        TorrentStats {
            bytes: self.picker.byte_counts(),
            downloaded,
            uploaded,
            wasted: self.wasted,
            download_rate,
            upload_rate,
            complete: self.picker.is_complete(),
            paused: self.paused,
            known_addresses: self.addrs.known(),
            connecting: self.addrs.connecting(),
            banned: self.addrs.banned(),
            hash_failures: self.hash_failures,
            pex_ignored: self.pex_ignored,
            peers,
        }
    }

    fn new_key(&mut self) -> PeerKey {
        self.next_key += 1;
        PeerKey(self.next_key)
    }

    fn new_peer(
        &self,
        now: Instant,
        addr: SocketAddr,
        source: PeerSource,
        outgoing: bool,
        conn: PeerConn,
    ) -> Peer {
        Peer {
            addr,
            source,
            outgoing,
            connected_at: now,
            conn,
            pipeline: RequestPipeline::new(now, self.config.pipeline),
            upload: RateEstimator::new(now, self.config.pipeline.rate_window),
            serve: serve::ServeQueue::default(),
            ext: ext::PeerExtensions::new(now, self.metadata_allowance_cap()),
        }
    }

    fn peer_setup(&self, addr: SocketAddr) -> PeerSetup {
        let mut reserved = Reserved::shoal();
        if self.private {
            let (byte, bit) = Reserved::DHT;
            reserved.0[byte] &= !bit;
        }
        PeerSetup {
            info_hash: self.info_hash,
            our_peer_id: self.our_peer_id,
            geometry: Some(self.geometry),
            our_pieces: self.picker.have().clone(),
            extended_handshake: Some(self.extended_handshake_for(addr)),
            reserved,
            config: self.config.peer.clone(),
        }
    }

    /// Moves every connection's pending bytes into `Transmit` outputs, in order: served blocks
    /// go out as their own outputs, the buffers the disk read filled, without a copy.
    fn flush(&mut self) {
        for (&key, peer) in &mut self.peers {
            Self::flush_one(&mut self.outputs, key, peer);
        }
    }

    /// [`Torrent::flush`] for one peer, counting what it is handed as held for it.
    fn flush_one(outputs: &mut VecDeque<Output>, key: PeerKey, peer: &mut Peer) {
        while let Some(data) = peer.conn.poll_transmit_chunk() {
            peer.serve.transmitted(data.len());
            outputs.push_back(Output::Transmit { peer: key, data });
        }
    }

    fn can_connect_more(&self) -> bool {
        !self.paused
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
            self.outputs.push_back(Output::Connect(addr));
        }
    }
}

impl Peer {
    fn info(&self, now: Instant, key: PeerKey) -> PeerInfo {
        let stats = self.conn.stats();
        PeerInfo {
            key,
            addr: self.addr,
            peer_id: self.conn.their_peer_id(),
            source: self.source,
            am_choking: self.conn.am_choking(),
            am_interested: self.conn.am_interested(),
            peer_choking: self.conn.peer_choking(),
            peer_interested: self.conn.peer_interested(),
            snubbed: self.pipeline.is_snubbed(),
            pieces: self.conn.their_pieces().count_ones(),
            requests_in_flight: self.pipeline.outstanding_len(),
            downloaded: stats.downloaded_payload,
            uploaded: stats.uploaded_payload,
            download_rate: self.pipeline.down_rate(now),
            upload_rate: self.upload.rate(now),
            client: self.ext.client.clone(),
        }
    }
}

#[cfg(test)]
mod tests;

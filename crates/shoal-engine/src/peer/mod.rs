//! One peer connection's protocol state, sans-IO and stream-shaped like rustls: bytes in, bytes
//! out, typed events up to the torrent engine.
//!
//! A [`PeerConn`] speaks the BEP 3 peer wire protocol with the fast extension (BEP 6) and the
//! extension protocol handshake (BEP 10). It owns the handshake, the framing, keep-alives and
//! time-outs, the four choke/interest flags, the peer's piece set, the requests we sent and the
//! requests the peer sent us. It makes no policy decision: *what* to request, whom to unchoke and
//! which pieces we have are decided by [`crate::torrent::Torrent`] and come in as
//! [`PeerCommand`]s.
//!
//! Guarantees: every index, offset and length from the peer is checked against the torrent's
//! [`Geometry`] before it becomes a [`PieceIndex`] or [`BlockRef`]; every protocol violation is a
//! typed [`PeerError`] after which the connection is dead; a block is only reported
//! ([`PeerEvent::Block`]) when we requested it; a block is only sent when the peer requested it,
//! we are not choking it (or the piece is allowed-fast) and our piece set (fed by
//! [`PeerCommand::Have`], which the engine sends only for verified pieces) contains it; the
//! queue of the peer's pending requests is bounded by [`PeerConfig::max_queued_requests`].
//!
//! # Call order
//! 1. Create with [`PeerConn::outgoing`] (we connected; our handshake is queued first) or
//!    [`PeerConn::incoming`] (the runtime already read the peer's handshake to route it).
//! 2. Feed every read with [`PeerConn::handle_read`], commands with
//!    [`PeerConn::handle_command`], and call [`PeerConn::handle_timeout`] when the time from
//!    [`PeerConn::poll_timeout`] has come.
//! 3. After each of those, drain [`PeerConn::poll_event`] until `None`, then
//!    [`PeerConn::poll_transmit`] and write what it gave to the socket.
//! 4. On `Err(PeerError)` from a `handle_*` call, drain the events (they are all valid), then
//!    drop the connection; later calls return [`PeerError::Closed`].
//!
//! # Metadata-only connections
//! For a magnet link the torrent's geometry is not known yet: [`PeerSetup::geometry`] is `None`.
//! Such a connection does the handshakes and carries BEP 10 messages; the peer's piece set,
//! `have`, `suggest` and `allowed fast` are accepted (a bitfield only checked for being first and
//! within the frame cap) and ignored, its requests are ignored (we have nothing), and a `piece`
//! counts as unrequested. We send `have none` (fast) or nothing as our piece set.

use std::collections::{BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use shoal_proto::wire::ut_metadata::MAX_METADATA_SIZE;
use shoal_proto::wire::{Handshake, Message, MessageDecoder, Reserved, WireError};
use shoal_proto::{BlockRef, Geometry, InfoHash, PeerId, PieceIndex};

use crate::bitfield::{Bitfield, BitfieldError};

/// Tunables of one connection. `Default` gives the values mature clients use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerConfig {
    /// Send a keep-alive when nothing was sent for this long (BEP 3 peers drop after 2 min).
    pub keepalive_interval: Duration,
    /// An outgoing connection whose peer has not answered our handshake by then is dropped.
    pub handshake_timeout: Duration,
    /// Drop the peer when nothing at all (not even a keep-alive) arrived for this long.
    pub idle_timeout: Duration,
    /// How many of the peer's requests we hold at once, sent to it as our BEP 10 `reqq`; more
    /// are rejected (fast) or dropped. A held request costs a few bytes until its block is read
    /// (see `upload_buffer_bytes`). Default 2000 (libtorrent's own default): a peer keeps
    /// this many blocks in flight to us, so it bounds the upload rate to 32 MB per round trip.
    /// libtorrent leechers take our `reqq` as their queue depth and stall their own disk queue
    /// for tens of milliseconds at a time, so the depth sets the seeding rate on loopback: 250
    /// gave 187 MB/s, 1000 gave 330 and 2000 gave 349 (bench/README, session 5).
    pub max_queued_requests: usize,
    /// Bytes we hold for one peer at most, read from disk or waiting for its socket; its next
    /// requests are read only as its socket takes these. Default 2 MiB.
    pub upload_buffer_bytes: u64,
    /// How many `piece` messages for blocks we never asked for are tolerated before we drop.
    pub max_unrequested_blocks: u32,
}

impl Default for PeerConfig {
    fn default() -> Self {
        PeerConfig {
            keepalive_interval: Duration::from_secs(90),
            handshake_timeout: Duration::from_secs(20),
            idle_timeout: Duration::from_secs(150),
            max_queued_requests: 2000,
            upload_buffer_bytes: 2 * 1024 * 1024,
            max_unrequested_blocks: 8,
        }
    }
}

/// Everything a connection needs to know about its torrent and about us.
#[derive(Clone, Debug)]
pub struct PeerSetup {
    pub info_hash: InfoHash,
    pub our_peer_id: PeerId,
    /// The torrent's geometry; `None` while only its infohash is known (metadata-only connection,
    /// see the module documentation).
    pub geometry: Option<Geometry>,
    /// Our verified pieces at the time of connecting; later ones come as [`PeerCommand::Have`].
    pub our_pieces: Bitfield,
    /// Our BEP 10 extended handshake payload (bencoded), sent when the peer supports BEP 10.
    pub extended_handshake: Option<Bytes>,
    /// The reserved bits of our handshake ([`Reserved::shoal`], without DHT for a private
    /// torrent).
    pub reserved: Reserved,
    pub config: PeerConfig,
}

/// Why a connection must be dropped. Every variant names the offending values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PeerError {
    #[error("bad frame: {0}")]
    Wire(#[from] WireError),
    #[error("handshake for infohash {got}, expected {expected}")]
    WrongInfoHash { expected: InfoHash, got: InfoHash },
    #[error("connected to ourselves (peer id {peer_id:?})")]
    ConnectedToSelf { peer_id: PeerId },
    #[error("no handshake within {waited:?}")]
    HandshakeTimeout { waited: Duration },
    #[error("nothing received for {idle:?}")]
    Idle { idle: Duration },
    #[error("bad bitfield: {0}")]
    Bitfield(#[from] BitfieldError),
    #[error("a later bitfield / have all / have none takes back pieces the peer said it had")]
    SecondBitfield,
    #[error("{message} after other messages; it must come first")]
    BitfieldNotFirst { message: &'static str },
    #[error("fast-extension message {message} from a peer that did not negotiate BEP 6")]
    FastNotNegotiated { message: &'static str },
    #[error("{message} names piece {index}, but the torrent has {piece_count} pieces")]
    PieceIndexOutOfRange {
        message: &'static str,
        index: u32,
        piece_count: u32,
    },
    #[error("request for piece {index} offset {begin} length {length} is not a valid block")]
    InvalidRequest { index: u32, begin: u32, length: u32 },
    #[error("{count} piece messages for blocks we never requested")]
    TooManyUnrequestedBlocks { count: u32 },
    #[error("the connection is already closed")]
    Closed,
}

/// What the torrent engine tells a connection to do.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PeerCommand {
    Choke,
    Unchoke,
    Interested,
    NotInterested,
    /// We verified a piece: remember it and announce it.
    Have(PieceIndex),
    /// Ask for a block. Ignored (and reported as [`PeerEvent::RequestDropped`]) when the peer is
    /// choking us and the piece is not allowed-fast.
    Request(BlockRef),
    /// Withdraw a request (endgame, or the block came from someone else).
    Cancel(BlockRef),
    /// Answer one of the peer's requests with data read from disk. Sent only if the request is
    /// still pending, the length matches, and we may serve it; otherwise dropped.
    SendBlock {
        block: BlockRef,
        data: Bytes,
    },
    /// We cannot serve a pending request (disk error): reject it (fast) or forget it.
    RejectRequest(BlockRef),
    /// BEP 6: let the peer request this piece while choked.
    AllowFast(PieceIndex),
    /// A BEP 10 extension message with the peer's id for it.
    Extended {
        id: u8,
        payload: Bytes,
    },
}

/// What happened on the connection, for the torrent engine.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PeerEvent {
    /// Both handshakes are exchanged (for an incoming connection: right at creation).
    HandshakeDone {
        peer_id: PeerId,
        reserved: Reserved,
    },
    /// The peer's whole piece set, from `bitfield`, `have all` or `have none`.
    Bitfield(Bitfield),
    /// The peer gained a piece it did not have before (repeats are not reported).
    Have(PieceIndex),
    /// The peer choked us.
    Choked,
    /// The peer unchoked us.
    Unchoked,
    /// The peer is interested in our pieces.
    Interested,
    NotInterested,
    /// The peer asked for a block of a piece we have; it is queued, read it from disk and answer
    /// with [`PeerCommand::SendBlock`].
    Request(BlockRef),
    /// A block we requested arrived.
    Block {
        block: BlockRef,
        data: Bytes,
    },
    /// A request of ours will not be answered (reject, or a choke without the fast extension):
    /// ask someone else.
    RequestDropped(BlockRef),
    /// BEP 6 hints.
    Suggest(PieceIndex),
    AllowedFast(PieceIndex),
    /// BEP 10 extended handshake payload (bencoded, not yet decoded).
    ExtendedHandshake(Bytes),
    /// Another BEP 10 message, with the id we assigned.
    Extended {
        id: u8,
        payload: Bytes,
    },
    /// BEP 5: the peer's DHT port.
    DhtPort(u16),
}

/// Byte counters of one connection (payload = block data only).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PeerConnStats {
    pub downloaded_payload: u64,
    pub uploaded_payload: u64,
    /// Block bytes that arrived after we cancelled or gave up on them.
    pub wasted_payload: u64,
    pub unrequested_blocks: u32,
}

/// Which handshake step the connection waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    /// We sent our handshake and wait for the peer's.
    ExpectHandshake,
    /// Handshakes done; the peer may still send its bitfield / have all / have none.
    ExpectPieceSet,
    /// The piece set came (or another message made it too late for one).
    Established,
    Closed,
}

/// How many cancelled or choke-dropped requests we remember so that a late block for one of
/// them is not counted as unrequested.
const STALE_MEMORY: usize = 512;
/// How many allowed-fast pieces from a peer we remember.
const MAX_ALLOWED_FAST: usize = 64;

/// One peer connection. See the module documentation for the call order.
#[derive(Debug)]
pub struct PeerConn {
    setup: PeerSetup,
    stage: Stage,
    created: Instant,
    last_received: Instant,
    last_sent: Instant,
    inbuf: BytesMut,
    /// Bytes to send after everything in `outq`.
    outbuf: BytesMut,
    /// Bytes to send before `outbuf`, in order: framing flushed from `outbuf` and served
    /// blocks' data as read from disk (not copied).
    outq: VecDeque<Bytes>,
    decoder: MessageDecoder,
    events: VecDeque<PeerEvent>,
    their_reserved: Reserved,
    their_id: Option<PeerId>,
    their_pieces: Bitfield,
    saw_piece_set: bool,
    am_choking: bool,
    am_interested: bool,
    peer_choking: bool,
    peer_interested: bool,
    our_requests: BTreeSet<BlockRef>,
    stale_requests: VecDeque<BlockRef>,
    their_requests: BTreeSet<BlockRef>,
    allowed_fast_for_us: BTreeSet<PieceIndex>,
    allowed_fast_for_them: BTreeSet<PieceIndex>,
    stats: PeerConnStats,
}

impl PeerConn {
    /// We connected: our handshake is queued; the peer's is awaited.
    pub fn outgoing(now: Instant, setup: PeerSetup) -> Self {
        let mut conn = Self::blank(now, setup);
        conn.queue_our_handshake(now);
        conn
    }

    /// The peer connected and the runtime already read its handshake: we answer with ours, our
    /// piece set and our extended handshake.
    pub fn incoming(now: Instant, setup: PeerSetup, theirs: Handshake) -> Result<Self, PeerError> {
        let mut conn = Self::blank(now, setup);
        conn.queue_our_handshake(now);
        conn.accept_handshake(now, theirs)?;
        Ok(conn)
    }

    fn blank(now: Instant, setup: PeerSetup) -> Self {
        let piece_count = setup.geometry.map_or(0, |g| g.piece_count());
        let max_frame = match setup.geometry {
            Some(_) => shoal_proto::wire::max_frame_len_for(piece_count),
            // Room for the bitfield of the largest torrent whose metadata we would fetch.
            None => shoal_proto::wire::max_frame_len_for(MAX_METADATA_SIZE / 20),
        };
        PeerConn {
            decoder: MessageDecoder::new(max_frame),
            their_pieces: Bitfield::new(piece_count),
            setup,
            stage: Stage::ExpectHandshake,
            created: now,
            last_received: now,
            last_sent: now,
            inbuf: BytesMut::new(),
            outbuf: BytesMut::new(),
            outq: VecDeque::new(),
            events: VecDeque::new(),
            their_reserved: Reserved::default(),
            their_id: None,
            saw_piece_set: false,
            am_choking: true,
            am_interested: false,
            peer_choking: true,
            peer_interested: false,
            our_requests: BTreeSet::new(),
            stale_requests: VecDeque::new(),
            their_requests: BTreeSet::new(),
            allowed_fast_for_us: BTreeSet::new(),
            allowed_fast_for_them: BTreeSet::new(),
            stats: PeerConnStats::default(),
        }
    }

    fn queue_our_handshake(&mut self, now: Instant) {
        let ours = Handshake {
            reserved: self.setup.reserved,
            info_hash: self.setup.info_hash,
            peer_id: self.setup.our_peer_id,
        };
        self.outbuf.extend_from_slice(&ours.encode());
        self.last_sent = now;
    }

    fn accept_handshake(&mut self, now: Instant, theirs: Handshake) -> Result<(), PeerError> {
        if theirs.info_hash != self.setup.info_hash {
            return Err(self.fail(PeerError::WrongInfoHash {
                expected: self.setup.info_hash,
                got: theirs.info_hash,
            }));
        }
        if theirs.peer_id == self.setup.our_peer_id {
            return Err(self.fail(PeerError::ConnectedToSelf {
                peer_id: theirs.peer_id,
            }));
        }
        self.their_reserved = theirs.reserved;
        self.their_id = Some(theirs.peer_id);
        self.stage = Stage::ExpectPieceSet;
        self.events.push_back(PeerEvent::HandshakeDone {
            peer_id: theirs.peer_id,
            reserved: theirs.reserved,
        });
        self.queue_our_piece_set(now);
        if self.supports_extensions() {
            if let Some(payload) = self.setup.extended_handshake.clone() {
                self.send(now, &Message::Extended { id: 0, payload });
            }
        }
        Ok(())
    }

    /// BEP 6: `have all` / `have none` when both sides speak fast; else a bitfield (omitted when
    /// we have nothing, as BEP 3 allows).
    fn queue_our_piece_set(&mut self, now: Instant) {
        let ours = &self.setup.our_pieces;
        let message = if self.setup.geometry.is_none() {
            if !self.supports_fast() {
                return;
            }
            Message::HaveNone
        } else if self.supports_fast() && ours.is_full() {
            Message::HaveAll
        } else if self.supports_fast() && ours.has_none() {
            Message::HaveNone
        } else if ours.has_none() {
            return;
        } else {
            Message::Bitfield(ours.to_wire())
        };
        self.send(now, &message);
    }

    /// Feeds bytes read from the socket. All complete messages are processed; events queue up.
    pub fn handle_read(&mut self, now: Instant, input: &[u8]) -> Result<(), PeerError> {
        if self.stage == Stage::Closed {
            return Err(PeerError::Closed);
        }
        if !input.is_empty() {
            self.last_received = now;
        }
        self.inbuf.extend_from_slice(input);
        if self.stage == Stage::ExpectHandshake {
            let theirs = match Handshake::decode(&self.inbuf) {
                Ok(Some(theirs)) => theirs,
                Ok(None) => return Ok(()),
                Err(e) => return Err(self.fail(e.into())),
            };
            let _ = self.inbuf.split_to(Handshake::LEN);
            self.accept_handshake(now, theirs)?;
        }
        self.drain_inbuf(now)
    }

    /// [`PeerConn::handle_read`] for bytes the caller already holds as [`Bytes`]: after the
    /// handshake, whole messages are decoded where they lie (a block's data stays a slice of the
    /// read, never copied); only a message cut by the end of a read is gathered in the
    /// connection's own buffer, with just the bytes it is missing from the next read.
    pub fn handle_read_bytes(&mut self, now: Instant, mut input: Bytes) -> Result<(), PeerError> {
        if self.stage == Stage::ExpectHandshake || self.stage == Stage::Closed {
            return self.handle_read(now, &input);
        }
        if !input.is_empty() {
            self.last_received = now;
        }
        while !self.inbuf.is_empty() && !input.is_empty() {
            let missing = match self.decoder.missing(&self.inbuf) {
                Ok(missing) => missing.max(1),
                Err(e) => return Err(self.fail(e.into())),
            };
            let head = input.split_to(missing.min(input.len()));
            self.inbuf.extend_from_slice(&head);
            self.drain_inbuf(now)?;
        }
        loop {
            let message = match self.decoder.decode_bytes(&mut input) {
                Ok(Some(message)) => message,
                Ok(None) => break,
                Err(e) => return Err(self.fail(e.into())),
            };
            if let Err(e) = self.handle_message(now, message) {
                return Err(self.fail(e));
            }
        }
        self.inbuf.extend_from_slice(&input);
        Ok(())
    }

    /// Handles every whole message in the read buffer.
    fn drain_inbuf(&mut self, now: Instant) -> Result<(), PeerError> {
        loop {
            let message = match self.decoder.decode(&mut self.inbuf) {
                Ok(Some(message)) => message,
                Ok(None) => return Ok(()),
                Err(e) => return Err(self.fail(e.into())),
            };
            if let Err(e) = self.handle_message(now, message) {
                return Err(self.fail(e));
            }
        }
    }

    fn geometry_piece_count(&self) -> u32 {
        self.setup.geometry.map_or(0, |g| g.piece_count())
    }

    fn checked_block(&self, index: u32, begin: u32, length: u32) -> Option<BlockRef> {
        self.setup
            .geometry
            .and_then(|g| g.checked_block(index, begin, length))
    }

    fn fail(&mut self, error: PeerError) -> PeerError {
        self.stage = Stage::Closed;
        self.inbuf.clear();
        error
    }

    fn handle_message(&mut self, now: Instant, message: Message) -> Result<(), PeerError> {
        let piece_set_expected = self.stage == Stage::ExpectPieceSet;
        match message {
            Message::Bitfield(_) | Message::HaveAll | Message::HaveNone => {}
            // Extension messages may come before the piece set (some clients do that).
            Message::KeepAlive | Message::Extended { .. } | Message::Port(_) => {}
            _ => self.stage = Stage::Established,
        }
        let message = if self.setup.geometry.is_none() {
            match self.metadata_only_message(message, piece_set_expected)? {
                Some(message) => message,
                None => return Ok(()),
            }
        } else {
            message
        };
        match message {
            Message::KeepAlive | Message::Unknown { .. } => {}
            Message::Choke => self.on_choked(),
            Message::Unchoke => {
                if self.peer_choking {
                    self.peer_choking = false;
                    self.events.push_back(PeerEvent::Unchoked);
                }
            }
            Message::Interested => {
                self.peer_interested = true;
                self.events.push_back(PeerEvent::Interested);
            }
            Message::NotInterested => {
                self.peer_interested = false;
                self.events.push_back(PeerEvent::NotInterested);
            }
            Message::Have { index } => {
                let piece = self.piece_in_range("have", index)?;
                if self.their_pieces.set(piece) {
                    self.events.push_back(PeerEvent::Have(piece));
                }
            }
            Message::Bitfield(bytes) => {
                let bits = Bitfield::from_wire(&bytes, self.geometry_piece_count())?;
                if self.saw_piece_set {
                    return self.merge_later_piece_set(bits);
                }
                self.expect_piece_set("bitfield", piece_set_expected)?;
                self.set_their_pieces(bits);
            }
            Message::HaveAll | Message::HaveNone => {
                let name = if message == Message::HaveAll {
                    "have all"
                } else {
                    "have none"
                };
                self.require_fast(name)?;
                let count = self.geometry_piece_count();
                let bits = if message == Message::HaveAll {
                    Bitfield::full(count)
                } else {
                    Bitfield::new(count)
                };
                if self.saw_piece_set {
                    return self.merge_later_piece_set(bits);
                }
                self.expect_piece_set(name, piece_set_expected)?;
                self.set_their_pieces(bits);
            }
            Message::Request {
                index,
                begin,
                length,
            } => self.on_request(now, index, begin, length)?,
            Message::Cancel {
                index,
                begin,
                length,
            } => {
                if let Some(block) = self.checked_block(index, begin, length) {
                    self.their_requests.remove(&block);
                }
            }
            Message::Piece { index, begin, data } => self.on_piece(index, begin, data)?,
            Message::Reject {
                index,
                begin,
                length,
            } => {
                self.require_fast("reject")?;
                if let Some(block) = self.checked_block(index, begin, length) {
                    if self.our_requests.remove(&block) {
                        self.remember_stale(block);
                        self.events.push_back(PeerEvent::RequestDropped(block));
                    }
                }
            }
            Message::Suggest { index } => {
                self.require_fast("suggest")?;
                let piece = self.piece_in_range("suggest", index)?;
                self.events.push_back(PeerEvent::Suggest(piece));
            }
            Message::AllowedFast { index } => {
                self.require_fast("allowed fast")?;
                let piece = self.piece_in_range("allowed fast", index)?;
                if self.allowed_fast_for_us.len() < MAX_ALLOWED_FAST
                    && self.allowed_fast_for_us.insert(piece)
                {
                    self.events.push_back(PeerEvent::AllowedFast(piece));
                }
            }
            Message::Port(port) => self.events.push_back(PeerEvent::DhtPort(port)),
            Message::Extended { id: 0, payload } => {
                self.events.push_back(PeerEvent::ExtendedHandshake(payload));
            }
            Message::Extended { id, payload } => {
                self.events.push_back(PeerEvent::Extended { id, payload });
            }
        }
        Ok(())
    }

    /// A bitfield / have all / have none after the first piece set. Some clients (aria2 1.36)
    /// announce newly finished pieces this way instead of with `have`s, so a later piece set
    /// that only adds pieces is taken as a batch of `have`s. One that takes pieces back cannot
    /// be honest (a peer never loses verified pieces) and is a protocol error.
    fn merge_later_piece_set(&mut self, bits: Bitfield) -> Result<(), PeerError> {
        let takes_back = self.their_pieces.iter_ones().any(|i| !bits.get_index(i));
        if takes_back {
            return Err(PeerError::SecondBitfield);
        }
        for index in bits.iter_ones() {
            if self.their_pieces.set_index(index) {
                if let Some(piece) = self.setup.geometry.and_then(|g| g.piece(index)) {
                    self.events.push_back(PeerEvent::Have(piece));
                }
            }
        }
        Ok(())
    }

    fn expect_piece_set(&self, message: &'static str, expected: bool) -> Result<(), PeerError> {
        if self.saw_piece_set {
            Err(PeerError::SecondBitfield)
        } else if expected {
            Ok(())
        } else {
            Err(PeerError::BitfieldNotFirst { message })
        }
    }

    fn set_their_pieces(&mut self, bits: Bitfield) {
        self.their_pieces = bits.clone();
        self.saw_piece_set = true;
        self.stage = Stage::Established;
        self.events.push_back(PeerEvent::Bitfield(bits));
    }

    fn require_fast(&self, message: &'static str) -> Result<(), PeerError> {
        if self.supports_fast() {
            Ok(())
        } else {
            Err(PeerError::FastNotNegotiated { message })
        }
    }

    fn piece_in_range(&self, message: &'static str, index: u32) -> Result<PieceIndex, PeerError> {
        let piece_count = self.geometry_piece_count();
        self.setup
            .geometry
            .and_then(|g| g.piece(index))
            .ok_or(PeerError::PieceIndexOutOfRange {
                message,
                index,
                piece_count,
            })
    }

    fn on_choked(&mut self) {
        if self.peer_choking {
            return;
        }
        self.peer_choking = true;
        self.events.push_back(PeerEvent::Choked);
        if self.supports_fast() {
            // BEP 6: requests stay pending until the peer rejects or serves them.
            return;
        }
        for block in std::mem::take(&mut self.our_requests) {
            self.remember_stale(block);
            self.events.push_back(PeerEvent::RequestDropped(block));
        }
    }

    fn on_request(
        &mut self,
        now: Instant,
        index: u32,
        begin: u32,
        length: u32,
    ) -> Result<(), PeerError> {
        let block = self
            .checked_block(index, begin, length)
            .ok_or(PeerError::InvalidRequest {
                index,
                begin,
                length,
            })?;
        let may_serve = self.setup.our_pieces.get(block.piece())
            && (!self.am_choking || self.allowed_fast_for_them.contains(&block.piece()))
            && self.their_requests.len() < self.setup.config.max_queued_requests;
        if !may_serve {
            self.reject(now, block);
            return Ok(());
        }
        if self.their_requests.insert(block) {
            self.events.push_back(PeerEvent::Request(block));
        }
        Ok(())
    }

    fn on_piece(&mut self, index: u32, begin: u32, data: Bytes) -> Result<(), PeerError> {
        let len = u32::try_from(data.len()).unwrap_or(u32::MAX);
        let block = self.checked_block(index, begin, len);
        if let Some(block) = block.filter(|b| self.our_requests.remove(b)) {
            self.stats.downloaded_payload += u64::from(len);
            self.events.push_back(PeerEvent::Block { block, data });
            return Ok(());
        }
        if let Some(position) = block.and_then(|b| self.stale_requests.iter().position(|s| *s == b))
        {
            self.stale_requests.remove(position);
            self.stats.wasted_payload += u64::from(len);
            return Ok(());
        }
        self.stats.unrequested_blocks += 1;
        let count = self.stats.unrequested_blocks;
        if count > self.setup.config.max_unrequested_blocks {
            return Err(PeerError::TooManyUnrequestedBlocks { count });
        }
        Ok(())
    }

    fn remember_stale(&mut self, block: BlockRef) {
        if self.stale_requests.len() == STALE_MEMORY {
            self.stale_requests.pop_front();
        }
        self.stale_requests.push_back(block);
    }

    /// Rejects (fast) or silently forgets one of the peer's requests.
    fn reject(&mut self, now: Instant, block: BlockRef) {
        self.their_requests.remove(&block);
        if self.supports_fast() {
            let (index, begin, length) = (block.piece().get(), block.offset(), block.len());
            self.send(
                now,
                &Message::Reject {
                    index,
                    begin,
                    length,
                },
            );
        }
    }

    fn send(&mut self, now: Instant, message: &Message) {
        message.encode(&mut self.outbuf);
        self.last_sent = now;
    }

    /// Time-outs: the handshake, inactivity, and keep-alives to send.
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), PeerError> {
        let config = &self.setup.config;
        match self.stage {
            Stage::Closed => return Err(PeerError::Closed),
            Stage::ExpectHandshake => {
                let waited = now.saturating_duration_since(self.created);
                if waited >= config.handshake_timeout {
                    return Err(self.fail(PeerError::HandshakeTimeout { waited }));
                }
                return Ok(());
            }
            Stage::ExpectPieceSet | Stage::Established => {}
        }
        let idle = now.saturating_duration_since(self.last_received);
        if idle >= config.idle_timeout {
            return Err(self.fail(PeerError::Idle { idle }));
        }
        if now.saturating_duration_since(self.last_sent) >= config.keepalive_interval {
            self.send(now, &Message::KeepAlive);
        }
        Ok(())
    }

    /// Moves the bytes to send into `out`; true when there were any. Into an empty `out`,
    /// with no served block queued, they move without a copy (the buffer changes hands).
    pub fn poll_transmit(&mut self, out: &mut BytesMut) -> bool {
        if self.outbuf.is_empty() && self.outq.is_empty() {
            return false;
        }
        for chunk in self.outq.drain(..) {
            out.extend_from_slice(&chunk);
        }
        if out.is_empty() {
            *out = self.outbuf.split();
        } else {
            out.extend_from_slice(&self.outbuf);
            self.outbuf.clear();
        }
        true
    }

    /// The next run of bytes to send, in order, or `None`: [`PeerConn::poll_transmit`] without
    /// copying a served block's data (it comes back as the same buffer the disk read filled).
    pub fn poll_transmit_chunk(&mut self) -> Option<Bytes> {
        if let Some(chunk) = self.outq.pop_front() {
            return Some(chunk);
        }
        (!self.outbuf.is_empty()).then(|| self.outbuf.split().freeze())
    }

    /// Queues a `piece` message: its header after what is already queued, its data as is.
    fn send_piece(&mut self, now: Instant, index: u32, begin: u32, data: Bytes) {
        let len = u32::try_from(data.len()).unwrap_or(u32::MAX);
        Message::encode_piece_header(index, begin, len, &mut self.outbuf);
        self.outq.push_back(self.outbuf.split().freeze());
        self.outq.push_back(data);
        self.last_sent = now;
    }

    /// The next event for the torrent engine.
    pub fn poll_event(&mut self) -> Option<PeerEvent> {
        self.events.pop_front()
    }

    /// When [`PeerConn::handle_timeout`] must be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let config = &self.setup.config;
        match self.stage {
            Stage::Closed => None,
            Stage::ExpectHandshake => Some(self.created + config.handshake_timeout),
            Stage::ExpectPieceSet | Stage::Established => Some(
                (self.last_received + config.idle_timeout)
                    .min(self.last_sent + config.keepalive_interval),
            ),
        }
    }

    /// Handshakes exchanged and not closed.
    pub fn is_established(&self) -> bool {
        matches!(self.stage, Stage::ExpectPieceSet | Stage::Established)
    }
    pub fn is_closed(&self) -> bool {
        self.stage == Stage::Closed
    }
    /// Both sides set the BEP 6 bit.
    pub fn supports_fast(&self) -> bool {
        self.their_reserved.has(Reserved::FAST)
    }
    /// Both sides set the BEP 10 bit.
    pub fn supports_extensions(&self) -> bool {
        self.their_reserved.has(Reserved::EXTENSION_PROTOCOL)
    }
    pub fn their_peer_id(&self) -> Option<PeerId> {
        self.their_id
    }
    pub fn their_pieces(&self) -> &Bitfield {
        &self.their_pieces
    }
    pub fn am_choking(&self) -> bool {
        self.am_choking
    }
    pub fn am_interested(&self) -> bool {
        self.am_interested
    }
    pub fn peer_choking(&self) -> bool {
        self.peer_choking
    }
    pub fn peer_interested(&self) -> bool {
        self.peer_interested
    }
    /// Pieces the peer lets us request while it chokes us (BEP 6 `allowed fast`).
    pub fn allowed_fast_for_us(&self) -> impl Iterator<Item = PieceIndex> + '_ {
        self.allowed_fast_for_us.iter().copied()
    }
    /// Whether we told the peer it may request `piece` while choked.
    pub fn is_allowed_fast_for_them(&self, piece: PieceIndex) -> bool {
        self.allowed_fast_for_them.contains(&piece)
    }
    /// Whether a request for a block of `piece` would be sent now.
    pub fn can_request(&self, piece: PieceIndex) -> bool {
        self.is_established()
            && self.their_pieces.get(piece)
            && (!self.peer_choking || self.allowed_fast_for_us.contains(&piece))
    }
    /// Our requests the peer has not answered yet.
    pub fn outstanding_requests(&self) -> impl Iterator<Item = BlockRef> + '_ {
        self.our_requests.iter().copied()
    }
    pub fn outstanding_request_count(&self) -> usize {
        self.our_requests.len()
    }
    /// True while the peer's request for `block` is one we hold (not cancelled, not dropped).
    pub fn holds_request(&self, block: BlockRef) -> bool {
        self.their_requests.contains(&block)
    }
    /// The peer's requests we hold.
    pub fn queued_request_count(&self) -> usize {
        self.their_requests.len()
    }
    pub fn stats(&self) -> PeerConnStats {
        self.stats
    }
}

mod commands;
#[cfg(test)]
pub(crate) mod script;
#[cfg(test)]
mod tests;

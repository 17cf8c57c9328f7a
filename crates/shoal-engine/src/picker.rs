//! The piece picker: which blocks to request from which peer, and what each block's fate is.
//!
//! Data flows in from the torrent engine: what peers have (`add_peer_bitfield`, `add_peer_have`,
//! `on_peer_gone`), what we asked and got (`pick`, `on_block_received`, `on_request_dropped`) and
//! what the disk said about whole pieces (`on_piece_verified`, `on_piece_failed`). Out come
//! [`BlockRef`]s to request, whether a piece is ready to hash, which other peers to `cancel`, and
//! who supplied a piece that failed its hash.
//!
//! Policy, in order: finish pieces already started (fewest open blocks first, so few pieces stay
//! half done); then start new pieces, highest priority first, rarest first among equals, except
//! that the first [`PickerConfig::random_first_pieces`] pieces are picked at random to have
//! something to share quickly, and sequential mode takes pieces in order. Endgame begins when
//! every wanted block some peer can give us is requested or received: then a block already in
//! flight may be requested again from up to [`PickerConfig::endgame_max_requesters`] peers.
//!
//! Guarantees: every block handed out is an aligned block of a piece we want, do not have, and
//! the asking peer has; outside endgame a block is never in flight to two peers; a block
//! requested from a peer stays owned by it until it arrives or `on_request_dropped` /
//! `on_peer_gone` gives it back. Only `on_piece_verified` makes a piece ours.

use std::cmp::Reverse;
use std::collections::{BTreeMap, HashMap, HashSet};

use rand::Rng;
use shoal_proto::{BlockRef, Geometry, PieceIndex, BLOCK_SIZE};

use crate::bitfield::Bitfield;
use crate::PeerKey;

/// A download priority: 0 means "do not download", 1 (lowest) to 7 (highest).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct Priority(u8);

/// A priority level above 7.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("priority {level} is out of range 0..=7")]
pub struct PriorityError {
    pub level: u8,
}

impl Priority {
    /// Do not download.
    pub const SKIP: Priority = Priority(0);
    pub const LOWEST: Priority = Priority(1);
    /// The default for every piece (the middle of the range, as in libtorrent).
    pub const NORMAL: Priority = Priority(4);
    pub const HIGHEST: Priority = Priority(7);

    /// The level, 0..=7.
    pub fn get(self) -> u8 {
        self.0
    }
}

impl TryFrom<u8> for Priority {
    type Error = PriorityError;
    fn try_from(level: u8) -> Result<Self, Self::Error> {
        if level <= 7 {
            Ok(Priority(level))
        } else {
            Err(PriorityError { level })
        }
    }
}

impl Default for Priority {
    fn default() -> Self {
        Priority::NORMAL
    }
}

/// One file's byte range in the torrent's stream and the priority the user gave it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct FileSpan {
    /// Offset of the file's first byte in the torrent's stream.
    pub offset: u64,
    pub len: u64,
    pub priority: Priority,
}

/// Per-piece priorities from per-file ones: a piece takes the highest priority of the files it
/// overlaps (so a piece shared by a wanted and a skipped file is downloaded). Zero-length files
/// touch no piece; pieces no file covers get [`Priority::SKIP`]; spans past the end are clipped.
pub fn piece_priorities(geometry: &Geometry, files: &[FileSpan]) -> Vec<Priority> {
    let mut out = vec![Priority::SKIP; geometry.piece_count() as usize];
    let piece_len = u64::from(geometry.piece_len());
    for file in files {
        let end = file
            .offset
            .saturating_add(file.len)
            .min(geometry.total_len());
        if file.len == 0 || file.offset >= end {
            continue;
        }
        let first = file.offset / piece_len;
        let last = (end - 1) / piece_len;
        for index in first..=last {
            if let Some(slot) = out.get_mut(index as usize) {
                *slot = (*slot).max(file.priority);
            }
        }
    }
    out
}

/// Tunables with documented defaults.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct PickerConfig {
    /// Until this many pieces are verified, new pieces are picked at random rather than rarest
    /// first: a rare piece is slow to get, and a random one gives us something to trade sooner.
    /// Default 4.
    pub random_first_pieces: u32,
    /// In endgame, how many peers may have the same block in flight at once. Default 3 (the
    /// original requester and two duplicates): enough to route around one slow peer without
    /// wasting much bandwidth.
    pub endgame_max_requesters: usize,
}

impl Default for PickerConfig {
    fn default() -> Self {
        PickerConfig {
            random_first_pieces: 4,
            endgame_max_requesters: 3,
        }
    }
}

/// Where a piece stands.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum PieceState {
    /// No block requested or received.
    NotStarted,
    /// Some blocks requested or received, some still open.
    Partial,
    /// Every block requested or received, some still in flight.
    AllRequested,
    /// Every block received; waiting for the disk to hash it.
    AwaitingHash,
    /// Hash checked: ours, counted, and served to others.
    Verified,
}

/// What a received block means.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum BlockOutcome {
    /// A block we needed: write it. When `piece_complete`, every block of the piece has arrived
    /// and the piece should be hashed once written. `cancel` lists the other peers that had this
    /// block in flight (endgame): send each a `cancel`.
    New {
        piece_complete: bool,
        cancel: Vec<PeerKey>,
    },
    /// We already have this block (or its whole piece): drop the data.
    Duplicate,
    /// A block nobody asked for: not aligned, or of a piece we never started. Drop the data.
    Unrequested,
}

/// The result of a piece failing its hash check.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct PieceFailure {
    pub piece: PieceIndex,
    /// Every peer that supplied at least one block of the piece, ascending.
    pub contributors: Vec<PeerKey>,
    /// Set when one peer supplied the whole piece: that peer sent bad data.
    pub sole_contributor: Option<PeerKey>,
}

/// Byte counts for the UI and the tracker.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct ByteCounts {
    /// The torrent's size.
    pub total: u64,
    /// Bytes in verified pieces.
    pub verified: u64,
    /// Bytes in pieces with a priority above 0.
    pub wanted: u64,
    /// Bytes in wanted pieces that are verified.
    pub wanted_verified: u64,
}

impl ByteCounts {
    /// Wanted bytes not verified yet: what the UI shows as "left".
    pub fn wanted_left(&self) -> u64 {
        self.wanted - self.wanted_verified
    }
    /// Bytes of the whole torrent not verified: the tracker's `left`.
    pub fn total_left(&self) -> u64 {
        self.total - self.verified
    }
}

/// One block of a started piece.
#[derive(Clone, Debug, Default)]
struct BlockSlot {
    /// Peers this block is in flight to (more than one only in endgame).
    requesters: Vec<PeerKey>,
    /// The peer that supplied it, once it arrived.
    received_from: Option<PeerKey>,
}

/// A piece with at least one block requested or received and not verified yet.
#[derive(Clone, Debug)]
struct StartedPiece {
    blocks: Vec<BlockSlot>,
    /// Blocks neither in flight nor received.
    open: u32,
    received: u32,
}

impl StartedPiece {
    fn new(block_count: u32) -> Self {
        StartedPiece {
            blocks: vec![BlockSlot::default(); block_count as usize],
            open: block_count,
            received: 0,
        }
    }
    fn is_untouched(&self) -> bool {
        self.received == 0 && self.open as usize == self.blocks.len()
    }
}

/// The piece picker of one torrent. See the module docs for the policy.
#[derive(Debug)]
pub struct Picker {
    geometry: Geometry,
    config: PickerConfig,
    have: Bitfield,
    priority: Vec<Priority>,
    /// Per piece, how many connected non-seed peers have it.
    availability: Vec<u32>,
    /// Peers counted as seeds (bitfield full or `have all`): they add to every piece at once.
    seed_peers: HashSet<PeerKey>,
    started: BTreeMap<u32, StartedPiece>,
    sequential: bool,
    /// Pieces with a priority above 0 that are not verified: kept in step by every method that
    /// changes a priority or verifies a piece, so `is_complete` is O(1).
    wanted_left: u32,
    /// Hash failures each peer contributed to.
    strikes: HashMap<PeerKey, u32>,
}

impl Picker {
    /// A picker for a torrent of which we have nothing yet, every piece at normal priority.
    pub fn new(geometry: Geometry, config: PickerConfig) -> Self {
        let count = geometry.piece_count() as usize;
        Picker {
            geometry,
            config,
            have: Bitfield::new(geometry.piece_count()),
            priority: vec![Priority::NORMAL; count],
            availability: vec![0; count],
            seed_peers: HashSet::new(),
            started: BTreeMap::new(),
            sequential: false,
            wanted_left: geometry.piece_count(),
            strikes: HashMap::new(),
        }
    }

    pub fn geometry(&self) -> &Geometry {
        &self.geometry
    }

    /// Our verified pieces: what we announce and serve.
    pub fn have(&self) -> &Bitfield {
        &self.have
    }

    // ----- priorities and modes -----

    pub fn set_sequential(&mut self, sequential: bool) {
        self.sequential = sequential;
    }

    pub fn is_sequential(&self) -> bool {
        self.sequential
    }

    pub fn set_piece_priority(&mut self, piece: PieceIndex, priority: Priority) {
        let have = self.have.get(piece);
        if let Some(slot) = self.priority.get_mut(piece.as_usize()) {
            match (*slot > Priority::SKIP, priority > Priority::SKIP) {
                (true, false) if !have => self.wanted_left -= 1,
                (false, true) if !have => self.wanted_left += 1,
                _ => {}
            }
            *slot = priority;
        }
    }

    pub fn piece_priority(&self, piece: PieceIndex) -> Priority {
        self.priority
            .get(piece.as_usize())
            .copied()
            .unwrap_or(Priority::SKIP)
    }

    /// Sets every piece's priority from per-file priorities (see [`piece_priorities`]). Blocks
    /// already in flight for pieces that become skipped are still accepted when they arrive.
    pub fn set_file_priorities(&mut self, files: &[FileSpan]) {
        self.priority = piece_priorities(&self.geometry, files);
        self.wanted_left = (0..self.geometry.piece_count())
            .filter(|&i| self.is_wanted_index(i))
            .count() as u32;
    }

    // ----- availability -----

    /// Counts a peer's `bitfield` (or `have all`, as a full bitfield). Call once per peer, then
    /// [`Picker::add_peer_have`] for its `have`s. A full bitfield makes the peer a seed, counted
    /// in O(1).
    pub fn add_peer_bitfield(&mut self, peer: PeerKey, bits: &Bitfield) {
        if bits.len() == self.geometry.piece_count() && bits.is_full() {
            self.seed_peers.insert(peer);
            return;
        }
        for index in bits.iter_ones() {
            if let Some(count) = self.availability.get_mut(index as usize) {
                *count += 1;
            }
        }
    }

    /// Counts one `have` of a peer (ignored for a peer already counted as a seed).
    pub fn add_peer_have(&mut self, peer: PeerKey, piece: PieceIndex) {
        if self.seed_peers.contains(&peer) {
            return;
        }
        if let Some(count) = self.availability.get_mut(piece.as_usize()) {
            *count += 1;
        }
    }

    /// How many connected peers have the piece.
    pub fn availability(&self, piece: PieceIndex) -> u32 {
        let own = self
            .availability
            .get(piece.as_usize())
            .copied()
            .unwrap_or(0);
        own + self.seed_peers.len() as u32
    }

    /// A peer disconnected: every block in flight to it goes back to the pool, and what it had
    /// (`had`, its last bitfield) stops counting. Returns how many requests were freed.
    pub fn on_peer_gone(&mut self, peer: PeerKey, had: &Bitfield) -> usize {
        if !self.seed_peers.remove(&peer) {
            for index in had.iter_ones() {
                if let Some(count) = self.availability.get_mut(index as usize) {
                    *count = count.saturating_sub(1);
                }
            }
        }
        self.strikes.remove(&peer);
        let mut freed = 0;
        for piece in self.started.values_mut() {
            for slot in &mut piece.blocks {
                if let Some(at) = slot.requesters.iter().position(|p| *p == peer) {
                    slot.requesters.swap_remove(at);
                    freed += 1;
                    if slot.requesters.is_empty() && slot.received_from.is_none() {
                        piece.open += 1;
                    }
                }
            }
        }
        self.started.retain(|_, piece| !piece.is_untouched());
        freed
    }

    // ----- queries -----

    /// A piece we want: priority above 0 and not verified.
    pub fn is_wanted(&self, piece: PieceIndex) -> bool {
        self.is_wanted_index(piece.get())
    }

    fn is_wanted_index(&self, index: u32) -> bool {
        !self.have.get_index(index)
            && self
                .priority
                .get(index as usize)
                .is_some_and(|p| *p > Priority::SKIP)
    }

    /// Whether a peer with `peer_has` has anything we want (send `interested` if so).
    pub fn is_interesting(&self, peer_has: &Bitfield) -> bool {
        peer_has
            .iter_ones()
            .any(|index| self.is_wanted_index(index))
    }

    /// Every wanted piece is verified.
    pub fn is_complete(&self) -> bool {
        self.wanted_left == 0
    }

    /// How many wanted pieces are not verified yet.
    pub fn wanted_pieces_left(&self) -> u32 {
        self.wanted_left
    }

    pub fn piece_state(&self, piece: PieceIndex) -> PieceState {
        if self.have.get(piece) {
            return PieceState::Verified;
        }
        match self.started.get(&piece.get()) {
            None => PieceState::NotStarted,
            Some(p) if p.received as usize == p.blocks.len() => PieceState::AwaitingHash,
            Some(p) if p.open == 0 => PieceState::AllRequested,
            Some(_) => PieceState::Partial,
        }
    }

    /// Peers that supplied blocks of a started piece, ascending (empty for others).
    pub fn contributors(&self, piece: PieceIndex) -> Vec<PeerKey> {
        let mut peers: Vec<PeerKey> = self
            .started
            .get(&piece.get())
            .map(|p| p.blocks.iter().filter_map(|b| b.received_from).collect())
            .unwrap_or_default();
        peers.sort_unstable();
        peers.dedup();
        peers
    }

    /// Hash failures this peer contributed to since it connected.
    pub fn strikes(&self, peer: PeerKey) -> u32 {
        self.strikes.get(&peer).copied().unwrap_or(0)
    }

    /// Blocks currently in flight to `peer`.
    pub fn in_flight(&self, peer: PeerKey) -> Vec<BlockRef> {
        let mut out = Vec::new();
        for (&index, piece) in &self.started {
            for (n, slot) in piece.blocks.iter().enumerate() {
                if slot.requesters.contains(&peer) {
                    out.extend(self.block_of(index, n));
                }
            }
        }
        out
    }

    /// Endgame: every wanted block that some connected peer has is requested or received.
    pub fn is_endgame(&self) -> bool {
        let seeds = !self.seed_peers.is_empty();
        // With a seed connected every wanted piece must be started: a cheap early answer.
        if seeds && (self.started.len() as u64) < u64::from(self.wanted_left) {
            return false;
        }
        let mut any_in_flight = false;
        for index in 0..self.geometry.piece_count() {
            if !self.is_wanted_index(index) {
                continue;
            }
            match self.started.get(&index) {
                Some(p) if p.open > 0 => return false,
                Some(p) => any_in_flight |= (p.received as usize) < p.blocks.len(),
                None if seeds || self.availability[index as usize] > 0 => return false,
                None => {}
            }
        }
        any_in_flight
    }

    pub fn byte_counts(&self) -> ByteCounts {
        let mut counts = ByteCounts {
            total: self.geometry.total_len(),
            ..ByteCounts::default()
        };
        for piece in self.geometry.pieces() {
            let size = u64::from(self.geometry.piece_size(piece));
            let have = self.have.get(piece);
            let wanted = self.piece_priority(piece) > Priority::SKIP;
            counts.verified += if have { size } else { 0 };
            counts.wanted += if wanted { size } else { 0 };
            counts.wanted_verified += if wanted && have { size } else { 0 };
        }
        counts
    }

    // ----- picking -----

    /// Up to `max_blocks` blocks to request from `peer` (whose pieces are `peer_has`), marked as
    /// in flight to it. Empty when the peer has nothing we can ask for.
    pub fn pick<R: Rng + ?Sized>(
        &mut self,
        peer_has: &Bitfield,
        peer: PeerKey,
        max_blocks: usize,
        rng: &mut R,
    ) -> Vec<BlockRef> {
        let mut out = Vec::new();
        if max_blocks == 0 {
            return out;
        }
        self.pick_from_started(peer_has, peer, max_blocks, &mut out);
        if out.len() < max_blocks {
            self.pick_new_pieces(peer_has, peer, max_blocks, rng, &mut out);
        }
        if out.len() < max_blocks && self.is_endgame() {
            self.pick_endgame(peer_has, peer, max_blocks, &mut out);
        }
        out
    }

    /// Open blocks of pieces already started: highest priority, then fewest open blocks.
    fn pick_from_started(
        &mut self,
        peer_has: &Bitfield,
        peer: PeerKey,
        max_blocks: usize,
        out: &mut Vec<BlockRef>,
    ) {
        let mut candidates: Vec<(Reverse<Priority>, u32, u32)> = self
            .started
            .iter()
            .filter(|(&index, p)| {
                p.open > 0 && peer_has.get_index(index) && self.is_wanted_index(index)
            })
            .map(|(&index, p)| {
                let order = if self.sequential { index } else { p.open };
                (Reverse(self.priority[index as usize]), order, index)
            })
            .collect();
        candidates.sort_unstable();
        for (_, _, index) in candidates {
            self.take_open_blocks(index, peer, max_blocks, out);
            if out.len() >= max_blocks {
                return;
            }
        }
    }

    /// Starts new pieces: highest priority; then in order (sequential), at random (the first few
    /// pieces) or rarest first with random tie-breaks.
    fn pick_new_pieces<R: Rng + ?Sized>(
        &mut self,
        peer_has: &Bitfield,
        peer: PeerKey,
        max_blocks: usize,
        rng: &mut R,
        out: &mut Vec<BlockRef>,
    ) {
        let random_first = self.have.count_ones() < self.config.random_first_pieces;
        let mut candidates: Vec<(Reverse<Priority>, u64, u32)> = Vec::new();
        for index in peer_has.iter_ones() {
            if !self.is_wanted_index(index) || self.started.contains_key(&index) {
                continue;
            }
            let order = if self.sequential {
                u64::from(index)
            } else if random_first {
                u64::from(rng.gen::<u32>())
            } else {
                let rarity = u64::from(self.availability.get(index as usize).copied().unwrap_or(0));
                (rarity << 32) | u64::from(rng.gen::<u32>())
            };
            candidates.push((Reverse(self.priority[index as usize]), order, index));
        }
        // Only the best few pieces are needed: partition, then sort the head (and the tail only
        // if the head did not fill the request).
        let blocks_per_piece = (self.geometry.piece_len() / BLOCK_SIZE).max(1) as usize;
        let head = ((max_blocks - out.len()).div_ceil(blocks_per_piece) + 1).min(candidates.len());
        if head < candidates.len() && head > 0 {
            candidates.select_nth_unstable(head - 1);
        }
        let (first, rest) = candidates.split_at_mut(head);
        for part in [first, rest] {
            part.sort_unstable();
            for &(_, _, index) in part.iter() {
                let Some(piece) = self.geometry.piece(index) else {
                    continue;
                };
                let block_count = self.geometry.block_count(piece);
                self.started.insert(index, StartedPiece::new(block_count));
                self.take_open_blocks(index, peer, max_blocks, out);
                if out.len() >= max_blocks {
                    return;
                }
            }
        }
    }

    /// Marks open blocks of a started piece as in flight to `peer`, in order, until `out` holds
    /// `max_blocks`.
    fn take_open_blocks(
        &mut self,
        index: u32,
        peer: PeerKey,
        max_blocks: usize,
        out: &mut Vec<BlockRef>,
    ) {
        let Some(piece) = self.geometry.piece(index) else {
            return;
        };
        let Some(started) = self.started.get_mut(&index) else {
            return;
        };
        for (n, slot) in started.blocks.iter_mut().enumerate() {
            if out.len() >= max_blocks || started.open == 0 {
                break;
            }
            if slot.received_from.is_some() || !slot.requesters.is_empty() {
                continue;
            }
            let Some(block) = self.geometry.block(piece, n as u32) else {
                continue;
            };
            slot.requesters.push(peer);
            started.open -= 1;
            out.push(block);
        }
    }

    /// Endgame: blocks in flight to other peers, fewest requesters first.
    fn pick_endgame(
        &mut self,
        peer_has: &Bitfield,
        peer: PeerKey,
        max_blocks: usize,
        out: &mut Vec<BlockRef>,
    ) {
        let max_requesters = self.config.endgame_max_requesters;
        let mut candidates: Vec<(usize, u32, u32)> = Vec::new();
        for (&index, piece) in &self.started {
            if !peer_has.get_index(index) || !self.is_wanted_index(index) {
                continue;
            }
            for (n, slot) in piece.blocks.iter().enumerate() {
                let requesters = slot.requesters.len();
                if slot.received_from.is_none()
                    && requesters > 0
                    && requesters < max_requesters
                    && !slot.requesters.contains(&peer)
                {
                    candidates.push((requesters, index, n as u32));
                }
            }
        }
        candidates.sort_unstable();
        for (_, index, n) in candidates {
            if out.len() >= max_blocks {
                return;
            }
            let Some(block) = self.block_of(index, n as usize) else {
                continue;
            };
            if let Some(slot) = self
                .started
                .get_mut(&index)
                .and_then(|p| p.blocks.get_mut(n as usize))
            {
                slot.requesters.push(peer);
                out.push(block);
            }
        }
    }

    fn block_of(&self, index: u32, n: usize) -> Option<BlockRef> {
        self.geometry
            .block(self.geometry.piece(index)?, u32::try_from(n).ok()?)
    }

    /// The slot number of an aligned block of the right length, if `block` is one.
    fn slot_of(&self, block: BlockRef) -> Option<usize> {
        let n = block.block_index();
        (self.geometry.block(block.piece(), n) == Some(block)).then_some(n as usize)
    }

    // ----- outcomes -----

    /// A block arrived from `from`. A block that was given back to the pool (timed out) and then
    /// arrives anyway is still accepted.
    pub fn on_block_received(&mut self, block: BlockRef, from: PeerKey) -> BlockOutcome {
        let Some(n) = self.slot_of(block) else {
            return BlockOutcome::Unrequested;
        };
        if self.have.get(block.piece()) {
            return BlockOutcome::Duplicate;
        }
        let Some(piece) = self.started.get_mut(&block.piece().get()) else {
            return BlockOutcome::Unrequested;
        };
        let Some(slot) = piece.blocks.get_mut(n) else {
            return BlockOutcome::Unrequested;
        };
        if slot.received_from.is_some() {
            return BlockOutcome::Duplicate;
        }
        if slot.requesters.is_empty() {
            piece.open -= 1;
        }
        let cancel: Vec<PeerKey> = slot.requesters.drain(..).filter(|p| *p != from).collect();
        slot.received_from = Some(from);
        piece.received += 1;
        BlockOutcome::New {
            piece_complete: piece.received as usize == piece.blocks.len(),
            cancel,
        }
    }

    /// A request to `peer` will not be answered (choked, rejected, timed out, cancelled): the
    /// block goes back to the pool unless other peers still have it in flight. Returns whether
    /// the request was known.
    pub fn on_request_dropped(&mut self, block: BlockRef, peer: PeerKey) -> bool {
        let Some(n) = self.slot_of(block) else {
            return false;
        };
        let index = block.piece().get();
        let Some(piece) = self.started.get_mut(&index) else {
            return false;
        };
        let Some(slot) = piece.blocks.get_mut(n) else {
            return false;
        };
        let Some(at) = slot.requesters.iter().position(|p| *p == peer) else {
            return false;
        };
        slot.requesters.swap_remove(at);
        if slot.requesters.is_empty() && slot.received_from.is_none() {
            piece.open += 1;
        }
        if piece.is_untouched() {
            self.started.remove(&index);
        }
        true
    }

    /// The piece passed its hash check (or was found complete on disk at start-up): it is ours.
    /// Returns false when it already was.
    pub fn on_piece_verified(&mut self, piece: PieceIndex) -> bool {
        self.started.remove(&piece.get());
        let newly = self.have.set(piece);
        if newly && self.piece_priority(piece) > Priority::SKIP {
            self.wanted_left -= 1;
        }
        newly
    }

    /// The piece's data was lost through no fault of its senders (a disk write or read failed):
    /// every block goes back to the pool and nobody gets a strike. Returns whether the piece was
    /// started.
    pub fn on_piece_reset(&mut self, piece: PieceIndex) -> bool {
        self.started.remove(&piece.get()).is_some()
    }

    /// The piece failed its hash check: every block goes back to the pool, each peer that
    /// supplied a block gets a strike, and the contributors are returned so the torrent can ban
    /// a sole contributor at once and others after repeated strikes.
    pub fn on_piece_failed(&mut self, piece: PieceIndex) -> PieceFailure {
        let contributors = self.contributors(piece);
        self.started.remove(&piece.get());
        for peer in &contributors {
            *self.strikes.entry(*peer).or_insert(0) += 1;
        }
        let sole_contributor = match contributors.as_slice() {
            [only] => Some(*only),
            _ => None,
        };
        PieceFailure {
            piece,
            contributors,
            sole_contributor,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;
    use std::collections::BTreeSet;

    const A: PeerKey = PeerKey(1);
    const B: PeerKey = PeerKey(2);
    const C: PeerKey = PeerKey(3);
    const D: PeerKey = PeerKey(4);

    /// `pieces` pieces of two 16 KiB blocks each; the last piece is one short block of 100 bytes
    /// when `short_last`.
    fn geometry(pieces: u32, short_last: bool) -> Geometry {
        let full = u64::from(pieces) * 32768;
        let total = if short_last { full - 32768 + 100 } else { full };
        Geometry::new(total, 32768).unwrap()
    }

    fn rarest_first_picker(pieces: u32) -> Picker {
        let config = PickerConfig {
            random_first_pieces: 0,
            ..PickerConfig::default()
        };
        Picker::new(geometry(pieces, false), config)
    }

    fn bits(piece_count: u32, ones: &[u32]) -> Bitfield {
        let mut b = Bitfield::new(piece_count);
        for &i in ones {
            b.set_index(i);
        }
        b
    }

    fn piece(p: &Picker, i: u32) -> PieceIndex {
        p.geometry().piece(i).unwrap()
    }

    fn block(p: &Picker, i: u32, n: u32) -> BlockRef {
        p.geometry().block(piece(p, i), n).unwrap()
    }

    fn pieces_of(blocks: &[BlockRef]) -> Vec<u32> {
        let mut v: Vec<u32> = blocks.iter().map(|b| b.piece().get()).collect();
        v.dedup();
        v
    }

    fn rng() -> StdRng {
        StdRng::seed_from_u64(7)
    }

    #[test]
    fn rarest_piece_is_picked_first() {
        let mut p = rarest_first_picker(6);
        // Piece 4 is held by one peer, every other piece by three.
        p.add_peer_bitfield(A, &bits(6, &[0, 1, 2, 3, 5]));
        p.add_peer_bitfield(B, &bits(6, &[0, 1, 2, 3, 5]));
        p.add_peer_bitfield(C, &Bitfield::full(6));
        assert_eq!(p.availability(piece(&p, 4)), 1);
        assert_eq!(p.availability(piece(&p, 0)), 3);
        let got = p.pick(&Bitfield::full(6), C, 2, &mut rng());
        assert_eq!(got, vec![block(&p, 4, 0), block(&p, 4, 1)]);
    }

    #[test]
    fn started_pieces_are_finished_before_new_ones() {
        let mut p = rarest_first_picker(6);
        let all = Bitfield::full(6);
        let first = p.pick(&all, A, 1, &mut rng());
        assert_eq!(first.len(), 1);
        let started = first[0].piece();
        assert_eq!(p.piece_state(started), PieceState::Partial);
        // B gets the other block of the same piece, then a new piece.
        let second = p.pick(&all, B, 2, &mut rng());
        assert_eq!(second[0], block(&p, started.get(), 1));
        assert_ne!(second[1].piece(), started);
        assert_eq!(p.piece_state(started), PieceState::AllRequested);
    }

    #[test]
    fn never_picks_pieces_we_have_skip_or_the_peer_lacks() {
        let mut p = rarest_first_picker(6);
        p.on_piece_verified(piece(&p, 0));
        p.set_piece_priority(piece(&p, 1), Priority::SKIP);
        let peer_has = bits(6, &[0, 1, 2]);
        let got = p.pick(&peer_has, A, 100, &mut rng());
        assert_eq!(pieces_of(&got), vec![2]);
        assert!(
            p.pick(&peer_has, A, 100, &mut rng()).is_empty(),
            "nothing left it can give"
        );
        assert!(!p.is_interesting(&bits(6, &[0, 1])));
        assert!(p.is_interesting(&bits(6, &[3])));
    }

    #[test]
    fn higher_priority_pieces_come_first() {
        let mut p = rarest_first_picker(6);
        p.add_peer_bitfield(A, &bits(6, &[0, 1, 2, 3]));
        p.set_piece_priority(piece(&p, 5), Priority::HIGHEST);
        // Piece 5 is the most common one, yet the highest priority wins.
        p.add_peer_bitfield(B, &bits(6, &[5]));
        p.add_peer_bitfield(C, &bits(6, &[5]));
        let got = p.pick(&Bitfield::full(6), D, 2, &mut rng());
        assert_eq!(pieces_of(&got), vec![5]);
    }

    #[test]
    fn sequential_mode_takes_pieces_in_order() {
        let mut p = rarest_first_picker(6);
        p.set_sequential(true);
        p.add_peer_bitfield(A, &bits(6, &[0, 1, 2]));
        let got = p.pick(&Bitfield::full(6), B, 5, &mut rng());
        assert_eq!(pieces_of(&got), vec![0, 1, 2]);
        assert_eq!(got.len(), 5);
    }

    #[test]
    fn first_pieces_are_random_then_rarest() {
        // Piece 0 is the rarest, but before 4 pieces are ours the pick is random: over many
        // seeds, several different pieces come first.
        let mut firsts = BTreeSet::new();
        for seed in 0..20 {
            let mut p = Picker::new(geometry(16, false), PickerConfig::default());
            p.add_peer_bitfield(A, &bits(16, &(1..16).collect::<Vec<_>>()));
            let got = p.pick(&Bitfield::full(16), B, 1, &mut StdRng::seed_from_u64(seed));
            firsts.insert(got[0].piece().get());
        }
        assert!(firsts.len() > 3, "random-first picked only {firsts:?}");
        let mut p = Picker::new(geometry(16, false), PickerConfig::default());
        p.add_peer_bitfield(A, &bits(16, &(1..16).collect::<Vec<_>>()));
        for i in 10..14 {
            p.on_piece_verified(piece(&p, i));
        }
        let got = p.pick(&Bitfield::full(16), B, 1, &mut rng());
        assert_eq!(
            got[0].piece().get(),
            0,
            "rarest first once 4 pieces are ours"
        );
    }

    #[test]
    fn endgame_duplicates_requests_and_reports_cancels() {
        let mut p = rarest_first_picker(1);
        let all = Bitfield::full(1);
        for peer in [A, B, C, D] {
            p.add_peer_bitfield(peer, &all);
        }
        assert_eq!(p.pick(&all, A, 10, &mut rng()).len(), 2);
        assert!(p.is_endgame());
        // B and C may double up on A's blocks; D would be a fourth requester: refused.
        assert_eq!(p.pick(&all, B, 10, &mut rng()).len(), 2);
        assert_eq!(p.pick(&all, C, 10, &mut rng()).len(), 2);
        assert!(p.pick(&all, D, 10, &mut rng()).is_empty());
        assert!(
            p.pick(&all, A, 10, &mut rng()).is_empty(),
            "never twice to the same peer"
        );
        let b0 = block(&p, 0, 0);
        assert_eq!(
            p.on_block_received(b0, B),
            BlockOutcome::New {
                piece_complete: false,
                cancel: vec![A, C]
            }
        );
        assert_eq!(p.on_block_received(b0, A), BlockOutcome::Duplicate);
        let b1 = block(&p, 0, 1);
        assert!(matches!(
            p.on_block_received(b1, C),
            BlockOutcome::New {
                piece_complete: true,
                ..
            }
        ));
        assert_eq!(p.piece_state(piece(&p, 0)), PieceState::AwaitingHash);
        assert!(
            p.pick(&all, D, 10, &mut rng()).is_empty(),
            "complete piece is not re-picked"
        );
        assert!(p.on_piece_verified(piece(&p, 0)));
        assert!(p.is_complete());
        assert_eq!(p.on_block_received(b1, A), BlockOutcome::Duplicate);
    }

    #[test]
    fn no_endgame_while_blocks_are_open() {
        let mut p = rarest_first_picker(2);
        let all = Bitfield::full(2);
        p.add_peer_bitfield(A, &all);
        assert_eq!(p.pick(&all, A, 2, &mut rng()).len(), 2);
        assert!(!p.is_endgame());
        let a_piece = p.in_flight(A)[0].piece();
        let got = p.pick(&all, B, 2, &mut rng());
        assert_eq!(
            pieces_of(&got),
            vec![1 - a_piece.get()],
            "the other piece, not duplicates"
        );
        assert!(p.is_endgame());
        let extra = p.pick(&all, B, 10, &mut rng());
        assert_eq!(
            pieces_of(&extra),
            vec![a_piece.get()],
            "now A's blocks, in duplicate"
        );
    }

    #[test]
    fn dropped_and_orphaned_requests_go_back_to_the_pool() {
        let mut p = rarest_first_picker(2);
        let all = Bitfield::full(2);
        p.add_peer_bitfield(A, &all);
        let got = p.pick(&all, A, 4, &mut rng());
        assert_eq!(got.len(), 4);
        assert!(p.on_request_dropped(got[0], A));
        assert!(!p.on_request_dropped(got[0], A), "second drop is unknown");
        assert_eq!(p.pick(&all, B, 1, &mut rng()), vec![got[0]]);
        assert_eq!(p.in_flight(A).len(), 3);
        assert_eq!(p.on_peer_gone(A, &all), 3);
        assert_eq!(p.availability(piece(&p, 0)), 0);
        let again: BTreeSet<_> = p.pick(&all, C, 3, &mut rng()).into_iter().collect();
        let expected: BTreeSet<_> = got[1..].iter().copied().collect();
        assert_eq!(again, expected);
    }

    #[test]
    fn late_block_after_timeout_is_still_accepted() {
        let mut p = rarest_first_picker(1);
        let all = Bitfield::full(1);
        let got = p.pick(&all, A, 2, &mut rng());
        p.on_request_dropped(got[0], A);
        assert_eq!(
            p.on_block_received(got[0], A),
            BlockOutcome::New {
                piece_complete: false,
                cancel: vec![]
            }
        );
        // The block is no longer open: nobody is asked for it again.
        assert!(p.pick(&all, B, 2, &mut rng()).is_empty() || p.is_endgame());
    }

    #[test]
    fn unrequested_and_misaligned_blocks_are_refused() {
        let mut p = rarest_first_picker(2);
        let g = *p.geometry();
        assert_eq!(
            p.on_block_received(block(&p, 1, 0), A),
            BlockOutcome::Unrequested
        );
        p.pick(&bits(2, &[0]), A, 2, &mut rng());
        let misaligned = g.checked_block(0, 100, 16384).unwrap();
        assert_eq!(
            p.on_block_received(misaligned, A),
            BlockOutcome::Unrequested
        );
        let short = g.checked_block(0, 0, 1000).unwrap();
        assert_eq!(p.on_block_received(short, A), BlockOutcome::Unrequested);
        assert!(!p.on_request_dropped(misaligned, A));
    }

    #[test]
    fn failed_piece_names_contributors_and_is_downloaded_again() {
        let mut p = rarest_first_picker(2);
        let all = Bitfield::full(2);
        // Piece 0 entirely from A: A alone is to blame.
        let a = p.pick(&bits(2, &[0]), A, 2, &mut rng());
        for b in &a {
            p.on_block_received(*b, A);
        }
        assert_eq!(p.contributors(piece(&p, 0)), vec![A]);
        let failure = p.on_piece_failed(piece(&p, 0));
        assert_eq!(failure.sole_contributor, Some(A));
        assert_eq!(p.strikes(A), 1);
        assert_eq!(p.piece_state(piece(&p, 0)), PieceState::NotStarted);
        // Piece 1 from B and C: both get a strike, nobody is named alone.
        let b = p.pick(&bits(2, &[1]), B, 1, &mut rng());
        let c = p.pick(&bits(2, &[1]), C, 1, &mut rng());
        p.on_block_received(b[0], B);
        p.on_block_received(c[0], C);
        let failure = p.on_piece_failed(piece(&p, 1));
        assert_eq!(failure.contributors, vec![B, C]);
        assert_eq!(failure.sole_contributor, None);
        assert_eq!((p.strikes(B), p.strikes(C)), (1, 1));
        // Both pieces are wanted again.
        let again = p.pick(&all, D, 10, &mut rng());
        assert_eq!(again.len(), 4);
        assert_eq!(p.byte_counts().verified, 0);
    }

    #[test]
    fn seeds_are_counted_in_one_counter() {
        let mut p = rarest_first_picker(4);
        p.add_peer_bitfield(A, &Bitfield::full(4));
        p.add_peer_have(A, piece(&p, 1));
        p.add_peer_bitfield(B, &bits(4, &[1]));
        assert_eq!(p.availability(piece(&p, 1)), 2);
        assert_eq!(p.availability(piece(&p, 0)), 1);
        p.on_peer_gone(A, &Bitfield::full(4));
        assert_eq!(p.availability(piece(&p, 0)), 0);
        assert_eq!(p.availability(piece(&p, 1)), 1);
        p.on_peer_gone(B, &bits(4, &[1]));
        assert_eq!(p.availability(piece(&p, 1)), 0);
    }

    #[test]
    fn file_priorities_map_to_pieces() {
        // Three 32 KiB pieces; file a = [0, 40000), b = [40000, 40000), c = [40000, 98304).
        let g = Geometry::new(3 * 32768, 32768).unwrap();
        let span = |offset, len, level| FileSpan {
            offset,
            len,
            priority: Priority::try_from(level).unwrap(),
        };
        let prios = piece_priorities(
            &g,
            &[span(0, 40000, 0), span(40000, 0, 7), span(40000, 58304, 2)],
        );
        // Piece 1 is shared by a (skip) and c (2): it takes 2. The empty file b touches nothing.
        assert_eq!(
            prios,
            vec![
                Priority::SKIP,
                Priority::try_from(2).unwrap(),
                Priority::try_from(2).unwrap()
            ]
        );
        let prios = piece_priorities(&g, &[span(0, 40000, 5), span(40000, 58304, 0)]);
        assert_eq!(prios[1], Priority::try_from(5).unwrap());
        assert_eq!(prios[2], Priority::SKIP);
        assert_eq!(Priority::try_from(8), Err(PriorityError { level: 8 }));
    }

    #[test]
    fn byte_counts_follow_priorities_and_verification() {
        let mut p = Picker::new(geometry(3, true), PickerConfig::default());
        let total = 2 * 32768 + 100;
        assert_eq!(p.byte_counts().total, total);
        assert_eq!(p.byte_counts().wanted_left(), total);
        p.set_piece_priority(piece(&p, 0), Priority::SKIP);
        p.on_piece_verified(piece(&p, 2));
        let counts = p.byte_counts();
        assert_eq!(counts.wanted, 32768 + 100);
        assert_eq!(counts.wanted_verified, 100);
        assert_eq!(counts.wanted_left(), 32768);
        assert_eq!(counts.total_left(), 2 * 32768);
        // The short last piece hands out one short block.
        let mut q = Picker::new(geometry(3, true), PickerConfig::default());
        let got = q.pick(&bits(3, &[2]), A, 10, &mut rng());
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].len(), 100);
    }

    #[derive(Clone, Debug)]
    enum Op {
        Pick { peer: u8, max: u8 },
        Receive { peer: u8, nth: u8 },
        Drop { peer: u8, nth: u8 },
        Gone { peer: u8 },
        Priority { nth: u8, level: u8 },
        Hash { ok: bool },
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0u8..4, 1u8..8).prop_map(|(peer, max)| Op::Pick { peer, max }),
            4 => (0u8..4, any::<u8>()).prop_map(|(peer, nth)| Op::Receive { peer, nth }),
            1 => (0u8..4, any::<u8>()).prop_map(|(peer, nth)| Op::Drop { peer, nth }),
            1 => (0u8..4).prop_map(|peer| Op::Gone { peer }),
            2 => any::<bool>().prop_map(|ok| Op::Hash { ok }),
            1 => (any::<u8>(), 0u8..8).prop_map(|(nth, level)| Op::Priority { nth, level }),
        ]
    }

    proptest! {
        /// Random interleavings never hand out a block out of range or one the peer lacks, never
        /// the same block to two peers outside endgame, and a final pass with one seed always
        /// finishes the download.
        #[test]
        fn random_operations_keep_the_invariants(
            pieces in 1u32..7,
            short_last in any::<bool>(),
            masks in prop::collection::vec(any::<u8>(), 4),
            ops in prop::collection::vec(op(), 0..120),
            seed in any::<u64>(),
        ) {
            let g = geometry(pieces, short_last);
            let mut p = Picker::new(g, PickerConfig::default());
            let mut rng = StdRng::seed_from_u64(seed);
            let peer_bits: Vec<Bitfield> = masks
                .iter()
                .map(|m| bits(pieces, &(0..pieces).filter(|i| m & (1 << i) != 0).collect::<Vec<_>>()))
                .collect();
            for (k, b) in peer_bits.iter().enumerate() {
                p.add_peer_bitfield(PeerKey(k as u64), b);
            }
            // Model: blocks in flight per peer, blocks received and not yet hashed.
            let mut in_flight: Vec<Vec<BlockRef>> = vec![Vec::new(); 4];
            for op in ops {
                match op {
                    Op::Pick { peer, max } => {
                        let key = PeerKey(u64::from(peer));
                        let got = p.pick(&peer_bits[peer as usize], key, max as usize, &mut rng);
                        prop_assert!(got.len() <= max as usize);
                        let endgame = p.is_endgame();
                        for b in got {
                            prop_assert_eq!(g.block(b.piece(), b.block_index()), Some(b));
                            prop_assert!(peer_bits[peer as usize].get(b.piece()));
                            prop_assert!(!p.have().get(b.piece()));
                            prop_assert!(!in_flight[peer as usize].contains(&b), "same peer twice");
                            let elsewhere = in_flight.iter().any(|v| v.contains(&b));
                            prop_assert!(!elsewhere || endgame, "duplicate outside endgame: {:?}", b);
                            in_flight[peer as usize].push(b);
                        }
                    }
                    Op::Receive { peer, nth } => {
                        let list = &mut in_flight[peer as usize];
                        if list.is_empty() { continue; }
                        let b = list.remove(nth as usize % list.len());
                        let outcome = p.on_block_received(b, PeerKey(u64::from(peer)));
                        if let BlockOutcome::New { cancel, .. } = outcome {
                            for other in cancel {
                                let v = &mut in_flight[other.0 as usize];
                                prop_assert!(v.contains(&b), "cancel for a peer without the block");
                                v.retain(|x| *x != b);
                            }
                        }
                    }
                    Op::Drop { peer, nth } => {
                        let list = &mut in_flight[peer as usize];
                        if list.is_empty() { continue; }
                        let b = list.remove(nth as usize % list.len());
                        prop_assert!(p.on_request_dropped(b, PeerKey(u64::from(peer))));
                    }
                    Op::Gone { peer } => {
                        let key = PeerKey(u64::from(peer));
                        let freed = p.on_peer_gone(key, &peer_bits[peer as usize]);
                        prop_assert_eq!(freed, in_flight[peer as usize].len());
                        in_flight[peer as usize].clear();
                        p.add_peer_bitfield(key, &peer_bits[peer as usize]);
                    }
                    Op::Priority { nth, level } => {
                        let i = g.piece(u32::from(nth) % pieces).unwrap();
                        p.set_piece_priority(i, Priority::try_from(level).unwrap());
                    }
                    Op::Hash { ok } => {
                        let ready = g.pieces().find(|&i| p.piece_state(i) == PieceState::AwaitingHash);
                        if let Some(i) = ready {
                            if ok { p.on_piece_verified(i); } else { p.on_piece_failed(i); }
                        }
                    }
                }
                let wanted = g.pieces().filter(|&i| p.is_wanted(i)).count() as u32;
                prop_assert_eq!(p.wanted_pieces_left(), wanted);
            }
            // Drain: every peer's requests come back, then a seed fetches everything left.
            for (k, list) in in_flight.iter().enumerate() {
                prop_assert_eq!(p.on_peer_gone(PeerKey(k as u64), &peer_bits[k]), list.len());
            }
            let seed_peer = PeerKey(99);
            let full = Bitfield::full(pieces);
            p.add_peer_bitfield(seed_peer, &full);
            for _ in 0..(pieces * 2 + 2) {
                let got = p.pick(&full, seed_peer, 3, &mut rng);
                for b in got {
                    p.on_block_received(b, seed_peer);
                }
                for i in g.pieces() {
                    if p.piece_state(i) == PieceState::AwaitingHash {
                        p.on_piece_verified(i);
                    }
                }
            }
            prop_assert!(p.is_complete(), "left {:?}", p.byte_counts());
        }
    }

    #[test]
    fn a_reset_piece_is_picked_again_and_gives_no_strikes() {
        let mut p = rarest_first_picker(2);
        let mut rng = StdRng::seed_from_u64(1);
        let all = bits(2, &[0, 1]);
        p.add_peer_bitfield(A, &all);
        let got = p.pick(&all, A, 2, &mut rng);
        let first = got[0].piece();
        for b in &got {
            p.on_block_received(*b, A);
        }
        assert!(p.on_piece_reset(first));
        assert_eq!(p.strikes(A), 0, "a disk failure is not the sender's fault");
        assert!(p.contributors(first).is_empty());
        let again = p.pick(&all, A, 4, &mut rng);
        assert!(
            again.iter().any(|b| b.piece() == first),
            "the piece is wanted again"
        );
    }
}

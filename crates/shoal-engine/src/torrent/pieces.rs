//! Disk completions: written blocks lead to a hash request, a hash result makes a piece ours (or
//! sends it back to the picker and strikes or bans its contributors), a read answers a peer.
//!
//! Invariant: a piece is announced, counted and served only after `Hashed { result: Ok(true) }`.

use std::time::Instant;

use bytes::Bytes;
use shoal_proto::{BlockRef, PieceIndex};

use super::{DisconnectReason, Output, Torrent, TorrentEvent};
use crate::disk::{DiskFailure, DiskRequest};
use crate::peer::PeerCommand;
use crate::picker::PieceState;
use crate::PeerKey;

impl Torrent {
    pub(super) fn on_written(
        &mut self,
        now: Instant,
        block: BlockRef,
        result: Result<(), DiskFailure>,
    ) {
        let piece = block.piece();
        if let Some(count) = self.writes_in_flight.get_mut(&piece) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                self.writes_in_flight.remove(&piece);
            }
        }
        match result {
            Ok(()) => self.hash_if_ready(piece),
            Err(failure) => {
                // The block is lost: the whole piece is fetched again once the disk is back. The
                // senders did nothing wrong, so they get no strike.
                self.picker.on_piece_reset(piece);
                self.disk_failed(now, failure);
            }
        }
    }

    /// Asks the disk to hash the piece once all its blocks arrived and were written.
    fn hash_if_ready(&mut self, piece: PieceIndex) {
        let written = !self.writes_in_flight.contains_key(&piece);
        if written
            && self.picker.piece_state(piece) == PieceState::AwaitingHash
            && self.hashing.insert(piece)
        {
            self.outputs
                .push_back(Output::Disk(DiskRequest::Hash { piece }));
        }
    }

    pub(super) fn on_hashed(
        &mut self,
        now: Instant,
        piece: PieceIndex,
        result: Result<bool, DiskFailure>,
    ) {
        if !self.hashing.remove(&piece) {
            return;
        }
        match result {
            Ok(true) => self.piece_verified(now, piece),
            Ok(false) => self.piece_failed(now, piece),
            Err(failure) => {
                self.picker.on_piece_reset(piece);
                self.disk_failed(now, failure);
            }
        }
    }

    fn piece_verified(&mut self, now: Instant, piece: PieceIndex) {
        if !self.picker.on_piece_verified(piece) {
            return;
        }
        self.outputs
            .push_back(Output::Event(TorrentEvent::PieceVerified(piece)));
        self.offer_verified_allowed_fast(now, piece);
        let keys: Vec<PeerKey> = self.peers.keys().copied().collect();
        for &key in &keys {
            if let Some(peer) = self.peers.get_mut(&key) {
                peer.conn.handle_command(now, PeerCommand::Have(piece));
            }
            self.update_interest(now, key);
        }
        if self.picker.is_complete() && !self.complete_announced {
            self.complete_announced = true;
            self.outputs
                .push_back(Output::Event(TorrentEvent::Complete));
        }
        if self.picker.have().is_full() {
            for key in keys {
                let seed = self
                    .peers
                    .get(&key)
                    .is_some_and(|p| p.conn.their_pieces().is_full());
                if seed {
                    self.disconnect(now, key, DisconnectReason::BothSeeds);
                }
            }
        }
    }

    /// Back to the picker; strikes for every contributor, a ban for a sole contributor or one
    /// with too many strikes.
    fn piece_failed(&mut self, now: Instant, piece: PieceIndex) {
        self.hash_failures += 1;
        let failure = self.picker.on_piece_failed(piece);
        let size = u64::from(self.geometry.piece_size(piece));
        self.wasted += size;
        let contributors = failure
            .contributors
            .iter()
            .filter_map(|&key| self.identity(key).map(|(addr, _)| addr))
            .collect();
        self.outputs
            .push_back(Output::Event(TorrentEvent::PieceFailed {
                piece,
                contributors,
            }));
        for key in failure.contributors {
            let strikes = self.picker.strikes(key);
            if failure.sole_contributor == Some(key) || strikes >= self.config.max_hash_strikes {
                self.ban(now, key);
            }
        }
    }

    /// Never connect to this peer again, and drop it if connected.
    pub(super) fn ban(&mut self, now: Instant, key: PeerKey) {
        let Some((addr, peer_id)) = self.identity(key) else {
            return;
        };
        if self.addrs.is_banned(addr, peer_id) {
            return;
        }
        self.addrs.ban(addr, peer_id);
        self.outputs
            .push_back(Output::Event(TorrentEvent::PeerBanned { addr, peer_id }));
        self.disconnect(now, key, DisconnectReason::Banned);
        let same: Vec<PeerKey> = self
            .peers
            .iter()
            .filter(|(_, p)| self.addrs.is_banned(p.addr, p.conn.their_peer_id()))
            .map(|(&k, _)| k)
            .collect();
        for other in same {
            self.disconnect(now, other, DisconnectReason::Banned);
        }
    }

    pub(super) fn on_read(
        &mut self,
        now: Instant,
        key: PeerKey,
        block: BlockRef,
        result: Result<Bytes, DiskFailure>,
    ) {
        let Some(peer) = self.peers.get_mut(&key) else {
            return;
        };
        peer.serve.read_done(block);
        match result {
            Ok(data) => {
                let before = peer.conn.stats().uploaded_payload;
                peer.conn
                    .handle_command(now, PeerCommand::SendBlock { block, data });
                let sent = peer.conn.stats().uploaded_payload - before;
                if sent > 0 {
                    peer.upload.record(now, sent);
                }
                // Out now, so the block counts as held until the socket takes it.
                Self::flush_one(&mut self.outputs, key, peer);
            }
            Err(failure) => {
                peer.conn
                    .handle_command(now, PeerCommand::RejectRequest(block));
                self.disk_failed(now, failure);
            }
        }
        self.serve_more(key);
    }

    /// Any disk failure pauses the torrent: nothing verified is lost, the user is told.
    fn disk_failed(&mut self, now: Instant, failure: DiskFailure) {
        self.outputs
            .push_back(Output::Event(TorrentEvent::DiskError { failure }));
        if !self.paused {
            self.pause(now);
        }
    }
}

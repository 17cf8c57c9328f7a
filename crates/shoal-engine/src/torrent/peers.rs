//! The torrent's side of each connection: what a [`PeerEvent`] means for the picker and the
//! disk, which requests to send, interest, request time-outs and dropping peers.

use std::net::SocketAddr;
use std::time::Instant;

use bytes::Bytes;
use shoal_proto::{BlockRef, PeerId};

use super::{DisconnectReason, Output, Torrent, TorrentEvent};
use crate::bitfield::Bitfield;
use crate::disk::DiskRequest;
use crate::peer::{PeerCommand, PeerEvent};
use crate::picker::BlockOutcome;
use crate::PeerKey;

impl Torrent {
    /// Handles every event the peer's connection has queued (the peer may be dropped on the way).
    pub(super) fn drain_events(&mut self, now: Instant, key: PeerKey) {
        while let Some(event) = self.peers.get_mut(&key).and_then(|p| p.conn.poll_event()) {
            self.on_peer_event(now, key, event);
        }
    }

    fn on_peer_event(&mut self, now: Instant, key: PeerKey, event: PeerEvent) {
        match event {
            PeerEvent::HandshakeDone { peer_id, .. } => self.on_handshake(now, key, peer_id),
            PeerEvent::Bitfield(bits) => {
                self.picker.add_peer_bitfield(key, &bits);
                if self.picker.have().is_full() && bits.is_full() {
                    self.disconnect(now, key, DisconnectReason::BothSeeds);
                    return;
                }
                self.update_interest(now, key);
            }
            PeerEvent::Have(piece) => {
                self.picker.add_peer_have(key, piece);
                let wanted = self.picker.is_wanted(piece);
                if let Some(peer) = self.peers.get_mut(&key) {
                    if wanted && !peer.conn.am_interested() {
                        peer.conn.handle_command(now, PeerCommand::Interested);
                    }
                }
            }
            PeerEvent::Interested => self.on_peer_interested(now, key),
            PeerEvent::Request(block) => self.on_peer_request(key, block),
            PeerEvent::Block { block, data } => self.on_block(now, key, block, data),
            PeerEvent::RequestDropped(block) => {
                if let Some(peer) = self.peers.get_mut(&key) {
                    peer.pipeline.on_request_dropped(block);
                }
                self.picker.on_request_dropped(block, key);
            }
            PeerEvent::ExtendedHandshake(payload) => {
                self.on_extended_handshake(now, key, &payload);
            }
            PeerEvent::Extended { id, payload } => self.on_extended(now, key, id, payload),
            // Requests resume in `fill_requests` (allowed-fast pieces too); the choker reacts at
            // its next round.
            PeerEvent::Choked
            | PeerEvent::Unchoked
            | PeerEvent::NotInterested
            | PeerEvent::AllowedFast(_) => {}
            // `suggest` and the DHT port are not acted on (see `ext.rs`).
            _ => {}
        }
    }

    /// Handshake done: refuse banned ids and a second connection to the same peer.
    fn on_handshake(&mut self, now: Instant, key: PeerKey, peer_id: PeerId) {
        let Some(addr) = self.peers.get(&key).map(|p| p.addr) else {
            return;
        };
        if self.addrs.is_banned(addr, Some(peer_id)) {
            self.disconnect(now, key, DisconnectReason::Banned);
            return;
        }
        let twin = self
            .peers
            .iter()
            .find(|(&other, p)| other != key && p.conn.their_peer_id() == Some(peer_id))
            .map(|(&other, _)| other);
        if let Some(other) = twin {
            let keep_new = self.keep_newer_twin(key, other, peer_id);
            let drop = if keep_new { other } else { key };
            self.disconnect(now, drop, DisconnectReason::Duplicate);
            if drop == key {
                return;
            }
        }
        self.outputs
            .push_back(Output::Event(TorrentEvent::PeerConnected {
                peer: key,
                addr,
                peer_id,
            }));
        self.offer_allowed_fast(now, key);
        self.pex_directory_changed(now);
    }

    /// Which of two connections to the same peer id survives. Opened from both sides at once:
    /// the one opened by the smaller peer id, so both ends keep the same one. Both opened by
    /// the peer from the same IP: the newer one, because a peer dials again only after it gave
    /// the old connection up (a magnet fetch handing over to the download, a restart) and we may
    /// not have read its close yet. Otherwise (our own dials, or another IP claiming the same
    /// id, which could be someone evicting a peer by copying its id) the older one.
    fn keep_newer_twin(&self, new: PeerKey, old: PeerKey, peer_id: PeerId) -> bool {
        let (Some(new_peer), Some(old_peer)) = (self.peers.get(&new), self.peers.get(&old)) else {
            return false;
        };
        match (new_peer.outgoing, old_peer.outgoing) {
            (false, false) => new_peer.addr.ip() == old_peer.addr.ip(),
            (true, true) => false,
            (new_is_ours, _) => {
                let new_opener = if new_is_ours {
                    self.our_peer_id
                } else {
                    peer_id
                };
                let old_opener = if new_is_ours {
                    peer_id
                } else {
                    self.our_peer_id
                };
                new_opener < old_opener
            }
        }
    }

    /// A peer wants our data: when an upload slot is free, run a choker round at once rather
    /// than leave it waiting for the next one.
    fn on_peer_interested(&mut self, now: Instant, key: PeerKey) {
        let unchoked = self.peers.values().filter(|p| !p.conn.am_choking()).count();
        let choked = self.peers.get(&key).is_some_and(|p| p.conn.am_choking());
        if choked && unchoked < self.config.choker.upload_slots {
            self.choke_round(now);
        }
    }

    /// The connection only reports requests for pieces we have and may serve: queue them for a
    /// read (see `serve.rs`).
    fn on_peer_request(&mut self, key: PeerKey, block: BlockRef) {
        if self.paused || !self.picker.have().get(block.piece()) {
            return;
        }
        if let Some(peer) = self.peers.get_mut(&key) {
            peer.serve.push(block);
            self.serve_more(key);
        }
    }

    /// Asks the disk for the peer's next waiting blocks while it holds less than the upload
    /// buffer; requests it cancelled (or that a choke dropped) meanwhile are skipped.
    pub(super) fn serve_more(&mut self, key: PeerKey) {
        let watermark = self.config.peer.upload_buffer_bytes;
        let Some(peer) = self.peers.get_mut(&key) else {
            return;
        };
        while let Some(block) = peer.serve.next_to_read(watermark) {
            if peer.conn.holds_request(block) {
                self.outputs
                    .push_back(Output::Disk(DiskRequest::Read { peer: key, block }));
            } else {
                peer.serve.read_done(block);
            }
        }
    }

    fn on_block(&mut self, now: Instant, key: PeerKey, block: BlockRef, data: Bytes) {
        if let Some(peer) = self.peers.get_mut(&key) {
            peer.pipeline.on_block_received(block, now);
        }
        match self.picker.on_block_received(block, key) {
            BlockOutcome::New { cancel, .. } => {
                *self.writes_in_flight.entry(block.piece()).or_insert(0) += 1;
                self.outputs
                    .push_back(Output::Disk(DiskRequest::Write { block, data }));
                for other in cancel {
                    if let Some(peer) = self.peers.get_mut(&other) {
                        peer.pipeline.on_request_dropped(block);
                        peer.conn.handle_command(now, PeerCommand::Cancel(block));
                    }
                }
            }
            BlockOutcome::Duplicate | BlockOutcome::Unrequested => {
                self.wasted += u64::from(block.len());
            }
        }
    }

    /// Sends `interested` / `not interested` to match whether the peer has a piece we want.
    pub(super) fn update_interest(&mut self, now: Instant, key: PeerKey) {
        let Some(peer) = self.peers.get_mut(&key) else {
            return;
        };
        let interesting = self.picker.is_interesting(peer.conn.their_pieces());
        match (interesting, peer.conn.am_interested()) {
            (true, false) => peer.conn.handle_command(now, PeerCommand::Interested),
            (false, true) => peer.conn.handle_command(now, PeerCommand::NotInterested),
            _ => {}
        }
    }

    /// Tops up the peer's request pipeline from the picker.
    pub(super) fn fill_requests(&mut self, now: Instant, key: PeerKey) {
        if self.paused {
            return;
        }
        let Some(peer) = self.peers.get_mut(&key) else {
            return;
        };
        if !peer.conn.is_established() || !peer.conn.am_interested() {
            return;
        }
        // Choked, we may still ask for the pieces the peer allowed fast (BEP 6).
        let choked_offer = if peer.conn.peer_choking() {
            let mut offer = Bitfield::new(self.geometry.piece_count());
            for piece in peer.conn.allowed_fast_for_us() {
                if peer.conn.their_pieces().get(piece) {
                    offer.set(piece);
                }
            }
            if offer.has_none() {
                return;
            }
            Some(offer)
        } else {
            None
        };
        let room = peer.pipeline.room(now);
        if room == 0 {
            return;
        }
        let offer = choked_offer.as_ref().unwrap_or(peer.conn.their_pieces());
        let blocks = self.picker.pick(offer, key, room, &mut self.rng);
        for block in blocks {
            peer.pipeline.on_request_sent(block, now);
            peer.conn.handle_command(now, PeerCommand::Request(block));
        }
        self.drain_events(now, key);
    }

    pub(super) fn fill_all(&mut self, now: Instant) {
        let keys: Vec<PeerKey> = self.peers.keys().copied().collect();
        for key in keys {
            self.fill_requests(now, key);
        }
    }

    /// Requests unanswered past their time-out (or all of a peer that snubs us) are cancelled
    /// and go back to the picker.
    pub(super) fn expire_requests(&mut self, now: Instant) {
        let mut expired: Vec<(PeerKey, BlockRef)> = Vec::new();
        for (&key, peer) in &mut self.peers {
            for block in peer.pipeline.handle_timeout(now) {
                peer.conn.handle_command(now, PeerCommand::Cancel(block));
                expired.push((key, block));
            }
        }
        for (key, block) in expired {
            self.picker.on_request_dropped(block, key);
        }
    }

    /// Drops a peer on our initiative, telling the runtime why.
    pub(super) fn disconnect(&mut self, now: Instant, key: PeerKey, reason: DisconnectReason) {
        if self.remove_peer(now, key).is_some() {
            self.outputs
                .push_back(Output::Disconnect { peer: key, reason });
        }
    }

    /// Forgets a peer: its requests go back to the picker, its pieces stop counting.
    pub(super) fn remove_peer(&mut self, now: Instant, key: PeerKey) -> Option<SocketAddr> {
        let peer = self.peers.remove(&key)?;
        self.picker.on_peer_gone(key, peer.conn.their_pieces());
        let stats = peer.conn.stats();
        self.downloaded_by_gone += stats.downloaded_payload;
        self.uploaded_by_gone += stats.uploaded_payload;
        self.gone_peers
            .insert(key, (peer.addr, peer.conn.their_peer_id()));
        if peer.outgoing && self.paused {
            self.addrs.released(now, peer.addr, key);
        } else if peer.outgoing {
            let (backoff, max) = (
                self.config.reconnect_backoff,
                self.config.max_connect_failures,
            );
            self.addrs.disconnected(now, peer.addr, key, backoff, max);
        }
        let event = TorrentEvent::PeerDisconnected {
            peer: key,
            addr: peer.addr,
        };
        self.outputs.push_back(Output::Event(event));
        Some(peer.addr)
    }

    /// The address and id of a peer, connected or gone.
    pub(super) fn identity(&self, key: PeerKey) -> Option<(SocketAddr, Option<PeerId>)> {
        match self.peers.get(&key) {
            Some(peer) => Some((peer.addr, peer.conn.their_peer_id())),
            None => self.gone_peers.get(&key).copied(),
        }
    }
}

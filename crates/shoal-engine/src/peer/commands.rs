//! The connection's outputs: carrying out [`PeerCommand`]s from the torrent engine, and the
//! metadata-only view of piece messages (see the `peer` module documentation).

use std::time::Instant;

use bytes::Bytes;
use shoal_proto::wire::Message;
use shoal_proto::BlockRef;

use super::{PeerCommand, PeerConn, PeerError, PeerEvent, Stage};

impl PeerConn {
    /// Carries out what the torrent engine decided. Before the handshake completes only
    /// [`PeerCommand::Have`] has an effect (it updates the piece set we will announce).
    pub fn handle_command(&mut self, now: Instant, command: PeerCommand) {
        if let PeerCommand::Have(piece) = command {
            let new = self.setup.our_pieces.set(piece);
            if new && self.is_established() {
                self.send(now, &Message::Have { index: piece.get() });
            }
            return;
        }
        if !self.is_established() {
            return;
        }
        match command {
            PeerCommand::Have(_) => {}
            PeerCommand::Choke => {
                if !self.am_choking {
                    self.am_choking = true;
                    self.send(now, &Message::Choke);
                    let pending = std::mem::take(&mut self.their_requests);
                    for block in pending {
                        if !self.allowed_fast_for_them.contains(&block.piece()) {
                            self.reject(now, block);
                        } else {
                            self.their_requests.insert(block);
                        }
                    }
                }
            }
            PeerCommand::Unchoke => {
                if self.am_choking {
                    self.am_choking = false;
                    self.send(now, &Message::Unchoke);
                }
            }
            PeerCommand::Interested => {
                if !self.am_interested {
                    self.am_interested = true;
                    self.send(now, &Message::Interested);
                }
            }
            PeerCommand::NotInterested => {
                if self.am_interested {
                    self.am_interested = false;
                    self.send(now, &Message::NotInterested);
                }
            }
            PeerCommand::Request(block) => self.request(now, block),
            PeerCommand::Cancel(block) => {
                if self.our_requests.remove(&block) {
                    self.remember_stale(block);
                    let (index, begin, length) = (block.piece().get(), block.offset(), block.len());
                    self.send(
                        now,
                        &Message::Cancel {
                            index,
                            begin,
                            length,
                        },
                    );
                }
            }
            PeerCommand::SendBlock { block, data } => self.send_block(now, block, data),
            PeerCommand::RejectRequest(block) => {
                if self.their_requests.contains(&block) {
                    self.reject(now, block);
                }
            }
            PeerCommand::AllowFast(piece) => {
                if self.supports_fast() && self.allowed_fast_for_them.insert(piece) {
                    self.send(now, &Message::AllowedFast { index: piece.get() });
                }
            }
            PeerCommand::Extended { id, payload } => {
                if self.supports_extensions() {
                    self.send(now, &Message::Extended { id, payload });
                }
            }
        }
    }

    fn request(&mut self, now: Instant, block: BlockRef) {
        let allowed = !self.peer_choking || self.allowed_fast_for_us.contains(&block.piece());
        if !allowed || !self.their_pieces.get(block.piece()) {
            self.events.push_back(PeerEvent::RequestDropped(block));
            return;
        }
        if self.our_requests.insert(block) {
            let (index, begin, length) = (block.piece().get(), block.offset(), block.len());
            self.send(
                now,
                &Message::Request {
                    index,
                    begin,
                    length,
                },
            );
        }
    }

    fn send_block(&mut self, now: Instant, block: BlockRef, data: Bytes) {
        let may_send = data.len() == block.len() as usize
            && self.setup.our_pieces.get(block.piece())
            && (!self.am_choking || self.allowed_fast_for_them.contains(&block.piece()))
            && self.their_requests.remove(&block);
        if may_send {
            self.stats.uploaded_payload += u64::from(block.len());
            let (index, begin) = (block.piece().get(), block.offset());
            self.send_piece(now, index, begin, data);
        }
    }

    /// A metadata-only connection's view of the messages that name pieces: checked for order,
    /// then ignored. Every other message is handed back for the common handling.
    pub(super) fn metadata_only_message(
        &mut self,
        message: Message,
        piece_set_expected: bool,
    ) -> Result<Option<Message>, PeerError> {
        match message {
            // A later piece set only updates what the peer has, which a metadata fetch ignores.
            Message::Bitfield(_) | Message::HaveAll | Message::HaveNone if self.saw_piece_set => {
                return Ok(None);
            }
            Message::Bitfield(_) => self.expect_piece_set("bitfield", piece_set_expected)?,
            Message::HaveAll | Message::HaveNone => {
                let name = if message == Message::HaveAll {
                    "have all"
                } else {
                    "have none"
                };
                self.require_fast(name)?;
                self.expect_piece_set(name, piece_set_expected)?;
            }
            Message::Suggest { .. } => return self.require_fast("suggest").map(|()| None),
            Message::AllowedFast { .. } => return self.require_fast("allowed fast").map(|()| None),
            Message::Reject { .. } => return self.require_fast("reject").map(|()| None),
            Message::Have { .. } | Message::Request { .. } | Message::Cancel { .. } => {}
            other => return Ok(Some(other)),
        }
        if matches!(
            message,
            Message::Bitfield(_) | Message::HaveAll | Message::HaveNone
        ) {
            self.saw_piece_set = true;
            self.stage = Stage::Established;
        }
        Ok(None)
    }
}

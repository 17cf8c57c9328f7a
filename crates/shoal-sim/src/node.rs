//! One simulated node: a torrent engine, its in-memory "disk", and what the tests look at
//! (events, disconnects with their reasons, messages sent, blocks served).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use sha1::{Digest, Sha1};
use shoal_engine::bitfield::Bitfield;
use shoal_engine::disk::{DiskDone, DiskFailure, DiskFailureKind, DiskRequest};
use shoal_engine::torrent::{DisconnectReason, Torrent, TorrentEvent, TorrentParams};
use shoal_engine::PeerKey;
use shoal_proto::PeerId;

use crate::net::{Behaviour, LinkParams, MessageCounts};
use crate::{ConnId, NodeSpec, Side, Sim};

/// A node's index in the swarm.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId(pub usize);

/// A peer the node's engine dropped, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DisconnectRecord {
    pub at: Duration,
    pub peer: PeerKey,
    /// The far end's address, when known.
    pub remote: Option<SocketAddr>,
    pub reason: DisconnectReason,
}

/// One node of the swarm.
#[derive(Debug)]
pub struct Node {
    pub id: NodeId,
    pub addr: SocketAddr,
    pub peer_id: PeerId,
    pub behaviour: Behaviour,
    pub link: LinkParams,
    pub torrent: Torrent,
    /// The node's "disk": the torrent's bytes as written so far.
    pub storage: Vec<u8>,
    pub events: Vec<(Duration, TorrentEvent)>,
    pub disconnects: Vec<DisconnectRecord>,
    /// Virtual time the engine reported `Complete` (or 0 for a node that started complete).
    pub completed_at: Option<Duration>,
    /// Messages this node's engine sent, by kind (before its behaviour altered them).
    pub sent: MessageCounts,
    /// Blocks this node's disk read to serve, and how many of them differed from the source.
    pub blocks_served: u64,
    pub bad_blocks_served: u64,
    /// Pieces the disk hashed and found bad.
    pub hash_failures: u64,
    /// Pieces the engine called verified whose stored bytes differ from the source (must stay 0).
    pub bad_pieces_verified: u64,
    pub(crate) conns: BTreeMap<PeerKey, (ConnId, Side)>,
}

impl Node {
    pub(crate) fn new(
        sim: &Sim,
        id: NodeId,
        addr: SocketAddr,
        peer_id: PeerId,
        spec: NodeSpec,
        link: LinkParams,
        rng_seed: u64,
    ) -> Node {
        let geometry = sim.geometry;
        let (have, storage) = if spec.seed {
            (Bitfield::full(geometry.piece_count()), sim.content.to_vec())
        } else {
            (
                Bitfield::new(geometry.piece_count()),
                vec![0; sim.content.len()],
            )
        };
        let params = TorrentParams {
            info_hash: sim.info_hash,
            our_peer_id: peer_id,
            geometry,
            have,
            piece_priorities: Vec::new(),
            config: sim.config.torrent.clone(),
            rng_seed,
            info_bytes: None,
            listen_port: Some(addr.port()),
            private: false,
        };
        let torrent = Torrent::new(params, sim.now);
        let completed_at = spec.seed.then_some(Duration::ZERO);
        Node {
            id,
            addr,
            peer_id,
            behaviour: spec.behaviour,
            link,
            torrent,
            storage,
            events: Vec::new(),
            disconnects: Vec::new(),
            completed_at,
            sent: MessageCounts::default(),
            blocks_served: 0,
            bad_blocks_served: 0,
            hash_failures: 0,
            bad_pieces_verified: 0,
            conns: BTreeMap::new(),
        }
    }

    /// Runs a disk request against `storage` at once; the simulator delivers the result later.
    pub(crate) fn run_disk(
        &mut self,
        request: DiskRequest,
        source: &Bytes,
        piece_hashes: &[[u8; 20]],
    ) -> DiskDone {
        let geometry = *self.torrent.geometry();
        match request {
            DiskRequest::Write { block, data } => {
                let start = geometry.block_offset(block) as usize;
                let result = match self.storage.get_mut(start..start + data.len()) {
                    Some(slot) if data.len() == block.len() as usize => {
                        slot.copy_from_slice(&data);
                        Ok(())
                    }
                    _ => Err(failure("write out of range")),
                };
                DiskDone::Written { block, result }
            }
            DiskRequest::Read { peer, block } => {
                let start = geometry.block_offset(block) as usize;
                let range = start..start + block.len() as usize;
                let result = match self.storage.get(range.clone()) {
                    Some(bytes) => {
                        self.blocks_served += 1;
                        if source.get(range) != Some(bytes) {
                            self.bad_blocks_served += 1;
                        }
                        Ok(Bytes::copy_from_slice(bytes))
                    }
                    None => Err(failure("read out of range")),
                };
                DiskDone::Read {
                    peer,
                    block,
                    result,
                }
            }
            DiskRequest::Hash { piece } => {
                let start = geometry.piece_offset(piece) as usize;
                let end = start + geometry.piece_size(piece) as usize;
                let digest: [u8; 20] = Sha1::digest(&self.storage[start..end]).into();
                let ok = piece_hashes.get(piece.as_usize()) == Some(&digest);
                if !ok {
                    self.hash_failures += 1;
                }
                DiskDone::Hashed {
                    piece,
                    result: Ok(ok),
                }
            }
        }
    }

    pub(crate) fn on_event(&mut self, at: Duration, event: TorrentEvent, source: &[u8]) {
        if let TorrentEvent::PieceVerified(piece) = event {
            let geometry = self.torrent.geometry();
            let start = geometry.piece_offset(piece) as usize;
            let range = start..start + geometry.piece_size(piece) as usize;
            if self.storage.get(range.clone()) != source.get(range) {
                self.bad_pieces_verified += 1;
            }
        }
        if event == TorrentEvent::Complete && self.completed_at.is_none() {
            self.completed_at = Some(at);
        }
        self.events.push((at, event));
    }

    /// Pieces the engine reported verified.
    pub fn verified_pieces(&self) -> usize {
        self.events
            .iter()
            .filter(|(_, e)| matches!(e, TorrentEvent::PieceVerified(_)))
            .count()
    }

    /// Whether the node's storage equals the source.
    pub fn storage_matches(&self, source: &[u8]) -> bool {
        self.storage == source
    }
}

fn failure(message: &str) -> DiskFailure {
    DiskFailure {
        kind: DiskFailureKind::Other,
        message: message.to_owned(),
    }
}

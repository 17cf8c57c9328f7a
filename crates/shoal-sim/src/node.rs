//! One simulated node: a torrent engine, its in-memory "disk", and what the tests look at
//! (events, disconnects with their reasons, messages sent, blocks served).
//!
//! A magnet node starts with a [`MetadataFetch`] instead of a torrent; when the fetch hands out
//! the verified info dictionary the node starts its [`Torrent`] from it (geometry and
//! `info_bytes` from the fetched metadata) and dials the peers the fetch knew, as the runtime
//! would.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use sha1::{Digest, Sha1};
use shoal_engine::bitfield::Bitfield;
use shoal_engine::disk::{DiskDone, DiskFailure, DiskFailureKind, DiskRequest};
use shoal_engine::metadata::{
    FetchDropReason, FetchedMetadata, MetadataConfig, MetadataEvent, MetadataFetch, MetadataOutput,
    MetadataParams,
};
use shoal_engine::torrent::{
    DisconnectReason, Output, PeerSource, Torrent, TorrentConfig, TorrentEvent, TorrentParams,
};
use shoal_engine::PeerKey;
use shoal_proto::wire::Handshake;
use shoal_proto::{Geometry, PeerId};

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
    /// The torrent engine, or the metadata fetch of a magnet node that has not finished.
    pub engine: Engine,
    /// What the node's torrent starts from (a magnet node's once its metadata is fetched).
    config: TorrentConfig,
    private: bool,
    rng_seed: u64,
    geometry: Geometry,
    /// A magnet node's fetch: its events, the peers it dropped and why, and its result.
    pub fetch_events: Vec<(Duration, MetadataEvent)>,
    pub fetch_disconnects: Vec<(Duration, Option<SocketAddr>, FetchDropReason)>,
    pub fetched: Option<FetchedMetadata>,
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
        let config = spec
            .torrent
            .clone()
            .unwrap_or_else(|| sim.config.torrent.clone());
        let (have, storage) = if spec.seed {
            (Bitfield::full(geometry.piece_count()), sim.content.to_vec())
        } else {
            (
                Bitfield::new(geometry.piece_count()),
                vec![0; sim.content.len()],
            )
        };
        let engine = if spec.magnet {
            Engine::Fetching(MetadataFetch::new(MetadataParams {
                info_hash: sim.info_hash,
                our_peer_id: peer_id,
                listen_port: Some(addr.port()),
                config: MetadataConfig::default(),
            }))
        } else {
            let params = TorrentParams {
                info_hash: sim.info_hash,
                our_peer_id: peer_id,
                geometry,
                have,
                piece_priorities: Vec::new(),
                config: config.clone(),
                rng_seed,
                info_bytes: Some(sim.info_bytes.clone()),
                listen_port: Some(addr.port()),
                private: sim.config.private,
            };
            Engine::Running(Torrent::new(params, sim.now))
        };
        let completed_at = spec.seed.then_some(Duration::ZERO);
        Node {
            id,
            addr,
            peer_id,
            behaviour: spec.behaviour,
            link,
            engine,
            config,
            private: sim.config.private,
            rng_seed,
            geometry,
            fetch_events: Vec::new(),
            fetch_disconnects: Vec::new(),
            fetched: None,
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
        let geometry = self.geometry;
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
            let geometry = self.geometry;
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

    /// The torrent engine (`None` while a magnet node fetches its metadata).
    pub fn torrent(&self) -> Option<&Torrent> {
        match &self.engine {
            Engine::Running(torrent) => Some(torrent),
            Engine::Fetching(_) => None,
        }
    }

    /// Whether the engine reported a connection to `addr`.
    pub fn connected_to(&self, addr: SocketAddr) -> bool {
        self.events
            .iter()
            .any(|(_, e)| matches!(e, TorrentEvent::PeerConnected { addr: a, .. } if *a == addr))
    }

    /// A magnet node's fetch finished: start the torrent from the fetched metadata and dial the
    /// peers the fetch knew.
    pub(crate) fn start_from_metadata(&mut self, now: Instant, fetched: FetchedMetadata) {
        let info = &fetched.info;
        let geometry = info.geometry();
        let params = TorrentParams {
            info_hash: info.info_hash(),
            our_peer_id: self.peer_id,
            geometry,
            have: Bitfield::new(geometry.piece_count()),
            piece_priorities: Vec::new(),
            config: self.config.clone(),
            rng_seed: self.rng_seed,
            info_bytes: Some(info.raw().clone()),
            listen_port: Some(self.addr.port()),
            private: self.private || info.is_private(),
        };
        let mut torrent = Torrent::new(params, now);
        torrent.add_peer_addresses(now, fetched.peers.iter().copied(), PeerSource::Tracker);
        self.geometry = geometry;
        self.engine = Engine::Running(torrent);
        self.fetched = Some(fetched);
    }

    /// Pieces the engine reported verified.
    pub fn verified_pieces(&self) -> usize {
        self.events
            .iter()
            .filter(|(_, e)| matches!(e, TorrentEvent::PieceVerified(_)))
            .count()
    }

    /// Whether the given pieces of the node's storage equal the source.
    pub fn storage_matches_pieces(&self, source: &[u8], pieces: &BTreeSet<u32>) -> bool {
        pieces.iter().all(|&index| {
            let Some(piece) = self.geometry.piece(index) else {
                return false;
            };
            let start = self.geometry.piece_offset(piece) as usize;
            let range = start..start + self.geometry.piece_size(piece) as usize;
            self.storage.get(range.clone()) == source.get(range)
        })
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

/// What drives a node: a torrent, or a magnet link's metadata fetch.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Engine {
    Fetching(MetadataFetch),
    Running(Torrent),
}

/// An output of either engine.
#[derive(Debug)]
pub(crate) enum NodeOutput {
    Torrent(Output),
    Fetch(MetadataOutput),
}

impl Engine {
    pub(crate) fn add_peer_addresses(&mut self, now: Instant, addrs: Vec<SocketAddr>) {
        match self {
            Engine::Fetching(f) => f.add_peer_addresses(now, addrs, PeerSource::Tracker),
            Engine::Running(t) => t.add_peer_addresses(now, addrs, PeerSource::Tracker),
        }
    }
    pub(crate) fn handle_connected(&mut self, now: Instant, addr: SocketAddr) -> PeerKey {
        match self {
            Engine::Fetching(f) => f.handle_connected(now, addr),
            Engine::Running(t) => t.handle_connected(now, addr),
        }
    }
    pub(crate) fn handle_connect_failed(&mut self, now: Instant, addr: SocketAddr) {
        match self {
            Engine::Fetching(f) => f.handle_connect_failed(now, addr),
            Engine::Running(t) => t.handle_connect_failed(now, addr),
        }
    }
    pub(crate) fn handle_incoming(
        &mut self,
        now: Instant,
        addr: SocketAddr,
        theirs: Handshake,
    ) -> PeerKey {
        match self {
            Engine::Fetching(f) => f.handle_incoming(now, addr, theirs),
            Engine::Running(t) => t.handle_incoming(now, addr, theirs),
        }
    }
    pub(crate) fn handle_peer_data(&mut self, now: Instant, key: PeerKey, data: &[u8]) {
        match self {
            Engine::Fetching(f) => f.handle_peer_data(now, key, data),
            Engine::Running(t) => t.handle_peer_data(now, key, data),
        }
    }
    pub(crate) fn handle_peer_closed(&mut self, now: Instant, key: PeerKey) {
        match self {
            Engine::Fetching(f) => f.handle_peer_closed(now, key),
            Engine::Running(t) => t.handle_peer_closed(now, key),
        }
    }
    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        match self {
            Engine::Fetching(f) => f.handle_timeout(now),
            Engine::Running(t) => t.handle_timeout(now),
        }
    }
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        match self {
            Engine::Fetching(f) => f.poll_timeout(),
            Engine::Running(t) => t.poll_timeout(),
        }
    }
    pub(crate) fn poll_output(&mut self) -> Option<NodeOutput> {
        match self {
            Engine::Fetching(f) => f.poll_output().map(NodeOutput::Fetch),
            Engine::Running(t) => t.poll_output().map(NodeOutput::Torrent),
        }
    }
}

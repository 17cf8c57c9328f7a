//! shoal-sim: a deterministic in-memory swarm of shoal engines with a virtual clock and seeded
//! loss and latency.
//!
//! Every node runs a [`shoal_engine::torrent::Torrent`] exactly as the tokio runtime does: the
//! simulator feeds it bytes, connection results, disk completions and time-outs, and carries out
//! its [`Output`]s. The simulator is the disk (a `Vec<u8>` per node, with real SHA-1 checks of
//! pieces against the source's hashes) and the network (see [`net`] for the link model).
//!
//! Determinism: one seeded RNG draws the content and every latency, jitter and loss; events are
//! ordered by (time, sequence number); nodes and connections live in ordered maps. The step loop
//! always advances the virtual clock to the earliest of the next queued event and every node's
//! `poll_timeout`, like str0m's `progress`. [`Sim::trace_hash`] digests every output of every
//! node with its time, so two runs with the same seed can be compared.
//!
//! Checks the simulator makes as it goes: every block an honest node serves is compared with the
//! source ([`Node::bad_blocks_served`]), and every piece a node's engine calls verified was
//! hashed by the simulator itself.

pub mod net;
mod node;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sha1::{Digest, Sha1};
use shoal_engine::disk::DiskDone;
use shoal_engine::metadata::MetadataOutput;
use shoal_engine::torrent::{Output, TorrentConfig};
use shoal_engine::PeerKey;
use shoal_proto::metainfo::TorrentBuilder;
use shoal_proto::wire::{Handshake, Reserved};
use shoal_proto::{Geometry, InfoHash, PeerId};

pub use net::{Behaviour, LinkParams, MessageCounts};
pub use node::{DisconnectRecord, Engine, Node, NodeId};

use node::NodeOutput;

use net::Direction;

/// The swarm's shared settings.
#[derive(Clone, Debug)]
pub struct SimConfig {
    pub seed: u64,
    /// Content size and piece length (random content drawn from `seed`).
    pub total_len: u64,
    pub piece_len: u64,
    /// Default link of every node (a node may override it).
    pub link: LinkParams,
    /// Time the simulated disk takes per request.
    pub disk_latency: Duration,
    pub torrent: TorrentConfig,
    /// The torrent is private (BEP 27): `private=1` in its info dictionary.
    pub private: bool,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            seed: 1,
            total_len: 1024 * 1024 + 1000,
            piece_len: 32 * 1024,
            link: LinkParams::default(),
            disk_latency: Duration::from_millis(1),
            torrent: TorrentConfig::default(),
            private: false,
        }
    }
}

/// How to build one node.
#[derive(Clone, Debug, Default)]
pub struct NodeSpec {
    /// Starts with every piece (verified).
    pub seed: bool,
    pub behaviour: Behaviour,
    /// Overrides the swarm's default link for what this node sends.
    pub link: Option<LinkParams>,
    /// Knows only the infohash (a magnet link): fetches the metadata from peers first.
    pub magnet: bool,
    /// Overrides the swarm's torrent tunables for this node.
    pub torrent: Option<TorrentConfig>,
}

/// Which end of a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Side {
    /// Opened the connection.
    Opener,
    Acceptor,
}

impl Side {
    fn other(self) -> Side {
        match self {
            Side::Opener => Side::Acceptor,
            Side::Acceptor => Side::Opener,
        }
    }
}

/// What sits at one end of a connection.
#[derive(Debug)]
enum End {
    /// A node's engine, once it has a key for the connection (the acceptor gets one when the
    /// opener's handshake has arrived).
    Node {
        node: NodeId,
        key: Option<PeerKey>,
        pending: BytesMut,
    },
    /// A scripted peer driven by a test: records what it receives.
    Raw { received: BytesMut, closed: bool },
}

#[derive(Debug)]
struct Conn {
    opener: End,
    acceptor: End,
    opener_addr: SocketAddr,
    /// Direction written by the opener, and by the acceptor.
    from_opener: Direction,
    from_acceptor: Direction,
    open: bool,
}

type ConnId = u64;

#[derive(Debug)]
enum SimEvent {
    ConnectDone {
        node: NodeId,
        addr: SocketAddr,
        conn: Option<ConnId>,
    },
    Deliver {
        conn: ConnId,
        to: Side,
        data: Bytes,
    },
    Closed {
        conn: ConnId,
        to: Side,
    },
    Disk {
        node: NodeId,
        done: DiskDone,
    },
    /// The link took bytes a node transmitted (its "socket" has room again).
    Sent {
        node: NodeId,
        peer: PeerKey,
        bytes: u64,
    },
}

/// A swarm in memory. See the crate documentation.
#[derive(Debug)]
pub struct Sim {
    config: SimConfig,
    start: Instant,
    now: Instant,
    rng: StdRng,
    geometry: Geometry,
    info_hash: InfoHash,
    /// The torrent's real info dictionary; `info_hash` is its SHA-1.
    info_bytes: Bytes,
    content: Bytes,
    piece_hashes: Vec<[u8; 20]>,
    nodes: BTreeMap<NodeId, Node>,
    conns: BTreeMap<ConnId, Conn>,
    next_conn: ConnId,
    queue: BTreeMap<(Instant, u64), SimEvent>,
    next_seq: u64,
    trace: Sha1,
    steps: u64,
}

/// A failed simulation setup.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("bad geometry: {0}")]
    Geometry(#[from] shoal_proto::geometry::GeometryError),
    #[error("cannot build the info dictionary: {0}")]
    Build(#[from] shoal_proto::metainfo::BuildError),
}

impl Sim {
    /// A swarm with content of `config.total_len` random bytes and no nodes yet.
    pub fn new(config: SimConfig) -> Result<Sim, SimError> {
        let geometry = Geometry::new(config.total_len, config.piece_len)?;
        let mut rng = StdRng::seed_from_u64(config.seed);
        let mut content = vec![0u8; config.total_len as usize];
        rng.fill(&mut content[..]);
        let piece_hashes: Vec<[u8; 20]> = geometry
            .pieces()
            .map(|piece| {
                let start = geometry.piece_offset(piece) as usize;
                let end = start + geometry.piece_size(piece) as usize;
                Sha1::digest(&content[start..end]).into()
            })
            .collect();
        // Drawn as before so that the seeded run stays the same; it names the torrent.
        let mut salt = [0u8; 20];
        rng.fill(&mut salt);
        let name = format!("sim-{}", InfoHash(salt).to_hex());
        let builder = TorrentBuilder::single_file(
            name,
            config.total_len,
            geometry.piece_len(),
            piece_hashes.clone(),
        )
        .private(config.private);
        let info_bytes = Bytes::from(builder.info_bytes()?);
        let info_hash = InfoHash::of_info_bytes(&info_bytes);
        #[allow(clippy::disallowed_methods)]
        let start = Instant::now();
        Ok(Sim {
            config,
            start,
            now: start,
            rng,
            geometry,
            info_hash,
            info_bytes,
            content: content.into(),
            piece_hashes,
            nodes: BTreeMap::new(),
            conns: BTreeMap::new(),
            next_conn: 0,
            queue: BTreeMap::new(),
            next_seq: 0,
            trace: Sha1::new(),
            steps: 0,
        })
    }

    pub fn geometry(&self) -> Geometry {
        self.geometry
    }
    pub fn info_hash(&self) -> InfoHash {
        self.info_hash
    }
    /// The torrent's info dictionary (what BEP 9 serves).
    pub fn info_bytes(&self) -> &Bytes {
        &self.info_bytes
    }
    /// The source content every node should end up with.
    pub fn content(&self) -> &Bytes {
        &self.content
    }
    /// Virtual time since the start.
    pub fn elapsed(&self) -> Duration {
        self.now - self.start
    }
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Adds a node at address `10.0.x.y:6881`.
    pub fn add_node(&mut self, spec: NodeSpec) -> NodeId {
        let id = NodeId(self.nodes.len());
        let peer_id = PeerId::shoal(self.rng.gen());
        let addr = SocketAddr::from(([10, 0, (id.0 / 250) as u8, (id.0 % 250 + 1) as u8], 6881));
        let rng_seed = self.rng.gen();
        let link = spec.link.unwrap_or(self.config.link);
        let node = Node::new(self, id, addr, peer_id, spec, link, rng_seed);
        self.nodes.insert(id, node);
        id
    }

    pub fn node(&self, id: NodeId) -> &Node {
        &self.nodes[&id]
    }
    pub fn node_mut(&mut self, id: NodeId) -> &mut Node {
        self.nodes
            .get_mut(&id)
            .expect("node ids come from add_node")
    }
    pub fn node_ids(&self) -> Vec<NodeId> {
        self.nodes.keys().copied().collect()
    }

    /// Tells `node` the addresses of `others` (as a tracker would).
    pub fn introduce(&mut self, node: NodeId, others: &[NodeId]) {
        let addrs: Vec<SocketAddr> = others.iter().map(|o| self.nodes[o].addr).collect();
        let now = self.now;
        if let Some(n) = self.nodes.get_mut(&node) {
            n.engine.add_peer_addresses(now, addrs);
        }
        self.drain(node);
    }

    /// Tells every node about every other node.
    pub fn introduce_all(&mut self) {
        let ids = self.node_ids();
        for &id in &ids {
            let others: Vec<NodeId> = ids.iter().copied().filter(|o| *o != id).collect();
            self.introduce(id, &others);
        }
    }

    /// A digest of every output of every node, with its virtual time.
    pub fn trace_hash(&self) -> [u8; 20] {
        self.trace.clone().finalize().into()
    }

    /// Runs until `done` holds (checked after every step) or `limit` of virtual time passed.
    /// Returns whether `done` held.
    pub fn run_until(&mut self, limit: Duration, mut done: impl FnMut(&Sim) -> bool) -> bool {
        let deadline = self.start + limit;
        loop {
            if done(self) {
                return true;
            }
            if !self.step(deadline) {
                return done(self);
            }
        }
    }

    /// Runs until every honest, non-seed node completed.
    pub fn run_until_complete(&mut self, limit: Duration) -> bool {
        self.run_until(limit, |sim| {
            sim.nodes
                .values()
                .filter(|n| n.behaviour == Behaviour::Honest)
                .all(|n| n.completed_at.is_some())
        })
    }

    /// One step: advance to the earliest deadline (queued event or node time-out) and handle
    /// everything due then. False when nothing is left before `deadline`.
    pub fn step(&mut self, deadline: Instant) -> bool {
        let next_event = self.queue.keys().next().map(|(t, _)| *t);
        let next_timeout = self
            .nodes
            .values()
            .filter_map(|n| n.engine.poll_timeout().map(|t| (t, n.id)))
            .min();
        let next = match (next_event, next_timeout) {
            (Some(e), Some((t, _))) => e.min(t),
            (Some(e), None) => e,
            (None, Some((t, _))) => t,
            (None, None) => return false,
        };
        if next > deadline {
            self.now = deadline;
            return false;
        }
        self.now = self.now.max(next);
        self.steps += 1;
        if next_event == Some(next) {
            if let Some((_, event)) = self.queue.pop_first() {
                self.handle_event(event);
            }
        } else if let Some((_, id)) = next_timeout {
            let now = self.now;
            if let Some(node) = self.nodes.get_mut(&id) {
                node.engine.handle_timeout(now);
            }
            self.drain(id);
        }
        true
    }

    fn schedule(&mut self, at: Instant, event: SimEvent) {
        self.next_seq += 1;
        self.queue.insert((at, self.next_seq), event);
    }

    fn handle_event(&mut self, event: SimEvent) {
        let now = self.now;
        match event {
            SimEvent::ConnectDone { node, addr, conn } => {
                let Some(n) = self.nodes.get_mut(&node) else {
                    return;
                };
                match conn {
                    Some(conn) => {
                        let key = n.engine.handle_connected(now, addr);
                        n.conns.insert(key, (conn, Side::Opener));
                        if let Some(c) = self.conns.get_mut(&conn) {
                            c.opener = End::Node {
                                node,
                                key: Some(key),
                                pending: BytesMut::new(),
                            };
                        }
                    }
                    None => n.engine.handle_connect_failed(now, addr),
                }
                self.drain(node);
            }
            SimEvent::Deliver { conn, to, data } => self.deliver(conn, to, data),
            SimEvent::Closed { conn, to } => self.closed(conn, to),
            SimEvent::Disk { node, done } => {
                if let Some(Engine::Running(torrent)) =
                    self.nodes.get_mut(&node).map(|n| &mut n.engine)
                {
                    torrent.handle_disk(now, done);
                }
                self.drain(node);
            }
            SimEvent::Sent { node, peer, bytes } => {
                if let Some(Engine::Running(torrent)) =
                    self.nodes.get_mut(&node).map(|n| &mut n.engine)
                {
                    torrent.handle_peer_sent(now, peer, bytes);
                }
                self.drain(node);
            }
        }
    }

    fn deliver(&mut self, conn_id: ConnId, to: Side, data: Bytes) {
        let now = self.now;
        let info_hash = self.info_hash;
        let Some(conn) = self.conns.get_mut(&conn_id) else {
            return;
        };
        if !conn.open {
            return;
        }
        let from_addr = conn.opener_addr;
        let end = match to {
            Side::Opener => &mut conn.opener,
            Side::Acceptor => &mut conn.acceptor,
        };
        let (node, key, input) = match end {
            End::Raw { received, .. } => {
                received.extend_from_slice(&data);
                return;
            }
            End::Node {
                node,
                key: Some(key),
                ..
            } => (*node, *key, data),
            End::Node {
                node,
                key: None,
                pending,
            } => {
                // The runtime's listener: read the handshake, route it by infohash.
                pending.extend_from_slice(&data);
                let theirs = match Handshake::decode(pending) {
                    Ok(None) => return,
                    Ok(Some(theirs)) if theirs.info_hash == info_hash => theirs,
                    _ => {
                        conn.open = false;
                        return;
                    }
                };
                let rest = pending.split_off(Handshake::LEN).freeze();
                let node = *node;
                let Some(n) = self.nodes.get_mut(&node) else {
                    return;
                };
                let key = n.engine.handle_incoming(now, from_addr, theirs);
                n.conns.insert(key, (conn_id, to));
                if let Some(c) = self.conns.get_mut(&conn_id) {
                    c.acceptor = End::Node {
                        node,
                        key: Some(key),
                        pending: BytesMut::new(),
                    };
                }
                self.drain(node);
                (node, key, rest)
            }
        };
        if input.is_empty() {
            return;
        }
        if let Some(n) = self.nodes.get_mut(&node) {
            // The key may have been dropped (and, after a magnet node's fetch, reused).
            if n.conns.get(&key) == Some(&(conn_id, to)) {
                n.engine.handle_peer_data(now, key, &input);
            }
        }
        self.drain(node);
    }

    fn closed(&mut self, conn_id: ConnId, to: Side) {
        let now = self.now;
        let Some(conn) = self.conns.get_mut(&conn_id) else {
            return;
        };
        conn.open = false;
        let end = match to {
            Side::Opener => &mut conn.opener,
            Side::Acceptor => &mut conn.acceptor,
        };
        match end {
            End::Raw { closed, .. } => *closed = true,
            End::Node {
                node,
                key: Some(key),
                ..
            } => {
                let (node, key) = (*node, *key);
                if let Some(n) = self.nodes.get_mut(&node) {
                    if n.conns.get(&key) == Some(&(conn_id, to)) {
                        n.conns.remove(&key);
                        n.engine.handle_peer_closed(now, key);
                    }
                }
                self.drain(node);
            }
            End::Node { key: None, .. } => {}
        }
    }

    /// Carries out everything `node`'s engine wants done.
    fn drain(&mut self, id: NodeId) {
        while let Some(output) = self.nodes.get_mut(&id).and_then(|n| n.engine.poll_output()) {
            let output = match output {
                NodeOutput::Torrent(output) => output,
                NodeOutput::Fetch(output) => {
                    self.record_fetch(id, &output);
                    self.on_fetch_output(id, output);
                    continue;
                }
            };
            self.record(id, &output);
            let at = self.now - self.start;
            match output {
                Output::Transmit { peer, data } => self.transmit(id, peer, data),
                Output::Disk(request) => {
                    let Some(node) = self.nodes.get_mut(&id) else {
                        return;
                    };
                    let done = node.run_disk(request, &self.content, &self.piece_hashes);
                    let due = self.now + self.config.disk_latency;
                    self.schedule(due, SimEvent::Disk { node: id, done });
                }
                Output::Connect(addr) => self.connect(id, addr),
                Output::Disconnect { peer, reason } => {
                    let conn = self.nodes.get_mut(&id).and_then(|n| n.conns.remove(&peer));
                    let remote = conn.and_then(|(c, side)| self.remote_addr(c, side));
                    if let Some(node) = self.nodes.get_mut(&id) {
                        node.disconnects.push(DisconnectRecord {
                            at,
                            peer,
                            remote,
                            reason,
                        });
                    }
                    if let Some((conn, side)) = conn {
                        self.close(conn, side);
                    }
                }
                Output::Event(event) => {
                    if let Some(node) = self.nodes.get_mut(&id) {
                        node.on_event(at, event, &self.content);
                    }
                }
                _ => {}
            }
        }
    }

    fn record_fetch(&mut self, id: NodeId, output: &MetadataOutput) {
        let at = (self.now - self.start).as_nanos();
        self.trace.update(at.to_le_bytes());
        self.trace.update((id.0 as u64).to_le_bytes());
        self.trace.update(format!("{output:?}").as_bytes());
    }

    /// Carries out one output of a magnet node's metadata fetch.
    fn on_fetch_output(&mut self, id: NodeId, output: MetadataOutput) {
        let at = self.now - self.start;
        let now = self.now;
        match output {
            MetadataOutput::Transmit { peer, data } => self.transmit(id, peer, data),
            MetadataOutput::Connect(addr) => self.connect(id, addr),
            MetadataOutput::Disconnect { peer, reason } => {
                let conn = self.nodes.get_mut(&id).and_then(|n| n.conns.remove(&peer));
                let remote = conn.and_then(|(c, side)| self.remote_addr(c, side));
                if let Some(node) = self.nodes.get_mut(&id) {
                    node.fetch_disconnects.push((at, remote, reason));
                }
                if let Some((conn, side)) = conn {
                    self.close(conn, side);
                }
            }
            MetadataOutput::Event(event) => {
                if let Some(node) = self.nodes.get_mut(&id) {
                    node.fetch_events.push((at, event));
                }
            }
            MetadataOutput::Done(fetched) => {
                if let Some(node) = self.nodes.get_mut(&id) {
                    node.start_from_metadata(now, fetched);
                }
            }
            _ => {}
        }
    }

    fn record(&mut self, id: NodeId, output: &Output) {
        let at = (self.now - self.start).as_nanos();
        self.trace.update(at.to_le_bytes());
        self.trace.update((id.0 as u64).to_le_bytes());
        match output {
            Output::Transmit { peer, data } => {
                self.trace.update(peer.0.to_le_bytes());
                self.trace.update(data);
            }
            other => self.trace.update(format!("{other:?}").as_bytes()),
        }
    }

    /// The address of the far end of a connection, seen from `side`.
    fn remote_addr(&self, conn: ConnId, side: Side) -> Option<SocketAddr> {
        let c = self.conns.get(&conn)?;
        match side {
            Side::Acceptor => Some(c.opener_addr),
            Side::Opener => match &c.acceptor {
                End::Node { node, .. } => self.nodes.get(node).map(|n| n.addr),
                End::Raw { .. } => None,
            },
        }
    }

    fn transmit(&mut self, id: NodeId, peer: PeerKey, data: Bytes) {
        let Some(node) = self.nodes.get_mut(&id) else {
            return;
        };
        let Some(&(conn_id, side)) = node.conns.get(&peer) else {
            return;
        };
        let Some(conn) = self.conns.get_mut(&conn_id) else {
            return;
        };
        let direction = match side {
            Side::Opener => &mut conn.from_opener,
            Side::Acceptor => &mut conn.from_acceptor,
        };
        let taken = data.len() as u64;
        let data = direction.tap(data, node.behaviour, &mut node.sent);
        let at = if data.is_empty() {
            self.now
        } else {
            direction.schedule(self.now, data.len(), &node.link, &mut self.rng)
        };
        // The sender learns its bytes left once the link has carried them.
        self.schedule(
            at,
            SimEvent::Sent {
                node: id,
                peer,
                bytes: taken,
            },
        );
        if data.is_empty() {
            return;
        }
        self.schedule(
            at,
            SimEvent::Deliver {
                conn: conn_id,
                to: side.other(),
                data,
            },
        );
    }

    fn connect(&mut self, id: NodeId, addr: SocketAddr) {
        let target = self.nodes.values().find(|n| n.addr == addr).map(|n| n.id);
        let latency = self.nodes[&id].link.latency;
        let at = self.now + latency * 2;
        let Some(target) = target else {
            self.schedule(
                at,
                SimEvent::ConnectDone {
                    node: id,
                    addr,
                    conn: None,
                },
            );
            return;
        };
        let opener_addr = self.nodes[&id].addr;
        let conn = self.open_conn(
            End::Node {
                node: id,
                key: None,
                pending: BytesMut::new(),
            },
            End::Node {
                node: target,
                key: None,
                pending: BytesMut::new(),
            },
            opener_addr,
        );
        self.schedule(
            at,
            SimEvent::ConnectDone {
                node: id,
                addr,
                conn: Some(conn),
            },
        );
    }

    fn open_conn(&mut self, opener: End, acceptor: End, opener_addr: SocketAddr) -> ConnId {
        self.next_conn += 1;
        let max_frame = shoal_proto::wire::max_frame_len_for(self.geometry.piece_count());
        let conn = Conn {
            opener,
            acceptor,
            opener_addr,
            from_opener: Direction::new(self.now, max_frame),
            from_acceptor: Direction::new(self.now, max_frame),
            open: true,
        };
        self.conns.insert(self.next_conn, conn);
        self.next_conn
    }

    /// `side` closes the connection: the other side hears of it one latency later.
    fn close(&mut self, conn: ConnId, side: Side) {
        let at = self.now + self.config.link.latency;
        self.schedule(
            at,
            SimEvent::Closed {
                conn,
                to: side.other(),
            },
        );
    }

    /// Opens a connection from a scripted peer at `10.99.0.x:5000` to `target`, and sends the
    /// handshake (our infohash, the given reserved bits).
    pub fn connect_raw(&mut self, target: NodeId, reserved: Reserved) -> RawPeer {
        let n = self.conns.len() as u8;
        let addr = SocketAddr::from(([10, 99, 0, n.wrapping_add(1)], 5000));
        let conn = self.open_conn(
            End::Raw {
                received: BytesMut::new(),
                closed: false,
            },
            End::Node {
                node: target,
                key: None,
                pending: BytesMut::new(),
            },
            addr,
        );
        let raw = RawPeer { conn, addr };
        let handshake = Handshake {
            reserved,
            info_hash: self.info_hash,
            peer_id: PeerId::shoal(self.rng.gen()),
        };
        self.raw_send(&raw, Bytes::copy_from_slice(&handshake.encode()));
        raw
    }

    /// Sends bytes from a scripted peer (one latency later, no bandwidth limit).
    pub fn raw_send(&mut self, raw: &RawPeer, data: Bytes) {
        let at = self.now + self.config.link.latency;
        self.schedule(
            at,
            SimEvent::Deliver {
                conn: raw.conn,
                to: Side::Acceptor,
                data,
            },
        );
    }

    /// Bytes a scripted peer received so far, and whether the node closed the connection.
    pub fn raw_received(&self, raw: &RawPeer) -> (Bytes, bool) {
        match self.conns.get(&raw.conn).map(|c| &c.opener) {
            Some(End::Raw { received, closed }) => (Bytes::copy_from_slice(received), *closed),
            _ => (Bytes::new(), true),
        }
    }
}

/// A scripted peer connected to a node.
#[derive(Clone, Copy, Debug)]
pub struct RawPeer {
    conn: ConnId,
    pub addr: SocketAddr,
}

//! The Mainline DHT (BEP 5): finding peers for a torrent without a tracker, and telling the DHT
//! that we have one.
//!
//! **shoal runs its own node.** The logic is the sans-IO [`shoal_engine::dht::DhtNode`] over the
//! KRPC codec in [`shoal_proto::dht`]; this module is its tokio driver (`driver.rs`) behind
//! [`DhtHandle`]. shoal used the `mainline` crate until it was found (8.0.1, the newest release)
//! to parse KRPC transaction ids as exactly 4 bytes and silently drop every other message:
//! libtorrent sends 2-byte ids, so libtorrent nodes could never use a shoal node
//! (`tests/dht_libtorrent.rs`). Our codec keeps ids of 1 to 16 bytes and echoes them exactly.
//! Scope: IPv4 only, no BEP 42 node-id restrictions, no BEP 44 storage.
//!
//! Data flow: [`DhtHandle::start`] resolves the bootstrap names (off the async threads), binds
//! the UDP socket, starts the driver task and bootstraps from saved nodes and the configured
//! routers. [`DhtHandle::get_peers`] runs one iterative lookup and hands out each distinct peer
//! once ([`PeerLookup`]); [`DhtHandle::announce`] stores our listen port on the nodes closest to
//! the infohash. [`DhtHandle::save_routing_table`] lists live nodes, which [`save_nodes`]
//! persists atomically for the next start.
//!
//! Guarantees: private torrents never reach the DHT: lookups and announces take a
//! [`PublicInfoHash`], made only by [`PublicInfoHash::new`] from a torrent that is not private.
//! Every failure is a typed [`DhtError`]; a stopped driver becomes [`DhtError::NodeStopped`].
//! Memory is bounded: the node caps its table, requests, lookups and stored peers, and a lookup
//! hands out at most [`MAX_PEERS_PER_LOOKUP`] peers. Tests pass loopback bootstrap nodes
//! explicitly and never use [`DEFAULT_BOOTSTRAP_NODES`].

mod driver;
mod nodes_file;

use std::collections::HashSet;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, ToSocketAddrs};
use std::time::{Duration, Instant};

use shoal_engine::dht::{DhtNode, NodeConfig};
use shoal_proto::InfoHash;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use driver::Command;
pub use nodes_file::{load_nodes, save_nodes, NodesFileError, MAX_NODES_FILE_LEN, MAX_SAVED_NODES};

/// The well-known public routers a fresh node bootstraps from (resolved at start).
pub const DEFAULT_BOOTSTRAP_NODES: [&str; 4] = [
    "router.bittorrent.com:6881",
    "dht.transmissionbt.com:6881",
    "router.utorrent.com:6881",
    "dht.libtorrent.org:25401",
];
/// Most distinct peers one lookup hands out.
pub const MAX_PEERS_PER_LOOKUP: usize = 2_000;
/// Peers a lookup can hold for a slow reader: all of them, so the node never waits on a reader
/// (memory per lookup stays bounded by [`MAX_PEERS_PER_LOOKUP`]).
pub const LOOKUP_CHANNEL_CAPACITY: usize = MAX_PEERS_PER_LOOKUP;
/// How long to wait for one node's reply by default.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// Requests from handles queued for the driver.
const COMMAND_QUEUE: usize = 256;

/// How to run the DHT node. `Default` is a real node on `0.0.0.0:6881` bootstrapping from
/// [`DEFAULT_BOOTSTRAP_NODES`]; tests use [`DhtConfig::loopback`].
#[derive(Clone, Debug)]
pub struct DhtConfig {
    /// Local address of the UDP socket; port 0 picks a free port.
    pub bind: SocketAddrV4,
    /// Routers to bootstrap from, as `host:port`; names are resolved when the node starts.
    pub bootstrap: Vec<String>,
    /// Nodes saved by a previous run ([`load_nodes`]); tried before `bootstrap`.
    pub saved_nodes: Vec<SocketAddrV4>,
    /// Ask other nodes to add us to their routing tables. `false` (default) marks our queries
    /// read-only (BEP 43), right for a node that may sit behind NAT; the node answers queries
    /// that reach it either way. Local test networks and interop tests use `true`.
    pub server_mode: bool,
    /// How long to wait for one node's reply before giving up on it.
    pub request_timeout: Duration,
    /// Our public IPv4 address if known. Kept for configuration compatibility; the node does
    /// not derive a BEP 42 id from it.
    pub public_ip: Option<Ipv4Addr>,
}

impl Default for DhtConfig {
    fn default() -> Self {
        DhtConfig {
            bind: SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 6881),
            bootstrap: DEFAULT_BOOTSTRAP_NODES
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
            saved_nodes: Vec::new(),
            server_mode: false,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            public_ip: None,
        }
    }
}

impl DhtConfig {
    /// A server-mode node on `127.0.0.1` (free port) that bootstraps only from `bootstrap`:
    /// for local networks of nodes, where nothing may reach a public address.
    pub fn loopback(bootstrap: &[SocketAddrV4]) -> Self {
        DhtConfig {
            bind: SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0),
            bootstrap: bootstrap.iter().map(SocketAddrV4::to_string).collect(),
            server_mode: true,
            ..DhtConfig::default()
        }
    }
}

/// An infohash that may be used on the DHT: its torrent is not private (BEP 27).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct PublicInfoHash(InfoHash);

impl PublicInfoHash {
    /// `None` for a private torrent: those must only use their trackers.
    pub fn new(info_hash: InfoHash, private: bool) -> Option<Self> {
        (!private).then_some(PublicInfoHash(info_hash))
    }

    /// The infohash itself.
    pub fn info_hash(&self) -> InfoHash {
        self.0
    }
}

/// What went wrong on the DHT.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DhtError {
    #[error("cannot bind the DHT socket on {bind}")]
    Bind {
        bind: SocketAddrV4,
        #[source]
        source: std::io::Error,
    },
    #[error("no bootstrap node could be resolved to an IPv4 address (tried {tried} names)")]
    NoBootstrapAddress { tried: usize },
    #[error("the DHT node has stopped")]
    NodeStopped,
    #[error("announcing {info_hash} on the DHT failed: {reason}")]
    Announce { info_hash: InfoHash, reason: String },
}

/// A snapshot of the node's state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DhtStats {
    /// The UDP address the node listens on.
    pub local_addr: SocketAddrV4,
    /// Our node id, hex.
    pub node_id: String,
    /// Nodes in the routing table.
    pub routing_table_nodes: usize,
    /// Whether other nodes are asked to add us (see [`DhtConfig::server_mode`]).
    pub server_mode: bool,
    /// Estimated number of nodes in the whole DHT (0 while the table is small).
    pub dht_size_estimate: usize,
    /// Datagrams sent and received since the start.
    pub messages_sent: Option<u64>,
    pub messages_received: Option<u64>,
    /// Of `messages_sent`, the queries (the rest are replies).
    pub queries_sent: Option<u64>,
}

/// A running DHT node. Dropping it (or [`DhtHandle::shutdown`]) stops the driver task and
/// closes the socket.
#[derive(Debug)]
pub struct DhtHandle {
    commands: mpsc::Sender<Command>,
    local_addr: SocketAddrV4,
    node_id: String,
    server_mode: bool,
    cancel: CancellationToken,
}

impl DhtHandle {
    /// Starts a node: resolves bootstrap names, binds, and begins bootstrapping in the
    /// background. Fails if the socket cannot be bound, or if bootstrap names were given and
    /// saved nodes were not, yet none resolved.
    pub async fn start(config: DhtConfig) -> Result<DhtHandle, DhtError> {
        let resolve = config.clone();
        let seeds = tokio::task::spawn_blocking(move || bootstrap_addrs(&resolve))
            .await
            .map_err(|_| DhtError::NodeStopped)??;
        let bind = config.bind;
        let bind_err = |source| DhtError::Bind { bind, source };
        let socket = tokio::net::UdpSocket::bind(bind).await.map_err(bind_err)?;
        let local_addr = match socket.local_addr().map_err(bind_err)? {
            SocketAddr::V4(v4) => v4,
            SocketAddr::V6(_) => bind,
        };
        let node_config = NodeConfig {
            seed: rand::random(),
            read_only: !config.server_mode,
            request_timeout: config.request_timeout,
        };
        let mut node = DhtNode::new(node_config, Instant::now());
        let node_id = node.id().to_hex();
        node.bootstrap(Instant::now(), &seeds);
        let (commands, receiver) = mpsc::channel(COMMAND_QUEUE);
        let cancel = CancellationToken::new();
        let span = tracing::info_span!("dht", addr = %local_addr);
        let task = driver::run(node, socket, receiver, cancel.clone()).instrument(span);
        tokio::spawn(task);
        tracing::info!(addr = %local_addr, id = %node_id, "DHT node started");
        Ok(DhtHandle {
            commands,
            local_addr,
            node_id,
            server_mode: config.server_mode,
            cancel,
        })
    }

    /// The UDP address the node listens on (with the real port when port 0 was asked for).
    pub fn local_addr(&self) -> SocketAddrV4 {
        self.local_addr
    }

    /// Waits for the first bootstrap to finish; `true` if it found any node.
    pub async fn bootstrapped(&self) -> Result<bool, DhtError> {
        self.ask(|reply| Command::Bootstrapped { reply }).await
    }

    /// Starts an iterative `get_peers` lookup. Each distinct peer comes out once; the lookup
    /// ends (the reader sees `None`) when the query is done, after [`MAX_PEERS_PER_LOOKUP`]
    /// peers, on shutdown, or when the [`PeerLookup`] is dropped.
    pub fn get_peers(&self, info_hash: PublicInfoHash) -> PeerLookup {
        let (peers, rx) = mpsc::channel(LOOKUP_CHANNEL_CAPACITY);
        let command = Command::GetPeers {
            info_hash: info_hash.info_hash().0,
            peers,
        };
        match self.commands.try_send(command) {
            Ok(()) => {}
            // A busy driver: queue the lookup from a task rather than wait here.
            Err(mpsc::error::TrySendError::Full(command)) => {
                let commands = self.commands.clone();
                tokio::spawn(async move { commands.send(command).await });
            }
            // A stopped node: the lookup ends at once, empty.
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
        PeerLookup { rx }
    }

    /// Announces that we serve `info_hash` on TCP `port`, to the nodes closest to it.
    pub async fn announce(&self, info_hash: PublicInfoHash, port: u16) -> Result<(), DhtError> {
        let hash = info_hash.info_hash();
        let stored = self
            .ask(|stored| Command::Announce {
                info_hash: hash.0,
                port,
                stored,
            })
            .await?;
        if stored == 0 {
            return Err(DhtError::Announce {
                info_hash: hash,
                reason: "no DHT node accepted the announce".to_owned(),
            });
        }
        tracing::debug!(info_hash = %hash, nodes = stored, "announced on the DHT");
        Ok(())
    }

    /// Live nodes of the routing table, to save with [`save_nodes`] and pass back as
    /// [`DhtConfig::saved_nodes`] next time.
    pub async fn save_routing_table(&self) -> Result<Vec<SocketAddrV4>, DhtError> {
        self.ask(|reply| Command::LiveNodes { reply }).await
    }

    /// Current node statistics.
    pub async fn stats(&self) -> Result<DhtStats, DhtError> {
        let snapshot = self.ask(|reply| Command::Stats { reply }).await?;
        Ok(DhtStats {
            local_addr: self.local_addr,
            node_id: self.node_id.clone(),
            routing_table_nodes: snapshot.table_nodes,
            server_mode: self.server_mode,
            dht_size_estimate: snapshot.size_estimate,
            messages_sent: Some(snapshot.messages_sent),
            messages_received: Some(snapshot.messages_received),
            queries_sent: Some(snapshot.queries_sent),
        })
    }

    /// Stops the node and every lookup still running.
    pub fn shutdown(self) {
        self.cancel.cancel();
    }

    /// Sends a command that carries a reply channel and waits for the reply.
    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, DhtError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(make(reply))
            .await
            .map_err(|_| DhtError::NodeStopped)?;
        answer.await.map_err(|_| DhtError::NodeStopped)
    }
}

impl Drop for DhtHandle {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// The peers found by one [`DhtHandle::get_peers`] lookup.
#[derive(Debug)]
pub struct PeerLookup {
    rx: mpsc::Receiver<SocketAddr>,
}

impl PeerLookup {
    /// The next peer not seen before in this lookup, or `None` once the lookup is over.
    pub async fn next(&mut self) -> Option<SocketAddr> {
        self.rx.recv().await
    }
}

/// Saved nodes first, then the routers' IPv4 addresses, deduplicated (blocking: DNS).
fn bootstrap_addrs(config: &DhtConfig) -> Result<Vec<SocketAddrV4>, DhtError> {
    let mut seeds = config.saved_nodes.clone();
    let resolved = config
        .bootstrap
        .iter()
        .filter_map(|name| name.to_socket_addrs().ok());
    seeds.extend(resolved.flatten().filter_map(|addr| match addr {
        SocketAddr::V4(v4) => Some(v4),
        SocketAddr::V6(_) => None,
    }));
    if seeds.is_empty() && !config.bootstrap.is_empty() {
        return Err(DhtError::NoBootstrapAddress {
            tried: config.bootstrap.len(),
        });
    }
    let mut dedup = HashSet::new();
    seeds.retain(|addr| dedup.insert(*addr));
    Ok(seeds)
}

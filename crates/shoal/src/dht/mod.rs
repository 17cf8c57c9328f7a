//! The Mainline DHT (BEP 5): finding peers for a torrent without a tracker, and telling the DHT
//! that we have one.
//!
//! **Built on the `mainline` crate**, wrapped in our own [`DhtHandle`]. Why not our own sans-IO
//! node: `mainline` is a maintained, complete BEP 5 node (iterative lookups, tokens, routing
//! table upkeep, BEP 42 ids, adaptive server mode) that interoperates with libtorrent (tested
//! in `tests/dht_libtorrent.rs`); writing and hardening one ourselves is weeks of work for no gain
//! the user would see. What we give up: `mainline` owns its UDP socket and runs one blocking
//! actor thread per node (waking every 50 ms), is IPv4 only, and does not count messages
//! (`DhtStats` says so with `None`). Everything `mainline` is confined to this module: the rest
//! of shoal sees only the types here, so the node can be swapped later.
//!
//! Data flow: [`DhtHandle::start`] resolves the bootstrap names (off the async threads), binds
//! the socket and bootstraps from saved nodes first, then the configured routers.
//! [`DhtHandle::get_peers`] runs one iterative lookup and hands out each distinct peer once on a
//! bounded channel ([`PeerLookup`]); [`DhtHandle::announce`] stores our listen port on the nodes
//! closest to the infohash. [`DhtHandle::save_routing_table`] lists good nodes, which
//! [`save_nodes`] persists atomically for the next start.
//!
//! Guarantees: private torrents never reach the DHT: lookups and announces take a
//! [`PublicInfoHash`], made only by [`PublicInfoHash::new`] from a torrent that is not private.
//! Every failure is a typed [`DhtError`]; a dead node thread becomes [`DhtError::NodeStopped`],
//! not a panic. Memory per lookup is bounded by [`LOOKUP_CHANNEL_CAPACITY`] and
//! [`MAX_PEERS_PER_LOOKUP`]. Tests pass loopback bootstrap nodes explicitly and never use
//! [`DEFAULT_BOOTSTRAP_NODES`].

mod nodes_file;

use std::collections::HashSet;
use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, ToSocketAddrs};
use std::pin::Pin;
use std::time::Duration;

use mainline::async_dht::AsyncDht;
use shoal_proto::InfoHash;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

pub use nodes_file::{load_nodes, save_nodes, NodesFileError, MAX_NODES_FILE_LEN, MAX_SAVED_NODES};

/// The well-known public routers a fresh node bootstraps from (resolved at start).
pub const DEFAULT_BOOTSTRAP_NODES: [&str; 4] = [
    "router.bittorrent.com:6881",
    "dht.transmissionbt.com:6881",
    "router.utorrent.com:6881",
    "dht.libtorrent.org:25401",
];
/// Peers buffered between a lookup and its reader; the lookup waits when the reader lags.
pub const LOOKUP_CHANNEL_CAPACITY: usize = 256;
/// Most distinct peers one lookup hands out (and remembers for de-duplication).
pub const MAX_PEERS_PER_LOOKUP: usize = 2_000;

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
    /// Answer queries and join other nodes' routing tables from the start. `false` (default)
    /// starts read-only and lets the node switch to server mode once it sees it is reachable.
    /// Local test networks and interop tests need `true`.
    pub server_mode: bool,
    /// How long to wait for one node's reply before giving up on it.
    pub request_timeout: Duration,
    /// Our public IPv4 address if known, to derive a BEP 42 node id from it.
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
            request_timeout: mainline::DEFAULT_REQUEST_TIMEOUT,
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

    fn id(&self) -> mainline::Id {
        mainline::Id::from(self.0 .0)
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
    /// Good nodes in the routing table.
    pub routing_table_nodes: usize,
    /// Whether the node answers queries (server mode) or is read-only.
    pub server_mode: bool,
    /// Estimated number of nodes in the whole DHT.
    pub dht_size_estimate: usize,
    /// Messages sent and received: `None`, the `mainline` crate does not count them.
    pub messages_sent: Option<u64>,
    pub messages_received: Option<u64>,
}

/// A running DHT node. Dropping it (or [`DhtHandle::shutdown`]) stops the node: its thread
/// exits within about 50 ms and the socket closes.
#[derive(Debug)]
pub struct DhtHandle {
    node: AsyncDht,
    local_addr: SocketAddrV4,
    cancel: CancellationToken,
}

impl DhtHandle {
    /// Starts a node: resolves bootstrap names, binds, and begins bootstrapping in the
    /// background. Fails if the socket cannot be bound, or if bootstrap names were given and
    /// saved nodes were not, yet none resolved.
    pub async fn start(config: DhtConfig) -> Result<DhtHandle, DhtError> {
        let bind = config.bind;
        let node = tokio::task::spawn_blocking(move || start_blocking(config))
            .await
            .map_err(|_| DhtError::NodeStopped)??;
        let mut handle = DhtHandle {
            node,
            local_addr: bind,
            cancel: CancellationToken::new(),
        };
        let stats = handle.stats().await?;
        tracing::info!(addr = %stats.local_addr, id = %stats.node_id, "DHT node started");
        handle.local_addr = stats.local_addr;
        Ok(handle)
    }

    /// The UDP address the node listens on (with the real port when port 0 was asked for).
    pub fn local_addr(&self) -> SocketAddrV4 {
        self.local_addr
    }

    /// Waits for the first bootstrap to finish; `true` if it found any node.
    pub async fn bootstrapped(&self) -> Result<bool, DhtError> {
        self.call(|node| async move { node.bootstrapped().await })
            .await
    }

    /// Starts an iterative `get_peers` lookup. Each distinct peer comes out once; the lookup
    /// ends (the reader sees `None`) when the query is done, after [`MAX_PEERS_PER_LOOKUP`]
    /// peers, on shutdown, or when the [`PeerLookup`] is dropped.
    pub fn get_peers(&self, info_hash: PublicInfoHash) -> PeerLookup {
        let (tx, rx) = mpsc::channel(LOOKUP_CHANNEL_CAPACITY);
        let node = self.node.clone();
        let cancel = self.cancel.child_token();
        let span = tracing::debug_span!("dht_lookup", info_hash = %info_hash.info_hash());
        tokio::spawn(
            async move {
                tokio::select! {
                    () = cancel.cancelled() => {}
                    () = forward_peers(node, info_hash, tx) => {}
                }
            }
            .instrument(span),
        );
        PeerLookup { rx }
    }

    /// Announces that we serve `info_hash` on TCP `port`, to the nodes closest to it.
    pub async fn announce(&self, info_hash: PublicInfoHash, port: u16) -> Result<(), DhtError> {
        let id = info_hash.id();
        let result = self.call(move |node| async move { node.announce_peer(id, Some(port)).await });
        match result.await? {
            Ok(_) => Ok(()),
            Err(error) => Err(DhtError::Announce {
                info_hash: info_hash.info_hash(),
                reason: error.to_string(),
            }),
        }
    }

    /// Good nodes of the routing table, to save with [`save_nodes`] and pass back as
    /// [`DhtConfig::saved_nodes`] next time.
    pub async fn save_routing_table(&self) -> Result<Vec<SocketAddrV4>, DhtError> {
        let nodes = self
            .call(|node| async move { node.to_bootstrap().await })
            .await?;
        Ok(nodes.iter().filter_map(|node| node.parse().ok()).collect())
    }

    /// Current node statistics.
    pub async fn stats(&self) -> Result<DhtStats, DhtError> {
        let (info, table) = self
            .call(|node| async move { (node.info().await, node.to_bootstrap().await.len()) })
            .await?;
        Ok(DhtStats {
            local_addr: info.local_addr(),
            node_id: info.id().to_string(),
            routing_table_nodes: table,
            server_mode: info.server_mode(),
            dht_size_estimate: info.dht_size_estimate().0,
            messages_sent: None,
            messages_received: None,
        })
    }

    /// Stops the node and every lookup still running.
    pub fn shutdown(self) {
        self.cancel.cancel();
    }

    /// Runs a call on the node in its own task, so that a `mainline` panic (its thread gone)
    /// becomes [`DhtError::NodeStopped`] instead of unwinding into the caller.
    async fn call<T, F, Fut>(&self, f: F) -> Result<T, DhtError>
    where
        F: FnOnce(AsyncDht) -> Fut,
        Fut: Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        tokio::spawn(f(self.node.clone()))
            .await
            .map_err(|_| DhtError::NodeStopped)
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

fn start_blocking(config: DhtConfig) -> Result<AsyncDht, DhtError> {
    let mut bootstrap = config.saved_nodes.clone();
    let resolved = config
        .bootstrap
        .iter()
        .filter_map(|name| name.to_socket_addrs().ok());
    bootstrap.extend(resolved.flatten().filter_map(|addr| match addr {
        SocketAddr::V4(v4) => Some(v4),
        SocketAddr::V6(_) => None,
    }));
    if bootstrap.is_empty() && !config.bootstrap.is_empty() {
        return Err(DhtError::NoBootstrapAddress {
            tried: config.bootstrap.len(),
        });
    }
    let mut dedup = HashSet::new();
    bootstrap.retain(|addr| dedup.insert(*addr));
    let mainline_config = mainline::Config {
        bootstrap: Some(bootstrap),
        port: Some(config.bind.port()),
        request_timeout: config.request_timeout,
        server_mode: config.server_mode,
        public_ip: config.public_ip,
        bind_address: Some(*config.bind.ip()),
        ..mainline::Config::default()
    };
    mainline::Dht::new(mainline_config)
        .map(mainline::Dht::as_async)
        .map_err(|source| DhtError::Bind {
            bind: config.bind,
            source,
        })
}

/// Reads `mainline`'s stream of peer batches and hands each new peer to the reader.
async fn forward_peers(node: AsyncDht, info_hash: PublicInfoHash, tx: mpsc::Sender<SocketAddr>) {
    let id = info_hash.id();
    let Ok(mut batches) = tokio::spawn(async move { node.get_peers(id) }).await else {
        tracing::warn!("DHT node stopped before the lookup began");
        return;
    };
    let mut seen = HashSet::new();
    while let Some(batch) = next_batch(&mut batches).await {
        for peer in batch {
            if peer.port() == 0 || !seen.insert(peer) {
                continue;
            }
            if tx.send(SocketAddr::V4(peer)).await.is_err() {
                return;
            }
            if seen.len() >= MAX_PEERS_PER_LOOKUP {
                tracing::debug!(peers = seen.len(), "lookup reached its peer limit");
                return;
            }
        }
    }
}

async fn next_batch<S>(stream: &mut S) -> Option<S::Item>
where
    S: futures_core::Stream + Unpin,
{
    std::future::poll_fn(|cx| Pin::new(&mut *stream).poll_next(cx)).await
}

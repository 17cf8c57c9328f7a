//! The session: one listener, one disk pool, and a task per torrent. The library's facade.
//!
//! `Session::start` binds the peer listener; `add_torrent` parses the metainfo, opens storage
//! under the download folder, checks the data already there (only pieces whose SHA-1 matches
//! count), and starts the torrent's task. Front ends watch a torrent through its
//! [`TorrentHandle`] (status snapshots and events) and stop everything with `shutdown`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use shoal_engine::bitfield::Bitfield;
use shoal_engine::torrent::{PeerSource, Torrent, TorrentConfig, TorrentEvent, TorrentParams};
use shoal_proto::metainfo::Metainfo;
use shoal_proto::{InfoHash, PeerId};
use tokio::net::TcpListener;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

use crate::api::{AddTorrent, TorrentState, TorrentStatus};
use crate::dht::{DhtConfig, DhtHandle, PublicInfoHash};
use crate::discovery::{self, DiscoveryHandle, DiscoveryParams};
use crate::lsd::{LsdConfig, LsdHandle, LsdPeer};
use crate::magnet_task::MagnetTask;
use crate::net::{self, Router};
use crate::rate_limit::{LimitPair, PeerLimits, RateLimits};
use crate::storage::{self, DiskPool, DiskPoolConfig, StorageOptions, TorrentStorage};
use crate::torrent_task::{Rebuild, ResumeTarget, TorrentCommand, TorrentTask};
use crate::tracker::{TrackerClient, TrackerConfig};
use shoal_engine::metadata::{MetadataConfig, MetadataFetch, MetadataParams};

/// Settings of a session. `Default` listens on all addresses at port 6881.
#[derive(Clone, Debug)]
pub struct SessionConfig {
    /// Where peers connect to us. Port 0 picks a free port.
    pub listen_addr: SocketAddr,
    /// Tunables every torrent starts with.
    pub torrent: TorrentConfig,
    pub disk: DiskPoolConfig,
    /// Threads for checking existing data (default: all cores).
    pub check_threads: usize,
    /// Folder for resume files and the DHT's saved nodes; `None` keeps none (every start hashes
    /// what is on disk).
    pub state_dir: Option<PathBuf>,
    /// Tracker client settings.
    pub tracker: TrackerConfig,
    /// The Mainline DHT node; `None` (the library default) runs none. Front ends turn it on.
    pub dht: Option<DhtConfig>,
    /// Local Service Discovery (BEP 14); `None` (the library default) runs none. Its
    /// `listen_port` is replaced by the session's.
    pub lsd: Option<LsdConfig>,
    /// Global rate limits over all torrents (default: none). Change them later with
    /// [`Session::set_rate_limits`]; per torrent with [`TorrentHandle::set_rate_limits`].
    pub rate_limits: RateLimits,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            listen_addr: SocketAddr::from(([0, 0, 0, 0], 6881)),
            torrent: TorrentConfig::default(),
            disk: DiskPoolConfig::default(),
            check_threads: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2),
            state_dir: None,
            tracker: TrackerConfig::default(),
            dht: None,
            lsd: None,
            rate_limits: RateLimits::default(),
        }
    }
}

/// Why a session or torrent operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot start the disk pool: {0}")]
    DiskPool(std::io::Error),
    #[error("invalid torrent: {0}")]
    Metainfo(#[from] shoal_proto::metainfo::MetainfoError),
    #[error("storage: {0}")]
    Storage(#[from] storage::StorageError),
    #[error("the torrent {0} is already in the session")]
    Duplicate(InfoHash),
    #[error("the session is shutting down")]
    ShuttingDown,
    #[error("invalid magnet link: {0}")]
    MagnetLink(#[from] shoal_proto::magnet::MagnetError),
    #[error("magnet metadata: {0}")]
    MagnetFetch(#[from] crate::magnet_task::MagnetError),
    #[error("cannot start the DHT: {0}")]
    Dht(#[from] crate::dht::DhtError),
}

/// A running BitTorrent session.
#[derive(Debug)]
pub struct Session {
    config: SessionConfig,
    listen_addr: SocketAddr,
    peer_id: PeerId,
    router: Router,
    disk: Arc<DiskPool>,
    torrents: Arc<Mutex<HashMap<InfoHash, TorrentHandle>>>,
    tracker_client: Option<Arc<TrackerClient>>,
    lsd: Option<LsdHandle>,
    dht: Option<Arc<DhtHandle>>,
    /// The global rate limits every connection is charged to.
    limits: LimitPair,
    cancel: CancellationToken,
}

/// A front end's handle on one torrent.
#[derive(Debug, Clone)]
pub struct TorrentHandle {
    info_hash: InfoHash,
    /// Private torrents (BEP 27) use their trackers only: no DHT, PEX or LSD.
    private: bool,
    status: watch::Receiver<TorrentStatus>,
    events: broadcast::Sender<TorrentEvent>,
    commands: mpsc::Sender<TorrentCommand>,
    discovery: DiscoveryHandle,
    /// This torrent's own rate limits (under the session's).
    limits: LimitPair,
}

impl Session {
    /// Binds the listener and starts the disk pool.
    pub async fn start(config: SessionConfig) -> Result<Session, SessionError> {
        let listener = TcpListener::bind(config.listen_addr)
            .await
            .map_err(|source| SessionError::Listen {
                addr: config.listen_addr,
                source,
            })?;
        let listen_addr = listener.local_addr().unwrap_or(config.listen_addr);
        let disk = DiskPool::new(config.disk).map_err(SessionError::DiskPool)?;
        let router = Router::default();
        let cancel = CancellationToken::new();
        tokio::spawn(net::accept_loop(
            listener,
            router.clone(),
            cancel.child_token(),
        ));
        tracing::info!(%listen_addr, "listening for peers");
        let tracker_client = match TrackerClient::new(config.tracker.clone()) {
            Ok(client) => Some(Arc::new(client)),
            Err(error) => {
                tracing::error!(%error, "tracker client unavailable; trackers will not be used");
                None
            }
        };
        let dht = match &config.dht {
            Some(dht_config) => Some(Arc::new(
                start_dht(dht_config.clone(), config.state_dir.as_deref()).await?,
            )),
            None => None,
        };
        let torrents = Arc::new(Mutex::new(HashMap::new()));
        let lsd = config.lsd.clone().and_then(|lsd_config| {
            start_lsd(
                lsd_config,
                listen_addr.port(),
                Arc::clone(&torrents),
                cancel.child_token(),
            )
        });
        Ok(Session {
            limits: LimitPair::new(config.rate_limits),
            tracker_client,
            dht,
            config,
            listen_addr,
            peer_id: PeerId::shoal(rand::random()),
            router,
            disk: Arc::new(disk),
            torrents,
            lsd,
            cancel,
        })
    }

    /// The address peers reach us on (with the real port when port 0 was asked for).
    pub fn listen_addr(&self) -> SocketAddr {
        self.listen_addr
    }

    /// Adds a torrent: opens its storage, checks existing data, starts it.
    pub async fn add_torrent(&self, add: AddTorrent) -> Result<TorrentHandle, SessionError> {
        let meta = Metainfo::from_bytes(&add.metainfo)?;
        let info_hash = meta.info_hash();
        if self.lock_torrents().contains_key(&info_hash) {
            return Err(SessionError::Duplicate(info_hash));
        }
        let geometry = meta.info.geometry();
        let layout = storage::layout_of(&meta.info)?;
        let storage = Arc::new(TorrentStorage::new(
            &add.download_dir,
            layout,
            geometry,
            meta.info.piece_hashes().to_vec(),
            StorageOptions::default(),
        )?);
        let status = initial_status(&meta);
        let (status_tx, status_rx) = watch::channel(status);
        let resume = self.resume_target(info_hash, &add.download_dir);
        let verified = self.restore(&storage, resume.as_ref(), &status_tx).await;
        let mut have = Bitfield::new(geometry.piece_count());
        for piece in geometry.pieces().filter(|p| verified[p.as_usize()]) {
            have.set(piece);
        }
        let params = TorrentParams {
            info_hash,
            our_peer_id: self.peer_id,
            geometry,
            have,
            piece_priorities: Vec::new(),
            config: self.config.torrent.clone(),
            rng_seed: rand::random(),
            info_bytes: Some(meta.info.raw().clone()),
            listen_port: Some(self.listen_addr.port()),
            private: meta.info.is_private(),
        };
        let now = tokio::time::Instant::now().into_std();
        let rebuild = Rebuild::new(params.clone(), self.config.check_threads);
        let mut engine = Torrent::new(params, now);
        engine.add_peer_addresses(now, add.peers.iter().copied(), PeerSource::Manual);
        if add.paused {
            engine.pause(now);
        }
        let (disk_tx, disk_done) = mpsc::unbounded_channel();
        let (incoming_tx, incoming) = mpsc::channel(16);
        let (commands_tx, commands) = mpsc::channel(64);
        let (events, _) = broadcast::channel(event_capacity(geometry.piece_count()));
        self.router.insert(info_hash, incoming_tx);
        let bind = (!self.listen_addr.ip().is_unspecified()).then_some(self.listen_addr);
        let limits = LimitPair::default();
        let task = TorrentTask {
            engine,
            disk: self.disk.handle(storage, disk_tx),
            disk_done,
            incoming,
            commands,
            status: status_tx,
            events: events.clone(),
            bind,
            resume,
            cancel: self.cancel.child_token(),
            limits: PeerLimits::new(&limits, &self.limits),
            rebuild,
        };
        let discovery = discovery::start(
            DiscoveryParams {
                info_hash,
                peer_id: self.peer_id,
                port: self.listen_addr.port(),
                trackers: meta.trackers.clone(),
                private: meta.info.is_private(),
                tracker_client: self.tracker_client.clone(),
                dht: self.dht.clone(),
                status: status_rx.clone(),
                events: events.subscribe(),
                torrent: commands_tx.clone(),
            },
            self.cancel.child_token(),
        );
        tokio::spawn(task.run());
        let private = meta.info.is_private();
        let handle = TorrentHandle {
            info_hash,
            private,
            status: status_rx,
            events,
            commands: commands_tx,
            discovery,
            limits,
        };
        self.lock_torrents().insert(info_hash, handle.clone());
        self.update_lsd();
        Ok(handle)
    }

    /// Adds a torrent known by a magnet link: fetches and verifies its metadata from peers (the
    /// link's `x.pe`, `peers`, the link's trackers and the DHT), then adds it like a .torrent
    /// file. Returns once the metadata is verified and the torrent started.
    pub async fn add_magnet(
        &self,
        uri: &str,
        download_dir: PathBuf,
        peers: Vec<SocketAddr>,
        paused: bool,
    ) -> Result<TorrentHandle, SessionError> {
        let control = crate::magnet_task::MagnetControl::new();
        self.add_magnet_with(uri, download_dir, peers, paused, &control)
            .await
            .map(|(handle, _)| handle)
    }

    /// [`Session::add_magnet`] that publishes its progress on `control.progress`, gives up with
    /// [`crate::magnet_task::MagnetError::Cancelled`] once `control.stop` is cancelled (before
    /// the metadata arrived), and also returns the .torrent bytes built from the fetched
    /// metadata (for front ends that keep them).
    pub async fn add_magnet_with(
        &self,
        uri: &str,
        download_dir: PathBuf,
        peers: Vec<SocketAddr>,
        paused: bool,
        control: &crate::magnet_task::MagnetControl,
    ) -> Result<(TorrentHandle, Vec<u8>), SessionError> {
        let magnet = shoal_proto::magnet::Magnet::parse(uri)?;
        let info_hash = magnet.info_hash;
        if self.lock_torrents().contains_key(&info_hash) {
            return Err(SessionError::Duplicate(info_hash));
        }
        let mut known: Vec<SocketAddr> = peers.clone();
        known.extend(magnet.peers.iter().filter_map(|p| match p {
            shoal_proto::magnet::PeerAddr::Ip(addr) => Some(*addr),
            _ => None,
        }));
        let now = tokio::time::Instant::now().into_std();
        let mut fetch = MetadataFetch::new(MetadataParams {
            info_hash,
            our_peer_id: self.peer_id,
            listen_port: Some(self.listen_addr.port()),
            config: MetadataConfig::default(),
        });
        fetch.add_peer_addresses(now, known, PeerSource::Manual);
        let (incoming_tx, incoming) = mpsc::channel(16);
        let (commands_tx, commands) = mpsc::channel(64);
        self.router.insert(info_hash, incoming_tx);
        let trackers: Vec<Vec<String>> = magnet.trackers.iter().map(|t| vec![t.clone()]).collect();
        let (_status_tx, status) = watch::channel(magnet_status(&magnet));
        let (events, _) = broadcast::channel(4);
        let cancel = self.cancel.child_token();
        let discovery = discovery::start(
            DiscoveryParams {
                info_hash,
                peer_id: self.peer_id,
                port: self.listen_addr.port(),
                trackers,
                private: false,
                tracker_client: self.tracker_client.clone(),
                dht: self.dht.clone(),
                status,
                events: events.subscribe(),
                torrent: commands_tx,
            },
            cancel.child_token(),
        );
        let bind = (!self.listen_addr.ip().is_unspecified()).then_some(self.listen_addr);
        let task = MagnetTask {
            fetch,
            incoming,
            commands,
            bind,
            cancel: cancel.clone(),
            progress: control.progress.clone(),
        };
        let fetched = tokio::select! {
            fetched = task.run() => fetched,
            _ = control.stop.cancelled() => Err(crate::magnet_task::MagnetError::Cancelled),
        };
        self.router.remove(&info_hash);
        discovery.stop().await;
        cancel.cancel();
        let fetched = fetched?;
        tracing::info!(name = fetched.info.name(), "metadata fetched and verified");
        let metainfo = crate::magnet_task::torrent_file_bytes(fetched.info.raw(), &magnet.trackers);
        let mut all_peers = fetched.peers;
        all_peers.extend(peers);
        let handle = self
            .add_torrent(AddTorrent {
                metainfo: metainfo.clone(),
                download_dir,
                peers: all_peers,
                paused,
            })
            .await?;
        Ok((handle, metainfo))
    }

    /// Where the resume file of a torrent saved in `download_dir` goes (`None` when the session
    /// keeps none). Front ends that move a torrent's data move this file along with it.
    pub fn resume_file(
        &self,
        info_hash: InfoHash,
        download_dir: &std::path::Path,
    ) -> Option<PathBuf> {
        self.resume_target(info_hash, download_dir).map(|t| t.path)
    }

    /// The resume file of a torrent in a download folder, when the session keeps them.
    fn resume_target(
        &self,
        info_hash: InfoHash,
        download_dir: &std::path::Path,
    ) -> Option<ResumeTarget> {
        let state_dir = self.config.state_dir.as_ref()?;
        let dir =
            std::fs::canonicalize(download_dir).unwrap_or_else(|_| download_dir.to_path_buf());
        let dir_id = InfoHash::of_info_bytes(dir.as_os_str().as_encoded_bytes()).to_hex();
        let path = state_dir.join("resume").join(format!(
            "{}-{}.resume",
            info_hash.to_hex(),
            &dir_id[..8]
        ));
        Some(ResumeTarget { path, info_hash })
    }

    /// Decides which pieces are already ours: from the resume file where its rules allow, by
    /// hashing otherwise (on blocking threads, publishing progress). Then marks the resume file
    /// "running", so that a crash from here on is known at the next start.
    async fn restore(
        &self,
        storage: &Arc<TorrentStorage>,
        resume: Option<&ResumeTarget>,
        status: &watch::Sender<TorrentStatus>,
    ) -> Vec<bool> {
        let storage = Arc::clone(storage);
        let status = status.clone();
        let threads = self.config.check_threads;
        let resume = resume.cloned();
        let pieces = storage.geometry().piece_count() as usize;
        let result = tokio::task::spawn_blocking(move || {
            let progress = |p: storage::CheckProgress| {
                status.send_modify(|s| s.check_progress = p.done as f32 / p.total.max(1) as f32);
            };
            let cancel = AtomicBool::new(false);
            let Some(target) = resume else {
                return storage::check_existing(&storage, threads, &progress, &cancel);
            };
            let restored = storage::restore(&storage, &target.path, target.info_hash, threads, &progress, &cancel)?;
            tracing::info!(trusted = restored.trusted, hashed = restored.hashed, source = ?restored.source, "restored");
            if let Some(parent) = target.path.parent() {
                let _ = std::fs::create_dir_all(parent);
            }
            if let Err(error) = storage::checkpoint(&storage, &target.path, target.info_hash, &restored.have, false) {
                tracing::warn!(%error, "could not write the resume file");
            }
            Ok(restored.have)
        })
        .await;
        match result {
            Ok(Ok(verified)) => verified,
            _ => vec![false; pieces],
        }
    }

    /// Stops one torrent (flushing its files and saving its resume file) and takes it out of
    /// the session. Its data stays on disk. `None` when the session does not have it.
    pub async fn remove_torrent(&self, info_hash: InfoHash) -> Option<TorrentHandle> {
        let handle = self.lock_torrents().remove(&info_hash)?;
        self.router.remove(&info_hash);
        handle.stop().await;
        Some(handle)
    }

    /// The handle of one torrent.
    pub fn torrent(&self, info_hash: InfoHash) -> Option<TorrentHandle> {
        self.lock_torrents().get(&info_hash).cloned()
    }

    /// Disk requests queued or running in the session's disk pool.
    pub fn disk_queue_depth(&self) -> usize {
        self.disk.queue_depth()
    }

    /// The global rate limits.
    pub fn rate_limits(&self) -> RateLimits {
        self.limits.get()
    }

    /// Changes the global rate limits; running connections feel it from their next chunk.
    pub fn set_rate_limits(&self, limits: RateLimits) {
        self.limits.set(limits);
    }

    /// The session's folder for resume files, if it keeps them.
    pub fn state_dir(&self) -> Option<&std::path::Path> {
        self.config.state_dir.as_deref()
    }

    /// Tells LSD which torrents to announce: the public ones.
    fn update_lsd(&self) {
        if let Some(lsd) = &self.lsd {
            let hashes = self
                .lock_torrents()
                .values()
                .filter_map(|h| PublicInfoHash::new(h.info_hash, h.private))
                .collect();
            lsd.set_torrents(hashes);
        }
    }

    /// Every torrent's handle.
    pub fn torrents(&self) -> Vec<TorrentHandle> {
        self.lock_torrents().values().cloned().collect()
    }

    /// Stops every torrent (flushing its files) and the listener.
    pub async fn shutdown(self) {
        let handles: Vec<TorrentHandle> = self.lock_torrents().drain().map(|(_, h)| h).collect();
        for handle in handles {
            handle.stop().await;
            self.router.remove(&handle.info_hash);
        }
        if let Some(dht) = self.dht.as_ref() {
            save_dht_nodes(dht, self.config.state_dir.as_deref()).await;
        }
        self.cancel.cancel();
    }

    fn lock_torrents(&self) -> std::sync::MutexGuard<'_, HashMap<InfoHash, TorrentHandle>> {
        self.torrents
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// Room for a torrent's engine events. A tokio broadcast channel allocates every slot up front
/// (about 90 bytes each), and most events are one per piece (`PieceVerified`): room for every
/// piece plus some, up to 1,024, keeps a subscriber that reads late from missing any on small
/// torrents, and keeps 1,000 idle small torrents from costing 90 KiB each (`bench/idle.sh`).
fn event_capacity(piece_count: u32) -> usize {
    (piece_count as usize).saturating_add(64).min(1024)
}

fn initial_status(meta: &Metainfo) -> TorrentStatus {
    TorrentStatus::not_started(
        meta.info_hash().to_hex(),
        meta.info.name().to_owned(),
        meta.info.total_len(),
        meta.info.piece_count(),
    )
}

impl TorrentHandle {
    pub fn info_hash(&self) -> InfoHash {
        self.info_hash
    }

    /// The latest status snapshot.
    pub fn status(&self) -> TorrentStatus {
        self.status.borrow().clone()
    }

    /// A receiver that wakes on every status change.
    pub fn watch_status(&self) -> watch::Receiver<TorrentStatus> {
        self.status.clone()
    }

    /// Engine events from now on (piece verified, peer banned, complete, ...).
    pub fn events(&self) -> broadcast::Receiver<TorrentEvent> {
        self.events.subscribe()
    }

    /// Waits until every wanted piece is verified (or the task ends).
    pub async fn wait_complete(&self) -> TorrentStatus {
        let mut rx = self.status.clone();
        let result = rx.wait_for(|s| s.is_complete()).await.map(|s| s.clone());
        result.unwrap_or_else(|_| self.status())
    }

    pub async fn add_peers(&self, peers: Vec<SocketAddr>) {
        let _ = self
            .commands
            .send(TorrentCommand::AddPeers(peers, PeerSource::Manual))
            .await;
    }
    pub async fn pause(&self) {
        let _ = self.commands.send(TorrentCommand::Pause).await;
    }
    pub async fn resume(&self) {
        let _ = self.commands.send(TorrentCommand::Resume).await;
    }

    /// This torrent's own rate limits (the session's global ones apply on top).
    pub fn rate_limits(&self) -> RateLimits {
        self.limits.get()
    }

    /// Changes this torrent's rate limits; its connections feel it from their next chunk.
    pub fn set_rate_limits(&self, limits: RateLimits) {
        self.limits.set(limits);
    }

    /// Sets per-file priorities (priority 0: not wanted); pieces shared by files take the highest.
    pub async fn set_file_priorities(&self, files: Vec<shoal_engine::picker::FileSpan>) {
        let _ = self
            .commands
            .send(TorrentCommand::SetFilePriorities(files))
            .await;
    }
    /// Downloads pieces in order (for streaming) instead of rarest first.
    pub async fn set_sequential(&self, sequential: bool) {
        let _ = self
            .commands
            .send(TorrentCommand::SetSequential(sequential))
            .await;
    }

    /// Stops transfers, hashes every piece on disk again and goes on from the pieces that
    /// matched (status `Checking` with its progress meanwhile). Returns when the check is done.
    pub async fn recheck(&self) {
        let (tx, rx) = oneshot::channel();
        let sent = self.commands.send(TorrentCommand::Recheck(tx)).await;
        if sent.is_ok() {
            let _ = rx.await;
        }
    }

    /// Every tracker's status, in the order they are tried (empty for a torrent without
    /// trackers).
    pub fn trackers(&self) -> Vec<crate::api::TrackerInfo> {
        self.discovery.trackers().get()
    }

    /// The trackers' status, with a way to wait for each change (an announce sent, answered
    /// or failed).
    pub fn watch_trackers(&self) -> crate::tracker::TrackerWatch {
        self.discovery.trackers()
    }

    /// The piece map and the connected peers; `None` once the task has ended.
    pub async fn inspect(&self) -> Option<crate::api::TorrentInspection> {
        let (tx, rx) = oneshot::channel();
        self.commands.send(TorrentCommand::Inspect(tx)).await.ok()?;
        rx.await.ok()
    }

    /// Stops the torrent's task, waits until its files are flushed and its resume file saved,
    /// then tells its trackers `stopped` (each bounded by a few seconds).
    pub async fn stop(&self) {
        let (tx, rx) = oneshot::channel();
        if self.commands.send(TorrentCommand::Stop(tx)).await.is_ok() {
            let _ = rx.await;
        }
        self.discovery.stop().await;
    }
}

/// The folder a torrent's data goes in, for front ends that show it.
pub fn data_path(download_dir: &std::path::Path, meta: &Metainfo) -> PathBuf {
    download_dir.join(meta.info.name())
}

/// Where the DHT's nodes are saved between runs.
fn dht_nodes_path(state_dir: &std::path::Path) -> PathBuf {
    state_dir.join("dht-nodes")
}

/// Starts the DHT node, bootstrapping first from the nodes a previous run saved.
async fn start_dht(
    mut config: DhtConfig,
    state_dir: Option<&std::path::Path>,
) -> Result<DhtHandle, SessionError> {
    if let Some(dir) = state_dir {
        match crate::dht::load_nodes(&dht_nodes_path(dir)) {
            Ok(nodes) => config.saved_nodes = nodes,
            Err(error) => tracing::debug!(%error, "no saved DHT nodes"),
        }
    }
    Ok(DhtHandle::start(config).await?)
}

async fn save_dht_nodes(dht: &DhtHandle, state_dir: Option<&std::path::Path>) {
    let Some(dir) = state_dir else { return };
    match dht.save_routing_table().await {
        Ok(nodes) if !nodes.is_empty() => {
            let _ = std::fs::create_dir_all(dir);
            if let Err(error) = crate::dht::save_nodes(&dht_nodes_path(dir), &nodes) {
                tracing::warn!(%error, "could not save the DHT nodes");
            }
        }
        Ok(_) => {}
        Err(error) => tracing::debug!(%error, "could not read the DHT routing table"),
    }
}

/// What a torrent known only by its magnet link looks like before its metadata arrives.
fn magnet_status(magnet: &shoal_proto::magnet::Magnet) -> TorrentStatus {
    let name = magnet
        .display_name
        .clone()
        .unwrap_or_else(|| magnet.info_hash.to_hex());
    let mut status = TorrentStatus::not_started(magnet.info_hash.to_hex(), name, 0, 0);
    // Not checking anything: fetching the metadata, which discovery announces for at once.
    status.state = TorrentState::FetchingMetadata;
    // Unknown until the metadata arrives; trackers are told "something is left".
    status.left_bytes = 1;
    status
}

type TorrentMap = Arc<Mutex<HashMap<InfoHash, TorrentHandle>>>;

/// Starts LSD and a task that hands each peer it finds to that torrent's task.
fn start_lsd(
    mut config: LsdConfig,
    port: u16,
    torrents: TorrentMap,
    cancel: CancellationToken,
) -> Option<LsdHandle> {
    config.listen_port = port;
    let (handle, mut peers) = match LsdHandle::start(config) {
        Ok(started) => started,
        Err(error) => {
            tracing::warn!(%error, "local service discovery unavailable");
            return None;
        }
    };
    tokio::spawn(async move {
        loop {
            let peer: LsdPeer = tokio::select! {
                _ = cancel.cancelled() => return,
                next = peers.recv() => match next { Some(p) => p, None => return },
            };
            let target = torrents
                .lock()
                .ok()
                .and_then(|map| map.get(&peer.info_hash).cloned());
            if let Some(handle) = target.filter(|h| !h.private) {
                let _ = handle
                    .commands
                    .send(TorrentCommand::AddPeers(
                        vec![peer.addr],
                        PeerSource::LocalDiscovery,
                    ))
                    .await;
            }
        }
    });
    Some(handle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_magnet_placeholder_says_it_fetches_metadata_with_something_left() {
        let magnet = shoal_proto::magnet::Magnet::parse(
            "magnet:?xt=urn:btih:0123456789abcdef0123456789abcdef01234567&dn=demo",
        )
        .unwrap();
        let status = magnet_status(&magnet);
        assert_eq!(status.state, TorrentState::FetchingMetadata);
        assert_eq!(status.name, "demo");
        assert_eq!(status.left_bytes, 1, "trackers hear that something is left");
    }
}

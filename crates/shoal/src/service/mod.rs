//! `shoal::service`: the one facade every front end uses (the HTTP JSON API, the Transmission
//! RPC layer, the web UI through the API, the daemon command).
//!
//! A [`Service`] owns a [`Session`] and remembers, in its state folder, every torrent it was
//! given and that torrent's settings (folder, paused, wanted files and priorities, sequential
//! mode, rate limits), so that a restart brings back the same torrents; the session's resume
//! files bring back their progress. Every change is saved at once (atomically, see [`store`]).
//! Mutating calls are serialized by one async lock; reads take snapshots and never wait on it.
//!
//! A torrent added by magnet link is listed at once (`fetching_metadata`) while the session
//! fetches its metadata; once verified, its `.torrent` is saved and it goes on like any other
//! (see [`magnet`]). Transfer totals across runs are kept in `stats.json` (see [`totals`]).
//!
//! Rate limits, global and per torrent, are stored here and applied to the session's token
//! buckets (see [`crate::rate_limit`]) at start and on every change; a limit of 0 is stored as
//! none. Until the saved settings hold a global limit, the session's own (from the daemon's
//! configuration) stands.

pub mod config;
pub mod credentials;
pub mod store;
pub mod types;

mod magnet;
mod ops;
mod relocate;
mod totals;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use shoal_proto::metainfo::Metainfo;
use shoal_proto::InfoHash;
use tokio::sync::broadcast;

use crate::api::{TorrentState, TorrentStatus};
use crate::session::{Session, SessionError};
use store::{PathPolicyError, StateStore, StoredTorrent, TorrentList};
pub use types::*;

/// Largest .torrent accepted (by upload or URL).
pub const MAX_METAINFO_BYTES: usize = 10 * 1024 * 1024;

/// Why a facade call failed. Front ends map these to their own error shapes.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServiceError {
    #[error("no torrent {key}")]
    NotFound { key: String },
    #[error("the torrent {info_hash} is already added")]
    Duplicate {
        info_hash: String,
        id: u32,
        name: String,
    },
    #[error("invalid torrent: {0}")]
    InvalidTorrent(#[from] shoal_proto::metainfo::MetainfoError),
    #[error("not supported yet: {what}")]
    NotSupportedYet { what: &'static str },
    #[error("the metadata of {name} has not arrived yet")]
    MetadataPending { name: String },
    #[error("download folder refused: {0}")]
    PathRefused(#[from] PathPolicyError),
    #[error("cannot fetch {url}: {message}")]
    Fetch { url: String, message: String },
    #[error("invalid request: {message}")]
    InvalidRequest { message: String },
    #[error(transparent)]
    Session(#[from] SessionError),
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
}

/// How a request names a torrent: its number or its infohash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TorrentRef {
    Id(u32),
    Hash(InfoHash),
}

impl std::str::FromStr for TorrentRef {
    type Err = ServiceError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if let Ok(id) = text.parse::<u32>() {
            return Ok(TorrentRef::Id(id));
        }
        InfoHash::parse(text)
            .map(TorrentRef::Hash)
            .map_err(|_| ServiceError::NotFound {
                key: text.chars().take(64).collect(),
            })
    }
}

/// Where the service keeps things and what it allows.
#[derive(Clone, Debug)]
pub struct ServiceOptions {
    pub state_dir: PathBuf,
    /// Default folder for new torrents (until changed through the session settings).
    pub download_dir: PathBuf,
    /// Folders downloads may go under.
    pub download_roots: Vec<PathBuf>,
}

/// The facade. Share it as `Arc<Service>`.
#[derive(Debug)]
pub struct Service {
    session: Session,
    store: StateStore,
    roots: Vec<PathBuf>,
    state: Mutex<State>,
    /// Serializes mutating operations.
    ops: Arc<tokio::sync::Mutex<()>>,
    events: broadcast::Sender<ServiceEvent>,
    started: Instant,
    totals: Mutex<totals::Totals>,
}

#[derive(Debug)]
struct State {
    list: TorrentList,
    settings: SessionSettings,
    metas: HashMap<String, Arc<Metainfo>>,
    /// Torrents added by magnet link whose metadata is being fetched, by hex infohash.
    fetching: HashMap<String, magnet::Fetching>,
}

impl Service {
    /// Takes over a started session and brings back the saved torrents (each checked against
    /// its resume file). Torrents that cannot be restored are logged and kept in the list, shown
    /// with an error.
    pub async fn open(
        session: Session,
        options: ServiceOptions,
    ) -> Result<Arc<Service>, ServiceError> {
        let store = StateStore::new(options.state_dir.clone());
        std::fs::create_dir_all(store.dir()).map_err(|source| ServiceError::Io {
            what: format!("create {}", store.dir().display()),
            source,
        })?;
        let configured = session.rate_limits();
        let settings = store.load_settings().unwrap_or(SessionSettings {
            download_dir: options.download_dir.clone(),
            download_limit: configured.download,
            upload_limit: configured.upload,
        });
        session.set_rate_limits(rate_limits(settings.download_limit, settings.upload_limit));
        let list = store.load_list();
        let (events, _) = broadcast::channel(1024);
        let started = Instant::now();
        let totals = totals::Totals::new(store.load_totals(), started);
        if let Err(error) = store.save_totals(&totals.cumulative()) {
            tracing::warn!(%error, "could not save the transfer totals");
        }
        let service = Arc::new(Service {
            session,
            store,
            roots: options.download_roots,
            state: Mutex::new(State {
                list: list.clone(),
                settings,
                metas: HashMap::new(),
                fetching: HashMap::new(),
            }),
            ops: Arc::new(tokio::sync::Mutex::new(())),
            events,
            started,
            totals: Mutex::new(totals),
        });
        spawn_totals_saver(Arc::downgrade(&service));
        for stored in list.torrents {
            if stored.magnet.is_some() && !service.store.has_metainfo(&stored.info_hash) {
                service.spawn_fetch(&stored);
                continue;
            }
            if let Err(error) = service.restore(&stored).await {
                tracing::error!(torrent = %stored.info_hash, %error, "could not restore a torrent");
            }
        }
        Ok(service)
    }

    /// The session underneath (for its listen address and the like).
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// Folders downloads may go under.
    pub fn download_roots(&self) -> &[PathBuf] {
        &self.roots
    }

    /// Events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<ServiceEvent> {
        self.events.subscribe()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn emit(&self, event: ServiceEvent) {
        let _ = self.events.send(event);
    }

    /// Finds a stored torrent whose metadata is known.
    fn find(&self, key: TorrentRef) -> Result<(StoredTorrent, Arc<Metainfo>), ServiceError> {
        let (stored, meta) = self.find_stored(key)?;
        match meta {
            Some(meta) => Ok((stored, meta)),
            None if stored.magnet.is_some() => {
                Err(ServiceError::MetadataPending { name: stored.name })
            }
            None => Err(ServiceError::NotFound {
                key: stored.info_hash,
            }),
        }
    }

    /// Finds a stored torrent, with its metadata when known.
    fn find_stored(
        &self,
        key: TorrentRef,
    ) -> Result<(StoredTorrent, Option<Arc<Metainfo>>), ServiceError> {
        let state = self.lock();
        let stored = state.list.torrents.iter().find(|t| match key {
            TorrentRef::Id(id) => t.id == id,
            TorrentRef::Hash(h) => t.info_hash == h.to_hex(),
        });
        let stored = stored.cloned().ok_or_else(|| ServiceError::NotFound {
            key: match key {
                TorrentRef::Id(id) => id.to_string(),
                TorrentRef::Hash(h) => h.to_hex(),
            },
        })?;
        let meta = state.metas.get(&stored.info_hash).cloned();
        Ok((stored, meta))
    }

    /// Every torrent, in the order they were added.
    pub fn list(&self) -> Vec<TorrentView> {
        let state = self.lock();
        state
            .list
            .torrents
            .iter()
            .filter_map(|t| match state.metas.get(&t.info_hash) {
                Some(meta) => Some(self.view(t, meta)),
                None if t.magnet.is_some() => {
                    Some(magnet::view(t, state.fetching.get(&t.info_hash)))
                }
                None => None,
            })
            .collect()
    }

    /// Ids of every torrent.
    pub fn ids(&self) -> Vec<u32> {
        self.lock().list.torrents.iter().map(|t| t.id).collect()
    }

    fn handle_of(&self, stored: &StoredTorrent) -> Option<crate::session::TorrentHandle> {
        InfoHash::parse(&stored.info_hash)
            .ok()
            .and_then(|h| self.session.torrent(h))
    }

    fn view(&self, t: &StoredTorrent, meta: &Metainfo) -> TorrentView {
        let status = match self.handle_of(t) {
            Some(handle) => handle.status(),
            None => placeholder_status(meta),
        };
        let progress = if status.wanted_bytes == 0 {
            1.0
        } else {
            (status.wanted_bytes - status.left_bytes.min(status.wanted_bytes)) as f64
                / status.wanted_bytes as f64
        };
        TorrentView {
            id: t.id,
            info_hash: t.info_hash.clone(),
            name: t.name.clone(),
            state: status.state,
            progress,
            total_bytes: status.total_bytes,
            wanted_bytes: status.wanted_bytes,
            left_bytes: status.left_bytes,
            verified_bytes: status.verified_bytes,
            downloaded_bytes: status.downloaded_bytes,
            uploaded_bytes: status.uploaded_bytes,
            download_rate: status.download_rate,
            upload_rate: status.upload_rate,
            peers: status.peers,
            hash_failures: status.hash_failures,
            piece_count: status.piece_count,
            verified_pieces: status.verified_pieces,
            check_progress: status.check_progress,
            metadata_progress: 1.0,
            download_dir: t.download_dir.clone(),
            sequential: t.sequential,
            download_limit: t.download_limit,
            upload_limit: t.upload_limit,
            added_at: t.added_at,
            error: status.error,
        }
    }

    /// One torrent in full: files, trackers, peers and its piece map.
    pub async fn get(&self, key: TorrentRef) -> Result<TorrentDetail, ServiceError> {
        let (stored, meta) = match self.find_stored(key)? {
            (stored, Some(meta)) => (stored, meta),
            (stored, None) => {
                let fetching = self.lock().fetching.get(&stored.info_hash).cloned();
                return Ok(magnet::detail(&stored, fetching.as_ref()));
            }
        };
        let torrent = self.view(&stored, &meta);
        let (inspection, trackers) = match self.handle_of(&stored) {
            Some(handle) => (
                handle.inspect().await.unwrap_or_default(),
                handle.trackers(),
            ),
            None => Default::default(),
        };
        let mut detail = ops::detail(torrent, &stored, &meta, inspection);
        if !trackers.is_empty() {
            detail.trackers = trackers;
        }
        Ok(detail)
    }

    /// The session settings and facts.
    pub fn session_info(&self) -> SessionInfo {
        SessionInfo {
            settings: self.lock().settings.clone(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            peer_port: self.session.listen_addr().port(),
            download_roots: self.roots.clone(),
        }
    }

    /// Changes session settings; a new download folder must be under a root.
    pub async fn set_session(
        &self,
        update: SessionSettingsUpdate,
    ) -> Result<SessionInfo, ServiceError> {
        let _guard = self.ops.lock().await;
        let dir = match &update.download_dir {
            Some(dir) => Some(store::check_download_dir(dir, &self.roots)?),
            None => None,
        };
        let settings = {
            let mut state = self.lock();
            if let Some(dir) = dir {
                state.settings.download_dir = dir;
            }
            if let Some(limit) = update.download_limit {
                state.settings.download_limit = limit.filter(|&b| b > 0);
            }
            if let Some(limit) = update.upload_limit {
                state.settings.upload_limit = limit.filter(|&b| b > 0);
            }
            state.settings.clone()
        };
        self.session
            .set_rate_limits(rate_limits(settings.download_limit, settings.upload_limit));
        self.store
            .save_settings(&settings)
            .map_err(|source| ServiceError::Io {
                what: "save settings".into(),
                source,
            })?;
        Ok(self.session_info())
    }

    /// Session figures.
    pub fn stats(&self) -> SessionStats {
        self.sample_totals();
        let (cumulative, current) = {
            let totals = self.lock_totals();
            (totals.cumulative(), totals.current())
        };
        let mut stats = SessionStats {
            disk_queue_depth: self.session.disk_queue_depth(),
            uptime_secs: self.started.elapsed().as_secs(),
            cumulative,
            current,
            ..SessionStats::default()
        };
        for view in self.list() {
            stats.torrents += 1;
            match view.state {
                TorrentState::Checking => stats.checking += 1,
                TorrentState::Downloading => stats.downloading += 1,
                TorrentState::Seeding => stats.seeding += 1,
                TorrentState::Paused => stats.paused += 1,
                TorrentState::Error => stats.errored += 1,
                TorrentState::FetchingMetadata => stats.downloading += 1,
            }
            stats.download_rate += view.download_rate;
            stats.upload_rate += view.upload_rate;
            stats.downloaded_bytes += view.downloaded_bytes;
            stats.uploaded_bytes += view.uploaded_bytes;
            stats.peers += view.peers;
            stats.hash_failures += view.hash_failures;
        }
        stats
    }

    /// Stops every torrent (each flushes, saves its resume file and tells its trackers
    /// `stopped`), saves the list, and shuts the session down when no one else holds the service.
    pub async fn shutdown(self: Arc<Self>) {
        self.stop_fetches().await;
        let _guard = self.ops.lock().await;
        self.sample_totals();
        for handle in self.session.torrents() {
            handle.stop().await;
        }
        self.sample_totals();
        self.save_totals();
        if let Err(error) = self.save_list() {
            tracing::error!(%error, "could not save the torrent list");
        }
        drop(_guard);
        if let Ok(service) = Arc::try_unwrap(self) {
            service.session.shutdown().await;
        }
    }

    fn lock_totals(&self) -> std::sync::MutexGuard<'_, totals::Totals> {
        self.totals
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Adds what every running torrent transferred since the last sample to the totals.
    fn sample_totals(&self) {
        let statuses: Vec<TorrentStatus> =
            self.session.torrents().iter().map(|h| h.status()).collect();
        let mut totals = self.lock_totals();
        for s in statuses {
            totals.sample(&s.info_hash, s.downloaded_bytes, s.uploaded_bytes);
        }
    }

    /// Samples one torrent a last time before its task stops (its counters then start over).
    fn sample_before_stop(&self, info_hash: &str) {
        let status = InfoHash::parse(info_hash)
            .ok()
            .and_then(|h| self.session.torrent(h))
            .map(|h| h.status());
        let mut totals = self.lock_totals();
        if let Some(s) = status {
            totals.sample(&s.info_hash, s.downloaded_bytes, s.uploaded_bytes);
        }
        totals.forget(info_hash);
    }

    fn save_totals(&self) {
        let cumulative = self.lock_totals().cumulative();
        if let Err(error) = self.store.save_totals(&cumulative) {
            tracing::warn!(%error, "could not save the transfer totals");
        }
    }

    fn save_list(&self) -> Result<(), ServiceError> {
        let list = self.lock().list.clone();
        self.store
            .save_list(&list)
            .map_err(|source| ServiceError::Io {
                what: "save the torrent list".into(),
                source,
            })
    }

    /// A new list entry: the next free id, default settings, added now. Not yet in the list.
    fn new_stored(
        &self,
        info_hash: String,
        name: String,
        download_dir: std::path::PathBuf,
        paused: bool,
    ) -> StoredTorrent {
        let mut state = self.lock();
        state.list.next_id = state.list.next_id.max(1);
        let id = state.list.next_id;
        state.list.next_id += 1;
        StoredTorrent {
            id,
            info_hash,
            name,
            download_dir,
            paused,
            files_wanted: Vec::new(),
            file_priorities: Vec::new(),
            sequential: false,
            download_limit: None,
            upload_limit: None,
            added_at: unix_now(),
            magnet: None,
        }
    }
}

/// What a torrent shows while the session does not run it (being checked again, or failed).
fn placeholder_status(meta: &Metainfo) -> TorrentStatus {
    TorrentStatus::not_started(
        meta.info_hash().to_hex(),
        meta.info.name().to_owned(),
        meta.info.total_len(),
        meta.info.piece_count(),
    )
}

/// Limits in bytes per second (0 or `None`: none) as the session takes them.
fn rate_limits(download: Option<u64>, upload: Option<u64>) -> crate::RateLimits {
    crate::RateLimits {
        download: download.filter(|&b| b > 0),
        upload: upload.filter(|&b| b > 0),
    }
}

/// Samples and saves the transfer totals every [`totals::SAVE_EVERY`] while the service lives.
fn spawn_totals_saver(service: std::sync::Weak<Service>) {
    tokio::spawn(async move {
        let mut saved = None;
        loop {
            tokio::time::sleep(totals::SAVE_EVERY).await;
            let Some(service) = service.upgrade() else {
                return;
            };
            service.sample_totals();
            let cumulative = service.lock_totals().cumulative();
            let moved = (cumulative.downloaded_bytes, cumulative.uploaded_bytes);
            if saved != Some(moved) {
                service.save_totals();
                saved = Some(moved);
            }
        }
    });
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

//! Torrents added by magnet link.
//!
//! Adding one stores it in the list at once (name from the link's `dn`, else the infohash; the
//! link itself kept in [`StoredTorrent::magnet`]) and starts a background fetch:
//! [`crate::Session::add_magnet_with`] gets the metadata from the link's `x.pe` peers, its
//! trackers and the DHT (when on), verifies it against the infohash and starts the torrent.
//! The fetch then saves the `.torrent` bytes, drops the link from the list and applies the
//! stored settings, so that a restart brings it back like a torrent added by file. A restart
//! before the metadata arrived starts the fetch again. Removing the torrent meanwhile cancels the
//! fetch; a torrent whose fetch finished just as it was removed is taken out of the session.

use std::sync::Arc;

use shoal_proto::magnet::Magnet;
use shoal_proto::metainfo::Metainfo;

use super::store::StoredTorrent;
use super::types::*;
use super::{Service, ServiceError, TorrentRef};
use crate::api::TorrentState;
use crate::magnet_task::{MagnetControl, MagnetError};
use crate::session::{SessionError, TorrentHandle};

/// A metadata fetch in progress.
#[derive(Debug, Clone)]
pub(super) struct Fetching {
    control: MagnetControl,
    task: Arc<std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>>,
    /// Why the last attempt failed, if it did.
    error: Option<String>,
}

impl Service {
    /// Lists a torrent known by its magnet link and starts fetching its metadata.
    pub(super) async fn add_magnet(
        self: &Arc<Self>,
        link: String,
        request: AddRequest,
    ) -> Result<TorrentView, ServiceError> {
        let magnet = Magnet::parse(&link).map_err(|e| ServiceError::InvalidRequest {
            message: format!("bad magnet link: {e}"),
        })?;
        if !request.unwanted_files.is_empty() {
            return Err(ServiceError::InvalidRequest {
                message: "files cannot be chosen before the metadata arrives".into(),
            });
        }
        let info_hash = magnet.info_hash.to_hex();
        let _guard = self.ops.lock().await;
        if let Ok((existing, _)) = self.find_stored(TorrentRef::Hash(magnet.info_hash)) {
            return Err(ServiceError::Duplicate {
                info_hash,
                id: existing.id,
                name: existing.name,
            });
        }
        let dir = self.prepare_download_dir(request.download_dir)?;
        let stored = StoredTorrent {
            magnet: Some(link),
            ..self.new_stored(
                info_hash.clone(),
                display_name(&magnet),
                dir,
                request.paused,
            )
        };
        self.lock().list.torrents.push(stored.clone());
        self.save_list()?;
        self.lock_totals().torrent_added();
        self.spawn_fetch(&stored);
        self.emit(ServiceEvent::Added {
            info_hash,
            name: stored.name.clone(),
        });
        let state = self.lock();
        Ok(view(&stored, state.fetching.get(&stored.info_hash)))
    }

    /// Starts fetching a stored magnet's metadata in the background.
    pub(super) fn spawn_fetch(self: &Arc<Self>, stored: &StoredTorrent) {
        let Some(link) = stored.magnet.clone() else {
            return;
        };
        let fetching = Fetching {
            control: MagnetControl::new(),
            task: Arc::default(),
            error: None,
        };
        let slot = Arc::clone(&fetching.task);
        let control = fetching.control.clone();
        self.lock()
            .fetching
            .insert(stored.info_hash.clone(), fetching);
        let service = Arc::clone(self);
        let stored = stored.clone();
        let task = tokio::spawn(async move {
            // Added paused: the stored settings are applied before it transfers anything.
            let result = service
                .session
                .add_magnet_with(
                    &link,
                    stored.download_dir.clone(),
                    Vec::new(),
                    true,
                    &control,
                )
                .await;
            service.fetch_done(&stored, result).await;
        });
        if let Ok(mut slot) = slot.lock() {
            *slot = Some(task);
        };
    }

    /// Takes in the fetched metadata (or records why the fetch failed).
    async fn fetch_done(
        &self,
        stored: &StoredTorrent,
        result: Result<(TorrentHandle, Vec<u8>), SessionError>,
    ) {
        let (handle, bytes) = match result {
            Ok(done) => done,
            Err(SessionError::MagnetFetch(MagnetError::Cancelled)) => {
                self.lock().fetching.remove(&stored.info_hash);
                return;
            }
            Err(error) => {
                tracing::error!(torrent = %stored.info_hash, %error, "magnet fetch failed");
                if let Some(f) = self.lock().fetching.get_mut(&stored.info_hash) {
                    f.error = Some(error.to_string());
                }
                return;
            }
        };
        let _guard = self.ops.lock().await;
        self.lock().fetching.remove(&stored.info_hash);
        if let Err(error) = self.take_metadata(stored, &handle, &bytes).await {
            tracing::error!(torrent = %stored.info_hash, %error, "could not keep the fetched metadata");
            self.session.remove_torrent(handle.info_hash()).await;
            self.emit(ServiceEvent::Error {
                info_hash: stored.info_hash.clone(),
                message: error.to_string(),
            });
        }
    }

    /// Saves the `.torrent`, turns the list entry into a plain torrent, applies its settings.
    async fn take_metadata(
        &self,
        stored: &StoredTorrent,
        handle: &TorrentHandle,
        bytes: &[u8],
    ) -> Result<(), ServiceError> {
        // Removed while the fetch was finishing: nothing to keep.
        let current = match self.find_stored(TorrentRef::Id(stored.id)) {
            Ok((current, _)) if current.info_hash == stored.info_hash => current,
            _ => {
                self.session.remove_torrent(handle.info_hash()).await;
                return Ok(());
            }
        };
        let meta = Arc::new(Metainfo::from_bytes(bytes)?);
        self.store
            .save_metainfo(&stored.info_hash, bytes)
            .map_err(|source| ServiceError::Io {
                what: "save the .torrent".into(),
                source,
            })?;
        self.lock()
            .metas
            .insert(stored.info_hash.clone(), Arc::clone(&meta));
        let name = meta.info.name().to_owned();
        let updated = self.update(current.id, |t| {
            t.magnet = None;
            t.name = name;
        })?;
        self.configure(handle, &updated, &meta).await;
        tracing::info!(torrent = %stored.info_hash, name = %updated.name, "metadata received");
        Ok(())
    }

    /// Cancels a torrent's metadata fetch, when one runs, without waiting for it (a fetch that
    /// just finished waits for the operation lock, which the caller may hold).
    pub(super) fn cancel_fetch(&self, info_hash: &str) {
        if let Some(fetching) = self.lock().fetching.remove(info_hash) {
            fetching.control.stop.cancel();
        }
    }

    /// Cancels every metadata fetch and waits until each has ended (at shutdown, without the
    /// operation lock; the links stay in the list for the next start).
    pub(super) async fn stop_fetches(&self) {
        let all: Vec<Fetching> = self.lock().fetching.drain().map(|(_, f)| f).collect();
        for fetching in all {
            fetching.control.stop.cancel();
            let task = fetching.task.lock().ok().and_then(|mut t| t.take());
            if let Some(task) = task {
                let _ = task.await;
            }
        }
    }
}

/// The name shown until the metadata arrives: the link's `dn`, else the infohash.
fn display_name(magnet: &Magnet) -> String {
    magnet
        .display_name
        .clone()
        .filter(|n| !n.trim().is_empty())
        .unwrap_or_else(|| magnet.info_hash.to_hex())
}

/// The list entry of a torrent whose metadata is not known yet.
pub(super) fn view(t: &StoredTorrent, fetching: Option<&Fetching>) -> TorrentView {
    let progress = fetching
        .map(|f| *f.control.progress.borrow())
        .unwrap_or_default();
    TorrentView {
        id: t.id,
        info_hash: t.info_hash.clone(),
        name: t.name.clone(),
        state: TorrentState::FetchingMetadata,
        progress: 0.0,
        total_bytes: 0,
        wanted_bytes: 0,
        left_bytes: 0,
        verified_bytes: 0,
        downloaded_bytes: 0,
        uploaded_bytes: 0,
        download_rate: 0,
        upload_rate: 0,
        peers: progress.peers,
        hash_failures: 0,
        piece_count: 0,
        verified_pieces: 0,
        check_progress: 0.0,
        metadata_progress: progress.share(),
        download_dir: t.download_dir.clone(),
        sequential: t.sequential,
        download_limit: t.download_limit,
        upload_limit: t.upload_limit,
        added_at: t.added_at,
        error: fetching.and_then(|f| f.error.clone()),
    }
}

/// The detail view of a torrent whose metadata is not known yet: no files, pieces or peers.
pub(super) fn detail(t: &StoredTorrent, fetching: Option<&Fetching>) -> TorrentDetail {
    let trackers = t
        .magnet
        .as_deref()
        .and_then(|link| Magnet::parse(link).ok())
        .map(|m| {
            let tiers: Vec<Vec<String>> = m.trackers.into_iter().map(|tr| vec![tr]).collect();
            crate::api::TrackerInfo::listed(&tiers)
        })
        .unwrap_or_default();
    TorrentDetail {
        torrent: view(t, fetching),
        piece_len: 0,
        files: Vec::new(),
        trackers,
        peers: Vec::new(),
        pieces: String::new(),
        comment: None,
        private: false,
        magnet: t.magnet.clone().unwrap_or_default(),
    }
}

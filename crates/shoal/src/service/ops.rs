//! The facade's operations on torrents: add, remove, pause/resume, verify, files, settings,
//! moving data. Each mutating one holds the service's operation lock, changes the session,
//! then saves the torrent list.

use std::path::Path;
use std::sync::Arc;

use data_encoding::BASE64;
use shoal_engine::picker::{FileSpan, Priority};
use shoal_engine::torrent::TorrentEvent;
use shoal_proto::metainfo::Metainfo;
use shoal_proto::InfoHash;

use super::relocate;
use super::store::{self, StoredTorrent};
use super::types::*;
use super::{rate_limits, Service, ServiceError, TorrentRef, MAX_METAINFO_BYTES};
use crate::api::{AddTorrent, TorrentInspection};
use crate::session::TorrentHandle;

/// How long a pause or resume waits for the torrent's status to show it.
const STATUS_WAIT: std::time::Duration = std::time::Duration::from_secs(2);
/// How long fetching a .torrent by URL may take.
const FETCH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

impl Service {
    /// Adds a torrent and starts it (unless `paused`). Returns its list entry.
    /// A magnet link is listed at once and fetches its metadata in the background.
    pub async fn add(self: &Arc<Self>, request: AddRequest) -> Result<TorrentView, ServiceError> {
        let metainfo = match request.source {
            AddSource::Metainfo(bytes) => bytes,
            AddSource::Magnet(ref link) => {
                let link = link.clone();
                return self.add_magnet(link, request).await;
            }
            AddSource::Url(url) => fetch_metainfo(&url).await?,
        };
        if metainfo.len() > MAX_METAINFO_BYTES {
            return Err(ServiceError::InvalidRequest {
                message: format!("torrent of {} bytes is too big", metainfo.len()),
            });
        }
        let meta = Metainfo::from_bytes(&metainfo)?;
        let info_hash = meta.info_hash().to_hex();
        let _guard = self.ops.lock().await;
        if let Ok((existing, _)) = self.find(TorrentRef::Hash(meta.info_hash())) {
            return Err(ServiceError::Duplicate {
                info_hash,
                id: existing.id,
                name: existing.name,
            });
        }
        let dir = self.prepare_download_dir(request.download_dir)?;
        let file_count = meta.info.files().len();
        let mut files_wanted = Vec::new();
        if !request.unwanted_files.is_empty() {
            check_indexes(&request.unwanted_files, file_count)?;
            files_wanted = vec![true; file_count];
            for &i in &request.unwanted_files {
                files_wanted[i] = false;
            }
        }
        let stored = StoredTorrent {
            files_wanted,
            ..self.new_stored(
                info_hash.clone(),
                meta.info.name().to_owned(),
                dir,
                request.paused,
            )
        };
        self.store
            .save_metainfo(&info_hash, &metainfo)
            .map_err(|source| ServiceError::Io {
                what: "save the .torrent".into(),
                source,
            })?;
        let meta = Arc::new(meta);
        self.start(&stored, &meta, metainfo).await?;
        {
            let mut state = self.lock();
            state.list.torrents.push(stored.clone());
            state.metas.insert(info_hash.clone(), Arc::clone(&meta));
        }
        self.save_list()?;
        self.lock_totals().torrent_added();
        self.emit(ServiceEvent::Added {
            info_hash,
            name: stored.name.clone(),
        });
        Ok(self.view(&stored, &meta))
    }

    /// Brings back a saved torrent at start.
    pub(super) async fn restore(&self, stored: &StoredTorrent) -> Result<(), ServiceError> {
        let bytes = self
            .store
            .load_metainfo(&stored.info_hash)
            .map_err(|source| ServiceError::Io {
                what: "read the saved .torrent".into(),
                source,
            })?;
        let meta = Arc::new(Metainfo::from_bytes(&bytes)?);
        self.lock()
            .metas
            .insert(stored.info_hash.clone(), Arc::clone(&meta));
        self.start(stored, &meta, bytes).await
    }

    /// Adds to the session paused, applies the file choices, then resumes unless paused.
    async fn start(
        &self,
        stored: &StoredTorrent,
        meta: &Metainfo,
        metainfo: Vec<u8>,
    ) -> Result<(), ServiceError> {
        let add = AddTorrent {
            metainfo,
            download_dir: stored.download_dir.clone(),
            peers: Vec::new(),
            paused: true,
        };
        let handle = self.session.add_torrent(add).await?;
        self.configure(&handle, stored, meta).await;
        Ok(())
    }

    /// Applies a stored torrent's settings to a torrent added paused, then resumes it unless
    /// it is paused, and forwards its events.
    pub(super) async fn configure(
        &self,
        handle: &TorrentHandle,
        stored: &StoredTorrent,
        meta: &Metainfo,
    ) {
        handle.set_rate_limits(rate_limits(stored.download_limit, stored.upload_limit));
        if !stored.files_wanted.is_empty() || !stored.file_priorities.is_empty() {
            handle.set_file_priorities(file_spans(meta, stored)).await;
        }
        if stored.sequential {
            handle.set_sequential(true).await;
        }
        if !stored.paused {
            handle.resume().await;
            let mut status = handle.watch_status();
            let shown = status.wait_for(|s| {
                use crate::api::TorrentState::{Downloading, Seeding};
                matches!(s.state, Downloading | Seeding)
            });
            let _ = tokio::time::timeout(STATUS_WAIT, shown).await;
        }
        spawn_event_forwarder(handle, self.events.clone());
    }

    /// Stops a torrent and forgets it; with `delete_data`, also deletes its files.
    /// The folder a new torrent goes to: the one asked for or the default, checked against the
    /// configured roots and created.
    pub(super) fn prepare_download_dir(
        &self,
        requested: Option<std::path::PathBuf>,
    ) -> Result<std::path::PathBuf, ServiceError> {
        let dir = requested.unwrap_or_else(|| self.lock().settings.download_dir.clone());
        let dir = store::check_download_dir(&dir, &self.roots)?;
        std::fs::create_dir_all(&dir).map_err(|source| ServiceError::Io {
            what: format!("create {}", dir.display()),
            source,
        })?;
        Ok(dir)
    }

    pub async fn remove(&self, key: TorrentRef, delete_data: bool) -> Result<(), ServiceError> {
        let _guard = self.ops.lock().await;
        let (stored, meta) = self.find_stored(key)?;
        let hash = parse_hash(&stored)?;
        self.cancel_fetch(&stored.info_hash);
        self.sample_before_stop(&stored.info_hash);
        self.session.remove_torrent(hash).await;
        if let (true, Some(meta)) = (delete_data, &meta) {
            delete_torrent_data(&stored.download_dir, meta);
        }
        self.store.forget(&stored.info_hash);
        {
            let mut state = self.lock();
            state.list.torrents.retain(|t| t.id != stored.id);
            state.metas.remove(&stored.info_hash);
        }
        self.save_list()?;
        self.emit(ServiceEvent::Removed {
            info_hash: stored.info_hash,
        });
        Ok(())
    }

    /// Pauses (`true`) or resumes (`false`) a torrent; remembered across restarts.
    pub async fn set_paused(&self, key: TorrentRef, paused: bool) -> Result<(), ServiceError> {
        let _guard = self.ops.lock().await;
        let (stored, _) = self.find(key)?;
        if let Some(handle) = self.handle_of(&stored) {
            if paused {
                handle.pause().await;
            } else {
                handle.resume().await;
            }
            // Answer once the status shows it, so that a client reading right after sees it.
            let mut status = handle.watch_status();
            let shown =
                status.wait_for(|s| (s.state == crate::api::TorrentState::Paused) == paused);
            let _ = tokio::time::timeout(STATUS_WAIT, shown).await;
        }
        self.update(stored.id, |t| t.paused = paused)?;
        let info_hash = stored.info_hash;
        self.emit(if paused {
            ServiceEvent::Paused { info_hash }
        } else {
            ServiceEvent::Resumed { info_hash }
        });
        Ok(())
    }

    /// Hashes every piece on disk again, in the background, while the torrent stays in the
    /// session: transfers stop meanwhile, the torrent shows `checking` with its progress, then
    /// goes on from the pieces that matched (a piece that no longer does is downloaded again).
    /// A torrent the session does not run (its start failed) is started again, checked in full.
    pub async fn verify(self: &Arc<Self>, key: TorrentRef) -> Result<(), ServiceError> {
        let (stored, _) = self.find(key)?;
        let Some(handle) = self.handle_of(&stored) else {
            let _guard = self.ops.lock().await;
            self.store.remove_resume_files(&stored.info_hash);
            return self.restore(&stored).await;
        };
        // The task's counters start over with the re-check.
        self.sample_before_stop(&stored.info_hash);
        let mut status = handle.watch_status();
        let service = Arc::clone(self);
        tokio::spawn(async move {
            handle.recheck().await;
            tracing::info!(torrent = %stored.info_hash, "re-check done");
            service.emit(ServiceEvent::Verified {
                info_hash: stored.info_hash,
            });
        });
        // Answer once the check shows, so that a client reading right after sees it.
        let shown = status.wait_for(|s| s.state == crate::api::TorrentState::Checking);
        let _ = tokio::time::timeout(STATUS_WAIT, shown).await;
        Ok(())
    }

    /// Changes which files are downloaded and their priorities.
    pub async fn set_files(
        &self,
        key: TorrentRef,
        update: FilesUpdate,
    ) -> Result<(), ServiceError> {
        let _guard = self.ops.lock().await;
        let (stored, meta) = self.find(key)?;
        let count = meta.info.files().len();
        check_indexes(&update.wanted, count)?;
        check_indexes(&update.unwanted, count)?;
        let indexes: Vec<usize> = update.priorities.iter().map(|p| p.0).collect();
        check_indexes(&indexes, count)?;
        if let Some(&(_, level)) = update.priorities.iter().find(|p| !(1..=7).contains(&p.1)) {
            return Err(ServiceError::InvalidRequest {
                message: format!("priority {level} is not in 1..=7"),
            });
        }
        let updated = self.update(stored.id, |t| {
            if t.files_wanted.len() != count {
                t.files_wanted = vec![true; count];
            }
            if t.file_priorities.len() != count {
                t.file_priorities = vec![Priority::NORMAL.get(); count];
            }
            update.wanted.iter().for_each(|&i| t.files_wanted[i] = true);
            update
                .unwanted
                .iter()
                .for_each(|&i| t.files_wanted[i] = false);
            update
                .priorities
                .iter()
                .for_each(|&(i, p)| t.file_priorities[i] = p);
        })?;
        if let Some(handle) = self.handle_of(&updated) {
            handle
                .set_file_priorities(file_spans(&meta, &updated))
                .await;
        }
        Ok(())
    }

    /// Changes sequential mode and rate limits.
    pub async fn set_torrent_settings(
        &self,
        key: TorrentRef,
        update: TorrentSettingsUpdate,
    ) -> Result<(), ServiceError> {
        let _guard = self.ops.lock().await;
        let (stored, _) = self.find(key)?;
        let updated = self.update(stored.id, |t| {
            if let Some(on) = update.sequential {
                t.sequential = on;
            }
            if let Some(limit) = update.download_limit {
                t.download_limit = limit.filter(|&b| b > 0);
            }
            if let Some(limit) = update.upload_limit {
                t.upload_limit = limit.filter(|&b| b > 0);
            }
        })?;
        if let Some(handle) = self.handle_of(&updated) {
            handle.set_rate_limits(rate_limits(updated.download_limit, updated.upload_limit));
        }
        if let (Some(on), Some(handle)) = (update.sequential, self.handle_of(&updated)) {
            handle.set_sequential(on).await;
        }
        Ok(())
    }

    /// Points a torrent at another folder (under a root). With `move_data`, the torrent is
    /// stopped (files flushed, resume file saved), its files moved (renamed, or copied, synced
    /// and deleted across file systems, keeping their modification times), its resume file
    /// moved along, and it is started again at the new place, where the resume file is trusted:
    /// nothing is hashed or downloaded again. Without it, the data is looked for (and checked)
    /// at the new place. A failed move puts back what was moved and restarts it where it was.
    pub async fn move_storage(
        &self,
        key: TorrentRef,
        dir: &Path,
        move_data: bool,
    ) -> Result<(), ServiceError> {
        let _guard = self.ops.lock().await;
        let (stored, meta) = self.find(key)?;
        let dir = store::check_download_dir(dir, &self.roots)?;
        std::fs::create_dir_all(&dir).map_err(|source| ServiceError::Io {
            what: format!("create {}", dir.display()),
            source,
        })?;
        if same_dir(&dir, &stored.download_dir) {
            return Ok(());
        }
        let hash = parse_hash(&stored)?;
        self.sample_before_stop(&stored.info_hash);
        self.session.remove_torrent(hash).await;
        if move_data {
            let old_resume = self.session.resume_file(hash, &stored.download_dir);
            if let Err(error) = relocate::move_files(&stored.download_dir, &dir, &meta) {
                let _ = self.restore(&stored).await;
                return Err(error);
            }
            let new_resume = self.session.resume_file(hash, &dir);
            if let (Some(from), Some(to)) = (old_resume, new_resume) {
                if let Err(error) = std::fs::rename(&from, &to) {
                    tracing::warn!(%error, "resume file not moved; the data will be checked");
                }
            }
        }
        let updated = self.update(stored.id, |t| t.download_dir = dir.clone())?;
        self.restore(&updated).await
    }

    /// Applies `change` to a stored torrent and saves the list.
    pub(super) fn update(
        &self,
        id: u32,
        change: impl FnOnce(&mut StoredTorrent),
    ) -> Result<StoredTorrent, ServiceError> {
        let updated = {
            let mut state = self.lock();
            let entry = state.list.torrents.iter_mut().find(|t| t.id == id);
            let entry = entry.ok_or_else(|| ServiceError::NotFound {
                key: id.to_string(),
            })?;
            change(entry);
            entry.clone()
        };
        self.save_list()?;
        Ok(updated)
    }
}

fn parse_hash(stored: &StoredTorrent) -> Result<InfoHash, ServiceError> {
    InfoHash::parse(&stored.info_hash).map_err(|_| ServiceError::NotFound {
        key: stored.info_hash.clone(),
    })
}

/// True when two folders are the same (once symbolic links are resolved, when they exist).
fn same_dir(a: &Path, b: &Path) -> bool {
    let real = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    real(a) == real(b)
}

fn check_indexes(indexes: &[usize], count: usize) -> Result<(), ServiceError> {
    match indexes.iter().find(|&&i| i >= count) {
        Some(i) => Err(ServiceError::InvalidRequest {
            message: format!("file index {i} out of range (0..{count})"),
        }),
        None => Ok(()),
    }
}

/// The engine's per-file priorities from the stored choices (padding files are never wanted).
pub(super) fn file_spans(meta: &Metainfo, stored: &StoredTorrent) -> Vec<FileSpan> {
    meta.info
        .files()
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let wanted = stored.files_wanted.get(i).copied().unwrap_or(true) && !f.attr.padding;
            let level = stored
                .file_priorities
                .get(i)
                .copied()
                .unwrap_or(Priority::NORMAL.get());
            let priority = if wanted {
                Priority::try_from(level.clamp(1, 7)).unwrap_or(Priority::NORMAL)
            } else {
                Priority::SKIP
            };
            FileSpan {
                offset: f.offset,
                len: f.length,
                priority,
            }
        })
        .collect()
}

/// Builds the detail view from a list entry and what the task reported.
pub(super) fn detail(
    torrent: TorrentView,
    stored: &StoredTorrent,
    meta: &Metainfo,
    inspection: TorrentInspection,
) -> TorrentDetail {
    let piece_len = u64::from(meta.info.piece_len());
    let verified = &inspection.pieces;
    let files = meta
        .info
        .files()
        .iter()
        .enumerate()
        .map(|(index, f)| FileView {
            index,
            path: f.path.join("/"),
            length: f.length,
            done_bytes: done_bytes(f.offset, f.length, piece_len, verified),
            wanted: stored.files_wanted.get(index).copied().unwrap_or(true),
            priority: stored
                .file_priorities
                .get(index)
                .copied()
                .unwrap_or(Priority::NORMAL.get()),
        })
        .collect();
    let mut bits = vec![0u8; verified.len().div_ceil(8)];
    for (i, _) in verified.iter().enumerate().filter(|(_, v)| **v) {
        bits[i / 8] |= 0x80 >> (i % 8);
    }
    let magnet = format!(
        "magnet:?xt=urn:btih:{}&dn={}",
        meta.info_hash().to_hex(),
        percent_encode(meta.info.name())
    );
    TorrentDetail {
        torrent,
        piece_len: meta.info.piece_len(),
        files,
        trackers: crate::api::TrackerInfo::listed(&meta.trackers),
        peers: inspection.peers,
        pieces: BASE64.encode(&bits),
        comment: meta.comment.clone(),
        private: meta.info.is_private(),
        magnet,
    }
}

/// Bytes of the file `[offset, offset + len)` that lie in verified pieces.
fn done_bytes(offset: u64, len: u64, piece_len: u64, verified: &[bool]) -> u64 {
    if len == 0 || piece_len == 0 {
        return 0;
    }
    let end = offset + len;
    let first = offset / piece_len;
    let last = (end - 1) / piece_len;
    (first..=last)
        .filter(|&p| verified.get(p as usize).copied().unwrap_or(false))
        .map(|p| {
            let (start, stop) = (p * piece_len, (p + 1) * piece_len);
            stop.min(end) - start.max(offset)
        })
        .sum()
}

fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Deletes a torrent's files, then the folders they leave empty (never anything else).
fn delete_torrent_data(download_dir: &Path, meta: &Metainfo) {
    for file in meta.info.files().iter().filter(|f| !f.attr.padding) {
        let path = file
            .path
            .iter()
            .fold(download_dir.to_path_buf(), |p, c| p.join(c));
        if let Err(error) = std::fs::remove_file(&path) {
            if error.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(path = %path.display(), %error, "could not delete a file");
            }
        }
    }
    relocate::prune_empty_folders(download_dir, meta);
}

/// Fetches a .torrent over http(s), refusing bodies over [`MAX_METAINFO_BYTES`].
async fn fetch_metainfo(url: &str) -> Result<Vec<u8>, ServiceError> {
    let fail = |message: String| ServiceError::Fetch {
        url: url.chars().take(200).collect(),
        message,
    };
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(fail("only http and https URLs are fetched".into()));
    }
    let client = reqwest::Client::builder()
        .timeout(FETCH_TIMEOUT)
        .redirect(reqwest::redirect::Policy::limited(5))
        .build()
        .map_err(|e| fail(e.to_string()))?;
    let mut response = client
        .get(url)
        .send()
        .await
        .map_err(|e| fail(e.to_string()))?;
    if !response.status().is_success() {
        return Err(fail(format!("HTTP status {}", response.status())));
    }
    if response
        .content_length()
        .is_some_and(|n| n > MAX_METAINFO_BYTES as u64)
    {
        return Err(fail("the file is too big".into()));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| fail(e.to_string()))? {
        if body.len() + chunk.len() > MAX_METAINFO_BYTES {
            return Err(fail("the file is too big".into()));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Forwards a torrent's notable engine events as service events until the torrent ends.
fn spawn_event_forwarder(
    handle: &TorrentHandle,
    events: tokio::sync::broadcast::Sender<ServiceEvent>,
) {
    let mut rx = handle.events();
    let info_hash = handle.info_hash().to_hex();
    tokio::spawn(async move {
        loop {
            let event = match rx.recv().await {
                Ok(event) => event,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(_) => break,
            };
            let info_hash = info_hash.clone();
            let out = match event {
                TorrentEvent::Complete => ServiceEvent::Completed { info_hash },
                TorrentEvent::PieceFailed { piece, .. } => ServiceEvent::PieceFailed {
                    info_hash,
                    piece: piece.get(),
                },
                TorrentEvent::PeerBanned { addr, .. } => ServiceEvent::PeerBanned {
                    info_hash,
                    addr: addr.to_string(),
                },
                TorrentEvent::DiskError { failure } => ServiceEvent::Error {
                    info_hash,
                    message: failure.message,
                },
                _ => continue,
            };
            let _ = events.send(out);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn done_bytes_counts_only_verified_overlap() {
        // Pieces of 10 bytes; a file from 5 to 25 spans pieces 0, 1, 2.
        assert_eq!(done_bytes(5, 20, 10, &[true, false, true]), 5 + 5);
        assert_eq!(done_bytes(5, 20, 10, &[true, true, true]), 20);
        assert_eq!(done_bytes(5, 0, 10, &[true]), 0);
    }
}

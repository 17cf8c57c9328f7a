//! Re-checking a running torrent's data in place (the daemon's "verify").
//!
//! The task stops its transfers (every peer dropped, as for a pause), waits until the disk pool
//! has written what was queued, then hashes every piece on disk with the same code a start uses
//! ([`storage::check_existing`]), publishing `checking` and its progress. The engine is then
//! rebuilt from the pieces that matched (file priorities, sequential mode and known peers carried
//! over), the resume file saved, and transfers resume unless the torrent was paused. Only pieces
//! whose SHA-1 matched now count: a piece damaged on disk is downloaded again.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use shoal_engine::disk::DiskDone;
use shoal_engine::picker::FileSpan;
use shoal_engine::torrent::{PeerSource, Torrent, TorrentParams};
use tokio::sync::mpsc;

use super::{now, Driver};
use crate::api::TorrentState;
use crate::storage;

/// How long a re-check waits for the disk pool to write what was queued before hashing.
const DRAIN_WAIT: Duration = Duration::from_secs(30);

/// What the task needs to rebuild its engine after a re-check: the parameters it started with
/// and the choices made since.
#[derive(Debug, Clone)]
pub(crate) struct Rebuild {
    params: TorrentParams,
    check_threads: usize,
    files: Option<Vec<FileSpan>>,
    sequential: bool,
}

impl Rebuild {
    pub(crate) fn new(params: TorrentParams, check_threads: usize) -> Rebuild {
        Rebuild {
            params,
            check_threads: check_threads.max(1),
            files: None,
            sequential: false,
        }
    }

    /// Remembers per-file priorities, to apply them again after a re-check.
    pub(super) fn set_files(&mut self, files: &[FileSpan]) {
        self.files = Some(files.to_vec());
    }

    pub(super) fn set_sequential(&mut self, on: bool) {
        self.sequential = on;
    }
}

impl Driver {
    /// Re-checks every piece on disk and continues from what matched (see the module docs).
    pub(super) async fn recheck(&mut self, disk_done: &mut mpsc::UnboundedReceiver<DiskDone>) {
        let was_paused = self.engine.is_paused();
        let known: Vec<_> = self
            .engine
            .stats(now())
            .peers
            .iter()
            .filter(|p| p.source != PeerSource::Incoming)
            .map(|p| p.addr)
            .collect();
        self.engine.pause(now());
        self.flush_outputs().await;
        self.peers.clear();
        self.drain_disk(disk_done).await;
        self.status.send_modify(|s| {
            s.state = TorrentState::Checking;
            s.check_progress = 0.0;
        });
        let have = self.hash_all().await;
        let mut params = self.rebuild.params.clone();
        params.have = storage::bitfield_of(&have);
        params.rng_seed = rand::random();
        let now = now();
        let mut engine = Torrent::new(params, now);
        if let Some(files) = &self.rebuild.files {
            engine.set_file_priorities(now, files);
        }
        engine.set_sequential(self.rebuild.sequential);
        engine.add_peer_addresses(now, known, PeerSource::Manual);
        if was_paused {
            engine.pause(now);
        }
        self.engine = engine;
        self.save_after_check().await;
        self.flush_outputs().await;
        self.publish_status(true);
    }

    /// Lets queued disk work finish (feeding its completions to the old engine), bounded by
    /// [`DRAIN_WAIT`]: blocks written after this are of pieces the check does not count anyway.
    async fn drain_disk(&mut self, disk_done: &mut mpsc::UnboundedReceiver<DiskDone>) {
        let deadline = tokio::time::Instant::now() + DRAIN_WAIT;
        loop {
            while let Ok(done) = disk_done.try_recv() {
                self.engine.handle_disk(now(), done);
            }
            if self.disk.queue_depth() == 0 || tokio::time::Instant::now() >= deadline {
                break;
            }
            tokio::select! {
                Some(done) = disk_done.recv() => self.engine.handle_disk(now(), done),
                _ = tokio::time::sleep(Duration::from_millis(20)) => {}
            }
        }
        // The old engine's answers to what it asked while draining go nowhere.
        while self.engine.poll_output().is_some() {}
    }

    /// Flushes the files, then hashes every piece on blocking threads, publishing progress.
    async fn hash_all(&self) -> Vec<bool> {
        let storage = Arc::clone(self.disk.storage());
        let status = self.status.clone();
        let threads = self.rebuild.check_threads;
        let pieces = storage.geometry().piece_count() as usize;
        let result = tokio::task::spawn_blocking(move || {
            if let Err(error) = storage.sync() {
                tracing::warn!(%error, "could not flush before the re-check");
            }
            let progress = |p: storage::CheckProgress| {
                status.send_modify(|s| s.check_progress = p.done as f32 / p.total.max(1) as f32);
            };
            storage::check_existing(&storage, threads, &progress, &AtomicBool::new(false))
        })
        .await;
        match result {
            Ok(Ok(have)) => have,
            Ok(Err(error)) => {
                tracing::error!(%error, "re-check did not finish; nothing is trusted");
                vec![false; pieces]
            }
            Err(error) => {
                tracing::error!(%error, "re-check task failed; nothing is trusted");
                vec![false; pieces]
            }
        }
    }

    /// Saves the checked piece map to the resume file (when the session keeps them).
    async fn save_after_check(&mut self) {
        if let Some(running) = self.checkpoints.running.take() {
            let _ = running.await;
        }
        let Some(target) = self.checkpoints.target.clone() else {
            return;
        };
        let verified = self.verified_snapshot();
        self.checkpoints.saved_pieces = self.engine.have().count_ones();
        if let Err(error) = self
            .disk
            .checkpoint(target.path, target.info_hash, verified, false)
            .await
        {
            tracing::warn!(%error, "could not save the resume file after the re-check");
        }
    }
}

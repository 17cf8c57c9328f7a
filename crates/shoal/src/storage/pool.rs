//! The disk pool: a fixed set of named std threads that run the engines' [`DiskRequest`]s.
//!
//! Data flow: a torrent task holds a [`DiskHandle`] (its storage + the channel its
//! [`DiskDone`]s come back on) and submits requests into one bounded queue shared by all
//! torrents; a worker takes a job, runs it with positional IO (hashing included, into the
//! worker's own reusable piece buffer) and sends the completion to that torrent's channel. No
//! disk IO and no SHA-1 ever runs on an async thread.
//!
//! Back-pressure: the queue holds at most `queue_capacity` jobs; [`DiskHandle::submit`] waits
//! for room and [`DiskHandle::try_submit`] hands the request back when it is full.
//! [`DiskPool::queue_depth`] (jobs queued or running) is the figure for metrics.
//! Completions go out on unbounded channels on purpose: a worker must never wait on a torrent
//! that is itself waiting for room in the queue, and completions are bounded by the queue anyway.
//!
//! Why threads and not `spawn_blocking` behind a semaphore: the number of threads doing disk IO
//! is fixed and visible (`shoal-disk-N` in `top`), each keeps one piece buffer for its whole
//! life instead of allocating per hash, and a panic in one job is caught and turned into a
//! failure instead of losing the completion the engine waits for.
//!
//! Batching: a worker takes every job already queued (up to `MAX_BATCH`) when it takes one, and
//! writes a run of consecutive blocks of one torrent with one `pwritev`: fewer syscalls, less
//! contention on the file's inode lock between workers, and blocks fed to the running hash in
//! order. Completions still go out one per request, in the order the jobs ran.
//!
//! Hashing: a written block is fed to its piece's running SHA-1 by the worker that wrote it
//! (`running_hash`), so the `Hash` job usually only finalizes it. Measured (1 GiB, 1 MiB pieces,
//! libtorrent seeder on loopback, `bench/transfer.sh`): reading each finished piece back to hash
//! it cost about a quarter of the leecher's CPU (2.9-3.5 → 2.4-2.7 CPU s/GiB once removed).

use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

use shoal_engine::disk::{DiskDone, DiskFailure, DiskFailureKind, DiskRequest};
use shoal_engine::PeerKey;
use shoal_proto::{BlockRef, InfoHash, PieceIndex};
use tokio::sync::mpsc;

use super::files::TorrentStorage;
use super::resume::{checkpoint, ResumeError};

/// Sizes of the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiskPoolConfig {
    /// Worker threads (default 4: enough to overlap IO waits on a 2-core machine; hashing is
    /// CPU-bound at ~1.6 GB/s per core, so more threads than cores only help with slow disks).
    pub threads: usize,
    /// Jobs queued at most, across all torrents (default 256).
    pub queue_capacity: usize,
}

impl Default for DiskPoolConfig {
    fn default() -> Self {
        DiskPoolConfig {
            threads: 4,
            queue_capacity: 256,
        }
    }
}

/// Most jobs one worker takes from the queue at once (a run of 16 KiB block writes this long
/// becomes one 256 KiB vectored write).
const MAX_BATCH: usize = 16;

struct Job {
    storage: Arc<TorrentStorage>,
    request: DiskRequest,
    reply: mpsc::UnboundedSender<DiskDone>,
}

/// The pool. Dropping it (and every [`DiskHandle`]) lets the workers finish the queued jobs and
/// exit; [`DiskPool::shutdown`] also waits for them.
#[derive(Debug)]
pub struct DiskPool {
    queue: mpsc::Sender<Job>,
    depth: Arc<AtomicUsize>,
    workers: Vec<JoinHandle<()>>,
}

/// A torrent's way into the pool.
#[derive(Debug, Clone)]
pub struct DiskHandle {
    storage: Arc<TorrentStorage>,
    queue: mpsc::Sender<Job>,
    depth: Arc<AtomicUsize>,
    reply: mpsc::UnboundedSender<DiskDone>,
}

/// Why a request was not queued; the request comes back.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SubmitError {
    #[error("the disk queue is full")]
    Full(DiskRequest),
    #[error("the disk pool is shut down")]
    Closed(DiskRequest),
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job")
            .field("request", &self.request)
            .finish_non_exhaustive()
    }
}

impl DiskPool {
    /// Starts the worker threads.
    pub fn new(config: DiskPoolConfig) -> std::io::Result<Self> {
        let (queue, receiver) = mpsc::channel(config.queue_capacity.max(1));
        let receiver = Arc::new(Mutex::new(receiver));
        let depth = Arc::new(AtomicUsize::new(0));
        let mut workers = Vec::new();
        for n in 0..config.threads.max(1) {
            let receiver = Arc::clone(&receiver);
            let depth = Arc::clone(&depth);
            let worker = std::thread::Builder::new()
                .name(format!("shoal-disk-{n}"))
                .spawn(move || run_worker(&receiver, &depth))?;
            workers.push(worker);
        }
        Ok(DiskPool {
            queue,
            depth,
            workers,
        })
    }

    /// A pool whose queue nobody takes from, to test back-pressure deterministically.
    #[cfg(test)]
    pub(crate) fn stalled_for_test(queue_capacity: usize) -> Self {
        let (queue, receiver) = mpsc::channel(queue_capacity);
        std::mem::forget(receiver);
        DiskPool {
            queue,
            depth: Arc::new(AtomicUsize::new(0)),
            workers: Vec::new(),
        }
    }

    /// A handle for one torrent: its requests run against `storage`, its completions arrive on
    /// `reply`.
    pub fn handle(
        &self,
        storage: Arc<TorrentStorage>,
        reply: mpsc::UnboundedSender<DiskDone>,
    ) -> DiskHandle {
        DiskHandle {
            storage,
            queue: self.queue.clone(),
            depth: Arc::clone(&self.depth),
            reply,
        }
    }

    /// Jobs queued or running, across all torrents: the disk queue depth for metrics.
    pub fn queue_depth(&self) -> usize {
        self.depth.load(Ordering::Relaxed)
    }

    /// Closes the queue and waits (blocking) until the workers have run every queued job and
    /// exited. Handles still alive keep the queue open: drop them first.
    pub fn shutdown(self) {
        drop(self.queue);
        for worker in self.workers {
            if worker.join().is_err() {
                tracing::error!("a disk worker panicked outside a job");
            }
        }
    }
}

impl DiskHandle {
    pub fn storage(&self) -> &Arc<TorrentStorage> {
        &self.storage
    }

    /// Queues a request, waiting while the queue is full. Cancel-safe: dropped while waiting,
    /// nothing was queued.
    pub async fn submit(&self, request: DiskRequest) -> Result<(), SubmitError> {
        match self.queue.reserve().await {
            Ok(permit) => {
                self.depth.fetch_add(1, Ordering::Relaxed);
                permit.send(self.job(request));
                Ok(())
            }
            Err(mpsc::error::SendError(())) => Err(SubmitError::Closed(request)),
        }
    }

    /// Queues a request if there is room now.
    pub fn try_submit(&self, request: DiskRequest) -> Result<(), SubmitError> {
        match self.queue.try_reserve() {
            Ok(permit) => {
                self.depth.fetch_add(1, Ordering::Relaxed);
                permit.send(self.job(request));
                Ok(())
            }
            Err(mpsc::error::TrySendError::Full(())) => Err(SubmitError::Full(request)),
            Err(mpsc::error::TrySendError::Closed(())) => Err(SubmitError::Closed(request)),
        }
    }

    /// Jobs queued or running, across all torrents.
    pub fn queue_depth(&self) -> usize {
        self.depth.load(Ordering::Relaxed)
    }

    /// [`checkpoint`] on a blocking thread: flushes this torrent's files, then saves `verified`
    /// (a snapshot of the pieces whose `Hashed { ok: true }` already arrived) to `resume_path`.
    pub async fn checkpoint(
        &self,
        resume_path: PathBuf,
        info_hash: InfoHash,
        verified: Vec<bool>,
        clean_shutdown: bool,
    ) -> Result<(), ResumeError> {
        let storage = Arc::clone(&self.storage);
        let path = resume_path.clone();
        tokio::task::spawn_blocking(move || {
            checkpoint(&storage, &path, info_hash, &verified, clean_shutdown)
        })
        .await
        .unwrap_or_else(|join_error| {
            Err(ResumeError::Io {
                path: resume_path,
                source: std::io::Error::other(join_error),
            })
        })
    }

    fn job(&self, request: DiskRequest) -> Job {
        Job {
            storage: Arc::clone(&self.storage),
            request,
            reply: self.reply.clone(),
        }
    }
}

fn run_worker(receiver: &Mutex<mpsc::Receiver<Job>>, depth: &AtomicUsize) {
    let mut piece_buf = Vec::new();
    let mut batch = VecDeque::with_capacity(MAX_BATCH);
    loop {
        // One worker waits on the channel while holding the lock; the others wait on the lock.
        // It takes what is already queued too (up to MAX_BATCH jobs), so consecutive block
        // writes go out as one vectored write, in order.
        {
            let mut receiver = receiver.lock().unwrap_or_else(PoisonError::into_inner);
            let Some(job) = receiver.blocking_recv() else {
                return;
            };
            batch.push_back(job);
            while batch.len() < MAX_BATCH {
                match receiver.try_recv() {
                    Ok(job) => batch.push_back(job),
                    Err(_) => break,
                }
            }
        }
        while let Some(job) = batch.pop_front() {
            let Job {
                storage,
                request,
                reply,
            } = job;
            let dones = match request {
                DiskRequest::Write { block, data } => {
                    let mut run = vec![(block, data)];
                    take_following_writes(&storage, &reply, &mut run, &mut batch);
                    run_writes(&storage, &run)
                }
                other => vec![run_job(&storage, other, &mut piece_buf)],
            };
            for done in dones {
                depth.fetch_sub(1, Ordering::Relaxed);
                // The torrent may be gone; its completions no longer matter then.
                let _ = reply.send(done);
            }
        }
    }
}

/// Moves the writes at the front of `batch` that continue `run` in the same torrent's stream
/// (same storage, same reply channel, next offset) onto `run`.
fn take_following_writes(
    storage: &Arc<TorrentStorage>,
    reply: &mpsc::UnboundedSender<DiskDone>,
    run: &mut Vec<(BlockRef, bytes::Bytes)>,
    batch: &mut VecDeque<Job>,
) {
    let geometry = *storage.geometry();
    while let Some(next) = batch.front() {
        let DiskRequest::Write { block, .. } = &next.request else {
            break;
        };
        let Some(&(last, _)) = run.last() else { break };
        let follows =
            geometry.block_offset(*block) == geometry.block_offset(last) + u64::from(last.len());
        if !follows || !Arc::ptr_eq(&next.storage, storage) || !next.reply.same_channel(reply) {
            break;
        }
        let Some(Job {
            request: DiskRequest::Write { block, data },
            ..
        }) = batch.pop_front()
        else {
            break;
        };
        run.push((block, data));
    }
}

/// [`TorrentStorage::execute_writes`] with a panic turned into failed completions.
fn run_writes(storage: &TorrentStorage, run: &[(BlockRef, bytes::Bytes)]) -> Vec<DiskDone> {
    match catch_unwind(AssertUnwindSafe(|| storage.execute_writes(run))) {
        Ok(dones) => dones,
        Err(_) => {
            tracing::error!(blocks = run.len(), "a disk write job panicked");
            run.iter()
                .map(|&(block, _)| {
                    Subject::Write(block).failed(DiskFailure {
                        kind: DiskFailureKind::Other,
                        message: "internal error in a disk job".into(),
                    })
                })
                .collect()
        }
    }
}

fn run_job(storage: &TorrentStorage, request: DiskRequest, piece_buf: &mut Vec<u8>) -> DiskDone {
    let subject = Subject::of(&request);
    match catch_unwind(AssertUnwindSafe(|| storage.execute(request, piece_buf))) {
        Ok(done) => done,
        Err(_) => {
            tracing::error!(request = ?subject, "a disk job panicked");
            *piece_buf = Vec::new();
            subject.failed(DiskFailure {
                kind: DiskFailureKind::Other,
                message: "internal error in a disk job".into(),
            })
        }
    }
}

/// What a request was about, without its data: enough to answer it with a failure.
#[derive(Debug, Clone, Copy)]
enum Subject {
    Write(BlockRef),
    Read(PeerKey, BlockRef),
    Hash(PieceIndex),
}

impl Subject {
    fn of(request: &DiskRequest) -> Self {
        match request {
            DiskRequest::Write { block, .. } => Subject::Write(*block),
            DiskRequest::Read { peer, block } => Subject::Read(*peer, *block),
            DiskRequest::Hash { piece } => Subject::Hash(*piece),
        }
    }

    fn failed(self, failure: DiskFailure) -> DiskDone {
        match self {
            Subject::Write(block) => DiskDone::Written {
                block,
                result: Err(failure),
            },
            Subject::Read(peer, block) => DiskDone::Read {
                peer,
                block,
                result: Err(failure),
            },
            Subject::Hash(piece) => DiskDone::Hashed {
                piece,
                result: Err(failure),
            },
        }
    }
}

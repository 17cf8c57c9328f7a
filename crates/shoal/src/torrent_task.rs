//! The task that drives one torrent's engine: the boring driver of the sans-IO `Torrent`.
//!
//! Loop: wait for the first of (bytes or a close from a peer socket, an incoming connection
//! routed here, a finished connect, a disk completion, a command, the engine's deadline), feed
//! it to the engine with `now`, then drain `poll_output` — bytes go to the peer's writer task,
//! disk requests to the disk pool, connects to short-lived connect tasks, disconnects drop the
//! peer's socket. A status snapshot is published on a `watch` channel at most every
//! [`STATUS_EVERY`], and at once after a command. Nothing here decides anything about the
//! protocol.
//!
//! Idle costs nothing: the task wakes on its own only for the engine's deadline, for a status
//! refresh while peers are connected (their rates move) or a change is still unpublished, and
//! for a due resume checkpoint. A loaded torrent with no peers sleeps until something arrives.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use shoal_engine::disk::DiskDone;
use shoal_engine::torrent::{Output, PeerSource, Torrent, TorrentEvent};
use shoal_engine::PeerKey;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::api::{TorrentState, TorrentStatus};
use crate::net::{self, IncomingPeer};
use crate::peer_io::{PeerIo, PeerIoEvent};
use crate::rate_limit::PeerLimits;
use crate::storage::DiskHandle;

mod recheck;
pub(crate) use recheck::Rebuild;

/// How often at most the status snapshot is refreshed.
const STATUS_EVERY: Duration = Duration::from_millis(250);
/// Bound on socket events queued for the torrent task (back-pressure on peer readers).
const PEER_EVENT_QUEUE: usize = 256;
/// How often at most the resume file is rewritten while new pieces are being verified.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(30);

/// Where a torrent's resume file goes.
#[derive(Debug, Clone)]
pub(crate) struct ResumeTarget {
    pub path: std::path::PathBuf,
    pub info_hash: shoal_proto::InfoHash,
}

/// What a front end can ask a running torrent task.
#[derive(Debug)]
pub(crate) enum TorrentCommand {
    AddPeers(Vec<SocketAddr>, PeerSource),
    Pause,
    Resume,
    /// Stop: flush and answer when the files are synced.
    Stop(oneshot::Sender<()>),
    /// Per-file priorities (priority 0: not wanted).
    SetFilePriorities(Vec<shoal_engine::picker::FileSpan>),
    /// Pieces in order (streaming) instead of rarest first.
    SetSequential(bool),
    /// Reply with the piece map and the connected peers.
    Inspect(oneshot::Sender<crate::api::TorrentInspection>),
    /// Hash every piece on disk again and go on from what matched; answer when done.
    Recheck(oneshot::Sender<()>),
}

/// Everything a torrent task needs, built by the session.
pub(crate) struct TorrentTask {
    pub engine: Torrent,
    pub disk: DiskHandle,
    pub disk_done: mpsc::UnboundedReceiver<DiskDone>,
    pub incoming: mpsc::Receiver<IncomingPeer>,
    pub commands: mpsc::Receiver<TorrentCommand>,
    pub status: watch::Sender<TorrentStatus>,
    pub events: tokio::sync::broadcast::Sender<TorrentEvent>,
    /// Local address outgoing connections bind to (so a peer sees our listen IP).
    pub bind: Option<SocketAddr>,
    pub resume: Option<ResumeTarget>,
    pub cancel: CancellationToken,
    /// The rate limits every connection of this torrent is charged to.
    pub limits: PeerLimits,
    /// What a re-check rebuilds the engine from.
    pub rebuild: Rebuild,
}

impl std::fmt::Debug for TorrentTask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TorrentTask").finish_non_exhaustive()
    }
}

struct Driver {
    engine: Torrent,
    disk: DiskHandle,
    peers: HashMap<PeerKey, PeerIo>,
    peer_events: mpsc::Sender<PeerIoEvent>,
    connects: mpsc::Sender<(SocketAddr, std::io::Result<tokio::net::TcpStream>)>,
    status: watch::Sender<TorrentStatus>,
    events: tokio::sync::broadcast::Sender<TorrentEvent>,
    bind: Option<SocketAddr>,
    cancel: CancellationToken,
    limits: PeerLimits,
    rebuild: Rebuild,
    last_status: Instant,
    /// Something changed after the last published snapshot (publishing was throttled).
    status_dirty: bool,
    checkpoints: Checkpoints,
}

/// Resume-file bookkeeping: one checkpoint in flight at most, and only when something changed.
struct Checkpoints {
    target: Option<ResumeTarget>,
    saved_pieces: u32,
    last: Instant,
    running: Option<tokio::task::JoinHandle<()>>,
}

impl Checkpoints {
    /// When [`Driver::maybe_checkpoint`] should run again with `pieces` verified: `None` when
    /// nothing is waiting to be saved. While one is still running, every [`STATUS_EVERY`].
    fn next_due(&self, pieces: u32) -> Option<Instant> {
        if self.target.is_none() || pieces == self.saved_pieces {
            return None;
        }
        Some((self.last + CHECKPOINT_EVERY).max(Instant::now() + STATUS_EVERY))
    }
}

impl TorrentTask {
    /// Runs until cancelled or stopped.
    pub(crate) async fn run(self) {
        let TorrentTask {
            engine,
            disk,
            mut disk_done,
            mut incoming,
            mut commands,
            status,
            events,
            bind,
            resume,
            cancel,
            limits,
            rebuild,
        } = self;
        let saved_pieces = engine.have().count_ones();
        let (peer_events, mut peer_rx) = mpsc::channel(PEER_EVENT_QUEUE);
        let (connects, mut connect_rx) = mpsc::channel(64);
        let mut d = Driver {
            engine,
            disk,
            peers: HashMap::new(),
            peer_events,
            connects,
            status,
            events,
            bind,
            cancel: cancel.clone(),
            limits,
            rebuild,
            last_status: Instant::now(),
            status_dirty: false,
            checkpoints: Checkpoints {
                target: resume,
                saved_pieces,
                last: Instant::now(),
                running: None,
            },
        };
        d.flush_outputs().await;
        d.publish_status(true);
        loop {
            let sleep = sleep_until(d.engine.poll_timeout().map(Instant::from_std));
            let wake = sleep_until(d.next_wakeup());
            tokio::select! {
                _ = cancel.cancelled() => break,
                Some(ev) = peer_rx.recv() => {
                    d.on_peer_event(ev);
                    while let Ok(ev) = peer_rx.try_recv() { d.on_peer_event(ev); }
                }
                Some(done) = disk_done.recv() => {
                    let now = now();
                    d.engine.handle_disk(now, done);
                    while let Ok(done) = disk_done.try_recv() { d.engine.handle_disk(now, done); }
                }
                Some(inc) = incoming.recv() => d.on_incoming(inc),
                Some((addr, result)) = connect_rx.recv() => d.on_connected(addr, result),
                Some(cmd) = commands.recv() => {
                    if let TorrentCommand::Recheck(reply) = cmd {
                        d.recheck(&mut disk_done).await;
                        let _ = reply.send(());
                    } else if let Some(reply) = d.on_command(cmd) {
                        d.flush_outputs().await;
                        d.stop(reply).await;
                        return;
                    }
                    // A front end that sent a command (pause, resume) waits to see it.
                    d.publish_status(true);
                }
                _ = sleep => d.engine.handle_timeout(now()),
                _ = wake => {}
            }
            d.flush_outputs().await;
            d.publish_status(false);
            d.maybe_checkpoint(false);
        }
        d.publish_status(true);
    }
}

fn now() -> std::time::Instant {
    Instant::now().into_std()
}

/// Sleeps until `at`, or forever when there is nothing to wait for.
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

impl Driver {
    fn on_peer_event(&mut self, ev: PeerIoEvent) {
        match ev {
            PeerIoEvent::Data { peer, data } => {
                if self.peers.contains_key(&peer) {
                    self.engine.handle_peer_bytes(now(), peer, data);
                }
            }
            PeerIoEvent::Sent { peer, bytes } => {
                if self.peers.contains_key(&peer) {
                    self.engine.handle_peer_sent(now(), peer, bytes);
                }
            }
            PeerIoEvent::Closed { peer, error } => {
                if self.peers.remove(&peer).is_some() {
                    tracing::debug!(peer = peer.0, error = ?error, "peer connection closed");
                    self.engine.handle_peer_closed(now(), peer);
                }
            }
        }
    }

    fn on_incoming(&mut self, inc: IncomingPeer) {
        let now = now();
        let key = self.engine.handle_incoming(now, inc.addr, inc.handshake);
        let io = PeerIo::spawn(
            key,
            inc.stream,
            self.peer_events.clone(),
            &self.cancel,
            self.limits.clone(),
        );
        self.peers.insert(key, io);
        if !inc.rest.is_empty() {
            self.engine.handle_peer_data(now, key, &inc.rest);
        }
    }

    fn on_connected(&mut self, addr: SocketAddr, result: std::io::Result<tokio::net::TcpStream>) {
        match result {
            Ok(stream) => {
                let key = self.engine.handle_connected(now(), addr);
                let io = PeerIo::spawn(
                    key,
                    stream,
                    self.peer_events.clone(),
                    &self.cancel,
                    self.limits.clone(),
                );
                self.peers.insert(key, io);
            }
            Err(error) => {
                tracing::debug!(%addr, %error, "connect failed");
                self.engine.handle_connect_failed(now(), addr);
            }
        }
    }

    /// Applies a command; returns the reply channel when the task must stop.
    fn on_command(&mut self, cmd: TorrentCommand) -> Option<oneshot::Sender<()>> {
        let now = now();
        match cmd {
            TorrentCommand::AddPeers(addrs, source) => {
                self.engine.add_peer_addresses(now, addrs, source)
            }
            TorrentCommand::Pause => self.engine.pause(now),
            TorrentCommand::Resume => self.engine.resume(now),
            TorrentCommand::Stop(reply) => return Some(reply),
            TorrentCommand::SetFilePriorities(files) => {
                self.rebuild.set_files(&files);
                self.engine.set_file_priorities(now, &files)
            }
            TorrentCommand::SetSequential(on) => {
                self.rebuild.set_sequential(on);
                self.engine.set_sequential(on)
            }
            // Handled by the run loop, which awaits it.
            TorrentCommand::Recheck(reply) => drop(reply),
            TorrentCommand::Inspect(reply) => {
                let _ = reply.send(self.inspection(now));
            }
        }
        None
    }

    fn inspection(&self, now: std::time::Instant) -> crate::api::TorrentInspection {
        let peers = self
            .engine
            .stats(now)
            .peers
            .into_iter()
            .map(peer_summary)
            .collect();
        crate::api::TorrentInspection {
            pieces: self.verified_snapshot(),
            peers,
        }
    }

    async fn stop(mut self, reply: oneshot::Sender<()>) {
        self.peers.clear();
        if let Some(running) = self.checkpoints.running.take() {
            let _ = running.await;
        }
        match self.checkpoints.target.clone() {
            Some(target) => {
                let verified = self.verified_snapshot();
                if let Err(error) = self
                    .disk
                    .checkpoint(target.path, target.info_hash, verified, true)
                    .await
                {
                    tracing::error!(%error, "could not save the resume file");
                }
            }
            None => {
                let storage = self.disk.storage().clone();
                let _ = tokio::task::spawn_blocking(move || storage.sync()).await;
            }
        }
        self.publish_status(true);
        let _ = reply.send(());
    }

    fn verified_snapshot(&self) -> Vec<bool> {
        let have = self.engine.have();
        (0..have.len()).map(|i| have.get_index(i)).collect()
    }

    /// Starts a resume checkpoint (flush, then save) in the background when new pieces were
    /// verified since the last one and either `now_please` or [`CHECKPOINT_EVERY`] has passed.
    fn maybe_checkpoint(&mut self, now_please: bool) {
        let pieces = self.engine.have().count_ones();
        let c = &mut self.checkpoints;
        let Some(target) = c.target.clone() else {
            return;
        };
        if pieces == c.saved_pieces || c.running.as_ref().is_some_and(|r| !r.is_finished()) {
            return;
        }
        if !now_please && c.last.elapsed() < CHECKPOINT_EVERY {
            return;
        }
        c.saved_pieces = pieces;
        c.last = Instant::now();
        let verified = self.verified_snapshot();
        let disk = self.disk.clone();
        self.checkpoints.running = Some(tokio::spawn(async move {
            if let Err(error) = disk
                .checkpoint(target.path, target.info_hash, verified, false)
                .await
            {
                tracing::warn!(%error, "could not save the resume file");
            }
        }));
    }

    async fn flush_outputs(&mut self) {
        while let Some(out) = self.engine.poll_output() {
            match out {
                Output::Transmit { peer, data } => {
                    if let Some(io) = self.peers.get(&peer) {
                        io.send(data);
                    }
                }
                Output::Disk(request) => {
                    if let Err(error) = self.disk.submit(request).await {
                        tracing::error!(%error, "disk pool refused a request");
                    }
                }
                Output::Connect(addr) => self.spawn_connect(addr),
                Output::Disconnect { peer, reason } => {
                    tracing::debug!(peer = peer.0, %reason, "dropping peer");
                    self.peers.remove(&peer);
                }
                Output::Event(event) => {
                    log_event(&event);
                    if event == TorrentEvent::Complete {
                        self.maybe_checkpoint(true);
                    }
                    let _ = self.events.send(event);
                }
                _ => {}
            }
        }
    }

    fn spawn_connect(&self, addr: SocketAddr) {
        net::spawn_connect(addr, self.bind, self.connects.clone(), self.cancel.clone());
    }

    /// When the task must wake on its own (besides the engine's deadline): a status refresh
    /// while peers are connected or a change is unpublished, and a resume checkpoint once new
    /// pieces wait for one. `None`: sleep until something arrives.
    fn next_wakeup(&self) -> Option<Instant> {
        let busy = self.status_dirty || !self.peers.is_empty();
        let status = busy.then(|| self.last_status + STATUS_EVERY);
        let checkpoint = self.checkpoints.next_due(self.engine.have().count_ones());
        status.into_iter().chain(checkpoint).min()
    }

    fn publish_status(&mut self, force: bool) {
        let now = Instant::now();
        if !force && now.duration_since(self.last_status) < STATUS_EVERY {
            self.status_dirty = true;
            return;
        }
        self.last_status = now;
        self.status_dirty = false;
        let stats = self.engine.stats(now.into_std());
        let verified_pieces = self.engine.have().count_ones();
        self.status.send_modify(|s| {
            s.state = if stats.paused {
                TorrentState::Paused
            } else if stats.complete {
                TorrentState::Seeding
            } else {
                TorrentState::Downloading
            };
            s.wanted_bytes = stats.bytes.wanted;
            s.verified_bytes = stats.bytes.verified;
            s.left_bytes = stats.bytes.wanted - stats.bytes.wanted_verified;
            s.verified_pieces = verified_pieces;
            s.downloaded_bytes = stats.downloaded;
            s.uploaded_bytes = stats.uploaded;
            s.download_rate = stats.download_rate;
            s.upload_rate = stats.upload_rate;
            s.peers = stats.peers.len();
            s.hash_failures = u64::from(stats.hash_failures);
        });
    }
}

fn peer_summary(p: shoal_engine::torrent::PeerInfo) -> crate::api::PeerSummary {
    let source = match p.source {
        PeerSource::Tracker => "tracker",
        PeerSource::Dht => "dht",
        PeerSource::Pex => "pex",
        PeerSource::LocalDiscovery => "lsd",
        PeerSource::Manual => "manual",
        PeerSource::Incoming => "incoming",
        _ => "other",
    };
    crate::api::PeerSummary {
        addr: p.addr,
        client: p.client,
        source: source.to_owned(),
        pieces: p.pieces,
        download_rate: p.download_rate,
        upload_rate: p.upload_rate,
        downloaded: p.downloaded,
        uploaded: p.uploaded,
        am_choking: p.am_choking,
        peer_choking: p.peer_choking,
        am_interested: p.am_interested,
        peer_interested: p.peer_interested,
    }
}

fn log_event(event: &TorrentEvent) {
    match event {
        TorrentEvent::PeerBanned { addr, .. } => {
            tracing::warn!(%addr, "peer banned: sent data that failed the hash check")
        }
        TorrentEvent::PieceFailed { piece, .. } => {
            tracing::warn!(%piece, "piece failed its hash check")
        }
        TorrentEvent::DiskError { failure } => {
            tracing::error!(message = %failure.message, "disk error; torrent paused")
        }
        TorrentEvent::Complete => tracing::info!("download complete"),
        _ => {}
    }
}

//! The per-torrent announcer task: drives an [`AnnounceSchedule`] with a [`TrackerClient`].
//!
//! The loop is the boring driver the architecture asks for: poll the schedule for a request,
//! perform it (at most one at a time), feed the reply or failure back, send the peers on, publish
//! every tracker's status, sleep until `poll_timeout` or a command. Scrapes run the same way
//! beside the announces (`poll_scrape`, at most one out): the reply's figures for this torrent
//! go back to the schedule, which keeps them in the tracker's status. [`AnnouncerCommand::Stop`]
//! drops a scrape that is out, sends `stopped` to every tracker told `started` (each bounded by
//! `stop_timeout`) and ends the task; cancelling the token ends it at once, without `stopped`.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use shoal_engine::announce::scrape::ScrapeRequest;
use shoal_engine::announce::{
    AnnounceRequest, AnnounceSchedule, TrackerKey, TrackerStatus, TransferTotals,
};
use shoal_proto::tracker::{Announce, AnnounceEvent, AnnounceReply, ScrapeStats};
use shoal_proto::{InfoHash, PeerId};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, Instrument};

use super::{TrackerClient, TrackerError};

/// What every announce of one torrent says about us.
#[derive(Clone, Copy, Debug)]
pub struct TorrentIdentity {
    pub info_hash: InfoHash,
    pub peer_id: PeerId,
    /// The TCP port peers can reach us on.
    pub port: u16,
    /// How long each `stopped` announce may take when stopping. 5 s is reasonable.
    pub stop_timeout: Duration,
}

/// What the torrent tells its announcer.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum AnnouncerCommand {
    /// The download finished: announce `completed`.
    Completed,
    /// The user asked to announce now (the tracker's `min interval` is respected).
    AnnounceNow,
    /// Send `stopped` to the trackers and end the task.
    Stop,
    /// How the torrent is doing: a torrent short of peers announces sooner (see
    /// [`AnnounceSchedule::handle_swarm`]); one checking its data announces nothing yet.
    Swarm {
        connected: usize,
        complete: bool,
        checking: bool,
    },
}

/// The running announcer: send commands, read tracker status, await the end.
#[derive(Debug)]
pub struct AnnouncerHandle {
    pub commands: mpsc::Sender<AnnouncerCommand>,
    /// Every tracker's state, refreshed after each change.
    pub status: watch::Receiver<Vec<TrackerStatus>>,
    pub task: JoinHandle<()>,
}

type Pending<T> = Pin<Box<dyn Future<Output = (TrackerKey, Result<T, TrackerError>)> + Send>>;
type InFlight = Pending<AnnounceReply>;
/// A scrape's figures for this torrent.
type ScrapeInFlight = Pending<ScrapeStats>;

/// Spawns the announcer task of one torrent. `totals` is read at each announce; learned peers
/// (port 0 and unspecified addresses removed) go to `peers_tx` one reply at a time.
pub fn run_announcer(
    schedule: AnnounceSchedule,
    client: Arc<TrackerClient>,
    torrent: TorrentIdentity,
    totals: impl FnMut() -> TransferTotals + Send + 'static,
    peers_tx: mpsc::Sender<Vec<SocketAddr>>,
    cancel: CancellationToken,
) -> AnnouncerHandle {
    let (commands, commands_rx) = mpsc::channel(8);
    let (status_tx, status) = watch::channel(schedule.trackers());
    let hash = torrent.info_hash.to_hex();
    let span = tracing::info_span!("announcer", torrent = %&hash[..8]);
    let driver = Driver {
        schedule,
        client,
        torrent,
        totals: Box::new(totals),
        peers_tx,
        status_tx,
    };
    let task = tokio::spawn(driver.run(commands_rx, cancel).instrument(span));
    AnnouncerHandle {
        commands,
        status,
        task,
    }
}

struct Driver {
    schedule: AnnounceSchedule,
    client: Arc<TrackerClient>,
    torrent: TorrentIdentity,
    totals: Box<dyn FnMut() -> TransferTotals + Send>,
    peers_tx: mpsc::Sender<Vec<SocketAddr>>,
    status_tx: watch::Sender<Vec<TrackerStatus>>,
}

/// The schedule's clock: tokio's, so tests can pause and advance it.
fn now() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
}

async fn wait_for<T>(in_flight: &mut Option<Pending<T>>) -> (TrackerKey, Result<T, TrackerError>) {
    match in_flight {
        Some(fut) => fut.await,
        None => std::future::pending().await,
    }
}

impl Driver {
    async fn run(
        mut self,
        mut commands: mpsc::Receiver<AnnouncerCommand>,
        cancel: CancellationToken,
    ) {
        let mut in_flight: Option<InFlight> = None;
        let mut scrape: Option<ScrapeInFlight> = None;
        let mut commands_open = true;
        loop {
            if in_flight.is_none() {
                let totals = (self.totals)();
                if let Some(request) = self.schedule.poll_request(now(), totals) {
                    in_flight = Some(self.perform(request));
                }
            }
            if scrape.is_none() {
                if let Some(request) = self.schedule.poll_scrape(now()) {
                    scrape = Some(self.scrape(request));
                }
            }
            let trackers = self.schedule.trackers();
            self.status_tx.send_if_modified(|old| {
                let changed = *old != trackers;
                *old = trackers;
                changed
            });
            if self.schedule.is_stopped() {
                info!("left the swarm");
                return;
            }
            // Both are `None` while their request is out.
            let deadline = [
                self.schedule.poll_timeout(),
                self.schedule.poll_scrape_timeout(),
            ]
            .into_iter()
            .flatten()
            .min()
            .map(tokio::time::Instant::from_std);
            tokio::select! {
                _ = cancel.cancelled() => return,
                (key, result) = wait_for(&mut in_flight) => {
                    in_flight = None;
                    self.handle_result(key, result).await;
                }
                (key, result) = wait_for(&mut scrape) => {
                    scrape = None;
                    self.handle_scrape(key, result);
                }
                command = commands.recv(), if commands_open => {
                    let command = command.unwrap_or_else(|| {
                        commands_open = false;
                        AnnouncerCommand::Stop
                    });
                    if command == AnnouncerCommand::Stop {
                        in_flight = None;
                        scrape = None;
                    }
                    self.handle_command(command);
                }
                _ = sleep_until(deadline) => {}
            }
        }
    }

    fn handle_command(&mut self, command: AnnouncerCommand) {
        let now = now();
        debug!(?command, "announcer command");
        match command {
            AnnouncerCommand::Completed => self.schedule.handle_completed(now),
            AnnouncerCommand::AnnounceNow => self.schedule.handle_announce_now(now),
            AnnouncerCommand::Stop => self.schedule.handle_stop(now),
            AnnouncerCommand::Swarm {
                connected,
                complete,
                checking,
            } => {
                self.schedule.handle_swarm(connected, complete);
                self.schedule.handle_checking(checking);
            }
        }
    }

    async fn handle_result(
        &mut self,
        key: TrackerKey,
        result: Result<AnnounceReply, TrackerError>,
    ) {
        let now = now();
        match result {
            Ok(reply) => {
                self.schedule.handle_reply(now, key, &reply);
                let peers: Vec<SocketAddr> = reply
                    .peers
                    .into_iter()
                    .filter(|p| p.port() != 0 && !p.ip().is_unspecified())
                    .collect();
                debug!(peers = peers.len(), "tracker replied");
                if !peers.is_empty() && self.peers_tx.send(peers).await.is_err() {
                    debug!("nobody takes peers any more");
                }
            }
            Err(error) => {
                debug!(%error, "announce failed");
                self.schedule.handle_failure(now, key, error.to_string());
            }
        }
    }

    fn handle_scrape(&mut self, key: TrackerKey, result: Result<ScrapeStats, TrackerError>) {
        let now = now();
        match result {
            Ok(stats) => {
                debug!(?stats, "tracker scraped");
                self.schedule.handle_scrape_reply(now, key, stats);
            }
            Err(error) => {
                debug!(%error, "scrape failed");
                self.schedule
                    .handle_scrape_failure(now, key, error.to_string());
            }
        }
    }

    /// Scrapes one tracker for this torrent; a reply that does not list it is an error.
    fn scrape(&self, request: ScrapeRequest) -> ScrapeInFlight {
        let client = self.client.clone();
        let hash = self.torrent.info_hash;
        debug!(url = %request.url, "scraping");
        Box::pin(async move {
            let result = client
                .scrape(&request.url, &[hash])
                .await
                .and_then(|files| {
                    files
                        .into_iter()
                        .find_map(|(h, stats)| (h == hash).then_some(stats))
                        .ok_or(TrackerError::NotInScrape)
                });
            (request.tracker, result)
        })
    }

    fn perform(&self, request: AnnounceRequest) -> InFlight {
        let client = self.client.clone();
        let announce = Announce {
            info_hash: self.torrent.info_hash,
            peer_id: self.torrent.peer_id,
            port: self.torrent.port,
            uploaded: request.totals.uploaded,
            downloaded: request.totals.downloaded,
            left: request.totals.left,
            event: request.event,
            numwant: Some(request.numwant),
            key: request.key,
            tracker_id: request.tracker_id,
        };
        let stop_timeout = self.torrent.stop_timeout;
        debug!(url = %request.url, event = ?request.event, "announcing");
        Box::pin(async move {
            let announcing = client.announce(&request.url, &announce);
            let result = if request.event == AnnounceEvent::Stopped {
                tokio::time::timeout(stop_timeout, announcing)
                    .await
                    .unwrap_or(Err(TrackerError::Timeout {
                        after: stop_timeout,
                    }))
            } else {
                announcing.await
            };
            (request.tracker, result)
        })
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

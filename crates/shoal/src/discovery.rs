//! Finding peers for one torrent: its trackers, the DHT and local discovery, feeding the
//! torrent task.
//!
//! One task per torrent. It runs the tracker announcer (`tracker::run_announcer`) when the torrent
//! names trackers, looks the torrent up on the DHT every [`DHT_LOOKUP_EVERY`] and announces our
//! port there (public torrents only: a private torrent's `PublicInfoHash` cannot be made), and
//! forwards every address it learns to the torrent task, which decides whom to connect to. It
//! tells the trackers `completed` when the torrent completes and `stopped` when it stops, and
//! how many peers it has (a torrent short of peers announces sooner). Every tracker's status is
//! readable through [`DiscoveryHandle::trackers`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use shoal_engine::announce::{AnnounceConfig, AnnounceSchedule, TransferTotals};
use shoal_engine::torrent::{PeerSource, TorrentEvent};
use shoal_proto::{InfoHash, PeerId};
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::api::{TorrentState, TorrentStatus};
use crate::dht::{DhtHandle, PublicInfoHash};
use crate::torrent_task::TorrentCommand;
use crate::tracker::{
    run_announcer, AnnouncerCommand, AnnouncerHandle, TorrentIdentity, TrackerClient, TrackerWatch,
};

/// How often the DHT is asked for a torrent's peers (and our port announced).
pub const DHT_LOOKUP_EVERY: Duration = Duration::from_secs(5 * 60);
/// How long each tracker may take to acknowledge `stopped` when a torrent stops.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// What discovery needs to know about a torrent.
#[derive(Debug)]
pub(crate) struct DiscoveryParams {
    pub info_hash: InfoHash,
    pub peer_id: PeerId,
    /// Our TCP listen port, announced to trackers and the DHT.
    pub port: u16,
    pub trackers: Vec<Vec<String>>,
    pub private: bool,
    pub tracker_client: Option<Arc<TrackerClient>>,
    pub dht: Option<Arc<DhtHandle>>,
    pub status: watch::Receiver<TorrentStatus>,
    pub events: broadcast::Receiver<TorrentEvent>,
    pub torrent: mpsc::Sender<TorrentCommand>,
}

/// The handle the session keeps: stop announces `stopped` and waits for it (bounded).
#[derive(Debug, Clone)]
pub(crate) struct DiscoveryHandle {
    stop: mpsc::Sender<oneshot::Sender<()>>,
    trackers: TrackerWatch,
}

impl DiscoveryHandle {
    /// Every tracker's status (empty when the torrent announces to none).
    pub(crate) fn trackers(&self) -> TrackerWatch {
        self.trackers.clone()
    }

    pub(crate) async fn stop(&self) {
        let (tx, rx) = oneshot::channel();
        if self.stop.send(tx).await.is_ok() {
            let _ = tokio::time::timeout(STOP_TIMEOUT * 2, rx).await;
        }
    }
}

/// Starts the torrent's discovery task.
pub(crate) fn start(params: DiscoveryParams, cancel: CancellationToken) -> DiscoveryHandle {
    let (stop, stop_rx) = mpsc::channel(1);
    let span = tracing::info_span!("discovery", torrent = %&params.info_hash.to_hex()[..8]);
    let (peers_tx, peers_rx) = mpsc::channel::<Vec<SocketAddr>>(16);
    let announcer = span.in_scope(|| start_announcer(&params, peers_tx, &cancel));
    let trackers = match &announcer {
        Some(announcer) => TrackerWatch::new(announcer.status.clone()),
        None => TrackerWatch::new(watch::channel(Vec::new()).1),
    };
    tokio::spawn(run(params, announcer, peers_rx, stop_rx, cancel).instrument(span));
    DiscoveryHandle { stop, trackers }
}

/// The tracker announcer, when the torrent names trackers and the session has a client.
fn start_announcer(
    p: &DiscoveryParams,
    peers_tx: mpsc::Sender<Vec<SocketAddr>>,
    cancel: &CancellationToken,
) -> Option<AnnouncerHandle> {
    match (&p.tracker_client, p.trackers.iter().any(|t| !t.is_empty())) {
        (Some(client), true) => {
            let mut schedule = AnnounceSchedule::new(
                now(),
                &p.trackers,
                AnnounceConfig::default(),
                rand::random(),
            );
            // A torrent starts by checking its data: no announce before what is left is known.
            schedule.handle_checking(is_checking(&p.status));
            let identity = TorrentIdentity {
                info_hash: p.info_hash,
                peer_id: p.peer_id,
                port: p.port,
                stop_timeout: STOP_TIMEOUT,
            };
            let status = p.status.clone();
            let totals = move || {
                let s = status.borrow();
                TransferTotals {
                    uploaded: s.uploaded_bytes,
                    downloaded: s.downloaded_bytes,
                    left: s.left_bytes,
                }
            };
            Some(run_announcer(
                schedule,
                Arc::clone(client),
                identity,
                totals,
                peers_tx,
                cancel.child_token(),
            ))
        }
        _ => None,
    }
}

async fn run(
    p: DiscoveryParams,
    announcer: Option<AnnouncerHandle>,
    mut peers_rx: mpsc::Receiver<Vec<SocketAddr>>,
    mut stop: mpsc::Receiver<oneshot::Sender<()>>,
    cancel: CancellationToken,
) {
    let public = PublicInfoHash::new(p.info_hash, p.private);
    let dht = p.dht.clone().zip(public);
    let (dht_tx, mut dht_rx) = mpsc::channel::<Vec<SocketAddr>>(16);
    if let Some((dht, hash)) = dht {
        tokio::spawn(dht_loop(dht, hash, p.port, dht_tx, cancel.child_token()).in_current_span());
    }
    let mut events = p.events;
    let mut status = p.status.clone();
    // Tell the announcer the swarm's state at once, then on every change.
    status.mark_changed();
    let mut status_open = announcer.is_some();
    let mut swarm = None;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            Some(reply) = stop.recv() => {
                if let Some(announcer) = announcer {
                    let _ = announcer.commands.send(AnnouncerCommand::Stop).await;
                    let _ = tokio::time::timeout(STOP_TIMEOUT * 2, announcer.task).await;
                }
                let _ = reply.send(());
                return;
            }
            Some(peers) = peers_rx.recv() => {
                let _ = p.torrent.send(TorrentCommand::AddPeers(peers, PeerSource::Tracker)).await;
            }
            Some(peers) = dht_rx.recv() => {
                let _ = p.torrent.send(TorrentCommand::AddPeers(peers, PeerSource::Dht)).await;
            }
            event = events.recv() => match event {
                Ok(TorrentEvent::Complete) => {
                    if let Some(announcer) = &announcer {
                        let _ = announcer.commands.send(AnnouncerCommand::Completed).await;
                    }
                }
                Err(broadcast::error::RecvError::Closed) => return,
                _ => {}
            },
            changed = status.changed(), if status_open => {
                status_open = changed.is_ok();
                let published = status.has_changed().is_ok();
                let now = {
                    let s = status.borrow_and_update();
                    let checking = published && checks_data(&s);
                    (s.peers, s.is_complete(), checking)
                };
                if let (Some(announcer), true) = (&announcer, swarm != Some(now)) {
                    swarm = Some(now);
                    let (connected, complete, checking) = now;
                    let command = AnnouncerCommand::Swarm { connected, complete, checking };
                    let _ = announcer.commands.send(command).await;
                }
            }
        }
    }
}

/// Looks the torrent up on the DHT now and every [`DHT_LOOKUP_EVERY`], then announces our port.
async fn dht_loop(
    dht: Arc<DhtHandle>,
    hash: PublicInfoHash,
    port: u16,
    peers: mpsc::Sender<Vec<SocketAddr>>,
    cancel: CancellationToken,
) {
    loop {
        let mut lookup = dht.get_peers(hash);
        let mut batch = Vec::new();
        loop {
            let next = tokio::select! {
                _ = cancel.cancelled() => return,
                next = lookup.next() => next,
            };
            let Some(addr) = next else { break };
            batch.push(addr);
            if batch.len() >= 50 && peers.send(std::mem::take(&mut batch)).await.is_err() {
                return;
            }
        }
        if !batch.is_empty() && peers.send(batch).await.is_err() {
            return;
        }
        if let Err(error) = dht.announce(hash, port).await {
            tracing::debug!(%error, "DHT announce failed");
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(DHT_LOOKUP_EVERY) => {}
        }
    }
}

/// True while the torrent checks its data. A status nobody publishes any more (a task that
/// ended), or one without pieces, never holds announces back (a magnet link's placeholder says
/// `FetchingMetadata` while its metadata is fetched).
fn is_checking(status: &watch::Receiver<TorrentStatus>) -> bool {
    status.has_changed().is_ok() && checks_data(&status.borrow())
}

fn checks_data(status: &TorrentStatus) -> bool {
    status.state == TorrentState::Checking && status.piece_count > 0
}

fn now() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_torrent_with_pieces_holds_announces_while_checking() {
        let mut torrent = TorrentStatus::not_started("ab".repeat(20), "t".into(), 1000, 4);
        assert!(checks_data(&torrent), "checking its data");
        torrent.state = TorrentState::Downloading;
        assert!(!checks_data(&torrent));
        // A magnet link's placeholder: no pieces known, its trackers must still be asked.
        let magnet = TorrentStatus::not_started("ab".repeat(20), "m".into(), 0, 0);
        assert!(!checks_data(&magnet));
    }
}

//! Finding peers for one torrent: its trackers, the DHT and local discovery, feeding the
//! torrent task.
//!
//! One task per torrent. It runs the tracker announcer (`tracker::run_announcer`) when the torrent
//! names trackers, looks the torrent up on the DHT every [`DHT_LOOKUP_EVERY`] and announces our
//! port there (public torrents only: a private torrent's `PublicInfoHash` cannot be made), and
//! forwards every address it learns to the torrent task, which decides whom to connect to. It
//! tells the trackers `completed` when the torrent completes and `stopped` when it stops.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use shoal_engine::announce::{AnnounceConfig, TransferTotals};
use shoal_engine::torrent::{PeerSource, TorrentEvent};
use shoal_proto::{InfoHash, PeerId};
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::api::TorrentStatus;
use crate::dht::{DhtHandle, PublicInfoHash};
use crate::torrent_task::TorrentCommand;
use crate::tracker::{run_announcer, AnnouncerCommand, TorrentIdentity, TrackerClient};

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
}

impl DiscoveryHandle {
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
    tokio::spawn(run(params, stop_rx, cancel).instrument(span));
    DiscoveryHandle { stop }
}

async fn run(
    p: DiscoveryParams,
    mut stop: mpsc::Receiver<oneshot::Sender<()>>,
    cancel: CancellationToken,
) {
    let (peers_tx, mut peers_rx) = mpsc::channel::<Vec<SocketAddr>>(16);
    let announcer = match (&p.tracker_client, p.trackers.iter().any(|t| !t.is_empty())) {
        (Some(client), true) => {
            let schedule = shoal_engine::announce::AnnounceSchedule::new(
                now(),
                &p.trackers,
                AnnounceConfig::default(),
                rand::random(),
            );
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
                peers_tx.clone(),
                cancel.child_token(),
            ))
        }
        _ => None,
    };
    let public = PublicInfoHash::new(p.info_hash, p.private);
    let dht = p.dht.clone().zip(public);
    let (dht_tx, mut dht_rx) = mpsc::channel::<Vec<SocketAddr>>(16);
    if let Some((dht, hash)) = dht {
        tokio::spawn(dht_loop(dht, hash, p.port, dht_tx, cancel.child_token()).in_current_span());
    }
    drop(peers_tx);
    let mut events = p.events;
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

fn now() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
}

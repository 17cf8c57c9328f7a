//! Fetching a magnet link's metadata from peers: the driver of the sans-IO `MetadataFetch`.
//!
//! Same shape as the torrent task: peer sockets ([`PeerIo`]), incoming connections routed here
//! by infohash, connects, the engine's deadline; every event goes into the engine with `now`,
//! then its outputs are drained. Peers come from the link (`x.pe`), the caller, and a
//! [`discovery`](crate::discovery) task (the link's trackers and the DHT). The result is a
//! verified `.torrent` file's bytes, built around the raw info dictionary exactly as received
//! (so its infohash is the link's), with the link's trackers as `announce-list`.

use std::collections::HashMap;
use std::net::SocketAddr;

use shoal_engine::metadata::{FetchedMetadata, MetadataEvent, MetadataFetch, MetadataOutput};
use shoal_engine::PeerKey;
use shoal_proto::bencode::encode_bytes;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::net::{self, IncomingPeer};
use crate::peer_io::{PeerIo, PeerIoEvent};
// Metadata exchange (a few hundred KiB at most) is not charged to the rate limits:
// connections here get `PeerLimits::default()`, which is unlimited.
use crate::rate_limit::PeerLimits;
use crate::torrent_task::TorrentCommand;

/// Why a metadata fetch ended without a torrent.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MagnetError {
    #[error("the metadata hashes to the infohash but is not a usable torrent: {0}")]
    Unusable(shoal_proto::metainfo::MetainfoError),
    #[error("the fetch was cancelled")]
    Cancelled,
}

/// How far a metadata fetch got: pieces of the metadata received (of `total`, 0 until a peer
/// told its size) and connected peers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MetadataProgress {
    pub received: u32,
    pub total: u32,
    pub peers: usize,
}

impl MetadataProgress {
    /// The share received, 0.0..=1.0.
    pub fn share(&self) -> f32 {
        if self.total == 0 {
            0.0
        } else {
            self.received as f32 / self.total as f32
        }
    }
}

/// What a front end holds to follow and stop a fetch (see `Session::add_magnet_with`).
#[derive(Debug, Clone)]
pub struct MagnetControl {
    /// Cancelled: the fetch gives up with [`MagnetError::Cancelled`].
    pub stop: CancellationToken,
    /// Updated as the fetch goes.
    pub progress: tokio::sync::watch::Sender<MetadataProgress>,
}

impl MagnetControl {
    pub fn new() -> MagnetControl {
        MagnetControl {
            stop: CancellationToken::new(),
            progress: tokio::sync::watch::Sender::new(MetadataProgress::default()),
        }
    }
}

impl Default for MagnetControl {
    fn default() -> Self {
        MagnetControl::new()
    }
}

pub(crate) struct MagnetTask {
    pub fetch: MetadataFetch,
    pub incoming: mpsc::Receiver<IncomingPeer>,
    /// Peers from discovery (`AddPeers`); other commands are ignored.
    pub commands: mpsc::Receiver<TorrentCommand>,
    pub bind: Option<SocketAddr>,
    pub cancel: CancellationToken,
    pub progress: tokio::sync::watch::Sender<MetadataProgress>,
}

impl MagnetTask {
    /// Runs until the metadata is verified (or the fetch gives up).
    pub(crate) async fn run(self) -> Result<FetchedMetadata, MagnetError> {
        let MagnetTask {
            mut fetch,
            mut incoming,
            mut commands,
            bind,
            cancel,
            progress,
        } = self;
        let (peer_events, mut peer_rx) = mpsc::channel(256);
        let (connects, mut connect_rx) = mpsc::channel(64);
        let mut peers: HashMap<PeerKey, PeerIo> = HashMap::new();
        loop {
            publish_progress(&fetch, &progress);
            while let Some(out) = fetch.poll_output() {
                match out {
                    MetadataOutput::Transmit { peer, data } => {
                        if let Some(io) = peers.get(&peer) {
                            io.send(data);
                        }
                    }
                    MetadataOutput::Connect(addr) => {
                        net::spawn_connect(addr, bind, connects.clone(), cancel.clone());
                    }
                    MetadataOutput::Disconnect { peer, reason } => {
                        tracing::debug!(peer = peer.0, %reason, "metadata fetch dropped a peer");
                        peers.remove(&peer);
                    }
                    MetadataOutput::Event(event) => log_event(&event),
                    MetadataOutput::Done(done) => return Ok(done),
                    MetadataOutput::Unusable(error) => return Err(MagnetError::Unusable(error)),
                    _ => {}
                }
            }
            let deadline = fetch.poll_timeout().map(Instant::from_std);
            let sleep = async {
                match deadline {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            let now = || Instant::now().into_std();
            tokio::select! {
                _ = cancel.cancelled() => return Err(MagnetError::Cancelled),
                Some(ev) = peer_rx.recv() => match ev {
                    PeerIoEvent::Data { peer, data } => {
                        if peers.contains_key(&peer) {
                            fetch.handle_peer_data(now(), peer, &data);
                        }
                    }
                    PeerIoEvent::Closed { peer, .. } => {
                        if peers.remove(&peer).is_some() {
                            fetch.handle_peer_closed(now(), peer);
                        }
                    }
                    // A metadata fetch sends only small messages: nothing waits on the socket.
                    PeerIoEvent::Sent { .. } => {}
                },
                Some(inc) = incoming.recv() => {
                    let key = fetch.handle_incoming(now(), inc.addr, inc.handshake);
                    peers.insert(key, PeerIo::spawn(key, inc.stream, peer_events.clone(), &cancel, PeerLimits::default()));
                    if !inc.rest.is_empty() {
                        fetch.handle_peer_data(now(), key, &inc.rest);
                    }
                }
                Some((addr, result)) = connect_rx.recv() => match result {
                    Ok(stream) => {
                        let key = fetch.handle_connected(now(), addr);
                        peers.insert(key, PeerIo::spawn(key, stream, peer_events.clone(), &cancel, PeerLimits::default()));
                    }
                    Err(_) => fetch.handle_connect_failed(now(), addr),
                },
                Some(cmd) = commands.recv() => {
                    if let TorrentCommand::AddPeers(addrs, source) = cmd {
                        fetch.add_peer_addresses(now(), addrs, source);
                    }
                }
                _ = sleep => fetch.handle_timeout(now()),
            }
        }
    }
}

fn publish_progress(
    fetch: &MetadataFetch,
    progress: &tokio::sync::watch::Sender<MetadataProgress>,
) {
    let (received, total) = fetch.progress().unwrap_or((0, 0));
    let now = MetadataProgress {
        received,
        total,
        peers: fetch.peer_count(),
    };
    progress.send_if_modified(|p| std::mem::replace(p, now) != now);
}

fn log_event(event: &MetadataEvent) {
    match event {
        MetadataEvent::SizeKnown { size } => tracing::info!(size, "metadata size known; fetching"),
        MetadataEvent::PeerBanned { addr, .. } => {
            tracing::warn!(%addr, "peer banned: sent metadata that failed the infohash check")
        }
        MetadataEvent::HashFailed { .. } => {
            tracing::warn!("assembled metadata failed the infohash check; fetching again")
        }
        _ => {}
    }
}

/// A `.torrent` file around a verified raw info dictionary: `announce`, `announce-list` (one
/// tier per tracker, as magnet links give no tiers) and `info`, keys in canonical order.
pub(crate) fn torrent_file_bytes(raw_info: &[u8], trackers: &[String]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw_info.len() + 256);
    out.push(b'd');
    if let Some(first) = trackers.first() {
        encode_bytes(&mut out, b"announce");
        encode_bytes(&mut out, first.as_bytes());
        encode_bytes(&mut out, b"announce-list");
        out.push(b'l');
        for url in trackers {
            out.push(b'l');
            encode_bytes(&mut out, url.as_bytes());
            out.push(b'e');
        }
        out.push(b'e');
    }
    encode_bytes(&mut out, b"info");
    out.extend_from_slice(raw_info);
    out.push(b'e');
    out
}

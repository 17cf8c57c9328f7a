//! The UDP tracker client (BEP 15): one socket per address family, shared by every torrent.
//!
//! A receive task reads every datagram, peeks its transaction id and hands it to the request
//! waiting for that id, if the datagram came from the address that request went to; anything
//! else is dropped. Each send waits `base · 2^n` (n counts the timeouts of this announce, connect
//! and announce together) before sending again, with a fresh transaction id, at most `max_tries`
//! times. Connection ids are cached per tracker address for `connection_ttl`; an error reply
//! drops the cached id, since an expired id is its most common cause.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use shoal_proto::tracker::udp::{PeerFamily, Request, Response, UdpAnnounce, MAX_PACKET_LEN};
use shoal_proto::tracker::{Announce, AnnounceReply, ScrapeStats};
use shoal_proto::InfoHash;
use tokio::net::UdpSocket;
use tokio::sync::oneshot;
use tokio::time::Instant;
use tokio_util::sync::{CancellationToken, DropGuard};
use tracing::{debug, trace, Instrument};

use super::{TrackerConfig, TrackerError};

/// Requests waiting for a reply: transaction id → (tracker address, where to deliver).
type Pending = Arc<Mutex<HashMap<u32, (SocketAddr, oneshot::Sender<Vec<u8>>)>>>;

#[derive(Debug)]
pub(crate) struct UdpTracker {
    socket: Arc<UdpSocket>,
    family: PeerFamily,
    pending: Pending,
    connections: Mutex<HashMap<SocketAddr, (u64, Instant)>>,
    base_timeout: Duration,
    max_tries: u32,
    connection_ttl: Duration,
    _stop_receiver: DropGuard,
}

/// Removes a pending entry however the wait ends (reply, timeout, or the future dropped).
struct PendingGuard<'a> {
    pending: &'a Pending,
    transaction_id: u32,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        lock(self.pending).remove(&self.transaction_id);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The maps stay consistent even if a holder panicked: every update is a single insert/remove.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl UdpTracker {
    pub(crate) async fn bind(
        addr: SocketAddr,
        config: &TrackerConfig,
    ) -> Result<Self, TrackerError> {
        let socket = Arc::new(UdpSocket::bind(addr).await?);
        let local = socket.local_addr()?;
        let pending: Pending = Arc::default();
        let cancel = CancellationToken::new();
        let span = tracing::debug_span!("udp_tracker_recv", local = %local);
        tokio::spawn(
            receive_loop(socket.clone(), pending.clone(), cancel.clone()).instrument(span),
        );
        Ok(UdpTracker {
            socket,
            family: PeerFamily::of(&local),
            pending,
            connections: Mutex::default(),
            base_timeout: config.udp_base_timeout,
            max_tries: config.udp_max_tries.max(1),
            connection_ttl: config.udp_connection_ttl,
            _stop_receiver: cancel.drop_guard(),
        })
    }

    pub(crate) async fn announce(
        &self,
        to: SocketAddr,
        announce: &Announce,
    ) -> Result<AnnounceReply, TrackerError> {
        let body = UdpAnnounce {
            info_hash: announce.info_hash,
            peer_id: announce.peer_id,
            downloaded: announce.downloaded,
            left: announce.left,
            uploaded: announce.uploaded,
            event: announce.event,
            key: announce.key,
            num_want: announce
                .numwant
                .map_or(-1, |n| i32::try_from(n).unwrap_or(i32::MAX)),
            port: announce.port,
        };
        let response = self
            .connected_exchange(to, |connection_id, transaction_id| Request::Announce {
                connection_id,
                transaction_id,
                announce: body.clone(),
            })
            .await?;
        match response {
            Response::Announce { reply, .. } => Ok(reply),
            other => Err(unexpected("announce", &other)),
        }
    }

    pub(crate) async fn scrape(
        &self,
        to: SocketAddr,
        hashes: &[InfoHash],
    ) -> Result<Vec<(InfoHash, ScrapeStats)>, TrackerError> {
        let hashes = &hashes[..hashes
            .len()
            .min(shoal_proto::tracker::udp::MAX_SCRAPE_HASHES)];
        let response = self
            .connected_exchange(to, |connection_id, transaction_id| Request::Scrape {
                connection_id,
                transaction_id,
                hashes: hashes.to_vec(),
            })
            .await?;
        match response {
            Response::Scrape { stats, .. } => Ok(hashes.iter().copied().zip(stats).collect()),
            other => Err(unexpected("scrape", &other)),
        }
    }

    /// Gets a connection id (cached or fresh), then sends `build(connection_id, transaction_id)`
    /// until a reply comes, retransmitting on timeouts.
    async fn connected_exchange(
        &self,
        to: SocketAddr,
        build: impl Fn(u64, u32) -> Request,
    ) -> Result<Response, TrackerError> {
        let mut timeouts = 0u32;
        loop {
            let connection_id = self.connection_id(to, &mut timeouts).await?;
            match self
                .exchange(to, timeouts, |tid| build(connection_id, tid))
                .await?
            {
                Some(Response::Error { message, .. }) => {
                    lock(&self.connections).remove(&to);
                    return Err(TrackerError::Refused { reason: message });
                }
                Some(response) => return Ok(response),
                None => self.count_timeout(&mut timeouts)?,
            }
        }
    }

    /// A connection id for `to`: the cached one if it is younger than the TTL, else a connect.
    async fn connection_id(&self, to: SocketAddr, timeouts: &mut u32) -> Result<u64, TrackerError> {
        if let Some(&(id, at)) = lock(&self.connections).get(&to) {
            if at.elapsed() < self.connection_ttl {
                return Ok(id);
            }
        }
        loop {
            let reply = self
                .exchange(to, *timeouts, |transaction_id| Request::Connect {
                    transaction_id,
                })
                .await?;
            match reply {
                Some(Response::Connect { connection_id, .. }) => {
                    lock(&self.connections).insert(to, (connection_id, Instant::now()));
                    return Ok(connection_id);
                }
                Some(Response::Error { message, .. }) => {
                    return Err(TrackerError::Refused { reason: message })
                }
                Some(other) => return Err(unexpected("connect", &other)),
                None => self.count_timeout(timeouts)?,
            }
        }
    }

    fn count_timeout(&self, timeouts: &mut u32) -> Result<(), TrackerError> {
        *timeouts += 1;
        if *timeouts >= self.max_tries {
            let waited = (0..self.max_tries).map(|n| self.wait_for(n)).sum();
            return Err(TrackerError::Timeout { after: waited });
        }
        Ok(())
    }

    fn wait_for(&self, timeouts: u32) -> Duration {
        self.base_timeout.saturating_mul(1 << timeouts.min(8))
    }

    /// One send and one wait of `base · 2^timeouts`. `Ok(None)` is a timeout.
    async fn exchange(
        &self,
        to: SocketAddr,
        timeouts: u32,
        build: impl FnOnce(u32) -> Request,
    ) -> Result<Option<Response>, TrackerError> {
        let (transaction_id, rx) = self.register(to);
        let _guard = PendingGuard {
            pending: &self.pending,
            transaction_id,
        };
        let request = build(transaction_id);
        let mut packet = Vec::with_capacity(request.encoded_len());
        request.encode(&mut packet);
        self.socket.send_to(&packet, to).await?;
        let bytes = match tokio::time::timeout(self.wait_for(timeouts), rx).await {
            Ok(Ok(bytes)) => bytes,
            Ok(Err(_)) | Err(_) => {
                debug!(tracker = %to, transaction_id, timeouts, "no UDP tracker reply in time");
                return Ok(None);
            }
        };
        Ok(Some(Response::decode(&bytes, self.family)?))
    }

    /// A fresh random transaction id, registered as waiting for a reply from `to`.
    fn register(&self, to: SocketAddr) -> (u32, oneshot::Receiver<Vec<u8>>) {
        let (tx, rx) = oneshot::channel();
        let mut pending = lock(&self.pending);
        let mut transaction_id: u32 = rand::random();
        while pending.contains_key(&transaction_id) {
            transaction_id = rand::random();
        }
        pending.insert(transaction_id, (to, tx));
        (transaction_id, rx)
    }
}

fn unexpected(expected: &'static str, got: &Response) -> TrackerError {
    let got = match got {
        Response::Connect { .. } => "connect",
        Response::Announce { .. } => "announce",
        Response::Scrape { .. } => "scrape",
        Response::Error { .. } => "error",
    };
    TrackerError::UnexpectedUdpReply { expected, got }
}

/// Reads datagrams until cancelled and routes each to the request waiting for it.
async fn receive_loop(socket: Arc<UdpSocket>, pending: Pending, cancel: CancellationToken) {
    let mut buf = vec![0u8; MAX_PACKET_LEN];
    loop {
        let (len, from) = tokio::select! {
            _ = cancel.cancelled() => return,
            received = socket.recv_from(&mut buf) => match received {
                Ok(got) => got,
                Err(e) => {
                    // ICMP "port unreachable" surfaces here on Linux; the request times out.
                    trace!(error = %e, "UDP tracker socket error");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        let datagram = &buf[..len];
        let Ok((_action, transaction_id)) = Response::peek_header(datagram) else {
            trace!(%from, len, "dropping a datagram too short for BEP 15");
            continue;
        };
        let mut waiting = lock(&pending);
        match waiting.get(&transaction_id) {
            Some((expected_from, _)) if *expected_from == from => {
                if let Some((_, tx)) = waiting.remove(&transaction_id) {
                    let _ = tx.send(datagram.to_vec());
                }
            }
            _ => debug!(%from, transaction_id, "dropping a UDP tracker reply nobody waits for"),
        }
    }
}

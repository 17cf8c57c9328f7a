//! Local Service Discovery (BEP 14): finding peers of the same torrents on the local network by
//! multicasting `BT-SEARCH` announces to 239.192.152.143:6771.
//!
//! [`LsdHandle::start`] binds one UDP socket (shared with other clients on the machine through
//! `SO_REUSEADDR`/`SO_REUSEPORT`), joins the group on the configured interface with multicast
//! TTL 1 (announces never leave the local link), and spawns one task. The task announces each
//! torrent given to [`LsdHandle::set_torrents`] soon after it is added, then every
//! [`LsdConfig::announce_interval`] (5 minutes); a torrent is never announced twice within
//! [`LsdConfig::min_reannounce`], however often the set changes. Incoming datagrams are decoded
//! by [`shoal_proto::lsd::LsdAnnounce::decode`] (bounded, typed errors); our own announces,
//! looped back by the kernel, are recognised by our random cookie and dropped; announces for
//! torrents we are not running are ignored. Each discovered `(peer address, infohash)` goes out
//! once per datagram on a bounded channel: when the reader lags, new finds are dropped and
//! counted, never queued without bound.
//!
//! Private torrents never reach LSD: [`LsdHandle::set_torrents`] takes
//! [`PublicInfoHash`] values only. For tests, [`LsdConfig::announce_to`] can point at a unicast
//! address and [`LsdConfig::group`] can be `None`, so the runtime works without multicast.

use std::collections::{HashMap, HashSet};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use shoal_proto::lsd::{LsdAnnounce, IPV4_GROUP, IPV4_HOST, MAX_MESSAGE_LEN};
use shoal_proto::InfoHash;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use crate::dht::PublicInfoHash;

/// How to run LSD. `Default` is BEP 14 on IPv4: bind `0.0.0.0:6771`, join the group on the
/// interface the kernel picks, announce every 5 minutes.
#[derive(Clone, Debug)]
pub struct LsdConfig {
    /// Local address of the socket (port 6771 to hear the group).
    pub bind: SocketAddrV4,
    /// Address of the interface to join the group on and send from; `0.0.0.0` lets the kernel
    /// pick. Tests use `127.0.0.1` inside their own network namespace.
    pub interface: Ipv4Addr,
    /// Multicast group to join; `None` joins nothing (unicast tests).
    pub group: Option<Ipv4Addr>,
    /// Where announces are sent: the group, or a unicast address in tests.
    pub announce_to: SocketAddrV4,
    /// Our BitTorrent listen port, put in every announce.
    pub listen_port: u16,
    /// Time between announces of one torrent.
    pub announce_interval: Duration,
    /// Shortest time between two announces of one torrent.
    pub min_reannounce: Duration,
    /// Multicast hops; 1 keeps announces on the local link.
    pub multicast_ttl: u32,
    /// Discovered peers buffered for the reader.
    pub peer_channel_capacity: usize,
}

impl Default for LsdConfig {
    fn default() -> Self {
        LsdConfig {
            bind: SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, IPV4_GROUP.port()),
            interface: Ipv4Addr::UNSPECIFIED,
            group: Some(*IPV4_GROUP.ip()),
            announce_to: IPV4_GROUP,
            listen_port: 6881,
            announce_interval: Duration::from_secs(5 * 60),
            min_reannounce: Duration::from_secs(60),
            multicast_ttl: 1,
            peer_channel_capacity: 256,
        }
    }
}

/// A peer found on the local network for one of our torrents.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct LsdPeer {
    /// The sender's address with the BitTorrent port it announced.
    pub addr: SocketAddr,
    pub info_hash: InfoHash,
}

/// Counters since start.
#[derive(Clone, Copy, Default, PartialEq, Eq, Debug)]
pub struct LsdStats {
    /// Announce datagrams sent.
    pub announces_sent: u64,
    /// Datagrams received, valid or not.
    pub datagrams_received: u64,
    /// Datagrams that did not decode (or were too long).
    pub bad_datagrams: u64,
    /// Our own announces heard back and dropped.
    pub own_ignored: u64,
    /// Peers handed out on the channel.
    pub peers_found: u64,
    /// Peers dropped because the reader was behind.
    pub peers_dropped: u64,
}

/// Why LSD could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LsdStartError {
    #[error("LSD socket setup failed at {step} (bind {bind}, interface {interface})")]
    Socket {
        step: &'static str,
        bind: SocketAddrV4,
        interface: Ipv4Addr,
        #[source]
        source: std::io::Error,
    },
}

/// A running LSD service; dropping it stops the task.
#[derive(Debug)]
pub struct LsdHandle {
    torrents: watch::Sender<Vec<PublicInfoHash>>,
    stats: Arc<Mutex<LsdStats>>,
    local_addr: SocketAddr,
    cookie: String,
    cancel: CancellationToken,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl LsdHandle {
    /// Binds, joins the group and spawns the LSD task; discovered peers arrive on the returned
    /// receiver. Must be called inside a tokio runtime.
    pub fn start(config: LsdConfig) -> Result<(LsdHandle, mpsc::Receiver<LsdPeer>), LsdStartError> {
        let socket = open_socket(&config)?;
        let local_addr = socket
            .local_addr()
            .map_err(|source| LsdStartError::Socket {
                step: "local_addr",
                bind: config.bind,
                interface: config.interface,
                source,
            })?;
        let cookie = format!("{:08x}", rand::random::<u32>());
        let (peers_tx, peers_rx) = mpsc::channel(config.peer_channel_capacity.max(1));
        let (torrents, torrents_rx) = watch::channel(Vec::new());
        let stats = Arc::new(Mutex::new(LsdStats::default()));
        let cancel = CancellationToken::new();
        let service = Service {
            socket,
            config,
            cookie: cookie.clone(),
            peers: peers_tx,
            torrents: torrents_rx,
            schedule: Schedule::default(),
            stats: stats.clone(),
        };
        let span = tracing::info_span!("lsd", addr = %local_addr);
        let task = tokio::spawn(service.run(cancel.clone()).instrument(span));
        let handle = LsdHandle {
            torrents,
            stats,
            local_addr,
            cookie,
            cancel,
            task: Some(task),
        };
        Ok((handle, peers_rx))
    }

    /// Replaces the set of torrents to announce (active, public ones).
    pub fn set_torrents(&self, torrents: Vec<PublicInfoHash>) {
        self.torrents.send_replace(torrents);
    }

    /// The socket's local address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The random cookie in our announces.
    pub fn cookie(&self) -> &str {
        &self.cookie
    }

    /// Counters since start.
    pub fn stats(&self) -> LsdStats {
        self.stats.lock().map(|stats| *stats).unwrap_or_default()
    }

    /// Stops the task and waits for it to finish.
    pub async fn shutdown(mut self) {
        self.cancel.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for LsdHandle {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

fn open_socket(config: &LsdConfig) -> Result<UdpSocket, LsdStartError> {
    use socket2::{Domain, Protocol, Socket, Type};
    let err = |step| {
        move |source| LsdStartError::Socket {
            step,
            bind: config.bind,
            interface: config.interface,
            source,
        }
    };
    let socket =
        Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).map_err(err("socket"))?;
    socket
        .set_reuse_address(true)
        .map_err(err("SO_REUSEADDR"))?;
    #[cfg(unix)]
    socket.set_reuse_port(true).map_err(err("SO_REUSEPORT"))?;
    socket.set_nonblocking(true).map_err(err("nonblocking"))?;
    socket
        .bind(&SocketAddr::V4(config.bind).into())
        .map_err(err("bind"))?;
    if let Some(group) = config.group {
        socket
            .join_multicast_v4(&group, &config.interface)
            .map_err(err("join group"))?;
    }
    if !config.interface.is_unspecified() {
        socket
            .set_multicast_if_v4(&config.interface)
            .map_err(err("IP_MULTICAST_IF"))?;
    }
    socket
        .set_multicast_ttl_v4(config.multicast_ttl)
        .map_err(err("IP_MULTICAST_TTL"))?;
    socket
        .set_multicast_loop_v4(true)
        .map_err(err("IP_MULTICAST_LOOP"))?;
    UdpSocket::from_std(socket.into()).map_err(err("tokio registration"))
}

/// When each torrent is next due, and when each was last sent (kept after removal so that a
/// torrent removed and re-added is still rate-limited).
#[derive(Default)]
struct Schedule {
    next_due: HashMap<InfoHash, Instant>,
    last_sent: HashMap<InfoHash, Instant>,
}

impl Schedule {
    fn set_torrents(&mut self, torrents: &[PublicInfoHash], now: Instant, min_gap: Duration) {
        let wanted: HashSet<InfoHash> = torrents.iter().map(PublicInfoHash::info_hash).collect();
        self.next_due.retain(|hash, _| wanted.contains(hash));
        self.last_sent
            .retain(|_, sent| now.saturating_duration_since(*sent) < min_gap);
        for hash in wanted {
            let earliest = self
                .last_sent
                .get(&hash)
                .map_or(now, |sent| *sent + min_gap);
            self.next_due.entry(hash).or_insert(earliest.max(now));
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.next_due.values().min().copied()
    }

    /// The torrents due at `now`, in order, marked as sent.
    fn take_due(&mut self, now: Instant, interval: Duration) -> Vec<InfoHash> {
        let mut due: Vec<InfoHash> = self
            .next_due
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(hash, _)| *hash)
            .collect();
        due.sort();
        for hash in &due {
            self.next_due.insert(*hash, now + interval);
            self.last_sent.insert(*hash, now);
        }
        due
    }

    fn is_running(&self, hash: &InfoHash) -> bool {
        self.next_due.contains_key(hash)
    }
}

struct Service {
    socket: UdpSocket,
    config: LsdConfig,
    cookie: String,
    peers: mpsc::Sender<LsdPeer>,
    torrents: watch::Receiver<Vec<PublicInfoHash>>,
    schedule: Schedule,
    stats: Arc<Mutex<LsdStats>>,
}

impl Service {
    async fn run(mut self, cancel: CancellationToken) {
        // One byte more than the limit, so that an oversized datagram is seen as such.
        let mut buf = vec![0u8; MAX_MESSAGE_LEN + 1];
        let mut torrents_open = true;
        loop {
            let deadline = self.schedule.next_deadline();
            let sleep = async move {
                match deadline {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = cancel.cancelled() => break,
                received = self.socket.recv_from(&mut buf) => match received {
                    Ok((len, from)) => self.handle_datagram(&buf[..len], from),
                    Err(error) => tracing::debug!(%error, "LSD receive failed"),
                },
                changed = self.torrents.changed(), if torrents_open => {
                    if changed.is_err() {
                        torrents_open = false;
                        continue;
                    }
                    let torrents = self.torrents.borrow_and_update().clone();
                    let now = Instant::now();
                    self.schedule.set_torrents(&torrents, now, self.config.min_reannounce);
                }
                () = sleep => self.announce_due().await,
            }
        }
        tracing::debug!("LSD stopped");
    }

    async fn announce_due(&mut self) {
        let due = self
            .schedule
            .take_due(Instant::now(), self.config.announce_interval);
        let batches = match LsdAnnounce::batches(
            IPV4_HOST,
            self.config.listen_port,
            &due,
            Some(&self.cookie),
        ) {
            Ok(batches) => batches,
            Err(error) => {
                tracing::warn!(%error, "cannot build LSD announce");
                return;
            }
        };
        for announce in batches {
            let mut datagram = Vec::with_capacity(announce.encoded_len());
            announce.encode(&mut datagram);
            match self
                .socket
                .send_to(&datagram, SocketAddr::V4(self.config.announce_to))
                .await
            {
                Ok(_) => self.bump(|stats| stats.announces_sent += 1),
                Err(error) => tracing::debug!(%error, "LSD announce not sent"),
            }
        }
    }

    fn handle_datagram(&mut self, datagram: &[u8], from: SocketAddr) {
        self.bump(|stats| stats.datagrams_received += 1);
        let announce = match LsdAnnounce::decode(datagram) {
            Ok(announce) => announce,
            Err(error) => {
                tracing::debug!(%from, %error, "bad LSD datagram");
                self.bump(|stats| stats.bad_datagrams += 1);
                return;
            }
        };
        if announce.cookie() == Some(self.cookie.as_str()) {
            self.bump(|stats| stats.own_ignored += 1);
            return;
        }
        let addr = SocketAddr::new(from.ip(), announce.port());
        for info_hash in announce.info_hashes() {
            if !self.schedule.is_running(info_hash) {
                continue;
            }
            let peer = LsdPeer {
                addr,
                info_hash: *info_hash,
            };
            match self.peers.try_send(peer) {
                Ok(()) => self.bump(|stats| stats.peers_found += 1),
                Err(_) => self.bump(|stats| stats.peers_dropped += 1),
            }
        }
    }

    fn bump(&self, update: impl FnOnce(&mut LsdStats)) {
        if let Ok(mut stats) = self.stats.lock() {
            update(&mut stats);
        }
    }
}

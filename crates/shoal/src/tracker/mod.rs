//! Tracker clients: HTTP(S) and UDP (BEP 15) announce and scrape, and the per-torrent announcer.
//!
//! Data flows like this: a torrent's [`shoal_engine::announce::AnnounceSchedule`] decides when and
//! where to announce; [`run_announcer`] (one task per torrent) takes its requests, performs them
//! through a [`TrackerClient`] shared by the whole session, feeds replies and failures back, sends
//! the peers it learns down a channel, and publishes every tracker's status for the user
//! (read by front ends through [`TrackerWatch`]).
//!
//! Guarantees, whatever a tracker does: an HTTP reply body is read as a stream and cut off past
//! [`TrackerConfig::max_body_bytes`]; at most [`TrackerConfig::max_redirects`] redirects are
//! followed, only to `http`/`https`; every request has a timeout. A UDP reply is accepted only
//! from the tracker's address and with the transaction id of the request; anything else is
//! dropped and the request is retransmitted after `udp_base_timeout · 2^n`, at most
//! `udp_max_tries` times. UDP connection ids are reused for [`TrackerConfig::udp_connection_ttl`]
//! (BEP 15: one minute).

mod announcer;
mod http;
mod status;
mod udp;

use std::net::SocketAddr;
use std::time::Duration;

use shoal_proto::tracker::http::HttpReplyError;
use shoal_proto::tracker::udp::UdpError;
pub use shoal_proto::tracker::{
    Announce, AnnounceEvent, AnnounceReply, ScrapeStats, TrackerUrl, TrackerUrlError,
};
use shoal_proto::InfoHash;
use tokio::sync::OnceCell;

pub use announcer::{run_announcer, AnnouncerCommand, AnnouncerHandle, TorrentIdentity};
pub use status::TrackerWatch;

/// Tunables with documented defaults.
#[derive(Clone, Debug)]
pub struct TrackerConfig {
    /// Whole HTTP request, body included. Default 30 s.
    pub http_timeout: Duration,
    /// TCP (and TLS) connect. Default 10 s.
    pub http_connect_timeout: Duration,
    /// Redirects followed before giving up. Default 5.
    pub max_redirects: usize,
    /// Largest HTTP reply body read. Default 2 MiB.
    pub max_body_bytes: usize,
    /// First UDP retransmission timeout; the n-th wait is `base · 2^n`. Default 15 s (BEP 15).
    pub udp_base_timeout: Duration,
    /// UDP sends per request (connect and announce count together) before giving up. Default 4
    /// (waits of 15, 30, 60 and 120 s).
    pub udp_max_tries: u32,
    /// How long a UDP connection id is reused. Default 60 s (BEP 15).
    pub udp_connection_ttl: Duration,
    /// Local address of the IPv4 UDP socket. Default `0.0.0.0:0`.
    pub udp_bind_v4: SocketAddr,
    /// Local address of the IPv6 UDP socket. Default `[::]:0`.
    pub udp_bind_v6: SocketAddr,
    /// HTTP `User-Agent`.
    pub user_agent: String,
}

impl Default for TrackerConfig {
    fn default() -> Self {
        TrackerConfig {
            http_timeout: Duration::from_secs(30),
            http_connect_timeout: Duration::from_secs(10),
            max_redirects: 5,
            max_body_bytes: 2 * 1024 * 1024,
            udp_base_timeout: Duration::from_secs(15),
            udp_max_tries: 4,
            udp_connection_ttl: Duration::from_secs(60),
            udp_bind_v4: SocketAddr::from(([0, 0, 0, 0], 0)),
            udp_bind_v6: SocketAddr::from(([0u16; 8], 0)),
            user_agent: concat!("shoal/", env!("CARGO_PKG_VERSION")).to_owned(),
        }
    }
}

/// Why an announce or scrape did not work. The `Display` text is what the user sees as the
/// tracker's last error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrackerError {
    #[error("tracker refused: {reason}")]
    Refused { reason: String },
    #[error("tracker answered HTTP {status}")]
    HttpStatus { status: u16 },
    #[error("tracker reply is over the {limit} byte limit")]
    BodyTooLarge { limit: usize },
    #[error("more than {limit} redirects")]
    TooManyRedirects { limit: usize },
    #[error("no answer within {after:?}")]
    Timeout { after: Duration },
    #[error("HTTP request failed: {detail}")]
    Http { detail: String },
    #[error(transparent)]
    BadHttpReply(HttpReplyError),
    #[error("bad UDP tracker reply: {0}")]
    BadUdpReply(#[from] UdpError),
    #[error("UDP tracker sent a {got} reply to a {expected} request")]
    UnexpectedUdpReply {
        expected: &'static str,
        got: &'static str,
    },
    #[error("cannot resolve {host}: {detail}")]
    Resolve { host: String, detail: String },
    #[error("{host} has no {family} address")]
    NoAddress { host: String, family: &'static str },
    #[error("tracker {url} has no scrape URL")]
    ScrapeUnsupported { url: String },
    #[error("the scrape reply does not list this torrent")]
    NotInScrape,
    #[error("socket error: {0}")]
    Io(#[from] std::io::Error),
}

impl From<HttpReplyError> for TrackerError {
    fn from(e: HttpReplyError) -> Self {
        match e {
            HttpReplyError::Failure { reason } => TrackerError::Refused { reason },
            other => TrackerError::BadHttpReply(other),
        }
    }
}

/// Announces and scrapes over HTTP(S) and UDP. One per session, shared by every torrent: it holds
/// one HTTP connection pool and (bound on first use) one UDP socket per address family.
#[derive(Debug)]
pub struct TrackerClient {
    config: TrackerConfig,
    http: http::HttpTracker,
    udp_v4: OnceCell<udp::UdpTracker>,
    udp_v6: OnceCell<udp::UdpTracker>,
}

impl TrackerClient {
    pub fn new(config: TrackerConfig) -> Result<Self, TrackerError> {
        Ok(TrackerClient {
            http: http::HttpTracker::new(&config)?,
            config,
            udp_v4: OnceCell::new(),
            udp_v6: OnceCell::new(),
        })
    }

    /// One announce. A `failure reason` or UDP error comes back as [`TrackerError::Refused`].
    pub async fn announce(
        &self,
        url: &TrackerUrl,
        announce: &Announce,
    ) -> Result<AnnounceReply, TrackerError> {
        match url {
            TrackerUrl::Http { url, .. } => self.http.announce(url, announce).await,
            TrackerUrl::Udp { host, port, .. } => {
                let (socket, addr) = self.udp_for(host, *port).await?;
                socket.announce(addr, announce).await
            }
        }
    }

    /// Figures for `hashes` (at most 74 over UDP), in the order the tracker lists them.
    pub async fn scrape(
        &self,
        url: &TrackerUrl,
        hashes: &[InfoHash],
    ) -> Result<Vec<(InfoHash, ScrapeStats)>, TrackerError> {
        match url {
            TrackerUrl::Http { url, .. } => self.http.scrape(url, hashes).await,
            TrackerUrl::Udp { host, port, .. } => {
                let (socket, addr) = self.udp_for(host, *port).await?;
                socket.scrape(addr, hashes).await
            }
        }
    }

    /// Resolves the tracker and picks (binding on first use) the socket of its address family;
    /// IPv4 addresses are preferred.
    async fn udp_for(
        &self,
        host: &str,
        port: u16,
    ) -> Result<(&udp::UdpTracker, SocketAddr), TrackerError> {
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
            .await
            .map_err(|e| TrackerError::Resolve {
                host: host.to_owned(),
                detail: e.to_string(),
            })?
            .collect();
        let addr = addrs
            .iter()
            .find(|a| a.is_ipv4())
            .or_else(|| addrs.first())
            .copied()
            .ok_or_else(|| TrackerError::NoAddress {
                host: host.to_owned(),
                family: "IP",
            })?;
        let (cell, bind) = if addr.is_ipv4() {
            (&self.udp_v4, self.config.udp_bind_v4)
        } else {
            (&self.udp_v6, self.config.udp_bind_v6)
        };
        let socket = cell
            .get_or_try_init(|| udp::UdpTracker::bind(bind, &self.config))
            .await?;
        Ok((socket, addr))
    }
}

//! The plain data a [`super::Torrent`] takes and gives: its parameters and tunables, what it asks
//! the runtime to do ([`Output`]), what it tells the user ([`TorrentEvent`]) and its figures
//! ([`TorrentStats`]).

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use shoal_proto::{Geometry, InfoHash, PeerId, PieceIndex};

use crate::bitfield::Bitfield;
use crate::choker::ChokerConfig;
use crate::disk::{DiskFailure, DiskRequest};
use crate::peer::{PeerConfig, PeerError};
use crate::picker::{ByteCounts, PickerConfig, Priority};
use crate::pipeline::PipelineConfig;
use crate::PeerKey;

/// Tunables of one torrent. `Default` gives documented, conservative values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TorrentConfig {
    /// Most peer connections at once, counting connects in progress. Default 50.
    pub max_peers: usize,
    /// Most outgoing connects in progress at once. Default 8.
    pub max_connecting: usize,
    /// First wait before reconnecting to an address that failed or dropped; doubles each time.
    /// Default 15 s.
    pub reconnect_backoff: Duration,
    /// An address that failed this many times in a row is forgotten. Default 5.
    pub max_connect_failures: u32,
    /// A peer contributing to this many failed pieces is banned (a sole contributor at once).
    /// Default 3.
    pub max_hash_strikes: u32,
    pub peer: PeerConfig,
    pub picker: PickerConfig,
    pub pipeline: PipelineConfig,
    pub choker: ChokerConfig,
}

impl Default for TorrentConfig {
    fn default() -> Self {
        TorrentConfig {
            max_peers: 50,
            max_connecting: 8,
            reconnect_backoff: Duration::from_secs(15),
            max_connect_failures: 5,
            max_hash_strikes: 3,
            peer: PeerConfig::default(),
            picker: PickerConfig::default(),
            pipeline: PipelineConfig::default(),
            choker: ChokerConfig::default(),
        }
    }
}

/// What a torrent engine starts from.
#[derive(Clone, Debug)]
pub struct TorrentParams {
    pub info_hash: InfoHash,
    pub our_peer_id: PeerId,
    pub geometry: Geometry,
    /// Pieces already verified (from a resume file checked against the disk, or a full check).
    pub have: Bitfield,
    /// One priority per piece; empty means every piece at normal priority.
    pub piece_priorities: Vec<Priority>,
    pub config: TorrentConfig,
    /// Seeds every random choice (picker tie-breaks, optimistic unchokes).
    pub rng_seed: u64,
    /// The raw `info` dictionary, to serve BEP 9 metadata requests; `None` to not serve it.
    pub info_bytes: Option<Bytes>,
}

/// Where a peer address came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum PeerSource {
    Tracker,
    Dht,
    Pex,
    LocalDiscovery,
    /// Added by the user or a test.
    Manual,
    /// The peer connected to us.
    Incoming,
}

/// Something the runtime must do for the torrent.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Output {
    /// Write these bytes to the peer's socket, in order.
    Transmit { peer: PeerKey, data: Bytes },
    /// Run a disk request and feed the result to [`super::Torrent::handle_disk`].
    Disk(DiskRequest),
    /// Open a connection; then call `handle_connected` or `handle_connect_failed`.
    Connect(SocketAddr),
    /// Close the peer's socket. The key is dead from now on; calls with it are ignored.
    Disconnect {
        peer: PeerKey,
        reason: DisconnectReason,
    },
    /// Something for the user.
    Event(TorrentEvent),
}

/// Why the engine dropped a peer.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DisconnectReason {
    #[error("protocol error: {0}")]
    Protocol(#[from] PeerError),
    #[error("banned: sent data that failed the hash check")]
    Banned,
    #[error("too many peers")]
    TooManyPeers,
    #[error("already connected to this peer")]
    Duplicate,
    #[error("both sides are seeds")]
    BothSeeds,
    #[error("torrent paused")]
    Paused,
}

/// What the user should hear about.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TorrentEvent {
    PeerConnected {
        peer: PeerKey,
        addr: SocketAddr,
        peer_id: PeerId,
    },
    PeerDisconnected {
        peer: PeerKey,
        addr: SocketAddr,
    },
    /// A piece passed its hash check: counted, announced and served from now on.
    PieceVerified(PieceIndex),
    /// A piece failed its hash check; it will be downloaded again.
    PieceFailed {
        piece: PieceIndex,
        contributors: Vec<SocketAddr>,
    },
    /// A peer sent bad data and will never be connected again.
    PeerBanned {
        addr: SocketAddr,
        peer_id: Option<PeerId>,
    },
    /// Every wanted piece is verified.
    Complete,
    /// The disk failed: the torrent paused; nothing verified was lost.
    DiskError {
        failure: DiskFailure,
    },
}

/// One connected peer, for the UI.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerInfo {
    pub key: PeerKey,
    pub addr: SocketAddr,
    pub peer_id: Option<PeerId>,
    pub source: PeerSource,
    pub am_choking: bool,
    pub am_interested: bool,
    pub peer_choking: bool,
    pub peer_interested: bool,
    pub snubbed: bool,
    pub pieces: u32,
    pub requests_in_flight: usize,
    pub downloaded: u64,
    pub uploaded: u64,
    pub download_rate: u64,
    pub upload_rate: u64,
}

/// The torrent's figures.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TorrentStats {
    pub bytes: ByteCounts,
    /// Block bytes received (including what later failed a hash check) and sent.
    pub downloaded: u64,
    pub uploaded: u64,
    /// Block bytes thrown away: duplicates, late arrivals, failed pieces.
    pub wasted: u64,
    /// Bytes per second over the last few seconds.
    pub download_rate: u64,
    pub upload_rate: u64,
    pub complete: bool,
    pub paused: bool,
    pub known_addresses: usize,
    pub connecting: usize,
    pub banned: usize,
    pub hash_failures: u32,
    pub peers: Vec<PeerInfo>,
}

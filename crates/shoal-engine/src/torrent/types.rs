//! The plain data a [`super::Torrent`] takes and gives: its parameters and tunables, what it asks
//! the runtime to do ([`Output`]), what it tells the user ([`TorrentEvent`]) and its figures
//! ([`TorrentStats`]).

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use shoal_proto::wire::ext_handshake::ExtHandshakeError;
use shoal_proto::wire::ut_metadata::MetadataError;
use shoal_proto::wire::ut_pex::PexError;
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
    /// BEP 6 / 9 / 10 / 11 tunables.
    pub extensions: ExtensionConfig,
}

/// Tunables of the extensions (allowed fast, metadata serving, PEX).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExtensionConfig {
    /// BEP 6: size of the allowed-fast set offered to each IPv4 peer that speaks fast. 0 offers
    /// none. Default 10.
    pub allowed_fast_count: u32,
    /// BEP 11: time between our `ut_pex` messages to one peer. Default 60 s (BEP 11: at most
    /// once a minute).
    pub pex_interval: Duration,
    /// BEP 11: how soon after a peer's extended handshake names `ut_pex` it gets our first
    /// message (when we know other peers to tell it of). Default 3 s.
    pub pex_first_delay: Duration,
    /// BEP 11: a peer's `ut_pex` message arriving sooner than this after its previous one is
    /// ignored (flood protection; honest peers send once a minute). Default 45 s.
    pub pex_min_receive_interval: Duration,
    /// BEP 9: metadata pieces one peer may fetch at once beyond a full copy of the metadata;
    /// after that it gets one piece per [`ExtensionConfig::metadata_refill`]. Default 4.
    pub metadata_burst_extra: u32,
    /// BEP 9: time to earn one more metadata piece once a peer spent its burst. Default 1 s.
    pub metadata_refill: Duration,
}

impl Default for ExtensionConfig {
    fn default() -> Self {
        ExtensionConfig {
            allowed_fast_count: 10,
            pex_interval: Duration::from_secs(60),
            pex_first_delay: Duration::from_secs(3),
            pex_min_receive_interval: Duration::from_secs(45),
            metadata_burst_extra: 4,
            metadata_refill: Duration::from_secs(1),
        }
    }
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
            extensions: ExtensionConfig::default(),
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
    /// The port we accept peer connections on, announced in our BEP 10 handshake (`p`).
    pub listen_port: Option<u16>,
    /// BEP 27 private torrent: no PEX sent or received, no DHT bit in our handshake, and its
    /// metadata is never served over BEP 9 (whoever may download it got the `.torrent` from the
    /// tracker's site).
    pub private: bool,
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
    #[error("bad extension message: {0}")]
    Extension(#[from] ExtensionError),
}

/// A BEP 10 extension message a peer got wrong.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ExtensionError {
    #[error("extended handshake: {0}")]
    Handshake(#[from] ExtHandshakeError),
    #[error("ut_metadata: {0}")]
    Metadata(#[from] MetadataError),
    #[error("ut_pex: {0}")]
    Pex(#[from] PexError),
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
    /// The client name from the peer's extended handshake (`v`).
    pub client: Option<String>,
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
    /// BEP 11 messages ignored for arriving sooner than the minimum gap.
    pub pex_ignored: u64,
    pub peers: Vec<PeerInfo>,
}

//! The plain data a [`super::MetadataFetch`] takes and gives: parameters, tunables, outputs,
//! events and the reasons it drops peers.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use shoal_proto::metainfo::{Info, MetainfoError};
use shoal_proto::wire::ut_metadata::{MetadataError, MAX_METADATA_SIZE};
use shoal_proto::{InfoHash, PeerId};

use crate::peer::{PeerConfig, PeerError};
use crate::torrent::ExtensionError;
use crate::PeerKey;

/// Tunables of a metadata fetch. `Default` gives documented values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetadataConfig {
    /// Most peer connections at once, counting connects in progress. Default 20.
    pub max_peers: usize,
    /// Most outgoing connects in progress at once. Default 8.
    pub max_connecting: usize,
    /// First wait before reconnecting to an address that failed or dropped; doubles each time.
    /// Default 15 s.
    pub reconnect_backoff: Duration,
    /// An address that failed this many times in a row is forgotten. Default 5.
    pub max_connect_failures: u32,
    /// The largest metadata we accept from a peer's `metadata_size`, in bytes; clamped to
    /// [`MAX_METADATA_SIZE`] (8 MiB). A peer claiming more is dropped. Default 8 MiB.
    pub max_metadata_size: u32,
    /// A metadata piece not answered within this is given to another peer and the slow peer
    /// dropped. Default 20 s.
    pub request_timeout: Duration,
    /// Metadata pieces asked of one peer at once. Default 4.
    pub max_requests_per_peer: usize,
    /// A peer's `ut_pex` message sooner than this after its previous one is ignored. Default 45 s.
    pub pex_min_receive_interval: Duration,
    pub peer: PeerConfig,
}

impl Default for MetadataConfig {
    fn default() -> Self {
        MetadataConfig {
            max_peers: 20,
            max_connecting: 8,
            reconnect_backoff: Duration::from_secs(15),
            max_connect_failures: 5,
            max_metadata_size: MAX_METADATA_SIZE,
            request_timeout: Duration::from_secs(20),
            max_requests_per_peer: 4,
            pex_min_receive_interval: Duration::from_secs(45),
            peer: PeerConfig::default(),
        }
    }
}

/// What a metadata fetch starts from.
#[derive(Clone, Debug)]
pub struct MetadataParams {
    pub info_hash: InfoHash,
    pub our_peer_id: PeerId,
    /// The port we accept peer connections on, announced in our BEP 10 handshake.
    pub listen_port: Option<u16>,
    pub config: MetadataConfig,
}

/// Something the runtime must do for the fetch.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum MetadataOutput {
    /// Write these bytes to the peer's socket, in order.
    Transmit {
        peer: PeerKey,
        data: Bytes,
    },
    /// Open a connection; then call `handle_connected` or `handle_connect_failed`.
    Connect(SocketAddr),
    /// Close the peer's socket. The key is dead from now on.
    Disconnect {
        peer: PeerKey,
        reason: FetchDropReason,
    },
    Event(MetadataEvent),
    /// The verified info dictionary: the fetch is over, every connection of it was named in a
    /// `Disconnect` before this. Start a `Torrent` with `info_bytes: Some(info.raw().clone())` and
    /// add `peers` (with `PeerSource::Pex` or the source they came from): connections are not
    /// handed over, the torrent dials again.
    Done(FetchedMetadata),
    /// The metadata hashes to the infohash but is not a usable torrent (the magnet link names a
    /// broken torrent): the fetch is over.
    Unusable(MetainfoError),
}

/// The result of a successful fetch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FetchedMetadata {
    /// Parsed and checked: `info.info_hash()` is the infohash we fetched, `info.raw()` the bytes.
    pub info: Info,
    /// Every address worth dialing for the download: the peers we were connected to (at their
    /// listen addresses) and every known, unbanned address.
    pub peers: Vec<SocketAddr>,
    /// Addresses banned during the fetch (they sent metadata that failed the infohash check).
    pub banned: Vec<SocketAddr>,
}

/// What the user should hear about.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum MetadataEvent {
    PeerConnected {
        peer: PeerKey,
        addr: SocketAddr,
        peer_id: PeerId,
    },
    /// Peers told us the metadata is `size` bytes; fetching starts.
    SizeKnown { size: u32 },
    /// The assembled metadata did not hash to the infohash; it is fetched again.
    HashFailed { contributors: Vec<SocketAddr> },
    /// A peer sent metadata that failed the check and will never be connected again.
    PeerBanned {
        addr: SocketAddr,
        peer_id: Option<PeerId>,
    },
}

/// Why the fetch dropped a peer.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FetchDropReason {
    #[error("protocol error: {0}")]
    Protocol(#[from] PeerError),
    #[error("bad extension message: {0}")]
    Extension(#[from] ExtensionError),
    #[error("the peer does not speak the BEP 10 extension protocol")]
    NoExtensionProtocol,
    #[error("the peer does not serve metadata (no ut_metadata or no metadata_size)")]
    NoMetadataSupport,
    #[error("metadata size {size} refused: {source}")]
    BadMetadataSize { size: u64, source: MetadataError },
    #[error("the peer's metadata size {theirs} differs from the {ours} bytes being fetched")]
    SizeMismatch { theirs: u64, ours: u32 },
    #[error("the peer rejected metadata piece {piece}")]
    Rejected { piece: u32 },
    #[error("metadata piece {piece} not answered within {waited:?}")]
    RequestTimeout { piece: u32, waited: Duration },
    #[error("banned: sent metadata that failed the infohash check")]
    Banned,
    #[error("already connected to this peer")]
    Duplicate,
    #[error("too many peers")]
    TooManyPeers,
    #[error("the metadata fetch is over")]
    Finished,
}

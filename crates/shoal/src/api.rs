//! The facade's plain data: what front ends send in and get back.
//!
//! Every type here is serializable so that the CLI, the HTTP API and the Transmission RPC layer
//! all speak the same values. Nothing here holds a socket, a task or a lock.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// What a torrent is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TorrentState {
    /// Hashing the data already on disk.
    Checking,
    /// Fetching pieces.
    Downloading,
    /// Has every wanted piece; serving others.
    Seeding,
    /// Stopped by the user.
    Paused,
    /// Stopped by an error (see `error`).
    Error,
    /// Known by a magnet link only: its metadata (BEP 9) is being fetched from peers.
    FetchingMetadata,
}

/// A snapshot of one torrent, published by its task a few times a second.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TorrentStatus {
    pub info_hash: String,
    pub name: String,
    pub state: TorrentState,
    pub total_bytes: u64,
    /// Bytes of wanted pieces (all pieces unless some files are not wanted).
    pub wanted_bytes: u64,
    /// Bytes of verified pieces on disk.
    pub verified_bytes: u64,
    /// Wanted bytes not verified yet.
    pub left_bytes: u64,
    pub piece_count: u32,
    pub verified_pieces: u32,
    /// Payload bytes received from peers since the torrent started (including any rejected).
    pub downloaded_bytes: u64,
    /// Payload bytes sent to peers since the torrent started.
    pub uploaded_bytes: u64,
    pub download_rate: u64,
    pub upload_rate: u64,
    pub peers: usize,
    /// Pieces that failed their hash since the torrent started.
    pub hash_failures: u64,
    /// Share of the check done while `state` is `Checking`, 0.0..=1.0.
    pub check_progress: f32,
    pub error: Option<String>,
}

impl TorrentStatus {
    /// A torrent that has not started yet: checking, nothing verified, everything left.
    pub fn not_started(
        info_hash: String,
        name: String,
        total_bytes: u64,
        piece_count: u32,
    ) -> Self {
        TorrentStatus {
            info_hash,
            name,
            state: TorrentState::Checking,
            total_bytes,
            wanted_bytes: total_bytes,
            verified_bytes: 0,
            left_bytes: total_bytes,
            piece_count,
            verified_pieces: 0,
            downloaded_bytes: 0,
            uploaded_bytes: 0,
            download_rate: 0,
            upload_rate: 0,
            peers: 0,
            hash_failures: 0,
            check_progress: 0.0,
            error: None,
        }
    }

    /// True once every wanted piece is verified.
    pub fn is_complete(&self) -> bool {
        self.left_bytes == 0 && self.state != TorrentState::Checking
    }
}

/// How to add a torrent to a session.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AddTorrent {
    /// The .torrent file's bytes.
    pub metainfo: Vec<u8>,
    /// The folder that holds (or will hold) the torrent's file or top folder.
    pub download_dir: PathBuf,
    /// Peers to try at once (besides any the torrent finds itself).
    #[serde(default)]
    pub peers: Vec<SocketAddr>,
    /// Start paused.
    #[serde(default)]
    pub paused: bool,
}

/// One connected peer, as front ends show it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerSummary {
    pub addr: SocketAddr,
    /// The client name from the peer's extended handshake, when it sent one.
    pub client: Option<String>,
    /// How the peer was found: `tracker`, `dht`, `pex`, `lsd`, `manual` or `incoming`.
    pub source: String,
    /// Pieces the peer has.
    pub pieces: u32,
    pub download_rate: u64,
    pub upload_rate: u64,
    pub downloaded: u64,
    pub uploaded: u64,
    pub am_choking: bool,
    pub peer_choking: bool,
    pub am_interested: bool,
    pub peer_interested: bool,
}

/// What a torrent task reports when asked for details: its piece map and its peers.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TorrentInspection {
    /// One entry per piece: verified or not.
    pub pieces: Vec<bool>,
    pub peers: Vec<PeerSummary>,
}

/// What a tracker is doing, for front ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrackerAnnounceState {
    /// Not contacted yet, or on standby while another tracker of its tier is in use.
    Idle,
    /// An announce is out.
    Announcing,
    /// Its last announce worked.
    Ok,
    /// Its last announce failed, or its URL cannot be used (see `last_error`).
    Error,
}

/// One tracker of a torrent, as front ends show it. Times are seconds since the Unix epoch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrackerInfo {
    pub url: String,
    /// Its tier (BEP 12), from 0.
    pub tier: usize,
    pub status: TrackerAnnounceState,
    /// When its last announce ended, well or not; `None`: never contacted.
    pub last_announce: Option<u64>,
    /// When its last announce worked.
    pub last_success: Option<u64>,
    /// Peers in its last reply.
    pub last_peers: usize,
    /// Seeders and leechers as its last announce or scrape counted them, whichever came later.
    pub seeders: Option<u32>,
    pub leechers: Option<u32>,
    /// How many times it saw the download finish, from its last successful scrape.
    pub downloaded: Option<u32>,
    /// A scrape is out.
    #[serde(default)]
    pub scraping: bool,
    /// When its last scrape ended, well or not; `None`: never scraped.
    pub last_scrape: Option<u64>,
    /// Why its last scrape failed; cleared by the next success.
    pub last_scrape_error: Option<String>,
    /// When it will be scraped next; `None` when it cannot be scraped (an HTTP URL without
    /// `announce` in its last path segment), before its first successful announce, while a
    /// scrape is out, and when stopped.
    pub next_scrape: Option<u64>,
    /// Why its last announce failed: a network error, a time-out, or the tracker's own
    /// `failure reason`; cleared by the next success.
    pub last_error: Option<String>,
    /// The tracker's `warning message` from its last reply.
    pub warning: Option<String>,
    pub consecutive_failures: u32,
    /// When it will be announced to next; `None` while on standby, announcing or stopped.
    pub next_announce: Option<u64>,
    /// The interval and min interval it asked for (clamped), in seconds.
    pub interval_secs: Option<u64>,
    pub min_interval_secs: Option<u64>,
}

impl TrackerInfo {
    /// Trackers not contacted (yet): every URL of `tiers` as `idle`, in order, tiers from 0.
    pub fn listed(tiers: &[Vec<String>]) -> Vec<TrackerInfo> {
        tiers
            .iter()
            .filter(|urls| !urls.is_empty())
            .enumerate()
            .flat_map(|(tier, urls)| urls.iter().map(move |url| TrackerInfo::idle(url, tier)))
            .collect()
    }

    fn idle(url: &str, tier: usize) -> TrackerInfo {
        TrackerInfo {
            url: url.to_owned(),
            tier,
            status: TrackerAnnounceState::Idle,
            last_announce: None,
            last_success: None,
            last_peers: 0,
            seeders: None,
            leechers: None,
            downloaded: None,
            scraping: false,
            last_scrape: None,
            last_scrape_error: None,
            next_scrape: None,
            last_error: None,
            warning: None,
            consecutive_failures: 0,
            next_announce: None,
            interval_secs: None,
            min_interval_secs: None,
        }
    }
}

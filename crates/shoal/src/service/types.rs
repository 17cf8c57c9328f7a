//! The facade's serializable requests, responses and events. The JSON API sends these as they
//! are; the Transmission RPC layer maps them to Transmission's field names.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::api::{PeerSummary, TorrentState, TrackerInfo};

/// Where a new torrent comes from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AddSource {
    /// A .torrent file's bytes (base64 in JSON).
    Metainfo(#[serde(with = "base64_bytes")] Vec<u8>),
    /// A `magnet:?xt=urn:btih:...` link.
    Magnet(String),
    /// An http(s) URL of a .torrent file.
    Url(String),
}

/// A request to add a torrent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddRequest {
    pub source: AddSource,
    /// The folder to save into; default: the session's download folder. Must be under a root.
    #[serde(default)]
    pub download_dir: Option<PathBuf>,
    #[serde(default)]
    pub paused: bool,
    /// Indexes of files not to download.
    #[serde(default)]
    pub unwanted_files: Vec<usize>,
}

/// A torrent in a list.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TorrentView {
    pub id: u32,
    pub info_hash: String,
    pub name: String,
    pub state: TorrentState,
    /// Verified share of the wanted bytes, 0.0..=1.0.
    pub progress: f64,
    pub total_bytes: u64,
    pub wanted_bytes: u64,
    pub left_bytes: u64,
    pub verified_bytes: u64,
    pub downloaded_bytes: u64,
    pub uploaded_bytes: u64,
    pub download_rate: u64,
    pub upload_rate: u64,
    pub peers: usize,
    pub hash_failures: u64,
    pub piece_count: u32,
    pub verified_pieces: u32,
    pub check_progress: f32,
    /// Share of the metadata received, 0.0..=1.0: below 1 only while a torrent added by magnet
    /// link is in `fetching_metadata`.
    pub metadata_progress: f32,
    pub download_dir: PathBuf,
    pub sequential: bool,
    pub download_limit: Option<u64>,
    pub upload_limit: Option<u64>,
    /// Seconds since the Unix epoch.
    pub added_at: u64,
    pub error: Option<String>,
}

/// One file of a torrent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileView {
    pub index: usize,
    /// Path relative to the download folder, `/`-separated.
    pub path: String,
    pub length: u64,
    /// Bytes of this file inside verified pieces.
    pub done_bytes: u64,
    pub wanted: bool,
    /// 1 (lowest) to 7 (highest); kept while not wanted.
    pub priority: u8,
}

/// Everything about one torrent.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TorrentDetail {
    #[serde(flatten)]
    pub torrent: TorrentView,
    pub piece_len: u32,
    pub files: Vec<FileView>,
    /// Every tracker with its announce status (`idle` for all while the torrent is not
    /// running).
    pub trackers: Vec<TrackerInfo>,
    pub peers: Vec<PeerSummary>,
    /// The verified pieces as a bitfield (first piece in the high bit of the first byte), base64.
    pub pieces: String,
    pub comment: Option<String>,
    pub private: bool,
    pub magnet: String,
}

/// A change to a torrent's files.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilesUpdate {
    #[serde(default)]
    pub wanted: Vec<usize>,
    #[serde(default)]
    pub unwanted: Vec<usize>,
    /// (file index, priority 1..=7).
    #[serde(default)]
    pub priorities: Vec<(usize, u8)>,
}

/// Per-torrent settings that can be changed while it runs. `None` leaves a setting as it is.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TorrentSettingsUpdate {
    #[serde(default)]
    pub sequential: Option<bool>,
    /// Bytes per second; `Some(None)` (or `Some(Some(0))`) removes the limit.
    #[serde(default, with = "double_option")]
    pub download_limit: Option<Option<u64>>,
    #[serde(default, with = "double_option")]
    pub upload_limit: Option<Option<u64>>,
}

/// Session-wide settings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionSettings {
    pub download_dir: PathBuf,
    /// Bytes per second over all torrents; `None`: no limit. Enforced by the session's global
    /// token buckets (each torrent's own limit applies beneath it).
    #[serde(default)]
    pub download_limit: Option<u64>,
    #[serde(default)]
    pub upload_limit: Option<u64>,
}

/// A change to the session settings. `None` leaves a setting as it is.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionSettingsUpdate {
    #[serde(default)]
    pub download_dir: Option<PathBuf>,
    #[serde(default, with = "double_option")]
    pub download_limit: Option<Option<u64>>,
    #[serde(default, with = "double_option")]
    pub upload_limit: Option<Option<u64>>,
}

/// Read-only facts about the session, alongside its settings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionInfo {
    #[serde(flatten)]
    pub settings: SessionSettings,
    pub version: String,
    pub peer_port: u16,
    pub download_roots: Vec<PathBuf>,
}

/// Session figures.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionStats {
    pub torrents: usize,
    pub checking: usize,
    pub downloading: usize,
    pub seeding: usize,
    pub paused: usize,
    pub errored: usize,
    pub download_rate: u64,
    pub upload_rate: u64,
    /// Payload bytes over the torrents in the session, since each started.
    pub downloaded_bytes: u64,
    pub uploaded_bytes: u64,
    pub peers: usize,
    pub hash_failures: u64,
    pub disk_queue_depth: usize,
    /// Seconds since the daemon started.
    pub uptime_secs: u64,
    /// Totals over every run of the daemon (kept in the state folder).
    pub cumulative: TransferTotals,
    /// Totals since this run started.
    pub current: TransferTotals,
}

/// Transfer totals over a span of time (Transmission's `cumulative-stats` / `current-stats`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferTotals {
    /// Payload bytes sent to peers.
    pub uploaded_bytes: u64,
    /// Payload bytes received from peers (including any that failed their hash).
    pub downloaded_bytes: u64,
    /// Torrents added (by file, URL or magnet link).
    pub files_added: u64,
    /// Times the daemon started.
    pub session_count: u64,
    /// Seconds the daemon ran.
    pub seconds_active: u64,
}

impl TransferTotals {
    /// The sum of two spans.
    pub fn plus(&self, other: &TransferTotals) -> TransferTotals {
        TransferTotals {
            uploaded_bytes: self.uploaded_bytes.saturating_add(other.uploaded_bytes),
            downloaded_bytes: self.downloaded_bytes.saturating_add(other.downloaded_bytes),
            files_added: self.files_added.saturating_add(other.files_added),
            session_count: self.session_count.saturating_add(other.session_count),
            seconds_active: self.seconds_active.saturating_add(other.seconds_active),
        }
    }
}

/// Something that happened, for live front ends. `Verified`: a re-check of the data on disk
/// finished.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServiceEvent {
    Added { info_hash: String, name: String },
    Removed { info_hash: String },
    Paused { info_hash: String },
    Resumed { info_hash: String },
    Completed { info_hash: String },
    Verified { info_hash: String },
    PieceFailed { info_hash: String, piece: u32 },
    PeerBanned { info_hash: String, addr: String },
    Error { info_hash: String, message: String },
}

mod base64_bytes {
    use data_encoding::BASE64;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&BASE64.encode(bytes))
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        let compact: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
        BASE64
            .decode(compact.as_bytes())
            .map_err(serde::de::Error::custom)
    }
}

/// `null` means "set to none", a missing field means "leave as it is".
mod double_option {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer, T: Serialize>(
        v: &Option<Option<T>>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match v {
            None => s.serialize_none(),
            Some(inner) => inner.serialize(s),
        }
    }
    pub fn deserialize<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
        d: D,
    ) -> Result<Option<Option<T>>, D::Error> {
        Option::<T>::deserialize(d).map(Some)
    }
}

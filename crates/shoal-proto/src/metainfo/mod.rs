//! Metainfo (BEP 3 `.torrent` files, v1): parsing into checked, sanitized types, and building.
//!
//! Flow: [`Metainfo::from_bytes`] decodes bencode, takes the *raw bytes* of the `info` dictionary
//! (the infohash is their SHA-1, never a re-encoding) and hands them to [`Info::from_bytes`],
//! which magnet downloads also use for metadata fetched from peers
//! ([`Info::from_bytes_checked`] compares the infohash first). [`TorrentBuilder`] goes the other
//! way for `shoal create`: same input, byte-identical canonical output.
//!
//! Guarantees of a parsed [`Info`]:
//! - the piece hashes are exactly as many as the total length needs ([`Geometry`] is checked);
//! - file offsets are contiguous, the sum of lengths cannot overflow, and there is at least one
//!   file and at least one byte;
//! - every file path (and the torrent name, which is the top folder or the single file's name)
//!   went through [`sanitize`]: relative, no `..`, nothing empty, no two files on the same path
//!   (case-insensitively), so joining it under the download folder cannot leave that folder.
//!
//! Decisions: a `piece length` that is not a power of two is accepted (any 1 byte..=256 MiB,
//! [`Geometry::new_lenient`]): BEP 3 only recommends powers of two and real torrents violate it;
//! [`Info::piece_len_is_power_of_two`] lets a caller warn. Hostile names are sanitized, not
//! rejected (see [`sanitize`]). `name.utf-8`/`path.utf-8` are preferred when present, as in
//! libtorrent. Trackers and web seeds with other schemes than http/https/udp are dropped, and so
//! are malformed tracker entries: a bad tracker list must not make a torrent unusable.

mod builder;
mod parse;
pub mod sanitize;

#[doc(hidden)]
pub mod fuzzing;
#[cfg(test)]
mod interop_tests;
#[cfg(test)]
mod tests;

use std::path::PathBuf;

use bytes::Bytes;

use crate::bencode::DecodeError;
use crate::geometry::GeometryError;
use crate::{Geometry, InfoHash};

pub use builder::{BuildError, BuilderFile, TorrentBuilder};

/// Most files a torrent may have.
pub const MAX_FILES: usize = 1_000_000;
/// Most components in one file path (the torrent name not counted).
pub const MAX_PATH_COMPONENTS: usize = 128;
/// Most tracker tiers kept, and most URLs kept over all tiers; more are ignored.
pub const MAX_TRACKER_TIERS: usize = 64;
pub const MAX_TRACKER_URLS: usize = 256;
/// Most web seeds (BEP 19) kept; more are ignored.
pub const MAX_WEB_SEEDS: usize = 64;

/// A parsed `.torrent` file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metainfo {
    /// The `info` dictionary: everything the infohash covers.
    pub info: Info,
    /// Tracker tiers (BEP 12): `announce-list` when it has any usable URL, else `[[announce]]`.
    /// Only http, https and udp URLs; empty when the torrent has no usable tracker.
    pub trackers: Vec<Vec<String>>,
    /// Web seeds (BEP 19 `url-list`), http and https only.
    pub web_seeds: Vec<String>,
    /// `creation date`, seconds since the Unix epoch.
    pub creation_date: Option<i64>,
    pub comment: Option<String>,
    pub created_by: Option<String>,
}

/// The checked contents of an `info` dictionary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Info {
    info_hash: InfoHash,
    raw: Bytes,
    name: String,
    geometry: Geometry,
    piece_hashes: Vec<[u8; 20]>,
    files: Vec<FileEntry>,
    multi_file: bool,
    private: bool,
    source: Option<String>,
}

/// One file of a torrent, in stream order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEntry {
    /// Sanitized components relative to the download folder; the first one is the torrent name
    /// (for a single-file torrent it is the only one).
    pub path: Vec<String>,
    pub length: u64,
    /// Where the file starts in the torrent's byte stream.
    pub offset: u64,
    pub attr: FileAttr,
    /// For a symlink (`attr` `l`), its target as sanitized components relative to the torrent's
    /// top folder. Informational: shoal never follows or creates it.
    pub symlink_target: Option<Vec<String>>,
}

/// BEP 47 file attributes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct FileAttr {
    /// `p`: a padding file (also set for legacy `_____padding_file_` names). Never created on
    /// disk; its bytes are zeros.
    pub padding: bool,
    /// `x`
    pub executable: bool,
    /// `h`
    pub hidden: bool,
    /// `l`
    pub symlink: bool,
}

/// Why bytes are not a usable v1 torrent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MetainfoError {
    #[error("not valid bencode: {source}")]
    Bencode {
        #[from]
        source: DecodeError,
    },
    #[error("missing required field {field:?}")]
    MissingField { field: &'static str },
    #[error("field {field:?} should be a {expected}, found a {found}")]
    WrongType {
        field: &'static str,
        expected: &'static str,
        found: &'static str,
    },
    #[error("file {file_index} has negative length {length}")]
    NegativeLength { file_index: usize, length: i64 },
    #[error("piece length {piece_len} is not between 1 byte and 256 MiB")]
    BadPieceLength { piece_len: i64 },
    #[error("`pieces` is {len} bytes, not a multiple of 20")]
    PiecesNotMultipleOf20 { len: usize },
    #[error("total length needs {expected} pieces but `pieces` holds {found}")]
    PieceCountMismatch { expected: u32, found: usize },
    #[error("bad geometry: {source}")]
    Geometry {
        #[from]
        source: GeometryError,
    },
    #[error("file lengths overflow at file {file_index}")]
    TotalLengthOverflow { file_index: usize },
    #[error("the torrent lists no files")]
    NoFiles,
    #[error("{count} files, more than the {max} allowed")]
    TooManyFiles { count: usize, max: usize },
    #[error("file {file_index} has an empty path")]
    EmptyPath { file_index: usize },
    #[error("file {file_index} has {components} path components, more than {max}")]
    PathTooDeep {
        file_index: usize,
        components: usize,
        max: usize,
    },
    #[error("info has both `length` and `files`")]
    BothLengthAndFiles,
    #[error("info dictionary hashes to {actual}, expected {expected}")]
    InfoHashMismatch {
        expected: InfoHash,
        actual: InfoHash,
    },
}

impl Metainfo {
    /// Parses a `.torrent` file.
    pub fn from_bytes(bytes: &[u8]) -> Result<Metainfo, MetainfoError> {
        parse::metainfo(bytes)
    }

    pub fn info_hash(&self) -> InfoHash {
        self.info.info_hash
    }

    /// Every tracker URL, tier by tier.
    pub fn tracker_urls(&self) -> impl Iterator<Item = &str> + '_ {
        self.trackers.iter().flatten().map(String::as_str)
    }
}

impl Info {
    /// Parses raw `info` dictionary bytes (e.g. metadata received over BEP 9). The infohash is
    /// the SHA-1 of exactly these bytes.
    pub fn from_bytes(raw_info: &[u8]) -> Result<Info, MetainfoError> {
        parse::info(raw_info)
    }

    /// Like [`Info::from_bytes`], but first checks that the bytes hash to `expected` (use it for
    /// metadata from peers: a mismatch means the peer lied).
    pub fn from_bytes_checked(raw_info: &[u8], expected: InfoHash) -> Result<Info, MetainfoError> {
        let actual = InfoHash::of_info_bytes(raw_info);
        if actual != expected {
            return Err(MetainfoError::InfoHashMismatch { expected, actual });
        }
        Self::from_bytes(raw_info)
    }

    pub fn info_hash(&self) -> InfoHash {
        self.info_hash
    }

    /// The `info` dictionary exactly as received: what BEP 9 serves to peers.
    pub fn raw(&self) -> &Bytes {
        &self.raw
    }

    /// Sanitized torrent name: the single file's name or the top folder's.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn geometry(&self) -> Geometry {
        self.geometry
    }

    pub fn total_len(&self) -> u64 {
        self.geometry.total_len()
    }

    pub fn piece_len(&self) -> u32 {
        self.geometry.piece_len()
    }

    pub fn piece_count(&self) -> u32 {
        self.geometry.piece_count()
    }

    pub fn piece_len_is_power_of_two(&self) -> bool {
        self.geometry.piece_len().is_power_of_two()
    }

    /// SHA-1 of each piece, in order; as many as [`Info::piece_count`].
    pub fn piece_hashes(&self) -> &[[u8; 20]] {
        &self.piece_hashes
    }

    /// The expected SHA-1 of one piece.
    pub fn piece_hash(&self, piece: crate::PieceIndex) -> Option<&[u8; 20]> {
        self.piece_hashes.get(piece.as_usize())
    }

    /// Files in stream order, padding files included (check [`FileAttr::padding`]).
    pub fn files(&self) -> &[FileEntry] {
        &self.files
    }

    /// True for a `files` torrent (a folder), false for a `length` torrent (one file).
    pub fn is_multi_file(&self) -> bool {
        self.multi_file
    }

    /// BEP 27: peers only from the torrent's trackers (no DHT, PEX or LSD).
    pub fn is_private(&self) -> bool {
        self.private
    }

    /// The `source` tag some private trackers put in `info`.
    pub fn source(&self) -> Option<&str> {
        self.source.as_deref()
    }
}

impl FileEntry {
    /// The path relative to the download folder.
    pub fn relative_path(&self) -> PathBuf {
        self.path.iter().collect()
    }
}

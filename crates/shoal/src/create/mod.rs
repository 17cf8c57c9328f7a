//! Creating a `.torrent` from a file or folder (the library behind `shoal create`).
//!
//! Data flows in three steps, each usable on its own:
//! 1. [`Content::scan`] walks the path into an ordered file list (see [`walk`] for the order and
//!    what happens to hidden files, symlinks, empty files and folders);
//! 2. the piece length is given or chosen by [`auto_piece_len`] (see [`piece_size`]);
//! 3. [`hash_content`] hashes every piece of the concatenated files on all cores (rayon's global
//!    pool; see [`hash`]), reporting progress, and [`create_torrent`] turns the result into
//!    canonical `.torrent` bytes.
//!
//! Same input and same [`CreateOptions`] give byte-identical output: the walk order is sorted,
//! the hashes are collected in piece order, the encoder sorts dictionary keys, and the creation
//! date is an option (the caller reads the clock, or leaves it out).
//!
//! This is blocking work (file reads and hashing): from async code, run it on a blocking thread.
//! Errors are typed ([`CreateError`]); nothing here panics on unreadable files or odd folders.

mod build;
mod hash;
pub mod piece_size;
pub mod walk;

use std::path::{Path, PathBuf};

use shoal_proto::InfoHash;

pub use piece_size::{auto_piece_len, check_piece_len, MAX_PIECE_LEN, MIN_PIECE_LEN};
pub use walk::{Content, ContentFile};

/// What to put in a new torrent besides its content. `Default` gives a trackerless, public,
/// undated torrent with an automatic piece length and no `created by`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CreateOptions {
    /// Piece length in bytes (a power of two, 16 KiB..=64 MiB); `None` chooses automatically.
    pub piece_len: Option<u64>,
    /// Tracker tiers, in order; each tier is a list of URLs. The first URL also becomes
    /// `announce`, for clients that only read that key.
    pub trackers: Vec<Vec<String>>,
    /// Web seed URLs (BEP 19 `url-list`).
    pub web_seeds: Vec<String>,
    /// Sets `private = 1` (BEP 27): peers only from the trackers.
    pub private: bool,
    pub comment: Option<String>,
    /// `created by`, e.g. `shoal/0.1.0`.
    pub created_by: Option<String>,
    /// `creation date` in seconds since the Unix epoch; `None` leaves it out (reproducible output).
    pub creation_date: Option<i64>,
}

/// A torrent made by [`create_torrent`].
#[derive(Clone, Debug)]
pub struct CreatedTorrent {
    /// The `.torrent` file's bytes.
    pub bytes: Vec<u8>,
    pub info_hash: InfoHash,
    pub name: String,
    pub total_len: u64,
    pub piece_len: u32,
    pub piece_count: usize,
}

/// Why a torrent could not be created. Paths name the file or folder at fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CreateError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: not a regular file or folder (sockets, FIFOs and devices cannot be shared)", path.display())]
    UnsupportedFileType { path: PathBuf },
    #[error("{}: the name is not valid UTF-8, which torrent paths must be", path.display())]
    NonUtf8Name { path: PathBuf },
    #[error("{}: this path has no file or folder name to name the torrent after", path.display())]
    NoName { path: PathBuf },
    #[error("{}: symbolic link loop (a link points to a folder that contains it)", path.display())]
    SymlinkLoop { path: PathBuf },
    #[error("{}: folders nested more than {max} deep", path.display())]
    TooDeep { path: PathBuf, max: usize },
    #[error("{}: no files to share (empty folders cannot be put in a torrent)", path.display())]
    NoFiles { path: PathBuf },
    #[error("{}: every file is empty; a torrent needs at least one byte", path.display())]
    EmptyContent { path: PathBuf },
    #[error("piece length {piece_len} is not a power of two from {min} to {max} bytes")]
    BadPieceLength { piece_len: u64, min: u32, max: u32 },
    #[error("{}: the file changed while it was hashed (expected {expected_len} bytes)", path.display())]
    FileChanged { path: PathBuf, expected_len: u64 },
    #[error("could not build the torrent")]
    Build {
        #[from]
        source: shoal_proto::metainfo::BuildError,
    },
    #[error("internal error: {what}")]
    Internal { what: &'static str },
}

impl CreateError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        CreateError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Piece hashes of scanned content, ready to be turned into a torrent.
#[derive(Clone, Debug)]
pub struct HashedContent {
    pub content: Content,
    pub piece_len: u32,
    pub piece_hashes: Vec<[u8; 20]>,
}

/// Hashes `content` with pieces of `piece_len` bytes (checked with [`check_piece_len`]).
/// `progress` gets the bytes hashed since its last call, from worker threads.
pub fn hash_content(
    content: Content,
    piece_len: u32,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<HashedContent, CreateError> {
    let piece_len = check_piece_len(u64::from(piece_len))?;
    let piece_hashes = hash::hash_pieces(content.files(), piece_len, progress)?;
    Ok(HashedContent {
        content,
        piece_len,
        piece_hashes,
    })
}

/// Scans `path`, hashes it and returns the torrent: the whole of `shoal create`.
pub fn create_torrent(
    path: &Path,
    options: &CreateOptions,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<CreatedTorrent, CreateError> {
    let content = Content::scan(path)?;
    let piece_len = match options.piece_len {
        Some(len) => check_piece_len(len)?,
        None => auto_piece_len(content.total_len()),
    };
    let hashed = hash_content(content, piece_len, progress)?;
    build_torrent(&hashed, options)
}

/// Turns hashed content into canonical `.torrent` bytes with `options` (its `piece_len` is
/// ignored: the hashes already fix it).
pub fn build_torrent(
    hashed: &HashedContent,
    options: &CreateOptions,
) -> Result<CreatedTorrent, CreateError> {
    build::build_torrent(hashed, options)
}

#[cfg(test)]
mod tests;

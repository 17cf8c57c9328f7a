//! Storage: a torrent's files on disk, the disk pool that runs the engine's requests, the initial
//! check and the resume file.
//!
//! Data flow: the torrent engine emits `DiskRequest`s; the runtime submits them through a
//! [`DiskHandle`] to the [`DiskPool`], whose threads run them against the torrent's
//! [`TorrentStorage`] (span mapping in [`layout`], path checks in `paths`, positional IO on
//! cached handles) and send `DiskDone`s back on the torrent's channel. At start, [`restore`]
//! reads the resume file and hashes what it cannot trust; while running, [`checkpoint`] flushes
//! the files and saves the resume file.
//!
//! Guarantees:
//! - **No write outside the download folder.** Every path is relative and made of plain
//!   components (checked when the [`FileLayout`] is built and again when a file is opened), and
//!   no symlink is followed unless its canonical target is inside the folder.
//! - **No unverified piece counted.** A piece is reported as had only after its SHA-1 matched
//!   in this run, or when the resume file (checksummed, for this infohash and these sizes) lists
//!   it and its files are as recorded (see [`restore`] for the exact rules).
//! - **What survives `kill -9`.** The resume file only lists pieces whose data was flushed
//!   (`fdatasync`) before it was written, and it is replaced atomically. After a crash, those
//!   pieces are trusted while their files keep their sizes; pieces verified after the last save
//!   are hashed again (and kept if their data reached the disk) or downloaded again.
//! - Disk errors reach the engine as `DiskFailure`s: no space → `NoSpace`, a file gone or cut
//!   short → `Missing`, anything else → `Other`.

mod check;
mod error;
mod files;
mod handles;
pub mod layout;
mod paths;
mod pool;
mod restore;
mod resume;
mod running_hash;
mod serve_maps;

pub use check::{
    bitfield_of, check_existing, check_pieces, pieces_with_data, CheckError, CheckProgress,
};
pub use error::{failure_kind_of_io, IoOp, StorageError};
pub use files::{FileStamp, StorageOptions, TorrentStorage};
pub use layout::{FileLayout, LayoutError, StorageFile};
pub use pool::{DiskHandle, DiskPool, DiskPoolConfig, SubmitError};
pub use restore::{restore, RestoreSource, Restored};
pub use resume::{checkpoint, load, save, ResumeData, ResumeError, ResumeExpect};

/// The storage layout of a parsed torrent (see `TryFrom<&Info> for FileLayout`).
pub fn layout_of(info: &shoal_proto::metainfo::Info) -> Result<FileLayout, StorageError> {
    Ok(FileLayout::try_from(info)?)
}

#[cfg(test)]
mod tests;

//! Storage errors, and how each maps to the engine's [`DiskFailureKind`].
//!
//! The mapping is a pure function of the error ([`failure_kind_of_io`]) so that "disk full" and
//! "file gone" can be tested without filling a disk: ENOSPC and EDQUOT mean
//! [`DiskFailureKind::NoSpace`] (pause, keep everything, resume later); a missing file or a read
//! past a file's end means [`DiskFailureKind::Missing`] (the engine only reads verified pieces,
//! so their data was removed or changed behind our back); everything else is `Other`.

use std::io;
use std::path::PathBuf;

use shoal_engine::disk::{DiskFailure, DiskFailureKind};

/// What storage was doing when an IO call failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum IoOp {
    CreateFolder,
    Open,
    Resize,
    Read,
    Write,
    Sync,
    Stat,
}

/// A failed storage operation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    #[error("{op:?} {path:?}: {source}")]
    Io {
        op: IoOp,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Layout(#[from] super::layout::LayoutError),
    #[error("refusing {path:?}: {reason}")]
    UnsafePath { path: PathBuf, reason: &'static str },
    #[error("refusing {path:?}: it leads to {target:?}, outside the download folder")]
    OutsideFolder { path: PathBuf, target: PathBuf },
    #[error("{path:?} exists but is not a {expected}")]
    WrongKind {
        path: PathBuf,
        expected: &'static str,
    },
    #[error("the files hold {files_len} bytes but the torrent has {torrent_len}")]
    LengthMismatch { files_len: u64, torrent_len: u64 },
    #[error("{hashes} piece hashes for {pieces} pieces")]
    HashCountMismatch { hashes: usize, pieces: u32 },
}

impl StorageError {
    pub(crate) fn io(op: IoOp, path: impl Into<PathBuf>, source: io::Error) -> Self {
        StorageError::Io {
            op,
            path: path.into(),
            source,
        }
    }

    /// How the engine should react to this error.
    pub fn failure_kind(&self) -> DiskFailureKind {
        match self {
            StorageError::Io { source, .. } => failure_kind_of_io(source),
            _ => DiskFailureKind::Other,
        }
    }

    /// The error as the engine takes it.
    pub fn to_failure(&self) -> DiskFailure {
        DiskFailure {
            kind: self.failure_kind(),
            message: self.to_string(),
        }
    }
}

/// Linux errno values that mean "no room": ENOSPC (28) and EDQUOT (122).
const ENOSPC: i32 = 28;
const EDQUOT: i32 = 122;

/// Maps an IO error to what the engine does about it. Pure, so it is unit-tested.
pub fn failure_kind_of_io(err: &io::Error) -> DiskFailureKind {
    if matches!(err.raw_os_error(), Some(ENOSPC | EDQUOT)) {
        return DiskFailureKind::NoSpace;
    }
    match err.kind() {
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded => DiskFailureKind::NoSpace,
        io::ErrorKind::NotFound | io::ErrorKind::UnexpectedEof => DiskFailureKind::Missing,
        _ => DiskFailureKind::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disk_full_and_quota_pause_the_torrent() {
        let enospc = io::Error::from_raw_os_error(ENOSPC);
        assert_eq!(failure_kind_of_io(&enospc), DiskFailureKind::NoSpace);
        let edquot = io::Error::from_raw_os_error(EDQUOT);
        assert_eq!(failure_kind_of_io(&edquot), DiskFailureKind::NoSpace);
        let full = io::Error::from(io::ErrorKind::StorageFull);
        assert_eq!(failure_kind_of_io(&full), DiskFailureKind::NoSpace);
        let err = StorageError::io(IoOp::Write, "a", io::Error::from_raw_os_error(ENOSPC));
        let failure = err.to_failure();
        assert_eq!(failure.kind, DiskFailureKind::NoSpace);
        assert!(failure.message.contains("\"a\""), "{}", failure.message);
    }

    #[test]
    fn gone_files_and_short_reads_are_missing() {
        let enoent = io::Error::from_raw_os_error(2);
        assert_eq!(failure_kind_of_io(&enoent), DiskFailureKind::Missing);
        let eof = io::Error::from(io::ErrorKind::UnexpectedEof);
        assert_eq!(failure_kind_of_io(&eof), DiskFailureKind::Missing);
    }

    #[test]
    fn everything_else_is_other() {
        let eacces = io::Error::from_raw_os_error(13);
        assert_eq!(failure_kind_of_io(&eacces), DiskFailureKind::Other);
        let eio = io::Error::from_raw_os_error(5);
        assert_eq!(failure_kind_of_io(&eio), DiskFailureKind::Other);
        let unsafe_path = StorageError::UnsafePath {
            path: "..".into(),
            reason: "the path contains `..`",
        };
        assert_eq!(unsafe_path.failure_kind(), DiskFailureKind::Other);
    }
}

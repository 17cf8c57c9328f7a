//! The disk requests a torrent engine hands out and the completions it takes back.
//!
//! The engine never touches files: it emits a [`DiskRequest`], the runtime runs it on a bounded
//! blocking pool (positional reads and writes, SHA-1 of whole pieces) and feeds the result back
//! as a [`DiskDone`]. A piece counts as ours only after a `Hashed { ok: true, .. }` for it.

use bytes::Bytes;
use shoal_proto::{BlockRef, PieceIndex};

use crate::PeerKey;

/// Work for the runtime's disk pool.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DiskRequest {
    /// Write a received block at its place in the torrent's files.
    Write { block: BlockRef, data: Bytes },
    /// Read a block to serve it to `peer`.
    Read { peer: PeerKey, block: BlockRef },
    /// Read the whole piece back (after all its blocks were written) and compare its SHA-1 with
    /// the torrent's hash for it.
    Hash { piece: PieceIndex },
}

/// A finished [`DiskRequest`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DiskDone {
    Written {
        block: BlockRef,
        result: Result<(), DiskFailure>,
    },
    Read {
        peer: PeerKey,
        block: BlockRef,
        result: Result<Bytes, DiskFailure>,
    },
    Hashed {
        piece: PieceIndex,
        result: Result<bool, DiskFailure>,
    },
}

/// A disk error as the engine sees it: enough to decide (pause the torrent, tell the user).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiskFailure {
    pub kind: DiskFailureKind,
    pub message: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DiskFailureKind {
    /// No space left on the device: pause, keep everything, resume when space is back.
    NoSpace,
    /// A file is missing or was changed behind our back.
    Missing,
    /// Anything else (permissions, IO errors).
    Other,
}

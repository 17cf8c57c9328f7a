//! The initial check: which pieces of a torrent are already on disk and correct.
//!
//! [`check_existing`] hashes every piece whose bytes are all present (each file it touches exists
//! and is long enough; padding counts as present), on `threads` scoped threads that pull piece
//! numbers from a shared counter, each with its own buffer. Pieces whose files are missing or
//! short are not had and cost nothing. [`check_pieces`] does the same for a chosen subset (the
//! resume path re-checks only pieces in files that changed). A piece counts only if its SHA-1
//! matched now; an IO error while reading one makes it not had (and is logged).
//!
//! Blocking: run it on a blocking thread (`spawn_blocking`), never on an async one.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use shoal_engine::bitfield::Bitfield;
use shoal_proto::PieceIndex;

use super::files::TorrentStorage;

/// How far a check has come.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckProgress {
    /// Pieces looked at so far (hashed or skipped for missing data).
    pub done: u32,
    /// Pieces this check looks at.
    pub total: u32,
    /// Pieces found correct so far.
    pub valid: u32,
}

/// Why a check did not finish.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CheckError {
    #[error("the check was cancelled after {done} of {total} pieces")]
    Cancelled { done: u32, total: u32 },
}

/// Hashes every piece whose data is present; returns which pieces are correct.
pub fn check_existing(
    storage: &TorrentStorage,
    threads: usize,
    progress: &(dyn Fn(CheckProgress) + Sync),
    cancel: &AtomicBool,
) -> Result<Vec<bool>, CheckError> {
    let all = vec![true; storage.geometry().piece_count() as usize];
    check_pieces(storage, &all, threads, progress, cancel)
}

/// Hashes the pieces flagged in `candidates` (indexed by piece) whose data is present; returns
/// which pieces are correct (never a piece that was not a candidate).
pub fn check_pieces(
    storage: &TorrentStorage,
    candidates: &[bool],
    threads: usize,
    progress: &(dyn Fn(CheckProgress) + Sync),
    cancel: &AtomicBool,
) -> Result<Vec<bool>, CheckError> {
    let geometry = storage.geometry();
    let present = pieces_with_data(storage);
    let todo: Vec<PieceIndex> = geometry
        .pieces()
        .filter(|p| candidates.get(p.as_usize()).copied().unwrap_or(false))
        .collect();
    let total = todo.len() as u32;
    let valid: Vec<AtomicBool> = geometry.pieces().map(|_| AtomicBool::new(false)).collect();
    let next = AtomicU32::new(0);
    let done = AtomicU32::new(0);
    let valid_count = AtomicU32::new(0);
    std::thread::scope(|scope| {
        for _ in 0..threads.clamp(1, todo.len().max(1)) {
            scope.spawn(|| {
                let mut buf = Vec::new();
                while !cancel.load(Ordering::Relaxed) {
                    let Some(&piece) = todo.get(next.fetch_add(1, Ordering::Relaxed) as usize)
                    else {
                        break;
                    };
                    if present[piece.as_usize()] && hash_ok(storage, piece, &mut buf) {
                        valid[piece.as_usize()].store(true, Ordering::Relaxed);
                        valid_count.fetch_add(1, Ordering::Relaxed);
                    }
                    let done = done.fetch_add(1, Ordering::Relaxed) + 1;
                    progress(CheckProgress {
                        done,
                        total,
                        valid: valid_count.load(Ordering::Relaxed),
                    });
                }
            });
        }
    });
    let done = done.load(Ordering::Relaxed);
    if done < total {
        return Err(CheckError::Cancelled { done, total });
    }
    Ok(valid.into_iter().map(AtomicBool::into_inner).collect())
}

fn hash_ok(storage: &TorrentStorage, piece: PieceIndex, buf: &mut Vec<u8>) -> bool {
    match storage.hash_piece(piece, buf) {
        Ok(ok) => ok,
        Err(err) => {
            tracing::warn!(piece = piece.get(), error = %err, "piece unreadable during check");
            false
        }
    }
}

/// The engine's [`Bitfield`] with the pieces flagged in `have` set.
pub fn bitfield_of(have: &[bool]) -> Bitfield {
    let mut bitfield = Bitfield::new(have.len() as u32);
    for (index, _) in have.iter().enumerate().filter(|(_, &had)| had) {
        bitfield.set_index(index as u32);
    }
    bitfield
}

/// For each piece: are all of its bytes on disk (every non-padding file it touches exists and
/// is long enough)? One `stat` per file.
pub fn pieces_with_data(storage: &TorrentStorage) -> Vec<bool> {
    let layout = storage.layout();
    let geometry = storage.geometry();
    let stamps = storage.stamps();
    geometry
        .pieces()
        .map(|piece| {
            layout
                .segments(
                    geometry.piece_offset(piece),
                    u64::from(geometry.piece_size(piece)),
                )
                .all(|seg| {
                    layout.files()[seg.file].padding
                        || stamps[seg.file].is_some_and(|s| s.len >= seg.file_offset + seg.len)
                })
        })
        .collect()
}

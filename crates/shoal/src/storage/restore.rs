//! Starting a torrent: what we have, from the resume file where it can be trusted, else by hashing.
//!
//! Rules, per piece (a piece "touches" every non-padding file its bytes lie in):
//! - No resume file, or a bad one (truncated, corrupted, another torrent's, another size): the
//!   error is logged and every piece whose data is present is hashed ([`check_existing`]).
//! - Every touched file has the same size and mtime as recorded: the recorded bit stands (the
//!   bits only ever name pieces flushed before the save; nothing wrote to the file since).
//! - After a **clean stop**, a touched file whose size or mtime changed was changed behind our
//!   back: the piece is hashed again before anything of it is counted or served.
//! - After an **unclean stop** (`kill -9`, power loss: the file says "running"), our own writes
//!   after the last save changed mtimes, so a changed mtime alone is expected. A recorded piece is
//!   still trusted if its files kept their recorded size (it was flushed before the save, and
//!   verified pieces are never written again); pieces not recorded are hashed, which recovers
//!   those verified after the last save whose data made it to disk. A changed size means the file
//!   was cut or replaced: every piece touching it is hashed.
//!
//! Whatever the path, a piece is counted only if all its bytes are present now.

use std::path::Path;
use std::sync::atomic::AtomicBool;

use shoal_proto::InfoHash;

use super::check::{check_existing, check_pieces, pieces_with_data, CheckError, CheckProgress};
use super::files::{FileStamp, TorrentStorage};
use super::resume::{load, ResumeData, ResumeError, ResumeExpect};

/// Where the result of [`restore`] came from.
#[derive(Debug)]
#[non_exhaustive]
pub enum RestoreSource {
    /// The resume file was used; `changed_files` files differed from it.
    Resume {
        clean_shutdown: bool,
        changed_files: usize,
    },
    /// No usable resume file: everything present was hashed. `None` means there was none.
    FullCheck { reason: Option<ResumeError> },
}

/// What a torrent has at start.
#[derive(Debug)]
pub struct Restored {
    /// Pieces we have, indexed by piece.
    pub have: Vec<bool>,
    /// Pieces taken from the resume file without hashing.
    pub trusted: u32,
    /// Pieces that had to be checked (hashed when their data was present, else not had).
    pub hashed: u32,
    pub source: RestoreSource,
}

/// Loads the resume file at `resume_path` and decides, per the module's rules, which pieces are
/// ours, hashing on `threads` threads where needed. Blocking: run it off the async threads.
pub fn restore(
    storage: &TorrentStorage,
    resume_path: &Path,
    info_hash: InfoHash,
    threads: usize,
    progress: &(dyn Fn(CheckProgress) + Sync),
    cancel: &AtomicBool,
) -> Result<Restored, CheckError> {
    let expect = ResumeExpect {
        info_hash,
        piece_count: storage.geometry().piece_count(),
        file_count: storage.layout().files().len() as u32,
    };
    let saved = match load(resume_path, &expect) {
        Ok(saved) => saved,
        Err(err) => {
            let reason = if err.is_not_found() {
                tracing::info!("no resume file; checking the files");
                None
            } else {
                tracing::warn!(error = %err, "resume file unusable; checking the files");
                Some(err)
            };
            let have = check_existing(storage, threads, progress, cancel)?;
            let hashed = storage.geometry().piece_count();
            return Ok(Restored {
                have,
                trusted: 0,
                hashed,
                source: RestoreSource::FullCheck { reason },
            });
        }
    };
    let plan = plan_from_resume(storage, &saved);
    let checked = check_pieces(storage, &plan.recheck, threads, progress, cancel)?;
    let have: Vec<bool> = plan
        .trusted
        .iter()
        .zip(&checked)
        .map(|(&t, &c)| t || c)
        .collect();
    let count = |v: &[bool]| v.iter().filter(|&&b| b).count() as u32;
    Ok(Restored {
        trusted: count(&plan.trusted),
        hashed: count(&plan.recheck),
        have,
        source: RestoreSource::Resume {
            clean_shutdown: saved.clean_shutdown,
            changed_files: plan.changed_files,
        },
    })
}

/// Which pieces to trust and which to hash, given a valid resume file.
#[derive(Debug, PartialEq, Eq)]
struct Plan {
    trusted: Vec<bool>,
    recheck: Vec<bool>,
    changed_files: usize,
}

/// How a file compares with its record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FileState {
    Unchanged,
    /// Same size, other mtime.
    Touched,
    /// Other size, or gone, or appeared.
    Replaced,
}

fn compare(saved: Option<FileStamp>, now: Option<FileStamp>) -> FileState {
    match (saved, now) {
        (a, b) if a == b => FileState::Unchanged,
        (Some(a), Some(b)) if a.len == b.len => FileState::Touched,
        _ => FileState::Replaced,
    }
}

fn plan_from_resume(storage: &TorrentStorage, saved: &ResumeData) -> Plan {
    let layout = storage.layout();
    let geometry = storage.geometry();
    let states: Vec<FileState> = saved
        .files
        .iter()
        .zip(storage.stamps())
        .zip(layout.files())
        .map(|((&was, now), spec)| {
            if spec.padding {
                FileState::Unchanged
            } else {
                compare(was, now)
            }
        })
        .collect();
    let changed_files = states
        .iter()
        .filter(|&&s| s != FileState::Unchanged)
        .count();
    let present = pieces_with_data(storage);
    let mut trusted = vec![false; geometry.piece_count() as usize];
    let mut recheck = vec![false; geometry.piece_count() as usize];
    for piece in geometry.pieces() {
        let i = piece.as_usize();
        let worst = layout
            .segments(
                geometry.piece_offset(piece),
                u64::from(geometry.piece_size(piece)),
            )
            .map(|seg| states[seg.file])
            .fold(FileState::Unchanged, |worst, s| match (worst, s) {
                (FileState::Replaced, _) | (_, FileState::Replaced) => FileState::Replaced,
                (FileState::Touched, _) | (_, FileState::Touched) => FileState::Touched,
                _ => FileState::Unchanged,
            });
        let recorded = saved.have[i] && present[i];
        match worst {
            FileState::Unchanged => trusted[i] = recorded,
            FileState::Touched if !saved.clean_shutdown && recorded => trusted[i] = true,
            FileState::Touched | FileState::Replaced => recheck[i] = true,
        }
    }
    Plan {
        trusted,
        recheck,
        changed_files,
    }
}

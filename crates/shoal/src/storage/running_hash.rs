//! Piece hashes computed while blocks are written, so a finished piece is not read back.
//!
//! Each piece that is being written gets a running SHA-1 of its leading bytes: a block written
//! right where that prefix ends is fed to it from memory (the bytes just written); a block
//! written further on (the pool's threads finish writes out of order) is remembered, with its
//! bytes while at most [`MAX_HELD`] bytes are held in all, and fed once the gap before it
//! closes (read back from the page cache if its bytes were not kept). At hash time only what
//! the prefix does not cover yet is read from disk.
//!
//! Guarantees: the result always equals SHA-1 of the bytes written at each offset. A write that
//! lands inside the prefix again (a block rewritten before the piece was hashed) or overlaps a
//! remembered block drops the running state, and the piece is then hashed from disk in full, as
//! before. Memory is bounded: at most [`MAX_RUNNING`] pieces have state (beyond that, new
//! pieces are hashed from disk), each keeps one SHA-1 state plus a map of its written blocks,
//! and block bytes held in those maps never exceed [`MAX_HELD`].

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, PoisonError};

use bytes::Bytes;
use sha1::{Digest, Sha1};

/// Most pieces with a running hash at once (a few hundred bytes each).
const MAX_RUNNING: usize = 1024;
/// Most block bytes kept in memory, across pieces, for blocks written ahead of their prefix.
const MAX_HELD: usize = 16 << 20;

/// A block written beyond its piece's prefix.
struct Ahead {
    len: u32,
    /// Its bytes, when they fit under [`MAX_HELD`]; else it is read back from disk.
    data: Option<Bytes>,
}

/// The running hash of one piece.
struct Running {
    sha: Sha1,
    /// Bytes of the piece hashed so far, from its start.
    hashed: u32,
    /// Blocks written beyond `hashed`, by offset in piece.
    ahead: BTreeMap<u32, Ahead>,
}

/// What [`RunningHashes::take`] hands back for a piece about to be hashed.
pub(super) struct Prefix {
    pub sha: Sha1,
    /// How many leading bytes `sha` covers; the rest must be read from disk.
    pub hashed: u32,
}

/// Running hashes of the pieces being written, keyed by piece index.
#[derive(Default)]
pub(super) struct RunningHashes {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    pieces: HashMap<u32, Running>,
    /// Bytes of [`Ahead::data`] held across all pieces.
    held: usize,
}

impl State {
    fn remove(&mut self, piece: u32) -> Option<Running> {
        let running = self.pieces.remove(&piece)?;
        self.held -= running.held();
        Some(running)
    }
}

impl std::fmt::Debug for RunningHashes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let running = self.lock().pieces.len();
        f.debug_struct("RunningHashes")
            .field("running", &running)
            .finish()
    }
}

impl RunningHashes {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records that `data` was written at `offset` in `piece`; `owned` is the same bytes when
    /// the caller has them as [`Bytes`] (kept, not copied, if the block arrived early).
    /// `read_back(offset, buf)` fills `buf` with the piece's bytes at `offset` from disk, for
    /// early blocks whose bytes were not kept; it runs with the state locked.
    pub(super) fn written(
        &self,
        piece: u32,
        offset: u32,
        data: &[u8],
        owned: Option<&Bytes>,
        read_back: impl Fn(u32, &mut [u8]) -> bool,
    ) {
        let Ok(len) = u32::try_from(data.len()) else {
            self.forget(piece);
            return;
        };
        let mut state = self.lock();
        if !state.pieces.contains_key(&piece) && state.pieces.len() >= MAX_RUNNING {
            return;
        }
        let State { pieces, held } = &mut *state;
        let running = pieces.entry(piece).or_insert_with(|| Running {
            sha: Sha1::new(),
            hashed: 0,
            ahead: BTreeMap::new(),
        });
        let before = running.held();
        let keep = owned.filter(|_| *held + data.len() <= MAX_HELD);
        let ok = running.accept(offset, len, data, keep, read_back);
        *held = *held + running.held() - before;
        if !ok {
            state.remove(piece);
        }
    }

    /// Drops the running state of `piece` (its prefix can no longer be trusted).
    pub(super) fn forget(&self, piece: u32) {
        self.lock().remove(piece);
    }

    /// Takes the running state of `piece` for its final hash: `None` when there is none (hash
    /// the whole piece from disk).
    pub(super) fn take(&self, piece: u32) -> Option<Prefix> {
        self.lock().remove(piece).map(|r| Prefix {
            sha: r.sha,
            hashed: r.hashed,
        })
    }
}

impl Running {
    /// Block bytes this piece holds.
    fn held(&self) -> usize {
        self.ahead
            .values()
            .filter_map(|a| a.data.as_ref())
            .map(Bytes::len)
            .sum()
    }

    /// Feeds a written block (`keep`: its bytes to hold if it is early); false when the state
    /// must be dropped.
    fn accept(
        &mut self,
        offset: u32,
        len: u32,
        data: &[u8],
        keep: Option<&Bytes>,
        read_back: impl Fn(u32, &mut [u8]) -> bool,
    ) -> bool {
        let Some(end) = offset.checked_add(len) else {
            return false;
        };
        if offset < self.hashed || self.overlaps_ahead(offset, end) {
            return false;
        }
        if offset > self.hashed {
            let data = keep.map(|b| b.slice(..data.len()));
            self.ahead.insert(offset, Ahead { len, data });
            return true;
        }
        self.sha.update(data);
        self.hashed = end;
        let mut buf = Vec::new();
        while let Some(next) = self.ahead.remove(&self.hashed) {
            match next.data {
                Some(bytes) => self.sha.update(&bytes),
                None => {
                    buf.resize(next.len as usize, 0);
                    if !read_back(self.hashed, &mut buf) {
                        return false;
                    }
                    self.sha.update(&buf);
                }
            }
            self.hashed += next.len;
        }
        // A remembered block that starts inside the prefix now overlaps it.
        self.ahead.range(..self.hashed).next().is_none()
    }

    fn overlaps_ahead(&self, offset: u32, end: u32) -> bool {
        let before = self.ahead.range(..=offset).next_back();
        let starts_before_end = self.ahead.range(offset..end).next().is_some();
        starts_before_end || before.is_some_and(|(&at, a)| at + a.len > offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sha(data: &[u8]) -> [u8; 20] {
        Sha1::digest(data).into()
    }

    /// Finishes a prefix against `content` as `hash_piece` does (rest from "disk").
    fn finish(prefix: Option<Prefix>, content: &[u8]) -> [u8; 20] {
        match prefix {
            Some(mut p) => {
                p.sha.update(&content[p.hashed as usize..]);
                p.sha.finalize().into()
            }
            None => sha(content),
        }
    }

    fn disk(content: &[u8]) -> impl Fn(u32, &mut [u8]) -> bool + '_ {
        move |offset, buf| {
            let at = offset as usize;
            buf.copy_from_slice(&content[at..at + buf.len()]);
            true
        }
    }

    #[test]
    fn blocks_in_order_are_hashed_without_reading_back() {
        let content: Vec<u8> = (0..64_000u32).map(|i| (i % 251) as u8).collect();
        let hashes = RunningHashes::default();
        for (n, block) in content.chunks(16_000).enumerate() {
            hashes.written(3, n as u32 * 16_000, block, None, |_, _| {
                panic!("no read back")
            });
        }
        let prefix = hashes.take(3).unwrap();
        assert_eq!(prefix.hashed, 64_000);
        assert_eq!(finish(Some(prefix), &content), sha(&content));
        assert!(hashes.take(3).is_none(), "taken once");
    }

    #[test]
    fn blocks_out_of_order_are_fed_once_the_gap_closes() {
        let content: Vec<u8> = (0..64_000u32).map(|i| (i * 7 % 253) as u8).collect();
        let hashes = RunningHashes::default();
        for n in [1u32, 3, 0, 2] {
            let at = (n * 16_000) as usize;
            hashes.written(
                0,
                n * 16_000,
                &content[at..at + 16_000],
                None,
                disk(&content),
            );
        }
        let prefix = hashes.take(0).unwrap();
        assert_eq!(prefix.hashed, 64_000);
        assert_eq!(finish(Some(prefix), &content), sha(&content));
    }

    #[test]
    fn early_blocks_given_as_bytes_are_kept_not_read_back() {
        let content = Bytes::from((0..64_000u32).map(|i| (i % 241) as u8).collect::<Vec<_>>());
        let hashes = RunningHashes::default();
        for n in [3u32, 2, 1, 0] {
            let block = content.slice((n * 16_000) as usize..((n + 1) * 16_000) as usize);
            hashes.written(0, n * 16_000, &block, Some(&block), |_, _| {
                panic!("no read back")
            });
        }
        assert_eq!(hashes.lock().held, 0, "nothing held once the gap closed");
        let prefix = hashes.take(0).unwrap();
        assert_eq!(prefix.hashed, 64_000);
        assert_eq!(finish(Some(prefix), &content), sha(&content));
    }

    #[test]
    fn held_bytes_are_capped_and_released() {
        let block = Bytes::from(vec![5u8; 1 << 20]);
        let hashes = RunningHashes::default();
        let pieces = (MAX_HELD >> 20) as u32 + 4;
        for piece in 0..pieces {
            hashes.written(piece, 1 << 20, &block, Some(&block), |_, _| true);
        }
        assert_eq!(
            hashes.lock().held,
            MAX_HELD,
            "the rest is left to be read back"
        );
        for piece in 0..pieces {
            hashes.forget(piece);
        }
        assert_eq!(hashes.lock().held, 0);
    }

    #[test]
    fn a_missing_tail_is_left_to_the_disk() {
        let content = vec![9u8; 48_000];
        let hashes = RunningHashes::default();
        hashes.written(0, 0, &content[..16_000], None, disk(&content));
        hashes.written(0, 32_000, &content[32_000..], None, disk(&content));
        let prefix = hashes.take(0).unwrap();
        assert_eq!(prefix.hashed, 16_000);
        assert_eq!(finish(Some(prefix), &content), sha(&content));
    }

    #[test]
    fn a_rewritten_block_drops_the_running_state() {
        let content = vec![1u8; 32_000];
        let hashes = RunningHashes::default();
        hashes.written(0, 0, &content[..16_000], None, disk(&content));
        hashes.written(0, 0, &[2u8; 16_000], None, disk(&content));
        assert!(hashes.take(0).is_none(), "hash from disk in full");
        hashes.written(1, 16_000, &content[..16_000], None, disk(&content));
        hashes.written(1, 16_000, &content[..16_000], None, disk(&content));
        assert!(hashes.take(1).is_none(), "a block ahead written twice");
    }

    #[test]
    fn a_failed_read_back_drops_the_running_state() {
        let hashes = RunningHashes::default();
        hashes.written(0, 16_000, &[0u8; 16_000], None, |_, _| false);
        hashes.written(0, 0, &[0u8; 16_000], None, |_, _| false);
        assert!(hashes.take(0).is_none());
    }

    #[test]
    fn running_states_are_capped() {
        let hashes = RunningHashes::default();
        for piece in 0..(MAX_RUNNING as u32 + 10) {
            hashes.written(piece, 0, &[0u8; 16], None, |_, _| true);
        }
        assert_eq!(hashes.lock().pieces.len(), MAX_RUNNING);
        assert!(hashes.take(MAX_RUNNING as u32 + 5).is_none());
    }
}

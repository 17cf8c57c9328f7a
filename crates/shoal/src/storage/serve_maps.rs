//! Blocks to serve as slices of file maps, so the only copy of a served block is the one the
//! socket makes (see [`crate::mapped`] for the maps and their `SIGBUS` guard).
//!
//! A positional read copies each block out of the page cache into a fresh, zeroed buffer; when
//! seeding that copy and the zeroing were about a third of shoal's CPU time (perf, 1 GiB to a
//! libtorrent leecher). Here a block that lies inside one file comes back as a [`Bytes`] that
//! borrows a read-only map of the file's [`WINDOW_BYTES`] window around it; the map lives until
//! the last such block is written to its socket.
//!
//! The block's pages are brought into memory before it is handed out (`MADV_POPULATE_READ`,
//! on the disk thread that runs the read), so the socket write that later copies them never
//! waits for the disk on an async thread. That happens a [`POPULATE_CHUNK`] at a time, the first
//! time a block in the chunk is asked for: one `madvise` per 16 blocks instead of one each (a
//! `madvise` per block was ~20 % of shoal's CPU when seeding 1 GiB). Peers ask for whole pieces,
//! so a chunk is rarely brought in for one block; a page the kernel reclaims in the seconds a
//! window lives is read back by the socket write.
//!
//! Bounds: at most [`MAX_WINDOWS`] windows per torrent are kept (least recently used out), so
//! the file pages mapped into the process — which count toward its resident set — stay near
//! `MAX_WINDOWS × WINDOW_BYTES` plus what blocks in flight still hold. A window is mapped only
//! as far as the file reaches when it is made; a block past that makes a new map. `None` (a block
//! across a window or file edge, no free map slot, `mmap` failed) sends the caller to a
//! positional read.

use std::fs::File;
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;

use crate::mapped::{Advice, MappedFile};

/// Bytes of a file one map covers (a multiple of any page size).
const WINDOW_BYTES: u64 = 4 * 1024 * 1024;
/// Windows kept mapped per torrent.
const MAX_WINDOWS: usize = 8;
/// Bytes of a window brought into memory at once.
const POPULATE_CHUNK: u64 = 256 * 1024;
/// One bit per chunk of a window.
type ChunkBits = u16;
const _: () = assert!(WINDOW_BYTES / POPULATE_CHUNK <= ChunkBits::BITS as u64);

#[derive(Debug)]
struct Window {
    file_index: usize,
    start: u64,
    map: Arc<MappedFile>,
    last_used: u64,
    /// Chunks already brought into memory.
    populated: ChunkBits,
}

/// One torrent's cache of mapped windows.
#[derive(Debug, Default)]
pub(crate) struct ServeMaps {
    inner: Mutex<(Vec<Window>, u64)>,
}

impl ServeMaps {
    /// Bytes `offset..offset + len` of file `file_index` (open as `file`), without a copy.
    pub(crate) fn block(
        &self,
        file_index: usize,
        file: &File,
        offset: u64,
        len: u32,
    ) -> Option<Bytes> {
        let start = offset - offset % WINDOW_BYTES;
        let end = offset.checked_add(u64::from(len))?;
        if len == 0 || end > start + WINDOW_BYTES {
            return None;
        }
        let (map, populated) = self.window(file_index, file, start, end)?;
        let at = usize::try_from(offset - start).ok()?;
        map.bytes(at, len as usize)?;
        let wanted = chunks_of(offset - start, end - start);
        if populated & wanted != wanted {
            // Paged in here, on a disk thread, not later by the socket write on an async thread:
            // the whole chunks the block touches, as far as the map reaches.
            let from = (offset - start) / POPULATE_CHUNK * POPULATE_CHUNK;
            let to =
                ((end - start).div_ceil(POPULATE_CHUNK) * POPULATE_CHUNK).min(map.len() as u64);
            let from = usize::try_from(from).ok()?;
            if !map.populate(from, usize::try_from(to).ok()? - from) {
                return None;
            }
            self.mark_populated(file_index, &map, wanted);
        }
        Some(Bytes::from_owner(MappedBlock {
            map,
            at,
            len: len as usize,
        }))
    }

    /// Records that `chunks` of `map` (a window of `file_index`) are in memory, if it is still
    /// cached.
    fn mark_populated(&self, file_index: usize, map: &Arc<MappedFile>, chunks: ChunkBits) {
        let mut guard = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(w) = guard
            .0
            .iter_mut()
            .find(|w| w.file_index == file_index && Arc::ptr_eq(&w.map, map))
        {
            w.populated |= chunks;
        }
    }

    /// The window of `file_index` that starts at `start` and reaches at least `end`, mapped
    /// now if needed, with the chunks of it already in memory.
    fn window(
        &self,
        file_index: usize,
        file: &File,
        start: u64,
        end: u64,
    ) -> Option<(Arc<MappedFile>, ChunkBits)> {
        let mut guard = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let (windows, clock) = &mut *guard;
        *clock += 1;
        let now = *clock;
        if let Some(w) = windows
            .iter_mut()
            .find(|w| w.file_index == file_index && w.start == start)
        {
            if w.start + w.map.len() as u64 >= end {
                w.last_used = now;
                return Some((Arc::clone(&w.map), w.populated));
            }
        }
        windows.retain(|w| !(w.file_index == file_index && w.start == start));
        let file_len = file.metadata().ok()?.len();
        if file_len < end {
            return None;
        }
        let map_len = WINDOW_BYTES.min(file_len - start);
        let map = Arc::new(MappedFile::new(file, start, map_len, Advice::Normal)?);
        if windows.len() >= MAX_WINDOWS {
            if let Some(oldest) = (0..windows.len()).min_by_key(|&i| windows[i].last_used) {
                windows.swap_remove(oldest);
            }
        }
        windows.push(Window {
            file_index,
            start,
            map: Arc::clone(&map),
            last_used: now,
            populated: 0,
        });
        Some((map, 0))
    }
}

/// The chunks that bytes `from..to` of a window (`from < to <= WINDOW_BYTES`) touch.
fn chunks_of(from: u64, to: u64) -> ChunkBits {
    let first = from / POPULATE_CHUNK;
    let last = (to - 1) / POPULATE_CHUNK;
    (first..=last).fold(0, |bits, chunk| bits | (1 << chunk))
}

/// What a served [`Bytes`] owns: its window's map, and where in it the block is.
struct MappedBlock {
    map: Arc<MappedFile>,
    at: usize,
    len: usize,
}

impl AsRef<[u8]> for MappedBlock {
    fn as_ref(&self) -> &[u8] {
        // The range was checked against the map when the block was made.
        self.map.bytes(self.at, self.len).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn file_with(len: usize) -> (tempfile::TempDir, File, Vec<u8>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.bin");
        let bytes: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
        File::create(&path).unwrap().write_all(&bytes).unwrap();
        (dir, File::open(&path).unwrap(), bytes)
    }

    #[test]
    fn blocks_come_from_the_file_and_windows_are_reused_and_bounded() {
        let len = 3 * WINDOW_BYTES as usize + 100;
        let (_dir, file, bytes) = file_with(len);
        let maps = ServeMaps::default();
        let block = maps.block(0, &file, 16384, 16384).unwrap();
        assert_eq!(&block[..], &bytes[16384..32768]);
        let same_window = maps.block(0, &file, 5 * 16384, 16384).unwrap();
        assert_eq!(&same_window[..], &bytes[5 * 16384..6 * 16384]);
        assert_eq!(maps.inner.lock().unwrap().0.len(), 1);
        // The short last window, and a block across a window edge (read instead).
        let tail = maps.block(0, &file, 3 * WINDOW_BYTES, 100).unwrap();
        assert_eq!(&tail[..], &bytes[3 * WINDOW_BYTES as usize..]);
        assert!(maps.block(0, &file, WINDOW_BYTES - 10, 16384).is_none());
        assert!(
            maps.block(0, &file, len as u64 - 10, 16384).is_none(),
            "past the end"
        );
        for file_index in 1..20 {
            maps.block(file_index, &file, 0, 10).unwrap();
        }
        assert_eq!(maps.inner.lock().unwrap().0.len(), MAX_WINDOWS);
        // A block outlives the cache that made it.
        drop(maps);
        assert_eq!(&block[..], &bytes[16384..32768]);
    }

    #[test]
    fn chunks_are_brought_in_once_each_and_a_block_across_two_marks_both() {
        assert_eq!(chunks_of(0, 16384), 0b1);
        assert_eq!(chunks_of(POPULATE_CHUNK - 10, POPULATE_CHUNK + 10), 0b11);
        assert_eq!(chunks_of(WINDOW_BYTES - 1, WINDOW_BYTES), 1 << 15);
        let len = WINDOW_BYTES as usize + 5000;
        let (_dir, file, bytes) = file_with(len);
        let maps = ServeMaps::default();
        let populated = |maps: &ServeMaps, start: u64| {
            let guard = maps.inner.lock().unwrap();
            guard.0.iter().find(|w| w.start == start).unwrap().populated
        };
        let at = POPULATE_CHUNK as usize - 100;
        let across = maps.block(0, &file, at as u64, 16384).unwrap();
        assert_eq!(&across[..], &bytes[at..at + 16384]);
        assert_eq!(populated(&maps, 0), 0b11);
        let later = maps.block(0, &file, 3 * POPULATE_CHUNK, 16384).unwrap();
        assert_eq!(&later[..], &bytes[3 * POPULATE_CHUNK as usize..][..16384]);
        assert_eq!(populated(&maps, 0), 0b1011);
        // The short last window: its one chunk ends where the map does.
        let tail = maps.block(0, &file, WINDOW_BYTES, 5000).unwrap();
        assert_eq!(&tail[..], &bytes[WINDOW_BYTES as usize..]);
        assert_eq!(populated(&maps, WINDOW_BYTES), 0b1);
    }

    #[test]
    fn a_window_made_before_the_file_grew_is_made_again() {
        let (dir, file, _) = file_with(20_000);
        let maps = ServeMaps::default();
        assert!(
            maps.block(0, &file, 16384, 16384).is_none(),
            "not written yet"
        );
        maps.block(0, &file, 0, 16384).unwrap();
        let more: Vec<u8> = vec![9; 20_000];
        std::fs::OpenOptions::new()
            .append(true)
            .open(dir.path().join("f.bin"))
            .unwrap()
            .write_all(&more)
            .unwrap();
        let block = maps.block(0, &file, 20_000, 16384).unwrap();
        assert!(block.iter().all(|&b| b == 9));
    }
}

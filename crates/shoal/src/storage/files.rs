//! One torrent's files on disk: positional reads and writes, piece hashing, flushing.
//!
//! [`TorrentStorage`] maps stream ranges to files with [`FileLayout`], resolves every path with
//! `paths::resolve` (never outside the download folder) and does positional IO on handles from a
//! bounded LRU cache, so it is `Sync` and any number of pool threads can use it at once.
//!
//! Decisions:
//! - **Sparse preallocation.** The first time a file is opened for writing, its length is set to
//!   the torrent's length for it with `set_len` (sparse: no blocks are reserved). The file has its
//!   final size from the start, writes never extend it, and a file at a torrent path that is
//!   longer than the torrent says is cut to size: it belongs to the torrent.
//! - **Reads never create anything.** A read of a missing file or folder, or past a file's end,
//!   fails with an error the engine sees as `Missing` (it only reads verified pieces, so their
//!   data was removed or changed behind our back).
//! - **Padding files** (BEP 47) are never created: reads of them yield zeros. A write into one
//!   must be all zeros; a peer that sends anything else gets its piece *tainted*: the next
//!   hash of that piece reports a mismatch, so the engine's corrupt-piece handling (re-download,
//!   ban) takes over, and the runtime is not paused as it would be for a disk failure.
//! - **Zero-length files** are created (empty) when the storage is opened.
//! - **Hashing as blocks arrive.** Each block written is also fed to its piece's running SHA-1
//!   (see `running_hash`), so `hash_piece` usually reads nothing back; the digest is always
//!   that of the bytes written at each offset, and anything unusual (a rewrite before the hash,
//!   a write through [`TorrentStorage::write_at`]) falls back to hashing the piece from disk.
//! - **Hashing from maps.** What a hash must read back (a whole piece when checking data found
//!   on disk) is hashed straight from read-only file maps ([`crate::mapped`]) when it is at
//!   least 256 KiB, else, or when a map cannot be made, from a positional read.
//! - **Dirty tracking.** Every file written since the last [`TorrentStorage::sync`] is flushed
//!   by it (`fdatasync`); the resume protocol relies on this.

use std::collections::BTreeSet;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use sha1::{Digest, Sha1};
use shoal_engine::disk::{DiskDone, DiskFailure, DiskRequest};
use shoal_proto::{BlockRef, Geometry, PieceIndex};

use super::error::{IoOp, StorageError};
use super::handles::FileHandles;
use super::layout::FileLayout;
use super::paths::resolve;
use super::running_hash::RunningHashes;
use super::serve_maps::ServeMaps;
use crate::mapped::{page_size, Advice, MappedFile};

/// Hashing reads ranges at least this long from file maps instead of copying them out.
const MIN_MAPPED_HASH: u64 = 256 * 1024;

/// Tunables of one torrent's storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StorageOptions {
    /// Most file handles kept open at once for this torrent (default 64).
    pub max_open_files: usize,
}

impl Default for StorageOptions {
    fn default() -> Self {
        StorageOptions { max_open_files: 64 }
    }
}

/// A file's size and modification time, as recorded in the resume file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStamp {
    pub len: u64,
    pub mtime_secs: i64,
    pub mtime_nanos: u32,
}

/// One torrent's files under its download folder.
#[derive(Debug)]
pub struct TorrentStorage {
    root: PathBuf,
    layout: FileLayout,
    geometry: Geometry,
    piece_hashes: Vec<[u8; 20]>,
    handles: FileHandles,
    /// Files written since the last `sync`.
    dirty: Vec<AtomicBool>,
    /// Pieces that received non-zero bytes inside a padding file since their last hash.
    tainted: Mutex<BTreeSet<u32>>,
    /// Running hashes of the pieces being written.
    running: RunningHashes,
    /// Mapped windows that blocks are served from without a copy.
    serve_maps: ServeMaps,
}

impl TorrentStorage {
    /// Opens storage for a torrent under `root` (created if missing): checks that the layout and
    /// the hashes agree with `geometry`, and creates the torrent's zero-length files.
    pub fn new(
        root: impl AsRef<Path>,
        layout: FileLayout,
        geometry: Geometry,
        piece_hashes: Vec<[u8; 20]>,
        options: StorageOptions,
    ) -> Result<Self, StorageError> {
        let root = root.as_ref();
        if layout.total_len() != geometry.total_len() {
            return Err(StorageError::LengthMismatch {
                files_len: layout.total_len(),
                torrent_len: geometry.total_len(),
            });
        }
        if piece_hashes.len() != geometry.piece_count() as usize {
            return Err(StorageError::HashCountMismatch {
                hashes: piece_hashes.len(),
                pieces: geometry.piece_count(),
            });
        }
        std::fs::create_dir_all(root).map_err(|e| StorageError::io(IoOp::CreateFolder, root, e))?;
        let root =
            std::fs::canonicalize(root).map_err(|e| StorageError::io(IoOp::Stat, root, e))?;
        let dirty = layout
            .files()
            .iter()
            .map(|_| AtomicBool::new(false))
            .collect();
        let storage = TorrentStorage {
            root,
            layout,
            geometry,
            piece_hashes,
            handles: FileHandles::new(options.max_open_files),
            dirty,
            tainted: Mutex::new(BTreeSet::new()),
            running: RunningHashes::default(),
            serve_maps: ServeMaps::default(),
        };
        storage.create_empty_files()?;
        Ok(storage)
    }

    /// The canonical download folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn layout(&self) -> &FileLayout {
        &self.layout
    }

    pub fn geometry(&self) -> &Geometry {
        &self.geometry
    }

    /// Number of file handles open now.
    pub fn open_files(&self) -> usize {
        self.handles.open_count()
    }

    fn create_empty_files(&self) -> Result<(), StorageError> {
        for (index, file) in self.layout.files().iter().enumerate() {
            if file.length == 0 && !file.padding {
                self.handle(index, true)?;
            }
        }
        Ok(())
    }

    /// The handle of file `index`, opened (and for writing created, parents and all, and sized)
    /// through the path checks on a cache miss.
    fn handle(&self, index: usize, writable: bool) -> Result<Arc<File>, StorageError> {
        self.handles.get(index, writable, || {
            let spec = &self.layout.files()[index];
            let path = resolve(&self.root, &spec.path, writable)?;
            let file = OpenOptions::new()
                .read(true)
                .write(writable)
                .create(writable)
                .truncate(false)
                .open(&path)
                .map_err(|e| StorageError::io(IoOp::Open, &path, e))?;
            if writable {
                let len = file
                    .metadata()
                    .map_err(|e| StorageError::io(IoOp::Stat, &path, e))?
                    .len();
                if len != spec.length {
                    file.set_len(spec.length)
                        .map_err(|e| StorageError::io(IoOp::Resize, &path, e))?;
                }
            }
            Ok(file)
        })
    }

    /// Writes `data` at stream offset `offset`. Zeros aimed at padding are dropped; anything else
    /// aimed at padding taints the pieces it falls in (see the module doc). The pieces touched
    /// are hashed from disk in full next time.
    pub fn write_at(&self, offset: u64, data: &[u8]) -> Result<(), StorageError> {
        if !data.is_empty() {
            let piece_len = u64::from(self.geometry.piece_len());
            let last = (offset + data.len() as u64 - 1) / piece_len;
            for piece in offset / piece_len..=last {
                self.running.forget(piece as u32);
            }
        }
        self.write_unhashed(offset, data)
    }

    fn write_unhashed(&self, offset: u64, data: &[u8]) -> Result<(), StorageError> {
        for seg in self.layout.segments(offset, data.len() as u64) {
            let bytes = &data[seg.range_offset as usize..(seg.range_offset + seg.len) as usize];
            let spec = &self.layout.files()[seg.file];
            if spec.padding {
                if bytes.iter().any(|&b| b != 0) {
                    self.taint(offset + seg.range_offset, seg.len);
                }
                continue;
            }
            let file = self.handle(seg.file, true)?;
            file.write_all_at(bytes, seg.file_offset)
                .map_err(|e| StorageError::io(IoOp::Write, &spec.path, e))?;
            self.dirty[seg.file].store(true, Ordering::Release);
        }
        Ok(())
    }

    /// Fills `buf` from stream offset `offset`.
    pub fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), StorageError> {
        for seg in self.layout.segments(offset, buf.len() as u64) {
            let out = &mut buf[seg.range_offset as usize..(seg.range_offset + seg.len) as usize];
            let spec = &self.layout.files()[seg.file];
            if spec.padding {
                out.fill(0);
                continue;
            }
            let file = self.handle(seg.file, false)?;
            file.read_exact_at(out, seg.file_offset)
                .map_err(|e| StorageError::io(IoOp::Read, &spec.path, e))?;
        }
        Ok(())
    }

    /// Writes one received block and feeds it to its piece's running hash.
    pub fn write_block(&self, block: BlockRef, data: &[u8]) -> Result<(), StorageError> {
        self.write_block_hashed(block, data, None)
    }

    /// [`TorrentStorage::write_block`] with the bytes as `owned` too, so that a block written
    /// ahead of its piece's hashed prefix is kept in memory (bounded) rather than read back.
    fn write_block_hashed(
        &self,
        block: BlockRef,
        data: &[u8],
        owned: Option<&Bytes>,
    ) -> Result<(), StorageError> {
        let data = &data[..data.len().min(block.len() as usize)];
        self.write_unhashed(self.geometry.block_offset(block), data)?;
        self.feed_running_hash(block, data, owned);
        Ok(())
    }

    fn feed_running_hash(&self, block: BlockRef, data: &[u8], owned: Option<&Bytes>) {
        let piece = block.piece();
        let piece_offset = self.geometry.piece_offset(piece);
        self.running
            .written(piece.get(), block.offset(), data, owned, |offset, buf| {
                self.read_at(piece_offset + u64::from(offset), buf).is_ok()
            });
    }

    /// Writes a run of blocks that follow each other in the stream (each starts where the one
    /// before ends) with one vectored positional write when they all fall in one regular file,
    /// else block by block; then feeds each to its piece's running hash. One `Written`
    /// completion per block, in order.
    pub fn execute_writes(&self, blocks: &[(BlockRef, Bytes)]) -> Vec<DiskDone> {
        let results = self.write_run(blocks);
        blocks
            .iter()
            .zip(results)
            .map(|(&(block, _), result)| DiskDone::Written { block, result })
            .collect()
    }

    fn write_run(&self, blocks: &[(BlockRef, Bytes)]) -> Vec<Result<(), DiskFailure>> {
        let Some(&(first, _)) = blocks.first() else {
            return Vec::new();
        };
        let start = self.geometry.block_offset(first);
        let mut len = 0u64;
        let mut contiguous = true;
        for (block, data) in blocks {
            contiguous &= self.geometry.block_offset(*block) == start + len
                && data.len() >= block.len() as usize;
            len += u64::from(block.len());
        }
        let mut segments = self.layout.segments(start, len);
        let single = match (segments.next(), segments.next()) {
            (Some(seg), None) if seg.len == len => Some(seg),
            _ => None,
        };
        let spec = single.map(|seg| (seg, &self.layout.files()[seg.file]));
        let Some((seg, spec)) = spec.filter(|(_, spec)| contiguous && !spec.padding) else {
            return blocks
                .iter()
                .map(|(block, data)| {
                    self.write_block_hashed(*block, data, Some(data))
                        .map_err(|e| log_failure(&e, "write"))
                })
                .collect();
        };
        let bufs: Vec<&[u8]> = blocks
            .iter()
            .map(|(block, data)| &data[..block.len() as usize])
            .collect();
        let written = self.handle(seg.file, true).and_then(|file| {
            pwritev_all(&file, &bufs, seg.file_offset)
                .map_err(|e| StorageError::io(IoOp::Write, &spec.path, e))
        });
        if let Err(err) = written {
            let failure = log_failure(&err, "write");
            return blocks.iter().map(|_| Err(failure.clone())).collect();
        }
        self.dirty[seg.file].store(true, Ordering::Release);
        for ((block, data), buf) in blocks.iter().zip(&bufs) {
            self.feed_running_hash(*block, buf, Some(data));
        }
        blocks.iter().map(|_| Ok(())).collect()
    }

    /// `sha` fed with stream bytes `offset..offset + len` read straight from file maps, which
    /// skips the copy of a positional read (about as much CPU as the SHA-1 itself when checking
    /// data already on disk). `None` when some part cannot be mapped: the caller reads instead,
    /// with its own `sha` untouched. A file that shrank while mapped is the read error a
    /// positional read would have met.
    fn hash_from_maps(
        &self,
        offset: u64,
        len: u64,
        sha: &Sha1,
    ) -> Option<Result<Sha1, StorageError>> {
        const ZEROS: [u8; 16 * 1024] = [0; 16 * 1024];
        let mut sha = sha.clone();
        for seg in self.layout.segments(offset, len) {
            if self.layout.files()[seg.file].padding {
                let mut left = seg.len;
                while left > 0 {
                    let n = left.min(ZEROS.len() as u64);
                    sha.update(&ZEROS[..n as usize]);
                    left -= n;
                }
                continue;
            }
            let file = self.handle(seg.file, false).ok()?;
            let start = seg.file_offset - seg.file_offset % page_size() as u64;
            let skip = seg.file_offset - start;
            let map = MappedFile::new(&file, start, skip + seg.len, Advice::Sequential)?;
            sha.update(map.bytes(usize::try_from(skip).ok()?, usize::try_from(seg.len).ok()?)?);
            if map.faulted() {
                let path = &self.layout.files()[seg.file].path;
                let short = std::io::Error::from(std::io::ErrorKind::UnexpectedEof);
                return Some(Err(StorageError::io(IoOp::Read, path, short)));
            }
        }
        Some(Ok(sha))
    }

    /// Reads one block to serve it.
    pub fn read_block(&self, block: BlockRef) -> Result<Bytes, StorageError> {
        let offset = self.geometry.block_offset(block);
        if let Some(bytes) = self.mapped_block(offset, block.len()) {
            return Ok(bytes);
        }
        let mut buf = vec![0u8; block.len() as usize];
        self.read_at(offset, &mut buf)?;
        Ok(Bytes::from(buf))
    }

    /// The block at stream `offset` as a slice of a file map, when it lies inside one real
    /// (not padding) file and a map can be made; `None` sends the caller to a read.
    fn mapped_block(&self, offset: u64, len: u32) -> Option<Bytes> {
        let mut segments = self.layout.segments(offset, u64::from(len));
        let segment = segments.next()?;
        if segments.next().is_some() || self.layout.files()[segment.file].padding {
            return None;
        }
        let file = self.handle(segment.file, false).ok()?;
        self.serve_maps
            .block(segment.file, &file, segment.file_offset, len)
    }

    /// Hashes the whole piece from disk (from file maps, or read into `buf`, reused across
    /// calls) and compares its SHA-1
    /// with the torrent's: the check of data found on disk. A tainted piece (non-zero padding
    /// received) reports a mismatch once.
    pub fn hash_piece(&self, piece: PieceIndex, buf: &mut Vec<u8>) -> Result<bool, StorageError> {
        self.finish_hash(piece, Sha1::new(), 0, buf)
    }

    /// [`TorrentStorage::hash_piece`] for a piece whose blocks were just written: its running
    /// hash (see the module doc) finished with whatever it does not cover yet, read from disk.
    pub fn hash_written_piece(
        &self,
        piece: PieceIndex,
        buf: &mut Vec<u8>,
    ) -> Result<bool, StorageError> {
        let size = self.geometry.piece_size(piece);
        match self.running.take(piece.get()) {
            Some(prefix) if prefix.hashed <= size => {
                self.finish_hash(piece, prefix.sha, prefix.hashed, buf)
            }
            _ => self.finish_hash(piece, Sha1::new(), 0, buf),
        }
    }

    /// Hashes the piece's bytes from `hashed` on (read from disk) into `sha` and compares.
    fn finish_hash(
        &self,
        piece: PieceIndex,
        mut sha: Sha1,
        hashed: u32,
        buf: &mut Vec<u8>,
    ) -> Result<bool, StorageError> {
        let tainted = self
            .tainted
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&piece.get());
        let size = self.geometry.piece_size(piece);
        let offset = self.geometry.piece_offset(piece) + u64::from(hashed);
        let rest = u64::from(size - hashed);
        let mapped = (rest >= MIN_MAPPED_HASH)
            .then(|| self.hash_from_maps(offset, rest, &sha))
            .flatten();
        match mapped {
            Some(hashed) => sha = hashed?,
            None => {
                buf.resize(rest as usize, 0);
                self.read_at(offset, buf)?;
                sha.update(&buf[..]);
            }
        }
        let digest = sha.finalize();
        let expected = self.piece_hashes.get(piece.as_usize());
        Ok(!tainted && expected.is_some_and(|h| digest[..] == h[..]))
    }

    fn taint(&self, offset: u64, len: u64) {
        let piece_len = u64::from(self.geometry.piece_len());
        let first = offset / piece_len;
        let last = (offset + len - 1) / piece_len;
        tracing::warn!(
            offset,
            len,
            "non-zero bytes received for a padding file; the piece will fail its check"
        );
        let mut tainted = self.tainted.lock().unwrap_or_else(PoisonError::into_inner);
        tainted.extend((first..=last).map(|p| p as u32));
    }

    /// Flushes (`fdatasync`) every file written since the last call. After it returns `Ok`, every
    /// write that finished before the call began is on stable storage.
    pub fn sync(&self) -> Result<(), StorageError> {
        for (index, dirty) in self.dirty.iter().enumerate() {
            if !dirty.swap(false, Ordering::AcqRel) {
                continue;
            }
            let result = self.handle(index, false).and_then(|file| {
                file.sync_data()
                    .map_err(|e| StorageError::io(IoOp::Sync, &self.layout.files()[index].path, e))
            });
            if let Err(err) = result {
                dirty.store(true, Ordering::Release);
                return Err(err);
            }
        }
        Ok(())
    }

    /// The size and mtime of each file now; `None` for padding files and missing ones.
    pub fn stamps(&self) -> Vec<Option<FileStamp>> {
        (0..self.layout.files().len())
            .map(|index| self.stamp(index))
            .collect()
    }

    fn stamp(&self, index: usize) -> Option<FileStamp> {
        let spec = &self.layout.files()[index];
        if spec.padding {
            return None;
        }
        let path = resolve(&self.root, &spec.path, false).ok()?;
        let meta = std::fs::metadata(path).ok()?;
        Some(FileStamp {
            len: meta.len(),
            mtime_secs: meta.mtime(),
            mtime_nanos: u32::try_from(meta.mtime_nsec()).unwrap_or(0),
        })
    }

    /// Runs one engine request and returns its completion. `hash_buf` is the calling thread's
    /// reusable piece buffer.
    pub fn execute(&self, request: DiskRequest, hash_buf: &mut Vec<u8>) -> DiskDone {
        match request {
            DiskRequest::Write { block, data } => {
                let result = self
                    .write_block_hashed(block, &data, Some(&data))
                    .map_err(|e| log_failure(&e, "write"));
                DiskDone::Written { block, result }
            }
            DiskRequest::Read { peer, block } => {
                let result = self.read_block(block).map_err(|e| log_failure(&e, "read"));
                DiskDone::Read {
                    peer,
                    block,
                    result,
                }
            }
            DiskRequest::Hash { piece } => {
                let result = self
                    .hash_written_piece(piece, hash_buf)
                    .map_err(|e| log_failure(&e, "hash"));
                DiskDone::Hashed { piece, result }
            }
        }
    }
}

/// `pwritev` until every byte of `bufs` is written at `offset` on.
fn pwritev_all(file: &File, bufs: &[&[u8]], mut offset: u64) -> std::io::Result<()> {
    let mut slices: Vec<std::io::IoSlice<'_>> =
        bufs.iter().map(|b| std::io::IoSlice::new(b)).collect();
    let mut rest = &mut slices[..];
    while !rest.is_empty() {
        let n = rustix::io::pwritev(file, rest, offset).map_err(std::io::Error::from)?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        offset += n as u64;
        std::io::IoSlice::advance_slices(&mut rest, n);
    }
    Ok(())
}

fn log_failure(err: &StorageError, what: &'static str) -> shoal_engine::disk::DiskFailure {
    let failure = err.to_failure();
    tracing::warn!(kind = ?failure.kind, error = %err, "disk {what} failed");
    failure
}

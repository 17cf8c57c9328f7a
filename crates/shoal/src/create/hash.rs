//! Hashes the content of a new torrent: SHA-1 of every piece of the concatenated file stream,
//! on all cores.
//!
//! The stream is cut into work units of whole pieces, at least [`UNIT_BYTES`] long (one piece
//! when pieces are larger). Rayon hands units to its threads. Each thread reads its pieces in
//! [`CHUNK_BYTES`] (1 MiB) chunks with positional reads (`read_exact_at`; a chunk that spans a file
//! boundary is read from each file in turn) into one buffer it reuses, and feeds each chunk to the
//! piece's SHA-1 while it is still in the core's L2 cache. Measured on 2 GiB with a warm page
//! cache: 1 MiB chunks took 0.92-0.96 s against 0.99 s for 128 KiB ones (fewer syscalls outweigh the
//! cache misses); `mktorrent -t 2` takes 0.94-1.02 s on the same data. The last opened file stays open for
//! the next chunk. Results are collected in piece order, so the output does not depend on
//! scheduling.
//!
//! A file that is shorter than the walk found (changed while hashing) is
//! [`CreateError::FileChanged`]; a read error is [`CreateError::Io`] naming the file.

use std::fs::File;
use std::os::unix::fs::FileExt;

use rayon::prelude::*;
use sha1::{Digest, Sha1};

use super::walk::ContentFile;
use super::CreateError;

/// Smallest amount of data one work unit covers: units this large keep the threads reading
/// neighbouring parts of the stream, which suits read-ahead on a cold cache.
const UNIT_BYTES: u64 = 4 * 1024 * 1024;
/// Bytes read per `read_exact_at`: small enough to stay in L2 until hashed.
const CHUNK_BYTES: u64 = 1024 * 1024;

/// SHA-1 of each piece of the concatenation of `files`, in order. `progress` is called from
/// worker threads with the number of bytes just hashed; the calls sum to the total length.
pub(crate) fn hash_pieces(
    files: &[ContentFile],
    piece_len: u32,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<Vec<[u8; 20]>, CreateError> {
    let layout = Layout::new(files);
    let piece_len = u64::from(piece_len.max(1));
    let piece_count = layout.total_len.div_ceil(piece_len);
    let pieces_per_unit = (UNIT_BYTES / piece_len).max(1);
    let unit_count = piece_count.div_ceil(pieces_per_unit);
    let per_unit: Vec<Vec<[u8; 20]>> = (0..unit_count)
        .into_par_iter()
        .map_init(Reader::default, |reader, unit| {
            let first = unit * pieces_per_unit;
            let last = (first + pieces_per_unit).min(piece_count);
            let mut hashes = Vec::with_capacity((last - first) as usize);
            for piece in first..last {
                let start = piece * piece_len;
                let end = (start + piece_len).min(layout.total_len);
                hashes.push(hash_range(&layout, start, end, reader)?);
            }
            let unit_start = first * piece_len;
            progress((last * piece_len).min(layout.total_len) - unit_start);
            Ok(hashes)
        })
        .collect::<Result<_, CreateError>>()?;
    Ok(per_unit.into_iter().flatten().collect())
}

/// SHA-1 of stream bytes `start..end`, read chunk by chunk.
fn hash_range(
    layout: &Layout<'_>,
    start: u64,
    end: u64,
    reader: &mut Reader,
) -> Result<[u8; 20], CreateError> {
    let mut hasher = Sha1::new();
    let mut pos = start;
    while pos < end {
        let chunk_end = (pos + CHUNK_BYTES).min(end);
        hasher.update(layout.read(pos, chunk_end, reader)?);
        pos = chunk_end;
    }
    Ok(hasher.finalize().into())
}

/// One thread's read state: its buffer and the file it read last.
#[derive(Default)]
struct Reader {
    buffer: Vec<u8>,
    open: Option<(usize, File)>,
}

/// Files with their offsets in the concatenated stream.
struct Layout<'a> {
    files: &'a [ContentFile],
    /// `starts[i]` is the stream offset of `files[i]`.
    starts: Vec<u64>,
    total_len: u64,
}

impl<'a> Layout<'a> {
    fn new(files: &'a [ContentFile]) -> Self {
        let mut starts = Vec::with_capacity(files.len());
        let mut offset = 0u64;
        for file in files {
            starts.push(offset);
            offset += file.len;
        }
        Layout {
            files,
            starts,
            total_len: offset,
        }
    }

    /// Reads stream bytes `start..end` into the reader's buffer and returns them.
    fn read<'b>(
        &self,
        start: u64,
        end: u64,
        reader: &'b mut Reader,
    ) -> Result<&'b [u8], CreateError> {
        let len = (end - start) as usize;
        if reader.buffer.len() < len {
            reader.buffer.resize(len, 0);
        }
        // The last file starting at or before `start`; zero-length files are passed over.
        let mut index = self
            .starts
            .partition_point(|&s| s <= start)
            .saturating_sub(1);
        let mut pos = start;
        while pos < end {
            let (file, file_start) = match (self.files.get(index), self.starts.get(index)) {
                (Some(file), Some(&file_start)) => (file, file_start),
                _ => {
                    return Err(CreateError::Internal {
                        what: "read past the last file",
                    })
                }
            };
            let file_end = file_start + file.len;
            if file_end > pos {
                let chunk_end = file_end.min(end);
                let range = (pos - start) as usize..(chunk_end - start) as usize;
                let handle = open_cached(&mut reader.open, index, file)?;
                read_file_at(handle, file, pos - file_start, &mut reader.buffer[range])?;
                pos = chunk_end;
            }
            index += 1;
        }
        Ok(&reader.buffer[..len])
    }
}

/// The open handle of `files[index]`, opening it (and closing the previous one) if needed.
fn open_cached<'f>(
    open: &'f mut Option<(usize, File)>,
    index: usize,
    file: &ContentFile,
) -> Result<&'f File, CreateError> {
    if open
        .as_ref()
        .is_none_or(|(open_index, _)| *open_index != index)
    {
        let handle = File::open(&file.disk_path)
            .map_err(|source| CreateError::io(&file.disk_path, source))?;
        *open = Some((index, handle));
    }
    match open {
        Some((_, handle)) => Ok(handle),
        None => Err(CreateError::Internal {
            what: "file handle cache empty after open",
        }),
    }
}

fn read_file_at(
    handle: &File,
    file: &ContentFile,
    offset: u64,
    target: &mut [u8],
) -> Result<(), CreateError> {
    handle.read_exact_at(target, offset).map_err(|source| {
        if source.kind() == std::io::ErrorKind::UnexpectedEof {
            CreateError::FileChanged {
                path: file.disk_path.clone(),
                expected_len: file.len,
            }
        } else {
            CreateError::io(&file.disk_path, source)
        }
    })
}

//! Hashes the content of a new torrent: SHA-1 of every piece of the concatenated file stream,
//! on all cores.
//!
//! The stream is cut into work units of whole pieces, at least [`UNIT_BYTES`] long (one piece
//! when pieces are larger). Rayon hands units to its threads; each thread reads its unit with
//! positional reads (`read_exact_at`, one per file the unit overlaps, so pieces spanning file
//! boundaries need nothing special) into a buffer it reuses, then hashes the unit's pieces.
//! Results are collected in piece order, so the output does not depend on scheduling.
//!
//! A file that is shorter than the walk found (changed while hashing) is
//! [`CreateError::FileChanged`]; a read error is [`CreateError::Io`] naming the file.

use std::fs::File;
use std::os::unix::fs::FileExt;

use rayon::prelude::*;
use sha1::{Digest, Sha1};

use super::walk::ContentFile;
use super::CreateError;

/// Smallest amount of data one work unit reads: large reads keep syscalls and file opens rare.
const UNIT_BYTES: u64 = 4 * 1024 * 1024;

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
        .map_init(Vec::new, |buffer: &mut Vec<u8>, unit| {
            let start = unit * pieces_per_unit * piece_len;
            let end = (start + pieces_per_unit * piece_len).min(layout.total_len);
            let data = layout.read(start, end, buffer)?;
            let hashes: Vec<[u8; 20]> = data.chunks(piece_len as usize).map(sha1_of).collect();
            progress(end - start);
            Ok(hashes)
        })
        .collect::<Result<_, CreateError>>()?;
    Ok(per_unit.into_iter().flatten().collect())
}

fn sha1_of(piece: &[u8]) -> [u8; 20] {
    Sha1::digest(piece).into()
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

    /// Reads stream bytes `start..end` into `buffer` and returns them.
    fn read<'b>(
        &self,
        start: u64,
        end: u64,
        buffer: &'b mut Vec<u8>,
    ) -> Result<&'b [u8], CreateError> {
        let len = (end - start) as usize;
        if buffer.len() < len {
            buffer.resize(len, 0);
        }
        let out = &mut buffer[..len];
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
                let target = &mut out[(pos - start) as usize..(chunk_end - start) as usize];
                read_file_at(file, pos - file_start, target)?;
                pos = chunk_end;
            }
            index += 1;
        }
        Ok(out)
    }
}

fn read_file_at(file: &ContentFile, offset: u64, target: &mut [u8]) -> Result<(), CreateError> {
    let handle =
        File::open(&file.disk_path).map_err(|source| CreateError::io(&file.disk_path, source))?;
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

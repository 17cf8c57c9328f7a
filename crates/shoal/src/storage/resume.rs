//! The resume file: which pieces were verified *and flushed*, and what the files looked like then.
//!
//! Format (version 1), all integers big-endian:
//!
//! ```text
//! magic "SHOALRSM" | version u16 | flags u8 (bit 0: clean shutdown) | infohash [20]
//! | piece count u32 | file count u32 | bitfield ceil(pieces/8) bytes, spare bits 0
//! | per file: present u8 (0|1), length u64, mtime seconds i64, mtime nanoseconds u32
//! |           (all zero when absent)
//! | SHA-1 of everything before [20]
//! ```
//!
//! Loading is given the torrent's infohash, piece count and file count, so the exact size is
//! known before anything is read; at most that many bytes plus one are read. Any defect
//! (truncation, a flipped bit, another torrent's file, another size) is a typed [`ResumeError`]
//! and the caller falls back to checking the files (see `restore`).
//!
//! Saving is atomic: write a temporary file next to it, `fsync` it, rename it over the old one,
//! `fsync` the folder. A crash leaves either the old or the new file, never a mix.
//! [`checkpoint`] is the only way the runtime should save: it flushes the torrent's files first,
//! so that every piece in the saved bitfield is on stable storage.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use sha1::{Digest, Sha1};
use shoal_proto::InfoHash;

use super::error::StorageError;
use super::files::{FileStamp, TorrentStorage};

const MAGIC: &[u8; 8] = b"SHOALRSM";
const VERSION: u16 = 1;
const FLAG_CLEAN: u8 = 1;
const HEADER_LEN: usize = 8 + 2 + 1 + 20 + 4 + 4;
const FILE_RECORD_LEN: usize = 1 + 8 + 8 + 4;
const CHECKSUM_LEN: usize = 20;

/// What a resume file records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResumeData {
    pub info_hash: InfoHash,
    /// Pieces verified and flushed to disk before the file was written.
    pub have: Vec<bool>,
    /// Each file's size and mtime right after that flush (`None`: padding or not on disk).
    pub files: Vec<Option<FileStamp>>,
    /// `true` when written by a clean stop; `false` while running (the state `kill -9` leaves).
    pub clean_shutdown: bool,
}

/// What the torrent says a resume file for it must contain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResumeExpect {
    pub info_hash: InfoHash,
    pub piece_count: u32,
    pub file_count: u32,
}

/// Why a resume file cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ResumeError {
    #[error("resume file {path:?}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("flushing the torrent's files before saving: {0}")]
    Flush(#[source] StorageError),
    #[error("resume file is {len} bytes, expected {expected}")]
    WrongLength { len: usize, expected: usize },
    #[error("not a shoal resume file (bad magic)")]
    BadMagic,
    #[error("resume file version {version} is not supported")]
    UnsupportedVersion { version: u16 },
    #[error("resume file checksum mismatch (corrupted)")]
    ChecksumMismatch,
    #[error("resume file is for torrent {found}, not {expected}")]
    WrongInfoHash { found: InfoHash, expected: InfoHash },
    #[error("resume file has {found} pieces, the torrent {expected}")]
    WrongPieceCount { found: u32, expected: u32 },
    #[error("resume file has {found} files, the torrent {expected}")]
    WrongFileCount { found: u32, expected: u32 },
    #[error("resume file has unknown flags {flags:#04x}")]
    UnknownFlags { flags: u8 },
    #[error("resume file bitfield has bits set past the last piece")]
    SpareBitsSet,
    #[error("resume file record of file {index} is malformed")]
    BadFileRecord { index: usize },
}

impl ResumeError {
    /// True when there simply is no resume file yet (a first start), as opposed to a bad one.
    pub fn is_not_found(&self) -> bool {
        matches!(self, ResumeError::Io { source, .. } if source.kind() == io::ErrorKind::NotFound)
    }
}

fn encoded_len(piece_count: u32, file_count: u32) -> usize {
    HEADER_LEN
        + (piece_count as usize).div_ceil(8)
        + file_count as usize * FILE_RECORD_LEN
        + CHECKSUM_LEN
}

impl ResumeData {
    /// The file's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out =
            Vec::with_capacity(encoded_len(self.have.len() as u32, self.files.len() as u32));
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_be_bytes());
        out.push(if self.clean_shutdown { FLAG_CLEAN } else { 0 });
        out.extend_from_slice(&self.info_hash.0);
        out.extend_from_slice(&(self.have.len() as u32).to_be_bytes());
        out.extend_from_slice(&(self.files.len() as u32).to_be_bytes());
        let mut bitfield = vec![0u8; self.have.len().div_ceil(8)];
        for (i, _) in self.have.iter().enumerate().filter(|(_, &had)| had) {
            bitfield[i / 8] |= 0x80 >> (i % 8);
        }
        out.extend_from_slice(&bitfield);
        for stamp in &self.files {
            let s = stamp.unwrap_or(FileStamp {
                len: 0,
                mtime_secs: 0,
                mtime_nanos: 0,
            });
            out.push(u8::from(stamp.is_some()));
            out.extend_from_slice(&s.len.to_be_bytes());
            out.extend_from_slice(&s.mtime_secs.to_be_bytes());
            out.extend_from_slice(&s.mtime_nanos.to_be_bytes());
        }
        let checksum = Sha1::digest(&out);
        out.extend_from_slice(&checksum);
        out
    }

    /// Parses and checks a resume file's bytes against what the torrent expects.
    pub fn decode(bytes: &[u8], expect: &ResumeExpect) -> Result<Self, ResumeError> {
        let expected_len = encoded_len(expect.piece_count, expect.file_count);
        if bytes.len() < HEADER_LEN + CHECKSUM_LEN {
            return Err(ResumeError::WrongLength {
                len: bytes.len(),
                expected: expected_len,
            });
        }
        if &bytes[..8] != MAGIC {
            return Err(ResumeError::BadMagic);
        }
        let version = u16::from_be_bytes([bytes[8], bytes[9]]);
        if version != VERSION {
            return Err(ResumeError::UnsupportedVersion { version });
        }
        let (body, checksum) = bytes.split_at(bytes.len() - CHECKSUM_LEN);
        if Sha1::digest(body)[..] != checksum[..] {
            return Err(ResumeError::ChecksumMismatch);
        }
        let mut reader = Reader { bytes: &body[10..] };
        let flags = reader.u8();
        let info_hash = InfoHash(reader.array());
        let piece_count = u32::from_be_bytes(reader.array());
        let file_count = u32::from_be_bytes(reader.array());
        check_identity(expect, info_hash, piece_count, file_count)?;
        if bytes.len() != expected_len {
            return Err(ResumeError::WrongLength {
                len: bytes.len(),
                expected: expected_len,
            });
        }
        if flags & !FLAG_CLEAN != 0 {
            return Err(ResumeError::UnknownFlags { flags });
        }
        let have = decode_bitfield(reader.take((piece_count as usize).div_ceil(8)), piece_count)?;
        let files = (0..file_count as usize)
            .map(|index| decode_file_record(&mut reader, index))
            .collect::<Result<_, _>>()?;
        Ok(ResumeData {
            info_hash,
            have,
            files,
            clean_shutdown: flags & FLAG_CLEAN != 0,
        })
    }
}

fn check_identity(
    expect: &ResumeExpect,
    info_hash: InfoHash,
    pieces: u32,
    files: u32,
) -> Result<(), ResumeError> {
    if info_hash != expect.info_hash {
        return Err(ResumeError::WrongInfoHash {
            found: info_hash,
            expected: expect.info_hash,
        });
    }
    if pieces != expect.piece_count {
        return Err(ResumeError::WrongPieceCount {
            found: pieces,
            expected: expect.piece_count,
        });
    }
    if files != expect.file_count {
        return Err(ResumeError::WrongFileCount {
            found: files,
            expected: expect.file_count,
        });
    }
    Ok(())
}

fn decode_bitfield(bytes: &[u8], piece_count: u32) -> Result<Vec<bool>, ResumeError> {
    let have: Vec<bool> = (0..piece_count as usize)
        .map(|i| bytes[i / 8] & (0x80 >> (i % 8)) != 0)
        .collect();
    let used_bits = piece_count % 8;
    let spare = match bytes.last() {
        Some(last) if used_bits != 0 => last & (0xFF >> used_bits),
        _ => 0,
    };
    if spare != 0 {
        return Err(ResumeError::SpareBitsSet);
    }
    Ok(have)
}

fn decode_file_record(
    reader: &mut Reader<'_>,
    index: usize,
) -> Result<Option<FileStamp>, ResumeError> {
    let present = reader.u8();
    let stamp = FileStamp {
        len: u64::from_be_bytes(reader.array()),
        mtime_secs: i64::from_be_bytes(reader.array()),
        mtime_nanos: u32::from_be_bytes(reader.array()),
    };
    match present {
        1 if stamp.mtime_nanos < 1_000_000_000 => Ok(Some(stamp)),
        0 if stamp
            == (FileStamp {
                len: 0,
                mtime_secs: 0,
                mtime_nanos: 0,
            }) =>
        {
            Ok(None)
        }
        _ => Err(ResumeError::BadFileRecord { index }),
    }
}

/// Reads fixed-size fields from a slice whose length was checked beforehand.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> &'a [u8] {
        let n = n.min(self.bytes.len());
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        head
    }
    fn u8(&mut self) -> u8 {
        self.take(1).first().copied().unwrap_or(0)
    }
    fn array<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        let head = self.take(N);
        out[..head.len()].copy_from_slice(head);
        out
    }
}

/// Reads and checks the resume file at `path`, reading at most the expected size plus one byte.
pub fn load(path: &Path, expect: &ResumeExpect) -> Result<ResumeData, ResumeError> {
    let io_err = |source| ResumeError::Io {
        path: path.to_path_buf(),
        source,
    };
    let cap = encoded_len(expect.piece_count, expect.file_count);
    let mut bytes = Vec::with_capacity(cap + 1);
    File::open(path)
        .map_err(io_err)?
        .take(cap as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(io_err)?;
    ResumeData::decode(&bytes, expect)
}

/// Writes `data` to `path` atomically (temporary file, fsync, rename, fsync of the folder).
pub fn save(path: &Path, data: &ResumeData) -> Result<(), ResumeError> {
    let io_err = |source| ResumeError::Io {
        path: path.to_path_buf(),
        source,
    };
    let folder = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut temp_name = path.file_name().unwrap_or_default().to_os_string();
    temp_name.push(".tmp");
    let temp = folder.join(temp_name);
    let mut file = File::create(&temp).map_err(io_err)?;
    file.write_all(&data.encode()).map_err(io_err)?;
    file.sync_all().map_err(io_err)?;
    drop(file);
    fs::rename(&temp, path).map_err(io_err)?;
    File::open(folder)
        .and_then(|dir| dir.sync_all())
        .map_err(io_err)
}

/// Saves a resume file that can be trusted after any crash: flushes every file written since the
/// last flush, then records `verified` and the files' stamps.
///
/// Protocol: `verified` must be a snapshot of the pieces whose `Hashed { ok: true }` arrived
/// *before* this call. The engine asks for a hash only after all of a piece's writes finished,
/// so those writes are covered by the flush done here. Call it every ~30 s while downloading,
/// when the torrent completes (`clean_shutdown: false`), and once at a clean stop after the last
/// disk job finished (`clean_shutdown: true`); after loading at start, save once with `false` so
/// that a `kill -9` is recognised. Blocking: run it off the async threads.
pub fn checkpoint(
    storage: &TorrentStorage,
    path: &Path,
    info_hash: InfoHash,
    verified: &[bool],
    clean_shutdown: bool,
) -> Result<(), ResumeError> {
    storage.sync().map_err(ResumeError::Flush)?;
    let data = ResumeData {
        info_hash,
        have: verified.to_vec(),
        files: storage.stamps(),
        clean_shutdown,
    };
    save(path, &data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> ResumeData {
        ResumeData {
            info_hash: InfoHash([7; 20]),
            have: vec![
                true, false, true, true, false, false, false, true, true, false, true,
            ],
            files: vec![
                Some(FileStamp {
                    len: 100,
                    mtime_secs: 1_700_000_000,
                    mtime_nanos: 123,
                }),
                None,
                Some(FileStamp {
                    len: 0,
                    mtime_secs: -5,
                    mtime_nanos: 999_999_999,
                }),
            ],
            clean_shutdown: true,
        }
    }

    fn expect_of(data: &ResumeData) -> ResumeExpect {
        ResumeExpect {
            info_hash: data.info_hash,
            piece_count: data.have.len() as u32,
            file_count: data.files.len() as u32,
        }
    }

    #[test]
    fn golden_bytes_of_a_small_file() {
        let data = ResumeData {
            info_hash: InfoHash([0xAB; 20]),
            have: vec![true, false, true],
            files: vec![Some(FileStamp {
                len: 5,
                mtime_secs: 1,
                mtime_nanos: 2,
            })],
            clean_shutdown: false,
        };
        let bytes = data.encode();
        let mut expected = b"SHOALRSM\x00\x01\x00".to_vec();
        expected.extend_from_slice(&[0xAB; 20]);
        expected.extend_from_slice(&[0, 0, 0, 3, 0, 0, 0, 1, 0b1010_0000]);
        expected.extend_from_slice(&[
            1, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 2,
        ]);
        assert_eq!(&bytes[..bytes.len() - 20], &expected[..]);
        assert_eq!(&bytes[bytes.len() - 20..], &Sha1::digest(&expected)[..]);
        assert_eq!(bytes.len(), encoded_len(3, 1));
    }

    #[test]
    fn round_trip() {
        let data = sample();
        assert_eq!(
            ResumeData::decode(&data.encode(), &expect_of(&data)).unwrap(),
            data
        );
    }

    #[test]
    fn truncation_at_every_byte_fails() {
        let data = sample();
        let bytes = data.encode();
        for len in 0..bytes.len() {
            assert!(
                ResumeData::decode(&bytes[..len], &expect_of(&data)).is_err(),
                "truncated to {len}"
            );
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(
            ResumeData::decode(&longer, &expect_of(&data)).is_err(),
            "trailing byte"
        );
    }

    #[test]
    fn every_single_bit_flip_fails() {
        let data = sample();
        let bytes = data.encode();
        for bit in 0..bytes.len() * 8 {
            let mut flipped = bytes.clone();
            flipped[bit / 8] ^= 0x80 >> (bit % 8);
            assert!(
                ResumeData::decode(&flipped, &expect_of(&data)).is_err(),
                "bit {bit}"
            );
        }
    }

    #[test]
    fn another_torrent_or_size_is_refused() {
        let data = sample();
        let bytes = data.encode();
        let mut other = expect_of(&data);
        other.info_hash = InfoHash([8; 20]);
        assert!(matches!(
            ResumeData::decode(&bytes, &other),
            Err(ResumeError::WrongInfoHash { .. })
        ));
        let mut other = expect_of(&data);
        other.piece_count += 1;
        assert!(matches!(
            ResumeData::decode(&bytes, &other),
            Err(ResumeError::WrongPieceCount {
                found: 11,
                expected: 12
            })
        ));
        let mut other = expect_of(&data);
        other.file_count = 2;
        assert!(matches!(
            ResumeData::decode(&bytes, &other),
            Err(ResumeError::WrongFileCount { .. })
        ));
    }

    #[test]
    fn save_is_atomic_and_load_reads_it_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.resume");
        let data = sample();
        let missing = load(&path, &expect_of(&data)).unwrap_err();
        assert!(missing.is_not_found());
        save(&path, &data).unwrap();
        let mut newer = data.clone();
        newer.clean_shutdown = false;
        save(&path, &newer).unwrap();
        assert_eq!(load(&path, &expect_of(&data)).unwrap(), newer);
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(
            names,
            vec![std::ffi::OsString::from("t.resume")],
            "no temporary file left"
        );
        // A huge file is not read past the expected size.
        fs::write(&path, vec![0u8; 10 << 20]).unwrap();
        assert!(matches!(
            load(&path, &expect_of(&data)),
            Err(ResumeError::WrongLength { .. }) | Err(ResumeError::BadMagic)
        ));
    }

    proptest! {
        #[test]
        fn round_trip_any(
            have in prop::collection::vec(any::<bool>(), 1..100),
            files in prop::collection::vec(
                prop::option::of((any::<u64>(), any::<i64>(), 0u32..1_000_000_000)), 0..10),
            clean in any::<bool>(),
            flips in prop::collection::vec(any::<prop::sample::Index>(), 1..4),
        ) {
            let data = ResumeData {
                info_hash: InfoHash([1; 20]),
                have,
                files: files.into_iter().map(|f| f.map(|(len, mtime_secs, mtime_nanos)| FileStamp { len, mtime_secs, mtime_nanos })).collect(),
                clean_shutdown: clean,
            };
            let bytes = data.encode();
            prop_assert_eq!(bytes.len(), encoded_len(data.have.len() as u32, data.files.len() as u32));
            prop_assert_eq!(ResumeData::decode(&bytes, &expect_of(&data)).unwrap(), data.clone());
            let mut corrupted = bytes.clone();
            for flip in flips {
                let bit = flip.index(bytes.len() * 8);
                corrupted[bit / 8] ^= 0x80 >> (bit % 8);
            }
            if corrupted != bytes {
                prop_assert!(ResumeData::decode(&corrupted, &expect_of(&data)).is_err());
            }
        }
    }
}

//! Storage with real files in temporary folders: what a user would see on disk.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use bytes::Bytes;
use sha1::{Digest, Sha1};
use shoal_engine::disk::{DiskDone, DiskFailureKind, DiskRequest};
use shoal_engine::PeerKey;
use shoal_proto::{Geometry, InfoHash, PieceIndex};

use super::*;

const PIECE: u64 = 16384;

fn file(path: &str, length: u64) -> StorageFile {
    StorageFile {
        path: PathBuf::from(path),
        length,
        padding: false,
    }
}

fn pad(length: u64) -> StorageFile {
    StorageFile {
        path: PathBuf::from(".pad/x"),
        length,
        padding: true,
    }
}

/// A torrent's content (padding bytes are zero) and storage for it under `root`.
struct Fixture {
    content: Vec<u8>,
    storage: TorrentStorage,
}

fn content_for(files: &[StorageFile]) -> Vec<u8> {
    let mut content = Vec::new();
    for (i, f) in files.iter().enumerate() {
        content.extend((0..f.length).map(|b| {
            if f.padding {
                0
            } else {
                (b as u8) ^ ((i as u8).wrapping_mul(37).wrapping_add(1))
            }
        }));
    }
    content
}

fn fixture(root: &Path, files: Vec<StorageFile>) -> Fixture {
    fixture_with_pieces_of(root, files, PIECE)
}

fn fixture_with_pieces_of(root: &Path, files: Vec<StorageFile>, piece: u64) -> Fixture {
    let content = content_for(&files);
    let geometry = Geometry::new(content.len() as u64, piece).unwrap();
    let hashes = content
        .chunks(piece as usize)
        .map(|c| Sha1::digest(c).into())
        .collect();
    let layout = FileLayout::new(files).unwrap();
    let storage =
        TorrentStorage::new(root, layout, geometry, hashes, StorageOptions::default()).unwrap();
    Fixture { content, storage }
}

fn multi_file() -> Vec<StorageFile> {
    vec![
        file("album/01.flac", 20_000),
        file("album/empty.txt", 0),
        pad(PIECE * 2 - 20_000),
        file("album/02.flac", 10_000),
        file("album/deep/cover.jpg", 30_000),
    ]
}

fn write_all_blocks(f: &Fixture) {
    let g = *f.storage.geometry();
    for piece in g.pieces() {
        for block in g.blocks(piece) {
            let start = g.block_offset(block) as usize;
            f.storage
                .write_block(block, &f.content[start..start + block.len() as usize])
                .unwrap();
        }
    }
}

fn all_pieces(g: &Geometry) -> Vec<PieceIndex> {
    g.pieces().collect()
}

fn no_progress(_: CheckProgress) {}

#[test]
fn multi_file_write_read_hash_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let f = fixture(dir.path(), multi_file());
    assert_eq!(
        fs::metadata(dir.path().join("album/empty.txt"))
            .unwrap()
            .len(),
        0,
        "empty file created"
    );
    write_all_blocks(&f);
    let g = *f.storage.geometry();
    let mut buf = Vec::new();
    for piece in all_pieces(&g) {
        assert!(
            f.storage.hash_piece(piece, &mut buf).unwrap(),
            "piece {piece:?}"
        );
    }
    // Bytes on disk are exactly each file's part of the stream; padding never hits the disk.
    assert_eq!(
        fs::read(dir.path().join("album/01.flac")).unwrap(),
        f.content[..20_000]
    );
    let second = 2 * PIECE as usize;
    assert_eq!(
        fs::read(dir.path().join("album/02.flac")).unwrap(),
        f.content[second..second + 10_000]
    );
    assert_eq!(
        fs::read(dir.path().join("album/deep/cover.jpg")).unwrap(),
        f.content[second + 10_000..]
    );
    assert!(!dir.path().join(".pad").exists());
    // A block read across a file boundary and the padding.
    let block = g.checked_block(1, 0, 16384).unwrap();
    assert_eq!(
        f.storage.read_block(block).unwrap(),
        f.content[PIECE as usize..2 * PIECE as usize]
    );
}

#[test]
fn a_corrupt_block_fails_its_piece() {
    let dir = tempfile::tempdir().unwrap();
    let f = fixture(dir.path(), vec![file("a", 3 * PIECE)]);
    write_all_blocks(&f);
    let g = *f.storage.geometry();
    let block = g.block(g.piece(1).unwrap(), 0).unwrap();
    f.storage.write_block(block, &vec![0xEE; 16384]).unwrap();
    let mut buf = Vec::new();
    assert!(f.storage.hash_piece(g.piece(0).unwrap(), &mut buf).unwrap());
    assert!(!f.storage.hash_piece(g.piece(1).unwrap(), &mut buf).unwrap());
}

#[test]
fn non_zero_padding_fails_the_piece_without_touching_disk() {
    let dir = tempfile::tempdir().unwrap();
    let f = fixture(
        dir.path(),
        vec![file("a", 100), pad(PIECE - 100), file("b", PIECE)],
    );
    write_all_blocks(&f);
    let g = *f.storage.geometry();
    let first = g.piece(0).unwrap();
    let mut buf = Vec::new();
    assert!(f.storage.hash_piece(first, &mut buf).unwrap());
    let mut bad = f.content[..PIECE as usize].to_vec();
    bad[200] = 1; // inside the padding
    f.storage
        .write_block(g.block(first, 0).unwrap(), &bad)
        .unwrap();
    assert!(
        !f.storage.hash_piece(first, &mut buf).unwrap(),
        "tainted by a peer's padding bytes"
    );
    // Rewritten correctly, it passes again; the other piece was never affected.
    f.storage
        .write_block(g.block(first, 0).unwrap(), &f.content[..PIECE as usize])
        .unwrap();
    assert!(f.storage.hash_piece(first, &mut buf).unwrap());
    assert!(f.storage.hash_piece(g.piece(1).unwrap(), &mut buf).unwrap());
}

#[test]
fn files_are_preallocated_sparse_and_cut_to_size() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("a"), vec![1u8; 50_000]).unwrap(); // longer than the torrent's
    let f = fixture(dir.path(), vec![file("a", 20_000), file("b", 20_000)]);
    let g = *f.storage.geometry();
    f.storage
        .write_block(
            g.block(g.piece(0).unwrap(), 0).unwrap(),
            &f.content[..16384],
        )
        .unwrap();
    assert_eq!(fs::metadata(dir.path().join("a")).unwrap().len(), 20_000);
    assert!(!dir.path().join("b").exists(), "not touched yet");
    let last = g.block(g.last_piece(), 0).unwrap();
    let start = g.block_offset(last) as usize;
    f.storage.write_block(last, &f.content[start..]).unwrap();
    assert_eq!(fs::metadata(dir.path().join("b")).unwrap().len(), 20_000);
}

#[test]
fn reading_removed_or_short_files_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let f = fixture(dir.path(), vec![file("sub/a", 2 * PIECE)]);
    write_all_blocks(&f);
    let g = *f.storage.geometry();
    let block = g.block(g.piece(1).unwrap(), 0).unwrap();
    let reopened = fixture(dir.path(), vec![file("sub/a", 2 * PIECE)]); // no cached handle
    fs::OpenOptions::new()
        .write(true)
        .open(dir.path().join("sub/a"))
        .unwrap()
        .set_len(100)
        .unwrap();
    let err = reopened.storage.read_block(block).unwrap_err();
    assert_eq!(err.failure_kind(), DiskFailureKind::Missing, "{err}");
    fs::remove_dir_all(dir.path().join("sub")).unwrap();
    let fresh = {
        let layout = FileLayout::new(vec![file("sub/a", 2 * PIECE)]).unwrap();
        TorrentStorage::new(
            dir.path(),
            layout,
            g,
            vec![[0; 20]; 2],
            StorageOptions::default(),
        )
        .unwrap()
    };
    let err = fresh.read_block(block).unwrap_err();
    assert_eq!(err.failure_kind(), DiskFailureKind::Missing, "{err}");
    assert!(!dir.path().join("sub").exists(), "a read creates nothing");
}

#[test]
fn a_symlink_in_the_folder_cannot_lead_a_write_outside() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("dl");
    let outside = tmp.path().join("outside");
    fs::create_dir_all(&root).unwrap();
    fs::create_dir_all(&outside).unwrap();
    std::os::unix::fs::symlink(&outside, root.join("album")).unwrap();
    let f = fixture(&root, vec![file("x", 10), file("album/track", PIECE)]);
    let g = *f.storage.geometry();
    let err = f.storage.write_block(
        g.block(g.piece(0).unwrap(), 0).unwrap(),
        &f.content[..16384],
    );
    assert!(
        matches!(err, Err(StorageError::OutsideFolder { .. })),
        "{err:?}"
    );
    assert_eq!(
        fs::read_dir(&outside).unwrap().count(),
        0,
        "nothing written outside"
    );
}

#[test]
fn the_handle_cache_stays_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let files: Vec<_> = (0..20).map(|i| file(&format!("f{i}"), 1000)).collect();
    let content = content_for(&files);
    let geometry = Geometry::new(content.len() as u64, PIECE).unwrap();
    let hashes = content
        .chunks(PIECE as usize)
        .map(|c| Sha1::digest(c).into())
        .collect();
    let layout = FileLayout::new(files).unwrap();
    let options = StorageOptions { max_open_files: 4 };
    let storage = TorrentStorage::new(dir.path(), layout, geometry, hashes, options).unwrap();
    storage.write_at(0, &content).unwrap();
    assert!(storage.open_files() <= 4);
    let mut back = vec![0u8; content.len()];
    storage.read_at(0, &mut back).unwrap();
    assert_eq!(back, content);
    assert!(storage.open_files() <= 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pool_runs_requests_and_reports_completions() {
    let dir = tempfile::tempdir().unwrap();
    let f = fixture(dir.path(), multi_file());
    let g = *f.storage.geometry();
    let content = f.content.clone();
    let storage = Arc::new(f.storage);
    let pool = DiskPool::new(DiskPoolConfig {
        threads: 3,
        queue_capacity: 4,
    })
    .unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let handle = pool.handle(Arc::clone(&storage), tx);
    let mut writes = 0;
    for piece in g.pieces() {
        for block in g.blocks(piece) {
            let start = g.block_offset(block) as usize;
            let data = Bytes::copy_from_slice(&content[start..start + block.len() as usize]);
            handle
                .submit(DiskRequest::Write { block, data })
                .await
                .unwrap();
            writes += 1;
        }
    }
    assert!(
        handle.queue_depth() <= 4 + 3,
        "bounded: queued plus running"
    );
    for _ in 0..writes {
        let done = rx.recv().await.unwrap();
        assert!(
            matches!(done, DiskDone::Written { result: Ok(()), .. }),
            "{done:?}"
        );
    }
    for piece in g.pieces() {
        handle.submit(DiskRequest::Hash { piece }).await.unwrap();
    }
    let mut hashed = 0;
    while hashed < g.piece_count() {
        match rx.recv().await.unwrap() {
            DiskDone::Hashed {
                result: Ok(true), ..
            } => hashed += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    let block = g.checked_block(2, 100, 5000).unwrap();
    handle
        .submit(DiskRequest::Read {
            peer: PeerKey(9),
            block,
        })
        .await
        .unwrap();
    let start = g.block_offset(block) as usize;
    match rx.recv().await.unwrap() {
        DiskDone::Read {
            peer: PeerKey(9),
            result: Ok(data),
            ..
        } => assert_eq!(data, content[start..start + 5000]),
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(handle.queue_depth(), 0);
    drop(handle);
    tokio::task::spawn_blocking(move || pool.shutdown())
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_hands_the_request_back_or_waits() {
    let dir = tempfile::tempdir().unwrap();
    let f = fixture(dir.path(), vec![file("a", 4 * PIECE)]);
    let g = *f.storage.geometry();
    let pool = DiskPool::stalled_for_test(2);
    let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
    let handle = pool.handle(Arc::new(f.storage), tx);
    let piece = |n| g.piece(n).unwrap();
    handle
        .try_submit(DiskRequest::Hash { piece: piece(0) })
        .unwrap();
    handle
        .submit(DiskRequest::Hash { piece: piece(1) })
        .await
        .unwrap();
    match handle.try_submit(DiskRequest::Hash { piece: piece(2) }) {
        Err(SubmitError::Full(DiskRequest::Hash { piece: back })) => assert_eq!(back, piece(2)),
        other => panic!("{other:?}"),
    }
    assert_eq!(pool.queue_depth(), 2, "the refused request is not counted");
    let waiting = handle.submit(DiskRequest::Hash { piece: piece(3) });
    let timed_out = tokio::time::timeout(std::time::Duration::from_millis(50), waiting).await;
    assert!(timed_out.is_err(), "submit waits while the queue is full");
    assert_eq!(handle.queue_depth(), 2, "a cancelled submit queued nothing");
}

#[test]
fn initial_check_finds_present_pieces_only() {
    let dir = tempfile::tempdir().unwrap();
    let f = fixture(dir.path(), multi_file());
    write_all_blocks(&f);
    fs::remove_file(dir.path().join("album/deep/cover.jpg")).unwrap();
    let g = *f.storage.geometry();
    // Corrupt piece 0 on disk.
    let first = fs::OpenOptions::new()
        .write(true)
        .open(dir.path().join("album/01.flac"))
        .unwrap();
    std::os::unix::fs::FileExt::write_all_at(&first, &[0xFF; 10], 5).unwrap();
    let reports = std::sync::Mutex::new(Vec::new());
    let progress = |p: CheckProgress| reports.lock().unwrap().push(p);
    let have = check_existing(&f.storage, 2, &progress, &AtomicBool::new(false)).unwrap();
    // Piece 0: corrupt. Piece 1: rest of 01.flac + padding, intact. Pieces 2+: need cover.jpg
    // except none fits wholly in 02.flac (10 000 bytes < a piece).
    let expected: Vec<bool> = g.pieces().map(|p| p.get() == 1).collect();
    assert_eq!(have, expected);
    let reports = reports.into_inner().unwrap();
    assert_eq!(reports.len(), g.piece_count() as usize);
    assert!(reports
        .iter()
        .any(|p| p.done == g.piece_count() && p.valid == 1));
}

#[test]
fn a_cancelled_check_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let f = fixture(dir.path(), vec![file("a", 8 * PIECE)]);
    let err = check_existing(&f.storage, 2, &no_progress, &AtomicBool::new(true)).unwrap_err();
    assert_eq!(err, CheckError::Cancelled { done: 0, total: 8 });
}

fn info_hash() -> InfoHash {
    InfoHash([0x42; 20])
}

/// Downloads everything, saves a resume file and returns its path.
fn downloaded_with_resume(root: &Path, files: Vec<StorageFile>, clean: bool) -> (Fixture, PathBuf) {
    let f = fixture(root, files);
    write_all_blocks(&f);
    let g = *f.storage.geometry();
    let path = root.join("torrent.resume");
    checkpoint(
        &f.storage,
        &path,
        info_hash(),
        &vec![true; g.piece_count() as usize],
        clean,
    )
    .unwrap();
    (f, path)
}

fn restored(f: &Fixture, path: &Path) -> Restored {
    restore(
        &f.storage,
        path,
        info_hash(),
        2,
        &no_progress,
        &AtomicBool::new(false),
    )
    .unwrap()
}

#[test]
fn after_a_clean_stop_the_resume_file_is_trusted_without_hashing() {
    let dir = tempfile::tempdir().unwrap();
    let (f, path) = downloaded_with_resume(dir.path(), multi_file(), true);
    let r = restored(&f, &path);
    assert!(r.have.iter().all(|&h| h));
    assert_eq!(
        (r.trusted, r.hashed),
        (f.storage.geometry().piece_count(), 0)
    );
    assert!(matches!(
        r.source,
        RestoreSource::Resume {
            clean_shutdown: true,
            changed_files: 0
        }
    ));
}

#[test]
fn a_file_changed_while_stopped_is_rechecked_before_use() {
    let dir = tempfile::tempdir().unwrap();
    let (f, path) = downloaded_with_resume(
        dir.path(),
        vec![file("a", 2 * PIECE), file("b", PIECE)],
        true,
    );
    // Same size, new content and mtime.
    std::thread::sleep(std::time::Duration::from_millis(20));
    fs::write(dir.path().join("b"), vec![9u8; PIECE as usize]).unwrap();
    let r = restored(&f, &path);
    assert_eq!(
        r.have,
        vec![true, true, false],
        "the changed file's piece failed its re-check"
    );
    assert_eq!((r.trusted, r.hashed), (2, 1));
}

#[test]
fn after_kill_9_only_flushed_pieces_count_and_later_ones_are_rechecked() {
    let dir = tempfile::tempdir().unwrap();
    let f = fixture(dir.path(), vec![file("a", 4 * PIECE)]);
    let g = *f.storage.geometry();
    let path = dir.path().join("torrent.resume");
    // Pieces 0 and 1 verified and saved while running ...
    for piece in [0, 1] {
        let block = g.block(g.piece(piece).unwrap(), 0).unwrap();
        let start = g.block_offset(block) as usize;
        f.storage
            .write_block(block, &f.content[start..start + 16384])
            .unwrap();
    }
    checkpoint(
        &f.storage,
        &path,
        info_hash(),
        &[true, true, false, false],
        false,
    )
    .unwrap();
    // ... then piece 2 written (and verified) after the last save, then `kill -9`.
    std::thread::sleep(std::time::Duration::from_millis(20));
    let block = g.block(g.piece(2).unwrap(), 0).unwrap();
    let start = g.block_offset(block) as usize;
    f.storage
        .write_block(block, &f.content[start..start + 16384])
        .unwrap();
    let r = restored(&f, &path);
    assert_eq!(r.have, vec![true, true, true, false]);
    assert_eq!(
        (r.trusted, r.hashed),
        (2, 2),
        "saved pieces trusted, the others re-checked"
    );
    assert!(matches!(
        r.source,
        RestoreSource::Resume {
            clean_shutdown: false,
            changed_files: 1
        }
    ));
}

#[test]
fn after_kill_9_a_file_cut_short_is_fully_rechecked() {
    let dir = tempfile::tempdir().unwrap();
    let (f, path) = downloaded_with_resume(dir.path(), vec![file("a", 3 * PIECE)], false);
    fs::OpenOptions::new()
        .write(true)
        .open(dir.path().join("a"))
        .unwrap()
        .set_len(PIECE + 5)
        .unwrap();
    let r = restored(&f, &path);
    assert_eq!(r.have, vec![true, false, false]);
    assert_eq!(r.trusted, 0);
}

#[test]
fn a_damaged_resume_file_falls_back_to_a_full_check() {
    let dir = tempfile::tempdir().unwrap();
    let (f, path) = downloaded_with_resume(dir.path(), vec![file("a", 3 * PIECE)], true);
    let mut bytes = fs::read(&path).unwrap();
    bytes[40] ^= 1;
    fs::write(&path, &bytes).unwrap();
    let r = restored(&f, &path);
    assert_eq!(r.have, vec![true; 3], "found again by hashing");
    assert_eq!(r.trusted, 0);
    assert!(matches!(
        r.source,
        RestoreSource::FullCheck {
            reason: Some(ResumeError::ChecksumMismatch)
        }
    ));
    fs::write(&path, &bytes[..30]).unwrap();
    let r = restored(&f, &path);
    assert!(matches!(
        r.source,
        RestoreSource::FullCheck {
            reason: Some(ResumeError::WrongLength { .. })
        }
    ));
    fs::remove_file(&path).unwrap();
    let r = restored(&f, &path);
    assert!(matches!(
        r.source,
        RestoreSource::FullCheck { reason: None }
    ));
    assert_eq!(r.have, vec![true; 3]);
}

#[test]
fn a_resume_file_of_another_torrent_is_not_used() {
    let dir = tempfile::tempdir().unwrap();
    let (f, path) = downloaded_with_resume(dir.path(), vec![file("a", 3 * PIECE)], true);
    // Replace the data with something else entirely: nothing may be trusted.
    fs::write(dir.path().join("a"), vec![0u8; 3 * PIECE as usize]).unwrap();
    let r = restore(
        &f.storage,
        &path,
        InfoHash([1; 20]),
        2,
        &no_progress,
        &AtomicBool::new(false),
    )
    .unwrap();
    assert!(matches!(
        r.source,
        RestoreSource::FullCheck {
            reason: Some(ResumeError::WrongInfoHash { .. })
        }
    ));
    assert_eq!(r.have, vec![false; 3]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkpoint_through_the_handle_is_trusted_at_restart() {
    let dir = tempfile::tempdir().unwrap();
    let f = fixture(dir.path(), vec![file("a", 3 * PIECE)]);
    write_all_blocks(&f);
    let pool = DiskPool::new(DiskPoolConfig::default()).unwrap();
    let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
    let storage = Arc::new(f.storage);
    let handle = pool.handle(Arc::clone(&storage), tx);
    let path = dir.path().join("t.resume");
    handle
        .checkpoint(path.clone(), info_hash(), vec![true, false, true], true)
        .await
        .unwrap();
    let r = restore(
        &storage,
        &path,
        info_hash(),
        1,
        &no_progress,
        &AtomicBool::new(false),
    )
    .unwrap();
    assert_eq!(
        r.have,
        vec![true, false, true],
        "exactly the saved pieces, nothing hashed"
    );
    assert_eq!((r.trusted, r.hashed), (2, 0));
    let bitfield = bitfield_of(&r.have);
    assert_eq!((bitfield.len(), bitfield.count_ones()), (3, 2));
    drop(handle);
    tokio::task::spawn_blocking(move || pool.shutdown())
        .await
        .unwrap();
}

#[test]
fn runs_of_consecutive_blocks_are_written_and_hash_correctly() {
    let dir = tempfile::tempdir().unwrap();
    let f = fixture(
        dir.path(),
        vec![file("a", 3 * PIECE + 100), file("b", 2 * PIECE)],
    );
    let g = *f.storage.geometry();
    let blocks: Vec<(shoal_proto::BlockRef, Bytes)> = g
        .pieces()
        .flat_map(|p| g.blocks(p).collect::<Vec<_>>())
        .map(|b| {
            let start = g.block_offset(b) as usize;
            let data = &f.content[start..start + b.len() as usize];
            (b, Bytes::copy_from_slice(data))
        })
        .collect();
    // A run inside "a" (one vectored write), then one that crosses into "b" (block by block).
    let mut dones = f.storage.execute_writes(&blocks[..3]);
    dones.extend(f.storage.execute_writes(&blocks[3..]));
    assert_eq!(dones.len(), blocks.len());
    for (done, (block, _)) in dones.iter().zip(&blocks) {
        assert!(
            matches!(done, DiskDone::Written { block: b, result: Ok(()) } if b == block),
            "{done:?}"
        );
    }
    let mut buf = Vec::new();
    for piece in g.pieces() {
        assert!(f.storage.hash_written_piece(piece, &mut buf).unwrap());
        assert!(
            f.storage.hash_piece(piece, &mut buf).unwrap(),
            "and on disk"
        );
    }
    let a_len = (3 * PIECE + 100) as usize;
    assert_eq!(fs::read(dir.path().join("a")).unwrap(), f.content[..a_len]);
    assert_eq!(fs::read(dir.path().join("b")).unwrap(), f.content[a_len..]);
}

#[test]
fn large_pieces_hash_from_maps_across_files_padding_and_unaligned_offsets() {
    // 512 KiB pieces: piece 0 spans a.bin, padding and the start of b.bin; piece 1 starts inside
    // b.bin at an offset no map can start at; piece 2 is short enough to be read instead.
    let dir = tempfile::tempdir().unwrap();
    let files = vec![file("a.bin", 300_000), pad(100_000), file("b.bin", 700_001)];
    let f = fixture_with_pieces_of(dir.path(), files, 512 * 1024);
    let a = &f.content[..300_000];
    let b = &f.content[400_000..];
    fs::write(dir.path().join("a.bin"), a).unwrap();
    fs::write(dir.path().join("b.bin"), b).unwrap();
    let check = || check_existing(&f.storage, 2, &no_progress, &AtomicBool::new(false)).unwrap();
    assert_eq!(check(), vec![true, true, true]);

    let mut changed = b.to_vec();
    changed[600_000] ^= 1;
    fs::write(dir.path().join("b.bin"), &changed).unwrap();
    assert_eq!(
        check(),
        vec![true, false, true],
        "one flipped byte fails its piece only"
    );

    // A file cut short under the hash is a read error, as it is for a positional read.
    fs::write(dir.path().join("b.bin"), &b[..500_000]).unwrap();
    let mut buf = Vec::new();
    let piece = f.storage.geometry().piece(1).unwrap();
    assert!(f.storage.hash_piece(piece, &mut buf).is_err());
    assert!(f
        .storage
        .hash_piece(f.storage.geometry().piece(0).unwrap(), &mut buf)
        .unwrap());
}

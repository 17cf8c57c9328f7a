use std::fs;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use sha1::{Digest, Sha1};
use shoal_proto::bencode::decode;

use super::*;

fn write(root: &Path, rel: &str, len: usize, seed: u8) {
    let path = root.join(rel);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    let data: Vec<u8> = (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect();
    fs::write(path, data).unwrap();
}

/// Piece hashes computed the obvious way: concatenate every file, cut, hash.
fn reference_hashes(content: &Content, piece_len: u32) -> Vec<[u8; 20]> {
    let mut all = Vec::new();
    for file in content.files() {
        all.extend(fs::read(&file.disk_path).unwrap());
    }
    all.chunks(piece_len as usize)
        .map(|c| Sha1::digest(c).into())
        .collect()
}

fn paths(content: &Content) -> Vec<String> {
    content.files().iter().map(|f| f.path.join("/")).collect()
}

#[test]
fn walk_is_sorted_depth_first_and_keeps_hidden_and_empty_files() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("tree");
    for rel in ["b/z", "b/a/x", "a-c", ".hidden", "B", "empty", "b/a/.dot"] {
        write(&root, rel, if rel == "empty" { 0 } else { 10 }, 1);
    }
    fs::create_dir_all(root.join("empty-dir")).unwrap();
    let content = Content::scan(&root).unwrap();
    assert_eq!(content.name(), "tree");
    assert!(!content.is_single_file());
    assert_eq!(
        paths(&content),
        [".hidden", "B", "a-c", "b/a/.dot", "b/a/x", "b/z", "empty"]
    );
    assert_eq!(content.total_len(), 60);
}

#[test]
fn single_file_and_dot_paths_are_named_after_the_file_or_folder() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "one.bin", 5, 0);
    let content = Content::scan(&dir.path().join("one.bin")).unwrap();
    assert!(content.is_single_file());
    assert_eq!(content.name(), "one.bin");
    assert_eq!(paths(&content), [""]);
    let sub = dir.path().join("folder");
    write(&sub, "f", 1, 0);
    let content = Content::scan(&sub.join(".")).unwrap();
    assert_eq!(content.name(), "folder");
}

#[test]
fn symlinks_are_followed_and_loops_and_dangling_links_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    write(&root, "real/f", 3, 0);
    write(dir.path(), "outside", 4, 0);
    std::os::unix::fs::symlink(dir.path().join("outside"), root.join("link-to-file")).unwrap();
    std::os::unix::fs::symlink(root.join("real"), root.join("link-to-dir")).unwrap();
    let content = Content::scan(&root).unwrap();
    assert_eq!(paths(&content), ["link-to-dir/f", "link-to-file", "real/f"]);

    std::os::unix::fs::symlink(&root, root.join("real/loop")).unwrap();
    assert!(matches!(
        Content::scan(&root),
        Err(CreateError::SymlinkLoop { .. })
    ));
    fs::remove_file(root.join("real/loop")).unwrap();

    std::os::unix::fs::symlink(dir.path().join("missing"), root.join("dangling")).unwrap();
    match Content::scan(&root) {
        Err(CreateError::Io { path, .. }) => assert!(path.ends_with("dangling")),
        other => panic!("expected an IO error naming the link, got {other:?}"),
    }
}

#[test]
fn fifos_empty_folders_and_empty_content_are_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty");
    fs::create_dir_all(empty.join("sub")).unwrap();
    assert!(matches!(
        Content::scan(&empty),
        Err(CreateError::NoFiles { .. })
    ));
    write(&empty, "sub/zero", 0, 0);
    assert!(matches!(
        Content::scan(&empty),
        Err(CreateError::EmptyContent { .. })
    ));
    let missing = Content::scan(&dir.path().join("nope"));
    assert!(matches!(missing, Err(CreateError::Io { .. })));

    let fifo_dir = dir.path().join("fifo");
    fs::create_dir_all(&fifo_dir).unwrap();
    let status = std::process::Command::new("mkfifo")
        .arg(fifo_dir.join("pipe"))
        .status()
        .unwrap();
    assert!(status.success());
    write(&fifo_dir, "file", 1, 0);
    match Content::scan(&fifo_dir) {
        Err(CreateError::UnsupportedFileType { path }) => assert!(path.ends_with("pipe")),
        other => panic!("expected UnsupportedFileType, got {other:?}"),
    }
}

#[test]
fn parallel_hashes_match_a_sequential_reference_across_file_boundaries() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("data");
    let k = 1024;
    // Sizes chosen to put piece boundaries inside files, at file edges, and around empty files.
    let sizes = [
        16 * k,
        0,
        16 * k + 1,
        1,
        0,
        40 * k - 3,
        7,
        300 * k,
        5 * 1024 * k + 11,
    ];
    for (i, len) in sizes.iter().enumerate() {
        write(&root, &format!("d{}/f{i:02}", i % 3), *len, i as u8);
    }
    let content = Content::scan(&root).unwrap();
    for piece_len in [16 * 1024, 32 * 1024, 256 * 1024, 1 << 20, 16 << 20] {
        let hashed = hash_content(content.clone(), piece_len, &|_| {}).unwrap();
        assert_eq!(
            hashed.piece_hashes,
            reference_hashes(&content, piece_len),
            "piece {piece_len}"
        );
    }
}

#[test]
fn exactly_one_piece_and_one_byte_more() {
    let dir = tempfile::tempdir().unwrap();
    for (len, pieces) in [(16384, 1), (16385, 2), (1, 1)] {
        let path = dir.path().join(format!("f{len}"));
        write(dir.path(), &format!("f{len}"), len, 9);
        let content = Content::scan(&path).unwrap();
        let hashed = hash_content(content.clone(), 16384, &|_| {}).unwrap();
        assert_eq!(hashed.piece_hashes.len(), pieces);
        assert_eq!(hashed.piece_hashes, reference_hashes(&content, 16384));
    }
}

#[test]
fn progress_sums_to_the_total_length() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "big", 9 * 1024 * 1024 + 5, 3);
    let content = Content::scan(&dir.path().join("big")).unwrap();
    let seen = AtomicU64::new(0);
    let calls = AtomicU64::new(0);
    hash_content(content, 16384, &|n| {
        seen.fetch_add(n, Ordering::Relaxed);
        calls.fetch_add(1, Ordering::Relaxed);
    })
    .unwrap();
    assert_eq!(seen.into_inner(), 9 * 1024 * 1024 + 5);
    assert!(
        calls.into_inner() >= 3,
        "progress should be reported more than once"
    );
}

#[test]
fn a_file_shrunk_after_the_walk_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "f", 100_000, 0);
    let content = Content::scan(&dir.path().join("f")).unwrap();
    fs::write(dir.path().join("f"), b"short").unwrap();
    match hash_content(content, 16384, &|_| {}) {
        Err(CreateError::FileChanged { expected_len, .. }) => assert_eq!(expected_len, 100_000),
        other => panic!("expected FileChanged, got {other:?}"),
    }
}

#[test]
fn created_torrent_is_deterministic_and_carries_the_options() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("pack");
    write(&root, "a/one", 20_000, 1);
    write(&root, "two", 3, 2);
    let options = CreateOptions {
        piece_len: Some(16384),
        trackers: vec![
            vec!["udp://a:1/announce".into(), "http://b/announce".into()],
            vec!["http://c/".into()],
        ],
        web_seeds: vec!["http://seed/".into()],
        private: true,
        comment: Some("hello".into()),
        created_by: Some("shoal/test".into()),
        creation_date: None,
    };
    let first = create_torrent(&root, &options, &|_| {}).unwrap();
    let second = create_torrent(&root, &options, &|_| {}).unwrap();
    assert_eq!(first.bytes, second.bytes);
    assert_eq!(first.piece_count, 2);
    assert_eq!(first.total_len, 20_003);

    let top = decode(&first.bytes).unwrap();
    let top = top.as_dict().unwrap();
    let info = top.get(b"info").unwrap();
    assert_eq!(InfoHash::of_info_bytes(info.raw()), first.info_hash);
    let parsed = shoal_proto::metainfo::Metainfo::from_bytes(&first.bytes).unwrap();
    assert_eq!(parsed.info_hash(), first.info_hash);
    assert_eq!(parsed.info.piece_hashes().len(), 2);
    assert!(parsed.info.is_private());
    let text = String::from_utf8_lossy(&first.bytes);
    for needle in [
        "8:announce18:udp://a:1/announce",
        "13:announce-listll18:udp://a:1/announce17:http://b/announceel9:http://c/ee",
        "7:comment5:hello",
        "10:created by10:shoal/test",
        "5:filesld6:lengthi20000e4:pathl1:a3:oneeed6:lengthi3e4:pathl3:twoeee",
        "4:name4:pack",
        "12:piece lengthi16384e",
        "7:privatei1e",
        "8:url-list12:http://seed/",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in {text:?}");
    }
    assert!(!text.contains("creation date"));

    let dated = CreateOptions {
        creation_date: Some(1_700_000_000),
        ..options
    };
    let dated = create_torrent(&root, &dated, &|_| {}).unwrap();
    assert!(String::from_utf8_lossy(&dated.bytes).contains("13:creation datei1700000000e"));
    assert_eq!(dated.info_hash, first.info_hash);
}

#[test]
fn bad_piece_length_is_refused_before_hashing() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "f", 10, 0);
    let options = CreateOptions {
        piece_len: Some(3000),
        ..CreateOptions::default()
    };
    let result = create_torrent(&dir.path().join("f"), &options, &|_| panic!("hashed"));
    assert!(matches!(
        result,
        Err(CreateError::BadPieceLength {
            piece_len: 3000,
            ..
        })
    ));
}

#[test]
fn a_mapped_file_shrunk_after_the_walk_is_reported_not_a_crash() {
    // Large enough to be hashed through a map: the pages past the new end would raise SIGBUS
    // without the guard in `create::mapped`.
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "big", 4 * 1024 * 1024, 1);
    let content = Content::scan(&dir.path().join("big")).unwrap();
    fs::OpenOptions::new()
        .write(true)
        .open(dir.path().join("big"))
        .unwrap()
        .set_len(1024 * 1024 + 3)
        .unwrap();
    match hash_content(content, 256 * 1024, &|_| {}) {
        Err(CreateError::FileChanged { expected_len, .. }) => {
            assert_eq!(expected_len, 4 * 1024 * 1024)
        }
        other => panic!("expected FileChanged, got {other:?}"),
    }
}

#[test]
fn pieces_that_cross_map_windows_hash_like_a_plain_read() {
    // A 5-byte file first shifts every piece of the large file off the 16 MiB map windows.
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("data");
    write(&root, "a", 5, 1);
    write(&root, "b", 40 * 1024 * 1024 + 3, 2);
    let content = Content::scan(&root).unwrap();
    let hashed = hash_content(content.clone(), 1 << 20, &|_| {}).unwrap();
    assert_eq!(hashed.piece_hashes, reference_hashes(&content, 1 << 20));
}

//! `shoal create` and `shoal info` against real clients: mktorrent, transmission-create /
//! transmission-show and libtorrent (Python, `tests/interop/create_lt.py`).
//!
//! These tests need the tools CI installs; without them they fail naming the missing tool,
//! unless `SHOAL_SKIP_INTEROP=1` is set.

use crate::common;

use std::path::Path;

use common::*;

/// Torrents made by the three other tools load in shoal with the infohash the tools report.
#[test]
fn foreign_torrents_load_in_shoal_with_the_same_infohash() {
    if !interop_enabled() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let tree = make_tree(dir.path(), "tree");
    let single = write_file(dir.path(), "single.bin", 100_001, 11);
    let out = dir.path().join("out");
    std::fs::create_dir_all(&out).unwrap();

    for source in [&tree, &single] {
        let src = source.to_str().unwrap();
        let stem = source.file_name().unwrap().to_str().unwrap();
        let mut made = Vec::new();
        for log2 in [15, 18] {
            let file = out.join(format!("{stem}-mktorrent-{log2}.torrent"));
            let args = [
                "-l",
                &log2.to_string(),
                "-a",
                "http://127.0.0.1:1/announce",
                "-o",
                file.to_str().unwrap(),
                src,
            ];
            run_tool("mktorrent", &args);
            made.push((file, true));
        }
        for kib in ["16", "1024"] {
            let file = out.join(format!("{stem}-transmission-{kib}.torrent"));
            run_tool(
                "transmission-create",
                &["-s", kib, "-o", file.to_str().unwrap(), src],
            );
            made.push((file, true));
        }
        for (label, extra) in [("v1", None), ("hybrid", Some("--hybrid"))] {
            let file = out.join(format!("{stem}-libtorrent-{label}.torrent"));
            let mut args = vec!["make", src, file.to_str().unwrap(), "--piece-size", "16384"];
            args.extend(extra);
            let reported = libtorrent(&args);
            let shoal_view = info_json(dir.path(), &file);
            assert_eq!(
                shoal_view["info_hash"],
                reported["info_hash"],
                "{}",
                file.display()
            );
            // Transmission 3.00 cannot read v1+v2 hybrid torrents; libtorrent is the reference.
            made.push((file, label == "v1"));
        }
        for (file, transmission_reads_it) in made {
            let shoal_view = info_json(dir.path(), &file);
            let lt_view = &libtorrent(&["show", file.to_str().unwrap()])["torrents"][0];
            assert_eq!(
                shoal_view["info_hash"],
                lt_view["info_hash"],
                "{}",
                file.display()
            );
            assert_eq!(
                shoal_view["total_size"],
                lt_view["total_size"],
                "{}",
                file.display()
            );
            assert_eq!(
                shoal_view["piece_count"],
                lt_view["num_pieces"],
                "{}",
                file.display()
            );
            if transmission_reads_it {
                assert_eq!(
                    shoal_view["info_hash"],
                    transmission_hash(&file).as_str(),
                    "{}",
                    file.display()
                );
            }
        }
    }
}

/// Torrents made by `shoal create` load in libtorrent and transmission-show with shoal's
/// infohash, and libtorrent's check of the source data finds every piece complete.
#[test]
fn shoal_torrents_verify_in_libtorrent_and_load_in_transmission() {
    if !interop_enabled() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let tree = make_tree(dir.path(), "tree");
    let single = write_file(dir.path(), "single.bin", 3 * 1024 * 1024 + 7, 12);
    let out = dir.path().join("out");
    std::fs::create_dir_all(&out).unwrap();

    for source in [&tree, &single] {
        for size in ["16K", "256K", "1M", "16M"] {
            let stem = source.file_name().unwrap().to_str().unwrap();
            let file = out.join(format!("{stem}-{size}.torrent"));
            let (src, file_arg) = (source.to_str().unwrap(), file.to_str().unwrap());
            shoal_ok(
                dir.path(),
                &[
                    "create",
                    src,
                    "--no-date",
                    "-p",
                    size,
                    "-t",
                    "udp://127.0.0.1:1/a",
                    "-o",
                    file_arg,
                ],
            );
            let shoal_view = info_json(dir.path(), &file);
            assert_eq!(
                shoal_view["info_hash"],
                transmission_hash(&file).as_str(),
                "{size} {stem}"
            );

            let save_path = source.parent().unwrap().to_str().unwrap();
            let check = libtorrent(&["check", file_arg, save_path]);
            assert_eq!(check["info_hash"], shoal_view["info_hash"], "{size} {stem}");
            assert_eq!(
                check["num_pieces"], shoal_view["piece_count"],
                "{size} {stem}"
            );
            assert_eq!(
                check["pieces_ok"], check["num_pieces"],
                "libtorrent check {size} {stem}: {check}"
            );
        }
    }
}

/// For a single file (where no walk order is involved; libtorrent lists folders in readdir
/// order, shoal sorts), shoal and libtorrent write the same info dictionary: same infohash.
#[test]
fn shoal_and_libtorrent_agree_on_the_infohash_of_the_same_file() {
    if !interop_enabled() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(dir.path(), "same.bin", 70_000, 13);
    let ours = dir.path().join("ours.torrent");
    let theirs = dir.path().join("theirs.torrent");
    let (src, ours_arg) = (file.to_str().unwrap(), ours.to_str().unwrap());
    shoal_ok(
        dir.path(),
        &["create", src, "--no-date", "-p", "32K", "-o", ours_arg],
    );
    let theirs_arg = theirs.to_str().unwrap();
    let reported = libtorrent(&["make", src, theirs_arg, "--piece-size", "32768"]);
    assert_eq!(
        info_json(Path::new("."), &ours)["info_hash"],
        reported["info_hash"]
    );
}

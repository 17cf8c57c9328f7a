//! `shoal create` and `shoal info` as a user runs them: outputs, refusals, exit codes.

use crate::common;

use common::*;

#[test]
fn create_twice_without_date_gives_identical_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let tree = make_tree(dir.path(), "tree");
    let src = tree.to_str().unwrap();
    shoal_ok(
        dir.path(),
        &[
            "create",
            src,
            "--no-date",
            "-t",
            "udp://t.example:1/a",
            "-o",
            "one.torrent",
        ],
    );
    shoal_ok(
        dir.path(),
        &[
            "create",
            src,
            "--no-date",
            "-t",
            "udp://t.example:1/a",
            "-o",
            "two.torrent",
        ],
    );
    let one = std::fs::read(dir.path().join("one.torrent")).unwrap();
    let two = std::fs::read(dir.path().join("two.torrent")).unwrap();
    assert_eq!(one, two);
}

#[test]
fn default_output_is_name_dot_torrent_and_is_never_overwritten_without_force() {
    let dir = tempfile::tempdir().unwrap();
    let tree = make_tree(dir.path(), "tree");
    let src = tree.to_str().unwrap();
    let stdout = shoal_ok(dir.path(), &["create", src]);
    assert!(stdout.contains("created tree.torrent"), "{stdout}");
    let first = std::fs::read(dir.path().join("tree.torrent")).unwrap();

    let again = shoal(dir.path(), &["create", src, "-c", "changed"]);
    assert!(!again.status.success());
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(
        stderr.contains("already exists") && stderr.contains("--force"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read(dir.path().join("tree.torrent")).unwrap(),
        first
    );

    shoal_ok(dir.path(), &["create", src, "-c", "changed", "--force"]);
    let info = info_json(dir.path(), &dir.path().join("tree.torrent"));
    assert_eq!(info["comment"], "changed");
}

#[test]
fn info_json_reports_every_field_of_a_created_torrent() {
    let dir = tempfile::tempdir().unwrap();
    let tree = make_tree(dir.path(), "tree");
    let args = [
        "create",
        tree.to_str().unwrap(),
        "-p",
        "16K",
        "-t",
        "udp://a.example:1/ann",
        "-t",
        "http://b.example/ann,http://c.example/ann",
        "-w",
        "http://seed.example/",
        "--private",
        "-c",
        "note",
        "-o",
        "t.torrent",
    ];
    shoal_ok(dir.path(), &args);
    let info = info_json(dir.path(), &dir.path().join("t.torrent"));
    assert_eq!(info["kind"], "torrent");
    assert_eq!(info["name"], "tree");
    assert_eq!(info["info_hash"].as_str().unwrap().len(), 40);
    assert_eq!(
        info["total_size"],
        40_000 + 16_384 + 16_385 + 1_500_000 + 10 + 1
    );
    assert_eq!(info["piece_size"], 16_384);
    assert_eq!(info["piece_count"], (1_572_780u64).div_ceil(16_384));
    assert_eq!(info["private"], true);
    assert_eq!(
        info["trackers"],
        serde_json::json!([
            ["udp://a.example:1/ann"],
            ["http://b.example/ann", "http://c.example/ann"]
        ])
    );
    assert_eq!(
        info["web_seeds"],
        serde_json::json!(["http://seed.example/"])
    );
    assert_eq!(info["comment"], "note");
    assert!(info["created_by"].as_str().unwrap().starts_with("shoal/"));
    assert!(info["creation_date"].as_i64().unwrap() > 1_600_000_000);
    let paths: Vec<&str> = info["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        paths,
        [
            ".hidden",
            "16k-plus-1.bin",
            "a/b/c/deep.bin",
            "a/empty.txt",
            "big.bin",
            "exactly-16k.bin",
            "z/empty2",
            "z/y/small.txt"
        ]
    );
    let magnet = info["magnet"].as_str().unwrap();
    assert!(magnet.starts_with(&format!(
        "magnet:?xt=urn:btih:{}&dn=tree",
        info["info_hash"].as_str().unwrap()
    )));

    let text = shoal_ok(dir.path(), &["info", "t.torrent"]);
    for needle in [
        "name:          tree",
        "private:       yes",
        "tier 2: http://b.example/ann, http://c.example/ann",
        "a/b/c/deep.bin",
        "comment:       note",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
}

#[test]
fn info_of_a_magnet_shows_what_the_link_holds() {
    let dir = tempfile::tempdir().unwrap();
    let link = "magnet:?xt=urn:btih:c9e15763f722f23e98a29decdfae341b98d53056&dn=Big+Buck&tr=udp%3A%2F%2Ft.example%3A1\
                &tr=wss%3A%2F%2Fw.example&x.pe=127.0.0.1:6881&so=0,2-3";
    let out = shoal_ok(dir.path(), &["info", "--json", link]);
    let info: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(info["kind"], "magnet");
    assert_eq!(
        info["info_hash"],
        "c9e15763f722f23e98a29decdfae341b98d53056"
    );
    assert_eq!(info["name"], "Big Buck");
    assert_eq!(info["trackers"], serde_json::json!([["udp://t.example:1"]]));
    assert_eq!(info["peers"], serde_json::json!(["127.0.0.1:6881"]));
    assert_eq!(info["select_only"], "0,2-3");
    assert_eq!(info["skipped"]["unsupported_trackers"], 1);
    let text = shoal_ok(dir.path(), &["info", link]);
    assert!(
        text.contains("ignored:       1 unsupported trackers"),
        "{text}"
    );
}

/// `shoal info … | head` closes the pipe early: shoal stops quietly, like any Unix filter.
#[test]
fn info_into_a_closed_pipe_is_not_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let link = "magnet:?xt=urn:btih:c9e15763f722f23e98a29decdfae341b98d53056&dn=x";
    let mut child = std::process::Command::new(common::SHOAL)
        .args(["info", link])
        .current_dir(dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn failures_exit_non_zero_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    write_file(dir.path(), "f.bin", 10, 1);
    std::fs::create_dir_all(dir.path().join("empty")).unwrap();
    std::fs::write(dir.path().join("junk.torrent"), b"d4:infoi1ee").unwrap();
    let cases: &[(&[&str], &str)] = &[
        (&["create", "missing"], "missing"),
        (&["create", "empty"], "no files"),
        (&["create", "f.bin", "-p", "3000"], "power of two"),
        (&["create", "f.bin", "-p", "12X"], "unknown unit"),
        (
            &["create", "f.bin", "-t", "wss://x.example/"],
            "http, https or udp",
        ),
        (&["info", "junk.torrent"], "not a usable .torrent"),
        (&["info", "nope.torrent"], "cannot open"),
        (
            &[
                "info",
                "magnet:?xt=urn:btih:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            ],
            "40 hex or 32 base32",
        ),
    ];
    for (args, needle) in cases {
        let out = shoal(dir.path(), args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(
            stderr.contains(needle),
            "{args:?}: expected {needle:?} in {stderr:?}"
        );
    }
    assert!(!dir.path().join("f.bin.torrent").exists());
}

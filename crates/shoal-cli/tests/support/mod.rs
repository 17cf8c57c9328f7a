//! The real-client interop harness: starts, drives and checks reference BitTorrent clients
//! (libtorrent, Transmission, aria2, qBittorrent) and trackers (opentracker, a fixed-answer
//! peer-list tracker) on loopback or inside a network namespace, so an interop test is a few lines:
//!
//! ```ignore
//! #[path = "support/mod.rs"]
//! mod support;
//! use support::*;
//!
//! let work = WorkDir::new("lt-to-aria2")?;
//! let content = write_dataset(&work.join("seed"), "data", &[3_000_000, 100_000], 7)?;
//! let torrent = make_torrent(&content, 16 * 1024, &work.join("t.torrent"))?;
//! let seeder = seed(Kind::Libtorrent, &torrent.path, &work.join("seed"), loopback(1))?;
//! let mut leecher = leech(Kind::Aria2, &torrent.path, &work.join("out"), loopback(2), &[seeder.addr()])?;
//! leecher.wait_complete(Duration::from_secs(60))?;
//! assert_same_tree(&content, &work.join("out/data"))?;
//! ```
//!
//! Guarantees: every process started here is killed when its owner drops (seeders, leechers,
//! trackers, then the namespace they ran in); every failure message carries the tail of the logs
//! of the processes involved; a missing tool fails the test with its name unless
//! `SHOAL_SKIP_INTEROP=1` (see [`require_tool`]). When a test fails (panics, or the harness
//! returned an error), every client dropped afterwards prints its logs and work folders are kept;
//! set `SHOAL_KEEP_INTEROP=1` to keep them always.
//!
//! Layout: [`process`] (child processes with log files), [`data`] (data sets, torrents, tree
//! comparison, ports), [`content`] (a file or folder and its torrent), [`netns`], [`trackers`],
//! [`clients`] (the four reference clients), [`inproc`] (shoal as a library in the test
//! process, for its engine events) and [`wire`] (a raw peer-wire client for hostile tests).
#![allow(dead_code, unused_imports)]

pub mod clients;
pub mod content;
pub mod data;
pub mod inproc;
pub mod netns;
pub mod process;
pub mod trackers;
pub mod wire;

pub use clients::{leech, seed, Kind, RefClient, RunningClient, Summary};
pub use content::{Content, Seeded};
pub use data::{
    assert_same_tree, free_port, loopback, make_torrent, tree_digest, write_dataset,
    write_random_file, TorrentFile, WorkDir,
};
pub use inproc::InProcShoal;
pub use netns::Netns;
pub use process::Proc;
pub use trackers::{create_with_tracker, create_with_trackers, OpenTracker, PeerListTracker};

pub use std::time::Duration;

/// Debian's interpreter, the one with `python3-libtorrent` (the pyenv `python3` on PATH has none).
pub const PYTHON: &str = "/usr/bin/python3";

/// The folder holding the Python helpers (`lt.py`, `peer_tracker.py`).
pub fn interop_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/interop")
}

/// The path of one helper script in [`interop_dir`].
pub fn script(name: &str) -> String {
    interop_dir().join(name).to_string_lossy().into_owned()
}

thread_local! {
    static FAILED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Marks the current test as failing, so that clients and work folders dropped afterwards
/// print their logs and keep their files, as they do when the test panics. The harness calls
/// it whenever it returns an error (tests that end with `?` never panic).
pub fn mark_failed() {
    FAILED.with(|f| f.set(true));
}

/// True once the current test panicked or the harness returned an error on this thread.
pub fn test_failed() -> bool {
    std::thread::panicking() || FAILED.with(|f| f.get())
}

/// Marks the test failed (see [`mark_failed`]) when `result` is an error; returns it unchanged.
pub fn track<T>(result: anyhow::Result<T>) -> anyhow::Result<T> {
    if result.is_err() {
        mark_failed();
    }
    result
}

/// For tests of failure paths: returns the error `result` must hold (panicking if it is `Ok`) and
/// clears the failure mark the harness set when it produced that error.
pub fn expected_error<T: std::fmt::Debug>(result: anyhow::Result<T>) -> anyhow::Error {
    let err = result.expect_err("expected the harness to return an error");
    FAILED.with(|f| f.set(false));
    err
}

/// True when the test may skip because `SHOAL_SKIP_INTEROP=1`.
pub fn skip_allowed() -> bool {
    std::env::var("SHOAL_SKIP_INTEROP").is_ok_and(|v| v == "1")
}

/// Returns true when `tool` (a program name looked up on PATH, or an absolute path) exists.
/// When it does not: returns false if `SHOAL_SKIP_INTEROP=1` (the test should `return`, and a
/// line saying so is printed), and otherwise **panics** naming the tool, so a machine without
/// the clients never passes the interop suite silently.
pub fn require_tool(tool: &str) -> bool {
    if tool_exists(tool) {
        return true;
    }
    missing(&format!("`{tool}` is not installed (not found on PATH)"))
}

/// Like [`require_tool`] for libtorrent's Python binding under [`PYTHON`].
pub fn require_libtorrent() -> bool {
    let ok = std::process::Command::new(PYTHON)
        .args(["-c", "import libtorrent"])
        .output()
        .is_ok_and(|o| o.status.success());
    ok || missing(&format!(
        "libtorrent for {PYTHON} is missing (apt-get install python3-libtorrent)"
    ))
}

/// Like [`require_tool`] for network namespaces (`ip netns` needs root).
pub fn require_netns() -> bool {
    if !require_tool("ip") {
        return false;
    }
    let ok = std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
        .is_ok_and(|o| o.status.success());
    let root = std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0");
    (ok && root) || missing("network namespaces need root and `ip netns`")
}

fn missing(what: &str) -> bool {
    if skip_allowed() {
        eprintln!("SKIPPED (SHOAL_SKIP_INTEROP=1): {what}");
        return false;
    }
    panic!("interop test cannot run: {what}. Install it, or set SHOAL_SKIP_INTEROP=1 to skip.");
}

fn tool_exists(tool: &str) -> bool {
    let path = std::path::Path::new(tool);
    if path.is_absolute() {
        return path.is_file();
    }
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(tool).is_file()))
}

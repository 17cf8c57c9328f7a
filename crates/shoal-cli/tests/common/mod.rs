//! Shared helpers for the `shoal` binary's integration tests: running the binary, making
//! deterministic test data, and finding the real clients the interop tests compare against.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub const SHOAL: &str = env!("CARGO_BIN_EXE_shoal");

/// Runs `shoal` with `args` in `cwd`.
pub fn shoal(cwd: &Path, args: &[&str]) -> Output {
    Command::new(SHOAL)
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("run shoal")
}

/// Runs `shoal` and returns its stdout, failing the test with its stderr if it failed.
pub fn shoal_ok(cwd: &Path, args: &[&str]) -> String {
    let out = shoal(cwd, args);
    assert!(
        out.status.success(),
        "shoal {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 stdout")
}

/// `shoal info --json FILE` as parsed JSON.
pub fn info_json(cwd: &Path, torrent: &Path) -> serde_json::Value {
    let text = shoal_ok(
        cwd,
        &["info", "--json", torrent.to_str().expect("utf-8 path")],
    );
    serde_json::from_str(&text).expect("shoal info --json prints JSON")
}

/// Writes `len` deterministic pseudo-random bytes (xorshift seeded by `seed`) to `root/rel`.
pub fn write_file(root: &Path, rel: &str, len: usize, seed: u64) -> PathBuf {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut data = Vec::with_capacity(len);
    while data.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        data.extend_from_slice(&state.to_le_bytes());
    }
    data.truncate(len);
    std::fs::write(&path, data).expect("write test file");
    path
}

/// A multi-file tree with nested folders, empty files, a hidden file, a file of exactly one
/// 16 KiB piece and one of one byte more, and files that put piece boundaries inside files.
pub fn make_tree(parent: &Path, name: &str) -> PathBuf {
    let root = parent.join(name);
    write_file(&root, "a/b/c/deep.bin", 40_000, 1);
    write_file(&root, "a/empty.txt", 0, 2);
    write_file(&root, "exactly-16k.bin", 16_384, 3);
    write_file(&root, "16k-plus-1.bin", 16_385, 4);
    write_file(&root, "big.bin", 1_500_000, 5);
    write_file(&root, ".hidden", 10, 6);
    write_file(&root, "z/empty2", 0, 7);
    write_file(&root, "z/y/small.txt", 1, 8);
    root
}

/// Whether interop tests should run. Missing tools fail the test with a message naming them,
/// unless `SHOAL_SKIP_INTEROP=1` is set; never a silent pass.
pub fn interop_enabled() -> bool {
    if std::env::var("SHOAL_SKIP_INTEROP").as_deref() == Ok("1") {
        eprintln!("SHOAL_SKIP_INTEROP=1: skipping interop test");
        return false;
    }
    for tool in ["mktorrent", "transmission-create", "transmission-show"] {
        assert!(
            find_in_path(tool).is_some(),
            "interop tool `{tool}` is missing from PATH: install it (.ci/install-deps does) \
             or set SHOAL_SKIP_INTEROP=1"
        );
    }
    let libtorrent = Command::new("/usr/bin/python3")
        .args(["-c", "import libtorrent"])
        .output();
    assert!(
        libtorrent.is_ok_and(|out| out.status.success()),
        "libtorrent for /usr/bin/python3 is missing (Debian package python3-libtorrent): install \
         it or set SHOAL_SKIP_INTEROP=1"
    );
    true
}

fn find_in_path(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(tool))
        .find(|p| p.is_file())
}

/// Runs a tool and returns stdout, failing the test with its output when it fails.
pub fn run_tool(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run {program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The repository's `tests/interop/create_lt.py`.
pub fn create_lt_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/interop/create_lt.py")
}

/// Runs `create_lt.py` with `/usr/bin/python3` and parses its JSON line.
pub fn libtorrent(args: &[&str]) -> serde_json::Value {
    let script = create_lt_script();
    let mut full = vec![script.to_str().expect("utf-8 path")];
    full.extend_from_slice(args);
    let out = Command::new("/usr/bin/python3")
        .args(&full)
        .output()
        .expect("run /usr/bin/python3");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "create_lt.py {args:?} failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("create_lt.py printed {stdout:?}: {e}"))
}

/// The infohash `transmission-show` reports for a torrent file.
pub fn transmission_hash(torrent: &Path) -> String {
    let text = run_tool(
        "transmission-show",
        &[torrent.to_str().expect("utf-8 path")],
    );
    text.lines()
        .find_map(|line| line.trim().strip_prefix("Hash: "))
        .unwrap_or_else(|| panic!("no Hash line in transmission-show output:\n{text}"))
        .to_lowercase()
}

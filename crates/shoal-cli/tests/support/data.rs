//! Test data for interop runs: work folders, deterministic random files, torrents made by
//! libtorrent, SHA-256 comparison of two trees, and free loopback ports.
//!
//! Data is a pure function of its seed (xorshift64*), so a failing run can be reproduced byte for
//! byte. Tree comparison hashes every regular file with coreutils' `sha256sum` and reports every
//! missing, extra or different file by its relative path.

use std::collections::{BTreeMap, HashSet};
use std::io::{BufWriter, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;

use anyhow::{bail, ensure, Context, Result};

/// A fresh folder under the system temp dir, removed on drop unless the test failed (then its
/// path is printed; see [`super::test_failed`]) or `SHOAL_KEEP_INTEROP=1`. Made world-readable and traversable, because
/// opentracker and qBittorrent drop privileges or run as other users in some setups.
#[derive(Debug)]
pub struct WorkDir {
    path: PathBuf,
}

impl WorkDir {
    /// Creates `$TMPDIR/shoal-interop-<label>-<pid>-<n>`.
    pub fn new(label: &str) -> Result<WorkDir> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("shoal-interop-{label}-{}-{n}", std::process::id()));
        if path.exists() {
            std::fs::remove_dir_all(&path)?;
        }
        std::fs::create_dir_all(&path).with_context(|| format!("mkdir {}", path.display()))?;
        set_mode(&path, 0o755)?;
        Ok(WorkDir { path })
    }

    /// The folder's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `path().join(rel)`.
    pub fn join(&self, rel: impl AsRef<Path>) -> PathBuf {
        self.path.join(rel)
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        let keep = std::env::var("SHOAL_KEEP_INTEROP").is_ok_and(|v| v == "1");
        if super::test_failed() || keep {
            eprintln!("interop work folder kept: {}", self.path.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

pub(crate) fn set_mode(path: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("chmod {mode:o} {}", path.display()))
}

/// Writes `size` deterministic pseudo-random bytes derived from `seed` to `path` (creating
/// parent folders).
pub fn write_random_file(path: &Path, size: u64, seed: u64) -> Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let file = std::fs::File::create(path).with_context(|| format!("create {}", path.display()))?;
    let mut out = BufWriter::with_capacity(1 << 16, file);
    let mut state = seed.wrapping_add(0x9E37_79B9_7F4A_7C15) | 1;
    let mut left = size;
    while left > 0 {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        let word = state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes();
        let take = left.min(8) as usize;
        out.write_all(&word[..take])?;
        left -= take as u64;
    }
    out.flush()?;
    Ok(())
}

/// Creates the folder `parent/name` holding one file per entry of `sizes` (`file-00.bin`,
/// `sub/file-01.bin`, `file-02.bin`, ...: odd files go in a subfolder so paths are nested), each
/// filled from `seed` and its index. Returns `parent/name`, the torrent's content path.
pub fn write_dataset(parent: &Path, name: &str, sizes: &[u64], seed: u64) -> Result<PathBuf> {
    ensure!(!sizes.is_empty(), "a data set needs at least one file");
    let root = parent.join(name);
    for (i, &size) in sizes.iter().enumerate() {
        let rel = if i % 2 == 1 {
            format!("sub/file-{i:02}.bin")
        } else {
            format!("file-{i:02}.bin")
        };
        write_random_file(&root.join(rel), size, seed.wrapping_mul(1000) + i as u64)?;
    }
    Ok(root)
}

/// A .torrent file made by libtorrent, with what libtorrent reported about it.
#[derive(Debug, Clone)]
pub struct TorrentFile {
    /// Where the .torrent was written.
    pub path: PathBuf,
    /// The v1 infohash, 40 lowercase hex digits.
    pub infohash: String,
    /// Total payload bytes.
    pub bytes: u64,
    /// Number of pieces.
    pub pieces: u64,
    /// The torrent's magnet link (`xt` and `dn` only).
    pub magnet: String,
}

/// Makes a v1 torrent of `content` (file or folder; its last component becomes the torrent's
/// name) with `piece_size`-byte pieces, using `tests/interop/lt.py make-torrent`. No trackers.
pub fn make_torrent(content: &Path, piece_size: u32, out: &Path) -> Result<TorrentFile> {
    let output = Command::new(super::PYTHON)
        .arg(super::script("lt.py"))
        .arg("make-torrent")
        .arg(content)
        .arg("--out")
        .arg(out)
        .arg("--piece-size")
        .arg(piece_size.to_string())
        .output()
        .context("run lt.py make-torrent")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    ensure!(
        output.status.success(),
        "lt.py make-torrent {} failed: {stdout}{}",
        content.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    let json: serde_json::Value = serde_json::from_str(stdout.trim())
        .with_context(|| format!("lt.py make-torrent printed {stdout:?}"))?;
    let text = |k: &str| json[k].as_str().map(str::to_owned);
    let num = |k: &str| json[k].as_u64();
    match (
        text("infohash"),
        num("bytes"),
        num("pieces"),
        text("magnet"),
    ) {
        (Some(infohash), Some(bytes), Some(pieces), Some(magnet)) => Ok(TorrentFile {
            path: out.to_owned(),
            infohash,
            bytes,
            pieces,
            magnet,
        }),
        _ => bail!("lt.py make-torrent printed unexpected JSON: {json}"),
    }
}

/// SHA-256 and size of every regular file under `root` (or of `root` itself if it is a file),
/// keyed by path relative to `root` ("" for a single file).
pub fn tree_digest(root: &Path) -> Result<BTreeMap<String, (u64, String)>> {
    let mut files = Vec::new();
    collect_files(root, root, &mut files)?;
    let mut out = BTreeMap::new();
    for chunk in files.chunks(200) {
        let output = Command::new("sha256sum")
            .arg("--")
            .args(chunk.iter().map(|(_, abs)| abs))
            .output()
            .context("run sha256sum")?;
        ensure!(
            output.status.success(),
            "sha256sum failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let text = String::from_utf8_lossy(&output.stdout);
        for ((rel, abs), line) in chunk.iter().zip(text.lines()) {
            let hash = line
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_owned();
            let size = std::fs::metadata(abs)?.len();
            out.insert(rel.clone(), (size, hash));
        }
    }
    Ok(out)
}

fn collect_files(root: &Path, at: &Path, out: &mut Vec<(String, PathBuf)>) -> Result<()> {
    let meta = std::fs::symlink_metadata(at).with_context(|| format!("stat {}", at.display()))?;
    if meta.is_file() {
        let rel = at.strip_prefix(root).unwrap_or(at);
        out.push((rel.to_string_lossy().into_owned(), at.to_owned()));
    } else if meta.is_dir() {
        let mut entries: Vec<_> = std::fs::read_dir(at)?.collect::<Result<_, _>>()?;
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            collect_files(root, &entry.path(), out)?;
        }
    } else {
        bail!("{} is neither a file nor a folder", at.display());
    }
    Ok(())
}

/// Fails unless `actual` holds exactly the files of `expected` (same relative paths, sizes and
/// SHA-256), naming every difference.
pub fn assert_same_tree(expected: &Path, actual: &Path) -> Result<()> {
    super::track(compare_trees(expected, actual))
}

fn compare_trees(expected: &Path, actual: &Path) -> Result<()> {
    let want = tree_digest(expected)?;
    let got = tree_digest(actual)?;
    let mut problems = Vec::new();
    for (rel, (size, hash)) in &want {
        match got.get(rel) {
            None => problems.push(format!("missing: {rel} ({size} bytes)")),
            Some((s, h)) if s != size || h != hash => problems.push(format!(
                "different: {rel}: expected {size} bytes sha256 {hash}, got {s} bytes sha256 {h}"
            )),
            Some(_) => {}
        }
    }
    for (rel, (size, _)) in &got {
        if !want.contains_key(rel) {
            problems.push(format!("extra: {rel} ({size} bytes)"));
        }
    }
    ensure!(
        problems.is_empty(),
        "{} differs from {}:\n  {}",
        actual.display(),
        expected.display(),
        problems.join("\n  ")
    );
    Ok(())
}

/// `127.0.0.<host>` with a free port (TCP and UDP) on that address.
pub fn loopback(host: u8) -> SocketAddr {
    let ip = Ipv4Addr::new(127, 0, 0, host);
    SocketAddr::V4(SocketAddrV4::new(ip, free_port(ip)))
}

/// A port free for both TCP and UDP on `ip` right now, never handed out twice by this process.
/// (Another process may still take it before the caller binds; the range the kernel picks from
/// makes that rare.)
pub fn free_port(ip: Ipv4Addr) -> u16 {
    static GIVEN: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
    loop {
        let Ok(tcp) = TcpListener::bind((ip, 0)) else {
            continue;
        };
        let Ok(port) = tcp.local_addr().map(|a| a.port()) else {
            continue;
        };
        if UdpSocket::bind((ip, port)).is_err() {
            continue;
        }
        let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
        if given.get_or_insert_with(HashSet::new).insert(port) {
            return port;
        }
    }
}

//! Helpers for the daemon tests: torrents made on the fly, an in-process daemon on 127.0.0.1,
//! and a seeding session to download from.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use sha1::{Digest, Sha1};
use shoal::service::config::DaemonConfig;
use shoal_http::daemon::Daemon;
use shoal_proto::metainfo::{BuilderFile, TorrentBuilder};

/// A torrent's metainfo and where its complete data is.
pub struct Fixture {
    pub metainfo: Vec<u8>,
    pub torrent_file: PathBuf,
    /// Folder that holds the torrent's top folder (seed side).
    pub data_dir: PathBuf,
    pub name: String,
    pub files: Vec<(String, Vec<u8>)>,
}

impl Fixture {
    /// A request that adds this torrent by its metainfo to the default folder, all files wanted.
    pub fn add_request(&self, paused: bool) -> shoal::service::AddRequest {
        shoal::service::AddRequest {
            source: shoal::service::AddSource::Metainfo(self.metainfo.clone()),
            download_dir: None,
            paused,
            unwanted_files: vec![],
        }
    }
}

/// Deterministic bytes.
pub fn bytes(seed: u32, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

/// A multi-file torrent `name/` with files of the given sizes, its data written under `root/seed`.
pub fn fixture(root: &Path, name: &str, sizes: &[usize], piece_len: u32) -> Fixture {
    let data_dir = root.join("seed");
    let files: Vec<(String, Vec<u8>)> = sizes
        .iter()
        .enumerate()
        .map(|(i, &n)| (format!("file{i}.bin"), bytes(i as u32 + 7, n)))
        .collect();
    std::fs::create_dir_all(data_dir.join(name)).unwrap();
    let mut stream = Vec::new();
    for (file, data) in &files {
        std::fs::write(data_dir.join(name).join(file), data).unwrap();
        stream.extend_from_slice(data);
    }
    let hashes = stream
        .chunks(piece_len as usize)
        .map(|c| <[u8; 20]>::from(Sha1::digest(c)))
        .collect();
    let builder_files = files
        .iter()
        .map(|(f, d)| BuilderFile::new(vec![f.clone()], d.len() as u64))
        .collect();
    let metainfo = TorrentBuilder::multi_file(name, builder_files, piece_len, hashes)
        .build()
        .unwrap();
    let torrent_file = root.join(format!("{name}.torrent"));
    std::fs::write(&torrent_file, &metainfo).unwrap();
    Fixture {
        metainfo,
        torrent_file,
        data_dir,
        name: name.to_owned(),
        files,
    }
}

/// A daemon on 127.0.0.1 ports chosen by the system, no DHT, downloads under `root/downloads`.
pub async fn daemon(root: &Path) -> Daemon {
    Daemon::start(daemon_config(root)).await.unwrap()
}

pub fn daemon_config(root: &Path) -> DaemonConfig {
    DaemonConfig {
        http_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        peer_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        state_dir: root.join("state"),
        download_dir: root.join("downloads"),
        dht: false,
        ..DaemonConfig::default()
    }
}

/// A session seeding the fixture (its data checked first).
pub async fn seed(root: &Path, fx: &Fixture) -> (shoal::Session, shoal::TorrentHandle) {
    let config = shoal::SessionConfig {
        listen_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        state_dir: None,
        ..shoal::SessionConfig::default()
    };
    let _ = root;
    let session = shoal::Session::start(config).await.unwrap();
    let add = shoal::AddTorrent {
        metainfo: fx.metainfo.clone(),
        download_dir: fx.data_dir.clone(),
        peers: Vec::new(),
        paused: false,
    };
    let handle = session.add_torrent(add).await.unwrap();
    (session, handle)
}

/// Runs a command to completion, panicking with its output when it fails.
pub fn run(cmd: &mut std::process::Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{cmd:?} failed: {stdout}\n{stderr}");
    stdout
}

/// True when a tool is missing and we are not in CI (then the test is skipped with a note).
pub fn skip_without(tool: &str, probe: &mut std::process::Command) -> bool {
    let ok = probe.output().map(|o| o.status.success()).unwrap_or(false);
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "{tool} is required in CI (see .ci/install-deps)"
        );
        eprintln!("skipping: {tool} not installed");
    }
    !ok
}

//! Peers for the discovery tests (`discovery_dht.rs`, `discovery_pex.rs`, `discovery_private.rs`,
//! `discovery_lsd.rs`): shoal and libtorrent processes started with the discovery switches the
//! general harness ([`super::support::RefClient`]) does not give them: a DHT of local nodes,
//! LSD inside a test-made namespace, magnet links, peer-connection logs, and a DHT-only
//! libtorrent node that reports every announce and lookup it receives.
//!
//! Included next to the harness by each discovery test:
//!
//! ```ignore
//! #[path = "support/mod.rs"]
//! mod support;
//! #[path = "support/discovery.rs"]
//! mod discovery;
//! ```
//!
//! Guarantees: nothing here reaches beyond the machine. A shoal peer always gets `--no-dht` or
//! `--dht-bootstrap` with at least one node the test gave (never the public routers), and
//! `--lsd` only inside a [`Netns`]; libtorrent gets `lt.py --dht` (no routers, loopback checks
//! off) only with the nodes the test gave. Every process dies when its [`Peer`] drops, printing
//! its log tail first if the test failed.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};

use crate::support::netns::command_in;
use crate::support::{script, test_failed, track, Netns, Proc, WorkDir, PYTHON};

/// The shoal binary Cargo built for shoal-cli's tests.
pub const SHOAL: &str = env!("CARGO_BIN_EXE_shoal");

/// How a peer finds others. `Default`: no DHT, no LSD, no peers, on the host.
#[derive(Debug, Clone, Default)]
pub struct Discovery {
    /// Peers to dial (`--peer`).
    pub peers: Vec<SocketAddr>,
    /// DHT on, starting from these nodes only (`None`: off).
    pub dht: Option<Vec<SocketAddr>>,
    /// BEP 14 local service discovery (shoal only, inside `netns` only).
    pub lsd: bool,
    /// Run inside this namespace.
    pub netns: Option<Netns>,
    /// libtorrent only: upload cap in bytes/s, applied to loopback peers too.
    pub upload_limit: Option<u32>,
    /// libtorrent only: download cap in bytes/s, applied to loopback peers too.
    pub download_limit: Option<u32>,
    /// libtorrent only: never dial a peer, only accept (`lt.py --no-outgoing`).
    pub no_outgoing: bool,
    /// shoal only: its `RUST_LOG` (default `info`).
    pub log: Option<String>,
    /// shoal only: more command-line arguments (e.g. `--max-down 4K`).
    pub shoal_args: Vec<String>,
}

impl Discovery {
    /// Only the given peers.
    pub fn peers(peers: &[SocketAddr]) -> Discovery {
        Discovery {
            peers: peers.to_vec(),
            ..Discovery::default()
        }
    }

    /// Only a DHT starting from `nodes`.
    pub fn dht(nodes: &[SocketAddr]) -> Discovery {
        Discovery {
            dht: Some(nodes.to_vec()),
            ..Discovery::default()
        }
    }
}

/// A running shoal or libtorrent process, killed on drop.
#[derive(Debug)]
pub struct Peer {
    proc: Proc,
    addr: SocketAddr,
    // Drop order: the process, then its namespace, then its folder.
    _netns: Option<Netns>,
    work: WorkDir,
}

impl Peer {
    /// Where it listens for peers (and, with the DHT on, for DHT messages over UDP).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its whole log so far.
    pub fn log(&self) -> String {
        self.proc.log()
    }

    /// lt.py's JSON event lines whose `event` is `event`.
    pub fn events(&self, event: &str) -> Vec<serde_json::Value> {
        self.log()
            .lines()
            .filter(|l| l.starts_with('{'))
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["event"] == event)
            .collect()
    }

    /// The last lines of its log, headed by its name.
    pub fn log_tail(&self) -> String {
        self.proc.log_tail()
    }

    /// Waits until `found(log)` holds; fails with the log tail after `timeout` or if the process
    /// exits first.
    pub fn wait_for(
        &mut self,
        what: &str,
        timeout: Duration,
        found: impl Fn(&Peer) -> bool,
    ) -> Result<()> {
        let deadline = Instant::now() + timeout;
        let result = loop {
            if found(self) {
                break Ok(());
            }
            if let Some(status) = self.proc.try_exit() {
                break Err(anyhow::anyhow!("exited ({status}) before {what}"));
            }
            if Instant::now() > deadline {
                break Err(anyhow::anyhow!("no {what} within {timeout:?}"));
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        track(
            result.map_err(|e| anyhow::anyhow!("{}: {e:#}\n{}", self.proc.name(), self.log_tail())),
        )
    }

    /// Waits for the process to exit 0 (a leecher that completed).
    pub fn wait_success(&mut self, timeout: Duration) -> Result<()> {
        let result = self.proc.wait_exit(timeout).and_then(|status| {
            ensure!(status.success(), "exited with {status}");
            Ok(())
        });
        track(
            result.map_err(|e| anyhow::anyhow!("{}: {e:#}\n{}", self.proc.name(), self.log_tail())),
        )
    }

    fn start(
        name: &str,
        work: WorkDir,
        cmd: Command,
        addr: SocketAddr,
        how: &Discovery,
    ) -> Result<Peer> {
        let proc = Proc::spawn(name, cmd, &work.join(format!("{name}.log")))?;
        Ok(Peer {
            proc,
            addr,
            _netns: how.netns.clone(),
            work,
        })
    }

    fn wait_ready(mut self, prefix: &str) -> Result<Peer> {
        match self.proc.wait_line(prefix, Duration::from_secs(30)) {
            Ok(_) => Ok(self),
            Err(e) => {
                let tail = self.log_tail();
                track(Err(anyhow::anyhow!("{e:#}\n{tail}")))
            }
        }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        if test_failed() {
            eprintln!(
                "{} on {} (work {}):\n{}",
                self.proc.name(),
                self.addr,
                self.work.path().display(),
                self.log_tail()
            );
        }
        self.proc.kill();
    }
}

/// `shoal seed TORRENT DATA_DIR`; returns once it serves (`seeding ...` printed).
pub fn shoal_seed(
    how: &Discovery,
    torrent: &Path,
    data_dir: &Path,
    addr: SocketAddr,
) -> Result<Peer> {
    let mut cmd = command_in(how.netns.as_ref(), SHOAL);
    cmd.arg("seed").arg(torrent).arg(data_dir);
    let work = WorkDir::new("shoal-seed")?;
    let cmd = shoal_args(cmd, how, addr, &work)?;
    let peer = Peer::start("shoal-seed", work, cmd, addr, how)?;
    peer.wait_ready("seeding ")
}

/// `shoal download SOURCE -o OUT` (a .torrent path or a magnet link); returns at once.
pub fn shoal_download(how: &Discovery, source: &str, out: &Path, addr: SocketAddr) -> Result<Peer> {
    let mut cmd = command_in(how.netns.as_ref(), SHOAL);
    cmd.arg("download").arg(source).arg("-o").arg(out);
    let work = WorkDir::new("shoal-download")?;
    let cmd = shoal_args(cmd, how, addr, &work)?;
    Peer::start("shoal-download", work, cmd, addr, how)
}

fn shoal_args(
    mut cmd: Command,
    how: &Discovery,
    addr: SocketAddr,
    work: &WorkDir,
) -> Result<Command> {
    let state = work.join("state");
    cmd.args(["--listen", &addr.to_string()])
        .arg("--state-dir")
        .arg(state);
    match &how.dht {
        None => {
            cmd.arg("--no-dht");
        }
        Some(nodes) => {
            // With no node shoal would bootstrap from the public routers.
            ensure!(
                !nodes.is_empty(),
                "shoal with DHT needs at least one local bootstrap node"
            );
            for node in nodes {
                ensure!(
                    node.ip().is_loopback() || how.netns.is_some(),
                    "DHT node {node} is not local"
                );
                cmd.args(["--dht-bootstrap", &node.to_string()]);
            }
        }
    }
    if how.lsd {
        ensure!(
            how.netns.is_some(),
            "shoal --lsd only inside a network namespace the test made"
        );
        cmd.arg("--lsd");
    }
    for peer in &how.peers {
        cmd.args(["--peer", &peer.to_string()]);
    }
    cmd.args(&how.shoal_args);
    cmd.env("RUST_LOG", how.log.clone().unwrap_or_else(|| "info".into()));
    Ok(cmd)
}

/// `lt.py seed`; returns once the data is checked and it listens.
pub fn lt_seed(how: &Discovery, torrent: &Path, data_dir: &Path, addr: SocketAddr) -> Result<Peer> {
    let mut cmd = command_in(how.netns.as_ref(), PYTHON);
    cmd.arg(script("lt.py"))
        .arg("seed")
        .arg("--torrent")
        .arg(torrent)
        .arg("--save")
        .arg(data_dir);
    let peer = Peer::start(
        "lt-seed",
        WorkDir::new("lt-seed")?,
        lt_args(cmd, how, addr),
        addr,
        how,
    )?;
    peer.wait_ready("READY port=")
}

/// `lt.py leech` of a .torrent path or a magnet link; returns once it listens. It exits 0 once
/// complete.
pub fn lt_leech(how: &Discovery, source: &str, out: &Path, addr: SocketAddr) -> Result<Peer> {
    let mut cmd = command_in(how.netns.as_ref(), PYTHON);
    let flag = if source.starts_with("magnet:") {
        "--magnet"
    } else {
        "--torrent"
    };
    cmd.arg(script("lt.py"))
        .arg("leech")
        .args([flag, source])
        .arg("--save")
        .arg(out);
    let peer = Peer::start(
        "lt-leech",
        WorkDir::new("lt-leech")?,
        lt_args(cmd, how, addr),
        addr,
        how,
    )?;
    peer.wait_ready("READY port=")
}

fn lt_args(mut cmd: Command, how: &Discovery, addr: SocketAddr) -> Command {
    cmd.args([
        "--listen",
        &addr.to_string(),
        "--timeout",
        "600",
        "--log-peers",
    ]);
    if let Some(nodes) = &how.dht {
        cmd.arg("--dht");
        for node in nodes {
            cmd.args(["--dht-node", &node.to_string()]);
        }
    }
    for peer in &how.peers {
        cmd.args(["--peer", &peer.to_string()]);
    }
    if let Some(limit) = how.upload_limit {
        cmd.args(["--upload-limit", &limit.to_string()]);
    }
    if how.no_outgoing {
        cmd.arg("--no-outgoing");
    }
    if let Some(limit) = how.download_limit {
        cmd.args(["--download-limit", &limit.to_string()]);
    }
    cmd
}

/// A DHT-only libtorrent node (`lt.py dht-node`) on `addr`, knowing `nodes`. Its log has a
/// `dht_announce` event (`info_hash`, `from`) for every announce it receives and a
/// `dht_get_peers` event for every lookup.
pub fn lt_dht_node(addr: SocketAddr, nodes: &[SocketAddr]) -> Result<Peer> {
    ensure!(addr.ip().is_loopback(), "DHT nodes stay on loopback");
    let mut cmd = Command::new(PYTHON);
    cmd.arg(script("lt.py"))
        .args(["dht-node", "--listen", &addr.to_string()]);
    for node in nodes {
        cmd.args(["--dht-node", &node.to_string()]);
    }
    let how = Discovery::default();
    let peer = Peer::start("lt-dht-node", WorkDir::new("lt-dht-node")?, cmd, addr, &how)?;
    peer.wait_ready("READY port=")
}

/// True when `peer` (an lt.py process) logged a connection that `ip` opened to it.
pub fn lt_saw_incoming_from(peer: &Peer, ip: std::net::IpAddr) -> bool {
    peer.events("peer_connected")
        .iter()
        .filter(|e| e["direction"] == "in")
        .any(|e| {
            e["addr"]
                .as_str()
                .and_then(|a| a.parse::<SocketAddr>().ok())
                .is_some_and(|a| a.ip() == ip)
        })
}

/// True when `peer` (an lt.py process) logged a connection from or to any port of `ip`.
pub fn lt_saw_connection_from(peer: &Peer, ip: std::net::IpAddr) -> bool {
    peer.events("peer_connected").iter().any(|e| {
        e["addr"]
            .as_str()
            .and_then(|a| a.parse::<SocketAddr>().ok())
            .is_some_and(|a| a.ip() == ip)
    })
}

/// True when `peer` (an lt.py process) logged a connection to `addr` (a listening address).
pub fn lt_saw_connection_to(peer: &Peer, addr: SocketAddr) -> bool {
    peer.events("peer_connected")
        .iter()
        .any(|e| e["addr"] == addr.to_string().as_str())
}

/// The info hashes (hex) a DHT node saw announced or looked up.
pub fn dht_hashes_seen(node: &Peer) -> Vec<String> {
    let mut hashes: Vec<String> = ["dht_announce", "dht_get_peers"]
        .iter()
        .flat_map(|e| node.events(e))
        .filter_map(|e| e["info_hash"].as_str().map(str::to_owned))
        .collect();
    hashes.sort();
    hashes.dedup();
    hashes
}

/// `lt.py make-torrent --private` of `content` (v1, `piece_size` pieces); returns the infohash.
pub fn make_private_torrent(content: &Path, piece_size: u32, out: &Path) -> Result<String> {
    let output = Command::new(PYTHON)
        .arg(script("lt.py"))
        .arg("make-torrent")
        .arg(content)
        .arg("--out")
        .arg(out)
        .args(["--private", "--piece-size", &piece_size.to_string()])
        .output()
        .context("run lt.py make-torrent")?;
    ensure!(
        output.status.success(),
        "lt.py make-torrent --private: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&output.stdout)?;
    match json["infohash"].as_str() {
        Some(hash) if hash.len() == 40 => Ok(hash.to_owned()),
        _ => bail!("lt.py make-torrent printed {json}"),
    }
}

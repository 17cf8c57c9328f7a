//! The four reference BitTorrent clients as seeders and leechers: one way to start each, one way
//! to wait for it.
//!
//! [`RefClient`] says which client, where it runs (host or a [`Netns`]) and which extra trackers
//! it announces to; [`RefClient::seed`] returns once the client has checked the data and is
//! serving it (listening), [`RefClient::leech`] returns at once, and
//! [`RunningClient::wait_complete`] waits until every piece is downloaded and verified. Each
//! client gets its own work folder (config, state, logs); everything it started dies with it.
//!
//! How each client is driven (details and quirks in `tests/interop/README.md`):
//! - libtorrent: `tests/interop/lt.py` (`READY port=N`; a final JSON summary; exit 0 = complete).
//! - aria2c: command line; exits 0 when complete (`--seed-time=0`); peers via a
//!   [`PeerListTracker`] because aria2c cannot be told to dial an address.
//! - Transmission: `transmission-daemon -f` with a generated `settings.json`, driven by
//!   `transmission-remote`; peers via a [`PeerListTracker`] (its RPC has no add-peer call), and
//!   those peers must not be at 127.0.0.0/8: run it in a [`Netns`].
//! - qBittorrent: `qbittorrent-nox --profile` with a generated config, driven by its Web API
//!   with curl (`torrents/add`, `torrents/addPeers`, `torrents/info`).
//! - shoal: the binary under test, `shoal seed` / `shoal download` (see `shoal.rs`).

mod qbittorrent;
mod shoal;
mod transmission;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};

use super::data::{tree_digest, WorkDir};
use super::netns::{command_in, tcp_accepts, Netns};
use super::process::Proc;
use super::trackers::PeerListTracker;

/// Which reference client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// python3-libtorrent 2.0.8 through `tests/interop/lt.py`.
    Libtorrent,
    /// transmission-daemon 3.00 driven by transmission-remote.
    Transmission,
    /// aria2c 1.36.
    Aria2,
    /// qbittorrent-nox 4.5.2 driven by its Web API.
    Qbittorrent,
    /// shoal itself (`shoal seed` / `shoal download`), to pair with the others. Not in
    /// [`Kind::ALL`].
    Shoal,
}

impl Kind {
    /// All four, for tests that loop over clients.
    pub const ALL: [Kind; 4] = [
        Kind::Libtorrent,
        Kind::Transmission,
        Kind::Aria2,
        Kind::Qbittorrent,
    ];

    /// A short lowercase name for folders and messages.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Libtorrent => "libtorrent",
            Kind::Transmission => "transmission",
            Kind::Aria2 => "aria2",
            Kind::Qbittorrent => "qbittorrent",
            Kind::Shoal => "shoal",
        }
    }

    /// Checks that the client's programs are installed; see [`super::require_tool`].
    pub fn require(self) -> bool {
        match self {
            Kind::Libtorrent => super::require_libtorrent(),
            Kind::Transmission => {
                super::require_tool("transmission-daemon")
                    && super::require_tool("transmission-remote")
            }
            Kind::Aria2 => super::require_tool("aria2c"),
            Kind::Qbittorrent => {
                super::require_tool("qbittorrent-nox") && super::require_tool("curl")
            }
            // Cargo builds it for shoal-cli's tests; elsewhere starting it fails with a message.
            Kind::Shoal => true,
        }
    }
}

/// Seeding or leeching.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Serving complete data.
    Seed,
    /// Downloading.
    Leech,
}

/// What a completed download took.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// The client.
    pub kind: Kind,
    /// Payload bytes now on disk for the torrent.
    pub bytes: u64,
    /// Seconds from start (libtorrent: from adding the torrent; others: from the harness
    /// starting the client) to completion.
    pub seconds: f64,
}

/// Which client, where, announcing to what.
#[derive(Debug, Clone)]
pub struct RefClient {
    kind: Kind,
    netns: Option<Netns>,
    trackers: Vec<String>,
    ready_timeout: Duration,
    shoal_log: Option<String>,
    upload_limit: Option<u32>,
}

/// Starts `kind` seeding `torrent` from `data_dir` (the folder holding the torrent's content),
/// listening on `addr`; returns once it serves.
pub fn seed(
    kind: Kind,
    torrent: &Path,
    data_dir: &Path,
    addr: SocketAddr,
) -> Result<RunningClient> {
    RefClient::new(kind).seed(torrent, data_dir, addr)
}

/// Starts `kind` downloading `torrent` into `out_dir`, listening on `addr`, from `peers`.
pub fn leech(
    kind: Kind,
    torrent: &Path,
    out_dir: &Path,
    addr: SocketAddr,
    peers: &[SocketAddr],
) -> Result<RunningClient> {
    RefClient::new(kind).leech(torrent, out_dir, addr, peers)
}

impl RefClient {
    /// `kind` on the host, announcing to no tracker.
    pub fn new(kind: Kind) -> RefClient {
        RefClient {
            kind,
            netns: None,
            trackers: Vec::new(),
            ready_timeout: Duration::from_secs(30),
            shoal_log: None,
            upload_limit: None,
        }
    }

    /// Caps the client's upload rate at `bytes_per_sec`, loopback peers included (libtorrent:
    /// a peer-class filter puts them in the global class; qBittorrent: rate limits applied to
    /// LAN peers, then `transfer/setUploadLimit`; aria2: `--max-upload-limit`). Transmission
    /// and shoal refuse it. Use it to make a fast seeder share a download with slower ones.
    pub fn upload_limit(mut self, bytes_per_sec: u32) -> RefClient {
        self.upload_limit = Some(bytes_per_sec);
        self
    }

    /// For [`Kind::Shoal`]: its `RUST_LOG` filter (default: the test's own `RUST_LOG`, else
    /// `info`), e.g. `shoal=debug` to see why each peer was dropped. Other clients ignore it.
    pub fn shoal_log(mut self, filter: &str) -> RefClient {
        self.shoal_log = Some(filter.to_owned());
        self
    }

    /// Runs the client (and any helper tracker it needs) inside `netns`.
    pub fn in_netns(mut self, netns: &Netns) -> RefClient {
        self.netns = Some(netns.clone());
        self
    }

    /// Also announces to `url` (the torrent's own trackers are always ignored).
    pub fn with_tracker(mut self, url: &str) -> RefClient {
        self.trackers.push(url.to_owned());
        self
    }

    /// How long [`RefClient::seed`] waits for the data check and listening socket (default 30 s).
    pub fn ready_timeout(mut self, timeout: Duration) -> RefClient {
        self.ready_timeout = timeout;
        self
    }

    /// Starts seeding `torrent` from `data_dir` on `addr`; returns once the client has verified
    /// the data and accepts connections.
    pub fn seed(&self, torrent: &Path, data_dir: &Path, addr: SocketAddr) -> Result<RunningClient> {
        self.start(Role::Seed, torrent, data_dir, addr, &[])
    }

    /// Starts downloading `torrent` into `out_dir` on `addr` from `peers`; returns at once.
    pub fn leech(
        &self,
        torrent: &Path,
        out_dir: &Path,
        addr: SocketAddr,
        peers: &[SocketAddr],
    ) -> Result<RunningClient> {
        self.start(Role::Leech, torrent, out_dir, addr, peers)
    }

    fn start(
        &self,
        role: Role,
        torrent: &Path,
        dir: &Path,
        addr: SocketAddr,
        peers: &[SocketAddr],
    ) -> Result<RunningClient> {
        if self.kind == Kind::Transmission && role == Role::Leech {
            super::track(transmission::check_leech_peers(peers))?;
        }
        let torrent = std::fs::canonicalize(torrent)
            .with_context(|| format!("torrent {}", torrent.display()))?;
        std::fs::create_dir_all(dir)?;
        let dir = std::fs::canonicalize(dir)?;
        let role_name = if role == Role::Seed { "seed" } else { "leech" };
        if self.upload_limit.is_some() && matches!(self.kind, Kind::Transmission | Kind::Shoal) {
            bail!("upload_limit is not implemented for {}", self.kind.name());
        }
        let work = WorkDir::new(&format!("{}-{role_name}", self.kind.name()))?;
        let mut client = RunningClient {
            kind: self.kind,
            role,
            addr,
            dir,
            started: Instant::now(),
            control: Control::Libtorrent,
            procs: Vec::new(),
            netns: self.netns.clone(),
            work,
        };
        let ctx = Start {
            client: self,
            torrent: &torrent,
            peers,
        };
        let started = match self.kind {
            Kind::Libtorrent => ctx.libtorrent(&mut client),
            Kind::Aria2 => ctx.aria2(&mut client),
            Kind::Transmission => transmission::start(&ctx, &mut client),
            Kind::Qbittorrent => qbittorrent::start(&ctx, &mut client),
            Kind::Shoal => shoal::start(&ctx, &mut client),
        };
        started.map_err(|e| {
            anyhow::anyhow!("{} {role_name}: {e:#}\n{}", self.kind.name(), client.logs())
        })?;
        Ok(client)
    }
}

/// What one start needs, shared by the per-client starters.
struct Start<'a> {
    client: &'a RefClient,
    torrent: &'a Path,
    peers: &'a [SocketAddr],
}

impl Start<'_> {
    fn libtorrent(&self, c: &mut RunningClient) -> Result<()> {
        let mut cmd = command_in(c.netns.as_ref(), super::PYTHON);
        let sub = if c.role == Role::Seed {
            "seed"
        } else {
            "leech"
        };
        cmd.arg(super::script("lt.py"))
            .arg(sub)
            .arg("--torrent")
            .arg(self.torrent)
            .arg("--save")
            .arg(&c.dir)
            .args(["--listen", &c.addr.to_string(), "--timeout", "3600"]);
        for peer in self.peers {
            cmd.args(["--peer", &peer.to_string()]);
        }
        for url in &self.client.trackers {
            cmd.args(["--tracker", url]);
        }
        if let Some(limit) = self.client.upload_limit {
            cmd.args(["--upload-limit", &limit.to_string()]);
        }
        let seeding = c.role == Role::Seed;
        let proc = c.spawn("lt.py", cmd)?;
        if seeding {
            proc.wait_ready_port(self.client.ready_timeout)?;
        }
        Ok(())
    }

    fn aria2(&self, c: &mut RunningClient) -> Result<()> {
        let mut cmd = command_in(c.netns.as_ref(), "aria2c");
        cmd.arg(format!("--dir={}", c.dir.display()))
            .arg(format!("--listen-port={}", c.addr.port()))
            .arg(format!("--interface={}", c.addr.ip()))
            .args([
                "--enable-dht=false",
                "--enable-dht6=false",
                "--bt-enable-lpd=false",
                "--enable-peer-exchange=false",
                "--bt-require-crypto=false",
                "--disable-ipv6=true",
                "--file-allocation=none",
                "--summary-interval=0",
                "--console-log-level=notice",
                "--bt-exclude-tracker=*",
                "--follow-torrent=mem",
                "--allow-overwrite=true",
                "--auto-file-renaming=false",
            ]);
        if let Some(limit) = self.client.upload_limit {
            cmd.arg(format!("--max-upload-limit={limit}"));
        }
        let mut trackers = self.client.trackers.clone();
        if c.role == Role::Seed {
            cmd.args(["--bt-seed-unverified=true", "--seed-ratio=0.0"]);
        } else {
            cmd.arg("--seed-time=0");
            if !self.peers.is_empty() {
                trackers.push(c.peer_list_tracker(self.peers)?);
            }
        }
        if !trackers.is_empty() {
            cmd.arg(format!("--bt-tracker={}", trackers.join(",")));
        }
        cmd.arg(self.torrent);
        c.spawn("aria2c", cmd)?;
        c.control = Control::ExitsWhenComplete;
        if c.role == Role::Seed {
            c.wait_listening(self.client.ready_timeout)?;
        }
        Ok(())
    }
}

/// How a running client is asked about its progress.
#[derive(Debug)]
enum Control {
    /// lt.py: exits 0 after a `done` JSON line.
    Libtorrent,
    /// Exits 0 once complete (aria2c with `--seed-time=0`, `shoal download`).
    ExitsWhenComplete,
    Transmission {
        rpc: SocketAddr,
    },
    Qbittorrent(qbittorrent::Api),
}

/// A started reference client. Dropping it kills the client and its helpers (and deletes its
/// network namespace if this was the last user); if the test failed, their logs are printed
/// first and the work folder is kept.
#[derive(Debug)]
pub struct RunningClient {
    kind: Kind,
    role: Role,
    addr: SocketAddr,
    dir: PathBuf,
    started: Instant,
    control: Control,
    // Drop order matters: processes, then the namespace they run in, then the folder.
    // procs[0] is the client itself once started; helpers (trackers) follow.
    procs: Vec<Proc>,
    netns: Option<Netns>,
    work: WorkDir,
}

impl RunningClient {
    /// Which client.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// The address it listens on for peers.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The data (seed) or download (leech) folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Its work folder (config, state, logs).
    pub fn work_dir(&self) -> &Path {
        self.work.path()
    }

    /// The tails of the logs of the client and its helpers.
    pub fn logs(&self) -> String {
        self.procs.iter().map(Proc::log_tail).collect()
    }

    /// Waits until the download is complete and verified (leechers only), failing with the logs
    /// after `timeout` or if the client exits with an error.
    pub fn wait_complete(&mut self, timeout: Duration) -> Result<Summary> {
        ensure!(self.role == Role::Leech, "wait_complete is for leechers");
        let result = match self.control {
            Control::Libtorrent => self.wait_libtorrent(timeout),
            Control::ExitsWhenComplete => self
                .wait_exit_ok(timeout)
                .and_then(|()| self.disk_summary()),
            Control::Transmission { .. } | Control::Qbittorrent(_) => {
                self.poll_until_complete(timeout)
            }
        };
        super::track(result.map_err(|e| {
            anyhow::anyhow!(
                "{} leech into {}: {e:#}\n{}",
                self.kind.name(),
                self.dir.display(),
                self.logs()
            )
        }))
    }

    fn wait_libtorrent(&mut self, timeout: Duration) -> Result<Summary> {
        self.wait_exit_ok(timeout)?;
        let log = self.procs[0].log();
        let done = log
            .lines()
            .filter(|l| l.starts_with('{'))
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|v| v["event"] == "done")
            .context("lt.py exited 0 without a done line")?;
        Ok(Summary {
            kind: self.kind,
            bytes: done["bytes"].as_u64().context("done.bytes")?,
            seconds: done["seconds"].as_f64().context("done.seconds")?,
        })
    }

    fn wait_exit_ok(&mut self, timeout: Duration) -> Result<()> {
        let status = self.procs[0].wait_exit(timeout)?;
        ensure!(
            status.success(),
            "{} exited with {status}",
            self.procs[0].name()
        );
        Ok(())
    }

    fn poll_until_complete(&mut self, timeout: Duration) -> Result<Summary> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.procs[0].try_exit() {
                bail!(
                    "{} exited ({status}) before completing",
                    self.procs[0].name()
                );
            }
            let done = match &mut self.control {
                Control::Transmission { rpc } => {
                    transmission::is_complete(self.netns.as_ref(), *rpc)?
                }
                Control::Qbittorrent(api) => api.is_complete(self.netns.as_ref())?,
                _ => bail!("not a polled client"),
            };
            if done {
                return self.disk_summary();
            }
            if Instant::now() > deadline {
                bail!("not complete after {timeout:?}");
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    fn disk_summary(&self) -> Result<Summary> {
        let bytes = tree_digest(&self.dir)?.values().map(|(size, _)| size).sum();
        Ok(Summary {
            kind: self.kind,
            bytes,
            seconds: self.started.elapsed().as_secs_f64(),
        })
    }

    /// Starts the client process itself (kept first in `procs`, helpers after it), with its log
    /// in the work folder.
    fn spawn(&mut self, name: &str, cmd: std::process::Command) -> Result<&mut Proc> {
        let log = self.work.join(format!("{name}.log"));
        self.procs.insert(0, Proc::spawn(name, cmd, &log)?);
        Ok(&mut self.procs[0])
    }

    /// Starts a [`PeerListTracker`] next to the client announcing `peers`; returns its URL.
    fn peer_list_tracker(&mut self, peers: &[SocketAddr]) -> Result<String> {
        let ip = match self.addr.ip() {
            IpAddr::V4(ip) if !ip.is_unspecified() => ip,
            _ => Ipv4Addr::LOCALHOST,
        };
        let log = self
            .work
            .join(format!("peer_tracker-{}.log", self.procs.len()));
        let tracker = PeerListTracker::start(self.netns.as_ref(), ip, peers, &log)?;
        let url = tracker.url().to_owned();
        self.procs.push(tracker.into_proc());
        Ok(url)
    }

    fn wait_listening(&mut self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        while !tcp_accepts(self.netns.as_ref(), self.addr) {
            if let Some(status) = self.procs[0].try_exit() {
                bail!("{} exited ({status})", self.procs[0].name());
            }
            if Instant::now() > deadline {
                bail!("nothing listening on {} after {timeout:?}", self.addr);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }
}

impl Drop for RunningClient {
    fn drop(&mut self) {
        if super::test_failed() {
            eprintln!(
                "{} {:?} on {} (work folder {}):\n{}",
                self.kind.name(),
                self.role,
                self.addr,
                self.work.path().display(),
                self.logs()
            );
        }
        for proc in &mut self.procs {
            proc.kill();
        }
    }
}

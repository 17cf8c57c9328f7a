//! Trackers for interop tests: a fresh opentracker per test, and a fixed-answer peer-list tracker.
//!
//! [`OpenTracker`]: Debian's opentracker is built whitelist-only, remembers dead peers for about
//! 45 minutes, chroots to its `-d` folder and drops to `nobody`. So each test gets its own
//! instance on a free port (TCP and UDP on the same number), its own world-readable chroot
//! folder, and a whitelist file there holding the test's infohashes; [`OpenTracker::allow`]
//! appends one and sends SIGHUP, which makes opentracker reload the file. opentracker accepts
//! connections before it has read its whitelist, so start and allow both wait until a probe
//! announce is accepted.
//!
//! [`PeerListTracker`] (`tests/interop/peer_tracker.py`) answers every announce with the peers
//! it was started with plus earlier announcers: the way to hand peers to clients that cannot be
//! told to dial an address (aria2c, Transmission).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::data::{free_port, set_mode, WorkDir};
use super::netns::{command_in, tcp_accepts, Netns};
use super::process::Proc;

/// A running opentracker, killed on drop.
#[derive(Debug)]
pub struct OpenTracker {
    proc: Proc,
    addr: SocketAddr,
    whitelist: PathBuf,
    _work: WorkDir,
}

impl OpenTracker {
    /// Starts opentracker on 127.0.0.1 (a free port, TCP and UDP) allowing `infohashes`
    /// (40 hex digits each).
    pub fn start(infohashes: &[&str]) -> Result<OpenTracker> {
        let work = WorkDir::new("opentracker")?;
        let chroot = work.join("chroot");
        std::fs::create_dir_all(&chroot)?;
        set_mode(&chroot, 0o755)?;
        let whitelist = chroot.join("whitelist");
        let mut text = String::new();
        for hash in infohashes {
            text.push_str(&checked_hash(hash)?);
            text.push('\n');
        }
        std::fs::write(&whitelist, text)?;
        set_mode(&whitelist, 0o644)?;
        let ip = Ipv4Addr::LOCALHOST;
        let port = free_port(ip);
        let addr = SocketAddr::new(IpAddr::V4(ip), port);
        let mut cmd = command_in(None, "opentracker");
        cmd.args([
            "-i",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-P",
            &port.to_string(),
        ])
        .arg("-d")
        .arg(&chroot)
        .args(["-w", "whitelist"]);
        let mut proc = Proc::spawn("opentracker", cmd, &work.join("opentracker.log"))?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while !tcp_accepts(None, addr) {
            if let Some(status) = proc.try_exit() {
                bail!("opentracker exited ({status})\n{}", proc.log_tail());
            }
            if Instant::now() > deadline {
                bail!("opentracker not listening on {addr}\n{}", proc.log_tail());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let tracker = OpenTracker {
            proc,
            addr,
            whitelist,
            _work: work,
        };
        // It accepts connections before it has read the whitelist.
        if let Some(first) = infohashes.first() {
            tracker.wait_allowed(first)?;
        }
        Ok(tracker)
    }

    /// True when opentracker answers an announce for `infohash` instead of refusing it. The
    /// probe announces a fake peer (port 1) and withdraws it at once with `event=stopped`
    /// (which opentracker answers without consulting the whitelist).
    pub fn is_allowed(&self, infohash: &str) -> Result<bool> {
        let reply = http_announce(self.addr, infohash, 1, None)?;
        let allowed = !reply.contains("not authorized");
        if allowed {
            http_announce(self.addr, infohash, 1, Some("stopped"))?;
        }
        Ok(allowed)
    }

    fn wait_allowed(&self, infohash: &str) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.is_allowed(infohash)? {
            if Instant::now() > deadline {
                bail!(
                    "opentracker never allowed {infohash}\n{}",
                    self.proc.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    /// `http://127.0.0.1:PORT/announce`.
    pub fn http_url(&self) -> String {
        format!("http://{}/announce", self.addr)
    }

    /// `udp://127.0.0.1:PORT/announce` (BEP 15).
    pub fn udp_url(&self) -> String {
        format!("udp://{}/announce", self.addr)
    }

    /// The address opentracker listens on (TCP and UDP).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Adds `infohash` to the whitelist and makes opentracker reload it (SIGHUP); returns once
    /// opentracker accepts announces for it (the reload is asynchronous).
    pub fn allow(&self, infohash: &str) -> Result<()> {
        use std::io::Write;
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&self.whitelist)?;
        writeln!(file, "{}", checked_hash(infohash)?)?;
        let status = std::process::Command::new("kill")
            .args(["-HUP", &self.proc.pid().to_string()])
            .status()
            .context("run kill -HUP")?;
        if !status.success() {
            bail!("kill -HUP opentracker failed\n{}", self.proc.log_tail());
        }
        self.wait_allowed(infohash)
    }

    /// The tracker's log tail, for failure messages.
    pub fn log_tail(&self) -> String {
        self.proc.log_tail()
    }
}

/// One raw HTTP announce for `infohash` (40 hex digits) from peer port `port` to the tracker at
/// `tracker`; returns the whole reply (status line, headers, bencoded body).
pub fn http_announce(
    tracker: SocketAddr,
    infohash: &str,
    port: u16,
    event: Option<&str>,
) -> Result<String> {
    use std::io::{Read, Write};
    let hash = checked_hash(infohash)?;
    let escaped: String = hash
        .as_bytes()
        .chunks(2)
        .map(|pair| format!("%{}", String::from_utf8_lossy(pair)))
        .collect();
    let event = event.map(|e| format!("&event={e}")).unwrap_or_default();
    let mut stream = std::net::TcpStream::connect_timeout(&tracker, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        stream,
        "GET /announce?info_hash={escaped}&peer_id=-SH0000-harnessprobe&port={port}\
         &uploaded=0&downloaded=0&left=0&numwant=0&compact=1{event} HTTP/1.0\r\n\
         Host: {tracker}\r\n\r\n"
    )?;
    let mut reply = String::new();
    stream.read_to_string(&mut reply)?;
    Ok(reply)
}

fn checked_hash(hash: &str) -> Result<String> {
    if hash.len() != 40 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        bail!("infohash must be 40 hex digits, got {hash:?}");
    }
    Ok(hash.to_ascii_lowercase())
}

/// A fixed-answer HTTP tracker (`peer_tracker.py`), killed on drop.
#[derive(Debug)]
pub struct PeerListTracker {
    proc: Proc,
    url: String,
}

impl PeerListTracker {
    /// Starts the tracker on `ip` (a free port), inside `netns` if given, answering every
    /// announce with `peers` (IPv4 only) and earlier announcers. Logs go to `log`.
    pub fn start(
        netns: Option<&Netns>,
        ip: Ipv4Addr,
        peers: &[SocketAddr],
        log: &std::path::Path,
    ) -> Result<PeerListTracker> {
        let mut cmd = command_in(netns, super::PYTHON);
        cmd.arg(super::script("peer_tracker.py"))
            .args(["--listen", &format!("{ip}:0")]);
        for peer in peers {
            if !peer.is_ipv4() {
                bail!("peer_tracker.py speaks IPv4 only, got {peer}");
            }
            cmd.args(["--peer", &peer.to_string()]);
        }
        let mut proc = Proc::spawn("peer_tracker.py", cmd, log)?;
        let port = proc
            .wait_ready_port(Duration::from_secs(10))
            .map_err(|e| anyhow::anyhow!("{e:#}\n{}", proc.log_tail()))?;
        Ok(PeerListTracker {
            proc,
            url: format!("http://{ip}:{port}/announce"),
        })
    }

    /// The announce URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The tracker's log (one line per announce).
    pub fn proc(&self) -> &Proc {
        &self.proc
    }

    /// Gives up the handle on the process (which still dies when the `Proc` drops).
    pub fn into_proc(self) -> Proc {
        self.proc
    }
}

/// `shoal create --tracker URL` for `content`; returns the torrent path and its infohash.
pub fn create_with_tracker(content: &Path, url: &str, out: &Path) -> Result<(PathBuf, String)> {
    create_with_trackers(content, &[url], out)
}

/// `shoal create` with one tier per URL, in order.
pub fn create_with_trackers(
    content: &Path,
    urls: &[&str],
    out: &Path,
) -> Result<(PathBuf, String)> {
    let mut create = Command::new(env!("CARGO_BIN_EXE_shoal"));
    create.args(["create", "--piece-size", "32K", "--no-date"]);
    for url in urls {
        create.args(["--tracker", url]);
    }
    let status = create.arg("-o").arg(out).arg(content).output()?;
    anyhow::ensure!(
        status.status.success(),
        "shoal create: {}",
        String::from_utf8_lossy(&status.stderr)
    );
    let info = Command::new(env!("CARGO_BIN_EXE_shoal"))
        .args(["info", "--json"])
        .arg(out)
        .output()?;
    let json: serde_json::Value = serde_json::from_slice(&info.stdout)?;
    let hash = json["info_hash"].as_str().unwrap_or_default().to_owned();
    anyhow::ensure!(hash.len() == 40, "no infohash in shoal info --json: {json}");
    Ok((out.to_path_buf(), hash))
}

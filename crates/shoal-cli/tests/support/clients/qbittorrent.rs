//! qBittorrent 4.5.2 as a reference client: `qbittorrent-nox --profile=DIR` with a generated
//! `qBittorrent.conf`, driven through its Web API with curl.
//!
//! Config: the legal notice accepted (otherwise it waits on stdin forever); peers on the
//! client's address and port (`Session\Interface=lo`, `Session\InterfaceAddress`,
//! `Session\Port`); DHT, LSD, PeX, UPnP and peer-country lookup off; TCP only; several
//! connections per IP allowed; no ratio limit; queueing off; content layout "Original"; Web UI
//! on 127.0.0.1 at a free port with no login for localhost and no CSRF/host-header checks.
//! A leecher gets its peers with `torrents/addPeers`, repeated while it has none.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};

use super::super::data::free_port;
use super::super::netns::{command_in, Netns};
use super::{Control, Role, RunningClient, Start};

/// The Web API of one qbittorrent-nox and the torrent it was given.
#[derive(Debug)]
pub(super) struct Api {
    webui: SocketAddr,
    hash: String,
    peers: Vec<SocketAddr>,
    last_add_peers: Option<Instant>,
}

pub(super) fn start(ctx: &Start<'_>, c: &mut RunningClient) -> Result<()> {
    let webui = SocketAddr::new(
        IpAddr::V4(Ipv4Addr::LOCALHOST),
        free_port(Ipv4Addr::LOCALHOST),
    );
    let profile = c.work.join("qbittorrent");
    let config_dir = profile.join("qBittorrent/config");
    std::fs::create_dir_all(&config_dir)?;
    let limited = ctx.client.upload_limit.is_some();
    std::fs::write(
        config_dir.join("qBittorrent.conf"),
        config(c, webui, limited),
    )?;
    let mut cmd = command_in(c.netns.as_ref(), "qbittorrent-nox");
    cmd.arg(format!("--profile={}", profile.display()));
    c.spawn("qbittorrent-nox", cmd)?;
    let mut api = Api {
        webui,
        hash: String::new(),
        peers: ctx.peers.to_vec(),
        last_add_peers: None,
    };
    let deadline = Instant::now() + ctx.client.ready_timeout;
    while api.get(c.netns.as_ref(), "app/version").is_err() {
        if let Some(status) = c.procs[0].try_exit() {
            bail!("qbittorrent-nox exited ({status})");
        }
        if Instant::now() > deadline {
            bail!("qBittorrent Web UI on {webui} not answering");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    if let Some(limit) = ctx.client.upload_limit {
        let limit = limit.to_string();
        api.post(
            c.netns.as_ref(),
            "transfer/setUploadLimit",
            &[("limit", &limit)],
        )?;
    }
    api.add(c, ctx)?;
    for url in &ctx.client.trackers {
        let form = [("hash", api.hash.as_str()), ("urls", url.as_str())];
        api.post(c.netns.as_ref(), "torrents/addTrackers", &form)?;
    }
    if c.role == Role::Leech && !api.peers.is_empty() {
        api.add_peers(c.netns.as_ref())?;
    }
    if c.role == Role::Seed {
        while !api.is_complete(c.netns.as_ref())? {
            if Instant::now() > deadline {
                bail!("data in {} not checked complete in time", c.dir.display());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        wait_takes_peers(c, &api.hash, deadline)?;
    }
    c.control = Control::Qbittorrent(api);
    Ok(())
}

/// The profile's `qBittorrent.conf`; `limited` applies rate limits to LAN (and loopback) peers.
/// For about a second after its Web API reports a torrent seeding (`stalledUP`), qBittorrent
/// closes incoming peer connections before answering their handshake (a peer that dials then
/// backs off for 15-30 s): wait until a handshake is answered. On the host only (a probe
/// from inside a namespace would need a helper process there).
fn wait_takes_peers(c: &RunningClient, hash: &str, deadline: Instant) -> Result<()> {
    if c.netns.is_some() {
        return Ok(());
    }
    let info_hash = super::super::wire::infohash_from_hex(hash)?;
    while !super::super::wire::answers_handshake(c.addr, &info_hash, Duration::from_secs(2)) {
        if Instant::now() > deadline {
            bail!("qBittorrent on {} never answered a handshake", c.addr);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

fn config(c: &RunningClient, webui: SocketAddr, limited: bool) -> String {
    let ip = c.addr.ip();
    let port = c.addr.port();
    let save = c.dir.display();
    format!(
        "[LegalNotice]\nAccepted=true\n\n\
         [BitTorrent]\n\
         Session\\Port={port}\nSession\\Interface=lo\nSession\\InterfaceName=lo\n\
         Session\\InterfaceAddress={ip}\nSession\\DHTEnabled=false\nSession\\LSDEnabled=false\n\
         Session\\PeXEnabled=false\nSession\\MultiConnectionsPerIp=true\nSession\\Encryption=0\n\
         Session\\QueueingSystemEnabled=false\nSession\\GlobalMaxRatio=-1\n\
         Session\\DefaultSavePath={save}\nSession\\TempPathEnabled=false\n\
         Session\\AddExtensionToIncompleteFiles=false\nSession\\BTProtocol=TCP\n\
         Session\\AnnounceToAllTrackers=true\nSession\\TorrentContentLayout=Original\n\
         Session\\IgnoreLimitsOnLAN={}\n\n\
         [Preferences]\n\
         Connection\\PortRangeMin={port}\nConnection\\UPnP=false\n\
         Connection\\ResolvePeerCountries=false\nGeneral\\Locale=en\n\
         WebUI\\Enabled=true\nWebUI\\Address={}\nWebUI\\Port={}\nWebUI\\LocalHostAuth=false\n\
         WebUI\\CSRFProtection=false\nWebUI\\HostHeaderValidation=false\nWebUI\\UseUPnP=false\n\n\
         [Network]\nPortForwardingEnabled=false\n",
        !limited,
        webui.ip(),
        webui.port()
    )
}

impl Api {
    fn url(&self, path: &str) -> String {
        format!("http://{}/api/v2/{path}", self.webui)
    }

    fn get(&self, netns: Option<&Netns>, path: &str) -> Result<String> {
        curl(netns, &[&self.url(path)])
    }

    fn post(&self, netns: Option<&Netns>, path: &str, form: &[(&str, &str)]) -> Result<String> {
        let mut args = Vec::new();
        for (key, value) in form {
            args.push("--data-urlencode".to_owned());
            args.push(format!("{key}={value}"));
        }
        args.push(self.url(path));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        curl(netns, &args)
    }

    /// Adds the torrent (save path = the client's folder) and learns its infohash.
    fn add(&mut self, c: &RunningClient, ctx: &Start<'_>) -> Result<()> {
        let netns = c.netns.as_ref();
        let file = format!("torrents=@{}", ctx.torrent.display());
        let save = format!("savepath={}", c.dir.display());
        let url = self.url("torrents/add");
        let reply = curl(netns, &["-F", &file, "-F", &save, &url])?;
        ensure!(reply.trim() == "Ok.", "torrents/add answered {reply:?}");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let list = self.torrents(netns)?;
            if let Some(hash) = list.first().and_then(|t| t["hash"].as_str()) {
                self.hash = hash.to_owned();
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("the added torrent never appeared in torrents/info");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn torrents(&self, netns: Option<&Netns>) -> Result<Vec<serde_json::Value>> {
        let text = self.get(netns, "torrents/info")?;
        serde_json::from_str(&text).with_context(|| format!("torrents/info answered {text:?}"))
    }

    /// True once the torrent is fully downloaded and verified; meanwhile (re)adds the peers
    /// every 3 s while the torrent has none.
    pub(super) fn is_complete(&mut self, netns: Option<&Netns>) -> Result<bool> {
        let list = self.torrents(netns)?;
        let Some(t) = list.iter().find(|t| t["hash"] == self.hash.as_str()) else {
            bail!("torrent {} vanished from qBittorrent", self.hash);
        };
        let state = t["state"].as_str().unwrap_or_default();
        if state == "error" || state == "missingFiles" {
            bail!("qBittorrent state {state}: {t}");
        }
        let complete = t["progress"].as_f64() == Some(1.0)
            && matches!(
                state,
                "uploading" | "stalledUP" | "queuedUP" | "forcedUP" | "pausedUP"
            );
        let peerless = t["num_seeds"].as_u64() == Some(0) && t["num_leechs"].as_u64() == Some(0);
        let checking = state.starts_with("checking");
        if !complete
            && !checking
            && peerless
            && !self.peers.is_empty()
            && self
                .last_add_peers
                .is_none_or(|at| at.elapsed() > Duration::from_secs(3))
        {
            self.add_peers(netns)?;
        }
        Ok(complete)
    }

    fn add_peers(&mut self, netns: Option<&Netns>) -> Result<()> {
        let peers: Vec<String> = self.peers.iter().map(SocketAddr::to_string).collect();
        let peers = peers.join("|");
        let form = [("hashes", self.hash.as_str()), ("peers", peers.as_str())];
        self.post(netns, "torrents/addPeers", &form)?;
        self.last_add_peers = Some(Instant::now());
        Ok(())
    }
}

/// Runs `curl -sS --fail ARGS...` (in `netns`), returning the body.
fn curl(netns: Option<&Netns>, args: &[&str]) -> Result<String> {
    let out = command_in(netns, "curl")
        .args(["-sS", "--fail", "--max-time", "10"])
        .args(args)
        .output()
        .context("run curl")?;
    ensure!(
        out.status.success(),
        "curl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

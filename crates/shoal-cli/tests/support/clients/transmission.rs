//! Transmission 3.00 as a reference client: `transmission-daemon -f -g CONFIG` with a generated
//! `settings.json`, driven by `transmission-remote` (run in the same namespace).
//!
//! Settings: peer port and `bind-address-ipv4` from the client's address; RPC on 127.0.0.1 at a
//! free port, whitelist 127.0.0.1, no authentication; DHT, LPD, PEX, uTP, port forwarding,
//! queues, ratio and idle limits all off; encryption "preferred" (Transmission's default).
//! Peers reach a leecher through a [`super::PeerListTracker`] added with `--tracker-add`;
//! Transmission ignores tracker peers at 127.0.0.0/8, so those are refused here with a hint.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};

use super::super::data::free_port;
use super::super::netns::{command_in, Netns};
use super::{Control, Role, RunningClient, Start};

/// Transmission never dials tracker peers at 127.0.0.0/8: refuse them up front with a hint.
pub(super) fn check_leech_peers(peers: &[SocketAddr]) -> Result<()> {
    if let Some(bad) = peers.iter().find(|p| p.ip().is_loopback()) {
        bail!(
            "Transmission never dials tracker peers at 127.0.0.0/8 (got {bad}): run the \
             seeder and Transmission in a Netns and use its 10.99.0.x addresses"
        );
    }
    Ok(())
}

pub(super) fn start(ctx: &Start<'_>, c: &mut RunningClient) -> Result<()> {
    let rpc = SocketAddr::new(
        IpAddr::V4(Ipv4Addr::LOCALHOST),
        free_port(Ipv4Addr::LOCALHOST),
    );
    let config = c.work.join("transmission");
    std::fs::create_dir_all(&config)?;
    std::fs::write(config.join("settings.json"), settings(c, rpc).to_string())?;
    let mut cmd = command_in(c.netns.as_ref(), "transmission-daemon");
    cmd.args(["-f", "-g"]).arg(&config);
    c.spawn("transmission-daemon", cmd)?;
    c.control = Control::Transmission { rpc };
    wait_rpc(c, rpc, ctx.client.ready_timeout)?;

    let netns = c.netns.as_ref();
    let torrent = ctx.torrent.to_string_lossy();
    let dir = c.dir.to_string_lossy().into_owned();
    remote(netns, rpc, &["-a", &torrent, "-w", &dir])?;
    let mut trackers = ctx.client.trackers.clone();
    if c.role == Role::Leech && !ctx.peers.is_empty() {
        trackers.push(c.peer_list_tracker(ctx.peers)?);
    }
    for url in &trackers {
        remote(c.netns.as_ref(), rpc, &["-t", "all", "--tracker-add", url])?;
    }
    if c.role == Role::Seed {
        // Transmission verifies local data when a torrent is added; wait for it.
        let deadline = Instant::now() + ctx.client.ready_timeout;
        while !is_complete(c.netns.as_ref(), rpc)? {
            if Instant::now() > deadline {
                bail!("data in {dir} not verified complete in time");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    Ok(())
}

fn settings(c: &RunningClient, rpc: SocketAddr) -> serde_json::Value {
    serde_json::json!({
        "bind-address-ipv4": c.addr.ip().to_string(),
        "bind-address-ipv6": "::1",
        "peer-port": c.addr.port(),
        "peer-port-random-on-start": false,
        "port-forwarding-enabled": false,
        "dht-enabled": false,
        "lpd-enabled": false,
        "pex-enabled": false,
        "utp-enabled": false,
        "encryption": 1,
        "rpc-enabled": true,
        "rpc-bind-address": rpc.ip().to_string(),
        "rpc-port": rpc.port(),
        "rpc-authentication-required": false,
        "rpc-whitelist-enabled": true,
        "rpc-whitelist": "127.0.0.1",
        "rpc-host-whitelist-enabled": false,
        "download-dir": c.dir.to_string_lossy(),
        "incomplete-dir-enabled": false,
        "rename-partial-files": false,
        "start-added-torrents": true,
        "speed-limit-up-enabled": false,
        "speed-limit-down-enabled": false,
        "alt-speed-enabled": false,
        "ratio-limit-enabled": false,
        "idle-seeding-limit-enabled": false,
        "download-queue-enabled": false,
        "seed-queue-enabled": false,
        "queue-stalled-enabled": false,
        "watch-dir-enabled": false,
        "blocklist-enabled": false,
        "message-level": 2,
        "cache-size-mb": 4,
    })
}

fn wait_rpc(c: &mut RunningClient, rpc: SocketAddr, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        if remote(c.netns.as_ref(), rpc, &["-l"]).is_ok() {
            return Ok(());
        }
        if let Some(status) = c.procs[0].try_exit() {
            bail!("transmission-daemon exited ({status})");
        }
        if Instant::now() > deadline {
            bail!("transmission-daemon RPC on {rpc} not answering after {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Runs `transmission-remote RPC ARGS...`, returning stdout.
fn remote(netns: Option<&Netns>, rpc: SocketAddr, args: &[&str]) -> Result<String> {
    let out = command_in(netns, "transmission-remote")
        .arg(rpc.to_string())
        .args(args)
        .output()
        .context("run transmission-remote")?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    ensure!(
        out.status.success(),
        "transmission-remote {args:?} failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(stdout)
}

/// True once the (only) torrent is 100% and seeding or idle (verified, not still writing).
pub(super) fn is_complete(netns: Option<&Netns>, rpc: SocketAddr) -> Result<bool> {
    let info = remote(netns, rpc, &["-t", "all", "-i"])?;
    let field = |name: &str| {
        info.lines()
            .find_map(|l| l.trim().strip_prefix(name))
            .map(|v| v.trim().to_owned())
    };
    if let Some(error) = field("Error:") {
        bail!("transmission reports: {error}");
    }
    let percent = field("Percent Done:");
    let state = field("State:");
    Ok(percent.as_deref() == Some("100%")
        && matches!(state.as_deref(), Some("Seeding" | "Idle" | "Finished")))
}

//! shoal itself as one more client, so interop tests can pair it with any reference client:
//! `shoal seed TORRENT DATA_DIR --listen ADDR [--peer P]... --state-dir WORK/state` (ready once
//! it prints `seeding ...` after checking the data) and `shoal download TORRENT -o OUT --listen
//! ADDR --peer P... --state-dir WORK/state` (complete when it exits 0).

use anyhow::{Context, Result};

use super::super::netns::command_in;
use super::{Control, Role, RunningClient, Start};

/// The `shoal` binary Cargo built for these integration tests.
pub(super) const SHOAL_BIN: Option<&str> = option_env!("CARGO_BIN_EXE_shoal");

pub(super) fn start(ctx: &Start<'_>, c: &mut RunningClient) -> Result<()> {
    let bin = SHOAL_BIN.context("no shoal binary: Kind::Shoal works in shoal-cli's own tests")?;
    let state = c.work.join("state");
    let mut cmd = command_in(c.netns.as_ref(), bin);
    if c.role == Role::Seed {
        cmd.arg("seed").arg(ctx.torrent).arg(&c.dir);
    } else {
        cmd.arg("download").arg(ctx.torrent).arg("-o").arg(&c.dir);
    }
    // Tests never reach beyond this machine: no DHT bootstrap from the public routers.
    cmd.args(["--listen", &c.addr.to_string(), "--no-dht"])
        .arg("--state-dir")
        .arg(&state)
        .env("RUST_LOG", log_filter(ctx));
    for peer in ctx.peers {
        cmd.args(["--peer", &peer.to_string()]);
    }
    let seeding = c.role == Role::Seed;
    c.control = Control::ExitsWhenComplete;
    let proc = c.spawn("shoal", cmd)?;
    if seeding {
        proc.wait_line("seeding ", ctx.client.ready_timeout)?;
    }
    Ok(())
}

/// The `RUST_LOG` filter for shoal: the one asked for, else the test's own, else `info`.
fn log_filter(ctx: &Start<'_>) -> String {
    ctx.client
        .shoal_log
        .clone()
        .or_else(|| std::env::var("RUST_LOG").ok())
        .unwrap_or_else(|| "info".into())
}

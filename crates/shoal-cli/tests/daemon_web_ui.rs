//! The daemon's web UI in a real browser: headless Chromium (Debian's `/usr/bin/chromium`, driven
//! by `playwright-core` from `tests/daemon/ui_flow.mjs`) adds a torrent through the file input,
//! watches it complete, pauses, resumes and removes it, saving a screenshot at every step.
//!
//! Setup: content (two files) and its torrent announcing to a fresh opentracker on 127.0.0.1; a
//! `shoal seed` process announces there; `shoal daemon` (own state and download folders, HTTP
//! and peer ports on 127.0.0.1, no DHT, from a TOML config) learns of the seeder from the tracker
//! only. After the browser flow, the downloaded bytes must equal the source and every screenshot
//! must be a non-empty PNG; they stay in `$CARGO_TARGET_TMPDIR/daemon-web-ui/` (the test prints
//! the folder).
//!
//! When the browser is missing: `node`, `/usr/bin/chromium` or `tests/daemon/node_modules`
//! (`npm ci --prefix tests/daemon`) absent makes the test print `SKIPPED` and pass on a
//! developer's machine, but **fail** when the environment variable `CI` is `true` or `1` (as in
//! `.ci/run`, which installs all three through `.ci/install-deps`).

use crate::support;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, ensure, Context, Result};
use support::*;

const SHOAL: &str = env!("CARGO_BIN_EXE_shoal");
const CHROMIUM: &str = "/usr/bin/chromium";
const PNG_MAGIC: &[u8] = b"\x89PNG\r\n\x1a\n";

fn daemon_tests_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/daemon")
}

/// True when the browser stack is here; otherwise skips (false) or, under CI, panics.
fn browser_available() -> bool {
    let node = Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    let playwright = daemon_tests_dir()
        .join("node_modules/playwright-core/package.json")
        .is_file();
    let missing: Vec<&str> = [
        (!node, "node"),
        (!Path::new(CHROMIUM).is_file(), CHROMIUM),
        (
            !playwright,
            "tests/daemon/node_modules (npm ci --prefix tests/daemon)",
        ),
    ]
    .iter()
    .filter(|(absent, _)| *absent)
    .map(|(_, what)| *what)
    .collect();
    if missing.is_empty() {
        return true;
    }
    let in_ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
    assert!(
        !in_ci,
        "the web UI test needs {} (CI=true: .ci/install-deps installs them)",
        missing.join(", ")
    );
    eprintln!(
        "SKIPPED: the web UI test needs {} (it fails instead when CI=true)",
        missing.join(", ")
    );
    false
}

/// Waits until the tracker knows the seeder for `hash`, counted as complete or not (a seeder may
/// announce `started` before its data check ends; the `stopped` probe adds nobody).
fn wait_for_seeder(tracker: &OpenTracker, hash: &str) -> Result<()> {
    for _ in 0..300 {
        let reply = support::trackers::http_announce(tracker.addr(), hash, 1, Some("stopped"))?;
        if reply.contains("8:completei1e") || reply.contains("10:incompletei1e") {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!("the seeder never announced to the tracker")
}

/// Starts `shoal daemon` from a config file in `work`; returns it and its web UI's URL.
fn start_daemon(work: &WorkDir) -> Result<(Proc, String)> {
    let state = work.join("daemon-state");
    let downloads = work.join("downloads");
    std::fs::create_dir_all(&downloads)?;
    let peer = loopback(1);
    let config = format!(
        "http_addr = \"127.0.0.1:0\"\npeer_addr = \"{peer}\"\nstate_dir = {state:?}\n\
         download_dir = {downloads:?}\ndht = false\n"
    );
    let config_path = work.join("daemon.toml");
    std::fs::write(&config_path, config)?;
    let mut cmd = Command::new(SHOAL);
    cmd.arg("daemon")
        .arg("--config")
        .arg(&config_path)
        .arg("--no-dht");
    let mut daemon = Proc::spawn("shoal daemon", cmd, &work.join("daemon.log"))?;
    let line = daemon.wait_line("shoal daemon: web UI and RPC on ", Duration::from_secs(30))?;
    let url = line
        .trim_start_matches("shoal daemon: web UI and RPC on ")
        .trim()
        .to_owned();
    ensure!(url.starts_with("http://127.0.0.1:"), "daemon URL {url:?}");
    Ok((daemon, url))
}

/// Checks every screenshot the flow named exists and is a non-empty PNG; returns how many.
fn check_screenshots(flow_output: &str) -> Result<usize> {
    let mut count = 0;
    for line in flow_output.lines() {
        let Some(path) = line.strip_prefix("SCREENSHOT ") else {
            continue;
        };
        let bytes = std::fs::read(path).with_context(|| format!("screenshot {path}"))?;
        ensure!(
            bytes.len() > 1000 && bytes.starts_with(PNG_MAGIC),
            "{path} is not a PNG screenshot ({} bytes)",
            bytes.len()
        );
        count += 1;
    }
    Ok(count)
}

fn run_flow(url: &str, torrent: &Path, hash: &str, shots: &Path) -> Result<String> {
    let output = Command::new("node")
        .current_dir(daemon_tests_dir())
        .arg("ui_flow.mjs")
        .args(["--url", url, "--hash", hash])
        .arg("--torrent")
        .arg(torrent)
        .arg("--shots")
        .arg(shots)
        .output()
        .context("running node ui_flow.mjs")?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    eprintln!("{stdout}{stderr}");
    ensure!(
        output.status.success() && stdout.contains("UI FLOW OK"),
        "the browser flow failed ({})",
        output.status
    );
    Ok(stdout)
}

#[test]
fn web_ui_adds_downloads_pauses_and_removes_a_torrent() -> Result<()> {
    if !(browser_available() && require_tool("opentracker")) {
        return Ok(());
    }
    track(flow())
}

fn flow() -> Result<()> {
    let work = WorkDir::new("web-ui")?;
    let content = write_dataset(&work.join("seed"), "data", &[600_000, 123_457], 31)?;
    let tracker = OpenTracker::start(&[])?;
    let torrent = work.join("data.torrent");
    let (_, hash) = create_with_tracker(&content, &tracker.http_url(), &torrent)?;
    tracker.allow(&hash)?;
    let seeder = RefClient::new(Kind::Shoal).seed(&torrent, &work.join("seed"), loopback(1))?;
    wait_for_seeder(&tracker, &hash).map_err(|e| {
        mark_failed();
        e.context(format!("{}{}", seeder.logs(), tracker.log_tail()))
    })?;
    let (daemon, url) = start_daemon(&work)?;

    let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("daemon-web-ui");
    if shots.exists() {
        std::fs::remove_dir_all(&shots)?;
    }
    eprintln!("screenshots: {}", shots.display());
    let flow = run_flow(&url, &torrent, &hash, &shots).map_err(|e| {
        mark_failed();
        e.context(format!(
            "{}{}{}",
            daemon.log_tail(),
            seeder.logs(),
            tracker.log_tail()
        ))
    })?;
    let count = check_screenshots(&flow)?;
    ensure!(count >= 8, "only {count} screenshots were saved");
    assert_same_tree(&content, &work.join("downloads/data"))
}

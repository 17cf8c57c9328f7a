//! shoal finds peers through a real tracker: Debian's opentracker on 127.0.0.1, HTTP and UDP.
//!
//! shoal downloads from a libtorrent seeder it learns of only from the tracker (no `--peer`), and
//! a libtorrent leecher finds a shoal seeder the same way. Every download is compared byte for
//! byte with the source. `shoal seed` shows each tracker's status: the working one `ok` with its
//! next announce ahead, a dead one (closed loopback port) with its error.

use crate::support;

use std::path::Path;
use std::process::Command;

use anyhow::Result;
use support::*;

const SHOAL: &str = env!("CARGO_BIN_EXE_shoal");
const MIB: u64 = 1 << 20;

fn shoal_downloads_from_libtorrent_through(udp: bool) -> Result<()> {
    shoal_downloads_through(Kind::Libtorrent, udp)
}

/// Waits until the tracker counts one seeder for `hash` (a `stopped` probe adds nobody).
fn wait_for_seeder(tracker: &OpenTracker, hash: &str) -> Result<()> {
    for _ in 0..300 {
        let reply = support::trackers::http_announce(tracker.addr(), hash, 1, Some("stopped"))?;
        if reply.contains("8:completei1e") {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    anyhow::bail!("the seeder never announced to the tracker")
}

/// A `seeder` of the given kind and a shoal leecher announce to one opentracker; shoal gets the
/// seeder's address from the tracker only.
fn shoal_downloads_through(seeder: Kind, udp: bool) -> Result<()> {
    if !(require_tool("opentracker") && seeder.require()) {
        return Ok(());
    }
    let work = WorkDir::new(&format!(
        "trk-{}-{}",
        seeder.name(),
        if udp { "udp" } else { "http" }
    ))?;
    let content = write_dataset(&work.join("seed"), "data", &[3 * MIB + 7, 100_000], 21)?;
    let tracker = OpenTracker::start(&[])?;
    let url = if udp {
        tracker.udp_url()
    } else {
        tracker.http_url()
    };
    let (torrent, hash) = create_with_tracker(&content, &url, &work.join("data.torrent"))?;
    tracker.allow(&hash)?;
    // libtorrent's harness drops the torrent's own trackers, so it is given the URL again;
    // Transmission keeps them (and refuses to add one it already has).
    let client = match seeder {
        Kind::Transmission => RefClient::new(seeder),
        _ => RefClient::new(seeder).with_tracker(&url),
    };
    let _seeder = client.seed(&torrent, &work.join("seed"), loopback(1))?;
    wait_for_seeder(&tracker, &hash)?;
    let mut leecher =
        RefClient::new(Kind::Shoal).leech(&torrent, &work.join("out"), loopback(2), &[])?;
    leecher
        .wait_complete(Duration::from_secs(60))
        .map_err(|e| e.context(tracker.log_tail()))?;
    assert_same_tree(&content, &work.join("out/data"))
}

#[test]
fn shoal_finds_a_libtorrent_seeder_through_opentracker_http() -> Result<()> {
    shoal_downloads_from_libtorrent_through(false)
}

#[test]
fn shoal_finds_a_libtorrent_seeder_through_opentracker_udp() -> Result<()> {
    shoal_downloads_from_libtorrent_through(true)
}

/// Transmission 3.00 only refuses to *dial* tracker peers at 127/8; as a seeder it accepts
/// shoal's connection (shoal dials from its own listen address, not the seeder's).
#[test]
fn shoal_finds_a_transmission_seeder_through_opentracker() -> Result<()> {
    shoal_downloads_through(Kind::Transmission, false)
}

#[test]
fn shoal_finds_a_transmission_seeder_through_opentracker_udp() -> Result<()> {
    shoal_downloads_through(Kind::Transmission, true)
}

#[test]
fn libtorrent_finds_a_shoal_seeder_through_opentracker() -> Result<()> {
    if !(require_tool("opentracker") && Kind::Libtorrent.require()) {
        return Ok(());
    }
    let work = WorkDir::new("trk-shoal-seed")?;
    let content = write_dataset(&work.join("seed"), "data", &[2 * MIB + 3], 22)?;
    let tracker = OpenTracker::start(&[])?;
    let url = tracker.http_url();
    let (torrent, hash) = create_with_tracker(&content, &url, &work.join("data.torrent"))?;
    tracker.allow(&hash)?;
    let _seeder = RefClient::new(Kind::Shoal).seed(&torrent, &work.join("seed"), loopback(1))?;
    // The shoal seeder announces as soon as it has checked its data; give it a moment.
    std::thread::sleep(Duration::from_millis(500));
    let mut leecher = RefClient::new(Kind::Libtorrent).with_tracker(&url).leech(
        &torrent,
        &work.join("out"),
        loopback(2),
        &[],
    )?;
    leecher
        .wait_complete(Duration::from_secs(60))
        .map_err(|e| e.context(tracker.log_tail()))?;
    assert_same_tree(&content, &work.join("out/data"))
}

/// An http URL on 127.0.0.1 whose port nobody listens on.
fn dead_tracker_url() -> Result<String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    drop(listener);
    Ok(format!("http://{addr}/announce"))
}

/// `shoal seed` of `torrent` (data in `work/seed`), its output kept in `work/NAME.log`.
fn shoal_seed(
    work: &WorkDir,
    name: &str,
    torrent: &Path,
    addr: std::net::SocketAddr,
) -> Result<Proc> {
    let mut cmd = Command::new(SHOAL);
    cmd.arg("seed")
        .arg(torrent)
        .arg(work.join("seed"))
        .args(["--listen", &addr.to_string(), "--no-dht"])
        .arg("--state-dir")
        .arg(work.join(name))
        .env("RUST_LOG", "warn");
    Proc::spawn(name, cmd, &work.join(format!("{name}.log")))
}

/// The seconds in a `next announce in 1m05s` text (`None` when the line has none).
fn next_announce_secs(line: &str) -> Option<u64> {
    let text = line.split(", next announce in ").nth(1)?;
    let mut secs = 0;
    let mut number = 0;
    for c in text.chars() {
        match c {
            '0'..='9' => number = number * 10 + u64::from(c as u8 - b'0'),
            'h' => (secs, number) = (secs + number * 3600, 0),
            'm' => (secs, number) = (secs + number * 60, 0),
            's' => (secs, number) = (secs + number, 0),
            _ => break,
        }
    }
    Some(secs)
}

#[test]
fn shoal_seed_shows_each_trackers_status() -> Result<()> {
    if !require_tool("opentracker") {
        return Ok(());
    }
    let work = WorkDir::new("trk-status")?;
    let content = write_dataset(&work.join("seed"), "data", &[300_000], 23)?;
    let tracker = OpenTracker::start(&[])?;
    let live = tracker.http_url();
    let (torrent, hash) = create_with_tracker(&content, &live, &work.join("live.torrent"))?;
    tracker.allow(&hash)?;
    let dead = dead_tracker_url()?;
    let (dead_torrent, _) = create_with_tracker(&content, &dead, &work.join("dead.torrent"))?;

    let mut seeder = shoal_seed(&work, "seed-live", &torrent, loopback(1))?;
    let working = seeder.wait_line(&format!("tracker {live}: "), Duration::from_secs(60))?;
    assert!(working.contains(": ok, "), "live tracker line: {working}");
    assert!(working.contains("seeders"), "live tracker line: {working}");
    let next = next_announce_secs(&working);
    assert!(next.is_some_and(|s| s > 0), "live tracker line: {working}");
    wait_for_seeder(&tracker, &hash).map_err(|e| e.context(seeder.log_tail()))?;

    let mut orphan = shoal_seed(&work, "seed-dead", &dead_torrent, loopback(2))?;
    let failed = orphan.wait_line(&format!("tracker {dead}: "), Duration::from_secs(60))?;
    assert!(
        failed.contains(": error: HTTP request failed"),
        "dead tracker line: {failed}"
    );
    // It backs off (about 15 s) before trying again.
    let retry = next_announce_secs(&failed);
    assert!(
        retry.is_some_and(|s| (5..=25).contains(&s)),
        "dead tracker line: {failed}"
    );
    Ok(())
}

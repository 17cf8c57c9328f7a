//! The interop harness proving itself: reference clients seed to and leech from each other on
//! loopback (Transmission as a leecher inside a network namespace), find each other through
//! opentracker, and every download is compared byte for byte with the seeded data. The shoal
//! interop tests copy these, swapping one side for `shoal seed` / `shoal download`.
//!
//! These need the real clients (see `tests/interop/README.md`); a missing one fails the test
//! naming it, unless `SHOAL_SKIP_INTEROP=1`.

use crate::support;

use std::net::{IpAddr, SocketAddr};

use anyhow::Result;
use support::*;

const KIB: u64 = 1024;
const MIB: u64 = 1024 * 1024;
const COMPLETE_WITHIN: Duration = Duration::from_secs(90);

/// Seeds a fresh data set with `seeder`, downloads it with `leecher` on loopback, and checks the
/// download byte for byte.
fn loopback_swarm(seeder: Kind, leecher: Kind, piece_size: u32, sizes: &[u64]) -> Result<()> {
    if !(Kind::Libtorrent.require() && seeder.require() && leecher.require()) {
        return Ok(());
    }
    let label = format!("{}-to-{}", seeder.name(), leecher.name());
    let work = WorkDir::new(&label)?;
    let content = write_dataset(&work.join("seed"), "data", sizes, 42)?;
    let torrent = make_torrent(&content, piece_size, &work.join("data.torrent"))?;
    // Seeder and leecher on different 127/8 addresses: Transmission drops a peer whose source
    // address equals its own.
    let source = seed(seeder, &torrent.path, &work.join("seed"), loopback(1))?;
    let mut sink = leech(
        leecher,
        &torrent.path,
        &work.join("leech"),
        loopback(2),
        &[source.addr()],
    )?;
    let summary = sink.wait_complete(COMPLETE_WITHIN)?;
    assert_same_tree(&content, &work.join("leech/data"))?;
    assert_eq!(summary.bytes, torrent.bytes, "{summary:?}");
    eprintln!(
        "{label}: {} bytes in {:.2}s",
        summary.bytes, summary.seconds
    );
    Ok(())
}

#[test]
fn libtorrent_seeds_to_libtorrent_16k_pieces() -> Result<()> {
    loopback_swarm(
        Kind::Libtorrent,
        Kind::Libtorrent,
        16 * 1024,
        &[3 * MIB, 1, 200 * KIB + 7],
    )
}

#[test]
fn libtorrent_seeds_to_aria2() -> Result<()> {
    loopback_swarm(
        Kind::Libtorrent,
        Kind::Aria2,
        16 * 1024,
        &[2 * MIB + 3, 333],
    )
}

#[test]
fn libtorrent_seeds_to_qbittorrent_4m_pieces() -> Result<()> {
    loopback_swarm(
        Kind::Libtorrent,
        Kind::Qbittorrent,
        4 * 1024 * 1024,
        &[5 * MIB, 4 * MIB + 3],
    )
}

#[test]
fn aria2_seeds_to_libtorrent() -> Result<()> {
    loopback_swarm(Kind::Aria2, Kind::Libtorrent, 16 * 1024, &[2 * MIB, 5000])
}

#[test]
fn transmission_seeds_to_libtorrent() -> Result<()> {
    loopback_swarm(
        Kind::Transmission,
        Kind::Libtorrent,
        16 * 1024,
        &[2 * MIB + 1, 4097],
    )
}

#[test]
fn qbittorrent_seeds_to_libtorrent_4m_pieces() -> Result<()> {
    loopback_swarm(
        Kind::Qbittorrent,
        Kind::Libtorrent,
        4 * 1024 * 1024,
        &[6 * MIB + 5],
    )
}

/// Transmission only dials tracker peers outside 127/8, so seeder, peer-list tracker and
/// Transmission all run in a namespace with 10.99.0.1 and 10.99.0.2 on its `lo`.
#[test]
fn libtorrent_seeds_to_transmission_in_a_netns() -> Result<()> {
    if !(require_netns() && Kind::Libtorrent.require() && Kind::Transmission.require()) {
        return Ok(());
    }
    let work = WorkDir::new("libtorrent-to-transmission")?;
    let content = write_dataset(&work.join("seed"), "data", &[2 * MIB, 10_001], 7)?;
    let torrent = make_torrent(&content, 16 * 1024, &work.join("data.torrent"))?;
    let ns = Netns::with_hosts(2)?;
    let at = |host: usize, port: u16| SocketAddr::new(IpAddr::V4(ns.addr(host)), port);
    let source = RefClient::new(Kind::Libtorrent).in_netns(&ns).seed(
        &torrent.path,
        &work.join("seed"),
        at(0, 6881),
    )?;
    let mut sink = RefClient::new(Kind::Transmission).in_netns(&ns).leech(
        &torrent.path,
        &work.join("leech"),
        at(1, 6882),
        &[source.addr()],
    )?;
    let summary = sink.wait_complete(COMPLETE_WITHIN)?;
    assert_same_tree(&content, &work.join("leech/data"))?;
    assert_eq!(summary.bytes, torrent.bytes);
    Ok(())
}

/// A Transmission leecher given a 127/8 peer is refused with a hint, instead of hanging.
#[test]
fn transmission_leecher_refuses_loopback_peers_with_a_hint() -> Result<()> {
    if !Kind::Transmission.require() {
        return Ok(());
    }
    let work = WorkDir::new("transmission-loopback")?;
    let content = write_dataset(&work.join("seed"), "data", &[1000], 1)?;
    let torrent = make_torrent(&content, 16 * 1024, &work.join("data.torrent"))?;
    let peer = loopback(1);
    let err = expected_error(leech(
        Kind::Transmission,
        &torrent.path,
        &work.join("leech"),
        loopback(2),
        &[peer],
    ));
    assert!(format!("{err:#}").contains("Netns"), "{err:#}");
    Ok(())
}

/// Both seeder and leecher announce to a fresh opentracker and find each other through it.
fn through_opentracker(udp: bool) -> Result<()> {
    if !(require_tool("opentracker") && Kind::Libtorrent.require()) {
        return Ok(());
    }
    let work = WorkDir::new(if udp {
        "opentracker-udp"
    } else {
        "opentracker-http"
    })?;
    let content = write_dataset(&work.join("seed"), "data", &[MIB + 1], 3)?;
    let torrent = make_torrent(&content, 16 * 1024, &work.join("data.torrent"))?;
    let tracker = OpenTracker::start(&[&torrent.infohash])?;
    let url = if udp {
        tracker.udp_url()
    } else {
        tracker.http_url()
    };
    let client = RefClient::new(Kind::Libtorrent).with_tracker(&url);
    // `seed` returns after the seeder's first announce was answered.
    let _source = client.seed(&torrent.path, &work.join("seed"), loopback(1))?;
    let mut sink = client.leech(&torrent.path, &work.join("leech"), loopback(2), &[])?;
    let done = sink.wait_complete(Duration::from_secs(60));
    let summary = done.map_err(|e| e.context(tracker.log_tail()))?;
    assert_same_tree(&content, &work.join("leech/data"))?;
    assert_eq!(summary.bytes, torrent.bytes);
    Ok(())
}

#[test]
fn libtorrent_peers_meet_through_opentracker_http() -> Result<()> {
    through_opentracker(false)
}

#[test]
fn libtorrent_peers_meet_through_opentracker_udp() -> Result<()> {
    through_opentracker(true)
}

fn announce(tracker: SocketAddr, infohash: &str) -> Result<String> {
    support::trackers::http_announce(tracker, infohash, 6999, None)
}

/// opentracker refuses hashes not on its whitelist and accepts one added by `allow` (SIGHUP).
#[test]
fn opentracker_whitelist_reloads_on_allow() -> Result<()> {
    if !require_tool("opentracker") {
        return Ok(());
    }
    let listed = "11".repeat(20);
    let later = "22".repeat(20);
    let tracker = OpenTracker::start(&[&listed])?;
    assert!(!announce(tracker.addr(), &listed)?.contains("not authorized"));
    assert!(announce(tracker.addr(), &later)?.contains("not authorized"));
    tracker.allow(&later)?;
    let reply = announce(tracker.addr(), &later)?;
    assert!(!reply.contains("not authorized"), "{reply}");
    Ok(())
}

/// The tree comparison notices one flipped byte, a missing file and an extra file.
#[test]
fn tree_comparison_names_every_difference() -> Result<()> {
    let work = WorkDir::new("tree-compare")?;
    let a = write_dataset(work.path(), "a", &[1000, 20_000, 3], 9)?;
    let b = write_dataset(work.path(), "b", &[1000, 20_000, 3], 9)?;
    assert_same_tree(&a, &b)?;

    let flipped = b.join("sub/file-01.bin");
    let mut bytes = std::fs::read(&flipped)?;
    bytes[12_345] ^= 1;
    std::fs::write(&flipped, bytes)?;
    std::fs::remove_file(b.join("file-02.bin"))?;
    std::fs::write(b.join("stray.part"), b"x")?;
    let err = format!("{:#}", expected_error(assert_same_tree(&a, &b)));
    assert!(err.contains("different: sub/file-01.bin"), "{err}");
    assert!(err.contains("missing: file-02.bin"), "{err}");
    assert!(err.contains("extra: stray.part"), "{err}");
    Ok(())
}

/// Data sets are a pure function of their seed.
#[test]
fn data_sets_are_deterministic() -> Result<()> {
    let work = WorkDir::new("determinism")?;
    let one = write_dataset(work.path(), "one", &[70_001], 5)?;
    let two = write_dataset(work.path(), "two", &[70_001], 5)?;
    let other = write_dataset(work.path(), "other", &[70_001], 6)?;
    assert_eq!(tree_digest(&one)?, tree_digest(&two)?);
    assert_ne!(tree_digest(&one)?, tree_digest(&other)?);
    Ok(())
}

/// A missing tool fails the test with its name (unless SHOAL_SKIP_INTEROP=1).
#[test]
fn a_missing_tool_fails_loudly() {
    if skip_allowed() {
        assert!(!require_tool("shoal-no-such-client"));
        return;
    }
    let panic = std::panic::catch_unwind(|| require_tool("shoal-no-such-client"))
        .expect_err("a missing tool must fail the test");
    let message = panic.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(message.contains("shoal-no-such-client"), "{message}");
}

//! Peer exchange (BEP 11) with real processes on loopback: three peers, where the third is
//! known to the first only through PEX from the second; libtorrent's PEX to shoal, and shoal's
//! PEX to libtorrent.
//!
//! shoal leecher A is told only of libtorrent peer B (`--peer B`); B is a libtorrent leecher
//! connected to libtorrent seeder C, whose address A never gets from the test (no tracker, no
//! DHT). B downloads and uploads at most 4 KiB/s (so it stays a leecher with almost no data for
//! the whole test), so A can finish in the time allowed only by downloading from C, which it can reach only if it used the `ut_pex` message in which B lists C. The test
//! checks both: C logs a connection from A's address (C never dials out, so A opened it), and A's copy matches the source.

use crate::discovery;
use crate::support;

use std::time::Instant;

use anyhow::{ensure, Result};
use discovery::*;
use support::*;

const MIB: u64 = 1 << 20;

#[test]
fn shoal_connects_to_a_seeder_it_learns_of_only_through_libtorrent_pex() -> Result<()> {
    if !Kind::Libtorrent.require() {
        return Ok(());
    }
    let work = WorkDir::new("pex-lt-to-shoal")?;
    let content = write_dataset(&work.join("seed"), "data", &[3 * MIB + 1, 40_000], 51)?;
    let torrent = make_torrent(&content, 32 * 1024, &work.join("data.torrent"))?;
    let seeder_c = lt_seed(
        &Discovery::default(),
        &torrent.path,
        &work.join("seed"),
        loopback(21),
    )?;
    // B: a libtorrent leecher that knows C and moves at most 4 KiB/s each way: at that rate B
    // alone would need over 13 minutes to give A the data, and it stays a leecher (lt.py leech
    // exits once complete).
    let middle = Discovery {
        upload_limit: Some(4096),
        download_limit: Some(4096),
        ..Discovery::peers(&[seeder_c.addr()])
    };
    let mut middle_b = lt_leech(
        &middle,
        torrent.path.to_str().unwrap_or_default(),
        &work.join("b"),
        loopback(22),
    )?;
    let c = seeder_c.addr();
    middle_b.wait_for("connection from B to C", Duration::from_secs(15), |b| {
        b.events("peer_connected")
            .iter()
            .any(|e| e["addr"] == c.to_string().as_str())
    })?;

    let a_addr = loopback(23);
    let mut leecher_a = shoal_download(
        &Discovery {
            log: Some("shoal=debug".into()),
            ..Discovery::peers(&[middle_b.addr()])
        },
        torrent.path.to_str().unwrap_or_default(),
        &work.join("a"),
        a_addr,
    )?;
    leecher_a.wait_success(Duration::from_secs(40))?;
    assert!(
        lt_saw_connection_from(&seeder_c, a_addr.ip()),
        "shoal completed, yet seeder C never saw a connection from A ({a_addr}): \
         did A get C from PEX at all?\n{}{}",
        seeder_c.log_tail(),
        leecher_a.log_tail()
    );
    assert_same_tree(&content, &work.join("a/data"))
}

/// The other direction: libtorrent leecher A is told only of shoal leecher B; B knows libtorrent
/// seeder C, which only accepts connections. B moves at most 4 KiB/s each way, so A finishes only
/// by downloading from C, which it can reach only through B's `ut_pex` message. B sends its first
/// one a few seconds after A's extended handshake (not at a one-minute round), so C must see A
/// within 30 s of A starting.
#[test]
fn libtorrent_connects_to_a_seeder_it_learns_of_only_through_shoal_pex() -> Result<()> {
    if !Kind::Libtorrent.require() {
        return Ok(());
    }
    let work = WorkDir::new("pex-shoal-to-lt")?;
    let content = write_dataset(&work.join("seed"), "data", &[3 * MIB + 5, 30_000], 52)?;
    let torrent = make_torrent(&content, 32 * 1024, &work.join("data.torrent"))?;
    let seeder_c = lt_seed(
        &Discovery {
            no_outgoing: true,
            ..Discovery::default()
        },
        &torrent.path,
        &work.join("seed"),
        loopback(31),
    )?;
    let c = seeder_c.addr();
    let middle = Discovery {
        log: Some("shoal=debug".into()),
        shoal_args: ["--max-down", "4K", "--max-up", "4K"]
            .map(String::from)
            .to_vec(),
        ..Discovery::peers(&[c])
    };
    let middle_b = shoal_download(
        &middle,
        torrent.path.to_str().unwrap_or_default(),
        &work.join("b"),
        loopback(32),
    )?;
    let b_addr = middle_b.addr();
    let mut b_wait = Instant::now() + Duration::from_secs(30);
    while !lt_saw_incoming_from(&seeder_c, b_addr.ip()) {
        ensure!(
            Instant::now() < b_wait,
            "shoal B never connected to C\n{}{}",
            middle_b.log_tail(),
            seeder_c.log_tail()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let a_addr = loopback(33);
    let mut leecher_a = lt_leech(
        &Discovery::peers(&[b_addr]),
        torrent.path.to_str().unwrap_or_default(),
        &work.join("a"),
        a_addr,
    )?;
    b_wait = Instant::now() + Duration::from_secs(30);
    while !lt_saw_incoming_from(&seeder_c, a_addr.ip()) {
        ensure!(
            Instant::now() < b_wait,
            "within 30 s, libtorrent A never reached C, which only shoal B's PEX names\n{}{}{}",
            leecher_a.log_tail(),
            middle_b.log_tail(),
            seeder_c.log_tail()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    leecher_a.wait_success(Duration::from_secs(60))?;
    assert_same_tree(&content, &work.join("a/data"))
}

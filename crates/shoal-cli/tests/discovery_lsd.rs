//! Local service discovery (BEP 14) between two shoal processes, over real multicast inside a
//! network namespace the test creates (its own `lo` with MULTICAST on and a route for
//! 224.0.0.0/4, nothing else): the downloader is given no peer, no tracker and no DHT, and
//! finds the seeder only from its LSD announces. Nothing leaves the namespace.

use crate::discovery;
use crate::support;

use std::net::{Ipv4Addr, SocketAddr};
use std::process::Command;

use anyhow::{ensure, Result};
use discovery::*;
use support::*;

/// `ip -n NS ARGS...`, failing with its stderr.
fn ip_in(ns: &Netns, args: &[&str]) -> Result<()> {
    let out = Command::new("ip")
        .arg("-n")
        .arg(ns.name())
        .args(args)
        .output()?;
    ensure!(
        out.status.success(),
        "ip -n {} {args:?}: {}",
        ns.name(),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

#[test]
fn shoal_finds_a_shoal_seeder_through_lsd_in_a_namespace() -> Result<()> {
    if !(require_netns() && Kind::Libtorrent.require()) {
        return Ok(());
    }
    let work = WorkDir::new("lsd-shoal")?;
    let content = write_dataset(&work.join("seed"), "data", &[1_500_000, 3_000], 71)?;
    let torrent = make_torrent(&content, 16 * 1024, &work.join("data.torrent"))?;
    let ns = Netns::new(&[])?;
    ip_in(&ns, &["link", "set", "lo", "multicast", "on"])?;
    ip_in(&ns, &["route", "add", "224.0.0.0/4", "dev", "lo"])?;
    let lsd = Discovery {
        lsd: true,
        netns: Some(ns.clone()),
        ..Discovery::default()
    };
    // Ports of the namespace's own 127.0.0.1 (nothing else runs there).
    let seed_addr = SocketAddr::from((Ipv4Addr::LOCALHOST, 16881));
    let leech_addr = SocketAddr::from((Ipv4Addr::LOCALHOST, 16882));
    let seeder = shoal_seed(&lsd, &torrent.path, &work.join("seed"), seed_addr)?;
    let mut leecher = shoal_download(
        &lsd,
        torrent.path.to_str().unwrap_or_default(),
        &work.join("out"),
        leech_addr,
    )?;
    leecher.wait_success(Duration::from_secs(40))?;
    assert!(
        leecher.log().contains("download complete"),
        "{}",
        leecher.log_tail()
    );
    drop(seeder);
    assert_same_tree(&content, &work.join("out/data"))
}

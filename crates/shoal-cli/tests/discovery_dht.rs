//! Magnet links with no tracker and no peer given: the only way to the seeder is a Mainline DHT
//! of local nodes on 127.0.0.0/8 (libtorrent's and shoal's). Nothing here reaches beyond the
//! machine: shoal always gets `--dht-bootstrap` to a local libtorrent node, libtorrent gets no
//! routers.
//!
//! - shoal fetches the metadata and then the content from a libtorrent seeder that announced
//!   itself to a libtorrent DHT node.
//! - libtorrent fetches a magnet from a shoal seeder that announced itself to libtorrent DHT
//!   nodes. (Mixed networks where libtorrent queries shoal nodes are covered by
//!   `crates/shoal/tests/dht_libtorrent.rs`.)
//!
//! Each download is compared byte for byte with the source.

use crate::discovery;
use crate::support;

use std::net::SocketAddr;

use anyhow::Result;
use discovery::*;
use support::*;

const MIB: u64 = 1 << 20;

/// Waits until `node` holds an announce of `infohash` from `from`'s IP.
fn wait_announced(node: &mut Peer, infohash: &str, from: SocketAddr) -> Result<()> {
    let what = format!("DHT announce of {infohash} from {}", from.ip());
    node.wait_for(&what, Duration::from_secs(20), |n| {
        n.events("dht_announce").iter().any(|e| {
            e["info_hash"] == infohash
                && e["from"]
                    .as_str()
                    .and_then(|a| a.parse::<SocketAddr>().ok())
                    .is_some_and(|a| a.ip() == from.ip())
        })
    })
}

#[test]
fn shoal_fetches_a_magnet_from_a_libtorrent_seeder_found_on_a_local_dht() -> Result<()> {
    if !Kind::Libtorrent.require() {
        return Ok(());
    }
    let work = WorkDir::new("dht-magnet-shoal-leech")?;
    let content = write_dataset(&work.join("seed"), "data", &[2 * MIB + 5, 70_001], 41)?;
    let torrent = make_torrent(&content, 32 * 1024, &work.join("data.torrent"))?;
    assert!(
        !torrent.magnet.contains("tr="),
        "the magnet must name no tracker: {}",
        torrent.magnet
    );
    let mut node = lt_dht_node(loopback(1), &[])?;
    let seeder = lt_seed(
        &Discovery::dht(&[node.addr()]),
        &torrent.path,
        &work.join("seed"),
        loopback(2),
    )?;
    wait_announced(&mut node, &torrent.infohash, seeder.addr())?;

    let mut leecher = shoal_download(
        &Discovery::dht(&[node.addr()]),
        &torrent.magnet,
        &work.join("out"),
        loopback(3),
    )?;
    leecher.wait_success(Duration::from_secs(40))?;
    assert!(
        lt_saw_incoming_from(&seeder, leecher.addr().ip()),
        "the seeder never saw shoal connect:\n{}",
        seeder.log_tail()
    );
    let log = leecher.log();
    assert!(
        log.contains("metadata fetched and verified"),
        "shoal did not fetch the metadata:\n{log}"
    );
    assert_same_tree(&content, &work.join("out/data"))
}

#[test]
fn libtorrent_fetches_a_magnet_from_a_shoal_seeder_found_on_a_local_dht() -> Result<()> {
    if !Kind::Libtorrent.require() {
        return Ok(());
    }
    let work = WorkDir::new("dht-magnet-shoal-seed")?;
    let content = write_dataset(&work.join("seed"), "data", &[2 * MIB + 9], 42)?;
    let torrent = make_torrent(&content, 32 * 1024, &work.join("data.torrent"))?;
    // Two libtorrent nodes that know each other: each answers the other's queries, which no
    // shoal node does for libtorrent (see the module doc).
    let node_a = lt_dht_node(loopback(11), &[])?;
    let node_b = lt_dht_node(loopback(12), &[node_a.addr()])?;
    let nodes = [node_a.addr(), node_b.addr()];
    let watched = [node_a, node_b];
    let seeder = shoal_seed(
        &Discovery::dht(&nodes),
        &torrent.path,
        &work.join("seed"),
        loopback(13),
    )?;
    // shoal looks the torrent up, then announces itself: one of the two nodes stores it.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let announced = |n: &Peer| {
        n.events("dht_announce").iter().any(|e| {
            e["info_hash"] == torrent.infohash.as_str()
                && e["from"]
                    .as_str()
                    .is_some_and(|a| a.starts_with(&format!("{}:", seeder.addr().ip())))
        })
    };
    while !watched.iter().any(announced) {
        if std::time::Instant::now() > deadline {
            mark_failed();
            anyhow::bail!(
                "shoal never announced {} to the libtorrent DHT nodes:\n{}{}{}",
                torrent.infohash,
                seeder.log_tail(),
                watched[0].log_tail(),
                watched[1].log_tail()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }

    let mut leecher = lt_leech(
        &Discovery::dht(&nodes),
        &torrent.magnet,
        &work.join("out"),
        loopback(14),
    )?;
    leecher.wait_success(Duration::from_secs(40))?;
    assert!(
        lt_saw_connection_to(&leecher, seeder.addr()),
        "libtorrent completed without connecting to the shoal seeder:\n{}",
        leecher.log_tail()
    );
    assert_same_tree(&content, &work.join("out/data"))
}

//! Private torrents (BEP 27) stay off the DHT: a shoal seeder of a private torrent, with its DHT
//! on and bootstrapped from a libtorrent DHT node the test watches, never announces the torrent
//! there nor looks it up, while a shoal seeder of a public torrent on the same DHT does both
//! (the control that proves the node sees what shoal sends).
//!
//! PEX for private torrents is covered below the wire: shoal leaves `ut_pex` out of its extended
//! handshake, so compliant peers never send it any, and the engine neither sends nor acts on
//! PEX for them (`shoal-engine` torrent tests, `shoal-sim` private swarm scenario). Its first
//! PEX round comes 60 s after start, too late for a test of this size to watch it not happen.

use crate::discovery;
use crate::support;

use anyhow::Result;
use discovery::*;
use support::*;

#[test]
fn a_private_torrent_is_never_announced_or_looked_up_on_the_dht() -> Result<()> {
    if !Kind::Libtorrent.require() {
        return Ok(());
    }
    let work = WorkDir::new("private-dht")?;
    let private_data = write_dataset(&work.join("private"), "data", &[300_000], 61)?;
    let public_data = write_dataset(&work.join("public"), "data", &[300_000], 62)?;
    let private_hash =
        make_private_torrent(&private_data, 16 * 1024, &work.join("private.torrent"))?;
    let public = make_torrent(&public_data, 16 * 1024, &work.join("public.torrent"))?;
    let mut node = lt_dht_node(loopback(31), &[])?;
    let dht = Discovery::dht(&[node.addr()]);
    let private_seeder = shoal_seed(
        &dht,
        &work.join("private.torrent"),
        &work.join("private"),
        loopback(32),
    )?;
    let public_seeder = shoal_seed(&dht, &public.path, &work.join("public"), loopback(33))?;

    // The control: the public torrent reaches the node (lookup, then announce).
    node.wait_for(
        "announce of the public torrent",
        Duration::from_secs(20),
        |n| {
            n.events("dht_announce")
                .iter()
                .any(|e| e["info_hash"] == public.infohash.as_str())
        },
    )?;
    // Both seeders started together; give the private one as long again to misbehave.
    std::thread::sleep(Duration::from_secs(3));
    let seen = dht_hashes_seen(&node);
    assert!(seen.contains(&public.infohash), "control failed: {seen:?}");
    assert!(
        !seen.contains(&private_hash),
        "the private torrent {private_hash} reached the DHT node:\n{}{}",
        node.log_tail(),
        private_seeder.log_tail()
    );
    // The private seeder did run a DHT node (it was not simply off): it queried the node too.
    assert!(
        private_seeder.log().contains("DHT node started"),
        "{}",
        private_seeder.log_tail()
    );
    drop(public_seeder);
    Ok(())
}

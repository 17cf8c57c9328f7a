//! Extension scenarios: peers found through PEX (and none for a private torrent), a magnet
//! link's metadata fetched past a peer that lies about it, and allowed-fast pieces reaching a
//! leecher that is never unchoked.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::Duration;

use shoal_engine::choker::ChokerConfig;
use shoal_engine::metadata::{FetchDropReason, MetadataEvent};
use shoal_engine::torrent::{PeerSource, TorrentConfig, TorrentEvent};
use shoal_proto::wire::allowed_fast::allowed_fast_set;
use shoal_sim::{Behaviour, LinkParams, NodeId, NodeSpec, Sim, SimConfig};

/// A slow swarm (8 KiB/s per connection): a 1 MiB torrent takes minutes, so PEX rounds (one a
/// minute) happen while everyone still trades.
fn slow_config(seed: u64, private: bool) -> SimConfig {
    SimConfig {
        seed,
        link: LinkParams {
            bandwidth: 8 * 1024,
            ..LinkParams::default()
        },
        private,
        ..SimConfig::default()
    }
}

/// B seeds; A and C are leechers that only know B. C reaches B first.
fn pex_triangle(private: bool) -> (Sim, NodeId, NodeId, NodeId) {
    let mut sim = Sim::new(slow_config(21, private)).unwrap();
    let a = sim.add_node(NodeSpec::default());
    let b = sim.add_node(NodeSpec {
        seed: true,
        ..NodeSpec::default()
    });
    let c = sim.add_node(NodeSpec::default());
    sim.introduce(c, &[b]);
    sim.introduce(a, &[b]);
    (sim, a, b, c)
}

#[test]
fn a_peer_known_only_through_pex_gets_connected() {
    let (mut sim, a, b, c) = pex_triangle(false);
    let c_addr = sim.node(c).addr;
    assert!(
        sim.run_until(Duration::from_secs(200), |sim| sim
            .node(a)
            .connected_to(c_addr)),
        "A never connected to C"
    );
    assert!(sim.node(b).sent.pex > 0, "B sent no PEX message");
    // Whoever dialed (A, or C which heard of A the same way) found the other through PEX.
    let source_of = |sim: &Sim, node: NodeId, remote| {
        let stats = sim.node(node).torrent().unwrap().stats(sim.now());
        stats
            .peers
            .into_iter()
            .find(|p| p.addr == remote)
            .map(|p| p.source)
    };
    let a_addr = sim.node(a).addr;
    let sources = [source_of(&sim, a, c_addr), source_of(&sim, c, a_addr)];
    assert!(
        sources.contains(&Some(PeerSource::Pex)),
        "A and C met without PEX: {sources:?}"
    );
    // B tells each of them of the other a few seconds after their extended handshakes, not
    // at its first one-minute round.
    assert!(
        sim.elapsed() < Duration::from_secs(30),
        "A met C only after {:?}",
        sim.elapsed()
    );
    assert!(sim.run_until_complete(Duration::from_secs(900)));
    assert!(sim.node(a).storage_matches(sim.content()));
}

#[test]
fn a_private_torrent_exchanges_no_peers() {
    let (mut sim, a, b, c) = pex_triangle(true);
    let c_addr = sim.node(c).addr;
    sim.run_until(Duration::from_secs(200), |_| false);
    for id in [a, b, c] {
        let node = sim.node(id);
        assert_eq!(node.sent.pex, 0, "{id:?} sent PEX for a private torrent");
        assert!(node.sent.ext_handshakes > 0, "BEP 10 itself stays on");
    }
    assert!(!sim.node(a).connected_to(c_addr), "A found C without PEX");
    assert_eq!(
        sim.node(a)
            .torrent()
            .unwrap()
            .stats(sim.now())
            .known_addresses,
        1,
        "A knows only B"
    );
}

#[test]
fn a_magnet_node_fetches_the_metadata_past_a_liar_and_downloads() {
    let mut sim = Sim::new(SimConfig {
        seed: 22,
        ..SimConfig::default()
    })
    .unwrap();
    let liar = sim.add_node(NodeSpec {
        seed: true,
        behaviour: Behaviour::CorruptMetadata,
        ..NodeSpec::default()
    });
    let honest: Vec<NodeId> = (0..2)
        .map(|_| {
            sim.add_node(NodeSpec {
                seed: true,
                ..NodeSpec::default()
            })
        })
        .collect();
    let magnet = sim.add_node(NodeSpec {
        magnet: true,
        ..NodeSpec::default()
    });
    let liar_addr = sim.node(liar).addr;

    // The liar is found first (say, by the DHT): its metadata fails the infohash check.
    sim.introduce(magnet, &[liar]);
    let banned = |sim: &Sim| {
        sim.node(magnet)
            .fetch_events
            .iter()
            .any(|(_, e)| matches!(e, MetadataEvent::PeerBanned { addr, .. } if *addr == liar_addr))
    };
    assert!(
        sim.run_until(Duration::from_secs(60), banned),
        "the liar was not banned"
    );
    assert!(
        sim.node(liar).sent.metadata > 0,
        "the liar never sent metadata"
    );
    assert!(
        sim.node(magnet).torrent().is_none(),
        "bad metadata was used"
    );
    assert!(sim
        .node(magnet)
        .fetch_disconnects
        .iter()
        .any(|(_, addr, reason)| *addr == Some(liar_addr) && *reason == FetchDropReason::Banned));

    // Then honest peers: the metadata comes from them, then the content.
    sim.introduce(magnet, &honest);
    assert!(
        sim.run_until_complete(Duration::from_secs(600)),
        "the magnet node did not complete"
    );
    let node = sim.node(magnet);
    let fetched = node.fetched.as_ref().expect("metadata fetched");
    assert_eq!(fetched.info.raw(), sim.info_bytes());
    assert_eq!(fetched.banned, vec![liar_addr]);
    assert!(!fetched.peers.contains(&liar_addr));
    assert!(node.storage_matches(sim.content()));
    assert_eq!(
        node.verified_pieces(),
        sim.geometry().piece_count() as usize
    );
    assert!(
        !node.connected_to(liar_addr),
        "the torrent dialed the banned liar"
    );
}

#[test]
fn a_choked_leecher_gets_exactly_its_allowed_fast_pieces() {
    let mut sim = Sim::new(SimConfig {
        seed: 23,
        ..SimConfig::default()
    })
    .unwrap();
    let stingy = TorrentConfig {
        choker: ChokerConfig {
            upload_slots: 0,
            ..ChokerConfig::default()
        },
        ..TorrentConfig::default()
    };
    let seed = sim.add_node(NodeSpec {
        seed: true,
        torrent: Some(stingy),
        ..NodeSpec::default()
    });
    let leecher = sim.add_node(NodeSpec::default());
    sim.introduce(leecher, &[seed]);
    sim.run_until(Duration::from_secs(120), |_| false);

    let IpAddr::V4(ip) = sim.node(leecher).addr.ip() else {
        panic!("the simulator uses IPv4");
    };
    let pieces = sim.geometry().piece_count();
    let allowed: BTreeSet<u32> = allowed_fast_set(ip, sim.info_hash(), pieces, 10)
        .into_iter()
        .collect();
    let verified: BTreeSet<u32> = sim
        .node(leecher)
        .events
        .iter()
        .filter_map(|(_, e)| match e {
            TorrentEvent::PieceVerified(p) => Some(p.get()),
            _ => None,
        })
        .collect();
    assert_eq!(allowed.len(), 10);
    assert_eq!(verified, allowed, "the choked leecher got other pieces");
    assert_eq!(sim.node(seed).sent.unchokes, 0, "the seed unchoked someone");
    assert_eq!(sim.node(seed).sent.allowed_fast, 10);
    assert!(sim
        .node(leecher)
        .storage_matches_pieces(sim.content(), &allowed));
}

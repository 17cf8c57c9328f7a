//! Whole-swarm scenarios: what a user would notice when shoal engines trade in memory.

use std::time::Duration;

use shoal_engine::torrent::DisconnectReason;
use shoal_sim::{Behaviour, LinkParams, NodeId, NodeSpec, Sim, SimConfig};

fn swarm(config: SimConfig, seeds: usize, leechers: usize) -> (Sim, Vec<NodeId>, Vec<NodeId>) {
    let mut sim = Sim::new(config).unwrap();
    let seeds: Vec<NodeId> = (0..seeds)
        .map(|_| {
            sim.add_node(NodeSpec {
                seed: true,
                ..NodeSpec::default()
            })
        })
        .collect();
    let leechers: Vec<NodeId> = (0..leechers)
        .map(|_| sim.add_node(NodeSpec::default()))
        .collect();
    sim.introduce_all();
    (sim, seeds, leechers)
}

fn assert_all_have_the_source(sim: &Sim, nodes: &[NodeId]) {
    for &id in nodes {
        let node = sim.node(id);
        assert!(node.completed_at.is_some(), "{id:?} did not complete");
        assert!(
            node.storage_matches(sim.content()),
            "{id:?} bytes differ from the source"
        );
        assert_eq!(
            node.verified_pieces(),
            sim.geometry().piece_count() as usize
        );
    }
}

#[test]
fn one_seed_ten_leechers_all_complete_with_the_source_bytes() {
    let (mut sim, _seeds, leechers) = swarm(SimConfig::default(), 1, 10);
    assert!(
        sim.run_until_complete(Duration::from_secs(600)),
        "swarm did not complete"
    );
    assert_all_have_the_source(&sim, &leechers);
    for id in sim.node_ids() {
        assert_eq!(sim.node(id).bad_blocks_served, 0);
        assert_eq!(sim.node(id).hash_failures, 0);
    }
    // Leechers traded among themselves, not only with the seed.
    let served_by_leechers: u64 = leechers.iter().map(|&id| sim.node(id).blocks_served).sum();
    assert!(served_by_leechers > 0, "leechers never uploaded");
    eprintln!("completed in {:?}", sim.elapsed());
}

fn banned_by(sim: &Sim, node: NodeId, addr: std::net::SocketAddr) -> bool {
    sim.node(node)
        .disconnects
        .iter()
        .any(|d| d.remote == Some(addr) && d.reason == DisconnectReason::Banned)
}

#[test]
fn corrupt_blocks_fail_the_hash_are_fetched_again_and_the_sender_is_banned() {
    let mut sim = Sim::new(SimConfig {
        seed: 2,
        ..SimConfig::default()
    })
    .unwrap();
    let honest_seed = sim.add_node(NodeSpec {
        seed: true,
        ..NodeSpec::default()
    });
    let liar = sim.add_node(NodeSpec {
        seed: true,
        behaviour: Behaviour::CorruptBlocks,
        ..NodeSpec::default()
    });
    let leechers: Vec<NodeId> = (0..5).map(|_| sim.add_node(NodeSpec::default())).collect();
    sim.introduce_all();
    assert!(
        sim.run_until_complete(Duration::from_secs(600)),
        "swarm did not complete"
    );
    assert_all_have_the_source(&sim, &leechers);

    let liar_addr = sim.node(liar).addr;
    let fooled: Vec<NodeId> = leechers
        .iter()
        .copied()
        .filter(|&id| sim.node(id).hash_failures > 0)
        .collect();
    assert!(
        !fooled.is_empty(),
        "the liar never got a block in: the test proves nothing"
    );
    for &id in &fooled {
        assert!(
            banned_by(&sim, id, liar_addr),
            "{id:?} did not ban the liar"
        );
    }
    for id in [honest_seed].into_iter().chain(leechers.iter().copied()) {
        let node = sim.node(id);
        assert_eq!(node.bad_blocks_served, 0, "{id:?} served bad bytes");
        assert_eq!(node.bad_pieces_verified, 0, "{id:?} counted a bad piece");
    }
}

#[test]
fn a_peer_that_stops_answering_does_not_stall_the_download() {
    let mut sim = Sim::new(SimConfig {
        seed: 3,
        ..SimConfig::default()
    })
    .unwrap();
    let mute = sim.add_node(NodeSpec {
        seed: true,
        behaviour: Behaviour::Mute,
        ..NodeSpec::default()
    });
    let seed = sim.add_node(NodeSpec {
        seed: true,
        ..NodeSpec::default()
    });
    let leechers: Vec<NodeId> = (0..3).map(|_| sim.add_node(NodeSpec::default())).collect();
    sim.introduce_all();
    assert!(
        sim.run_until_complete(Duration::from_secs(600)),
        "download stalled"
    );
    assert_all_have_the_source(&sim, &leechers);
    assert!(sim.node(mute).sent.requests == 0 && sim.node(seed).blocks_served > 0);
    // The mute peer was asked (its engine read blocks it never delivered).
    assert!(
        sim.node(mute).blocks_served > 0,
        "nobody asked the mute peer: the test proves nothing"
    );
}

#[test]
fn endgame_finishes_the_last_pieces_past_a_slow_peer_and_cancels() {
    let config = SimConfig {
        seed: 4,
        total_len: 512 * 1024,
        ..SimConfig::default()
    };
    let mut sim = Sim::new(config).unwrap();
    let slow_link = LinkParams {
        bandwidth: 2 * 1024,
        ..LinkParams::default()
    };
    let slow = sim.add_node(NodeSpec {
        seed: true,
        link: Some(slow_link),
        ..NodeSpec::default()
    });
    let fast = sim.add_node(NodeSpec {
        seed: true,
        ..NodeSpec::default()
    });
    let leecher = sim.add_node(NodeSpec::default());
    sim.introduce(leecher, &[slow, fast]);
    assert!(sim.run_until_complete(Duration::from_secs(600)));
    assert_all_have_the_source(&sim, &[leecher]);
    let node = sim.node(leecher);
    assert!(
        sim.node(slow).blocks_served > 0,
        "the slow peer was never asked"
    );
    assert!(node.sent.cancels > 0, "no cancel sent");
    // The slow peer alone would need 8 s per block; the download does not wait for it.
    let done = node.completed_at.unwrap();
    assert!(
        done < Duration::from_secs(10),
        "completed only after {done:?}"
    );
}

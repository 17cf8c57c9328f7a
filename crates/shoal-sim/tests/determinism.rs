//! The same seed replays the same run; another seed is another run that still completes.

use std::time::Duration;

use shoal_sim::{LinkParams, NodeSpec, Sim, SimConfig};

/// A lossy swarm of 1 seed and 6 leechers; returns the trace digest and the completion time.
fn run(seed: u64) -> ([u8; 20], Duration) {
    let link = LinkParams {
        loss: 0.02,
        ..LinkParams::default()
    };
    let mut sim = Sim::new(SimConfig {
        seed,
        link,
        ..SimConfig::default()
    })
    .unwrap();
    sim.add_node(NodeSpec {
        seed: true,
        ..NodeSpec::default()
    });
    for _ in 0..6 {
        sim.add_node(NodeSpec::default());
    }
    sim.introduce_all();
    assert!(
        sim.run_until_complete(Duration::from_secs(600)),
        "seed {seed} did not complete"
    );
    for id in sim.node_ids() {
        assert!(
            sim.node(id).storage_matches(sim.content()),
            "seed {seed}: {id:?} differs"
        );
    }
    (sim.trace_hash(), sim.elapsed())
}

#[test]
fn same_seed_same_trace_other_seed_still_completes() {
    let (a, time_a) = run(11);
    let (b, time_b) = run(11);
    assert_eq!(a, b, "same seed, different runs");
    assert_eq!(time_a, time_b);
    let (c, _) = run(12);
    assert_ne!(a, c, "a different seed should give a different run");
}

//! shoal-sim: a deterministic in-memory swarm of shoal engines with a virtual clock and seeded loss and latency.

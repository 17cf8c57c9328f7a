//! All of this crate's integration tests in one test binary: one link instead of one per file,
//! which keeps a clean build's disk use and link time small. Each file stays its own module.

mod dht_hostile_input;
mod dht_libtorrent;
mod dht_local_network;
mod dht_support;
mod lsd_runtime;
mod tracker_hostile;
mod tracker_opentracker;

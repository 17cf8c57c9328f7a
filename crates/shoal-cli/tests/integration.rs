//! All of this crate's integration tests in one test binary: one link instead of one per file,
//! which keeps a clean build's disk use and link time small. Each file stays its own module.

mod common;
mod create_info;
mod create_interop;
mod daemon_web_ui;
#[path = "support/discovery.rs"]
mod discovery;
mod discovery_dht;
mod discovery_lsd;
mod discovery_pex;
mod discovery_private;
mod discovery_tracker;
mod interop_download;
mod interop_harness;
mod interop_seed;
mod rate_limits;
mod resume_after_kill;
mod support;
mod wire_hostile;

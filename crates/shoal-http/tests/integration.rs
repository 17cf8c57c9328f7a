//! All of this crate's integration tests in one test binary: one link instead of one per file,
//! which keeps a clean build's disk use and link time small. Each file stays its own module.

mod common;
mod daemon_ops;
mod rate_limits;
mod restart;
mod security;
mod tracker_status;
mod transmission_clients;

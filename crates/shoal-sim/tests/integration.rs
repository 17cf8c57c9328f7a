//! All of this crate's integration tests in one test binary: one link instead of one per file,
//! which keeps a clean build's disk use and link time small. Each file stays its own module.

mod bad_input;
mod determinism;
mod extensions;
mod swarm;

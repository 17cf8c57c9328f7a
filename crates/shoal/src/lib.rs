//! shoal: a BitTorrent peer as a library.
//!
//! This crate is the runtime layer: it owns sockets, files and tasks, and drives the pure state
//! machines of `shoal-engine` with bytes, disk completions and the current time. Front ends (the
//! `shoal` CLI, the HTTP server) use only the facade exported here.
pub mod api;
pub mod create;
pub mod dht;
mod discovery;
pub mod lsd;
pub mod magnet_task;
mod mapped;
mod net;
mod peer_io;
pub mod rate_limit;
pub mod service;
pub mod session;
pub mod storage;
mod torrent_task;
pub mod tracker;

pub use api::{AddTorrent, TorrentState, TorrentStatus};
pub use rate_limit::RateLimits;
pub use session::{Session, SessionConfig, SessionError, TorrentHandle};

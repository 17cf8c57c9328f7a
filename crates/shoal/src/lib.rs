//! shoal: a BitTorrent peer as a library.
//!
//! This crate is the runtime layer: it owns sockets, files and tasks, and drives the pure state
//! machines of `shoal-engine` with bytes, disk completions and the current time. Front ends (the
//! `shoal` CLI, the HTTP server) use only the facade exported here.
pub mod create;
pub mod dht;
pub mod lsd;
pub mod storage;
pub mod tracker;
pub mod api;
mod discovery;
pub mod magnet_task;
mod net;
mod peer_io;
pub mod session;
pub mod service;
mod torrent_task;

pub use api::{AddTorrent, TorrentState, TorrentStatus};
pub use session::{Session, SessionConfig, SessionError, TorrentHandle};

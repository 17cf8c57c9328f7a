//! shoal-engine: the BitTorrent state machines, free of IO and of the clock.
//!
//! Every type here is driven the same way: `handle_*` methods take input (bytes, events, the
//! current time as `now`), `poll_*` methods hand out what to do next (bytes to send, disk
//! requests, peers to connect or drop, the next deadline). The tokio runtime in the `shoal`
//! crate only moves bytes between sockets, disk and these machines; the simulator in `shoal-sim`
//! drives them in memory with a virtual clock. Random choices use a seeded RNG passed in.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]
pub mod announce;
pub mod bitfield;
pub mod choker;
pub mod dht;
pub mod disk;
pub mod metadata;
pub mod peer;
pub mod picker;
pub mod pipeline;
pub mod torrent;

/// A peer connection's identity inside one torrent engine. Keys are never reused within an engine.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct PeerKey(pub u64);

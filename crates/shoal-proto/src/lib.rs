//! shoal-proto: the pure codecs of the BitTorrent protocol.
//!
//! Everything here turns bytes into typed values and back, and nothing else: no IO, no clock, no
//! shared state. Every decoder takes untrusted input and returns a typed error instead of panicking,
//! and never allocates from a length it read before checking that length against a cap.
//!
//! Data flows one way per module: `bencode` underlies `metainfo` (a .torrent file) and the bencoded
//! parts of `wire` (BEP 10 extended messages) and `tracker` replies; `magnet` parses links;
//! `geometry` turns a torrent's sizes into piece and block references that can only exist in range.
//! `dht` is KRPC, the Mainline DHT's message format, also over `bencode`.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod bencode;
pub mod dht;
pub mod geometry;
pub mod ids;
pub mod lsd;
pub mod magnet;
pub mod metainfo;
pub mod tracker;
pub mod wire;

pub use geometry::{BlockRef, Geometry, PieceIndex, BLOCK_SIZE};
pub use ids::{InfoHash, PeerId};

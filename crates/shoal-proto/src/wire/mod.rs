//! The peer wire protocol (BEP 3), with the fast extension (BEP 6) and the extension protocol
//! (BEP 10): typed messages and an incremental codec.
//!
//! Indices and offsets here are raw `u32`s as they came off the wire; the engine checks them
//! against the torrent's [`crate::Geometry`] (`checked_block`, `piece`) before acting on them.
//! Payloads (`Bitfield`, `Piece`, `Extended`) are `bytes::Bytes` so that a decoded block can be
//! handed to the disk without a copy.

use bytes::Bytes;

use crate::{InfoHash, PeerId};

/// The 68-byte handshake that opens every connection.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Handshake {
    pub reserved: Reserved,
    pub info_hash: InfoHash,
    pub peer_id: PeerId,
}

/// The 8 reserved handshake bytes: each set bit announces an extension.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Reserved(pub [u8; 8]);

impl Reserved {
    /// BEP 10 extension protocol: byte 5, bit 0x10.
    pub const EXTENSION_PROTOCOL: (usize, u8) = (5, 0x10);
    /// BEP 6 fast extension: byte 7, bit 0x04.
    pub const FAST: (usize, u8) = (7, 0x04);
    /// BEP 5 DHT: byte 7, bit 0x01.
    pub const DHT: (usize, u8) = (7, 0x01);

    /// The bits shoal sets: extension protocol, fast, and DHT.
    pub fn shoal() -> Self {
        let mut r = Reserved::default();
        for (byte, bit) in [Self::EXTENSION_PROTOCOL, Self::FAST, Self::DHT] {
            r.0[byte] |= bit;
        }
        r
    }
    pub fn has(&self, (byte, bit): (usize, u8)) -> bool {
        self.0[byte] & bit != 0
    }
}

/// One peer wire message after the handshake.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Message {
    /// A zero-length frame.
    KeepAlive,
    Choke,
    Unchoke,
    Interested,
    NotInterested,
    Have { index: u32 },
    /// Raw bitfield bytes; the engine checks the length and spare bits against the geometry.
    Bitfield(Bytes),
    Request { index: u32, begin: u32, length: u32 },
    Piece { index: u32, begin: u32, data: Bytes },
    Cancel { index: u32, begin: u32, length: u32 },
    /// BEP 5: the sender's DHT port.
    Port(u16),
    /// BEP 6.
    Suggest { index: u32 },
    HaveAll,
    HaveNone,
    Reject { index: u32, begin: u32, length: u32 },
    AllowedFast { index: u32 },
    /// BEP 10: id 0 is the extended handshake; other ids are those the receiver assigned.
    Extended { id: u8, payload: Bytes },
    /// A message id shoal does not know; BEP 3 says to ignore it.
    Unknown { id: u8 },
}

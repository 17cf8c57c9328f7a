//! The peer wire protocol (BEP 3), with the fast extension (BEP 6) and the extension protocol
//! (BEP 10): typed messages and an incremental codec.
//!
//! Data flows like this: the 68-byte [`Handshake`] opens a connection; after it, the bytes read
//! from the socket are appended to one `BytesMut` and fed to a [`MessageDecoder`], which takes
//! whole length-prefixed frames off its front and returns typed [`Message`]s; outgoing messages are
//! appended to a `BytesMut` with [`Message::encode`]. Payloads of extension messages
//! (`Message::Extended`) are decoded by the submodules: [`ext_handshake`] (BEP 10),
//! [`ut_metadata`] (BEP 9) and [`ut_pex`] (BEP 11); [`compact`] holds the compact peer lists that
//! PEX and the trackers share, and [`allowed_fast`] the BEP 6 allowed-fast set.
//!
//! Guarantees: decoding never panics, never allocates or waits for a frame whose length prefix is
//! above the decoder's cap, and returns a typed [`WireError`] for frames it cannot accept.
//! Indices and offsets here are raw `u32`s as they came off the wire; the engine checks them
//! against the torrent's [`crate::Geometry`] (`checked_block`, `piece`) before acting on them.
//! Payloads (`Bitfield`, `Piece`, `Extended`) are `bytes::Bytes` split from the read buffer, so
//! that a decoded block can be handed to the disk without a copy.

use bytes::Bytes;

use crate::{InfoHash, PeerId};

pub mod allowed_fast;
mod codec;
pub mod compact;
pub mod ext_handshake;
pub mod fuzzing;
mod handshake;
#[cfg(test)]
mod interop_tests;
pub mod ut_metadata;
pub mod ut_pex;

pub use codec::{max_frame_len_for, message_id, MessageDecoder, DEFAULT_MAX_FRAME};

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
    Have {
        index: u32,
    },
    /// Raw bitfield bytes; the engine checks the length and spare bits against the geometry.
    Bitfield(Bytes),
    Request {
        index: u32,
        begin: u32,
        length: u32,
    },
    Piece {
        index: u32,
        begin: u32,
        data: Bytes,
    },
    Cancel {
        index: u32,
        begin: u32,
        length: u32,
    },
    /// BEP 5: the sender's DHT port.
    Port(u16),
    /// BEP 6.
    Suggest {
        index: u32,
    },
    HaveAll,
    HaveNone,
    Reject {
        index: u32,
        begin: u32,
        length: u32,
    },
    AllowedFast {
        index: u32,
    },
    /// BEP 10: id 0 is the extended handshake; other ids are those the receiver assigned.
    Extended {
        id: u8,
        payload: Bytes,
    },
    /// A message id shoal does not know; BEP 3 says to ignore it.
    Unknown {
        id: u8,
    },
}

/// Why bytes from a peer are not a valid handshake or message frame.
///
/// After any of these the stream is out of step (or the peer is hostile): drop the connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// A frame's length prefix (which counts the id byte and the payload) is above the cap.
    #[error("frame of {len} bytes is longer than the cap of {max} bytes")]
    FrameTooLong { len: u32, max: u32 },
    /// A message with a fixed payload size (or a minimum one) had a payload of `len` bytes
    /// (not counting the id byte).
    #[error("message id {id} cannot have a payload of {len} bytes")]
    BadPayloadLen { id: u8, len: u32 },
    /// The handshake does not start with `\x13BitTorrent protocol`.
    #[error("the peer did not open with the BitTorrent protocol handshake")]
    BadProtocol,
}

//! The 68-byte BEP 3 handshake: `\x13BitTorrent protocol`, 8 reserved bytes, the infohash and the
//! peer id.
//!
//! Decoding is incremental and checks the protocol string as soon as its first byte arrives, so a
//! peer speaking something else (HTTP, an encrypted stream) is refused without waiting for 68
//! bytes. The first 48 bytes (through the infohash) can be read on their own, for a listener that
//! picks the torrent before it answers.

use super::{Handshake, Reserved, WireError};
use crate::{InfoHash, PeerId};

/// The protocol string with its one-byte length in front, as it starts every handshake.
const PROTOCOL_PREFIX: &[u8; 20] = b"\x13BitTorrent protocol";

impl Handshake {
    /// Bytes in a handshake.
    pub const LEN: usize = 68;
    /// Bytes through the infohash: protocol string, reserved bytes and infohash.
    pub const PREFIX_LEN: usize = 48;

    /// The 68 handshake bytes.
    pub fn encode(&self) -> [u8; 68] {
        let mut out = [0u8; Self::LEN];
        out[..20].copy_from_slice(PROTOCOL_PREFIX);
        out[20..28].copy_from_slice(&self.reserved.0);
        out[28..48].copy_from_slice(&self.info_hash.0);
        out[48..68].copy_from_slice(&self.peer_id.0);
        out
    }

    /// Reads a handshake from the start of `input`, which may hold more bytes after it (the
    /// caller consumes [`Handshake::LEN`] bytes on success).
    ///
    /// `Ok(None)` until 68 bytes are available; [`WireError::BadProtocol`] as soon as the bytes
    /// seen so far differ from the protocol string.
    pub fn decode(input: &[u8]) -> Result<Option<Handshake>, WireError> {
        let Some((reserved, info_hash)) = Self::decode_prefix(input)? else {
            return Ok(None);
        };
        let Some(peer_id) = input.get(48..68) else {
            return Ok(None);
        };
        let mut id = [0u8; 20];
        id.copy_from_slice(peer_id);
        Ok(Some(Handshake {
            reserved,
            info_hash,
            peer_id: PeerId(id),
        }))
    }

    /// Reads the first [`Handshake::PREFIX_LEN`] bytes: the reserved bits and the infohash,
    /// without the peer id. `Ok(None)` until 48 bytes are available; errors like
    /// [`Handshake::decode`].
    pub fn decode_prefix(input: &[u8]) -> Result<Option<(Reserved, InfoHash)>, WireError> {
        let seen = input.len().min(PROTOCOL_PREFIX.len());
        if input[..seen] != PROTOCOL_PREFIX[..seen] {
            return Err(WireError::BadProtocol);
        }
        let (Some(reserved), Some(hash)) = (input.get(20..28), input.get(28..48)) else {
            return Ok(None);
        };
        let mut r = [0u8; 8];
        r.copy_from_slice(reserved);
        let mut h = [0u8; 20];
        h.copy_from_slice(hash);
        Ok(Some((Reserved(r), InfoHash(h))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Handshake {
        Handshake {
            reserved: Reserved::shoal(),
            info_hash: InfoHash([0xaa; 20]),
            peer_id: PeerId::shoal([7; 12]),
        }
    }

    #[test]
    fn golden_bytes() {
        let bytes = sample().encode();
        let mut want = Vec::new();
        want.push(19u8);
        want.extend_from_slice(b"BitTorrent protocol");
        want.extend_from_slice(&[0, 0, 0, 0, 0, 0x10, 0, 0x05]);
        want.extend_from_slice(&[0xaa; 20]);
        want.extend_from_slice(b"-SH0100-");
        want.extend_from_slice(&[7; 12]);
        assert_eq!(bytes.as_slice(), want.as_slice());
    }

    #[test]
    fn every_truncation_waits_and_trailing_bytes_are_left() {
        let bytes = sample().encode();
        for cut in 0..Handshake::LEN {
            assert_eq!(Handshake::decode(&bytes[..cut]), Ok(None), "cut at {cut}");
        }
        let mut longer = bytes.to_vec();
        longer.extend_from_slice(&[0, 0, 0, 1, 2]);
        assert_eq!(Handshake::decode(&longer), Ok(Some(sample())));
    }

    #[test]
    fn prefix_gives_infohash_before_peer_id() {
        let bytes = sample().encode();
        assert_eq!(Handshake::decode_prefix(&bytes[..47]), Ok(None));
        assert_eq!(
            Handshake::decode_prefix(&bytes[..48]),
            Ok(Some((Reserved::shoal(), InfoHash([0xaa; 20]))))
        );
    }

    #[test]
    fn wrong_protocol_is_refused_early() {
        assert_eq!(
            Handshake::decode(b"GET / HTTP/1.1\r\n"),
            Err(WireError::BadProtocol)
        );
        assert_eq!(Handshake::decode(&[18]), Err(WireError::BadProtocol));
        let mut bytes = sample().encode();
        bytes[19] = b'L';
        assert_eq!(Handshake::decode(&bytes), Err(WireError::BadProtocol));
        assert_eq!(Handshake::decode(&bytes[..19]), Ok(None), "not yet visible");
    }
}

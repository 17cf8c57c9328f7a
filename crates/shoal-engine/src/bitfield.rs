//! A set of pieces, one bit per piece, in the wire layout of the BEP 3 `bitfield` message.
//!
//! Bit `i` is the high-order bit first: piece 0 is `0x80` of byte 0, piece 8 is `0x80` of byte 1.
//! The bytes are stored exactly as they go on the wire, so [`Bitfield::to_wire`] is a copy and
//! [`Bitfield::from_wire`] a length and spare-bit check followed by a copy. Guarantees: the spare
//! bits after the last piece are always zero, the cached number of set bits always matches the
//! bytes, and no method panics on an index out of range (reads say `false`, writes do nothing).
//! The length comes from our own geometry, never from a peer: `from_wire` checks the peer's byte
//! count against it before copying anything.

use bytes::Bytes;
use shoal_proto::PieceIndex;

/// Why a peer's `bitfield` message does not fit this torrent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BitfieldError {
    #[error("bitfield of {got} bytes for {piece_count} pieces, expected {expected} bytes")]
    WrongLength {
        got: usize,
        expected: usize,
        piece_count: u32,
    },
    #[error(
        "bitfield for {piece_count} pieces has spare bits set in its last byte ({last_byte:#04x})"
    )]
    SpareBitsSet { piece_count: u32, last_byte: u8 },
}

/// One bit per piece, wire layout, with a cached count of set bits.
#[derive(Clone, PartialEq, Eq)]
pub struct Bitfield {
    bytes: Vec<u8>,
    piece_count: u32,
    ones: u32,
}

impl Bitfield {
    /// No piece set.
    pub fn new(piece_count: u32) -> Self {
        Bitfield {
            bytes: vec![0; byte_len(piece_count)],
            piece_count,
            ones: 0,
        }
    }

    /// Every piece set (what a `have all` or a seed's bitfield means).
    pub fn full(piece_count: u32) -> Self {
        let mut bytes = vec![0xff; byte_len(piece_count)];
        if let Some(last) = bytes.last_mut() {
            *last &= !spare_mask(piece_count);
        }
        Bitfield {
            bytes,
            piece_count,
            ones: piece_count,
        }
    }

    /// Checks a peer's `bitfield` payload: exactly `ceil(piece_count / 8)` bytes, spare bits zero.
    pub fn from_wire(bytes: &[u8], piece_count: u32) -> Result<Self, BitfieldError> {
        let expected = byte_len(piece_count);
        if bytes.len() != expected {
            return Err(BitfieldError::WrongLength {
                got: bytes.len(),
                expected,
                piece_count,
            });
        }
        if let Some(&last_byte) = bytes.last() {
            if last_byte & spare_mask(piece_count) != 0 {
                return Err(BitfieldError::SpareBitsSet {
                    piece_count,
                    last_byte,
                });
            }
        }
        let ones = bytes.iter().map(|b| b.count_ones()).sum();
        Ok(Bitfield {
            bytes: bytes.to_vec(),
            piece_count,
            ones,
        })
    }

    /// The `bitfield` message payload.
    pub fn to_wire(&self) -> Bytes {
        Bytes::copy_from_slice(&self.bytes)
    }

    /// The wire bytes, borrowed.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Number of pieces this bitfield covers.
    pub fn len(&self) -> u32 {
        self.piece_count
    }

    /// True when it covers no piece at all (a torrent whose metadata we do not have yet).
    pub fn is_empty(&self) -> bool {
        self.piece_count == 0
    }

    /// Whether the piece is set.
    pub fn get(&self, piece: PieceIndex) -> bool {
        self.get_index(piece.get())
    }

    /// Whether raw index `index` is set; `false` past the end.
    pub fn get_index(&self, index: u32) -> bool {
        match self.bytes.get((index / 8) as usize) {
            Some(byte) if index < self.piece_count => byte & bit(index) != 0,
            _ => false,
        }
    }

    /// Sets the piece; returns true when it was not set before. Does nothing past the end.
    pub fn set(&mut self, piece: PieceIndex) -> bool {
        self.set_index(piece.get())
    }

    /// Sets raw index `index`; returns true when it was not set before. Does nothing past the end.
    pub fn set_index(&mut self, index: u32) -> bool {
        if index >= self.piece_count {
            return false;
        }
        match self.bytes.get_mut((index / 8) as usize) {
            Some(byte) if *byte & bit(index) == 0 => {
                *byte |= bit(index);
                self.ones += 1;
                true
            }
            _ => false,
        }
    }

    /// Clears the piece; returns true when it was set before.
    pub fn clear(&mut self, piece: PieceIndex) -> bool {
        let index = piece.get();
        if index >= self.piece_count {
            return false;
        }
        match self.bytes.get_mut((index / 8) as usize) {
            Some(byte) if *byte & bit(index) != 0 => {
                *byte &= !bit(index);
                self.ones -= 1;
                true
            }
            _ => false,
        }
    }

    /// Number of pieces set.
    pub fn count_ones(&self) -> u32 {
        self.ones
    }

    /// Every piece set (a seed). A bitfield over zero pieces is not full.
    pub fn is_full(&self) -> bool {
        self.piece_count > 0 && self.ones == self.piece_count
    }

    /// No piece set.
    pub fn has_none(&self) -> bool {
        self.ones == 0
    }

    /// Raw indices of the set pieces, ascending. Turn them into [`PieceIndex`] with
    /// `Geometry::piece`.
    pub fn iter_ones(&self) -> impl Iterator<Item = u32> + '_ {
        self.bytes
            .iter()
            .enumerate()
            .flat_map(|(byte_index, &byte)| {
                let base = byte_index as u32 * 8;
                (0..8u32)
                    .filter(move |b| byte & (0x80 >> b) != 0)
                    .map(move |b| base + b)
            })
    }

    /// True when `other` has at least one piece that `self` lacks (is `other` interesting to a
    /// peer holding `self`). Only the common prefix is compared when the lengths differ.
    pub fn lacks_any_of(&self, other: &Bitfield) -> bool {
        self.bytes
            .iter()
            .zip(&other.bytes)
            .any(|(mine, theirs)| theirs & !mine != 0)
    }
}

impl std::fmt::Debug for Bitfield {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Bitfield({}/{} ", self.ones, self.piece_count)?;
        for index in 0..self.piece_count.min(64) {
            f.write_str(if self.get_index(index) { "1" } else { "0" })?;
        }
        if self.piece_count > 64 {
            f.write_str("…")?;
        }
        f.write_str(")")
    }
}

fn byte_len(piece_count: u32) -> usize {
    (piece_count as usize).div_ceil(8)
}

fn bit(index: u32) -> u8 {
    0x80 >> (index % 8)
}

/// The bits of the last byte that lie past the last piece.
fn spare_mask(piece_count: u32) -> u8 {
    match piece_count % 8 {
        0 => 0,
        used => 0xff >> used,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use shoal_proto::Geometry;

    fn geometry(pieces: u32) -> Geometry {
        Geometry::new(u64::from(pieces) * 16384, 16384).unwrap()
    }

    #[test]
    fn golden_wire_bytes() {
        let g = geometry(10);
        let mut bits = Bitfield::new(10);
        for i in [0, 7, 9] {
            assert!(bits.set(g.piece(i).unwrap()));
        }
        assert_eq!(bits.to_wire().as_ref(), &[0b1000_0001, 0b0100_0000]);
        assert_eq!(Bitfield::full(10).to_wire().as_ref(), &[0xff, 0b1100_0000]);
        assert_eq!(Bitfield::full(16).to_wire().as_ref(), &[0xff, 0xff]);
        assert_eq!(bits.iter_ones().collect::<Vec<_>>(), vec![0, 7, 9]);
        assert_eq!(bits.count_ones(), 3);
    }

    #[test]
    fn from_wire_rejects_wrong_length_and_spare_bits() {
        assert_eq!(
            Bitfield::from_wire(&[0xff], 10),
            Err(BitfieldError::WrongLength {
                got: 1,
                expected: 2,
                piece_count: 10
            })
        );
        assert_eq!(
            Bitfield::from_wire(&[0, 0, 0], 10),
            Err(BitfieldError::WrongLength {
                got: 3,
                expected: 2,
                piece_count: 10
            })
        );
        assert_eq!(
            Bitfield::from_wire(&[0xff, 0b1110_0000], 10),
            Err(BitfieldError::SpareBitsSet {
                piece_count: 10,
                last_byte: 0b1110_0000
            })
        );
        assert_eq!(
            Bitfield::from_wire(&[0x00, 0x01], 10),
            Err(BitfieldError::SpareBitsSet {
                piece_count: 10,
                last_byte: 0x01
            })
        );
        let ok = Bitfield::from_wire(&[0xff, 0b1100_0000], 10).unwrap();
        assert!(ok.is_full());
        assert_eq!(Bitfield::from_wire(&[], 0).unwrap().count_ones(), 0);
    }

    #[test]
    fn set_clear_and_out_of_range() {
        let g = geometry(9);
        let p8 = g.piece(8).unwrap();
        let mut bits = Bitfield::new(9);
        assert!(bits.set(p8));
        assert!(!bits.set(p8), "second set reports no change");
        assert_eq!(bits.count_ones(), 1);
        assert!(bits.clear(p8));
        assert!(!bits.clear(p8));
        assert!(bits.has_none());
        // A piece index from a bigger torrent: ignored, no panic.
        let big = geometry(100).piece(50).unwrap();
        assert!(!bits.set(big));
        assert!(!bits.get(big));
        assert!(!bits.get_index(u32::MAX));
        assert!(!bits.clear(big));
        assert_eq!(bits.count_ones(), 0);
    }

    #[test]
    fn full_and_empty_edge_cases() {
        assert!(
            !Bitfield::full(0).is_full(),
            "nothing to have in a zero-piece bitfield"
        );
        assert!(Bitfield::full(1).is_full());
        assert_eq!(Bitfield::full(1).to_wire().as_ref(), &[0x80]);
        let mut mine = Bitfield::new(9);
        assert!(mine.lacks_any_of(&Bitfield::full(9)));
        for i in 0..9 {
            mine.set_index(i);
        }
        assert!(!mine.lacks_any_of(&Bitfield::full(9)));
        assert_eq!(mine, Bitfield::full(9));
    }

    proptest! {
        #[test]
        fn wire_round_trip(piece_count in 0u32..200, seed in prop::collection::vec(any::<u32>(), 0..50)) {
            let mut bits = Bitfield::new(piece_count);
            let mut expected = std::collections::BTreeSet::new();
            for s in seed {
                if piece_count > 0 {
                    let index = s % piece_count;
                    bits.set_index(index);
                    expected.insert(index);
                }
            }
            let wire = bits.to_wire();
            prop_assert_eq!(wire.len(), (piece_count as usize).div_ceil(8));
            let back = Bitfield::from_wire(&wire, piece_count).unwrap();
            prop_assert_eq!(back.count_ones() as usize, expected.len());
            prop_assert_eq!(back.iter_ones().collect::<Vec<_>>(), expected.into_iter().collect::<Vec<_>>());
            prop_assert_eq!(back, bits);
        }

        #[test]
        fn from_wire_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..40), piece_count in 0u32..400) {
            if let Ok(bits) = Bitfield::from_wire(&bytes, piece_count) {
                prop_assert!(bits.iter_ones().all(|i| i < piece_count));
                prop_assert_eq!(bits.as_bytes(), &bytes[..]);
            }
        }
    }
}

//! Piece and block geometry: the only way to get a [`PieceIndex`] or a [`BlockRef`] is through a
//! [`Geometry`] that checked it is in range, so code that holds one never re-checks bounds.
//!
//! A torrent's content is one byte stream of `total_len` bytes cut into pieces of `piece_len`
//! bytes (the last one may be shorter), and each piece into blocks of [`BLOCK_SIZE`] (the last
//! block of a piece may be shorter). Peers request blocks; pieces are hashed.

use std::fmt;

/// The block size every client requests: 16 KiB.
pub const BLOCK_SIZE: u32 = 16 * 1024;

/// The largest block a peer may request from us (mature clients cap at 128 KiB too).
pub const MAX_REQUEST_LEN: u32 = 128 * 1024;

/// The largest piece length shoal accepts in a torrent: 256 MiB.
pub const MAX_PIECE_LEN: u32 = 256 * 1024 * 1024;

/// A piece number known to be below the torrent's piece count.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PieceIndex(u32);

impl PieceIndex {
    /// The raw index, for the wire and for arrays.
    pub fn get(self) -> u32 {
        self.0
    }
    /// The raw index as a `usize`, for indexing arrays.
    pub fn as_usize(self) -> usize {
        self.0 as usize
    }
}

impl fmt::Debug for PieceIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

impl fmt::Display for PieceIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A byte range inside one piece, known to lie within that piece and to be 1..=128 KiB long.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlockRef {
    piece: PieceIndex,
    offset: u32,
    len: u32,
}

impl BlockRef {
    pub fn piece(&self) -> PieceIndex {
        self.piece
    }
    /// Offset of the block inside its piece.
    pub fn offset(&self) -> u32 {
        self.offset
    }
    pub fn len(&self) -> u32 {
        self.len
    }
    /// Never true: a block is at least one byte. Present for clippy's `len_without_is_empty`.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// Index of this block inside its piece, for aligned blocks (`offset / BLOCK_SIZE`).
    pub fn block_index(&self) -> u32 {
        self.offset / BLOCK_SIZE
    }
}

impl fmt::Debug for BlockRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}+{}:{}", self.piece.0, self.offset, self.len)
    }
}

/// Why sizes do not make a valid torrent geometry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GeometryError {
    #[error("piece length {piece_len} is not a power of two between 16 KiB and 256 MiB")]
    BadPieceLength { piece_len: u64 },
    #[error("a torrent must contain at least one byte")]
    Empty,
    #[error("total length {total_len} needs {pieces} pieces, more than 2^31")]
    TooManyPieces { total_len: u64, pieces: u64 },
}

/// The sizes of one torrent: total length and nominal piece length.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Geometry {
    total_len: u64,
    piece_len: u32,
    piece_count: u32,
}

impl Geometry {
    /// Checks that `piece_len` is a power of two in 16 KiB..=256 MiB and that the piece count
    /// fits; rejects an empty torrent.
    pub fn new(total_len: u64, piece_len: u64) -> Result<Self, GeometryError> {
        if !piece_len.is_power_of_two()
            || piece_len < u64::from(BLOCK_SIZE)
            || piece_len > u64::from(MAX_PIECE_LEN)
        {
            return Err(GeometryError::BadPieceLength { piece_len });
        }
        Self::new_unchecked_power(total_len, piece_len)
    }

    /// Like [`Geometry::new`] but accepts any piece length of at least one byte and at most
    /// 256 MiB. Some torrents in the wild use piece lengths that are not powers of two; BEP 3
    /// only recommends powers of two.
    pub fn new_lenient(total_len: u64, piece_len: u64) -> Result<Self, GeometryError> {
        if piece_len == 0 || piece_len > u64::from(MAX_PIECE_LEN) {
            return Err(GeometryError::BadPieceLength { piece_len });
        }
        Self::new_unchecked_power(total_len, piece_len)
    }

    fn new_unchecked_power(total_len: u64, piece_len: u64) -> Result<Self, GeometryError> {
        if total_len == 0 {
            return Err(GeometryError::Empty);
        }
        let pieces = total_len.div_ceil(piece_len);
        if pieces > i32::MAX as u64 {
            return Err(GeometryError::TooManyPieces { total_len, pieces });
        }
        Ok(Geometry {
            total_len,
            piece_len: piece_len as u32,
            piece_count: pieces as u32,
        })
    }

    pub fn total_len(&self) -> u64 {
        self.total_len
    }
    /// Nominal piece length (every piece but possibly the last).
    pub fn piece_len(&self) -> u32 {
        self.piece_len
    }
    pub fn piece_count(&self) -> u32 {
        self.piece_count
    }
    /// Bytes in a bitfield message body for this torrent.
    pub fn bitfield_len(&self) -> usize {
        (self.piece_count as usize).div_ceil(8)
    }

    /// `Some` when `index` is below the piece count.
    pub fn piece(&self, index: u32) -> Option<PieceIndex> {
        (index < self.piece_count).then_some(PieceIndex(index))
    }

    /// Every piece, in order.
    pub fn pieces(&self) -> impl Iterator<Item = PieceIndex> + Clone {
        (0..self.piece_count).map(PieceIndex)
    }

    /// The last piece.
    pub fn last_piece(&self) -> PieceIndex {
        PieceIndex(self.piece_count - 1)
    }

    /// Byte offset of the piece in the torrent's stream.
    pub fn piece_offset(&self, piece: PieceIndex) -> u64 {
        u64::from(piece.0) * u64::from(self.piece_len)
    }

    /// Length of the piece: `piece_len`, or less for the last piece.
    pub fn piece_size(&self, piece: PieceIndex) -> u32 {
        let start = self.piece_offset(piece);
        let end = (start + u64::from(self.piece_len)).min(self.total_len);
        (end - start) as u32
    }

    /// Number of 16 KiB blocks in the piece.
    pub fn block_count(&self, piece: PieceIndex) -> u32 {
        self.piece_size(piece).div_ceil(BLOCK_SIZE)
    }

    /// The `n`th aligned block of a piece, if there is one.
    pub fn block(&self, piece: PieceIndex, n: u32) -> Option<BlockRef> {
        let size = self.piece_size(piece);
        let offset = n.checked_mul(BLOCK_SIZE)?;
        if offset >= size {
            return None;
        }
        Some(BlockRef {
            piece,
            offset,
            len: (size - offset).min(BLOCK_SIZE),
        })
    }

    /// Every aligned block of a piece, in order.
    pub fn blocks(&self, piece: PieceIndex) -> impl Iterator<Item = BlockRef> + '_ {
        (0..self.block_count(piece)).filter_map(move |n| self.block(piece, n))
    }

    /// Checks a block a peer named on the wire (`request`, `cancel`, `piece`, `reject`): the piece
    /// must exist, the length be 1..=128 KiB and the range end inside the piece.
    pub fn checked_block(&self, index: u32, begin: u32, len: u32) -> Option<BlockRef> {
        let piece = self.piece(index)?;
        if len == 0 || len > MAX_REQUEST_LEN {
            return None;
        }
        let end = begin.checked_add(len)?;
        (end <= self.piece_size(piece)).then_some(BlockRef {
            piece,
            offset: begin,
            len,
        })
    }

    /// Byte offset of a block in the torrent's stream.
    pub fn block_offset(&self, block: BlockRef) -> u64 {
        self.piece_offset(block.piece) + u64::from(block.offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_last_piece_and_block() {
        let g = Geometry::new(3 * 32768 + 100, 32768).unwrap();
        assert_eq!(g.piece_count(), 4);
        let last = g.last_piece();
        assert_eq!(g.piece_size(last), 100);
        assert_eq!(g.block_count(last), 1);
        assert_eq!(g.block(last, 0).unwrap().len(), 100);
        assert!(g.block(last, 1).is_none());
        assert_eq!(g.blocks(g.piece(0).unwrap()).count(), 2);
        assert_eq!(g.bitfield_len(), 1);
    }

    #[test]
    fn exact_multiple_has_full_last_piece() {
        let g = Geometry::new(4 * 16384, 16384).unwrap();
        assert_eq!(g.piece_count(), 4);
        assert_eq!(g.piece_size(g.last_piece()), 16384);
    }

    #[test]
    fn wire_blocks_are_checked() {
        let g = Geometry::new(40_000, 32768).unwrap();
        assert!(g.checked_block(0, 0, 16384).is_some());
        assert!(g.checked_block(0, 0, 0).is_none(), "zero length");
        assert!(g.checked_block(0, 16384, 16385).is_none(), "past piece end");
        assert!(g.checked_block(1, 0, 7232).is_some());
        assert!(g.checked_block(1, 0, 7233).is_none(), "past last piece end");
        assert!(g.checked_block(2, 0, 1).is_none(), "no such piece");
        assert!(g.checked_block(0, u32::MAX, 2).is_none(), "overflow");
        let big = Geometry::new(1 << 30, 1 << 20).unwrap();
        assert!(
            big.checked_block(0, 0, MAX_REQUEST_LEN + 1).is_none(),
            "over 128 KiB"
        );
    }

    #[test]
    fn bad_piece_lengths() {
        assert!(Geometry::new(100, 0).is_err());
        assert!(Geometry::new(100, 3 * 16384).is_err());
        assert!(Geometry::new(100, 8192).is_err());
        assert!(Geometry::new(0, 16384).is_err());
        assert!(Geometry::new_lenient(100, 3 * 16384).is_ok());
    }
}

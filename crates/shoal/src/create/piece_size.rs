//! Choosing the piece length of a new torrent.
//!
//! Automatic choice: the smallest power of two, from 16 KiB up to 16 MiB, that cuts the content
//! into at most [`TARGET_MAX_PIECES`] pieces. From 31.25 MiB to 31.25 GiB this gives 1,000 to
//! 2,000 pieces: few enough to keep the `.torrent` small (20 bytes a piece), many enough
//! for peers to trade pieces early.
//!
//! | total size          | piece length |
//! |---------------------|--------------|
//! | up to 31.25 MiB     | 16 KiB       |
//! | up to 62.5 MiB      | 32 KiB       |
//! | up to 125 MiB       | 64 KiB       |
//! | up to 250 MiB       | 128 KiB      |
//! | up to 500 MiB       | 256 KiB      |
//! | up to 1000 MiB      | 512 KiB      |
//! | up to 1.95 GiB      | 1 MiB        |
//! | up to 3.9 GiB       | 2 MiB        |
//! | up to 7.8 GiB       | 4 MiB        |
//! | up to 15.6 GiB      | 8 MiB        |
//! | more                | 16 MiB       |
//!
//! An explicit piece length must be a power of two from [`MIN_PIECE_LEN`] to
//! [`MAX_PIECE_LEN`].

use super::CreateError;

/// Smallest piece length: one block.
pub const MIN_PIECE_LEN: u32 = 16 * 1024;
/// Largest piece length chosen automatically.
pub const MAX_AUTO_PIECE_LEN: u32 = 16 * 1024 * 1024;
/// Largest piece length accepted when given explicitly (each hashing thread buffers one piece).
pub const MAX_PIECE_LEN: u32 = 64 * 1024 * 1024;
/// The automatic choice keeps the piece count at or below this.
pub const TARGET_MAX_PIECES: u64 = 2000;

/// The automatic piece length for `total_len` bytes (see the module table).
pub fn auto_piece_len(total_len: u64) -> u32 {
    let mut piece_len = MIN_PIECE_LEN;
    while piece_len < MAX_AUTO_PIECE_LEN
        && total_len.div_ceil(u64::from(piece_len)) > TARGET_MAX_PIECES
    {
        piece_len *= 2;
    }
    piece_len
}

/// Checks an explicit piece length.
pub fn check_piece_len(piece_len: u64) -> Result<u32, CreateError> {
    let in_range = (u64::from(MIN_PIECE_LEN)..=u64::from(MAX_PIECE_LEN)).contains(&piece_len);
    if in_range && piece_len.is_power_of_two() {
        Ok(piece_len as u32)
    } else {
        Err(CreateError::BadPieceLength {
            piece_len,
            min: MIN_PIECE_LEN,
            max: MAX_PIECE_LEN,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KIB: u64 = 1024;
    const MIB: u64 = 1024 * KIB;

    #[test]
    fn table_boundaries() {
        assert_eq!(auto_piece_len(1), 16 * 1024);
        assert_eq!(auto_piece_len(2000 * 16 * KIB), 16 * 1024);
        assert_eq!(auto_piece_len(2000 * 16 * KIB + 1), 32 * 1024);
        assert_eq!(auto_piece_len(2 * 1024 * MIB), 2 * 1024 * 1024);
        assert_eq!(auto_piece_len(2000 * MIB), 1024 * 1024);
        assert_eq!(auto_piece_len(2000 * 8 * MIB + 1), 16 * 1024 * 1024);
        assert_eq!(auto_piece_len(u64::MAX), 16 * 1024 * 1024);
    }

    #[test]
    fn auto_choice_gives_1000_to_2000_pieces_in_its_range() {
        for total in [40 * MIB, 300 * MIB, 3 * 1024 * MIB, 20 * 1024 * MIB] {
            let pieces = total.div_ceil(u64::from(auto_piece_len(total)));
            assert!((1000..=2000).contains(&pieces), "{total}: {pieces} pieces");
        }
    }

    #[test]
    fn explicit_piece_len_must_be_a_power_of_two_in_range() {
        assert_eq!(check_piece_len(16 * KIB).unwrap(), 16 * 1024);
        assert_eq!(check_piece_len(64 * MIB).unwrap(), 64 * 1024 * 1024);
        for bad in [0, 1, 8 * KIB, 48 * KIB, 128 * MIB] {
            assert!(
                matches!(
                    check_piece_len(bad),
                    Err(CreateError::BadPieceLength { .. })
                ),
                "{bad}"
            );
        }
    }
}

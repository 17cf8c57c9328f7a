//! BEP 9 `ut_metadata`: fetching a torrent's info dictionary from peers (for magnet links).
//!
//! The metadata is cut into 16 KiB pieces ([`METADATA_PIECE_LEN`], the last one shorter). A
//! message is a bencoded dictionary `{msg_type, piece[, total_size]}`: a request (0), a reject
//! (2), or data (1), which is followed by the piece's raw bytes in the same payload.
//!
//! Guarantees: the data bytes are a zero-copy slice of the payload; a data message is only
//! returned when its `total_size` is within [`MAX_METADATA_SIZE`] and its piece number and length
//! agree with that size (see [`MetadataLayout`]), so a caller who checked `total_size` against the
//! size it is fetching can copy the bytes into place without further checks. Unknown message
//! types decode to [`MetadataMessage::Unknown`], which BEP 9 says to ignore.

use std::ops::Range;

use bytes::Bytes;

use crate::bencode::{encode_bytes, encode_int, DecodeError, DecodeLimits};

/// Bytes in every metadata piece but the last.
pub const METADATA_PIECE_LEN: u32 = 16 * 1024;

/// The largest metadata (info dictionary) shoal fetches: 8 MiB.
///
/// A peer's claimed size decides how big a buffer we fill before we can check the result against
/// the infohash, so it must be capped. 8 MiB holds the `pieces` hashes of about 400,000 pieces
/// (a 100 GiB torrent at 256 KiB pieces, or several TiB at 16 MiB pieces) with room for a file list
/// of tens of thousands of entries; real info dictionaries are far smaller, almost always below
/// 1 MiB.
pub const MAX_METADATA_SIZE: u32 = 8 * 1024 * 1024;

/// Bencode limits for the message dictionary: flat and tiny.
const LIMITS: DecodeLimits = DecodeLimits {
    max_depth: 4,
    max_items: 64,
};

const MSG_REQUEST: i64 = 0;
const MSG_DATA: i64 = 1;
const MSG_REJECT: i64 = 2;

/// Why a `ut_metadata` payload, or a metadata size, was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MetadataError {
    #[error("ut_metadata message is not valid bencode: {source}")]
    Bencode { source: DecodeError },
    #[error("ut_metadata message is a bencoded {found}, not a dictionary")]
    NotADict { found: &'static str },
    #[error("ut_metadata message has no integer `{key}`")]
    MissingKey { key: &'static str },
    #[error("ut_metadata `{key}` of {value} is out of range")]
    BadValue { key: &'static str, value: i64 },
    #[error("ut_metadata message type {msg_type} has {count} bytes after its dictionary")]
    TrailingBytes { msg_type: i64, count: usize },
    #[error("metadata size {size} is not between 1 and {max} bytes")]
    BadSize { size: u64, max: u32 },
    #[error("metadata piece {piece} does not exist; the metadata has {piece_count} pieces")]
    PieceOutOfRange { piece: u32, piece_count: u32 },
    #[error("metadata piece {piece} carries {len} bytes, expected {expected}")]
    WrongPieceLen {
        piece: u32,
        len: usize,
        expected: u32,
    },
}

/// The size of a torrent's metadata, known to be 1..=[`MAX_METADATA_SIZE`] bytes, and how BEP 9
/// cuts it into pieces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MetadataLayout {
    total_size: u32,
}

impl MetadataLayout {
    /// Checks a size from a peer (`metadata_size` in its extended handshake, or `total_size`).
    pub fn new(total_size: u64) -> Result<Self, MetadataError> {
        match u32::try_from(total_size) {
            Ok(size) if size != 0 && size <= MAX_METADATA_SIZE => {
                Ok(MetadataLayout { total_size: size })
            }
            _ => Err(MetadataError::BadSize {
                size: total_size,
                max: MAX_METADATA_SIZE,
            }),
        }
    }

    /// Bytes of metadata.
    pub fn total_size(&self) -> u32 {
        self.total_size
    }

    /// Number of 16 KiB pieces (the last may be shorter).
    pub fn piece_count(&self) -> u32 {
        self.total_size.div_ceil(METADATA_PIECE_LEN)
    }

    /// Where piece `piece` lies in the whole metadata; `None` past the last piece.
    pub fn piece_range(&self, piece: u32) -> Option<Range<usize>> {
        if piece >= self.piece_count() {
            return None;
        }
        let start = piece * METADATA_PIECE_LEN;
        let end = (start + METADATA_PIECE_LEN).min(self.total_size);
        Some(start as usize..end as usize)
    }

    /// Bytes in piece `piece`; `None` past the last piece.
    pub fn piece_len(&self, piece: u32) -> Option<u32> {
        self.piece_range(piece).map(|r| (r.end - r.start) as u32)
    }

    /// Checks that a data message for `piece` carrying `len` bytes fits this layout.
    pub fn check_piece(&self, piece: u32, len: usize) -> Result<(), MetadataError> {
        let expected = self
            .piece_len(piece)
            .ok_or(MetadataError::PieceOutOfRange {
                piece,
                piece_count: self.piece_count(),
            })?;
        if len != expected as usize {
            return Err(MetadataError::WrongPieceLen {
                piece,
                len,
                expected,
            });
        }
        Ok(())
    }
}

/// One `ut_metadata` message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MetadataMessage {
    /// "Send me metadata piece `piece`."
    Request { piece: u32 },
    /// Metadata piece `piece` of a `total_size`-byte info dictionary. On decode, `piece` and the
    /// length of `data` are known to agree with `total_size`.
    Data {
        piece: u32,
        total_size: u32,
        data: Bytes,
    },
    /// "I will not send you piece `piece`."
    Reject { piece: u32 },
    /// A message type this version does not know; BEP 9 says to ignore it.
    Unknown { msg_type: i64 },
}

impl MetadataMessage {
    /// Reads the payload of an `Extended` message carrying `ut_metadata`.
    pub fn decode(payload: Bytes) -> Result<Self, MetadataError> {
        let (value, used) = LIMITS
            .decode_prefix(&payload)
            .map_err(|source| MetadataError::Bencode { source })?;
        let dict = value.as_dict().ok_or(MetadataError::NotADict {
            found: value.type_name(),
        })?;
        let int = |key: &'static str| {
            dict.get_int(key.as_bytes())
                .ok_or(MetadataError::MissingKey { key })
        };
        let msg_type = int("msg_type")?;
        if !matches!(msg_type, MSG_REQUEST | MSG_DATA | MSG_REJECT) {
            return Ok(MetadataMessage::Unknown { msg_type });
        }
        let raw_piece = int("piece")?;
        let piece = u32::try_from(raw_piece).map_err(|_| MetadataError::BadValue {
            key: "piece",
            value: raw_piece,
        })?;
        let trailing = payload.len() - used;
        if msg_type != MSG_DATA {
            if trailing != 0 {
                return Err(MetadataError::TrailingBytes {
                    msg_type,
                    count: trailing,
                });
            }
            return Ok(if msg_type == MSG_REQUEST {
                MetadataMessage::Request { piece }
            } else {
                MetadataMessage::Reject { piece }
            });
        }
        let raw_size = int("total_size")?;
        let size = u64::try_from(raw_size).map_err(|_| MetadataError::BadValue {
            key: "total_size",
            value: raw_size,
        })?;
        let layout = MetadataLayout::new(size)?;
        layout.check_piece(piece, trailing)?;
        let data = payload.slice(used..);
        Ok(MetadataMessage::Data {
            piece,
            total_size: layout.total_size(),
            data,
        })
    }

    /// The payload for an `Extended` message (dictionary, then the data bytes for `Data`).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        self.encode_into(&mut out);
        out
    }

    /// Appends the payload to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        // Keys in sorted order: msg_type, piece, total_size.
        out.push(b'd');
        encode_bytes(out, b"msg_type");
        encode_int(out, self.msg_type());
        if let Some(piece) = self.piece() {
            encode_bytes(out, b"piece");
            encode_int(out, i64::from(piece));
        }
        if let MetadataMessage::Data { total_size, .. } = self {
            encode_bytes(out, b"total_size");
            encode_int(out, i64::from(*total_size));
        }
        out.push(b'e');
        if let MetadataMessage::Data { data, .. } = self {
            out.extend_from_slice(data);
        }
    }

    /// Exactly `self.encode().len()`.
    pub fn encoded_len(&self) -> usize {
        let int_item = |n: i64| n.to_string().len() + 2;
        let mut len = 2 + "8:msg_type".len() + int_item(self.msg_type());
        if let Some(piece) = self.piece() {
            len += "5:piece".len() + int_item(i64::from(piece));
        }
        if let MetadataMessage::Data {
            total_size, data, ..
        } = self
        {
            len += "10:total_size".len() + int_item(i64::from(*total_size)) + data.len();
        }
        len
    }

    fn msg_type(&self) -> i64 {
        match self {
            MetadataMessage::Request { .. } => MSG_REQUEST,
            MetadataMessage::Data { .. } => MSG_DATA,
            MetadataMessage::Reject { .. } => MSG_REJECT,
            MetadataMessage::Unknown { msg_type } => *msg_type,
        }
    }

    fn piece(&self) -> Option<u32> {
        match self {
            MetadataMessage::Request { piece }
            | MetadataMessage::Data { piece, .. }
            | MetadataMessage::Reject { piece } => Some(*piece),
            MetadataMessage::Unknown { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn decode(bytes: &[u8]) -> Result<MetadataMessage, MetadataError> {
        MetadataMessage::decode(Bytes::copy_from_slice(bytes))
    }

    #[test]
    fn golden_bytes() {
        let cases: Vec<(MetadataMessage, Vec<u8>)> = vec![
            (
                MetadataMessage::Request { piece: 0 },
                b"d8:msg_typei0e5:piecei0ee".to_vec(),
            ),
            (
                MetadataMessage::Reject { piece: 3 },
                b"d8:msg_typei2e5:piecei3ee".to_vec(),
            ),
            (
                MetadataMessage::Data {
                    piece: 0,
                    total_size: 5,
                    data: Bytes::from_static(b"d1:ae"),
                },
                b"d8:msg_typei1e5:piecei0e10:total_sizei5eed1:ae".to_vec(),
            ),
        ];
        for (message, bytes) in cases {
            assert_eq!(message.encode(), bytes);
            assert_eq!(message.encoded_len(), bytes.len());
            assert_eq!(decode(&bytes), Ok(message));
        }
    }

    #[test]
    fn data_is_a_view_of_the_payload() {
        let payload = Bytes::from_static(b"d8:msg_typei1e5:piecei0e10:total_sizei3eexyz");
        let Ok(MetadataMessage::Data { data, .. }) = MetadataMessage::decode(payload.clone())
        else {
            panic!("not data");
        };
        assert_eq!(&data[..], b"xyz");
        assert_eq!(data.as_ptr(), payload[payload.len() - 3..].as_ptr());
    }

    #[test]
    fn layout_pieces() {
        let layout = MetadataLayout::new(40_000).unwrap();
        assert_eq!(layout.piece_count(), 3);
        assert_eq!(layout.piece_range(2), Some(32768..40_000));
        assert_eq!(layout.piece_len(0), Some(16384));
        assert_eq!(layout.piece_len(3), None);
        let exact = MetadataLayout::new(32768).unwrap();
        assert_eq!(exact.piece_count(), 2);
        assert_eq!(exact.piece_len(1), Some(16384));
        assert_eq!(
            MetadataLayout::new(0),
            Err(MetadataError::BadSize {
                size: 0,
                max: MAX_METADATA_SIZE
            })
        );
        assert!(MetadataLayout::new(u64::from(MAX_METADATA_SIZE)).is_ok());
        assert!(MetadataLayout::new(u64::from(MAX_METADATA_SIZE) + 1).is_err());
        assert!(MetadataLayout::new(u64::MAX).is_err());
    }

    #[test]
    fn data_that_disagrees_with_its_size_is_refused() {
        // Piece 0 of a 40,000-byte dictionary must carry 16,384 bytes.
        let mut short = b"d8:msg_typei1e5:piecei0e10:total_sizei40000ee".to_vec();
        short.extend_from_slice(&[0; 100]);
        assert_eq!(
            decode(&short),
            Err(MetadataError::WrongPieceLen {
                piece: 0,
                len: 100,
                expected: 16384
            })
        );
        let past = b"d8:msg_typei1e5:piecei3e10:total_sizei40000ee";
        assert_eq!(
            decode(past),
            Err(MetadataError::PieceOutOfRange {
                piece: 3,
                piece_count: 3
            })
        );
        let huge = b"d8:msg_typei1e5:piecei0e10:total_sizei999999999ee";
        assert!(matches!(
            decode(huge),
            Err(MetadataError::BadSize {
                size: 999_999_999,
                ..
            })
        ));
        let negative = b"d8:msg_typei1e5:piecei0e10:total_sizei-1ee";
        assert_eq!(
            decode(negative),
            Err(MetadataError::BadValue {
                key: "total_size",
                value: -1
            })
        );
    }

    #[test]
    fn malformed_messages_are_typed_errors() {
        assert_eq!(
            decode(b"d5:piecei0ee"),
            Err(MetadataError::MissingKey { key: "msg_type" })
        );
        assert_eq!(
            decode(b"d8:msg_typei0ee"),
            Err(MetadataError::MissingKey { key: "piece" })
        );
        assert_eq!(
            decode(b"d8:msg_typei1e5:piecei0ee"),
            Err(MetadataError::MissingKey { key: "total_size" })
        );
        assert_eq!(
            decode(b"d8:msg_typei0e5:piecei-1ee"),
            Err(MetadataError::BadValue {
                key: "piece",
                value: -1
            })
        );
        assert_eq!(
            decode(b"d8:msg_typei0e5:piecei0eejunk"),
            Err(MetadataError::TrailingBytes {
                msg_type: 0,
                count: 4
            })
        );
        assert_eq!(
            decode(b"i3e"),
            Err(MetadataError::NotADict { found: "integer" })
        );
        assert_eq!(
            decode(b"d8:msg_typei7ee"),
            Ok(MetadataMessage::Unknown { msg_type: 7 })
        );
        let full = b"d8:msg_typei2e5:piecei3ee";
        for cut in 0..full.len() {
            assert!(
                matches!(decode(&full[..cut]), Err(MetadataError::Bencode { .. })),
                "cut {cut}"
            );
        }
    }

    fn any_message() -> impl Strategy<Value = MetadataMessage> {
        let data =
            (1u32..=MAX_METADATA_SIZE, any::<prop::sample::Index>()).prop_map(|(size, i)| {
                let layout = MetadataLayout::new(u64::from(size)).unwrap();
                let piece = i.index(layout.piece_count() as usize) as u32;
                let len = layout.piece_len(piece).unwrap() as usize;
                MetadataMessage::Data {
                    piece,
                    total_size: size,
                    data: Bytes::from(vec![0xab; len]),
                }
            });
        prop_oneof![
            any::<u32>().prop_map(|piece| MetadataMessage::Request { piece }),
            any::<u32>().prop_map(|piece| MetadataMessage::Reject { piece }),
            (3i64..).prop_map(|msg_type| MetadataMessage::Unknown { msg_type }),
            data,
        ]
    }

    proptest! {
        #[test]
        fn round_trip_with_encoded_len(message in any_message()) {
            let bytes = message.encode();
            prop_assert_eq!(bytes.len(), message.encoded_len());
            prop_assert_eq!(decode(&bytes), Ok(message));
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode(&bytes);
        }
    }
}

//! Length-prefixed message frames: encoding [`Message`]s and decoding them incrementally.
//!
//! A frame is a 4-byte big-endian length followed by that many bytes: an id byte and a payload
//! (BEP 3); a length of zero is a keep-alive. [`MessageDecoder::decode`] looks at the front of a
//! growing read buffer and takes exactly one whole frame off it, or nothing;
//! [`MessageDecoder::decode_bytes`] does the same on a shared, read-only buffer (bytes just read
//! from a socket), and [`MessageDecoder::missing`] says how much of a partial frame is still to
//! come, so a caller can complete it in its own buffer and decode the rest in place.
//!
//! Guarantees: a length prefix above the decoder's cap is an error as soon as its 4 bytes are
//! seen, and a known id whose payload size is impossible is an error as soon as its 5 header bytes
//! are seen, in both cases before any of that frame is buffered or allocated for. Frames with an
//! unknown id are consumed whole (within the cap) and reported as [`Message::Unknown`]. Payload
//! bytes (`Bitfield`, `Piece`, `Extended`) are split off the read buffer without a copy.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::{Message, WireError};
use crate::geometry::MAX_REQUEST_LEN;

/// Message ids on the wire (BEP 3, BEP 5, BEP 6, BEP 10).
pub mod message_id {
    pub const CHOKE: u8 = 0;
    pub const UNCHOKE: u8 = 1;
    pub const INTERESTED: u8 = 2;
    pub const NOT_INTERESTED: u8 = 3;
    pub const HAVE: u8 = 4;
    pub const BITFIELD: u8 = 5;
    pub const REQUEST: u8 = 6;
    pub const PIECE: u8 = 7;
    pub const CANCEL: u8 = 8;
    pub const PORT: u8 = 9;
    pub const SUGGEST: u8 = 13;
    pub const HAVE_ALL: u8 = 14;
    pub const HAVE_NONE: u8 = 15;
    pub const REJECT: u8 = 16;
    pub const ALLOWED_FAST: u8 = 17;
    pub const EXTENDED: u8 = 20;
}

/// Bytes of a `piece` frame before its data: length prefix, id, index and begin.
const PIECE_HEADER_LEN: usize = 13;

/// The frame cap a decoder uses before it knows the torrent (for example while fetching metadata
/// from a magnet link): 1 + 256 KiB.
///
/// That fits a `piece` frame carrying a 128 KiB block (the largest request any client makes,
/// [`MAX_REQUEST_LEN`]) and a bitfield of up to 2,097,152 pieces (a 512 GiB torrent of 256 KiB
/// pieces), while bounding what one peer can make us buffer to 256 KiB. Once the piece count is
/// known, [`max_frame_len_for`] gives the tightest cap.
pub const DEFAULT_MAX_FRAME: u32 = 1 + 256 * 1024;

/// The smallest useful cap: a `piece` frame with a 128 KiB block (id, index, begin, data). BEP 9
/// and BEP 10 messages from well-behaved peers are far below it.
const MIN_USEFUL_FRAME: u32 = 1 + 8 + MAX_REQUEST_LEN;

/// The frame cap for a torrent of `piece_count` pieces: the larger of a 128 KiB `piece` frame
/// and that torrent's bitfield frame.
pub fn max_frame_len_for(piece_count: u32) -> u32 {
    let bitfield_frame = 1 + piece_count.div_ceil(8);
    bitfield_frame.max(MIN_USEFUL_FRAME)
}

/// A frame length that fits a `u32` for a payload of `payload_len` bytes plus `header` bytes.
///
/// Payloads over 4 GiB cannot be framed; they never come from shoal (blocks are at most 128 KiB,
/// bitfields at most 256 MiB), so the length saturates rather than panics.
fn frame_len_u32(len: usize) -> u32 {
    u32::try_from(len).unwrap_or(u32::MAX)
}

impl Message {
    /// The wire id of this message; `None` for a keep-alive, which has none.
    pub fn id(&self) -> Option<u8> {
        Some(match self {
            Message::KeepAlive => return None,
            Message::Choke => message_id::CHOKE,
            Message::Unchoke => message_id::UNCHOKE,
            Message::Interested => message_id::INTERESTED,
            Message::NotInterested => message_id::NOT_INTERESTED,
            Message::Have { .. } => message_id::HAVE,
            Message::Bitfield(_) => message_id::BITFIELD,
            Message::Request { .. } => message_id::REQUEST,
            Message::Piece { .. } => message_id::PIECE,
            Message::Cancel { .. } => message_id::CANCEL,
            Message::Port(_) => message_id::PORT,
            Message::Suggest { .. } => message_id::SUGGEST,
            Message::HaveAll => message_id::HAVE_ALL,
            Message::HaveNone => message_id::HAVE_NONE,
            Message::Reject { .. } => message_id::REJECT,
            Message::AllowedFast { .. } => message_id::ALLOWED_FAST,
            Message::Extended { .. } => message_id::EXTENDED,
            Message::Unknown { id } => *id,
        })
    }

    /// Bytes after the length prefix: the id byte and the payload.
    fn frame_len(&self) -> usize {
        match self {
            Message::KeepAlive => 0,
            Message::Choke
            | Message::Unchoke
            | Message::Interested
            | Message::NotInterested
            | Message::HaveAll
            | Message::HaveNone
            | Message::Unknown { .. } => 1,
            Message::Port(_) => 3,
            Message::Have { .. } | Message::Suggest { .. } | Message::AllowedFast { .. } => 5,
            Message::Request { .. } | Message::Cancel { .. } | Message::Reject { .. } => 13,
            Message::Bitfield(bits) => 1 + bits.len(),
            Message::Piece { data, .. } => 9 + data.len(),
            Message::Extended { payload, .. } => 2 + payload.len(),
        }
    }

    /// Bytes [`Message::encode`] writes, including the 4-byte length prefix.
    pub fn encoded_len(&self) -> usize {
        4 + self.frame_len()
    }

    /// Appends the framed message to `out`. `Unknown { id }` is written as a frame holding just
    /// its id byte.
    pub fn encode(&self, out: &mut BytesMut) {
        out.reserve(self.encoded_len());
        if let Message::Piece { index, begin, data } = self {
            Self::encode_piece_header(*index, *begin, frame_len_u32(data.len()), out);
            out.put_slice(data);
            return;
        }
        out.put_u32(frame_len_u32(self.frame_len()));
        let Some(id) = self.id() else { return };
        out.put_u8(id);
        match self {
            Message::Have { index }
            | Message::Suggest { index }
            | Message::AllowedFast { index } => out.put_u32(*index),
            Message::Request {
                index,
                begin,
                length,
            }
            | Message::Cancel {
                index,
                begin,
                length,
            }
            | Message::Reject {
                index,
                begin,
                length,
            } => {
                out.put_u32(*index);
                out.put_u32(*begin);
                out.put_u32(*length);
            }
            Message::Bitfield(bits) => out.put_slice(bits),
            Message::Port(port) => out.put_u16(*port),
            Message::Extended { id, payload } => {
                out.put_u8(*id);
                out.put_slice(payload);
            }
            _ => {}
        }
    }

    /// Appends just the 13-byte header of a `piece` message whose `len` data bytes the caller
    /// writes next (for vectored writes straight from a disk buffer).
    pub fn encode_piece_header(index: u32, begin: u32, len: u32, out: &mut BytesMut) {
        out.reserve(PIECE_HEADER_LEN);
        out.put_u32(len.saturating_add(9));
        out.put_u8(message_id::PIECE);
        out.put_u32(index);
        out.put_u32(begin);
    }
}

/// Checks the payload length (frame length minus the id byte) a known id allows.
fn check_payload_len(id: u8, payload_len: u32) -> Result<(), WireError> {
    let ok = match id {
        message_id::CHOKE
        | message_id::UNCHOKE
        | message_id::INTERESTED
        | message_id::NOT_INTERESTED => payload_len == 0,
        message_id::HAVE_ALL | message_id::HAVE_NONE => payload_len == 0,
        message_id::HAVE | message_id::SUGGEST | message_id::ALLOWED_FAST => payload_len == 4,
        message_id::REQUEST | message_id::CANCEL | message_id::REJECT => payload_len == 12,
        message_id::PORT => payload_len == 2,
        message_id::PIECE => payload_len >= 8,
        message_id::EXTENDED => payload_len >= 1,
        // Bitfield: any length; the engine checks it against the torrent. Unknown ids: skipped.
        _ => true,
    };
    if ok {
        Ok(())
    } else {
        Err(WireError::BadPayloadLen {
            id,
            len: payload_len,
        })
    }
}

/// Incremental frame decoder with a cap on frame length.
///
/// Call [`MessageDecoder::decode`] with the connection's read buffer after each read, and again
/// while it returns `Ok(Some(_))`; it consumes complete frames only and leaves partial ones in
/// place. After an error the stream cannot be resynchronised: drop the connection.
#[derive(Debug, Clone)]
pub struct MessageDecoder {
    max_frame_len: u32,
}

impl Default for MessageDecoder {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_FRAME)
    }
}

impl MessageDecoder {
    /// A decoder refusing frames longer than `max_frame_len` bytes (the length prefix's value:
    /// id byte plus payload). Use [`DEFAULT_MAX_FRAME`] before the torrent is known and
    /// [`max_frame_len_for`] after.
    pub fn new(max_frame_len: u32) -> Self {
        MessageDecoder { max_frame_len }
    }

    /// The cap this decoder enforces.
    pub fn max_frame_len(&self) -> u32 {
        self.max_frame_len
    }

    /// Changes the cap, for example once the metadata arrives and the piece count is known.
    pub fn set_max_frame_len(&mut self, max_frame_len: u32) {
        self.max_frame_len = max_frame_len;
    }

    /// Takes one whole frame off the front of `buf`, or returns `Ok(None)` and leaves `buf` as it
    /// is (apart from reserving room for the rest of a frame whose header checked out).
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Message>, WireError> {
        match self.front(buf)? {
            Front::KeepAlive => {
                buf.advance(4);
                Ok(Some(Message::KeepAlive))
            }
            Front::Frame { id, total } => {
                buf.advance(5);
                let payload = buf.split_to(total - 5).freeze();
                Ok(Some(parse_payload(id, payload)))
            }
            Front::Partial { total: Some(total) } => {
                buf.reserve(total - buf.len());
                Ok(None)
            }
            Front::Partial { total: None } => Ok(None),
        }
    }

    /// [`MessageDecoder::decode`] on a read-only buffer: payloads are slices of `buf`, never
    /// copies. Leaves a partial frame in `buf`.
    pub fn decode_bytes(&mut self, buf: &mut Bytes) -> Result<Option<Message>, WireError> {
        match self.front(buf)? {
            Front::KeepAlive => {
                buf.advance(4);
                Ok(Some(Message::KeepAlive))
            }
            Front::Frame { id, total } => {
                let payload = buf.split_to(total).slice(5..);
                Ok(Some(parse_payload(id, payload)))
            }
            Front::Partial { .. } => Ok(None),
        }
    }

    /// How many more bytes the frame at the front of `buf` needs before it can be decoded: at
    /// least 1 for a partial frame (the header first, then the rest), 0 when a whole frame is
    /// there. Errors as [`MessageDecoder::decode`] would.
    pub fn missing(&self, buf: &[u8]) -> Result<usize, WireError> {
        Ok(match self.front(buf)? {
            Front::KeepAlive | Front::Frame { .. } => 0,
            Front::Partial { total: Some(total) } => total - buf.len(),
            Front::Partial { total: None } => 5 - buf.len(),
        })
    }

    /// What the front of `buf` holds, with the length cap and the payload size checked as soon
    /// as their header bytes are there.
    fn front(&self, buf: &[u8]) -> Result<Front, WireError> {
        let &[a, b, c, d, ..] = buf else {
            return Ok(Front::Partial { total: None });
        };
        let len = u32::from_be_bytes([a, b, c, d]);
        if len > self.max_frame_len {
            return Err(WireError::FrameTooLong {
                len,
                max: self.max_frame_len,
            });
        }
        if len == 0 {
            return Ok(Front::KeepAlive);
        }
        let Some(&id) = buf.get(4) else {
            return Ok(Front::Partial { total: None });
        };
        check_payload_len(id, len - 1)?;
        let total = 4 + len as usize;
        if buf.len() < total {
            return Ok(Front::Partial { total: Some(total) });
        }
        Ok(Front::Frame { id, total })
    }
}

/// The front of a read buffer, as [`MessageDecoder::front`] sees it.
enum Front {
    KeepAlive,
    /// A whole frame of `total` bytes (length prefix included) with this id.
    Frame {
        id: u8,
        total: usize,
    },
    /// Not all there yet; `total` once the 5 header bytes are.
    Partial {
        total: Option<usize>,
    },
}

/// Builds the message for an id whose payload length [`check_payload_len`] accepted.
fn parse_payload(id: u8, mut payload: Bytes) -> Message {
    match id {
        message_id::CHOKE => Message::Choke,
        message_id::UNCHOKE => Message::Unchoke,
        message_id::INTERESTED => Message::Interested,
        message_id::NOT_INTERESTED => Message::NotInterested,
        message_id::HAVE_ALL => Message::HaveAll,
        message_id::HAVE_NONE => Message::HaveNone,
        message_id::HAVE => Message::Have {
            index: payload.get_u32(),
        },
        message_id::SUGGEST => Message::Suggest {
            index: payload.get_u32(),
        },
        message_id::ALLOWED_FAST => Message::AllowedFast {
            index: payload.get_u32(),
        },
        message_id::BITFIELD => Message::Bitfield(payload),
        message_id::PORT => Message::Port(payload.get_u16()),
        message_id::REQUEST | message_id::CANCEL | message_id::REJECT => {
            let (index, begin, length) = (payload.get_u32(), payload.get_u32(), payload.get_u32());
            match id {
                message_id::REQUEST => Message::Request {
                    index,
                    begin,
                    length,
                },
                message_id::CANCEL => Message::Cancel {
                    index,
                    begin,
                    length,
                },
                _ => Message::Reject {
                    index,
                    begin,
                    length,
                },
            }
        }
        message_id::PIECE => {
            let (index, begin) = (payload.get_u32(), payload.get_u32());
            Message::Piece {
                index,
                begin,
                data: payload,
            }
        }
        message_id::EXTENDED => {
            let ext_id = payload.get_u8();
            Message::Extended {
                id: ext_id,
                payload,
            }
        }
        _ => Message::Unknown { id },
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    fn encode_all(messages: &[Message]) -> BytesMut {
        let mut out = BytesMut::new();
        for m in messages {
            m.encode(&mut out);
        }
        out
    }

    /// Decodes everything in `buf`; panics (test only) on an error.
    fn drain(decoder: &mut MessageDecoder, buf: &mut BytesMut, into: &mut Vec<Message>) {
        while let Some(m) = decoder.decode(buf).unwrap() {
            into.push(m);
        }
    }

    fn decode_one(bytes: &[u8]) -> Result<Option<Message>, WireError> {
        MessageDecoder::default().decode(&mut BytesMut::from(bytes))
    }

    fn sample_stream() -> Vec<Message> {
        vec![
            Message::KeepAlive,
            Message::Choke,
            Message::Unchoke,
            Message::Interested,
            Message::NotInterested,
            Message::Have { index: 0x0102_0304 },
            Message::Bitfield(Bytes::from_static(&[0xff, 0x80])),
            Message::Request {
                index: 1,
                begin: 16384,
                length: 16384,
            },
            Message::Piece {
                index: 2,
                begin: 0,
                data: Bytes::from(vec![9u8; 300]),
            },
            Message::Cancel {
                index: 1,
                begin: 16384,
                length: 16384,
            },
            Message::Port(6881),
            Message::Suggest { index: 5 },
            Message::HaveAll,
            Message::HaveNone,
            Message::Reject {
                index: 3,
                begin: 0,
                length: 100,
            },
            Message::AllowedFast { index: 7 },
            Message::Extended {
                id: 0,
                payload: Bytes::from_static(b"d1:md11:ut_metadatai3eee"),
            },
            Message::Unknown { id: 99 },
        ]
    }

    #[test]
    fn golden_bytes() {
        let cases: Vec<(Message, &[u8])> = vec![
            (Message::KeepAlive, &[0, 0, 0, 0]),
            (Message::Choke, &[0, 0, 0, 1, 0]),
            (Message::Unchoke, &[0, 0, 0, 1, 1]),
            (Message::Interested, &[0, 0, 0, 1, 2]),
            (Message::NotInterested, &[0, 0, 0, 1, 3]),
            (
                Message::Have { index: 0x0102_0304 },
                &[0, 0, 0, 5, 4, 1, 2, 3, 4],
            ),
            (
                Message::Bitfield(Bytes::from_static(&[0xf0])),
                &[0, 0, 0, 2, 5, 0xf0],
            ),
            (
                Message::Request {
                    index: 1,
                    begin: 0x4000,
                    length: 0x4000,
                },
                &[0, 0, 0, 13, 6, 0, 0, 0, 1, 0, 0, 0x40, 0, 0, 0, 0x40, 0],
            ),
            (
                Message::Piece {
                    index: 1,
                    begin: 2,
                    data: Bytes::from_static(b"ab"),
                },
                &[0, 0, 0, 11, 7, 0, 0, 0, 1, 0, 0, 0, 2, b'a', b'b'],
            ),
            (
                Message::Cancel {
                    index: 0,
                    begin: 0,
                    length: 1,
                },
                &[0, 0, 0, 13, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
            ),
            (Message::Port(0x1ae1), &[0, 0, 0, 3, 9, 0x1a, 0xe1]),
            (Message::Suggest { index: 9 }, &[0, 0, 0, 5, 13, 0, 0, 0, 9]),
            (Message::HaveAll, &[0, 0, 0, 1, 14]),
            (Message::HaveNone, &[0, 0, 0, 1, 15]),
            (
                Message::Reject {
                    index: 0,
                    begin: 0,
                    length: 1,
                },
                &[0, 0, 0, 13, 16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
            ),
            (
                Message::AllowedFast { index: 9 },
                &[0, 0, 0, 5, 17, 0, 0, 0, 9],
            ),
            (
                Message::Extended {
                    id: 3,
                    payload: Bytes::from_static(b"de"),
                },
                &[0, 0, 0, 4, 20, 3, b'd', b'e'],
            ),
        ];
        for (message, bytes) in cases {
            let mut out = BytesMut::new();
            message.encode(&mut out);
            assert_eq!(&out[..], bytes, "{message:?}");
            assert_eq!(message.encoded_len(), bytes.len());
            assert_eq!(decode_one(bytes), Ok(Some(message)));
        }
    }

    #[test]
    fn piece_header_matches_full_encoding() {
        let data = Bytes::from(vec![1u8; 1000]);
        let mut full = BytesMut::new();
        Message::Piece {
            index: 4,
            begin: 32768,
            data: data.clone(),
        }
        .encode(&mut full);
        let mut split = BytesMut::new();
        Message::encode_piece_header(4, 32768, 1000, &mut split);
        assert_eq!(split.len(), 13);
        split.extend_from_slice(&data);
        assert_eq!(full, split);
    }

    #[test]
    fn huge_length_prefix_is_refused_before_buffering() {
        let mut buf = BytesMut::from(&[0xff, 0xff, 0xff, 0xff][..]);
        let cap_before = buf.capacity();
        let err = MessageDecoder::new(1000).decode(&mut buf);
        assert_eq!(
            err,
            Err(WireError::FrameTooLong {
                len: u32::MAX,
                max: 1000
            })
        );
        assert_eq!(
            buf.capacity(),
            cap_before,
            "nothing reserved for a refused frame"
        );
        let just_over = [0, 0, 0x03, 0xe9];
        assert_eq!(
            MessageDecoder::new(1000).decode(&mut BytesMut::from(&just_over[..])),
            Err(WireError::FrameTooLong {
                len: 1001,
                max: 1000
            })
        );
    }

    #[test]
    fn wrong_fixed_sizes_are_typed_errors_from_the_header_alone() {
        // A `have` claiming 100,000 bytes: refused after 5 bytes, without waiting for the rest.
        assert_eq!(
            decode_one(&[0, 1, 0x86, 0xa0, 4]),
            Err(WireError::BadPayloadLen { id: 4, len: 99_999 })
        );
        let cases: &[(&[u8], u8, u32)] = &[
            (&[0, 0, 0, 2, 0, 0], 0, 1),
            (&[0, 0, 0, 4, 4, 0, 0, 0], 4, 3),
            (&[0, 0, 0, 12, 6], 6, 11),
            (&[0, 0, 0, 14, 8], 8, 13),
            (&[0, 0, 0, 2, 9, 0], 9, 1),
            (&[0, 0, 0, 8, 7], 7, 7),
            (&[0, 0, 0, 1, 20], 20, 0),
            (&[0, 0, 0, 2, 14, 0], 14, 1),
            (&[0, 0, 0, 6, 17], 17, 5),
            (&[0, 0, 0, 12, 16], 16, 11),
        ];
        for &(bytes, id, len) in cases {
            assert_eq!(
                decode_one(bytes),
                Err(WireError::BadPayloadLen { id, len }),
                "{bytes:?}"
            );
        }
    }

    #[test]
    fn empty_piece_and_extended_payloads_are_allowed() {
        let piece = [0, 0, 0, 9, 7, 0, 0, 0, 1, 0, 0, 0, 0];
        assert_eq!(
            decode_one(&piece),
            Ok(Some(Message::Piece {
                index: 1,
                begin: 0,
                data: Bytes::new()
            }))
        );
        assert_eq!(
            decode_one(&[0, 0, 0, 2, 20, 1]),
            Ok(Some(Message::Extended {
                id: 1,
                payload: Bytes::new()
            }))
        );
        assert_eq!(
            decode_one(&[0, 0, 0, 1, 5]),
            Ok(Some(Message::Bitfield(Bytes::new())))
        );
    }

    #[test]
    fn unknown_ids_are_skipped_whole() {
        let mut buf = BytesMut::from(&[0, 0, 0, 4, 200, 1, 2, 3, 0, 0, 0, 1, 1][..]);
        let mut d = MessageDecoder::default();
        assert_eq!(d.decode(&mut buf), Ok(Some(Message::Unknown { id: 200 })));
        assert_eq!(d.decode(&mut buf), Ok(Some(Message::Unchoke)));
        assert!(buf.is_empty());
        let over_cap = [0, 0, 0x10, 0, 200];
        assert!(matches!(
            MessageDecoder::new(100).decode(&mut BytesMut::from(&over_cap[..])),
            Err(WireError::FrameTooLong { .. })
        ));
    }

    #[test]
    fn piece_data_shares_the_read_buffer() {
        let mut buf = BytesMut::new();
        Message::Piece {
            index: 0,
            begin: 0,
            data: Bytes::from(vec![5u8; 4096]),
        }
        .encode(&mut buf);
        let start = buf.as_ptr() as usize;
        let Some(Message::Piece { data, .. }) = MessageDecoder::default().decode(&mut buf).unwrap()
        else {
            panic!("not a piece");
        };
        assert_eq!(
            data.as_ptr() as usize,
            start + 13,
            "data is a view, not a copy"
        );
    }

    #[test]
    fn partial_frames_stay_in_the_buffer() {
        let mut buf = BytesMut::from(&[0, 0, 0, 5, 4, 0, 0][..]);
        let mut d = MessageDecoder::default();
        assert_eq!(d.decode(&mut buf), Ok(None));
        assert_eq!(buf.len(), 7);
        buf.extend_from_slice(&[0, 9, 0xaa]);
        assert_eq!(d.decode(&mut buf), Ok(Some(Message::Have { index: 9 })));
        assert_eq!(&buf[..], &[0xaa]);
    }

    #[test]
    fn split_at_every_offset_gives_the_same_messages() {
        let messages = sample_stream();
        let bytes = encode_all(&messages);
        for cut in 0..=bytes.len() {
            let mut d = MessageDecoder::default();
            let mut got = Vec::new();
            let mut buf = BytesMut::from(&bytes[..cut]);
            drain(&mut d, &mut buf, &mut got);
            buf.extend_from_slice(&bytes[cut..]);
            drain(&mut d, &mut buf, &mut got);
            assert_eq!(got, messages, "cut at {cut}");
            assert!(buf.is_empty());
        }
    }

    #[test]
    fn one_byte_at_a_time_gives_the_same_messages() {
        let messages = sample_stream();
        let bytes = encode_all(&messages);
        let mut d = MessageDecoder::default();
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for byte in bytes.iter() {
            buf.put_u8(*byte);
            drain(&mut d, &mut buf, &mut got);
        }
        assert_eq!(got, messages);
    }

    /// The way a connection uses [`MessageDecoder::decode_bytes`]: a partial frame is completed
    /// in a buffer with exactly [`MessageDecoder::missing`] bytes, the rest decoded in place.
    #[test]
    fn decoding_in_place_after_every_cut_gives_the_same_messages() {
        let messages = sample_stream();
        let bytes = encode_all(&messages).freeze();
        for cut in 0..=bytes.len() {
            let mut d = MessageDecoder::default();
            let mut got = Vec::new();
            let mut pending = BytesMut::new();
            for mut chunk in [bytes.slice(..cut), bytes.slice(cut..)] {
                while !pending.is_empty() && !chunk.is_empty() {
                    let take = d.missing(&pending).unwrap().min(chunk.len());
                    assert!(take > 0, "cut at {cut}");
                    pending.extend_from_slice(&chunk.split_to(take));
                    drain(&mut d, &mut pending, &mut got);
                }
                while let Some(m) = d.decode_bytes(&mut chunk).unwrap() {
                    got.push(m);
                }
                assert!(chunk.is_empty() || d.missing(&chunk).unwrap() > 0);
                pending.extend_from_slice(&chunk);
            }
            assert_eq!(got, messages, "cut at {cut}");
            assert!(pending.is_empty(), "cut at {cut}");
        }
    }

    #[test]
    fn in_place_decoding_refuses_what_decode_refuses() {
        let mut d = MessageDecoder::new(100);
        let mut long = Bytes::from_static(&[0, 0, 0, 101, 7]);
        assert!(matches!(
            d.decode_bytes(&mut long),
            Err(WireError::FrameTooLong { .. })
        ));
        assert!(matches!(
            d.missing(&long),
            Err(WireError::FrameTooLong { .. })
        ));
        let mut have = Bytes::from_static(&[0, 0, 0, 5, 4, 0, 0]);
        assert_eq!(d.decode_bytes(&mut have), Ok(None));
        assert_eq!(have.len(), 7, "a partial frame stays");
        assert_eq!(d.missing(&have), Ok(2));
        assert_eq!(d.missing(&[0, 0]), Ok(3));
    }

    #[test]
    fn frame_caps_follow_the_torrent() {
        assert_eq!(max_frame_len_for(10), 1 + 8 + 128 * 1024);
        assert_eq!(max_frame_len_for(2_097_152), 1 + 256 * 1024);
        assert_eq!(max_frame_len_for(2_097_152), DEFAULT_MAX_FRAME);
        assert_eq!(max_frame_len_for(u32::MAX), 1 + 536_870_912);
    }

    pub(crate) fn any_message() -> impl Strategy<Value = Message> {
        let bytes = || proptest::collection::vec(any::<u8>(), 0..64).prop_map(Bytes::from);
        let known = [0u8, 1, 2, 3, 4, 5, 6, 7, 8, 9, 13, 14, 15, 16, 17, 20];
        prop_oneof![
            Just(Message::KeepAlive),
            Just(Message::Choke),
            Just(Message::Unchoke),
            Just(Message::Interested),
            Just(Message::NotInterested),
            Just(Message::HaveAll),
            Just(Message::HaveNone),
            any::<u32>().prop_map(|index| Message::Have { index }),
            any::<u32>().prop_map(|index| Message::Suggest { index }),
            any::<u32>().prop_map(|index| Message::AllowedFast { index }),
            any::<u16>().prop_map(Message::Port),
            bytes().prop_map(Message::Bitfield),
            any::<(u32, u32, u32)>().prop_map(|(index, begin, length)| Message::Request {
                index,
                begin,
                length
            }),
            any::<(u32, u32, u32)>().prop_map(|(index, begin, length)| Message::Cancel {
                index,
                begin,
                length
            }),
            any::<(u32, u32, u32)>().prop_map(|(index, begin, length)| Message::Reject {
                index,
                begin,
                length
            }),
            (any::<(u32, u32)>(), bytes()).prop_map(|((index, begin), data)| Message::Piece {
                index,
                begin,
                data
            }),
            (any::<u8>(), bytes()).prop_map(|(id, payload)| Message::Extended { id, payload }),
            any::<u8>()
                .prop_filter("unknown id", move |id| !known.contains(id))
                .prop_map(|id| Message::Unknown { id }),
        ]
    }

    proptest! {
        #[test]
        fn round_trip_with_encoded_len(messages in proptest::collection::vec(any_message(), 0..20)) {
            let bytes = encode_all(&messages);
            let total: usize = messages.iter().map(Message::encoded_len).sum();
            prop_assert_eq!(bytes.len(), total);
            let mut buf = bytes.clone();
            let mut got = Vec::new();
            drain(&mut MessageDecoder::default(), &mut buf, &mut got);
            prop_assert_eq!(got, messages);
            prop_assert!(buf.is_empty());
        }

        #[test]
        fn random_cuts_give_the_same_messages(
            messages in proptest::collection::vec(any_message(), 1..10),
            cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..8),
        ) {
            let bytes = encode_all(&messages);
            let mut offsets: Vec<usize> = cuts.iter().map(|i| i.index(bytes.len() + 1)).collect();
            offsets.push(bytes.len());
            offsets.sort_unstable();
            let (mut d, mut buf, mut got, mut from) =
                (MessageDecoder::default(), BytesMut::new(), Vec::new(), 0);
            for to in offsets {
                buf.extend_from_slice(&bytes[from..to]);
                from = to;
                drain(&mut d, &mut buf, &mut got);
            }
            prop_assert_eq!(got, messages);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512), cap in 0u32..300) {
            let mut buf = BytesMut::from(&bytes[..]);
            let mut d = MessageDecoder::new(cap);
            let mut previous = buf.len() + 1;
            while let Ok(Some(_)) = d.decode(&mut buf) {
                prop_assert!(buf.len() < previous, "each message consumes bytes");
                previous = buf.len();
            }
        }
    }
}

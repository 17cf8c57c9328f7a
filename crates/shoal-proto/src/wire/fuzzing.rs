//! Entry points for the `wire` cargo-fuzz target, also run on stable by a smoke test.
//!
//! Each function feeds arbitrary bytes to one decoder and checks the properties every decoder
//! here promises: it returns instead of panicking; a frame stream decodes to the same messages
//! whole or one byte at a time; whatever decodes re-encodes to bytes that decode to the same
//! value. A broken property panics, which is what the fuzzer reports.

use bytes::{BufMut, Bytes, BytesMut};

use super::compact;
use super::ext_handshake::ExtendedHandshake;
use super::ut_metadata::MetadataMessage;
use super::ut_pex::{PexMessage, MAX_PEX_PEERS_SENT};
use super::{Handshake, Message, MessageDecoder, WireError};

/// Runs every wire decoder over `data` (the `wire` fuzz target).
pub fn run(data: &[u8]) {
    handshake(data);
    message_stream(data);
    extension_payloads(data);
}

/// The handshake decoder: a decoded handshake re-encodes to the bytes it came from.
pub fn handshake(data: &[u8]) {
    if let Ok(Some(hs)) = Handshake::decode(data) {
        assert_eq!(
            hs.encode().as_slice(),
            data.get(..Handshake::LEN).unwrap_or_default()
        );
    }
}

/// Decodes `input` until it runs out or fails, feeding it `chunk` bytes at a time.
fn decode_stream(input: &[u8], cap: u32, chunk: usize) -> (Vec<Message>, Option<WireError>) {
    let mut decoder = MessageDecoder::new(cap);
    let mut buf = BytesMut::new();
    let mut messages = Vec::new();
    for piece in input.chunks(chunk.max(1)) {
        buf.put_slice(piece);
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(message)) => messages.push(message),
                Ok(None) => break,
                Err(e) => return (messages, Some(e)),
            }
        }
    }
    (messages, None)
}

/// The frame decoder: the first byte picks a small cap, the rest is the stream. Whole and
/// byte-by-byte decoding agree, and the decoded messages re-encode to a stream that decodes to the
/// same messages.
pub fn message_stream(data: &[u8]) {
    let Some((&cap_byte, stream)) = data.split_first() else {
        return;
    };
    let cap = u32::from(cap_byte) * 16;
    let (whole, whole_err) = decode_stream(stream, cap, stream.len());
    let (bytewise, bytewise_err) = decode_stream(stream, cap, 1);
    assert_eq!(whole, bytewise);
    assert_eq!(whole_err, bytewise_err);
    let mut again = BytesMut::new();
    for message in &whole {
        let before = again.len();
        message.encode(&mut again);
        assert_eq!(again.len() - before, message.encoded_len());
    }
    let (redecoded, err) = decode_stream(&again, cap, again.len());
    assert_eq!(err, None);
    assert_eq!(redecoded, whole);
}

/// The BEP 9, 10, 11 payload decoders and the compact lists: what decodes re-encodes to bytes
/// that decode to the same value.
pub fn extension_payloads(data: &[u8]) {
    if let Ok(hs) = ExtendedHandshake::decode(data) {
        assert_eq!(ExtendedHandshake::decode(&hs.encode()), Ok(hs));
    }
    if let Ok(message) = MetadataMessage::decode(Bytes::copy_from_slice(data)) {
        let bytes = message.encode();
        assert_eq!(bytes.len(), message.encoded_len());
        assert_eq!(MetadataMessage::decode(Bytes::from(bytes)), Ok(message));
    }
    if let Ok(pex) = PexMessage::decode(data) {
        if pex.added.len() <= MAX_PEX_PEERS_SENT && pex.dropped.len() <= MAX_PEX_PEERS_SENT {
            assert_eq!(PexMessage::decode(&pex.encode()), Ok(pex));
        }
    }
    if let Ok(peers) = compact::decode_v4(data) {
        assert_eq!(peers.len() * compact::V4_LEN, data.len());
    }
    if let Ok(peers) = compact::decode_v6(data) {
        assert_eq!(peers.len() * compact::V6_LEN, data.len());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::codec::tests::any_message;
    use proptest::prelude::*;

    /// Valid encodings with a few bytes changed: reaches deeper than random bytes.
    fn mutated_stream() -> impl Strategy<Value = Vec<u8>> {
        (
            any::<u8>(),
            proptest::collection::vec(any_message(), 0..6),
            proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..3),
        )
            .prop_map(|(cap, messages, flips)| {
                let mut out = BytesMut::new();
                out.put_u8(cap);
                for m in &messages {
                    m.encode(&mut out);
                }
                let len = out.len();
                for (at, byte) in flips {
                    out[at.index(len)] = byte;
                }
                out.to_vec()
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn smoke_random_bytes(data in proptest::collection::vec(any::<u8>(), 0..300)) {
            run(&data);
        }

        #[test]
        fn smoke_mutated_streams(data in mutated_stream()) {
            run(&data);
        }
    }

    #[test]
    fn smoke_known_payloads() {
        for payload in [
            &b"d1:md11:ut_metadatai2e6:ut_pexi1ee1:pi6881e1:v5:shoale"[..],
            b"d8:msg_typei1e5:piecei0e10:total_sizei3eexyz",
            b"d5:added6:\x01\x02\x03\x04\x00\x017:added.f1:\x02e",
            b"\x13BitTorrent protocol\0\0\0\0\0\x10\0\x05aaaaaaaaaaaaaaaaaaaabbbbbbbbbbbbbbbbbbbb",
        ] {
            run(payload);
        }
    }
}

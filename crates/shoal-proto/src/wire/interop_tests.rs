//! Decoding bytes a real client sent: a libtorrent 2.0.8 seed's side of a connection, captured on
//! loopback by `testdata/capture_libtorrent.py` (a v1-only torrent) after our handshake, our extended handshake and a
//! `ut_metadata` request for piece 0 (so libtorrent also accepted what our encoders produce).

use bytes::{BufMut, Bytes, BytesMut};

use super::ext_handshake::{ExtendedHandshake, OUR_UT_METADATA_ID, UT_METADATA};
use super::ut_metadata::{MetadataLayout, MetadataMessage};
use super::{Handshake, Message, MessageDecoder, Reserved};
use crate::InfoHash;

const STREAM: &[u8] = include_bytes!("testdata/libtorrent-2.0.8-seed.bin");

fn messages_after_handshake(chunk: usize) -> Vec<Message> {
    let mut decoder = MessageDecoder::default();
    let (mut buf, mut out) = (BytesMut::new(), Vec::new());
    for piece in STREAM[Handshake::LEN..].chunks(chunk) {
        buf.put_slice(piece);
        while let Some(m) = decoder.decode(&mut buf).unwrap() {
            out.push(m);
        }
    }
    assert!(buf.is_empty());
    out
}

#[test]
fn libtorrent_seed_stream_decodes_and_its_metadata_hashes_to_the_infohash() {
    let hs = Handshake::decode(STREAM).unwrap().unwrap();
    assert!(hs.reserved.has(Reserved::EXTENSION_PROTOCOL) && hs.reserved.has(Reserved::FAST));
    assert_eq!(&hs.peer_id.0[..8], b"-LT2080-");

    let messages = messages_after_handshake(STREAM.len());
    let [Message::Extended { id: 0, payload }, Message::HaveAll, Message::Unchoke, Message::Extended {
        id,
        payload: data_msg,
    }] = &messages[..]
    else {
        panic!("unexpected messages {messages:?}");
    };
    let theirs = ExtendedHandshake::decode(payload).unwrap();
    assert_eq!(theirs.client.as_deref(), Some("libtorrent/2.0.8.0"));
    assert_eq!(theirs.your_ip, Some("127.0.0.1".parse().unwrap()));
    assert_eq!(theirs.extension_id(UT_METADATA), Some(2));
    assert_eq!(theirs.ut_pex_id(), Some(1));
    assert_eq!(theirs.request_queue_len, Some(2000));
    assert_eq!(
        *id, OUR_UT_METADATA_ID,
        "libtorrent answered under the id we asked for"
    );

    let size = theirs.metadata_size.unwrap();
    let layout = MetadataLayout::new(u64::from(size)).unwrap();
    assert_eq!(layout.piece_count(), 1);
    let MetadataMessage::Data {
        piece: 0,
        total_size,
        data,
    } = MetadataMessage::decode(Bytes::clone(data_msg)).unwrap()
    else {
        panic!("not a data message");
    };
    assert_eq!(total_size, size);
    assert_eq!(InfoHash::of_info_bytes(&data), hs.info_hash);
}

#[test]
fn libtorrent_seed_stream_decodes_the_same_at_every_chunk_size() {
    let whole = messages_after_handshake(STREAM.len());
    for chunk in 1..64 {
        assert_eq!(messages_after_handshake(chunk), whole, "chunks of {chunk}");
    }
    super::fuzzing::run(STREAM);
}

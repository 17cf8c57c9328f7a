//! Table-style tests of one connection with explicit `now`.
#![allow(clippy::disallowed_methods)] // a base instant for the virtual clock

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use shoal_proto::wire::{Handshake, Message, MessageDecoder, Reserved};
use shoal_proto::{Geometry, InfoHash, PeerId};

use super::*;

const HASH: InfoHash = InfoHash([7; 20]);

/// 10 pieces of 32 KiB: two blocks each.
fn geometry() -> Geometry {
    Geometry::new(10 * 32768, 32768).unwrap()
}

fn setup(our_pieces: Bitfield) -> PeerSetup {
    PeerSetup {
        info_hash: HASH,
        our_peer_id: PeerId([1; 20]),
        geometry: Some(geometry()),
        our_pieces,
        extended_handshake: Some(Bytes::from_static(b"d1:md11:ut_metadatai1eee")),
        reserved: Reserved::shoal(),
        config: PeerConfig::default(),
    }
}

fn their_handshake(reserved: Reserved) -> Handshake {
    Handshake {
        reserved,
        info_hash: HASH,
        peer_id: PeerId([2; 20]),
    }
}

fn wire(messages: &[Message]) -> Vec<u8> {
    let mut out = BytesMut::new();
    for m in messages {
        m.encode(&mut out);
    }
    out.to_vec()
}

/// Everything the connection sent, decoded (skipping our handshake when `skip_handshake`).
fn sent(conn: &mut PeerConn, skip_handshake: bool) -> Vec<Message> {
    let mut out = BytesMut::new();
    conn.poll_transmit(&mut out);
    if skip_handshake {
        let _ = out.split_to(Handshake::LEN);
    }
    let mut decoder = MessageDecoder::new(1 << 20);
    let mut messages = Vec::new();
    while let Some(m) = decoder.decode(&mut out).unwrap() {
        messages.push(m);
    }
    messages
}

fn events(conn: &mut PeerConn) -> Vec<PeerEvent> {
    std::iter::from_fn(|| conn.poll_event()).collect()
}

/// An established incoming connection speaking fast + extensions, with our pieces `ours`.
fn established(now: Instant, ours: Bitfield) -> PeerConn {
    let mut conn =
        PeerConn::incoming(now, setup(ours), their_handshake(Reserved::shoal())).unwrap();
    sent(&mut conn, true);
    events(&mut conn);
    conn
}

fn block(piece: u32, n: u32) -> BlockRef {
    let g = geometry();
    g.block(g.piece(piece).unwrap(), n).unwrap()
}

#[test]
fn outgoing_sends_handshake_then_piece_set_and_extended_handshake() {
    let t0 = Instant::now();
    let mut conn = PeerConn::outgoing(t0, setup(Bitfield::new(10)));
    let mut out = BytesMut::new();
    assert!(conn.poll_transmit(&mut out));
    assert_eq!(Handshake::decode(&out).unwrap().unwrap().info_hash, HASH);
    assert_eq!(
        out.len(),
        Handshake::LEN,
        "nothing before the peer's handshake"
    );

    // The peer's handshake, split at every byte, then its have-all.
    let mut input = their_handshake(Reserved::shoal()).encode().to_vec();
    input.extend(wire(&[Message::HaveAll]));
    for byte in &input {
        conn.handle_read(t0, std::slice::from_ref(byte)).unwrap();
    }
    let got = events(&mut conn);
    assert!(
        matches!(got[0], PeerEvent::HandshakeDone { peer_id, .. } if peer_id == PeerId([2; 20]))
    );
    assert_eq!(got[1], PeerEvent::Bitfield(Bitfield::full(10)));
    let messages = sent(&mut conn, false);
    assert_eq!(
        messages[0],
        Message::HaveNone,
        "piece set comes first (BEP 6)"
    );
    assert!(matches!(messages[1], Message::Extended { id: 0, .. }));
}

#[test]
fn handshake_errors_are_typed() {
    let t0 = Instant::now();
    let mut wrong = their_handshake(Reserved::shoal());
    wrong.info_hash = InfoHash([9; 20]);
    let err = PeerConn::incoming(t0, setup(Bitfield::new(10)), wrong).unwrap_err();
    assert_eq!(
        err,
        PeerError::WrongInfoHash {
            expected: HASH,
            got: InfoHash([9; 20])
        }
    );

    let mut me = their_handshake(Reserved::shoal());
    me.peer_id = PeerId([1; 20]);
    let err = PeerConn::incoming(t0, setup(Bitfield::new(10)), me).unwrap_err();
    assert!(matches!(err, PeerError::ConnectedToSelf { .. }));

    let mut conn = PeerConn::outgoing(t0, setup(Bitfield::new(10)));
    assert!(matches!(
        conn.handle_read(t0, b"GET / HTTP/1.1"),
        Err(PeerError::Wire(_))
    ));
    assert_eq!(conn.handle_read(t0, b"x"), Err(PeerError::Closed));
}

#[test]
fn time_outs_and_keep_alives() {
    let t0 = Instant::now();
    let mut conn = PeerConn::outgoing(t0, setup(Bitfield::new(10)));
    assert_eq!(conn.poll_timeout(), Some(t0 + Duration::from_secs(20)));
    assert!(conn.handle_timeout(t0 + Duration::from_secs(19)).is_ok());
    assert!(matches!(
        conn.handle_timeout(t0 + Duration::from_secs(20)),
        Err(PeerError::HandshakeTimeout { .. })
    ));

    let mut conn = established(t0, Bitfield::new(10));
    let t90 = t0 + Duration::from_secs(90);
    assert_eq!(conn.poll_timeout(), Some(t90));
    conn.handle_timeout(t90).unwrap();
    assert_eq!(sent(&mut conn, false), vec![Message::KeepAlive]);
    conn.handle_read(t0 + Duration::from_secs(100), &wire(&[Message::KeepAlive]))
        .unwrap();
    let idle_at = t0 + Duration::from_secs(250);
    assert!(matches!(
        conn.handle_timeout(idle_at),
        Err(PeerError::Idle { .. })
    ));
}

#[test]
fn fast_and_piece_set_rules() {
    let t0 = Instant::now();
    let plain = Reserved::default();
    let cases: Vec<(Reserved, Vec<Message>, PeerError)> = vec![
        (
            plain,
            vec![Message::HaveAll],
            PeerError::FastNotNegotiated {
                message: "have all",
            },
        ),
        (
            Reserved::shoal(),
            vec![
                Message::Have { index: 1 },
                Message::Bitfield(Bytes::from_static(&[0, 0])),
            ],
            PeerError::BitfieldNotFirst {
                message: "bitfield",
            },
        ),
        (
            Reserved::shoal(),
            vec![Message::HaveAll, Message::HaveNone],
            PeerError::SecondBitfield,
        ),
        (
            Reserved::shoal(),
            vec![Message::Suggest { index: 10 }],
            PeerError::PieceIndexOutOfRange {
                message: "suggest",
                index: 10,
                piece_count: 10,
            },
        ),
    ];
    for (reserved, messages, expected) in cases {
        let mut conn =
            PeerConn::incoming(t0, setup(Bitfield::new(10)), their_handshake(reserved)).unwrap();
        assert_eq!(conn.handle_read(t0, &wire(&messages)), Err(expected));
    }
}

#[test]
fn have_is_reported_once() {
    let t0 = Instant::now();
    let mut conn = established(t0, Bitfield::new(10));
    conn.handle_read(
        t0,
        &wire(&[Message::Have { index: 3 }, Message::Have { index: 3 }]),
    )
    .unwrap();
    let piece = geometry().piece(3).unwrap();
    assert_eq!(events(&mut conn), vec![PeerEvent::Have(piece)]);
}

/// aria2 opens with `have none` and later announces finished pieces with a whole bitfield.
#[test]
fn a_later_piece_set_that_only_adds_pieces_counts_as_haves() {
    let t0 = Instant::now();
    let mut conn = established(t0, Bitfield::new(10));
    let mut later = Bitfield::new(10);
    later.set_index(2);
    later.set_index(7);
    conn.handle_read(
        t0,
        &wire(&[
            Message::HaveNone,
            Message::Have { index: 2 },
            Message::Bitfield(later.to_wire()),
        ]),
    )
    .unwrap();
    let g = geometry();
    let haves: Vec<PeerEvent> = events(&mut conn)
        .into_iter()
        .filter(|e| matches!(e, PeerEvent::Have(_)))
        .collect();
    assert_eq!(
        haves,
        vec![
            PeerEvent::Have(g.piece(2).unwrap()),
            PeerEvent::Have(g.piece(7).unwrap())
        ]
    );
    let taken_back = conn.handle_read(t0, &wire(&[Message::Bitfield(Bitfield::new(10).to_wire())]));
    assert_eq!(taken_back, Err(PeerError::SecondBitfield));
}

#[test]
fn choke_without_fast_drops_our_requests_and_late_blocks_are_not_counted() {
    let t0 = Instant::now();
    let mut conn = PeerConn::incoming(
        t0,
        setup(Bitfield::new(10)),
        their_handshake(Reserved::default()),
    )
    .unwrap();
    conn.handle_read(
        t0,
        &wire(&[
            Message::Bitfield(Bytes::from_static(&[0xff, 0xc0])),
            Message::Unchoke,
        ]),
    )
    .unwrap();
    events(&mut conn);
    conn.handle_command(t0, PeerCommand::Interested);
    conn.handle_command(t0, PeerCommand::Request(block(0, 0)));
    conn.handle_command(t0, PeerCommand::Request(block(0, 1)));
    conn.handle_read(t0, &wire(&[Message::Choke])).unwrap();
    assert_eq!(
        events(&mut conn),
        vec![
            PeerEvent::Choked,
            PeerEvent::RequestDropped(block(0, 0)),
            PeerEvent::RequestDropped(block(0, 1)),
        ]
    );
    // The block was already on its way: dropped quietly, not held against the peer.
    let late = Message::Piece {
        index: 0,
        begin: 0,
        data: Bytes::from(vec![0; 16384]),
    };
    conn.handle_read(t0, &wire(&[late])).unwrap();
    assert!(events(&mut conn).is_empty());
    assert_eq!(conn.stats().unrequested_blocks, 0);
    assert_eq!(conn.stats().wasted_payload, 16384);
}

#[test]
fn unrequested_blocks_are_counted_then_fatal() {
    let t0 = Instant::now();
    let mut conn = established(t0, Bitfield::new(10));
    let piece = Message::Piece {
        index: 1,
        begin: 0,
        data: Bytes::from(vec![0; 16384]),
    };
    for _ in 0..8 {
        conn.handle_read(t0, &wire(std::slice::from_ref(&piece)))
            .unwrap();
    }
    assert!(events(&mut conn).is_empty(), "never reported as a block");
    assert_eq!(
        conn.handle_read(t0, &wire(&[piece])),
        Err(PeerError::TooManyUnrequestedBlocks { count: 9 })
    );
}

#[test]
fn serving_respects_choke_have_cancel_and_the_queue_bound() {
    let t0 = Instant::now();
    let mut ours = Bitfield::new(10);
    ours.set(geometry().piece(0).unwrap());
    let mut conn = established(t0, ours);
    let req = |piece: u32, begin: u32| Message::Request {
        index: piece,
        begin,
        length: 16384,
    };

    // Choked: rejected (fast).
    conn.handle_read(t0, &wire(&[req(0, 0)])).unwrap();
    assert!(events(&mut conn).is_empty());
    assert_eq!(
        sent(&mut conn, false),
        vec![Message::Reject {
            index: 0,
            begin: 0,
            length: 16384
        }]
    );

    conn.handle_command(t0, PeerCommand::Unchoke);
    sent(&mut conn, false);
    // A piece we do not have: rejected; one we have: reported.
    conn.handle_read(t0, &wire(&[req(1, 0), req(0, 0), req(0, 16384)]))
        .unwrap();
    assert_eq!(
        events(&mut conn),
        vec![
            PeerEvent::Request(block(0, 0)),
            PeerEvent::Request(block(0, 1))
        ]
    );
    assert_eq!(
        sent(&mut conn, false),
        vec![Message::Reject {
            index: 1,
            begin: 0,
            length: 16384
        }]
    );

    // Cancelled before the disk answered: not sent.
    conn.handle_read(
        t0,
        &wire(&[Message::Cancel {
            index: 0,
            begin: 16384,
            length: 16384,
        }]),
    )
    .unwrap();
    let data = Bytes::from(vec![5; 16384]);
    conn.handle_command(
        t0,
        PeerCommand::SendBlock {
            block: block(0, 1),
            data: data.clone(),
        },
    );
    conn.handle_command(
        t0,
        PeerCommand::SendBlock {
            block: block(0, 0),
            data: data.clone(),
        },
    );
    conn.handle_command(
        t0,
        PeerCommand::SendBlock {
            block: block(0, 0),
            data: data.clone(),
        },
    );
    assert_eq!(
        sent(&mut conn, false),
        vec![Message::Piece {
            index: 0,
            begin: 0,
            data
        }]
    );
    assert_eq!(conn.stats().uploaded_payload, 16384);

    // Past the queue bound: rejected.
    let many: Vec<Message> = (0..300).map(|_| req(0, 0)).chain([req(0, 16384)]).collect();
    let mut small = setup(conn.setup.our_pieces.clone());
    small.config.max_queued_requests = 1;
    let mut conn = PeerConn::incoming(t0, small, their_handshake(Reserved::shoal())).unwrap();
    conn.handle_command(t0, PeerCommand::Unchoke);
    sent(&mut conn, true);
    conn.handle_read(t0, &wire(&many)).unwrap();
    assert_eq!(conn.queued_request_count(), 1);
    assert!(sent(&mut conn, false)
        .iter()
        .all(|m| matches!(m, Message::Reject { .. })));
}

/// A connection that asked for both blocks of piece 0 from a peer that has only that piece.
fn requesting(now: Instant) -> PeerConn {
    let mut conn = established(now, Bitfield::new(10));
    let only_piece_0 = Message::Bitfield(Bytes::from_static(&[0x80, 0x00]));
    conn.handle_read(now, &wire(&[only_piece_0, Message::Unchoke]))
        .unwrap();
    events(&mut conn);
    conn.handle_command(now, PeerCommand::Interested);
    conn.handle_command(now, PeerCommand::Request(block(0, 0)));
    conn.handle_command(now, PeerCommand::Request(block(0, 1)));
    sent(&mut conn, false);
    conn
}

#[test]
fn reads_decoded_in_place_give_the_same_events_at_every_cut() {
    let t0 = Instant::now();
    let data = |seed: u8| Bytes::from((0..16384u32).map(|i| seed ^ i as u8).collect::<Vec<_>>());
    let stream = Bytes::from(wire(&[
        Message::Have { index: 3 },
        Message::Piece {
            index: 0,
            begin: 0,
            data: data(1),
        },
        Message::KeepAlive,
        Message::Piece {
            index: 0,
            begin: 16384,
            data: data(2),
        },
        Message::Have { index: 4 },
    ]));
    let mut reference = requesting(t0);
    reference.handle_read(t0, &stream).unwrap();
    let expected = events(&mut reference);
    assert_eq!(expected.len(), 4, "{expected:?}");
    let cuts = (0..40)
        .chain(16_380..16_420)
        .chain(stream.len() - 30..stream.len());
    for cut in cuts {
        for second in [cut, cut + 1, cut + 9, stream.len()] {
            let second = second.clamp(cut, stream.len());
            let mut conn = requesting(t0);
            for part in [
                stream.slice(..cut),
                stream.slice(cut..second),
                stream.slice(second..),
            ] {
                conn.handle_read_bytes(t0, part).unwrap();
            }
            assert_eq!(events(&mut conn), expected, "cuts at {cut} and {second}");
        }
    }
}

#[test]
fn reads_decoded_in_place_fail_like_copied_reads() {
    let t0 = Instant::now();
    let mut conn = requesting(t0);
    let mut bad = wire(&[Message::Have { index: 1 }]);
    bad.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 7]);
    let err = conn.handle_read_bytes(t0, Bytes::from(bad)).unwrap_err();
    assert!(matches!(err, PeerError::Wire(_)), "{err:?}");
    assert_eq!(
        conn.handle_read_bytes(t0, Bytes::from_static(&[0, 0, 0, 0])),
        Err(PeerError::Closed)
    );
}

#[test]
fn a_served_block_goes_out_as_the_buffer_it_was_read_into() {
    let t0 = Instant::now();
    let mut ours = Bitfield::new(10);
    ours.set(geometry().piece(0).unwrap());
    let mut conn = established(t0, ours);
    conn.handle_command(t0, PeerCommand::Unchoke);
    let request = |begin| Message::Request {
        index: 0,
        begin,
        length: 16384,
    };
    conn.handle_read(t0, &wire(&[request(0), request(16384)]))
        .unwrap();
    let data = |seed: u8| Bytes::from(vec![seed; 16384]);
    let (first, second) = (data(1), data(2));
    conn.handle_command(
        t0,
        PeerCommand::SendBlock {
            block: block(0, 0),
            data: first.clone(),
        },
    );
    conn.handle_command(t0, PeerCommand::Choke);
    conn.handle_command(t0, PeerCommand::Unchoke);
    conn.handle_command(
        t0,
        PeerCommand::SendBlock {
            block: block(0, 1),
            data: second.clone(),
        },
    );
    let chunks: Vec<Bytes> = std::iter::from_fn(|| conn.poll_transmit_chunk()).collect();
    assert!(
        chunks
            .iter()
            .any(|c| c.as_ptr() == first.as_ptr() && c.len() == first.len()),
        "the block's buffer itself is queued"
    );
    let mut all = BytesMut::new();
    for chunk in &chunks {
        all.extend_from_slice(chunk);
    }
    let mut decoder = MessageDecoder::new(1 << 20);
    let mut messages = Vec::new();
    while let Some(m) = decoder.decode(&mut all).unwrap() {
        messages.push(m);
    }
    let piece = |begin, data| Message::Piece {
        index: 0,
        begin,
        data,
    };
    // Unchoke, the block, choke (the second request is rejected: fast), unchoke; the second
    // block is no longer requested and not sent.
    assert_eq!(messages[0], Message::Unchoke);
    assert_eq!(messages[1], piece(0, first));
    assert_eq!(messages[2], Message::Choke);
    assert!(!messages.iter().any(|m| *m == piece(16384, second.clone())));
    assert!(conn.poll_transmit_chunk().is_none());
}

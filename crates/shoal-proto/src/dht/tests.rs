use std::net::{Ipv4Addr, SocketAddrV4};

use proptest::prelude::*;

use super::*;

fn tid(bytes: &[u8]) -> TransactionId {
    TransactionId::new(bytes).unwrap()
}

const ID: [u8; 20] = *b"abcdefghij0123456789";
const HASH: [u8; 20] = *b"mnopqrstuvwxyz123456";

fn query(method: Method) -> Message {
    Message::query(
        tid(b"aa"),
        Query {
            sender: NodeId(ID),
            read_only: false,
            method,
        },
    )
}

/// The examples of BEP 5, byte for byte (their keys are already in canonical order).
#[test]
fn golden_bep5_examples() {
    let cases: Vec<(&[u8], Message)> = vec![
        (
            b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe",
            query(Method::Ping),
        ),
        (
            b"d1:ad2:id20:abcdefghij01234567896:target20:mnopqrstuvwxyz123456e1:q9:find_node1:t2:aa1:y1:qe",
            query(Method::FindNode { target: HASH }),
        ),
        (
            b"d1:ad2:id20:abcdefghij01234567899:info_hash20:mnopqrstuvwxyz123456e1:q9:get_peers1:t2:aa1:y1:qe",
            query(Method::GetPeers { info_hash: HASH }),
        ),
        (
            b"d1:ad2:id20:abcdefghij012345678912:implied_porti1e9:info_hash20:mnopqrstuvwxyz1234564:porti6881e5:token8:aoeusnthe1:q13:announce_peer1:t2:aa1:y1:qe",
            query(Method::AnnouncePeer {
                info_hash: HASH,
                port: 6881,
                implied_port: true,
                token: Token::new(b"aoeusnth").unwrap(),
            }),
        ),
        (
            b"d1:rd2:id20:mnopqrstuvwxyz123456e1:t2:aa1:y1:re",
            Message::response(tid(b"aa"), Response { sender: NodeId(HASH), ..Response::default() }),
        ),
        (
            b"d1:rd2:id20:abcdefghij01234567895:token8:aoeusnth6:valuesl6:axje.u6:idhtnmee1:t2:aa1:y1:re",
            Message::response(
                tid(b"aa"),
                Response {
                    sender: NodeId(ID),
                    token: Token::new(b"aoeusnth"),
                    values: vec![
                        SocketAddrV4::new(Ipv4Addr::new(b'a', b'x', b'j', b'e'), u16::from_be_bytes(*b".u")),
                        SocketAddrV4::new(Ipv4Addr::new(b'i', b'd', b'h', b't'), u16::from_be_bytes(*b"nm")),
                    ],
                    nodes: Vec::new(),
                },
            ),
        ),
        (
            b"d1:eli201e23:A Generic Error Ocurrede1:t2:aa1:y1:ee",
            Message::error(tid(b"aa"), 201, "A Generic Error Ocurred"),
        ),
    ];
    for (bytes, message) in cases {
        assert_eq!(
            Message::decode(bytes),
            Ok(message.clone()),
            "{}",
            bytes.escape_ascii()
        );
        assert_eq!(message.encode(), bytes);
        assert_eq!(message.encoded_len(), bytes.len());
    }
}

#[test]
fn transaction_ids_of_any_length_are_echoed_exactly() {
    for len in 1..=MAX_TRANSACTION_ID_LEN {
        let t: Vec<u8> = (0..len as u8).map(|i| i.wrapping_mul(37)).collect();
        let mut bytes = b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t".to_vec();
        bytes.extend_from_slice(format!("{len}:").as_bytes());
        bytes.extend_from_slice(&t);
        bytes.extend_from_slice(b"1:y1:qe");
        let message = Message::decode(&bytes).unwrap();
        assert_eq!(message.transaction_id.as_bytes(), &t[..]);
        let reply = Message::response(message.transaction_id, Response::default()).encode();
        let mut want = b"1:t".to_vec();
        want.extend_from_slice(format!("{len}:").as_bytes());
        want.extend_from_slice(&t);
        assert!(reply.windows(want.len()).any(|w| w == want));
    }
    for bad in [&b"0:"[..], b"17:aaaaaaaaaaaaaaaaa"] {
        let mut bytes = b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t".to_vec();
        bytes.extend_from_slice(bad);
        bytes.extend_from_slice(b"1:y1:qe");
        assert!(matches!(
            Message::decode(&bytes),
            Err(KrpcDecodeError::WrongLength { field: "t", .. })
        ));
    }
    assert_eq!(TransactionId::from_u16(0x0102).as_bytes(), &[1, 2]);
}

#[test]
fn bad_queries_carry_what_is_needed_to_answer() {
    let unknown = b"d1:ad2:id20:abcdefghij0123456789e1:q9:nonsense!1:t2:xy1:y1:qe";
    match Message::decode(unknown) {
        Err(KrpcDecodeError::BadQuery {
            transaction_id,
            code,
            method,
            ..
        }) => {
            assert_eq!(transaction_id.as_bytes(), b"xy");
            assert_eq!(code, error_code::METHOD_UNKNOWN);
            assert_eq!(method, "nonsense!");
        }
        other => panic!("{other:?}"),
    }
    let short_hash =
        b"d1:ad2:id20:abcdefghij01234567899:info_hash3:abce1:q9:get_peers1:t2:aa1:y1:qe";
    assert!(matches!(
        Message::decode(short_hash),
        Err(KrpcDecodeError::BadQuery {
            code: error_code::PROTOCOL,
            ..
        })
    ));
    let no_port = b"d1:ad2:id20:abcdefghij01234567899:info_hash20:mnopqrstuvwxyz1234565:token1:xe1:q13:announce_peer1:t2:aa1:y1:qe";
    assert!(matches!(
        Message::decode(no_port),
        Err(KrpcDecodeError::BadQuery { .. })
    ));
    let big_port = b"d1:ad2:id20:abcdefghij01234567899:info_hash20:mnopqrstuvwxyz1234564:porti70000e5:token1:xe1:q13:announce_peer1:t2:aa1:y1:qe";
    match Message::decode(big_port) {
        Err(KrpcDecodeError::BadQuery { reason, .. }) => {
            assert_eq!(*reason, KrpcDecodeError::BadPort { port: 70_000 })
        }
        other => panic!("{other:?}"),
    }
    // With implied_port the port field does not matter.
    let implied = b"d1:ad2:id20:abcdefghij012345678912:implied_porti1e9:info_hash20:mnopqrstuvwxyz1234564:porti99999999e5:token3:bade1:q13:announce_peer1:t2:aa1:y1:qe";
    assert!(matches!(
        Message::decode(implied).unwrap().body,
        Body::Query(Query {
            method: Method::AnnouncePeer {
                implied_port: true,
                port: 0,
                ..
            },
            ..
        })
    ));
}

#[test]
fn hostile_envelopes_get_typed_errors() {
    let too_big = vec![b'd'; MAX_MESSAGE_LEN + 1];
    assert!(matches!(
        Message::decode(&too_big),
        Err(KrpcDecodeError::TooLarge { .. })
    ));
    assert!(matches!(
        Message::decode(&vec![b'l'; 2_000]),
        Err(KrpcDecodeError::Bencode(_))
    ));
    assert_eq!(Message::decode(b"le"), Err(KrpcDecodeError::NotADictionary));
    assert_eq!(
        Message::decode(b"d1:t2:aa1:y1:ze"),
        Err(KrpcDecodeError::UnknownType { kind: "z".into() })
    );
    assert_eq!(
        Message::decode(b"d1:y1:qe"),
        Err(KrpcDecodeError::Missing { field: "t" })
    );
    let mut nodes = b"d1:rd2:id20:abcdefghij01234567895:nodes".to_vec();
    nodes.extend_from_slice(format!("{}:", 26 * (MAX_NODES + 1)).as_bytes());
    nodes.extend(std::iter::repeat_n(7u8, 26 * (MAX_NODES + 1)));
    nodes.extend_from_slice(b"e1:t2:aa1:y1:re");
    assert!(matches!(
        Message::decode(&nodes),
        Err(KrpcDecodeError::TooMany { field: "nodes", .. })
    ));
    let ragged = b"d1:rd2:id20:abcdefghij01234567895:nodes5:abcdee1:t2:aa1:y1:re";
    assert!(matches!(
        Message::decode(ragged),
        Err(KrpcDecodeError::WrongLength { field: "nodes", .. })
    ));
}

#[test]
fn truncated_and_trailing_input_is_refused() {
    let full = query(Method::AnnouncePeer {
        info_hash: HASH,
        port: 1,
        implied_port: false,
        token: Token::new(b"tok").unwrap(),
    })
    .encode();
    for cut in 0..full.len() {
        assert!(
            Message::decode(&full[..cut]).is_err(),
            "prefix of {cut} bytes decoded"
        );
    }
    let mut trailing = full.clone();
    trailing.push(b'x');
    assert!(matches!(
        Message::decode(&trailing),
        Err(KrpcDecodeError::Bencode(
            crate::bencode::DecodeError::TrailingBytes { .. }
        ))
    ));
}

fn arb_addr() -> impl Strategy<Value = SocketAddrV4> {
    (any::<u32>(), any::<u16>()).prop_map(|(ip, port)| SocketAddrV4::new(Ipv4Addr::from(ip), port))
}

fn arb_method() -> impl Strategy<Value = Method> {
    prop_oneof![
        Just(Method::Ping),
        any::<[u8; 20]>().prop_map(|target| Method::FindNode { target }),
        any::<[u8; 20]>().prop_map(|info_hash| Method::GetPeers { info_hash }),
        (
            any::<[u8; 20]>(),
            1..=u16::MAX,
            any::<bool>(),
            prop::collection::vec(any::<u8>(), 1..=MAX_TOKEN_LEN)
        )
            .prop_map(
                |(info_hash, port, implied_port, token)| Method::AnnouncePeer {
                    info_hash,
                    port,
                    implied_port,
                    token: Token::new(&token).unwrap(),
                }
            ),
    ]
}

fn arb_body() -> impl Strategy<Value = Body> {
    let query =
        (any::<[u8; 20]>(), any::<bool>(), arb_method()).prop_map(|(id, read_only, method)| {
            Body::Query(Query {
                sender: NodeId(id),
                read_only,
                method,
            })
        });
    let node = (any::<[u8; 20]>(), arb_addr()).prop_map(|(id, addr)| CompactNode {
        id: NodeId(id),
        addr,
    });
    let response = (
        any::<[u8; 20]>(),
        prop::collection::vec(node, 0..20),
        prop::collection::vec(arb_addr(), 0..60),
        prop::option::of(prop::collection::vec(any::<u8>(), 1..=MAX_TOKEN_LEN)),
    )
        .prop_map(|(id, nodes, values, token)| {
            Body::Response(Response {
                sender: NodeId(id),
                nodes,
                values,
                token: token.and_then(|t| Token::new(&t)),
            })
        });
    let error = (any::<i64>(), ".{0,300}").prop_map(|(code, text)| {
        match Message::error(tid(b"x"), code, &text).body {
            body @ Body::Error(_) => body,
            _ => unreachable!(),
        }
    });
    prop_oneof![query, response, error]
}

proptest! {
    #[test]
    fn round_trip(t in prop::collection::vec(any::<u8>(), 1..=MAX_TRANSACTION_ID_LEN), body in arb_body()) {
        let message = Message { transaction_id: tid(&t), body };
        let bytes = message.encode();
        prop_assert_eq!(bytes.len(), message.encoded_len());
        prop_assert_eq!(Message::decode(&bytes), Ok(message));
    }

    #[test]
    fn arbitrary_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..512)) {
        fuzzing::run(&data);
    }
}

use super::*;
use proptest::prelude::*;
use std::net::{Ipv6Addr, SocketAddrV4};

fn encoded(request: &Request) -> Vec<u8> {
    let mut out = Vec::new();
    request.encode(&mut out);
    assert_eq!(out.len(), request.encoded_len());
    out
}

fn encoded_response(response: &Response) -> Vec<u8> {
    let mut out = Vec::new();
    response.encode(&mut out);
    assert_eq!(out.len(), response.encoded_len());
    out
}

fn sample_announce() -> UdpAnnounce {
    UdpAnnounce {
        info_hash: InfoHash([0xab; 20]),
        peer_id: PeerId([b'p'; 20]),
        downloaded: 1,
        left: 2,
        uploaded: 3,
        event: AnnounceEvent::Started,
        key: 0x0102_0304,
        num_want: -1,
        port: 6881,
    }
}

#[test]
fn golden_connect() {
    let bytes = encoded(&Request::Connect {
        transaction_id: 0x1234_5678,
    });
    assert_eq!(
        bytes,
        [0, 0, 0x04, 0x17, 0x27, 0x10, 0x19, 0x80, 0, 0, 0, 0, 0x12, 0x34, 0x56, 0x78]
    );
    let reply = [0, 0, 0, 0, 0x12, 0x34, 0x56, 0x78, 1, 2, 3, 4, 5, 6, 7, 8];
    assert_eq!(
        Response::decode(&reply, PeerFamily::V4),
        Ok(Response::Connect {
            transaction_id: 0x1234_5678,
            connection_id: 0x0102_0304_0506_0708
        })
    );
}

#[test]
fn golden_announce_request() {
    let request = Request::Announce {
        connection_id: 0x0102_0304_0506_0708,
        transaction_id: 9,
        announce: sample_announce(),
    };
    let mut expected = vec![1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0, 1, 0, 0, 0, 9];
    expected.extend_from_slice(&[0xab; 20]);
    expected.extend_from_slice(&[b'p'; 20]);
    expected.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2]);
    expected.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 3]);
    expected.extend_from_slice(&[
        0, 0, 0, 2, 0, 0, 0, 0, 1, 2, 3, 4, 0xff, 0xff, 0xff, 0xff, 0x1a, 0xe1,
    ]);
    assert_eq!(encoded(&request), expected);
    assert_eq!(Request::decode(&expected), Ok(request.clone()));
    let mut with_bep41_options = expected.clone();
    with_bep41_options.extend_from_slice(&[2, 3, b'/', b'a', b'n']);
    assert_eq!(Request::decode(&with_bep41_options), Ok(request));
}

#[test]
fn golden_announce_reply_v4_and_v6() {
    let mut bytes = vec![
        0, 0, 0, 1, 0, 0, 0, 7, 0, 0, 0x07, 0x08, 0, 0, 0, 2, 0, 0, 0, 5,
    ];
    bytes.extend_from_slice(&[127, 0, 0, 1, 0x1a, 0xe1]);
    let Response::Announce {
        transaction_id: 7,
        reply,
    } = Response::decode(&bytes, PeerFamily::V4).unwrap()
    else {
        panic!("not an announce reply");
    };
    assert_eq!(reply.interval, Some(1800));
    assert_eq!((reply.leechers, reply.seeders), (Some(2), Some(5)));
    assert_eq!(reply.peers, vec!["127.0.0.1:6881".parse().unwrap()]);
    // The same 6 peer bytes are not a whole IPv6 entry.
    assert_eq!(
        Response::decode(&bytes, PeerFamily::V6),
        Err(UdpError::BadListLength {
            what: "announce peers",
            len: 6,
            entry_len: 18
        })
    );
}

#[test]
fn negative_interval_is_passed_on() {
    let bytes = [
        0, 0, 0, 1, 0, 0, 0, 7, 0xff, 0xff, 0xff, 0xfb, 0, 0, 0, 0, 0, 0, 0, 0,
    ];
    let Ok(Response::Announce { reply, .. }) = Response::decode(&bytes, PeerFamily::V4) else {
        panic!("not an announce reply");
    };
    assert_eq!(reply.interval, Some(-5));
}

#[test]
fn peer_lists_not_a_multiple_of_six_are_errors() {
    let mut bytes = vec![0, 0, 0, 1, 0, 0, 0, 7, 0, 0, 0, 60, 0, 0, 0, 0, 0, 0, 0, 0];
    bytes.extend_from_slice(&[1; 13]);
    assert_eq!(
        Response::decode(&bytes, PeerFamily::V4),
        Err(UdpError::BadListLength {
            what: "announce peers",
            len: 13,
            entry_len: 6
        })
    );
}

#[test]
fn error_and_scrape_replies() {
    let mut bytes = vec![0, 0, 0, 3, 0, 0, 0, 4];
    bytes.extend_from_slice(b"Connection ID missmatch.\0");
    assert_eq!(
        Response::decode(&bytes, PeerFamily::V4),
        Ok(Response::Error {
            transaction_id: 4,
            message: "Connection ID missmatch.\0".into()
        })
    );
    let scrape = [0, 0, 0, 2, 0, 0, 0, 4, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3];
    assert_eq!(
        Response::decode(&scrape, PeerFamily::V4),
        Ok(Response::Scrape {
            transaction_id: 4,
            stats: vec![ScrapeStats {
                seeders: 1,
                completed: 2,
                leechers: 3
            }]
        })
    );
    assert!(matches!(
        Response::decode(&scrape[..19], PeerFamily::V4),
        Err(UdpError::BadListLength {
            what: "scrape figures",
            len: 11,
            ..
        })
    ));
}

#[test]
fn every_truncation_of_fixed_parts_is_an_error() {
    let connect = encoded_response(&Response::Connect {
        transaction_id: 1,
        connection_id: 2,
    });
    let announce = encoded(&Request::Announce {
        connection_id: 1,
        transaction_id: 2,
        announce: sample_announce(),
    });
    let mut announce_reply = encoded_response(&Response::Announce {
        transaction_id: 1,
        reply: AnnounceReply {
            interval: Some(60),
            seeders: Some(1),
            leechers: Some(1),
            ..Default::default()
        },
    });
    for cut in 0..connect.len() {
        assert!(
            Response::decode(&connect[..cut], PeerFamily::V4).is_err(),
            "{cut}"
        );
    }
    for cut in 0..announce.len() {
        assert!(Request::decode(&announce[..cut]).is_err(), "{cut}");
    }
    for cut in 0..announce_reply.len() {
        assert!(
            Response::decode(&announce_reply[..cut], PeerFamily::V4).is_err(),
            "{cut}"
        );
    }
    announce_reply.extend_from_slice(&[1, 2, 3]);
    assert!(Response::decode(&announce_reply, PeerFamily::V4).is_err());
    // BEP 15: a connect reply is "at least" 16 bytes.
    let mut long_connect = connect.clone();
    long_connect.push(0);
    assert!(Response::decode(&long_connect, PeerFamily::V4).is_ok());
}

#[test]
fn hostile_headers_are_typed_errors() {
    let mut bad_magic = encoded(&Request::Connect { transaction_id: 1 });
    bad_magic[0] = 1;
    assert!(matches!(
        Request::decode(&bad_magic),
        Err(UdpError::BadProtocolId { .. })
    ));
    assert_eq!(
        Response::decode(&[0, 0, 0, 9, 0, 0, 0, 0], PeerFamily::V4),
        Err(UdpError::UnknownAction { action: 9 })
    );
    let huge = vec![0u8; MAX_PACKET_LEN + 1];
    assert!(matches!(
        Response::decode(&huge, PeerFamily::V4),
        Err(UdpError::TooLong { .. })
    ));
    let mut too_many = vec![0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 1];
    too_many.extend_from_slice(&[0; 20 * (MAX_SCRAPE_HASHES + 1)]);
    assert!(matches!(
        Request::decode(&too_many),
        Err(UdpError::TooManyHashes { count: 75, .. })
    ));
    let mut bad_event = encoded(&Request::Announce {
        connection_id: 1,
        transaction_id: 2,
        announce: sample_announce(),
    });
    bad_event[83] = 9;
    assert_eq!(
        Request::decode(&bad_event),
        Err(UdpError::BadEvent { event: 9 })
    );
}

fn any_request() -> impl Strategy<Value = Request> {
    let announce = (
        any::<([u8; 20], [u8; 20])>(),
        any::<(u64, u64, u64)>(),
        0u32..4,
        any::<(u32, i32, u16)>(),
    )
        .prop_map(
            |((hash, id), (downloaded, left, uploaded), event, (key, num_want, port))| {
                UdpAnnounce {
                    info_hash: InfoHash(hash),
                    peer_id: PeerId(id),
                    downloaded,
                    left,
                    uploaded,
                    event: AnnounceEvent::from_udp_code(event).unwrap_or_default(),
                    key,
                    num_want,
                    port,
                }
            },
        );
    prop_oneof![
        any::<u32>().prop_map(|transaction_id| Request::Connect { transaction_id }),
        (any::<(u64, u32)>(), announce).prop_map(|((connection_id, transaction_id), announce)| {
            Request::Announce {
                connection_id,
                transaction_id,
                announce,
            }
        }),
        (
            any::<(u64, u32)>(),
            proptest::collection::vec(any::<[u8; 20]>(), 0..=MAX_SCRAPE_HASHES)
        )
            .prop_map(
                |((connection_id, transaction_id), hashes)| Request::Scrape {
                    connection_id,
                    transaction_id,
                    hashes: hashes.into_iter().map(InfoHash).collect()
                }
            ),
    ]
}

fn any_response(family: PeerFamily) -> impl Strategy<Value = Response> {
    let peer = any::<(u128, u16)>().prop_map(move |(ip, port)| match family {
        PeerFamily::V4 => SocketAddr::V4(SocketAddrV4::new((ip as u32).into(), port)),
        PeerFamily::V6 => SocketAddr::new(Ipv6Addr::from(ip).into(), port),
    });
    let stats = any::<(u32, u32, u32)>().prop_map(|(seeders, completed, leechers)| ScrapeStats {
        seeders,
        completed,
        leechers,
    });
    prop_oneof![
        any::<(u32, u64)>().prop_map(|(transaction_id, connection_id)| Response::Connect {
            transaction_id,
            connection_id
        }),
        (
            any::<(u32, i32, u32, u32)>(),
            proptest::collection::vec(peer, 0..50)
        )
            .prop_map(|((transaction_id, interval, leechers, seeders), peers)| {
                Response::Announce {
                    transaction_id,
                    reply: AnnounceReply {
                        interval: Some(i64::from(interval)),
                        leechers: Some(leechers),
                        seeders: Some(seeders),
                        peers,
                        ..Default::default()
                    },
                }
            }),
        (any::<u32>(), proptest::collection::vec(stats, 0..20)).prop_map(
            |(transaction_id, stats)| Response::Scrape {
                transaction_id,
                stats
            }
        ),
        (any::<u32>(), "[ -~]{0,100}").prop_map(|(transaction_id, message)| Response::Error {
            transaction_id,
            message
        }),
    ]
}

proptest! {
    #[test]
    fn requests_round_trip(request in any_request()) {
        let bytes = encoded(&request);
        prop_assert_eq!(Request::decode(&bytes).unwrap(), request);
    }

    #[test]
    fn responses_round_trip(v4 in any_response(PeerFamily::V4), v6 in any_response(PeerFamily::V6)) {
        prop_assert_eq!(Response::decode(&encoded_response(&v4), PeerFamily::V4).unwrap(), v4);
        prop_assert_eq!(Response::decode(&encoded_response(&v6), PeerFamily::V6).unwrap(), v6);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = Request::decode(&bytes);
        let _ = Response::decode(&bytes, PeerFamily::V4);
        let _ = Response::decode(&bytes, PeerFamily::V6);
    }
}

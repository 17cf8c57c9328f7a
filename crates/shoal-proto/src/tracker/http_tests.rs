use super::*;
use proptest::prelude::*;

fn sample_announce() -> Announce {
    let mut hash = [0u8; 20];
    hash[..4].copy_from_slice(&[0x00, 0x2d, 0x7e, 0xff]);
    Announce {
        info_hash: InfoHash(hash),
        peer_id: PeerId(*b"-SH0100-abc.~_ %&=/Z"),
        port: 6881,
        uploaded: 1,
        downloaded: 2,
        left: 3,
        event: AnnounceEvent::Started,
        numwant: Some(50),
        key: 0xdead_beef,
        tracker_id: None,
    }
}

/// The reply opentracker 1.0 (Debian 12) sent to a first announce, byte for byte.
const OPENTRACKER_REPLY: &[u8] = b"d8:completei0e10:downloadedi0e10:incompletei1e8:intervali1702e\
12:min intervali851e5:peers6:\x7f\x00\x00\x01\x1a\xe1e";

#[test]
fn golden_announce_url() {
    let url = announce_url("http://t.example/announce", &sample_announce());
    assert_eq!(
        url,
        "http://t.example/announce?info_hash=%00-~%FF%00%00%00%00%00%00%00%00%00%00%00%00%00%00%00%00\
&peer_id=-SH0100-abc.~_%20%25%26%3D%2FZ&port=6881&uploaded=1&downloaded=2&left=3&compact=1\
&key=DEADBEEF&event=started&numwant=50"
    );
}

#[test]
fn announce_url_keeps_a_passkey_query_and_drops_a_fragment() {
    let mut announce = sample_announce();
    announce.event = AnnounceEvent::None;
    announce.numwant = None;
    announce.tracker_id = Some(b"x y".to_vec());
    let url = announce_url("https://t.example/a?passkey=abc#frag", &announce);
    assert!(
        url.starts_with("https://t.example/a?passkey=abc&info_hash="),
        "{url}"
    );
    assert!(url.ends_with("&key=DEADBEEF&trackerid=x%20y"), "{url}");
    assert!(!url.contains("event=") && !url.contains('#'));
}

#[test]
fn scrape_url_follows_the_convention() {
    let cases = [
        ("http://t/announce", Some("http://t/scrape")),
        (
            "http://t/x/announce.php?passkey=1",
            Some("http://t/x/scrape.php?passkey=1"),
        ),
        (
            "http://t/announce?a=/announce",
            Some("http://t/scrape?a=/announce"),
        ),
        ("http://t/a", None),
        ("http://t/announce/x", None),
        ("http://t/xannounce", None),
    ];
    for (announce, scrape) in cases {
        assert_eq!(scrape_url(announce).as_deref(), scrape, "{announce}");
    }
    let hashes = [InfoHash([0xab; 20]), InfoHash([0x41; 20])];
    let url = scrape_query_url("http://t/scrape", &hashes);
    assert_eq!(
        url,
        format!(
            "http://t/scrape?info_hash={}&info_hash={}",
            "%AB".repeat(20),
            "A".repeat(20)
        )
    );
}

#[test]
fn golden_opentracker_reply() {
    let reply = decode_announce(OPENTRACKER_REPLY).unwrap();
    assert_eq!(
        reply,
        AnnounceReply {
            interval: Some(1702),
            min_interval: Some(851),
            seeders: Some(0),
            leechers: Some(1),
            warning: None,
            tracker_id: None,
            peers: vec!["127.0.0.1:6881".parse().unwrap()],
        }
    );
}

#[test]
fn failure_reason_is_the_error() {
    let body =
        b"d14:failure reason63:Requested download is not authorized for use with this tracker.e";
    assert_eq!(
        decode_announce(body),
        Err(HttpReplyError::Failure {
            reason: "Requested download is not authorized for use with this tracker.".into()
        })
    );
    assert_eq!(
        decode_scrape(&encode_failure("nope")),
        Err(HttpReplyError::Failure {
            reason: "nope".into()
        })
    );
}

#[test]
fn numbers_pass_through_unclamped_and_bad_counts_are_dropped() {
    let reply =
        decode_announce(b"d8:completei-4e8:intervali-5e12:min intervali0e5:peers0:e").unwrap();
    assert_eq!(reply.interval, Some(-5));
    assert_eq!(reply.min_interval, Some(0));
    assert_eq!(reply.seeders, None);
    assert!(reply.peers.is_empty());
}

#[test]
fn peer_lists_of_the_wrong_length_are_errors() {
    assert_eq!(
        decode_announce(b"d5:peers7:\x01\x02\x03\x04\x05\x06\x07e"),
        Err(HttpReplyError::BadPeerList {
            key: "peers",
            len: 7,
            entry_len: 6
        })
    );
    assert_eq!(
        decode_announce(b"d5:peers0:6:peers66:\x01\x02\x03\x04\x05\x06e"),
        Err(HttpReplyError::BadPeerList {
            key: "peers6",
            len: 6,
            entry_len: 18
        })
    );
}

#[test]
fn dictionary_peers_skip_host_names_and_bad_ports() {
    let body = b"d5:peersld2:ip9:127.0.0.24:porti6881eed2:ip11:example.com4:porti1eed2:ip3:::14:porti70000eed2:ip3:::14:porti80eei7eee";
    let reply = decode_announce(body).unwrap();
    assert_eq!(
        reply.peers,
        vec![
            "127.0.0.2:6881".parse().unwrap(),
            "[::1]:80".parse().unwrap()
        ]
    );
}

#[test]
fn peers6_follow_peers4() {
    let mut body = b"d5:peers6:\x0a\x00\x00\x01\x00\x50".to_vec();
    body.extend_from_slice(b"6:peers618:");
    body.extend_from_slice(&[0; 15]);
    body.extend_from_slice(&[1, 0x1a, 0xe1]);
    body.push(b'e');
    let reply = decode_announce(&body).unwrap();
    assert_eq!(
        reply.peers,
        vec![
            "10.0.0.1:80".parse().unwrap(),
            "[::1]:6881".parse().unwrap()
        ]
    );
}

#[test]
fn wrong_types_are_named() {
    assert_eq!(
        decode_announce(b"d8:interval3:abce"),
        Err(HttpReplyError::WrongType {
            key: "interval",
            expected: "integer",
            found: "byte string"
        })
    );
    assert_eq!(
        decode_announce(b"d5:peersi1ee"),
        Err(HttpReplyError::WrongType {
            key: "peers",
            expected: "byte string or list",
            found: "integer"
        })
    );
    assert_eq!(
        decode_announce(b"le"),
        Err(HttpReplyError::NotADictionary { found: "list" })
    );
    assert!(matches!(
        decode_announce(b"<html>"),
        Err(HttpReplyError::Bencode(_))
    ));
}

#[test]
fn too_many_peers_are_refused_before_allocating() {
    let n = MAX_PEERS_PER_REPLY + 1;
    let mut body = format!("d5:peers{}:", n * 6).into_bytes();
    body.extend(std::iter::repeat_n(1u8, n * 6));
    body.push(b'e');
    assert_eq!(
        decode_announce(&body),
        Err(HttpReplyError::TooManyPeers {
            count: n,
            max: MAX_PEERS_PER_REPLY
        })
    );
}

#[test]
fn every_truncation_and_trailing_bytes_are_errors() {
    for cut in 0..OPENTRACKER_REPLY.len() {
        assert!(
            decode_announce(&OPENTRACKER_REPLY[..cut]).is_err(),
            "prefix of {cut} bytes"
        );
    }
    let mut trailing = OPENTRACKER_REPLY.to_vec();
    trailing.extend_from_slice(b"junk");
    assert!(matches!(
        decode_announce(&trailing),
        Err(HttpReplyError::Bencode(_))
    ));
}

#[test]
fn golden_scrape_reply() {
    let mut body = b"d5:filesd20:".to_vec();
    body.extend_from_slice(&[0xab; 20]);
    body.extend_from_slice(b"d8:completei3e10:downloadedi9e10:incompletei1eeee");
    let stats = ScrapeStats {
        seeders: 3,
        completed: 9,
        leechers: 1,
    };
    assert_eq!(
        decode_scrape(&body).unwrap(),
        vec![(InfoHash([0xab; 20]), stats)]
    );
    assert_eq!(encode_scrape(&[(InfoHash([0xab; 20]), stats)]), body);
    assert_eq!(
        decode_scrape(b"d5:filesd3:abcdeee"),
        Err(HttpReplyError::BadScrapeHash { len: 3 })
    );
    assert_eq!(decode_scrape(b"de"), Ok(vec![]));
}

#[test]
fn query_parse_refuses_missing_and_bad_fields() {
    assert_eq!(
        parse_announce_query("port=1"),
        Err(QueryError::Missing { name: "info_hash" })
    );
    let url = announce_url("http://t/a", &sample_announce());
    let query = url.split_once('?').unwrap().1;
    let bad_event = query.replace("event=started", "event=boom");
    assert!(matches!(
        parse_announce_query(&bad_event),
        Err(QueryError::BadValue { name: "event", .. })
    ));
    let bad_port = query.replace("port=6881", "port=65536");
    assert!(matches!(
        parse_announce_query(&bad_port),
        Err(QueryError::BadValue { name: "port", .. })
    ));
}

fn any_reply() -> impl Strategy<Value = AnnounceReply> {
    let v4 = proptest::collection::vec(any::<std::net::SocketAddrV4>(), 0..30);
    let v6 = proptest::collection::vec(any::<(u128, u16)>(), 0..10);
    (
        (
            any::<Option<i64>>(),
            any::<Option<i64>>(),
            any::<Option<u32>>(),
            any::<Option<u32>>(),
        ),
        proptest::option::of("[ -~]{0,40}"),
        proptest::option::of(proptest::collection::vec(any::<u8>(), 0..20)),
        v4,
        v6,
    )
        .prop_map(
            |((interval, min_interval, seeders, leechers), warning, tracker_id, v4, v6)| {
                let mut peers: Vec<SocketAddr> = v4.into_iter().map(SocketAddr::V4).collect();
                peers.extend(
                    v6.into_iter().map(|(ip, port)| {
                        SocketAddr::new(std::net::Ipv6Addr::from(ip).into(), port)
                    }),
                );
                AnnounceReply {
                    interval,
                    min_interval,
                    seeders,
                    leechers,
                    warning,
                    tracker_id,
                    peers,
                }
            },
        )
}

proptest! {
    #[test]
    fn announce_reply_round_trips(reply in any_reply()) {
        prop_assert_eq!(decode_announce(&encode_announce(&reply)).unwrap(), reply);
    }

    #[test]
    fn announce_query_round_trips(
        hash in any::<[u8; 20]>(), id in any::<[u8; 20]>(), port in any::<u16>(),
        totals in any::<(u64, u64, u64)>(), event in 0u32..4, numwant in any::<Option<u32>>(),
        key in any::<u32>(), tracker_id in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..20)),
    ) {
        let announce = Announce {
            info_hash: InfoHash(hash), peer_id: PeerId(id), port,
            uploaded: totals.0, downloaded: totals.1, left: totals.2,
            event: AnnounceEvent::from_udp_code(event).unwrap(), numwant, key, tracker_id,
        };
        let url = announce_url("http://t/announce", &announce);
        let query = url.split_once('?').unwrap().1;
        prop_assert_eq!(parse_announce_query(query).unwrap(), announce);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = decode_announce(&bytes);
        let _ = decode_scrape(&bytes);
        let _ = parse_announce_query(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn split_replies_decode_only_whole(reply in any_reply()) {
        let bytes = encode_announce(&reply);
        for cut in 0..bytes.len() {
            prop_assert!(decode_announce(&bytes[..cut]).is_err());
        }
    }
}

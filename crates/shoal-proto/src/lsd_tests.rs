use super::*;
use proptest::prelude::*;

fn hash(byte: u8) -> InfoHash {
    InfoHash([byte; 20])
}

const GOLDEN: &[u8] = b"BT-SEARCH * HTTP/1.1\r\n\
Host: 239.192.152.143:6771\r\n\
Port: 6881\r\n\
Infohash: 0101010101010101010101010101010101010101\r\n\
Infohash: abababababababababababababababababababab\r\n\
cookie: 5eed\r\n\
\r\n\
\r\n";

#[test]
fn golden_bytes_encode_and_decode() {
    let announce =
        LsdAnnounce::new(IPV4_HOST, 6881, vec![hash(1), hash(0xab)], Some("5eed")).unwrap();
    let mut out = Vec::new();
    announce.encode(&mut out);
    assert_eq!(out, GOLDEN);
    assert_eq!(announce.encoded_len(), GOLDEN.len());
    assert_eq!(LsdAnnounce::decode(GOLDEN).unwrap(), announce);
}

#[test]
fn decodes_libtorrent_style_with_mixed_case_names_and_lf_endings() {
    // libtorrent writes `cookie` in lower case and uppercase hex is valid too; some clients
    // end lines with a bare LF and send no cookie.
    let text = "BT-SEARCH * HTTP/1.1\nhost: 239.192.152.143:6771\nPORT:  51413\n\
INFOHASH: ABABABABABABABABABABABABABABABABABABABAB\nX-Other: whatever\n\n";
    let announce = LsdAnnounce::decode(text.as_bytes()).unwrap();
    assert_eq!(announce.port(), 51413);
    assert_eq!(announce.info_hashes(), &[hash(0xab)]);
    assert_eq!(announce.cookie(), None);
    assert_eq!(announce.host(), IPV4_HOST);
}

#[test]
fn every_truncation_is_a_typed_error() {
    for cut in 0..GOLDEN.len() - 4 {
        let result = LsdAnnounce::decode(&GOLDEN[..cut]);
        assert!(result.is_err(), "prefix of {cut} bytes decoded: {result:?}");
    }
    // The blank line closes the message; the extra CRLF after it is optional.
    assert!(LsdAnnounce::decode(&GOLDEN[..GOLDEN.len() - 2]).is_ok());
    assert_eq!(
        LsdAnnounce::decode(&GOLDEN[..GOLDEN.len() - 4]),
        Err(LsdError::Truncated)
    );
}

#[test]
fn trailing_bytes_after_the_headers_are_refused() {
    let mut input = GOLDEN.to_vec();
    input.extend_from_slice(b"junk");
    assert_eq!(
        LsdAnnounce::decode(&input),
        Err(LsdError::TrailingBytes {
            offset: GOLDEN.len(),
            count: 4
        })
    );
}

#[test]
fn oversized_input_is_refused_before_parsing() {
    let input = vec![b'A'; MAX_MESSAGE_LEN + 1];
    assert_eq!(
        LsdAnnounce::decode(&input),
        Err(LsdError::TooLong {
            len: MAX_MESSAGE_LEN + 1,
            max: MAX_MESSAGE_LEN
        })
    );
}

fn with_headers(headers: &str) -> Vec<u8> {
    format!("BT-SEARCH * HTTP/1.1\r\n{headers}\r\n").into_bytes()
}

#[test]
fn bad_headers_get_named_errors() {
    let ok_hash = "Infohash: 0101010101010101010101010101010101010101\r\n";
    let cases: Vec<(String, LsdError)> = vec![
        (
            format!("Host: a\r\nPort: 0\r\n{ok_hash}"),
            LsdError::BadPort { value: "0".into() },
        ),
        (
            format!("Host: a\r\nPort: 65536\r\n{ok_hash}"),
            LsdError::BadPort {
                value: "65536".into(),
            },
        ),
        (
            format!("Host: a\r\nPort: +80\r\n{ok_hash}"),
            LsdError::BadPort {
                value: "+80".into(),
            },
        ),
        (
            "Host: a\r\nPort: 1\r\nInfohash: 01\r\n".into(),
            LsdError::BadInfoHash { value: "01".into() },
        ),
        (
            format!("Host: a\r\nPort: 1\r\nInfohash: {}\r\n", "g".repeat(40)),
            LsdError::BadInfoHash {
                value: "g".repeat(40),
            },
        ),
        (
            format!("Port: 1\r\n{ok_hash}"),
            LsdError::MissingHeader { name: "Host" },
        ),
        (
            format!("Host: a\r\n{ok_hash}"),
            LsdError::MissingHeader { name: "Port" },
        ),
        (
            "Host: a\r\nPort: 1\r\n".into(),
            LsdError::MissingHeader { name: "Infohash" },
        ),
        (
            format!("Host: a\r\nPort: 1\r\nPort: 2\r\n{ok_hash}"),
            LsdError::DuplicateHeader { name: "Port" },
        ),
        (
            format!("Host: a\r\nPort 1\r\n{ok_hash}"),
            LsdError::MalformedHeader {
                line: "Port 1".into(),
            },
        ),
        (
            format!("Host: a\r\n: 1\r\n{ok_hash}"),
            LsdError::MalformedHeader { line: ": 1".into() },
        ),
        (
            format!("Host: a b\r\nPort: 1\r\n{ok_hash}"),
            LsdError::BadField {
                name: "Host",
                value: "a b".into(),
            },
        ),
        (
            format!(
                "Host: a\r\nPort: 1\r\ncookie: {}\r\n{ok_hash}",
                "c".repeat(65)
            ),
            LsdError::BadField {
                name: "cookie",
                value: "c".repeat(48),
            },
        ),
    ];
    for (headers, expected) in cases {
        assert_eq!(
            LsdAnnounce::decode(&with_headers(&headers)),
            Err(expected),
            "{headers:?}"
        );
    }
}

#[test]
fn request_line_and_bytes_are_checked() {
    assert_eq!(
        LsdAnnounce::decode(b"GET / HTTP/1.1\r\n\r\n"),
        Err(LsdError::BadRequestLine {
            line: "GET / HTTP/1.1".into()
        })
    );
    assert_eq!(
        LsdAnnounce::decode(b"BT-SEARCH * HTTP/1.1\r\nHost: \xff\r\n\r\n"),
        Err(LsdError::BadByte {
            offset: 28,
            byte: 0xff
        })
    );
    assert_eq!(
        LsdAnnounce::decode(b"BT-SEARCH * HTTP/1.1\r\nHost:\0a\r\n\r\n"),
        Err(LsdError::BadByte {
            offset: 27,
            byte: 0
        })
    );
}

#[test]
fn infohash_and_header_counts_are_capped() {
    let mut many = String::from("Host: a\r\nPort: 1\r\n");
    for i in 0..=MAX_INFOHASHES {
        many.push_str(&format!("Infohash: {}\r\n", hash(i as u8).to_hex()));
    }
    assert_eq!(
        LsdAnnounce::decode(&with_headers(&many)),
        Err(LsdError::TooManyInfoHashes {
            count: MAX_INFOHASHES + 1,
            max: MAX_INFOHASHES
        })
    );
    let filler = "X: y\r\n".repeat(MAX_HEADERS + 1);
    assert_eq!(
        LsdAnnounce::decode(&with_headers(&filler)),
        Err(LsdError::TooManyHeaders { max: MAX_HEADERS })
    );
}

#[test]
fn constructor_refuses_what_decode_would_refuse() {
    assert_eq!(
        LsdAnnounce::new(IPV4_HOST, 1, vec![], None),
        Err(LsdError::NoInfoHash)
    );
    assert!(matches!(
        LsdAnnounce::new(IPV4_HOST, 0, vec![hash(1)], None),
        Err(LsdError::BadPort { .. })
    ));
    assert!(matches!(
        LsdAnnounce::new(IPV4_HOST, 1, vec![hash(1); MAX_INFOHASHES + 1], None),
        Err(LsdError::TooManyInfoHashes { .. })
    ));
    assert!(matches!(
        LsdAnnounce::new(IPV4_HOST, 1, vec![hash(1)], Some("a\r\nb")),
        Err(LsdError::BadField { name: "cookie", .. })
    ));
}

#[test]
fn batches_split_long_lists_and_the_largest_fits_one_datagram() {
    let hashes: Vec<InfoHash> = (0..40).map(hash).collect();
    let batches = LsdAnnounce::batches(IPV4_HOST, 65535, &hashes, Some(&"c".repeat(64))).unwrap();
    assert_eq!(
        batches
            .iter()
            .map(|b| b.info_hashes().len())
            .collect::<Vec<_>>(),
        [16, 16, 8]
    );
    let all: Vec<InfoHash> = batches
        .iter()
        .flat_map(|b| b.info_hashes().to_vec())
        .collect();
    assert_eq!(all, hashes);
    let biggest = &batches[0];
    let host = "h".repeat(MAX_FIELD_LEN);
    let biggest = LsdAnnounce::new(
        &host,
        65535,
        biggest.info_hashes().to_vec(),
        biggest.cookie(),
    )
    .unwrap();
    assert!(
        biggest.encoded_len() <= MAX_MESSAGE_LEN,
        "{}",
        biggest.encoded_len()
    );
    assert!(LsdAnnounce::batches(IPV4_HOST, 1, &[], None)
        .unwrap()
        .is_empty());
}

fn field() -> impl Strategy<Value = String> {
    proptest::string::string_regex("[!-~]{1,64}").unwrap()
}

fn any_announce() -> impl Strategy<Value = LsdAnnounce> {
    (
        field(),
        1u16..,
        proptest::collection::vec(any::<[u8; 20]>(), 1..=MAX_INFOHASHES),
        proptest::option::of(field()),
    )
        .prop_map(|(host, port, hashes, cookie)| {
            let hashes = hashes.into_iter().map(InfoHash).collect();
            LsdAnnounce::new(&host, port, hashes, cookie.as_deref()).unwrap()
        })
}

proptest! {
    #[test]
    fn round_trip(announce in any_announce()) {
        let mut out = Vec::new();
        announce.encode(&mut out);
        prop_assert_eq!(out.len(), announce.encoded_len());
        prop_assert!(out.len() <= MAX_MESSAGE_LEN);
        prop_assert_eq!(LsdAnnounce::decode(&out).unwrap(), announce);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..1600)) {
        let _ = LsdAnnounce::decode(&bytes);
    }

    #[test]
    fn mutated_announces_never_panic(
        announce in any_announce(),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
    ) {
        let mut out = Vec::new();
        announce.encode(&mut out);
        for (index, byte) in flips {
            let at = index.index(out.len());
            out[at] = byte;
        }
        let _ = LsdAnnounce::decode(&out);
    }
}

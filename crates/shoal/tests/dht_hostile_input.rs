//! Bad KRPC input sent to a shoal DHT node on 127.0.0.1: garbage, oversized datagrams, bencode
//! bombs, responses with transaction ids we never used, malformed queries, a flood. After each
//! kind the node must still answer a plain `ping` and still serve lookups.

use crate::dht_support;

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

use shoal::dht::PublicInfoHash;
use shoal_proto::InfoHash;
use tokio::net::UdpSocket;

/// A `ping` query with a 4-byte transaction id (2-byte ids are covered by `dht_libtorrent`).
fn ping(tid: &[u8; 4]) -> Vec<u8> {
    let mut out = b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t4:".to_vec();
    out.extend_from_slice(tid);
    out.extend_from_slice(b"1:y1:qe");
    out
}

/// Sends a ping from a fresh socket and waits for the reply with the same transaction id.
async fn answers_ping(node: SocketAddrV4, tid: &[u8; 4]) -> bool {
    let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    for _attempt in 0..3 {
        socket.send_to(&ping(tid), node).await.unwrap();
        let mut buf = [0u8; 2048];
        let wait = tokio::time::timeout(Duration::from_secs(1), socket.recv_from(&mut buf)).await;
        if let Ok(Ok((len, _))) = wait {
            let reply = &buf[..len];
            let mut want_tid = b"1:t4:".to_vec();
            want_tid.extend_from_slice(tid);
            let has = |needle: &[u8]| reply.windows(needle.len()).any(|w| w == needle);
            return has(&want_tid) && has(b"1:y1:r");
        }
    }
    false
}

fn hostile_datagrams() -> Vec<(&'static str, Vec<Vec<u8>>)> {
    let garbage: Vec<Vec<u8>> = (0..200u32)
        .map(|i| {
            (0..(i % 97 + 1))
                .map(|j| (i.wrapping_mul(31) ^ (j * 7)) as u8)
                .collect()
        })
        .collect();
    let mut nested_dicts = Vec::new();
    for _ in 0..600 {
        nested_dicts.extend_from_slice(b"d1:a");
    }
    vec![
        ("garbage", garbage),
        ("empty and huge", vec![Vec::new(), vec![b'd'; 65_000], vec![b'9'; 60_000]]),
        ("bencode bombs", vec![vec![b'l'; 2_047], vec![b'l'; 60_000], nested_dicts]),
        (
            "bad numbers and lengths",
            vec![
                b"d1:t2:aa1:y1:q1:q4:ping1:ad2:id99999999999999999999:xee".to_vec(),
                b"d1:t2:aa1:y1:q1:q4:ping1:ad2:idi-0eee".to_vec(),
                b"d1:t2:aa1:y1:q1:q4:ping1:ad2:id-1:ee".to_vec(),
                b"d1:ti99999999999999999999999e1:y1:qe".to_vec(),
                b"d1:t2:aa1:y1:q1:q4:ping1:ad2:id19:0123456789012345678ee".to_vec(),
            ],
        ),
        (
            "responses we never asked for",
            vec![
                b"d1:rd2:id20:abcdefghij0123456789e1:t4:zzzz1:y1:re".to_vec(),
                b"d1:rd2:id20:abcdefghij01234567895:nodes26:abcdefghij0123456789\x7f\0\0\x01\0\x01e1:t2:\0\x011:y1:re".to_vec(),
                b"d1:eli201e5:Errore1:t2:\0\x021:y1:ee".to_vec(),
            ],
        ),
        (
            "malformed queries",
            vec![
                b"d1:ad2:id20:abcdefghij0123456789e1:q9:nonsense!1:t2:aa1:y1:qe".to_vec(),
                b"d1:ad2:id20:abcdefghij01234567899:info_hash3:abce1:q9:get_peers1:t2:aa1:y1:qe"
                    .to_vec(),
                b"d1:ad2:id20:abcdefghij012345678912:implied_porti1e9:info_hash20:abcdefghij01234567894:porti99999999e5:token3:badee1:q13:announce_peer1:t2:aa1:y1:qe".to_vec(),
                b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t0:1:y1:xe".to_vec(),
            ],
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_packets_do_not_stop_a_node() {
    let nodes = dht_support::local_network(6).await;
    let target = nodes[0].local_addr();
    assert!(
        answers_ping(target, b"pin0").await,
        "node does not answer a ping at all"
    );
    let attacker = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    for (round, (kind, datagrams)) in hostile_datagrams().into_iter().enumerate() {
        for datagram in &datagrams {
            attacker.send_to(datagram, target).await.unwrap();
        }
        let tid = [b'h', b'h', b'h', b'0' + round as u8];
        assert!(
            answers_ping(target, &tid).await,
            "node stopped answering after {kind}"
        );
    }
    // A flood of valid pings from one socket: the node keeps up or drops, but stays alive.
    for i in 0..3_000u16 {
        attacker
            .send_to(&ping(&u32::from(i).to_be_bytes()), target)
            .await
            .unwrap();
    }
    assert!(
        answers_ping(target, b"zzzz").await,
        "node stopped answering after a ping flood"
    );

    let hash = PublicInfoHash::new(InfoHash([0x77; 20]), false).unwrap();
    nodes[1].announce(hash, 6001).await.unwrap();
    let mut lookup = nodes[0].get_peers(hash);
    let found = tokio::time::timeout(Duration::from_secs(10), lookup.next())
        .await
        .unwrap();
    let expected = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 6001));
    assert_eq!(
        found,
        Some(expected),
        "lookups stopped working after bad input"
    );
}

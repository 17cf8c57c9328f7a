//! Extension tests of the torrent engine, with a scripted peer and explicit `now`: the BEP 10
//! handshake exchange, BEP 9 metadata serving, BEP 11 PEX input and BEP 6 allowed fast.
#![allow(clippy::disallowed_methods)] // a base instant for the virtual clock

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use shoal_proto::wire::ext_handshake::{ExtendedHandshake, OUR_UT_METADATA_ID, OUR_UT_PEX_ID};
use shoal_proto::wire::ut_metadata::MetadataMessage;
use shoal_proto::wire::ut_pex::{PexFlags, PexMessage, PexPeer};
use shoal_proto::wire::{Handshake, Message, Reserved};
use shoal_proto::{BlockRef, Geometry, InfoHash, PeerId};

use super::*;
use crate::peer::script::{encode, Remote};

const HASH: InfoHash = InfoHash([9; 20]);
/// The peer's id for ut_metadata (different from ours, to see which one is used).
const THEIR_METADATA_ID: u8 = 7;
const THEIR_PEX_ID: u8 = 5;

fn peer_addr() -> SocketAddr {
    "10.1.2.3:51413".parse().unwrap()
}

/// 40 pieces of 32 KiB, and 20,000 bytes of "metadata" (two BEP 9 pieces).
fn params(seed: bool, private: bool, info_len: Option<usize>) -> TorrentParams {
    let geometry = Geometry::new(40 * 32768, 32768).unwrap();
    let have = if seed {
        Bitfield::full(40)
    } else {
        Bitfield::new(40)
    };
    TorrentParams {
        info_hash: HASH,
        our_peer_id: PeerId([1; 20]),
        geometry,
        have,
        piece_priorities: Vec::new(),
        config: TorrentConfig::default(),
        rng_seed: 1,
        info_bytes: info_len.map(|n| Bytes::from((0..n).map(|i| i as u8).collect::<Vec<u8>>())),
        listen_port: Some(6881),
        private,
    }
}

struct Harness {
    torrent: Torrent,
    key: PeerKey,
    remote: Remote,
    other: Vec<Output>,
    now: Instant,
}

impl Harness {
    /// A peer connects to us with `reserved` and sends its extended handshake `theirs`.
    fn connect(
        params: TorrentParams,
        reserved: Reserved,
        theirs: Option<ExtendedHandshake>,
    ) -> Self {
        let now = Instant::now();
        let mut torrent = Torrent::new(params, now);
        let handshake = Handshake {
            reserved,
            info_hash: HASH,
            peer_id: PeerId([2; 20]),
        };
        let key = torrent.handle_incoming(now, peer_addr(), handshake);
        let mut h = Harness {
            torrent,
            key,
            remote: Remote::new(),
            other: Vec::new(),
            now,
        };
        h.pump();
        if let Some(theirs) = theirs {
            h.send(&[Message::Extended {
                id: 0,
                payload: theirs.encode().into(),
            }]);
        }
        h
    }

    fn pump(&mut self) {
        while let Some(out) = self.torrent.poll_output() {
            match out {
                Output::Transmit { peer, data } if peer == self.key => self.remote.absorb(&data),
                other => self.other.push(other),
            }
        }
    }

    fn send(&mut self, messages: &[Message]) {
        self.torrent
            .handle_peer_data(self.now, self.key, &encode(messages));
        self.pump();
    }

    fn ask_metadata(&mut self, piece: u32) -> Vec<MetadataMessage> {
        let payload = MetadataMessage::Request { piece }.encode();
        self.send(&[Message::Extended {
            id: OUR_UT_METADATA_ID,
            payload: payload.into(),
        }]);
        self.metadata_replies()
    }

    fn metadata_replies(&mut self) -> Vec<MetadataMessage> {
        self.remote
            .take()
            .into_iter()
            .filter_map(|m| match m {
                Message::Extended { id, payload } if id != 0 => {
                    assert_eq!(id, THEIR_METADATA_ID, "answers use the peer's id");
                    Some(MetadataMessage::decode(payload).unwrap())
                }
                _ => None,
            })
            .collect()
    }

    fn disconnect_reason(&self) -> Option<&DisconnectReason> {
        self.other.iter().find_map(|o| match o {
            Output::Disconnect { peer, reason } if *peer == self.key => Some(reason),
            _ => None,
        })
    }
}

fn full_reserved() -> Reserved {
    Reserved::shoal()
}

fn their_handshake() -> ExtendedHandshake {
    ExtendedHandshake {
        extensions: [
            ("ut_metadata".to_owned(), THEIR_METADATA_ID),
            ("ut_pex".to_owned(), THEIR_PEX_ID),
        ]
        .into(),
        listen_port: Some(7000),
        client: Some("Other 1.0".to_owned()),
        request_queue_len: Some(2),
        ..Default::default()
    }
}

fn our_extended_handshake(remote: &Remote) -> ExtendedHandshake {
    let payload = remote
        .received
        .iter()
        .find_map(|m| match m {
            Message::Extended { id: 0, payload } => Some(payload.clone()),
            _ => None,
        })
        .expect("an extended handshake was sent");
    ExtendedHandshake::decode(&payload).unwrap()
}

#[test]
fn extended_handshakes_are_exchanged_and_theirs_is_used() {
    let mut h = Harness::connect(params(false, false, Some(20_000)), full_reserved(), None);
    let ours = our_extended_handshake(&h.remote);
    assert_eq!(ours.ut_metadata_id(), Some(OUR_UT_METADATA_ID));
    assert_eq!(ours.ut_pex_id(), Some(OUR_UT_PEX_ID));
    assert_eq!(ours.listen_port, Some(6881));
    assert_eq!(ours.client.as_deref(), Some("shoal 0.1.0"));
    assert_eq!(ours.request_queue_len, Some(2000));
    assert_eq!(ours.metadata_size, Some(20_000));
    assert_eq!(ours.your_ip, Some(peer_addr().ip()));

    h.send(&[Message::Extended {
        id: 0,
        payload: their_handshake().encode().into(),
    }]);
    let stats = h.torrent.stats(h.now);
    assert_eq!(stats.peers[0].client.as_deref(), Some("Other 1.0"));
    // Their reqq of 2 caps what we ask of them at once.
    h.send(&[Message::HaveAll, Message::Unchoke]);
    let requests = h
        .remote
        .take()
        .into_iter()
        .filter(|m| matches!(m, Message::Request { .. }))
        .count();
    assert_eq!(requests, 2, "the peer's reqq bounds our pipeline");
}

#[test]
fn no_extended_handshake_to_a_peer_without_bep_10() {
    let h = Harness::connect(params(true, false, Some(100)), Reserved::default(), None);
    assert!(h
        .remote
        .received
        .iter()
        .all(|m| !matches!(m, Message::Extended { .. })));
}

#[test]
fn a_garbled_extended_handshake_drops_the_peer() {
    let mut h = Harness::connect(params(true, false, None), full_reserved(), None);
    h.send(&[Message::Extended {
        id: 0,
        payload: Bytes::from_static(b"le"),
    }]);
    assert!(matches!(
        h.disconnect_reason(),
        Some(DisconnectReason::Extension(ExtensionError::Handshake(_)))
    ));
}

#[test]
fn metadata_pieces_are_served_and_bad_requests_rejected() {
    let mut params = params(true, false, Some(20_000));
    params.config.extensions.metadata_burst_extra = 1;
    let info = params.info_bytes.clone().unwrap();
    let mut h = Harness::connect(params, full_reserved(), Some(their_handshake()));
    assert_eq!(
        h.ask_metadata(1),
        vec![MetadataMessage::Data {
            piece: 1,
            total_size: 20_000,
            data: info.slice(16384..),
        }]
    );
    assert_eq!(
        h.ask_metadata(2),
        vec![MetadataMessage::Reject { piece: 2 }],
        "a piece past the end is rejected"
    );
    // The allowance: two pieces (a full copy) plus one extra, then one per second.
    assert!(matches!(h.ask_metadata(0)[0], MetadataMessage::Data { .. }));
    assert!(matches!(h.ask_metadata(0)[0], MetadataMessage::Data { .. }));
    assert_eq!(
        h.ask_metadata(0),
        vec![MetadataMessage::Reject { piece: 0 }]
    );
    h.now += Duration::from_secs(1);
    assert!(matches!(h.ask_metadata(0)[0], MetadataMessage::Data { .. }));
    assert!(h.disconnect_reason().is_none());
}

#[test]
fn metadata_is_not_served_without_info_bytes_or_for_a_private_torrent() {
    for (private, info) in [(false, None), (true, Some(20_000))] {
        let mut h = Harness::connect(params(true, private, info), full_reserved(), None);
        let ours = our_extended_handshake(&h.remote);
        assert_eq!(ours.metadata_size, None);
        if private {
            assert_eq!(ours.ut_metadata_id(), None);
            assert_eq!(ours.ut_pex_id(), None);
            let dht = h.remote.handshake.unwrap().reserved.has(Reserved::DHT);
            assert!(!dht, "no DHT bit for a private torrent");
        }
        h.send(&[Message::Extended {
            id: 0,
            payload: their_handshake().encode().into(),
        }]);
        assert_eq!(
            h.ask_metadata(0),
            vec![MetadataMessage::Reject { piece: 0 }]
        );
    }
}

#[test]
fn a_malformed_metadata_message_drops_the_peer() {
    let mut h = Harness::connect(params(true, false, Some(100)), full_reserved(), None);
    h.send(&[Message::Extended {
        id: OUR_UT_METADATA_ID,
        payload: Bytes::from_static(b"d8:msg_typei0ee"),
    }]);
    assert!(matches!(
        h.disconnect_reason(),
        Some(DisconnectReason::Extension(ExtensionError::Metadata(_)))
    ));
}

fn pex_with(ports: std::ops::Range<u16>) -> Message {
    let added = ports
        .map(|port| PexPeer {
            addr: SocketAddr::from(([10, 9, 9, 9], port)),
            flags: PexFlags::default(),
        })
        .collect();
    let payload = PexMessage {
        added,
        dropped: Vec::new(),
    }
    .encode();
    Message::Extended {
        id: OUR_UT_PEX_ID,
        payload: payload.into(),
    }
}

#[test]
fn pex_addresses_are_learnt_at_most_every_45_seconds() {
    let mut h = Harness::connect(
        params(false, false, None),
        full_reserved(),
        Some(their_handshake()),
    );
    h.send(&[pex_with(1000..1003)]);
    let connects = |h: &Harness| {
        h.other
            .iter()
            .filter(|o| matches!(o, Output::Connect(_)))
            .count()
    };
    assert_eq!(connects(&h), 3);
    h.now += Duration::from_secs(10);
    h.send(&[pex_with(2000..2003)]);
    assert_eq!(connects(&h), 3, "a second message within 45 s is ignored");
    assert_eq!(h.torrent.stats(h.now).pex_ignored, 1);
    h.now += Duration::from_secs(45);
    h.send(&[pex_with(2000..2002)]);
    assert_eq!(connects(&h), 5);
}

/// Our `ut_pex` messages to the scripted peer so far.
fn pex_sent(h: &mut Harness) -> Vec<PexMessage> {
    h.pump();
    h.remote
        .take()
        .into_iter()
        .filter_map(|m| match m {
            Message::Extended { id, payload } if id == THEIR_PEX_ID => {
                Some(PexMessage::decode(&payload).unwrap())
            }
            _ => None,
        })
        .collect()
}

/// We dial `addr` and it completes its handshake: a peer others can be told of.
fn join_outgoing(h: &mut Harness, addr: SocketAddr, id: u8) {
    let key = h.torrent.handle_connected(h.now, addr);
    let handshake = Handshake {
        reserved: Reserved::shoal(),
        info_hash: HASH,
        peer_id: PeerId([id; 20]),
    };
    h.torrent.handle_peer_data(h.now, key, &handshake.encode());
    h.pump();
}

fn tick(h: &mut Harness, at: Duration, start: Instant) {
    h.now = start + at;
    h.torrent.handle_timeout(h.now);
}

fn added(messages: &[PexMessage]) -> Vec<SocketAddr> {
    messages
        .iter()
        .flat_map(|m| m.added.iter().map(|p| p.addr))
        .collect()
}

#[test]
fn first_pex_message_goes_out_shortly_after_the_extended_handshake_then_once_a_minute() {
    let mut h = Harness::connect(
        params(false, false, None),
        full_reserved(),
        Some(their_handshake()),
    );
    let start = h.now;
    let q: SocketAddr = "10.7.7.7:7000".parse().unwrap();
    join_outgoing(&mut h, q, 3);
    tick(&mut h, Duration::from_secs(2), start);
    assert!(pex_sent(&mut h).is_empty(), "not before pex_first_delay");
    assert!(h
        .torrent
        .poll_timeout()
        .is_some_and(|t| t <= start + Duration::from_secs(3)));
    tick(&mut h, Duration::from_secs(3), start);
    let first = pex_sent(&mut h);
    assert_eq!(added(&first), vec![q]);
    assert!(first[0].added[0].flags.0 & PexFlags::REACHABLE != 0);

    // Another peer joins 30 s later: the peer hears of it a minute after the first message.
    let r: SocketAddr = "10.7.7.8:7000".parse().unwrap();
    h.now = start + Duration::from_secs(30);
    join_outgoing(&mut h, r, 4);
    for secs in [33, 40, 62] {
        tick(&mut h, Duration::from_secs(secs), start);
        assert!(pex_sent(&mut h).is_empty(), "a second message at {secs} s");
    }
    tick(&mut h, Duration::from_secs(63), start);
    assert_eq!(added(&pex_sent(&mut h)), vec![r]);
    // Nothing new: nothing sent.
    tick(&mut h, Duration::from_secs(123), start);
    assert!(pex_sent(&mut h).is_empty());
}

#[test]
fn a_peer_with_nobody_to_hear_of_is_told_once_someone_joins() {
    let mut h = Harness::connect(
        params(false, false, None),
        full_reserved(),
        Some(their_handshake()),
    );
    let start = h.now;
    tick(&mut h, Duration::from_secs(3), start);
    assert!(pex_sent(&mut h).is_empty(), "nobody to tell of");
    let q: SocketAddr = "10.7.7.7:7000".parse().unwrap();
    h.now = start + Duration::from_secs(10);
    join_outgoing(&mut h, q, 3);
    assert!(h
        .torrent
        .poll_timeout()
        .is_some_and(|t| t <= start + Duration::from_secs(13)));
    tick(&mut h, Duration::from_secs(12), start);
    assert!(pex_sent(&mut h).is_empty(), "not before pex_first_delay");
    tick(&mut h, Duration::from_secs(13), start);
    assert_eq!(added(&pex_sent(&mut h)), vec![q]);
}

#[test]
fn a_private_torrent_ignores_pex() {
    let mut h = Harness::connect(
        params(false, true, None),
        full_reserved(),
        Some(their_handshake()),
    );
    h.send(&[pex_with(1000..1003)]);
    assert!(!h.other.iter().any(|o| matches!(o, Output::Connect(_))));
    assert_eq!(h.torrent.stats(h.now).known_addresses, 0);
}

#[test]
fn allowed_fast_pieces_are_offered_to_a_fast_peer_and_served_while_choked() {
    let mut h = Harness::connect(params(true, false, None), full_reserved(), None);
    let offered: Vec<u32> = h
        .remote
        .take()
        .into_iter()
        .filter_map(|m| match m {
            Message::AllowedFast { index } => Some(index),
            _ => None,
        })
        .collect();
    let std::net::IpAddr::V4(ip) = peer_addr().ip() else {
        unreachable!()
    };
    let expected = shoal_proto::wire::allowed_fast::allowed_fast_set(ip, HASH, 40, 10);
    assert_eq!(offered, expected);
    // Choked, the peer may fetch an allowed piece but not another.
    let allowed = expected[0];
    let other = (0..40).find(|i| !expected.contains(i)).unwrap();
    h.send(&[
        Message::HaveNone,
        Message::Request {
            index: allowed,
            begin: 0,
            length: 16384,
        },
        Message::Request {
            index: other,
            begin: 0,
            length: 16384,
        },
    ]);
    let reads: Vec<u32> = h
        .other
        .iter()
        .filter_map(|o| match o {
            Output::Disk(crate::disk::DiskRequest::Read { block, .. }) => Some(block.piece().get()),
            _ => None,
        })
        .collect();
    assert_eq!(reads, vec![allowed]);
    assert!(h.remote.take().contains(&Message::Reject {
        index: other,
        begin: 0,
        length: 16384
    }));
}

#[test]
fn a_choked_leecher_requests_the_pieces_the_peer_allowed_fast() {
    let mut h = Harness::connect(params(false, false, None), full_reserved(), None);
    h.remote.take();
    h.send(&[Message::HaveAll, Message::AllowedFast { index: 17 }]);
    let requested: Vec<u32> = h
        .remote
        .take()
        .into_iter()
        .filter_map(|m| match m {
            Message::Request { index, .. } => Some(index),
            _ => None,
        })
        .collect();
    assert!(!requested.is_empty(), "nothing requested while choked");
    assert!(requested.iter().all(|&i| i == 17), "{requested:?}");
}

/// A second incoming connection with the same peer id: from the same IP it replaces the old
/// one (the peer redialled, e.g. after fetching metadata), from another IP it is refused.
#[test]
fn a_peer_that_dials_again_from_its_ip_replaces_its_old_connection() {
    let mut h = Harness::connect(params(true, false, None), full_reserved(), None);
    let handshake = Handshake {
        reserved: full_reserved(),
        info_hash: HASH,
        peer_id: PeerId([2; 20]),
    };
    let impostor = h
        .torrent
        .handle_incoming(h.now, "10.9.9.9:6881".parse().unwrap(), handshake);
    h.pump();
    let dropped = |h: &Harness, key: PeerKey| {
        h.other.iter().any(|o| {
            matches!(o, Output::Disconnect { peer, reason: DisconnectReason::Duplicate } if *peer == key)
        })
    };
    assert!(
        dropped(&h, impostor),
        "another IP with the same id is refused"
    );
    assert!(!dropped(&h, h.key), "the first connection stays");

    let again = h
        .torrent
        .handle_incoming(h.now, "10.1.2.3:40000".parse().unwrap(), handshake);
    h.pump();
    assert!(dropped(&h, h.key), "the old connection gives way");
    assert!(!dropped(&h, again), "the redial is kept");
}

/// Pausing drops our connections, but that is not the peers' failure: on resume they are
/// dialled again at once, however often the torrent is paused.
#[test]
fn pause_and_resume_redial_our_peers_at_once_without_counting_failures() {
    let now = Instant::now();
    let mut torrent = Torrent::new(params(false, false, None), now);
    let addr: SocketAddr = "10.4.4.4:6881".parse().unwrap();
    let connects = |torrent: &mut Torrent| {
        let mut n = 0;
        while let Some(out) = torrent.poll_output() {
            if matches!(out, Output::Connect(a) if a == addr) {
                n += 1;
            }
        }
        n
    };
    torrent.add_peer_addresses(now, [addr], PeerSource::Manual);
    assert_eq!(connects(&mut torrent), 1);
    for round in 0..8 {
        torrent.handle_connected(now, addr);
        torrent.pause(now);
        assert_eq!(
            connects(&mut torrent),
            0,
            "round {round}: no dial while paused"
        );
        torrent.resume(now);
        assert_eq!(
            connects(&mut torrent),
            1,
            "round {round}: dialled again at once"
        );
    }
}

/// An idle torrent (no peers, no addresses) asks for no wake-up at all; a connected one does.
#[test]
fn an_idle_torrent_sets_no_deadline() {
    let now = Instant::now();
    let torrent = Torrent::new(params(true, false, None), now);
    assert_eq!(torrent.poll_timeout(), None);
    let h = Harness::connect(params(true, false, None), full_reserved(), None);
    assert!(h.torrent.poll_timeout().is_some());
}

/// A peer that requests much is served only as fast as its socket takes the data: no more than
/// the upload buffer is read ahead for it, and each `handle_peer_sent` lets more be read.
#[test]
fn reads_for_a_peer_stop_at_its_upload_buffer_until_its_socket_takes_bytes() {
    let mut p = params(true, false, None);
    p.config.peer.upload_buffer_bytes = 4 * 16384;
    let mut h = Harness::connect(p, full_reserved(), None);
    h.send(&[Message::HaveNone, Message::Interested]);
    assert!(h.remote.take().contains(&Message::Unchoke));
    let requests: Vec<Message> = (0..20)
        .map(|i| Message::Request {
            index: i / 2,
            begin: (i % 2) * 16384,
            length: 16384,
        })
        .collect();
    h.send(&requests);
    let reads = |h: &mut Harness| -> Vec<BlockRef> {
        std::mem::take(&mut h.other)
            .into_iter()
            .filter_map(|o| match o {
                Output::Disk(crate::disk::DiskRequest::Read { block, .. }) => Some(block),
                _ => None,
            })
            .collect()
    };
    let first = reads(&mut h);
    assert_eq!(
        first.len(),
        4,
        "only the upload buffer's worth is read ahead"
    );
    for block in &first {
        let data = Bytes::from(vec![7u8; block.len() as usize]);
        h.torrent.handle_disk(
            h.now,
            crate::disk::DiskDone::Read {
                peer: h.key,
                block: *block,
                result: Ok(data),
            },
        );
    }
    h.pump();
    let served = h
        .remote
        .take()
        .iter()
        .filter(|m| matches!(m, Message::Piece { .. }))
        .count();
    assert_eq!(served, 4);
    assert!(
        reads(&mut h).is_empty(),
        "nothing more until the socket took bytes"
    );
    // The socket took two blocks (and their headers): two more reads.
    h.torrent.handle_peer_sent(h.now, h.key, 2 * (16384 + 13));
    h.pump();
    assert_eq!(reads(&mut h).len(), 2);
}

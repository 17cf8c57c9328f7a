//! The magnet metadata fetch against scripted peers, with explicit `now`.
#![allow(clippy::disallowed_methods)] // a base instant for the virtual clock

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use shoal_proto::metainfo::TorrentBuilder;
use shoal_proto::wire::ext_handshake::{ExtendedHandshake, OUR_UT_METADATA_ID};
use shoal_proto::wire::ut_metadata::MetadataMessage;
use shoal_proto::wire::{Handshake, Message, Reserved};
use shoal_proto::{InfoHash, PeerId};

use super::*;
use crate::peer::script::{encode, Remote};

const THEIR_ID: u8 = 3;

/// A real info dictionary of 1000 piece hashes: 20 KB, two BEP 9 pieces.
fn info_bytes() -> Bytes {
    let hashes = (0..1000u32).map(|i| [(i % 251) as u8; 20]).collect();
    let builder = TorrentBuilder::single_file("movie.mkv", 1000 * 16384, 16384, hashes);
    Bytes::from(builder.info_bytes().unwrap())
}

fn addr(n: u8) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, n], 6881))
}

/// A fetch and the scripted peers it connected to, by address.
struct Harness {
    fetch: MetadataFetch,
    now: Instant,
    remotes: BTreeMap<PeerKey, (SocketAddr, Remote)>,
    outputs: Vec<MetadataOutput>,
}

impl Harness {
    fn new(info_hash: InfoHash) -> Self {
        let fetch = MetadataFetch::new(MetadataParams {
            info_hash,
            our_peer_id: PeerId([0xAA; 20]),
            listen_port: Some(6881),
            config: MetadataConfig::default(),
        });
        Harness {
            fetch,
            now: Instant::now(),
            remotes: BTreeMap::new(),
            outputs: Vec::new(),
        }
    }

    /// Tells the fetch about `addr`, accepts its connect, and has the peer answer with its
    /// handshake and extended handshake (`metadata_size`).
    fn connect(&mut self, n: u8, metadata_size: Option<u32>) -> PeerKey {
        self.fetch
            .add_peer_addresses(self.now, [addr(n)], PeerSource::Tracker);
        self.pump();
        let key = self.fetch.handle_connected(self.now, addr(n));
        self.remotes.insert(key, (addr(n), Remote::new()));
        self.pump();
        let handshake = Handshake {
            reserved: Reserved::shoal(),
            info_hash: self.fetch.info_hash(),
            peer_id: PeerId([n; 20]),
        };
        let theirs = ExtendedHandshake {
            extensions: [("ut_metadata".to_owned(), THEIR_ID)].into(),
            metadata_size,
            ..Default::default()
        };
        let mut bytes = handshake.encode().to_vec();
        bytes.extend(encode(&[
            Message::HaveAll,
            Message::Extended {
                id: 0,
                payload: theirs.encode().into(),
            },
        ]));
        self.fetch.handle_peer_data(self.now, key, &bytes);
        self.pump();
        key
    }

    fn pump(&mut self) {
        while let Some(out) = self.fetch.poll_output() {
            match out {
                MetadataOutput::Transmit { peer, data } => {
                    if let Some((_, remote)) = self.remotes.get_mut(&peer) {
                        remote.absorb(&data);
                    }
                }
                other => self.outputs.push(other),
            }
        }
    }

    /// The metadata pieces `key` was asked for since the last call.
    fn requests(&mut self, key: PeerKey) -> Vec<u32> {
        let remote = &mut self.remotes.get_mut(&key).unwrap().1;
        remote
            .take()
            .into_iter()
            .filter_map(|m| match m {
                Message::Extended { id, payload } if id == THEIR_ID => {
                    match MetadataMessage::decode(payload).unwrap() {
                        MetadataMessage::Request { piece } => Some(piece),
                        _ => None,
                    }
                }
                _ => None,
            })
            .collect()
    }

    /// `key` answers with piece `piece` of `metadata`.
    fn answer(&mut self, key: PeerKey, piece: u32, metadata: &Bytes) {
        let start = piece as usize * 16384;
        let end = (start + 16384).min(metadata.len());
        let message = MetadataMessage::Data {
            piece,
            total_size: metadata.len() as u32,
            data: metadata.slice(start..end),
        };
        let bytes = encode(&[Message::Extended {
            id: OUR_UT_METADATA_ID,
            payload: message.encode().into(),
        }]);
        self.fetch.handle_peer_data(self.now, key, &bytes);
        self.pump();
    }

    fn dropped(&self, key: PeerKey) -> Option<&FetchDropReason> {
        self.outputs.iter().find_map(|o| match o {
            MetadataOutput::Disconnect { peer, reason } if *peer == key => Some(reason),
            _ => None,
        })
    }

    fn done(&self) -> Option<&FetchedMetadata> {
        self.outputs.iter().find_map(|o| match o {
            MetadataOutput::Done(done) => Some(done),
            _ => None,
        })
    }
}

#[test]
fn fetches_every_piece_and_hands_out_the_verified_info_with_the_peers() {
    let metadata = info_bytes();
    let mut h = Harness::new(InfoHash::of_info_bytes(&metadata));
    let a = h.connect(1, Some(metadata.len() as u32));
    assert_eq!(h.requests(a), vec![0, 1]);
    assert_eq!(h.fetch.progress(), Some((0, 2)));
    h.answer(a, 1, &metadata);
    assert!(h.done().is_none());
    h.answer(a, 0, &metadata);
    let done = h.done().expect("finished");
    assert_eq!(done.info.raw(), &metadata);
    assert_eq!(done.info.piece_count(), 1000);
    assert_eq!(done.peers, vec![addr(1)]);
    assert_eq!(h.dropped(a), Some(&FetchDropReason::Finished));
    assert!(h.fetch.is_finished());
    // The last output is the result; later connections are refused.
    assert!(matches!(h.outputs.last(), Some(MetadataOutput::Done(_))));
    let late = h.fetch.handle_connected(h.now, addr(9));
    h.pump();
    assert_eq!(h.dropped(late), Some(&FetchDropReason::Finished));
}

#[test]
fn absurd_or_missing_metadata_sizes_drop_the_peer() {
    let metadata = info_bytes();
    let mut h = Harness::new(InfoHash::of_info_bytes(&metadata));
    let huge = h.connect(1, Some(100 * 1024 * 1024));
    assert!(matches!(
        h.dropped(huge),
        Some(FetchDropReason::BadMetadataSize { size, .. }) if *size == 100 * 1024 * 1024
    ));
    let zero = h.connect(2, Some(0));
    assert!(matches!(
        h.dropped(zero),
        Some(FetchDropReason::BadMetadataSize { .. })
    ));
    let none = h.connect(3, None);
    assert_eq!(h.dropped(none), Some(&FetchDropReason::NoMetadataSupport));
    assert_eq!(h.fetch.progress(), None, "no size was accepted");
}

#[test]
fn a_peer_disagreeing_on_the_size_is_dropped() {
    let metadata = info_bytes();
    let mut h = Harness::new(InfoHash::of_info_bytes(&metadata));
    let a = h.connect(1, Some(metadata.len() as u32));
    let b = h.connect(2, Some(metadata.len() as u32 + 1));
    assert!(h.dropped(a).is_none());
    assert_eq!(
        h.dropped(b),
        Some(&FetchDropReason::SizeMismatch {
            theirs: metadata.len() as u64 + 1,
            ours: metadata.len() as u32,
        })
    );
}

#[test]
fn metadata_failing_the_hash_bans_its_sole_sender_and_is_fetched_again() {
    let metadata = info_bytes();
    let mut h = Harness::new(InfoHash::of_info_bytes(&metadata));
    let liar = h.connect(1, Some(metadata.len() as u32));
    assert_eq!(h.requests(liar), vec![0, 1]);
    let honest = h.connect(2, Some(metadata.len() as u32));
    assert_eq!(
        h.requests(honest),
        Vec::<u32>::new(),
        "every piece is taken"
    );
    let mut forged = metadata.to_vec();
    forged[100] ^= 1;
    let forged = Bytes::from(forged);
    h.answer(liar, 0, &forged);
    h.answer(liar, 1, &forged);
    assert_eq!(h.dropped(liar), Some(&FetchDropReason::Banned));
    assert!(h
        .outputs
        .contains(&MetadataOutput::Event(MetadataEvent::PeerBanned {
            addr: addr(1),
            peer_id: Some(PeerId([1; 20])),
        })));
    assert_eq!(h.requests(honest), vec![0, 1]);
    h.answer(honest, 0, &metadata);
    h.answer(honest, 1, &metadata);
    let done = h.done().expect("fetched from the honest peer");
    assert_eq!(done.info.raw(), &metadata);
    assert_eq!(done.banned, vec![addr(1)]);
    assert!(!done.peers.contains(&addr(1)));
}

#[test]
fn with_several_senders_a_failure_switches_to_one_source_at_a_time() {
    let metadata = info_bytes();
    let mut h = Harness::new(InfoHash::of_info_bytes(&metadata));
    h.fetch.config = MetadataConfig {
        max_requests_per_peer: 1,
        ..MetadataConfig::default()
    };
    let honest = h.connect(1, Some(metadata.len() as u32));
    let liar = h.connect(2, Some(metadata.len() as u32));
    assert_eq!(h.requests(honest), vec![0]);
    assert_eq!(h.requests(liar), vec![1]);
    let mut forged = metadata.to_vec();
    forged[16384 + 5] ^= 1;
    let forged = Bytes::from(forged);
    h.answer(honest, 0, &metadata);
    h.answer(liar, 1, &forged);
    assert!(h
        .outputs
        .contains(&MetadataOutput::Event(MetadataEvent::HashFailed {
            contributors: vec![addr(1), addr(2)],
        })));
    assert!(h.dropped(liar).is_none(), "nobody can be blamed yet");
    // One source now: the lower key, which answers honestly.
    assert_eq!(h.requests(honest), vec![0]);
    assert_eq!(h.requests(liar), Vec::<u32>::new());
    h.answer(honest, 0, &metadata);
    assert_eq!(h.requests(honest), vec![1]);
    h.answer(honest, 1, &metadata);
    assert!(h.done().is_some());
}

#[test]
fn an_unanswered_piece_goes_to_another_peer_and_the_slow_one_is_dropped() {
    let metadata = info_bytes();
    let mut h = Harness::new(InfoHash::of_info_bytes(&metadata));
    let slow = h.connect(1, Some(metadata.len() as u32));
    assert_eq!(h.requests(slow), vec![0, 1]);
    let other = h.connect(2, Some(metadata.len() as u32));
    let deadline = h.fetch.poll_timeout().unwrap();
    assert!(deadline <= h.now + Duration::from_secs(20));
    h.now += Duration::from_secs(20);
    h.fetch.handle_timeout(h.now);
    h.pump();
    assert!(matches!(
        h.dropped(slow),
        Some(FetchDropReason::RequestTimeout { piece: 0, .. })
    ));
    assert_eq!(h.requests(other), vec![0, 1]);
}

#[test]
fn a_reject_drops_the_peer_and_frees_its_pieces() {
    let metadata = info_bytes();
    let mut h = Harness::new(InfoHash::of_info_bytes(&metadata));
    let a = h.connect(1, Some(metadata.len() as u32));
    h.requests(a);
    let b = h.connect(2, Some(metadata.len() as u32));
    let reject = MetadataMessage::Reject { piece: 1 }.encode();
    let bytes = encode(&[Message::Extended {
        id: OUR_UT_METADATA_ID,
        payload: reject.into(),
    }]);
    h.fetch.handle_peer_data(h.now, a, &bytes);
    h.pump();
    assert_eq!(h.dropped(a), Some(&FetchDropReason::Rejected { piece: 1 }));
    assert_eq!(h.requests(b), vec![0, 1]);
}

#[test]
fn a_peer_without_the_extension_protocol_is_dropped() {
    let mut h = Harness::new(InfoHash([4; 20]));
    h.fetch
        .add_peer_addresses(h.now, [addr(1)], PeerSource::Dht);
    h.pump();
    let key = h.fetch.handle_connected(h.now, addr(1));
    let handshake = Handshake {
        reserved: Reserved::default(),
        info_hash: InfoHash([4; 20]),
        peer_id: PeerId([1; 20]),
    };
    h.fetch.handle_peer_data(h.now, key, &handshake.encode());
    h.pump();
    assert_eq!(h.dropped(key), Some(&FetchDropReason::NoExtensionProtocol));
}

#[test]
fn metadata_that_hashes_right_but_is_no_torrent_is_unusable() {
    let metadata = Bytes::from_static(b"d4:name1:xe");
    let mut h = Harness::new(InfoHash::of_info_bytes(&metadata));
    let a = h.connect(1, Some(metadata.len() as u32));
    assert_eq!(h.requests(a), vec![0]);
    h.answer(a, 0, &metadata);
    assert!(matches!(
        h.outputs.last(),
        Some(MetadataOutput::Unusable(_))
    ));
    assert!(h.fetch.is_finished());
}

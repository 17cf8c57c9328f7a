//! Hostile peer-wire input: each kind disconnects that peer with a typed error, nothing panics,
//! and the rest of the swarm goes on.

use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use shoal_engine::bitfield::BitfieldError;
use shoal_engine::peer::PeerError;
use shoal_engine::torrent::DisconnectReason;
use shoal_proto::wire::{Message, Reserved, WireError};
use shoal_sim::{NodeId, NodeSpec, RawPeer, Sim, SimConfig};

fn encode(messages: &[Message]) -> Bytes {
    let mut out = BytesMut::new();
    for m in messages {
        m.encode(&mut out);
    }
    out.freeze()
}

/// Whether the typed error is the one a case expects.
type Expect = Box<dyn Fn(&PeerError) -> bool>;

fn reason_for(sim: &Sim, node: NodeId, raw: &RawPeer) -> Option<DisconnectReason> {
    sim.node(node)
        .disconnects
        .iter()
        .find(|d| d.remote == Some(raw.addr))
        .map(|d| d.reason.clone())
}

#[test]
fn every_kind_of_bad_peer_wire_input_drops_only_that_peer() {
    let mut sim = Sim::new(SimConfig {
        seed: 5,
        ..SimConfig::default()
    })
    .unwrap();
    let seed = sim.add_node(NodeSpec {
        seed: true,
        ..NodeSpec::default()
    });
    let leechers: Vec<NodeId> = (0..3).map(|_| sim.add_node(NodeSpec::default())).collect();
    sim.introduce_all();
    let pieces = sim.geometry().piece_count();
    let bitfield_len = sim.geometry().bitfield_len();
    let piece_len = sim.geometry().piece_len();
    let last = pieces - 1;
    let last_size = sim.geometry().piece_size(sim.geometry().last_piece());

    let mut huge_frame = BytesMut::new();
    huge_frame.put_u32(0xFFFF_FFFF);
    let mut spare = vec![0u8; bitfield_len];
    *spare.last_mut().unwrap() = 0x01; // piece count is not a multiple of 8
    assert_ne!(pieces % 8, 0);
    let unrequested: Vec<Message> = (0..9)
        .map(|i| Message::Piece {
            index: 0,
            begin: 0,
            data: Bytes::from(vec![i as u8; 16384]),
        })
        .collect();
    let cases: Vec<(&str, Bytes, Expect)> = vec![
        (
            "length prefix 0xFFFFFFFF",
            huge_frame.freeze(),
            Box::new(|e| matches!(e, PeerError::Wire(WireError::FrameTooLong { .. }))),
        ),
        (
            "bitfield of the wrong length",
            encode(&[Message::Bitfield(Bytes::from(vec![0xff; bitfield_len + 1]))]),
            Box::new(|e| matches!(e, PeerError::Bitfield(BitfieldError::WrongLength { .. }))),
        ),
        (
            "bitfield with spare bits",
            encode(&[Message::Bitfield(spare.into())]),
            Box::new(|e| matches!(e, PeerError::Bitfield(BitfieldError::SpareBitsSet { .. }))),
        ),
        (
            "have past the last piece",
            encode(&[Message::Have { index: pieces }]),
            Box::new(move |e| {
                *e == PeerError::PieceIndexOutOfRange {
                    message: "have",
                    index: pieces,
                    piece_count: pieces,
                }
            }),
        ),
        (
            "request of length 0",
            encode(&[Message::Request {
                index: 0,
                begin: 0,
                length: 0,
            }]),
            Box::new(|e| {
                *e == PeerError::InvalidRequest {
                    index: 0,
                    begin: 0,
                    length: 0,
                }
            }),
        ),
        (
            "request over 128 KiB",
            encode(&[Message::Request {
                index: 0,
                begin: 0,
                length: 128 * 1024 + 1,
            }]),
            Box::new(|e| {
                matches!(
                    e,
                    PeerError::InvalidRequest {
                        length: 131_073,
                        ..
                    }
                )
            }),
        ),
        (
            "request past the piece end",
            encode(&[Message::Request {
                index: last,
                begin: last_size - 10,
                length: 16384,
            }]),
            Box::new(|e| matches!(e, PeerError::InvalidRequest { .. })),
        ),
        (
            "pieces for blocks never requested",
            encode(&unrequested),
            Box::new(|e| matches!(e, PeerError::TooManyUnrequestedBlocks { .. })),
        ),
        (
            "a second bitfield that takes pieces back",
            encode(&[
                Message::Bitfield({
                    let mut first = shoal_engine::bitfield::Bitfield::new(last + 1);
                    first.set_index(0);
                    first.to_wire()
                }),
                Message::Bitfield(Bytes::from(vec![0u8; bitfield_len])),
            ]),
            Box::new(|e| *e == PeerError::SecondBitfield),
        ),
    ];
    assert!(piece_len > 16384);

    let mut raws = Vec::new();
    for (name, bytes, _) in &cases {
        let raw = sim.connect_raw(seed, Reserved::shoal());
        sim.run_until(sim.elapsed() + Duration::from_millis(200), |_| false);
        assert!(
            !sim.raw_received(&raw).1,
            "{name}: dropped before the bad input"
        );
        sim.raw_send(&raw, bytes.clone());
        raws.push(raw);
    }
    sim.run_until(sim.elapsed() + Duration::from_secs(1), |_| false);
    for ((name, _, expected), raw) in cases.iter().zip(&raws) {
        match reason_for(&sim, seed, raw) {
            Some(DisconnectReason::Protocol(error)) => {
                assert!(expected(&error), "{name}: got {error:?}")
            }
            other => panic!("{name}: expected a protocol error, got {other:?}"),
        }
        assert!(sim.raw_received(raw).1, "{name}: connection not closed");
    }
    assert!(
        sim.run_until_complete(Duration::from_secs(600)),
        "the swarm did not go on"
    );
    for id in leechers {
        assert!(sim.node(id).storage_matches(sim.content()));
    }
}

//! Simulated TCP-like connections: ordered byte streams with seeded latency, bandwidth and loss,
//! plus a frame tap on every direction that counts messages and applies a node's misbehaviour.
//!
//! Model: each direction of a connection is a FIFO pipe. A chunk written at `t` starts leaving
//! when the previous chunk has left (`free_at`), takes `len / bandwidth` to leave, and arrives
//! `latency` (+ seeded jitter) later. Loss on a TCP link is not corrupted bytes: with probability
//! `loss` a chunk suffers a retransmission stall of `rto`, and since the stream is ordered every
//! later chunk waits behind it. Arrival times never go backwards within a direction.

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use rand::rngs::StdRng;
use rand::Rng;
use shoal_proto::wire::ext_handshake::{OUR_UT_METADATA_ID, OUR_UT_PEX_ID};
use shoal_proto::wire::ut_metadata::MetadataMessage;
use shoal_proto::wire::{Handshake, Message, MessageDecoder};

/// Link parameters of the sending side of a direction.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LinkParams {
    /// One-way latency.
    pub latency: Duration,
    /// Extra one-way latency drawn uniformly from `0..=jitter` per chunk (order is kept).
    pub jitter: Duration,
    /// Bytes per second this side can send on one connection.
    pub bandwidth: u64,
    /// Probability that a chunk needs a retransmission.
    pub loss: f64,
    /// The stall a retransmission costs.
    pub rto: Duration,
}

impl Default for LinkParams {
    fn default() -> Self {
        LinkParams {
            latency: Duration::from_millis(20),
            jitter: Duration::from_millis(5),
            bandwidth: 10 * 1024 * 1024,
            loss: 0.0,
            rto: Duration::from_millis(200),
        }
    }
}

/// How a node misbehaves on the wire (applied to every message it sends).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Behaviour {
    #[default]
    Honest,
    /// Flips a byte in every block it sends (as if its disk returned garbage it claims to have).
    CorruptBlocks,
    /// Keeps the connection and says everything but never sends a block or a reject: its
    /// requests just go unanswered.
    Mute,
    /// Honest blocks, but flips a byte in every BEP 9 metadata piece it sends (its metadata
    /// will not hash to the infohash).
    CorruptMetadata,
}

/// Messages one node sent, by kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MessageCounts {
    pub requests: u64,
    pub cancels: u64,
    pub pieces: u64,
    pub haves: u64,
    pub rejects: u64,
    pub keepalives: u64,
    /// BEP 10 extended handshakes.
    pub ext_handshakes: u64,
    /// `ut_pex` messages (recognised by shoal's id for it, which every receiver in the
    /// simulator uses).
    pub pex: u64,
    /// `ut_metadata` messages (same assumption).
    pub metadata: u64,
    pub allowed_fast: u64,
    pub unchokes: u64,
    pub other: u64,
}

impl MessageCounts {
    fn count(&mut self, message: &Message) {
        match message {
            Message::Request { .. } => self.requests += 1,
            Message::Cancel { .. } => self.cancels += 1,
            Message::Piece { .. } => self.pieces += 1,
            Message::Have { .. } => self.haves += 1,
            Message::Reject { .. } => self.rejects += 1,
            Message::KeepAlive => self.keepalives += 1,
            Message::Extended { id: 0, .. } => self.ext_handshakes += 1,
            Message::Extended {
                id: OUR_UT_PEX_ID, ..
            } => self.pex += 1,
            Message::Extended {
                id: OUR_UT_METADATA_ID,
                ..
            } => self.metadata += 1,
            Message::AllowedFast { .. } => self.allowed_fast += 1,
            Message::Unchoke => self.unchokes += 1,
            _ => self.other += 1,
        }
    }
}

/// One direction of a connection: the pipe timing and the frame tap.
#[derive(Debug)]
pub(crate) struct Direction {
    free_at: Instant,
    last_arrival: Instant,
    handshake_left: usize,
    buf: BytesMut,
    decoder: MessageDecoder,
}

impl Direction {
    pub(crate) fn new(now: Instant, max_frame: u32) -> Self {
        Direction {
            free_at: now,
            last_arrival: now,
            handshake_left: Handshake::LEN,
            buf: BytesMut::new(),
            decoder: MessageDecoder::new(max_frame),
        }
    }

    /// When a chunk of `len` bytes written at `now` arrives.
    pub(crate) fn schedule(
        &mut self,
        now: Instant,
        len: usize,
        link: &LinkParams,
        rng: &mut StdRng,
    ) -> Instant {
        let start = self.free_at.max(now);
        let bandwidth = link.bandwidth.max(1) as f64;
        let leave = start + Duration::from_secs_f64(len as f64 / bandwidth);
        self.free_at = leave;
        let jitter_ns = u64::try_from(link.jitter.as_nanos()).unwrap_or(u64::MAX);
        let mut arrival = leave + link.latency + Duration::from_nanos(rng.gen_range(0..=jitter_ns));
        if link.loss > 0.0 && rng.gen_bool(link.loss.clamp(0.0, 1.0)) {
            arrival += link.rto;
        }
        arrival = arrival.max(self.last_arrival);
        self.last_arrival = arrival;
        arrival
    }

    /// Passes bytes the sender wrote through the tap: counts messages and applies the sender's
    /// behaviour. Honest bytes go through unchanged; a stream the tap cannot parse goes through
    /// as it is (the receiver will judge it).
    pub(crate) fn tap(
        &mut self,
        data: Bytes,
        behaviour: Behaviour,
        counts: &mut MessageCounts,
    ) -> Bytes {
        let mut out = BytesMut::new();
        let mut rest = &data[..];
        if self.handshake_left > 0 {
            let n = self.handshake_left.min(rest.len());
            out.extend_from_slice(&rest[..n]);
            rest = &rest[n..];
            self.handshake_left -= n;
        }
        self.buf.extend_from_slice(rest);
        let mut rewritten = BytesMut::new();
        while let Ok(Some(message)) = self.decoder.decode(&mut self.buf) {
            counts.count(&message);
            let message = match (behaviour, message) {
                (Behaviour::CorruptBlocks, Message::Piece { index, begin, data }) => {
                    let mut bad = data.to_vec();
                    if let Some(first) = bad.first_mut() {
                        *first ^= 0xff;
                    }
                    Some(Message::Piece {
                        index,
                        begin,
                        data: bad.into(),
                    })
                }
                (Behaviour::Mute, Message::Piece { .. } | Message::Reject { .. }) => None,
                (Behaviour::CorruptMetadata, Message::Extended { id, payload }) if id != 0 => {
                    Some(Message::Extended {
                        id,
                        payload: corrupt_metadata(payload),
                    })
                }
                (_, message) => Some(message),
            };
            if let Some(message) = message {
                message.encode(&mut rewritten);
            }
        }
        if behaviour == Behaviour::Honest {
            // Keep the exact bytes (partial frames included).
            return data;
        }
        out.extend_from_slice(&rewritten);
        out.freeze()
    }
}

/// A `ut_metadata` data message with one byte of its piece flipped; anything else unchanged.
fn corrupt_metadata(payload: Bytes) -> Bytes {
    match MetadataMessage::decode(payload.clone()) {
        Ok(MetadataMessage::Data {
            piece,
            total_size,
            data,
        }) => {
            let mut bad = data.to_vec();
            if let Some(first) = bad.first_mut() {
                *first ^= 0xff;
            }
            let message = MetadataMessage::Data {
                piece,
                total_size,
                data: bad.into(),
            };
            Bytes::from(message.encode())
        }
        _ => payload,
    }
}

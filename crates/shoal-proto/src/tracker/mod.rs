//! Tracker formats: what a peer sends to a tracker and what comes back, over HTTP(S) (BEP 3,
//! BEP 23 compact peers, BEP 7 `peers6`, BEP 48 scrape) and UDP (BEP 15).
//!
//! Data flows like this: a tracker URL from a torrent or magnet link is checked by
//! [`TrackerUrl::parse`] (only `http`, `https` and `udp`); an [`Announce`] (the torrent, our
//! totals, the event) becomes either an HTTP query string ([`http::announce_url`]) or a BEP 15
//! datagram ([`udp::Request::encode`]); the reply bytes become one [`AnnounceReply`] whichever
//! transport carried them ([`http::decode_announce`], [`udp::Response::decode`]).
//!
//! Guarantees: no IO, no clock, no panic on any input. Every decoder takes untrusted bytes, checks
//! sizes before allocating ([`MAX_PEERS_PER_REPLY`], [`MAX_TEXT_LEN`], bencode item limits), and
//! returns a typed error naming the offending value. Numbers are passed on as the tracker wrote
//! them (an `interval` of -5 stays -5): clamping them to sane bounds is the announce schedule's
//! job (`shoal_engine::announce`), so the policy lives in one place.

use std::net::SocketAddr;

use crate::{InfoHash, PeerId};

pub mod http;
pub mod udp;
mod url;

pub use url::{TrackerUrl, TrackerUrlError, MAX_TRACKER_URL_LEN};

/// Most peers accepted from one reply (compact v4 + compact v6 + dictionary entries). A reply
/// with more is refused with a typed error: no real tracker sends thousands per announce.
pub const MAX_PEERS_PER_REPLY: usize = 5_000;
/// Longest `failure reason`, `warning message` or UDP error text kept, in bytes; longer text is
/// cut (at a character boundary) and marked with `…`.
pub const MAX_TEXT_LEN: usize = 512;

/// The `event` of an announce (BEP 3). `None` is a regular, periodic announce.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub enum AnnounceEvent {
    #[default]
    None,
    /// The first announce of a download to this tracker.
    Started,
    /// The download finished (sent once, not when starting as a seed).
    Completed,
    /// We are leaving the swarm.
    Stopped,
}

impl AnnounceEvent {
    /// The HTTP `event=` value; `None` for a regular announce (the key is then omitted).
    pub fn http_name(self) -> Option<&'static str> {
        match self {
            AnnounceEvent::None => None,
            AnnounceEvent::Started => Some("started"),
            AnnounceEvent::Completed => Some("completed"),
            AnnounceEvent::Stopped => Some("stopped"),
        }
    }

    /// The BEP 15 event number: 0 none, 1 completed, 2 started, 3 stopped.
    pub fn udp_code(self) -> u32 {
        match self {
            AnnounceEvent::None => 0,
            AnnounceEvent::Completed => 1,
            AnnounceEvent::Started => 2,
            AnnounceEvent::Stopped => 3,
        }
    }

    /// Reads a BEP 15 event number; `None` for numbers above 3.
    pub fn from_udp_code(code: u32) -> Option<Self> {
        Some(match code {
            0 => AnnounceEvent::None,
            1 => AnnounceEvent::Completed,
            2 => AnnounceEvent::Started,
            3 => AnnounceEvent::Stopped,
            _ => return None,
        })
    }
}

/// Everything one announce tells a tracker, whichever transport carries it.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Announce {
    pub info_hash: InfoHash,
    pub peer_id: PeerId,
    /// The TCP port we accept peers on.
    pub port: u16,
    pub uploaded: u64,
    pub downloaded: u64,
    /// Bytes still to download (0 for a seed).
    pub left: u64,
    pub event: AnnounceEvent,
    /// How many peers we would like; `None` lets the tracker choose.
    pub numwant: Option<u32>,
    /// A random number fixed for the session, so a tracker can recognise us across IP changes.
    pub key: u32,
    /// The HTTP `tracker id` the tracker gave us last time, echoed back (unused over UDP).
    pub tracker_id: Option<Vec<u8>>,
}

/// A successful announce reply, from HTTP or UDP. Numbers are as the tracker sent them.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct AnnounceReply {
    /// Seconds until the next regular announce, unclamped (may be negative or absurd).
    pub interval: Option<i64>,
    /// Seconds the tracker asks us to wait at least between announces, unclamped.
    pub min_interval: Option<i64>,
    /// Peers with the whole torrent (`complete`, UDP `seeders`).
    pub seeders: Option<u32>,
    /// Peers still downloading (`incomplete`, UDP `leechers`).
    pub leechers: Option<u32>,
    /// `warning message`: the announce worked, but the tracker wants the user to know this.
    pub warning: Option<String>,
    /// `tracker id`, to be sent back on the next announce.
    pub tracker_id: Option<Vec<u8>>,
    /// Peers, IPv4 first, in the order the tracker listed them. May contain port 0 or our own
    /// address: the caller filters what it cannot connect to.
    pub peers: Vec<SocketAddr>,
}

/// One torrent's figures in a scrape reply.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct ScrapeStats {
    /// Peers with the whole torrent (`complete`).
    pub seeders: u32,
    /// How many times the tracker saw the download finish (`downloaded`).
    pub completed: u32,
    /// Peers still downloading (`incomplete`).
    pub leechers: u32,
}

/// Text from a tracker, made safe to show: lossy UTF-8, at most [`MAX_TEXT_LEN`] bytes.
pub fn tracker_text(bytes: &[u8]) -> String {
    let cut = bytes.len().min(MAX_TEXT_LEN);
    let mut text = String::from_utf8_lossy(&bytes[..cut]).into_owned();
    if bytes.len() > MAX_TEXT_LEN {
        text.push('…');
    }
    text
}

/// The fuzz entry point (`fuzz/fuzz_targets/tracker.rs`): every tracker decoder on arbitrary
/// bytes never panics, and UDP packets that decode encode back to the same value.
pub mod fuzzing {
    use super::{http, udp, TrackerUrl};

    pub fn run(data: &[u8]) {
        let _ = http::decode_announce(data);
        let _ = http::decode_scrape(data);
        let _ = TrackerUrl::parse(&String::from_utf8_lossy(data));
        let _ = http::parse_announce_query(&String::from_utf8_lossy(data));
        if let Ok(request) = udp::Request::decode(data) {
            let mut out = Vec::new();
            request.encode(&mut out);
            assert_eq!(out.len(), request.encoded_len());
            assert_eq!(udp::Request::decode(&out).as_ref(), Ok(&request));
        }
        for family in [udp::PeerFamily::V4, udp::PeerFamily::V6] {
            match udp::Response::decode(data, family) {
                // Error text is made lossy and capped on decoding, so it need not round-trip.
                Ok(udp::Response::Error { .. }) | Err(_) => {}
                Ok(response) => {
                    let mut out = Vec::new();
                    response.encode(&mut out);
                    assert_eq!(out.len(), response.encoded_len());
                    assert_eq!(udp::Response::decode(&out, family).as_ref(), Ok(&response));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn udp_event_codes_round_trip() {
        for event in [
            AnnounceEvent::None,
            AnnounceEvent::Started,
            AnnounceEvent::Completed,
            AnnounceEvent::Stopped,
        ] {
            assert_eq!(AnnounceEvent::from_udp_code(event.udp_code()), Some(event));
        }
        assert_eq!(AnnounceEvent::from_udp_code(4), None);
        assert_eq!(AnnounceEvent::Completed.udp_code(), 1);
        assert_eq!(AnnounceEvent::Started.http_name(), Some("started"));
    }

    proptest::proptest! {
        #[test]
        fn fuzz_entry_point_holds_on_arbitrary_bytes(
            data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200),
            action in 0u8..4,
        ) {
            fuzzing::run(&data);
            // Also with a valid UDP header, so the packet bodies are reached.
            let mut packet = vec![0, 0, 0, action, 1, 2, 3, 4];
            packet.extend_from_slice(&data);
            fuzzing::run(&packet);
        }
    }

    #[test]
    fn tracker_text_is_capped_and_lossy() {
        assert_eq!(tracker_text(b"no \xffway"), "no \u{fffd}way");
        let long = tracker_text(&[b'a'; 10_000]);
        assert_eq!(long.len(), MAX_TEXT_LEN + '…'.len_utf8());
        assert!(long.ends_with('…'));
    }
}

//! UDP tracker packets (BEP 15): connect, announce, scrape and error, with transaction ids.
//!
//! Data flows like this: the client sends a [`Request::Connect`] and gets a
//! [`Response::Connect`] carrying a connection id (valid about a minute); it then sends
//! [`Request::Announce`] or [`Request::Scrape`] with that id. Every request carries a random
//! transaction id that the reply must echo: matching them is the caller's job
//! ([`Response::transaction_id`]), and so is retransmission.
//!
//! All numbers are big-endian. Decoding never panics: a packet shorter than its fixed part is
//! [`UdpError::Truncated`]; an announce reply's peer list must be whole 6-byte (IPv4) or 18-byte
//! (IPv6) entries, chosen by the address family the request went over (BEP 15), and a scrape
//! reply whole 12-byte entries; anything longer than [`MAX_PACKET_LEN`] is refused before it is
//! read. A connect reply may be longer than 16 bytes (BEP 15 says "at least"); the extra is
//! ignored, as are BEP 41 options after an announce request.

use std::net::SocketAddr;

use super::{tracker_text, AnnounceEvent, AnnounceReply, ScrapeStats};
use crate::wire::compact;
use crate::{InfoHash, PeerId};

/// The magic connection id of a connect request.
pub const PROTOCOL_ID: u64 = 0x0417_2710_1980;
/// Largest packet decoded (and the size of a receive buffer that holds any UDP payload).
pub const MAX_PACKET_LEN: usize = 65_536;
/// Most infohashes in one scrape request (BEP 15: about 74 fit in a packet).
pub const MAX_SCRAPE_HASHES: usize = 74;
/// Length of an announce request without BEP 41 options.
pub const ANNOUNCE_REQUEST_LEN: usize = 98;

const ACTION_CONNECT: u32 = 0;
const ACTION_ANNOUNCE: u32 = 1;
const ACTION_SCRAPE: u32 = 2;
const ACTION_ERROR: u32 = 3;

/// Which address family a reply's compact peers are in: the family of the socket the request
/// was sent over (BEP 15).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum PeerFamily {
    V4,
    V6,
}

impl PeerFamily {
    pub fn of(addr: &SocketAddr) -> Self {
        if addr.is_ipv4() {
            PeerFamily::V4
        } else {
            PeerFamily::V6
        }
    }

    fn entry_len(self) -> usize {
        match self {
            PeerFamily::V4 => 6,
            PeerFamily::V6 => 18,
        }
    }
}

/// The announce fields of a BEP 15 request, besides the connection and transaction ids.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct UdpAnnounce {
    pub info_hash: InfoHash,
    pub peer_id: PeerId,
    pub downloaded: u64,
    pub left: u64,
    pub uploaded: u64,
    pub event: AnnounceEvent,
    pub key: u32,
    /// `-1` asks for the tracker's default.
    pub num_want: i32,
    pub port: u16,
}

/// A packet from client to tracker.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Request {
    Connect {
        transaction_id: u32,
    },
    Announce {
        connection_id: u64,
        transaction_id: u32,
        announce: UdpAnnounce,
    },
    Scrape {
        connection_id: u64,
        transaction_id: u32,
        hashes: Vec<InfoHash>,
    },
}

/// A packet from tracker to client.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Response {
    Connect {
        transaction_id: u32,
        connection_id: u64,
    },
    Announce {
        transaction_id: u32,
        reply: AnnounceReply,
    },
    Scrape {
        transaction_id: u32,
        stats: Vec<ScrapeStats>,
    },
    /// The tracker refused; the text is capped and lossy UTF-8.
    Error {
        transaction_id: u32,
        message: String,
    },
}

/// Why a datagram is not a BEP 15 packet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UdpError {
    #[error("UDP tracker packet of {len} bytes is shorter than the {needed} its kind needs")]
    Truncated { len: usize, needed: usize },
    #[error("UDP tracker packet of {len} bytes is over the {max} byte limit")]
    TooLong { len: usize, max: usize },
    #[error("unknown UDP tracker action {action}")]
    UnknownAction { action: u32 },
    #[error("connect request has protocol id {found:#x}, not {PROTOCOL_ID:#x}")]
    BadProtocolId { found: u64 },
    #[error("unknown announce event {event}")]
    BadEvent { event: u32 },
    #[error("{len} bytes of {what} are not a multiple of {entry_len}")]
    BadListLength {
        what: &'static str,
        len: usize,
        entry_len: usize,
    },
    #[error("scrape request of {count} infohashes, over the limit of {max}")]
    TooManyHashes { count: usize, max: usize },
}

/// A cursor over a packet: every read checks the length first.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8], needed: usize) -> Result<Self, UdpError> {
        if bytes.len() > MAX_PACKET_LEN {
            return Err(UdpError::TooLong {
                len: bytes.len(),
                max: MAX_PACKET_LEN,
            });
        }
        if bytes.len() < needed {
            return Err(UdpError::Truncated {
                len: bytes.len(),
                needed,
            });
        }
        Ok(Reader { bytes, pos: 0 })
    }

    fn take<const N: usize>(&mut self) -> Result<[u8; N], UdpError> {
        let end = self.pos + N;
        let slice = self.bytes.get(self.pos..end).ok_or(UdpError::Truncated {
            len: self.bytes.len(),
            needed: end,
        })?;
        self.pos = end;
        let mut out = [0u8; N];
        out.copy_from_slice(slice);
        Ok(out)
    }

    fn u32(&mut self) -> Result<u32, UdpError> {
        self.take().map(u32::from_be_bytes)
    }

    fn u64(&mut self) -> Result<u64, UdpError> {
        self.take().map(u64::from_be_bytes)
    }

    /// The rest of the packet, which must be whole `entry_len`-byte entries.
    fn rest_in(&mut self, what: &'static str, entry_len: usize) -> Result<&'a [u8], UdpError> {
        let rest = self.bytes.get(self.pos..).unwrap_or_default();
        if !rest.len().is_multiple_of(entry_len) {
            return Err(UdpError::BadListLength {
                what,
                len: rest.len(),
                entry_len,
            });
        }
        self.pos = self.bytes.len();
        Ok(rest)
    }
}

impl Request {
    pub fn transaction_id(&self) -> u32 {
        match *self {
            Request::Connect { transaction_id }
            | Request::Announce { transaction_id, .. }
            | Request::Scrape { transaction_id, .. } => transaction_id,
        }
    }

    /// Exact number of bytes [`Request::encode`] appends.
    pub fn encoded_len(&self) -> usize {
        match self {
            Request::Connect { .. } => 16,
            Request::Announce { .. } => ANNOUNCE_REQUEST_LEN,
            Request::Scrape { hashes, .. } => 16 + 20 * hashes.len(),
        }
    }

    /// Appends the packet to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Request::Connect { transaction_id } => {
                out.extend_from_slice(&PROTOCOL_ID.to_be_bytes());
                out.extend_from_slice(&ACTION_CONNECT.to_be_bytes());
                out.extend_from_slice(&transaction_id.to_be_bytes());
            }
            Request::Announce {
                connection_id,
                transaction_id,
                announce: a,
            } => {
                out.extend_from_slice(&connection_id.to_be_bytes());
                out.extend_from_slice(&ACTION_ANNOUNCE.to_be_bytes());
                out.extend_from_slice(&transaction_id.to_be_bytes());
                out.extend_from_slice(&a.info_hash.0);
                out.extend_from_slice(&a.peer_id.0);
                for n in [a.downloaded, a.left, a.uploaded] {
                    out.extend_from_slice(&n.to_be_bytes());
                }
                out.extend_from_slice(&a.event.udp_code().to_be_bytes());
                out.extend_from_slice(&0u32.to_be_bytes()); // IP: the sender's
                out.extend_from_slice(&a.key.to_be_bytes());
                out.extend_from_slice(&a.num_want.to_be_bytes());
                out.extend_from_slice(&a.port.to_be_bytes());
            }
            Request::Scrape {
                connection_id,
                transaction_id,
                hashes,
            } => {
                out.extend_from_slice(&connection_id.to_be_bytes());
                out.extend_from_slice(&ACTION_SCRAPE.to_be_bytes());
                out.extend_from_slice(&transaction_id.to_be_bytes());
                for hash in hashes {
                    out.extend_from_slice(&hash.0);
                }
            }
        }
    }

    /// Reads a request, as a tracker would (for fake trackers and tests).
    pub fn decode(bytes: &[u8]) -> Result<Self, UdpError> {
        let mut r = Reader::new(bytes, 16)?;
        let connection_id = r.u64()?;
        let action = r.u32()?;
        let transaction_id = r.u32()?;
        match action {
            ACTION_CONNECT if connection_id == PROTOCOL_ID => {
                Ok(Request::Connect { transaction_id })
            }
            ACTION_CONNECT => Err(UdpError::BadProtocolId {
                found: connection_id,
            }),
            ACTION_ANNOUNCE => {
                if bytes.len() < ANNOUNCE_REQUEST_LEN {
                    return Err(UdpError::Truncated {
                        len: bytes.len(),
                        needed: ANNOUNCE_REQUEST_LEN,
                    });
                }
                let info_hash = InfoHash(r.take()?);
                let peer_id = PeerId(r.take()?);
                let (downloaded, left, uploaded) = (r.u64()?, r.u64()?, r.u64()?);
                let event_code = r.u32()?;
                let event = AnnounceEvent::from_udp_code(event_code)
                    .ok_or(UdpError::BadEvent { event: event_code })?;
                let _ip = r.u32()?;
                let key = r.u32()?;
                let num_want = i32::from_be_bytes(r.take()?);
                let port = u16::from_be_bytes(r.take()?);
                let announce = UdpAnnounce {
                    info_hash,
                    peer_id,
                    downloaded,
                    left,
                    uploaded,
                    event,
                    key,
                    num_want,
                    port,
                };
                Ok(Request::Announce {
                    connection_id,
                    transaction_id,
                    announce,
                })
            }
            ACTION_SCRAPE => {
                let list = r.rest_in("scrape infohashes", 20)?;
                let count = list.len() / 20;
                if count > MAX_SCRAPE_HASHES {
                    return Err(UdpError::TooManyHashes {
                        count,
                        max: MAX_SCRAPE_HASHES,
                    });
                }
                let hashes = list
                    .chunks_exact(20)
                    .map(|c| InfoHash(<[u8; 20]>::try_from(c).unwrap_or_default()))
                    .collect();
                Ok(Request::Scrape {
                    connection_id,
                    transaction_id,
                    hashes,
                })
            }
            action => Err(UdpError::UnknownAction { action }),
        }
    }
}

impl Response {
    pub fn transaction_id(&self) -> u32 {
        match *self {
            Response::Connect { transaction_id, .. }
            | Response::Announce { transaction_id, .. }
            | Response::Scrape { transaction_id, .. }
            | Response::Error { transaction_id, .. } => transaction_id,
        }
    }

    /// Reads the action and transaction id only, to route a reply before decoding it.
    pub fn peek_header(bytes: &[u8]) -> Result<(u32, u32), UdpError> {
        let mut r = Reader::new(bytes, 8)?;
        Ok((r.u32()?, r.u32()?))
    }

    /// Exact number of bytes [`Response::encode`] appends. `family` as in [`Response::decode`].
    pub fn encoded_len(&self) -> usize {
        match self {
            Response::Connect { .. } => 16,
            Response::Announce { reply, .. } => {
                20 + reply
                    .peers
                    .iter()
                    .map(|p| if p.is_ipv4() { 6 } else { 18 })
                    .sum::<usize>()
            }
            Response::Scrape { stats, .. } => 8 + 12 * stats.len(),
            Response::Error { message, .. } => 8 + message.len(),
        }
    }

    /// Appends the packet to `out`. For an announce reply, write peers of one family only (the
    /// family of the client's socket); missing counts are written as 0.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let header = |out: &mut Vec<u8>, action: u32, transaction_id: u32| {
            out.extend_from_slice(&action.to_be_bytes());
            out.extend_from_slice(&transaction_id.to_be_bytes());
        };
        match self {
            Response::Connect {
                transaction_id,
                connection_id,
            } => {
                header(out, ACTION_CONNECT, *transaction_id);
                out.extend_from_slice(&connection_id.to_be_bytes());
            }
            Response::Announce {
                transaction_id,
                reply,
            } => {
                header(out, ACTION_ANNOUNCE, *transaction_id);
                let interval = reply
                    .interval
                    .and_then(|i| i32::try_from(i).ok())
                    .unwrap_or(0);
                out.extend_from_slice(&interval.to_be_bytes());
                out.extend_from_slice(&reply.leechers.unwrap_or(0).to_be_bytes());
                out.extend_from_slice(&reply.seeders.unwrap_or(0).to_be_bytes());
                for peer in &reply.peers {
                    compact::encode(*peer, out);
                }
            }
            Response::Scrape {
                transaction_id,
                stats,
            } => {
                header(out, ACTION_SCRAPE, *transaction_id);
                for s in stats {
                    for n in [s.seeders, s.completed, s.leechers] {
                        out.extend_from_slice(&n.to_be_bytes());
                    }
                }
            }
            Response::Error {
                transaction_id,
                message,
            } => {
                header(out, ACTION_ERROR, *transaction_id);
                out.extend_from_slice(message.as_bytes());
            }
        }
    }

    /// Reads a reply. `family` is the address family of the socket the request went over; it
    /// decides whether announce peers are 6 or 18 bytes each.
    pub fn decode(bytes: &[u8], family: PeerFamily) -> Result<Self, UdpError> {
        let (action, transaction_id) = Self::peek_header(bytes)?;
        let mut r = Reader::new(bytes, 8)?;
        r.pos = 8;
        match action {
            ACTION_CONNECT => {
                let connection_id = r.u64()?;
                Ok(Response::Connect {
                    transaction_id,
                    connection_id,
                })
            }
            ACTION_ANNOUNCE => {
                if bytes.len() < 20 {
                    // opentracker answers an announce for a torrent it does not track with
                    // these 8 header bytes alone.
                    return Err(UdpError::Truncated {
                        len: bytes.len(),
                        needed: 20,
                    });
                }
                let interval = i32::from_be_bytes(r.take()?);
                let leechers = r.u32()?;
                let seeders = r.u32()?;
                let list = r.rest_in("announce peers", family.entry_len())?;
                // The length was checked to be whole entries, so these decodes cannot fail.
                let peers = match family {
                    PeerFamily::V4 => compact::decode_v4(list)
                        .unwrap_or_default()
                        .into_iter()
                        .map(SocketAddr::V4)
                        .collect(),
                    PeerFamily::V6 => compact::decode_v6(list)
                        .unwrap_or_default()
                        .into_iter()
                        .map(SocketAddr::V6)
                        .collect(),
                };
                let reply = AnnounceReply {
                    interval: Some(i64::from(interval)),
                    seeders: Some(seeders),
                    leechers: Some(leechers),
                    peers,
                    ..AnnounceReply::default()
                };
                Ok(Response::Announce {
                    transaction_id,
                    reply,
                })
            }
            ACTION_SCRAPE => {
                let list = r.rest_in("scrape figures", 12)?;
                let stats = list
                    .chunks_exact(12)
                    .map(|c| {
                        let n = |i: usize| u32::from_be_bytes([c[i], c[i + 1], c[i + 2], c[i + 3]]);
                        ScrapeStats {
                            seeders: n(0),
                            completed: n(4),
                            leechers: n(8),
                        }
                    })
                    .collect();
                Ok(Response::Scrape {
                    transaction_id,
                    stats,
                })
            }
            ACTION_ERROR => {
                let message = tracker_text(bytes.get(8..).unwrap_or_default());
                Ok(Response::Error {
                    transaction_id,
                    message,
                })
            }
            action => Err(UdpError::UnknownAction { action }),
        }
    }
}

#[cfg(test)]
#[path = "udp_tests.rs"]
mod tests;

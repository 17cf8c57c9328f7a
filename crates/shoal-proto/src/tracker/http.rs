//! HTTP tracker formats (BEP 3, BEP 23, BEP 7, BEP 48): the announce and scrape query strings,
//! and the bencoded replies.
//!
//! Requests: [`announce_url`] appends the announce parameters to a tracker URL (keeping a query
//! it already has, such as a passkey); the 20-byte infohash and peer id are percent-encoded byte
//! by byte, everything but RFC 3986 unreserved characters escaped. [`scrape_url`] derives the
//! scrape URL by the BEP 48 convention (last path segment `announce…` becomes `scrape…`).
//!
//! Replies: [`decode_announce`] reads a bencoded dictionary. A `failure reason` is returned as
//! [`HttpReplyError::Failure`] (the tracker refused; the reason is for the user). Peers come from
//! a compact `peers` string (6 bytes each), a `peers6` string (18 bytes each) and/or a list of
//! `{ip, port}` dictionaries. Decided once: a compact list whose length is not a multiple of its
//! entry size makes the whole reply an error (it is malformed, and dropping a tail would hide
//! it); a dictionary entry whose `ip` is not an IP literal (BEP 3 allows host names) or whose port
//! is out of range is skipped. Replies are decoded with tight bencode limits and at most
//! [`MAX_PEERS_PER_REPLY`] peers, counted before the list is allocated.
//!
//! The encoders ([`encode_announce`], [`encode_failure`], [`encode_scrape`], [`parse_announce_query`])
//! exist for tests and fake trackers, and give round trips to test the decoders against.

use std::net::{IpAddr, SocketAddr};

use percent_encoding::{percent_decode_str, percent_encode, AsciiSet, NON_ALPHANUMERIC};

use super::{
    tracker_text, Announce, AnnounceEvent, AnnounceReply, ScrapeStats, MAX_PEERS_PER_REPLY,
};
use crate::bencode::{DecodeError, DecodeLimits, Dict, OwnedDict, OwnedValue, Value};
use crate::wire::compact;
use crate::{InfoHash, PeerId};

/// Bencode limits for tracker replies: flat dictionaries, a few values per peer.
const REPLY_LIMITS: DecodeLimits = DecodeLimits {
    max_depth: 8,
    max_items: 8 * MAX_PEERS_PER_REPLY + 64,
};

/// Bytes escaped in query values: everything except RFC 3986 unreserved characters.
const QUERY_ESCAPE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Why an HTTP tracker reply cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HttpReplyError {
    #[error("tracker reply is not bencode: {0}")]
    Bencode(#[from] DecodeError),
    #[error("tracker reply is a {found}, not a dictionary")]
    NotADictionary { found: &'static str },
    #[error("tracker refused: {reason}")]
    Failure { reason: String },
    #[error("tracker reply field {key:?} is a {found}, expected a {expected}")]
    WrongType {
        key: &'static str,
        expected: &'static str,
        found: &'static str,
    },
    #[error("tracker reply field {key:?} is {len} bytes, not a multiple of {entry_len}")]
    BadPeerList {
        key: &'static str,
        len: usize,
        entry_len: usize,
    },
    #[error("tracker reply lists {count} peers, over the limit of {max}")]
    TooManyPeers { count: usize, max: usize },
    #[error("scrape reply has a key of {len} bytes where a 20-byte infohash belongs")]
    BadScrapeHash { len: usize },
}

/// Why a query string is not an announce (for fake trackers and tests).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum QueryError {
    #[error("announce query lacks {name}")]
    Missing { name: &'static str },
    #[error("announce query field {name} has a bad value {value:?}")]
    BadValue { name: &'static str, value: String },
}

/// The tracker URL with the announce parameters appended. A `#fragment` is dropped.
pub fn announce_url(base: &str, announce: &Announce) -> String {
    let mut url = base.split('#').next().unwrap_or(base).to_owned();
    url.push(if url.contains('?') { '&' } else { '?' });
    url.push_str("info_hash=");
    url.extend(percent_encode(&announce.info_hash.0, QUERY_ESCAPE));
    url.push_str("&peer_id=");
    url.extend(percent_encode(&announce.peer_id.0, QUERY_ESCAPE));
    url.push_str(&format!(
        "&port={}&uploaded={}&downloaded={}&left={}&compact=1&key={:08X}",
        announce.port, announce.uploaded, announce.downloaded, announce.left, announce.key
    ));
    if let Some(event) = announce.event.http_name() {
        url.push_str("&event=");
        url.push_str(event);
    }
    if let Some(numwant) = announce.numwant {
        url.push_str(&format!("&numwant={numwant}"));
    }
    if let Some(id) = &announce.tracker_id {
        url.push_str("&trackerid=");
        url.extend(percent_encode(id, QUERY_ESCAPE));
    }
    url
}

/// The scrape URL for an announce URL by the BEP 48 convention: the last path segment must start
/// with `announce`, which becomes `scrape`. `None` means the tracker does not support scrape.
pub fn scrape_url(announce_url: &str) -> Option<String> {
    let (before_query, query) = match announce_url.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (announce_url, None),
    };
    let slash = before_query.rfind('/')?;
    let (head, last) = before_query.split_at(slash + 1);
    let rest = last.strip_prefix("announce")?;
    let mut url = format!("{head}scrape{rest}");
    if let Some(query) = query {
        url.push('?');
        url.push_str(query);
    }
    Some(url)
}

/// The scrape URL with one `info_hash=` per torrent appended.
pub fn scrape_query_url(scrape_url: &str, hashes: &[InfoHash]) -> String {
    let mut url = scrape_url.to_owned();
    for hash in hashes {
        url.push(if url.contains('?') { '&' } else { '?' });
        url.push_str("info_hash=");
        url.extend(percent_encode(&hash.0, QUERY_ESCAPE));
    }
    url
}

fn get_typed<'a, 'd>(
    dict: &'d Dict<'a>,
    key: &'static str,
    expected: &'static str,
) -> Result<Option<&'d Value<'a>>, HttpReplyError> {
    let Some(value) = dict.get(key.as_bytes()) else {
        return Ok(None);
    };
    if value.type_name() != expected {
        return Err(HttpReplyError::WrongType {
            key,
            expected,
            found: value.type_name(),
        });
    }
    Ok(Some(value))
}

fn get_int(dict: &Dict<'_>, key: &'static str) -> Result<Option<i64>, HttpReplyError> {
    Ok(get_typed(dict, key, "integer")?.and_then(Value::as_int))
}

fn get_count(dict: &Dict<'_>, key: &'static str) -> Result<Option<u32>, HttpReplyError> {
    Ok(get_int(dict, key)?.and_then(|n| u32::try_from(n).ok()))
}

fn get_text(dict: &Dict<'_>, key: &'static str) -> Result<Option<String>, HttpReplyError> {
    Ok(get_typed(dict, key, "byte string")?
        .and_then(Value::as_bytes)
        .map(tracker_text))
}

fn top_dict<'a>(value: &'a Value<'a>) -> Result<&'a Dict<'a>, HttpReplyError> {
    let dict = value.as_dict().ok_or(HttpReplyError::NotADictionary {
        found: value.type_name(),
    })?;
    if let Some(reason) = dict.get_bytes(b"failure reason") {
        return Err(HttpReplyError::Failure {
            reason: tracker_text(reason),
        });
    }
    Ok(dict)
}

/// Decodes an announce reply body.
pub fn decode_announce(body: &[u8]) -> Result<AnnounceReply, HttpReplyError> {
    let value = REPLY_LIMITS.decode(body)?;
    let dict = top_dict(&value)?;
    let peers = decode_peers(dict)?;
    Ok(AnnounceReply {
        interval: get_int(dict, "interval")?,
        min_interval: get_int(dict, "min interval")?,
        seeders: get_count(dict, "complete")?,
        leechers: get_count(dict, "incomplete")?,
        warning: get_text(dict, "warning message")?,
        tracker_id: get_typed(dict, "tracker id", "byte string")?
            .and_then(Value::as_bytes)
            .map(|id| id[..id.len().min(super::MAX_TEXT_LEN)].to_vec()),
        peers,
    })
}

fn compact_field<'a>(
    dict: &Dict<'a>,
    key: &'static str,
    entry_len: usize,
) -> Result<&'a [u8], HttpReplyError> {
    let bytes = dict.get_bytes(key.as_bytes()).unwrap_or_default();
    if !bytes.len().is_multiple_of(entry_len) {
        return Err(HttpReplyError::BadPeerList {
            key,
            len: bytes.len(),
            entry_len,
        });
    }
    Ok(bytes)
}

fn decode_peers(dict: &Dict<'_>) -> Result<Vec<SocketAddr>, HttpReplyError> {
    let (v4, list): (&[u8], &[Value<'_>]) = match dict.get(b"peers") {
        None => (&[], &[]),
        Some(value) => match (value.as_bytes(), value.as_list()) {
            (Some(_), _) => (compact_field(dict, "peers", compact::V4_LEN)?, &[]),
            (_, Some(list)) => (&[], list),
            _ => {
                return Err(HttpReplyError::WrongType {
                    key: "peers",
                    expected: "byte string or list",
                    found: value.type_name(),
                })
            }
        },
    };
    get_typed(dict, "peers6", "byte string")?;
    let v6 = compact_field(dict, "peers6", compact::V6_LEN)?;
    let count = v4.len() / compact::V4_LEN + v6.len() / compact::V6_LEN + list.len();
    if count > MAX_PEERS_PER_REPLY {
        return Err(HttpReplyError::TooManyPeers {
            count,
            max: MAX_PEERS_PER_REPLY,
        });
    }
    let mut peers = Vec::with_capacity(count);
    // Both lengths were checked to be whole entries above, so these decodes cannot fail.
    peers.extend(
        compact::decode_v4(v4)
            .unwrap_or_default()
            .into_iter()
            .map(SocketAddr::V4),
    );
    peers.extend(list.iter().filter_map(dict_peer));
    peers.extend(
        compact::decode_v6(v6)
            .unwrap_or_default()
            .into_iter()
            .map(SocketAddr::V6),
    );
    Ok(peers)
}

/// One `{ip, port}` entry of a non-compact peer list; `None` when it is not usable.
fn dict_peer(value: &Value<'_>) -> Option<SocketAddr> {
    let entry = value.as_dict()?;
    let ip: IpAddr = entry.get_str(b"ip")?.parse().ok()?;
    let port = u16::try_from(entry.get_int(b"port")?).ok()?;
    Some(SocketAddr::new(ip, port))
}

/// Decodes a scrape reply body: the figures for each infohash the tracker knows.
pub fn decode_scrape(body: &[u8]) -> Result<Vec<(InfoHash, ScrapeStats)>, HttpReplyError> {
    let value = REPLY_LIMITS.decode(body)?;
    let dict = top_dict(&value)?;
    let Some(files) = get_typed(dict, "files", "dictionary")?.and_then(Value::as_dict) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::with_capacity(files.len());
    for (key, stats) in files.iter() {
        let hash = <[u8; 20]>::try_from(key)
            .map_err(|_| HttpReplyError::BadScrapeHash { len: key.len() })?;
        let Some(stats) = stats.as_dict() else {
            continue;
        };
        let count = |key| get_count(stats, key).map(Option::unwrap_or_default);
        out.push((
            InfoHash(hash),
            ScrapeStats {
                seeders: count("complete")?,
                completed: count("downloaded")?,
                leechers: count("incomplete")?,
            },
        ));
    }
    Ok(out)
}

/// Encodes an announce reply as a tracker would, with compact `peers` and `peers6`.
pub fn encode_announce(reply: &AnnounceReply) -> Vec<u8> {
    let (mut v4, mut v6) = (Vec::new(), Vec::new());
    for peer in &reply.peers {
        compact::encode(*peer, if peer.is_ipv4() { &mut v4 } else { &mut v6 });
    }
    let dict = OwnedDict::new()
        .with_opt("interval", reply.interval)
        .with_opt("min interval", reply.min_interval)
        .with_opt("complete", reply.seeders)
        .with_opt("incomplete", reply.leechers)
        .with_opt("warning message", reply.warning.as_deref())
        .with_opt("tracker id", reply.tracker_id.clone())
        .with("peers", v4)
        .with_opt("peers6", (!v6.is_empty()).then_some(v6));
    OwnedValue::from(dict).encode()
}

/// Encodes a refusal: `d14:failure reason…e`.
pub fn encode_failure(reason: &str) -> Vec<u8> {
    OwnedValue::from(OwnedDict::new().with("failure reason", reason)).encode()
}

/// Encodes a scrape reply.
pub fn encode_scrape(files: &[(InfoHash, ScrapeStats)]) -> Vec<u8> {
    let mut dict = OwnedDict::new();
    for (hash, stats) in files {
        let entry = OwnedDict::new()
            .with("complete", stats.seeders)
            .with("downloaded", stats.completed)
            .with("incomplete", stats.leechers);
        dict.insert(hash.0.to_vec(), entry);
    }
    OwnedValue::from(OwnedDict::new().with("files", dict)).encode()
}

/// Reads the announce parameters back from a query string (the part after `?`), as a tracker
/// would. Unknown keys are ignored; `numwant`, `event`, `key` and `trackerid` are optional.
pub fn parse_announce_query(query: &str) -> Result<Announce, QueryError> {
    let mut fields: Vec<(&str, Vec<u8>)> = Vec::new();
    for pair in query.split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        fields.push((key, percent_decode_str(value).collect()));
    }
    let raw = |name: &'static str| {
        fields
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_slice())
    };
    let bad = |name: &'static str, value: &[u8]| QueryError::BadValue {
        name,
        value: tracker_text(value),
    };
    let required = |name: &'static str| raw(name).ok_or(QueryError::Missing { name });
    let id20 = |name: &'static str| -> Result<[u8; 20], QueryError> {
        let value = required(name)?;
        <[u8; 20]>::try_from(value).map_err(|_| bad(name, value))
    };
    let number = |name: &'static str| -> Result<u64, QueryError> {
        let value = required(name)?;
        std::str::from_utf8(value)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad(name, value))
    };
    let event = match raw("event") {
        None | Some(b"") => AnnounceEvent::None,
        Some(b"started") => AnnounceEvent::Started,
        Some(b"completed") => AnnounceEvent::Completed,
        Some(b"stopped") => AnnounceEvent::Stopped,
        Some(other) => return Err(bad("event", other)),
    };
    let port = number("port")?;
    Ok(Announce {
        info_hash: InfoHash(id20("info_hash")?),
        peer_id: PeerId(id20("peer_id")?),
        port: u16::try_from(port).map_err(|_| bad("port", port.to_string().as_bytes()))?,
        uploaded: number("uploaded")?,
        downloaded: number("downloaded")?,
        left: number("left")?,
        event,
        numwant: match raw("numwant") {
            None => None,
            Some(_) => {
                Some(
                    u32::try_from(number("numwant")?).map_err(|_| QueryError::BadValue {
                        name: "numwant",
                        value: String::new(),
                    })?,
                )
            }
        },
        key: match raw("key") {
            None => 0,
            Some(v) => std::str::from_utf8(v)
                .ok()
                .and_then(|s| u32::from_str_radix(s, 16).ok())
                .ok_or_else(|| bad("key", v))?,
        },
        tracker_id: raw("trackerid").map(<[u8]>::to_vec),
    })
}

#[cfg(test)]
#[path = "http_tests.rs"]
mod tests;

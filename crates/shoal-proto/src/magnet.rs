//! Magnet links (BEP 9, BEP 53): parse a `magnet:?` URI into a [`Magnet`] and format one back.
//!
//! A magnet link names a torrent by its infohash and carries hints for finding its metadata:
//! trackers (`tr`), peers (`x.pe`), web seeds (`ws`), a display name (`dn`) and a file
//! selection (`so`). Parsing splits the query on `&`, percent-decodes each value, and keeps what
//! it understands, in order of appearance.
//!
//! Guarantees of [`Magnet::parse`]:
//! - It never panics and never allocates more than the link's own size: a link over
//!   [`MAX_MAGNET_LEN`] bytes is refused before anything is decoded, and each list is capped
//!   ([`MAX_TRACKERS`], [`MAX_PEERS`], [`MAX_WEB_SEEDS`], [`MAX_FILE_RANGES`]).
//! - A link without a valid `xt=urn:btih:` (40 hex or 32 base32 characters) is an error: shoal
//!   speaks BitTorrent v1, so a v2-only link (`urn:btmh:` alone) is refused with
//!   [`MagnetError::NoBtih`]. A `urn:btmh:` next to a btih (a hybrid torrent) is kept.
//! - Hints that cannot be used are **skipped, never fatal**, and counted in [`Skipped`]:
//!   trackers whose scheme is not `http`, `https` or `udp` (for example `wss://` WebTorrent
//!   trackers, `file://`, `javascript:`), web seeds that are not `http`/`https`, peers that are not
//!   `host:port`, entries past a list's cap, and unknown keys. A link from the wild with one odd
//!   tracker stays usable, and `shoal info` can say what was dropped.
//! - A malformed `so` (file selection) *is* an error: it states what the user wants downloaded,
//!   so guessing would be worse than refusing.
//! - `dn` is only a hint for display. It is kept verbatim (`dn=../../x` gives the string
//!   `"../../x"`) and must never be used as a path: the file names of a torrent come from its
//!   metadata, and go through the metainfo sanitizer like any other torrent.
//!
//! Each `tr` is one tracker tier, in order (as libtorrent and Transmission read them); `tr.N`
//! keys are read the same way. Formatting ([`Magnet::to_uri`], also `Display`) writes `xt`, `dn`,
//! `tr`, `ws`, `x.pe`, `so` in that order, percent-encoding every byte of a value except
//! RFC 3986 unreserved characters (and `:[]` in `x.pe`, `,-` in `so`, which clients expect
//! literal). Parsing what was formatted gives back an equal `Magnet` (a property test checks it).

use std::fmt;
use std::net::SocketAddr;

use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use crate::ids::{InfoHash, InfoHashParseError};

/// Longest magnet link accepted, in bytes.
pub const MAX_MAGNET_LEN: usize = 128 * 1024;
/// Most trackers kept from one link; later ones are counted in [`Skipped::over_cap`].
pub const MAX_TRACKERS: usize = 100;
/// Most `x.pe` peers kept from one link.
pub const MAX_PEERS: usize = 200;
/// Most web seeds kept from one link.
pub const MAX_WEB_SEEDS: usize = 100;
/// Most ranges in one `so` file selection; more is an error.
pub const MAX_FILE_RANGES: usize = 1000;
/// Longest peer host name accepted in `x.pe` (the DNS limit).
const MAX_HOST_LEN: usize = 253;
/// How much of an offending value an error message quotes.
const SNIPPET_LEN: usize = 80;

/// A parsed magnet link. Build one with [`Magnet::new`] and set the fields; parse one with
/// [`Magnet::parse`].
#[derive(Clone, PartialEq, Eq, Debug)]
#[non_exhaustive]
pub struct Magnet {
    /// The v1 infohash (`xt=urn:btih:`).
    pub info_hash: InfoHash,
    /// The v2 infohash of a hybrid torrent (`xt=urn:btmh:1220…`, a SHA-256 multihash).
    pub info_hash_v2: Option<[u8; 32]>,
    /// `dn`: a name to show until the metadata arrives. Never a path (see the module docs).
    pub display_name: Option<String>,
    /// `tr`: tracker URLs (http, https or udp), one tier each, in order.
    pub trackers: Vec<String>,
    /// `ws`: web seed URLs (http or https).
    pub web_seeds: Vec<String>,
    /// `x.pe`: peers to try directly.
    pub peers: Vec<PeerAddr>,
    /// `so` (BEP 53): file indices to download; empty means every file.
    pub select_only: Vec<FileRange>,
    /// What [`Magnet::parse`] dropped. Not written by [`Magnet::to_uri`].
    pub skipped: Skipped,
}

/// A peer address from `x.pe`: an IP literal or a host name, with a non-zero port.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum PeerAddr {
    /// `1.2.3.4:6881` or `[::1]:6881`.
    Ip(SocketAddr),
    /// `host.example:6881`: letters, digits, `-` and `.`, at most 253 characters.
    Host { name: String, port: u16 },
}

/// An inclusive range of file indices in a BEP 53 `so` selection: `4-6`, or `2` for `2-2`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct FileRange {
    first: u32,
    last: u32,
}

/// Counts of the hints [`Magnet::parse`] skipped, so a front end can report them.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Skipped {
    /// `tr` with a scheme other than http, https or udp, or not valid UTF-8 once decoded.
    pub unsupported_trackers: usize,
    /// `ws` with a scheme other than http or https, or not valid UTF-8 once decoded.
    pub unsupported_web_seeds: usize,
    /// `x.pe` values that are not `host:port` with a valid host and a non-zero port.
    pub bad_peers: usize,
    /// Trackers, web seeds and peers past their list's cap.
    pub over_cap: usize,
    /// Keys shoal does not read (`xl`, `kt`, `as`, `xs`, other `xt` URNs, …).
    pub unknown_keys: usize,
}

/// Why a string is not a usable magnet link.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MagnetError {
    #[error("not a magnet link (it must start with \"magnet:?\"): {start:?}")]
    NotMagnet { start: String },
    #[error("magnet link is {len} bytes long, over the limit of {max}")]
    TooLong { len: usize, max: usize },
    #[error("magnet link has no xt=urn:btih: infohash{}", if *has_v2 { " (v2-only links are not supported)" } else { "" })]
    NoBtih { has_v2: bool },
    #[error("bad btih infohash {text:?} in magnet link")]
    BadBtih {
        text: String,
        #[source]
        source: InfoHashParseError,
    },
    #[error("magnet link names two different infohashes: {first} and {second}")]
    ConflictingBtih { first: InfoHash, second: InfoHash },
    #[error(
        "bad btmh {text:?} in magnet link: only SHA-256 multihashes (\"1220\" + 64 hex) exist"
    )]
    BadBtmh { text: String },
    #[error("bad file selection so={text:?}: {reason}")]
    BadFileSelection { text: String, reason: &'static str },
    #[error("file selection so= has more than {max} ranges")]
    TooManyFileRanges { max: usize },
}

/// Characters written literally in a formatted value: RFC 3986 unreserved ones.
const VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');
/// `x.pe` also keeps `:`, `[` and `]` literal, as other clients write and expect them.
const PEER_VALUE: &AsciiSet = &VALUE.remove(b':').remove(b'[').remove(b']');

impl Magnet {
    /// A magnet link holding only `info_hash`.
    pub fn new(info_hash: InfoHash) -> Self {
        Magnet {
            info_hash,
            info_hash_v2: None,
            display_name: None,
            trackers: Vec::new(),
            web_seeds: Vec::new(),
            peers: Vec::new(),
            select_only: Vec::new(),
            skipped: Skipped::default(),
        }
    }

    /// Parses a `magnet:?` URI. See the module docs for what is kept, skipped or refused.
    pub fn parse(uri: &str) -> Result<Self, MagnetError> {
        if uri.len() > MAX_MAGNET_LEN {
            return Err(MagnetError::TooLong {
                len: uri.len(),
                max: MAX_MAGNET_LEN,
            });
        }
        let query =
            strip_prefix_ignore_case(uri, "magnet:?").ok_or_else(|| MagnetError::NotMagnet {
                start: snippet(uri, 16),
            })?;
        let mut parts = Parts::default();
        for pair in query.split('&').filter(|pair| !pair.is_empty()) {
            let (key, raw_value) = pair.split_once('=').unwrap_or((pair, ""));
            parts.take(key, raw_value)?;
        }
        parts.finish()
    }

    /// Formats the link; [`Magnet::parse`] reads it back to an equal value (minus `skipped`).
    pub fn to_uri(&self) -> String {
        use fmt::Write;
        let mut out = format!("magnet:?xt=urn:btih:{}", self.info_hash.to_hex());
        if let Some(v2) = &self.info_hash_v2 {
            let _ = write!(
                out,
                "&xt=urn:btmh:1220{}",
                data_encoding::HEXLOWER.encode(v2)
            );
        }
        if let Some(name) = &self.display_name {
            let _ = write!(out, "&dn={}", utf8_percent_encode(name, VALUE));
        }
        for tracker in &self.trackers {
            let _ = write!(out, "&tr={}", utf8_percent_encode(tracker, VALUE));
        }
        for seed in &self.web_seeds {
            let _ = write!(out, "&ws={}", utf8_percent_encode(seed, VALUE));
        }
        for peer in &self.peers {
            let _ = write!(
                out,
                "&x.pe={}",
                utf8_percent_encode(&peer.to_string(), PEER_VALUE)
            );
        }
        if !self.select_only.is_empty() {
            let ranges: Vec<String> = self.select_only.iter().map(FileRange::to_string).collect();
            let _ = write!(out, "&so={}", ranges.join(","));
        }
        out
    }

    /// True when `file_index` is selected by `so` (every file is, when `so` is absent).
    pub fn is_file_selected(&self, file_index: u32) -> bool {
        self.select_only.is_empty() || self.select_only.iter().any(|r| r.contains(file_index))
    }
}

impl fmt::Display for Magnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_uri())
    }
}

impl FileRange {
    /// `first..=last`; `None` when `first > last`.
    pub fn new(first: u32, last: u32) -> Option<Self> {
        (first <= last).then_some(FileRange { first, last })
    }
    pub fn first(&self) -> u32 {
        self.first
    }
    pub fn last(&self) -> u32 {
        self.last
    }
    pub fn contains(&self, index: u32) -> bool {
        (self.first..=self.last).contains(&index)
    }
}

impl fmt::Display for FileRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.first == self.last {
            write!(f, "{}", self.first)
        } else {
            write!(f, "{}-{}", self.first, self.last)
        }
    }
}

impl fmt::Display for PeerAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PeerAddr::Ip(addr) => write!(f, "{addr}"),
            PeerAddr::Host { name, port } => write!(f, "{name}:{port}"),
        }
    }
}

impl PeerAddr {
    /// Parses `1.2.3.4:80`, `[::1]:80` or `host.example:80`; the port must not be 0.
    pub fn parse(text: &str) -> Option<Self> {
        if let Ok(addr) = text.parse::<SocketAddr>() {
            return (addr.port() != 0).then_some(PeerAddr::Ip(addr));
        }
        let (name, port) = text.rsplit_once(':')?;
        let port: u16 = port.parse().ok().filter(|&p| p != 0)?;
        let valid_host = !name.is_empty()
            && name.len() <= MAX_HOST_LEN
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
            && !name.starts_with(['-', '.']);
        valid_host.then(|| PeerAddr::Host {
            name: name.to_owned(),
            port,
        })
    }
}

/// What has been read so far, key by key.
#[derive(Default)]
struct Parts {
    btih: Option<InfoHash>,
    btmh: Option<[u8; 32]>,
    display_name: Option<String>,
    trackers: Vec<String>,
    web_seeds: Vec<String>,
    peers: Vec<PeerAddr>,
    select_only: Vec<FileRange>,
    skipped: Skipped,
}

impl Parts {
    fn take(&mut self, key: &str, raw_value: &str) -> Result<(), MagnetError> {
        match key {
            "xt" => self.take_exact_topic(&decode_lossy(raw_value))?,
            "dn" => self.display_name = Some(decode_lossy(&raw_value.replace('+', " "))),
            "ws" => match decode_url(raw_value, &["http", "https"]) {
                Some(url) => {
                    push_capped(&mut self.web_seeds, url, MAX_WEB_SEEDS, &mut self.skipped)
                }
                None => self.skipped.unsupported_web_seeds += 1,
            },
            "x.pe" => match PeerAddr::parse(&decode_lossy(raw_value)) {
                Some(peer) => push_capped(&mut self.peers, peer, MAX_PEERS, &mut self.skipped),
                None => self.skipped.bad_peers += 1,
            },
            "so" => self.select_only = parse_file_selection(&decode_lossy(raw_value))?,
            _ if is_tracker_key(key) => match decode_url(raw_value, &["http", "https", "udp"]) {
                Some(url) => push_capped(&mut self.trackers, url, MAX_TRACKERS, &mut self.skipped),
                None => self.skipped.unsupported_trackers += 1,
            },
            _ => self.skipped.unknown_keys += 1,
        }
        Ok(())
    }

    fn take_exact_topic(&mut self, topic: &str) -> Result<(), MagnetError> {
        if let Some(hash_text) = strip_prefix_ignore_case(topic, "urn:btih:") {
            let hash = InfoHash::parse(hash_text).map_err(|source| MagnetError::BadBtih {
                text: snippet(hash_text, SNIPPET_LEN),
                source,
            })?;
            match self.btih {
                Some(first) if first != hash => {
                    return Err(MagnetError::ConflictingBtih {
                        first,
                        second: hash,
                    })
                }
                _ => self.btih = Some(hash),
            }
        } else if let Some(multihash) = strip_prefix_ignore_case(topic, "urn:btmh:") {
            self.btmh = Some(parse_sha256_multihash(multihash)?);
        } else {
            self.skipped.unknown_keys += 1;
        }
        Ok(())
    }

    fn finish(self) -> Result<Magnet, MagnetError> {
        let info_hash = self.btih.ok_or(MagnetError::NoBtih {
            has_v2: self.btmh.is_some(),
        })?;
        Ok(Magnet {
            info_hash,
            info_hash_v2: self.btmh,
            display_name: self.display_name,
            trackers: self.trackers,
            web_seeds: self.web_seeds,
            peers: self.peers,
            select_only: self.select_only,
            skipped: self.skipped,
        })
    }
}

/// `tr`, or `tr.N` as some clients number their trackers.
fn is_tracker_key(key: &str) -> bool {
    key == "tr"
        || key
            .strip_prefix("tr.")
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

fn push_capped<T>(list: &mut Vec<T>, item: T, cap: usize, skipped: &mut Skipped) {
    if list.len() < cap {
        list.push(item);
    } else {
        skipped.over_cap += 1;
    }
}

/// Percent-decodes a URL value and keeps it only when it is UTF-8, its scheme is one of
/// `schemes` (any case) and something follows `://` (for udp, `udp://`; http(s) the same).
fn decode_url(raw_value: &str, schemes: &[&str]) -> Option<String> {
    let url = percent_decode_str(raw_value).decode_utf8().ok()?;
    let (scheme, rest) = url.split_once("://")?;
    let supported = schemes.iter().any(|s| s.eq_ignore_ascii_case(scheme));
    let sane = !rest.is_empty() && !url.chars().any(|c| c.is_control() || c.is_whitespace());
    (supported && sane).then(|| url.into_owned())
}

fn decode_lossy(raw_value: &str) -> String {
    percent_decode_str(raw_value)
        .decode_utf8_lossy()
        .into_owned()
}

/// `1220` followed by 64 hex digits: the multihash of a SHA-256 v2 infohash.
fn parse_sha256_multihash(text: &str) -> Result<[u8; 32], MagnetError> {
    let bad = || MagnetError::BadBtmh {
        text: snippet(text, SNIPPET_LEN),
    };
    let digest_hex = text
        .strip_prefix("1220")
        .filter(|hex| hex.len() == 64)
        .ok_or_else(bad)?;
    let digest = data_encoding::HEXLOWER_PERMISSIVE
        .decode(digest_hex.as_bytes())
        .map_err(|_| bad())?;
    let mut out = [0u8; 32];
    if digest.len() != out.len() {
        return Err(bad());
    }
    out.copy_from_slice(&digest);
    Ok(out)
}

/// BEP 53: comma-separated file indices and inclusive ranges, such as `0,2,4-6`.
fn parse_file_selection(text: &str) -> Result<Vec<FileRange>, MagnetError> {
    let bad = |reason| MagnetError::BadFileSelection {
        text: snippet(text, SNIPPET_LEN),
        reason,
    };
    let mut ranges = Vec::new();
    for item in text.split(',') {
        if ranges.len() == MAX_FILE_RANGES {
            return Err(MagnetError::TooManyFileRanges {
                max: MAX_FILE_RANGES,
            });
        }
        let index = |digits: &str| {
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad(
                    "each entry must be a file index or a range such as 4-6",
                ));
            }
            digits
                .parse::<u32>()
                .map_err(|_| bad("file index too large"))
        };
        let range = match item.split_once('-') {
            Some((first, last)) => FileRange::new(index(first)?, index(last)?)
                .ok_or_else(|| bad("a range must not end before it starts"))?,
            None => {
                let single = index(item)?;
                FileRange {
                    first: single,
                    last: single,
                }
            }
        };
        ranges.push(range);
    }
    Ok(ranges)
}

fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    if head.eq_ignore_ascii_case(prefix) {
        text.get(prefix.len()..)
    } else {
        None
    }
}

/// The first `max_chars` characters of `text`, for error messages.
fn snippet(text: &str, max_chars: usize) -> String {
    text.chars().take(max_chars).collect()
}

/// Entry point for the `magnet` fuzz target (and its stable smoke test): parsing never panics,
/// and whatever parses formats to a link that parses back to the same value.
#[doc(hidden)]
pub mod fuzzing {
    use super::{Magnet, Skipped};

    pub fn run(data: &[u8]) {
        let Ok(text) = std::str::from_utf8(data) else {
            return;
        };
        let Ok(mut magnet) = Magnet::parse(text) else {
            return;
        };
        magnet.skipped = Skipped::default();
        let again = Magnet::parse(&magnet.to_uri());
        assert_eq!(
            again.as_ref().ok(),
            Some(&magnet),
            "format/parse round trip of {text:?}"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV6};

    const HEX: &str = "c9e15763f722f23e98a29decdfae341b98d53056";

    fn hash() -> InfoHash {
        InfoHash::parse(HEX).unwrap()
    }

    #[test]
    fn golden_full_link_parses_every_field() {
        let uri = format!(
            "magnet:?xt=urn:btih:{HEX}&dn=Cosmos+Laundromat%20%C3%A9&tr=udp%3A%2F%2Ftracker.example%3A1337%2Fannounce\
             &tr=http://t2.example/announce?k=a%2Bb&ws=https%3A%2F%2Fseed.example%2Fdir%2F\
             &x.pe=10.0.0.1:6881&x.pe=[2001:db8::1]:51413&x.pe=peer.example:7000&so=0,2,4-6&xl=1234"
        );
        let magnet = Magnet::parse(&uri).unwrap();
        assert_eq!(magnet.info_hash, hash());
        assert_eq!(magnet.display_name.as_deref(), Some("Cosmos Laundromat é"));
        assert_eq!(
            magnet.trackers,
            [
                "udp://tracker.example:1337/announce",
                "http://t2.example/announce?k=a+b"
            ]
        );
        assert_eq!(magnet.web_seeds, ["https://seed.example/dir/"]);
        assert_eq!(
            magnet.peers,
            [
                PeerAddr::Ip(SocketAddr::from((Ipv4Addr::new(10, 0, 0, 1), 6881))),
                PeerAddr::Ip("[2001:db8::1]:51413".parse().unwrap()),
                PeerAddr::Host {
                    name: "peer.example".into(),
                    port: 7000
                },
            ]
        );
        let selected: Vec<u32> = (0..9).filter(|&i| magnet.is_file_selected(i)).collect();
        assert_eq!(selected, [0, 2, 4, 5, 6]);
        assert_eq!(
            magnet.skipped,
            Skipped {
                unknown_keys: 1,
                ..Skipped::default()
            }
        );
    }

    #[test]
    fn golden_format_output() {
        let mut magnet = Magnet::new(hash());
        magnet.display_name = Some("a b/é".into());
        magnet.trackers = vec!["udp://t.example:80/announce".into()];
        magnet.web_seeds = vec!["http://s.example/é?a=b&c".into()];
        magnet.peers = vec![PeerAddr::Ip("[::1]:6881".parse().unwrap())];
        magnet.select_only = vec![FileRange::new(0, 0).unwrap(), FileRange::new(4, 6).unwrap()];
        magnet.info_hash_v2 = Some([0xab; 32]);
        assert_eq!(
            magnet.to_uri(),
            format!(
                "magnet:?xt=urn:btih:{HEX}&xt=urn:btmh:1220{}&dn=a%20b%2F%C3%A9\
                 &tr=udp%3A%2F%2Ft.example%3A80%2Fannounce&ws=http%3A%2F%2Fs.example%2F%C3%A9%3Fa%3Db%26c\
                 &x.pe=[::1]:6881&so=0,4-6",
                "ab".repeat(32)
            )
        );
        assert_eq!(Magnet::parse(&magnet.to_uri()).unwrap(), magnet);
    }

    #[test]
    fn base32_and_uppercase_forms_are_accepted() {
        let b32 = hash().to_base32();
        let magnet = Magnet::parse(&format!("MAGNET:?xt=URN:BTIH:{}", b32.to_lowercase())).unwrap();
        assert_eq!(magnet.info_hash, hash());
        let magnet = Magnet::parse(&format!("magnet:?xt=urn:btih:{}", HEX.to_uppercase())).unwrap();
        assert_eq!(magnet.info_hash, hash());
    }

    #[test]
    fn not_a_magnet_is_refused() {
        for uri in [
            "",
            "magnet:",
            "http://x/?xt=urn:btih:aa",
            "magnet:xt=urn:btih:aa",
            "mägnet:?",
        ] {
            assert!(
                matches!(Magnet::parse(uri), Err(MagnetError::NotMagnet { .. })),
                "{uri}"
            );
        }
    }

    #[test]
    fn thirty_nine_hex_digits_are_a_bad_length() {
        let err = Magnet::parse(&format!("magnet:?xt=urn:btih:{}", &HEX[..39])).unwrap_err();
        assert_eq!(
            err,
            MagnetError::BadBtih {
                text: HEX[..39].into(),
                source: InfoHashParseError::BadLength { len: 39 }
            }
        );
        let source = std::error::Error::source(&err)
            .map(ToString::to_string)
            .unwrap_or_default();
        assert!(source.contains("40 hex or 32 base32"), "{source}");
    }

    #[test]
    fn bad_hex_and_bad_base32_are_typed_errors() {
        let bad_hex = format!("magnet:?xt=urn:btih:{}z", &HEX[..39]);
        assert!(matches!(
            Magnet::parse(&bad_hex),
            Err(MagnetError::BadBtih {
                source: InfoHashParseError::BadHex { .. },
                ..
            })
        ));
        // '1' and '8' are not in the base32 alphabet.
        let bad_b32 = format!("magnet:?xt=urn:btih:{}", "18".repeat(16));
        assert!(matches!(
            Magnet::parse(&bad_b32),
            Err(MagnetError::BadBtih {
                source: InfoHashParseError::BadBase32 { .. },
                ..
            })
        ));
        let multibyte = format!("magnet:?xt=urn:btih:{}", "é".repeat(20));
        assert!(matches!(
            Magnet::parse(&multibyte),
            Err(MagnetError::BadBtih { .. })
        ));
    }

    #[test]
    fn missing_or_conflicting_btih_is_refused() {
        assert_eq!(
            Magnet::parse("magnet:?dn=x"),
            Err(MagnetError::NoBtih { has_v2: false })
        );
        let v2_only = format!("magnet:?xt=urn:btmh:1220{}", "00".repeat(32));
        let err = Magnet::parse(&v2_only).unwrap_err();
        assert_eq!(err, MagnetError::NoBtih { has_v2: true });
        assert!(err.to_string().contains("v2-only"));
        let other = "0".repeat(40);
        let two = format!("magnet:?xt=urn:btih:{HEX}&xt=urn:btih:{other}");
        assert!(matches!(
            Magnet::parse(&two),
            Err(MagnetError::ConflictingBtih { .. })
        ));
        let same_twice = format!(
            "magnet:?xt=urn:btih:{HEX}&xt=urn:btih:{}",
            hash().to_base32()
        );
        assert_eq!(Magnet::parse(&same_twice).unwrap().info_hash, hash());
    }

    #[test]
    fn bad_btmh_is_refused() {
        for mh in [
            "1220".to_string(),
            format!("1114{}", "00".repeat(20)),
            format!("1220{}", "zz".repeat(32)),
        ] {
            let uri = format!("magnet:?xt=urn:btih:{HEX}&xt=urn:btmh:{mh}");
            assert!(
                matches!(Magnet::parse(&uri), Err(MagnetError::BadBtmh { .. })),
                "{mh}"
            );
        }
    }

    #[test]
    fn thousands_of_trackers_are_capped_and_counted() {
        let mut uri = format!("magnet:?xt=urn:btih:{HEX}");
        for i in 0..3000 {
            uri.push_str(&format!("&tr=udp://t{i}.example:1/"));
        }
        let magnet = Magnet::parse(&uri).unwrap();
        assert_eq!(magnet.trackers.len(), MAX_TRACKERS);
        assert_eq!(magnet.trackers[99], "udp://t99.example:1/");
        assert_eq!(magnet.skipped.over_cap, 3000 - MAX_TRACKERS);
    }

    #[test]
    fn an_oversized_link_is_refused_before_decoding() {
        let uri = format!(
            "magnet:?xt=urn:btih:{HEX}&dn={}",
            "a".repeat(MAX_MAGNET_LEN)
        );
        assert_eq!(
            Magnet::parse(&uri),
            Err(MagnetError::TooLong {
                len: uri.len(),
                max: MAX_MAGNET_LEN
            })
        );
    }

    #[test]
    fn display_name_is_kept_verbatim_and_never_trusted_as_path() {
        let magnet = Magnet::parse(&format!("magnet:?xt=urn:btih:{HEX}&dn=..%2F..%2Fx")).unwrap();
        assert_eq!(magnet.display_name.as_deref(), Some("../../x"));
        let magnet = Magnet::parse(&format!("magnet:?xt=urn:btih:{HEX}&dn=%FF%FEx")).unwrap();
        assert_eq!(magnet.display_name.as_deref(), Some("\u{FFFD}\u{FFFD}x"));
    }

    #[test]
    fn trackers_with_other_schemes_are_skipped_and_counted() {
        let uri = format!(
            "magnet:?xt=urn:btih:{HEX}&tr=wss%3A%2F%2Fw.example&tr=file:///etc/passwd&tr=javascript:alert(1)\
             &tr=udp%3A%2F%2F&tr=http://a%0Ab/&tr=http://x/%FF&tr=HTTPS://ok.example/a&tr.1=udp://ok2.example:1\
             &ws=ftp://f.example/&ws=http://w.example/"
        );
        let magnet = Magnet::parse(&uri).unwrap();
        assert_eq!(
            magnet.trackers,
            ["HTTPS://ok.example/a", "udp://ok2.example:1"]
        );
        assert_eq!(magnet.web_seeds, ["http://w.example/"]);
        assert_eq!(magnet.skipped.unsupported_trackers, 6);
        assert_eq!(magnet.skipped.unsupported_web_seeds, 1);
    }

    #[test]
    fn bad_peers_are_skipped_and_counted() {
        let uri = format!(
            "magnet:?xt=urn:btih:{HEX}&x.pe=1.2.3.4:0&x.pe=::1:80&x.pe=host&x.pe=-bad:1&x.pe=a_b:1\
             &x.pe=1.2.3.4:70000&x.pe=%5B::1%5D:80"
        );
        let magnet = Magnet::parse(&uri).unwrap();
        assert_eq!(magnet.peers, [PeerAddr::Ip("[::1]:80".parse().unwrap())]);
        assert_eq!(magnet.skipped.bad_peers, 6);
    }

    #[test]
    fn file_selection_errors_are_typed() {
        for so in [
            "",
            "1,",
            "a",
            "6-4",
            "1-",
            "-3",
            "1--2",
            "99999999999",
            "+1",
            "1 2",
        ] {
            let uri = format!("magnet:?xt=urn:btih:{HEX}&so={so}");
            assert!(
                matches!(
                    Magnet::parse(&uri),
                    Err(MagnetError::BadFileSelection { .. })
                ),
                "{so:?}"
            );
        }
        let many = vec!["1"; MAX_FILE_RANGES + 1].join(",");
        let uri = format!("magnet:?xt=urn:btih:{HEX}&so={many}");
        assert_eq!(
            Magnet::parse(&uri),
            Err(MagnetError::TooManyFileRanges {
                max: MAX_FILE_RANGES
            })
        );
        let at_cap = vec!["1"; MAX_FILE_RANGES].join(",");
        let uri = format!("magnet:?xt=urn:btih:{HEX}&so={at_cap}");
        assert_eq!(
            Magnet::parse(&uri).unwrap().select_only.len(),
            MAX_FILE_RANGES
        );
    }

    #[test]
    fn every_truncation_parses_or_errors_and_cut_hashes_error() {
        let full = format!(
            "magnet:?xt=urn:btih:{HEX}&dn=n%C3%A9&tr=udp%3A%2F%2Ft%3A1&x.pe=[::1]:1&so=0,2-3"
        );
        let hash_end = "magnet:?xt=urn:btih:".len() + 40;
        for cut in 0..full.len() {
            let Some(prefix) = full.get(..cut) else {
                continue;
            };
            let result = Magnet::parse(prefix);
            if cut < hash_end {
                assert!(result.is_err(), "prefix {prefix:?} parsed");
            }
        }
        assert!(Magnet::parse(&full).is_ok());
    }

    fn url_strategy() -> impl Strategy<Value = String> {
        (
            prop::sample::select(vec!["http", "https", "udp"]),
            "[a-z0-9.-]{1,20}",
            "[ -~é&=%+#]{0,20}",
        )
            .prop_map(|(scheme, host, path)| format!("{scheme}://{host}/{path}"))
            .prop_filter("no whitespace", |url| !url.contains(' '))
    }

    fn peer_strategy() -> impl Strategy<Value = PeerAddr> {
        prop_oneof![
            (any::<[u8; 4]>(), 1..=u16::MAX)
                .prop_map(|(ip, port)| PeerAddr::Ip(SocketAddr::from((Ipv4Addr::from(ip), port)))),
            (any::<[u8; 16]>(), 1..=u16::MAX).prop_map(|(ip, port)| PeerAddr::Ip(SocketAddr::V6(
                SocketAddrV6::new(Ipv6Addr::from(ip), port, 0, 0)
            ))),
            ("[a-z][a-z0-9.-]{0,30}", 1..=u16::MAX)
                .prop_map(|(name, port)| PeerAddr::Host { name, port }),
        ]
    }

    fn magnet_strategy() -> impl Strategy<Value = Magnet> {
        (
            any::<[u8; 20]>(),
            proptest::option::of(any::<[u8; 32]>()),
            proptest::option::of(any::<String>()),
            prop::collection::vec(url_strategy(), 0..5),
            prop::collection::vec(
                url_strategy().prop_filter("http", |u| !u.starts_with("udp")),
                0..3,
            ),
            prop::collection::vec(peer_strategy(), 0..4),
            prop::collection::vec((0u32..100, 0u32..100), 0..4),
        )
            .prop_map(|(hash, v2, name, trackers, web_seeds, peers, ranges)| {
                let mut magnet = Magnet::new(InfoHash(hash));
                magnet.info_hash_v2 = v2;
                magnet.display_name = name;
                magnet.trackers = trackers;
                magnet.web_seeds = web_seeds;
                magnet.peers = peers;
                magnet.select_only = ranges
                    .into_iter()
                    .filter_map(|(a, len)| FileRange::new(a, a.saturating_add(len % 3)))
                    .collect();
                magnet
            })
    }

    proptest! {
        #[test]
        fn format_then_parse_round_trips(magnet in magnet_strategy()) {
            let uri = magnet.to_uri();
            prop_assert_eq!(Magnet::parse(&uri).unwrap(), magnet);
        }

        #[test]
        fn arbitrary_input_never_panics_and_round_trips(tail in "[ -~é]{0,200}") {
            fuzzing::run(format!("magnet:?{tail}").as_bytes());
            fuzzing::run(format!("magnet:?xt=urn:btih:{HEX}&{tail}").as_bytes());
        }

        #[test]
        fn structured_input_round_trips(
            pairs in prop::collection::vec(
                (prop::sample::select(vec!["dn", "tr", "ws", "x.pe", "so", "xt", "tr.1", "kt"]),
                 "[a-z0-9:/.%+\\[\\]-]{0,24}"),
                0..8)
        ) {
            let mut uri = format!("magnet:?xt=urn:btih:{HEX}");
            for (key, value) in pairs {
                uri.push_str(&format!("&{key}={value}"));
            }
            fuzzing::run(uri.as_bytes());
        }
    }
}

//! Local Service Discovery (BEP 14): the `BT-SEARCH` datagram that peers multicast on a local
//! network to say "I have these torrents, reach me on this port".
//!
//! An [`LsdAnnounce`] can only be made by [`LsdAnnounce::new`] (or [`LsdAnnounce::decode`]),
//! which checks every field, so [`LsdAnnounce::encode`] is infallible and its output always fits
//! in one datagram of at most [`MAX_MESSAGE_LEN`] bytes. [`LsdAnnounce::batches`] splits a long
//! list of torrents into several such datagrams.
//!
//! Decoding is strict and bounded: input over [`MAX_MESSAGE_LEN`] bytes is refused before it is
//! looked at, the request line must be exactly `BT-SEARCH * HTTP/1.1`, every header line must be
//! `Name: value` in printable ASCII, at most [`MAX_HEADERS`] lines and [`MAX_INFOHASHES`]
//! `Infohash` headers are read, and `Host`, `Port` and one `Infohash` are required. Lines may end
//! in CRLF (as the BEP writes) or a bare LF (as some clients send); after the blank line that
//! ends the headers only further line ends may follow. Unknown headers are skipped. Every
//! failure is a typed [`LsdError`] naming the offending value; nothing panics.

use std::fmt::Write as _;

use crate::InfoHash;

/// Largest datagram read or written (BEP 14 keeps announces within one Ethernet frame).
pub const MAX_MESSAGE_LEN: usize = 1400;
/// Most `Infohash` headers in one datagram, on input and output.
pub const MAX_INFOHASHES: usize = 16;
/// Most header lines in one datagram (known and unknown together).
pub const MAX_HEADERS: usize = 24;
/// Longest `Host` or `cookie` value accepted, in bytes.
pub const MAX_FIELD_LEN: usize = 64;
/// The IPv4 multicast group and port of BEP 14.
pub const IPV4_GROUP: std::net::SocketAddrV4 =
    std::net::SocketAddrV4::new(std::net::Ipv4Addr::new(239, 192, 152, 143), 6771);
/// The `Host` value BEP 14 gives for the IPv4 group.
pub const IPV4_HOST: &str = "239.192.152.143:6771";

const REQUEST_LINE: &str = "BT-SEARCH * HTTP/1.1";
/// Longest offending text copied into an error.
const ERROR_EXCERPT_LEN: usize = 48;

/// One decoded or ready-to-send BEP 14 announce.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct LsdAnnounce {
    host: String,
    port: u16,
    info_hashes: Vec<InfoHash>,
    cookie: Option<String>,
}

/// Why an LSD datagram or announce is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LsdError {
    #[error("LSD datagram of {len} bytes is over the {max}-byte limit")]
    TooLong { len: usize, max: usize },
    #[error("LSD datagram ends before the blank line that closes its headers")]
    Truncated,
    #[error("LSD datagram has a non-ASCII or control byte {byte:#04x} at offset {offset}")]
    BadByte { offset: usize, byte: u8 },
    #[error("LSD request line {line:?} is not `BT-SEARCH * HTTP/1.1`")]
    BadRequestLine { line: String },
    #[error("LSD header line {line:?} is not `Name: value`")]
    MalformedHeader { line: String },
    #[error("LSD datagram has more than {max} header lines")]
    TooManyHeaders { max: usize },
    #[error("LSD header {name} appears more than once")]
    DuplicateHeader { name: &'static str },
    #[error("LSD datagram lacks the {name} header")]
    MissingHeader { name: &'static str },
    #[error("LSD port {value:?} is not a number from 1 to 65535")]
    BadPort { value: String },
    #[error("LSD infohash {value:?} is not 40 hex digits")]
    BadInfoHash { value: String },
    #[error("LSD announce carries {count} infohashes, the limit is {max}")]
    TooManyInfoHashes { count: usize, max: usize },
    #[error("LSD announce carries no infohash")]
    NoInfoHash,
    #[error("LSD {name} value {value:?} is empty, too long or not printable ASCII without spaces")]
    BadField { name: &'static str, value: String },
    #[error("LSD datagram has {count} unexpected bytes after its headers, at offset {offset}")]
    TrailingBytes { offset: usize, count: usize },
}

impl LsdAnnounce {
    /// Checks and builds an announce. `host` is usually [`IPV4_HOST`]; `cookie` (optional) lets a
    /// receiver recognise and drop its own announces looped back by multicast.
    pub fn new(
        host: &str,
        port: u16,
        info_hashes: Vec<InfoHash>,
        cookie: Option<&str>,
    ) -> Result<Self, LsdError> {
        check_field("Host", host)?;
        if let Some(cookie) = cookie {
            check_field("cookie", cookie)?;
        }
        if port == 0 {
            return Err(LsdError::BadPort {
                value: "0".to_owned(),
            });
        }
        if info_hashes.is_empty() {
            return Err(LsdError::NoInfoHash);
        }
        if info_hashes.len() > MAX_INFOHASHES {
            return Err(LsdError::TooManyInfoHashes {
                count: info_hashes.len(),
                max: MAX_INFOHASHES,
            });
        }
        Ok(LsdAnnounce {
            host: host.to_owned(),
            port,
            info_hashes,
            cookie: cookie.map(str::to_owned),
        })
    }

    /// Announces for any number of torrents: one per [`MAX_INFOHASHES`] infohashes, in order.
    /// An empty list gives no announce.
    pub fn batches(
        host: &str,
        port: u16,
        info_hashes: &[InfoHash],
        cookie: Option<&str>,
    ) -> Result<Vec<Self>, LsdError> {
        info_hashes
            .chunks(MAX_INFOHASHES)
            .map(|chunk| LsdAnnounce::new(host, port, chunk.to_vec(), cookie))
            .collect()
    }

    /// The `Host` header: the multicast group the sender meant to reach.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The sender's BitTorrent listen port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The torrents announced (one or more, at most [`MAX_INFOHASHES`]).
    pub fn info_hashes(&self) -> &[InfoHash] {
        &self.info_hashes
    }

    /// The sender's opaque cookie, if it sent one.
    pub fn cookie(&self) -> Option<&str> {
        self.cookie.as_deref()
    }

    /// Exact length of [`Self::encode`]'s output; never over [`MAX_MESSAGE_LEN`].
    pub fn encoded_len(&self) -> usize {
        let digits = self.port.to_string().len();
        let mut len = REQUEST_LINE.len() + 2;
        len += "Host: ".len() + self.host.len() + 2;
        len += "Port: ".len() + digits + 2;
        len += self.info_hashes.len() * ("Infohash: ".len() + 40 + 2);
        if let Some(cookie) = &self.cookie {
            len += "cookie: ".len() + cookie.len() + 2;
        }
        len + 4
    }

    /// Appends the datagram: request line, headers, and the blank line plus the extra CRLF that
    /// BEP 14 shows (libtorrent sends the same).
    pub fn encode(&self, out: &mut Vec<u8>) {
        let mut text = String::with_capacity(self.encoded_len());
        text.push_str(REQUEST_LINE);
        text.push_str("\r\n");
        // Writing into a String cannot fail.
        let _ = write!(text, "Host: {}\r\nPort: {}\r\n", self.host, self.port);
        for hash in &self.info_hashes {
            let _ = write!(text, "Infohash: {}\r\n", hash.to_hex());
        }
        if let Some(cookie) = &self.cookie {
            let _ = write!(text, "cookie: {cookie}\r\n");
        }
        text.push_str("\r\n\r\n");
        out.extend_from_slice(text.as_bytes());
    }

    /// Parses one datagram (see the module doc for the rules).
    pub fn decode(input: &[u8]) -> Result<Self, LsdError> {
        if input.len() > MAX_MESSAGE_LEN {
            return Err(LsdError::TooLong {
                len: input.len(),
                max: MAX_MESSAGE_LEN,
            });
        }
        let mut lines = Lines { input, pos: 0 };
        let request = lines.next_line()?.ok_or(LsdError::Truncated)?;
        if request != REQUEST_LINE {
            return Err(LsdError::BadRequestLine {
                line: excerpt(request),
            });
        }
        let mut headers = Headers::default();
        let mut count = 0usize;
        loop {
            let line = lines.next_line()?.ok_or(LsdError::Truncated)?;
            if line.is_empty() {
                break;
            }
            count += 1;
            if count > MAX_HEADERS {
                return Err(LsdError::TooManyHeaders { max: MAX_HEADERS });
            }
            headers.take(line)?;
        }
        lines.expect_only_line_ends()?;
        headers.finish()
    }
}

/// Splits input into lines ending in CRLF or LF, checking bytes as it goes.
struct Lines<'a> {
    input: &'a [u8],
    pos: usize,
}

impl<'a> Lines<'a> {
    /// The next line without its ending, `None` if the input ends before a line end.
    fn next_line(&mut self) -> Result<Option<&'a str>, LsdError> {
        let rest = &self.input[self.pos..];
        let Some(lf) = rest.iter().position(|&b| b == b'\n') else {
            return Ok(None);
        };
        let line = rest[..lf].strip_suffix(b"\r").unwrap_or(&rest[..lf]);
        if let Some(bad) = line.iter().position(|&b| !(0x20..0x7f).contains(&b)) {
            return Err(LsdError::BadByte {
                offset: self.pos + bad,
                byte: line[bad],
            });
        }
        self.pos += lf + 1;
        // Only printable ASCII is left, which is valid UTF-8.
        Ok(std::str::from_utf8(line).ok())
    }

    fn expect_only_line_ends(&self) -> Result<(), LsdError> {
        let rest = &self.input[self.pos..];
        match rest.iter().position(|&b| b != b'\r' && b != b'\n') {
            None => Ok(()),
            Some(first) => Err(LsdError::TrailingBytes {
                offset: self.pos + first,
                count: rest.len() - first,
            }),
        }
    }
}

/// Header values gathered while decoding.
#[derive(Default)]
struct Headers {
    host: Option<String>,
    port: Option<u16>,
    info_hashes: Vec<InfoHash>,
    cookie: Option<String>,
}

impl Headers {
    fn take(&mut self, line: &str) -> Result<(), LsdError> {
        let Some((name, value)) = line.split_once(':') else {
            return Err(LsdError::MalformedHeader {
                line: excerpt(line),
            });
        };
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return Err(LsdError::MalformedHeader {
                line: excerpt(line),
            });
        }
        let value = value.trim_matches(' ');
        if name.eq_ignore_ascii_case("host") {
            check_field("Host", value)?;
            set_once(&mut self.host, "Host", value.to_owned())
        } else if name.eq_ignore_ascii_case("port") {
            set_once(&mut self.port, "Port", parse_port(value)?)
        } else if name.eq_ignore_ascii_case("infohash") {
            self.push_info_hash(value)
        } else if name.eq_ignore_ascii_case("cookie") {
            check_field("cookie", value)?;
            set_once(&mut self.cookie, "cookie", value.to_owned())
        } else {
            Ok(())
        }
    }

    fn push_info_hash(&mut self, value: &str) -> Result<(), LsdError> {
        if self.info_hashes.len() >= MAX_INFOHASHES {
            return Err(LsdError::TooManyInfoHashes {
                count: self.info_hashes.len() + 1,
                max: MAX_INFOHASHES,
            });
        }
        if value.len() != 40 {
            return Err(LsdError::BadInfoHash {
                value: excerpt(value),
            });
        }
        let hash = InfoHash::parse(value).map_err(|_| LsdError::BadInfoHash {
            value: excerpt(value),
        })?;
        self.info_hashes.push(hash);
        Ok(())
    }

    fn finish(self) -> Result<LsdAnnounce, LsdError> {
        let host = self.host.ok_or(LsdError::MissingHeader { name: "Host" })?;
        let port = self.port.ok_or(LsdError::MissingHeader { name: "Port" })?;
        if self.info_hashes.is_empty() {
            return Err(LsdError::MissingHeader { name: "Infohash" });
        }
        Ok(LsdAnnounce {
            host,
            port,
            info_hashes: self.info_hashes,
            cookie: self.cookie,
        })
    }
}

fn set_once<T>(slot: &mut Option<T>, name: &'static str, value: T) -> Result<(), LsdError> {
    if slot.is_some() {
        return Err(LsdError::DuplicateHeader { name });
    }
    *slot = Some(value);
    Ok(())
}

fn parse_port(value: &str) -> Result<u16, LsdError> {
    let bad = || LsdError::BadPort {
        value: excerpt(value),
    };
    if value.is_empty() || value.len() > 5 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    match value.parse::<u16>() {
        Ok(0) | Err(_) => Err(bad()),
        Ok(port) => Ok(port),
    }
}

/// `Host` and `cookie`: 1 to [`MAX_FIELD_LEN`] bytes of printable ASCII without spaces.
fn check_field(name: &'static str, value: &str) -> Result<(), LsdError> {
    let ok = !value.is_empty()
        && value.len() <= MAX_FIELD_LEN
        && value.bytes().all(|b| b.is_ascii_graphic());
    if ok {
        Ok(())
    } else {
        Err(LsdError::BadField {
            name,
            value: excerpt(value),
        })
    }
}

fn excerpt(text: &str) -> String {
    text.chars().take(ERROR_EXCERPT_LEN).collect()
}

#[cfg(test)]
#[path = "lsd_tests.rs"]
mod tests;

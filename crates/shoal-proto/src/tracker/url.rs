//! Tracker URLs: the one check every tracker address goes through before anything contacts it.
//!
//! Only `http`, `https` and `udp` are accepted (case-insensitive scheme); anything else
//! (`wss://`, `file://`, `javascript:`) is a typed error. A UDP URL must name a host and a
//! non-zero port (`udp://tracker.example:6969/announce`, `udp://[::1]:6969`); its path and query
//! are ignored (BEP 41 is not sent). HTTP URLs are kept verbatim for the HTTP client, after
//! checking they have a host and contain no spaces or control characters.

use std::fmt;
use std::net::Ipv6Addr;

/// Longest tracker URL accepted, in bytes.
pub const MAX_TRACKER_URL_LEN: usize = 2048;
/// Longest host name accepted (the DNS limit).
const MAX_HOST_LEN: usize = 253;
/// How much of an offending URL an error quotes.
const SNIPPET_LEN: usize = 80;

/// A tracker address that passed [`TrackerUrl::parse`].
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub enum TrackerUrl {
    /// `http://` or `https://`: the whole URL, as given.
    Http { url: String, tls: bool },
    /// `udp://host:port`: the host (a name, an IPv4 literal, or an IPv6 literal without brackets)
    /// and port to send BEP 15 datagrams to; `url` is the URL as given.
    Udp {
        url: String,
        host: String,
        port: u16,
    },
}

/// Why a string is not a usable tracker URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TrackerUrlError {
    #[error("tracker URL is {len} bytes, over the {max} byte limit")]
    TooLong { len: usize, max: usize },
    #[error("tracker URL {url:?} has no scheme")]
    NoScheme { url: String },
    #[error("tracker scheme {scheme:?} is not supported (only http, https and udp)")]
    UnsupportedScheme { scheme: String },
    #[error("tracker URL {url:?} contains a space or control character")]
    BadCharacter { url: String },
    #[error("tracker URL {url:?} has no host")]
    NoHost { url: String },
    #[error("tracker URL {url:?} has an invalid host")]
    BadHost { url: String },
    #[error("UDP tracker URL {url:?} needs a port between 1 and 65535")]
    BadPort { url: String },
}

fn snippet(text: &str) -> String {
    text.chars().take(SNIPPET_LEN).collect()
}

impl TrackerUrl {
    /// Checks a tracker URL. Surrounding whitespace is trimmed.
    pub fn parse(text: &str) -> Result<Self, TrackerUrlError> {
        let text = text.trim();
        if text.len() > MAX_TRACKER_URL_LEN {
            return Err(TrackerUrlError::TooLong {
                len: text.len(),
                max: MAX_TRACKER_URL_LEN,
            });
        }
        let Some((scheme, rest)) = text.split_once("://") else {
            return Err(TrackerUrlError::NoScheme { url: snippet(text) });
        };
        let scheme_lower = scheme.to_ascii_lowercase();
        if !matches!(scheme_lower.as_str(), "http" | "https" | "udp") {
            return Err(TrackerUrlError::UnsupportedScheme {
                scheme: snippet(scheme),
            });
        }
        if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(TrackerUrlError::BadCharacter { url: snippet(text) });
        }
        let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let authority = &rest[..authority_end];
        if authority.is_empty() {
            return Err(TrackerUrlError::NoHost { url: snippet(text) });
        }
        if scheme_lower != "udp" {
            return Ok(TrackerUrl::Http {
                url: text.to_owned(),
                tls: scheme_lower == "https",
            });
        }
        let (host, port) = split_host_port(authority, text)?;
        Ok(TrackerUrl::Udp {
            url: text.to_owned(),
            host,
            port,
        })
    }

    /// The URL as given.
    pub fn as_str(&self) -> &str {
        match self {
            TrackerUrl::Http { url, .. } | TrackerUrl::Udp { url, .. } => url,
        }
    }

    pub fn is_udp(&self) -> bool {
        matches!(self, TrackerUrl::Udp { .. })
    }
}

/// Splits a UDP authority into host and port: `host:port` or `[v6]:port`; no user info.
fn split_host_port(authority: &str, url: &str) -> Result<(String, u16), TrackerUrlError> {
    let bad_host = || TrackerUrlError::BadHost { url: snippet(url) };
    let bad_port = || TrackerUrlError::BadPort { url: snippet(url) };
    let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
        let (v6, after) = bracketed.split_once(']').ok_or_else(bad_host)?;
        v6.parse::<Ipv6Addr>().map_err(|_| bad_host())?;
        (v6, after.strip_prefix(':').ok_or_else(bad_port)?)
    } else {
        let (name, port) = authority.rsplit_once(':').ok_or_else(bad_port)?;
        let name_ok = !name.is_empty()
            && name.len() <= MAX_HOST_LEN
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b));
        if !name_ok {
            return Err(bad_host());
        }
        (name, port)
    };
    match port.parse::<u16>() {
        Ok(p) if p != 0 && port.bytes().all(|b| b.is_ascii_digit()) => Ok((host.to_owned(), p)),
        _ => Err(bad_port()),
    }
}

impl fmt::Display for TrackerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_three_schemes() {
        assert_eq!(
            TrackerUrl::parse(" HTTP://t.example/announce?passkey=x ").unwrap(),
            TrackerUrl::Http {
                url: "HTTP://t.example/announce?passkey=x".into(),
                tls: false
            }
        );
        assert!(matches!(
            TrackerUrl::parse("https://t.example:443/a").unwrap(),
            TrackerUrl::Http { tls: true, .. }
        ));
        assert_eq!(
            TrackerUrl::parse("udp://tracker.example:6969/announce").unwrap(),
            TrackerUrl::Udp {
                url: "udp://tracker.example:6969/announce".into(),
                host: "tracker.example".into(),
                port: 6969
            }
        );
        let v6 = TrackerUrl::parse("udp://[::1]:80").unwrap();
        assert!(matches!(v6, TrackerUrl::Udp { ref host, port: 80, .. } if host == "::1"));
        assert!(v6.is_udp());
        assert_eq!(v6.to_string(), "udp://[::1]:80");
    }

    #[test]
    fn refuses_other_schemes_and_malformed_urls() {
        let unsupported = |s: &str| TrackerUrlError::UnsupportedScheme { scheme: s.into() };
        assert_eq!(
            TrackerUrl::parse("wss://t.example"),
            Err(unsupported("wss"))
        );
        assert_eq!(
            TrackerUrl::parse("file:///etc/passwd"),
            Err(unsupported("file"))
        );
        assert!(matches!(
            TrackerUrl::parse("javascript:alert(1)"),
            Err(TrackerUrlError::NoScheme { .. })
        ));
        assert!(matches!(
            TrackerUrl::parse("http:///announce"),
            Err(TrackerUrlError::NoHost { .. })
        ));
        assert!(matches!(
            TrackerUrl::parse("http://a b/announce"),
            Err(TrackerUrlError::BadCharacter { .. })
        ));
        assert!(matches!(
            TrackerUrl::parse("http://a/\r\nHost: evil"),
            Err(TrackerUrlError::BadCharacter { .. })
        ));
        for bad_port in [
            "udp://t.example",
            "udp://t.example:0",
            "udp://t.example:70000",
            "udp://t:+1",
        ] {
            assert!(
                matches!(
                    TrackerUrl::parse(bad_port),
                    Err(TrackerUrlError::BadPort { .. })
                ),
                "{bad_port}"
            );
        }
        for bad_host in [
            "udp://:80",
            "udp://u@h:80",
            "udp://[zz]:80",
            "udp://[::1:80",
            "udp://a:b:80",
        ] {
            assert!(
                matches!(
                    TrackerUrl::parse(bad_host),
                    Err(TrackerUrlError::BadHost { .. })
                ),
                "{bad_host}"
            );
        }
        let long = format!("http://t/{}", "a".repeat(MAX_TRACKER_URL_LEN));
        assert!(matches!(
            TrackerUrl::parse(&long),
            Err(TrackerUrlError::TooLong { .. })
        ));
    }

    #[test]
    fn arbitrary_text_never_panics() {
        for text in [
            "",
            "://",
            "udp://[",
            "udp://]:1",
            "udp://é:1",
            "hTtP://x",
            "udp://a:",
        ] {
            let _ = TrackerUrl::parse(text);
        }
    }
}

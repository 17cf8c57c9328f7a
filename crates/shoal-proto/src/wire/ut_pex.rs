//! BEP 11 `ut_pex`: peers telling each other which peers they connected to and dropped.
//!
//! The payload is a bencoded dictionary of compact peer lists ([`super::compact`]): `added` and
//! `dropped` (IPv4, 6 bytes each), `added6` and `dropped6` (IPv6, 18 bytes each), and one flag
//! byte per added peer in `added.f` and `added6.f`.
//!
//! Caps, decided once: BEP 11 asks senders to keep each message to at most 50 added and 50 dropped
//! peers, so [`PexMessage::encode`] writes at most [`MAX_PEX_PEERS_SENT`] of each (the caller sends
//! the rest a minute later). Decoding tolerates senders that go somewhat over, up to
//! [`MAX_PEX_PEERS_ACCEPTED`] entries per list, and refuses anything longer with
//! [`PexError::TooManyPeers`] (a peer flooding addresses is misbehaving). A list whose length is
//! not a multiple of 6 or 18 is [`PexError::BadList`]. A flag string shorter or longer than its
//! list is tolerated: missing flags read as none, extra flag bytes are ignored.

use std::net::SocketAddr;

use crate::bencode::{DecodeError, DecodeLimits, Dict, OwnedDict};

use super::compact::{self, CompactError};

/// Most added (and, separately, most dropped) peers [`PexMessage::encode`] writes (BEP 11).
pub const MAX_PEX_PEERS_SENT: usize = 50;
/// Most entries accepted in any one list of a received message.
pub const MAX_PEX_PEERS_ACCEPTED: usize = 100;

/// Bencode limits for the PEX dictionary: flat and small.
const LIMITS: DecodeLimits = DecodeLimits {
    max_depth: 4,
    max_items: 256,
};

/// The flag byte BEP 11 attaches to each added peer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct PexFlags(pub u8);

impl PexFlags {
    /// The peer prefers encrypted connections.
    pub const PREFERS_ENCRYPTION: u8 = 0x01;
    /// The peer is a seed (or upload-only).
    pub const SEED: u8 = 0x02;
    /// The peer supports uTP.
    pub const UTP: u8 = 0x04;
    /// The peer supports the `ut_holepunch` extension.
    pub const HOLEPUNCH: u8 = 0x08;
    /// The sender reached this peer with an outgoing connection, so it accepts connections.
    pub const REACHABLE: u8 = 0x10;

    pub fn has(self, flag: u8) -> bool {
        self.0 & flag != 0
    }
}

/// One added peer and its flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PexPeer {
    pub addr: SocketAddr,
    pub flags: PexFlags,
}

/// Why a `ut_pex` payload was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PexError {
    #[error("ut_pex message is not valid bencode: {source}")]
    Bencode { source: DecodeError },
    #[error("ut_pex message is a bencoded {found}, not a dictionary")]
    NotADict { found: &'static str },
    #[error("ut_pex `{field}` is not a compact peer list: {source}")]
    BadList {
        field: &'static str,
        source: CompactError,
    },
    #[error("ut_pex `{field}` lists {count} peers, more than {max}")]
    TooManyPeers {
        field: &'static str,
        count: usize,
        max: usize,
    },
}

/// The compact list under `field` (empty when absent), refused when it holds more than
/// [`MAX_PEX_PEERS_ACCEPTED`] entries.
fn capped_list<'a>(
    dict: &Dict<'a>,
    field: &'static str,
    entry_len: usize,
) -> Result<&'a [u8], PexError> {
    let bytes = dict.get_bytes(field.as_bytes()).unwrap_or_default();
    let count = bytes.len() / entry_len;
    if count > MAX_PEX_PEERS_ACCEPTED {
        return Err(PexError::TooManyPeers {
            field,
            count,
            max: MAX_PEX_PEERS_ACCEPTED,
        });
    }
    Ok(bytes)
}

/// Appends `addrs` to `out`, each with its flag byte from `flags` (none when `flags` is short).
fn push_with_flags(addrs: impl Iterator<Item = SocketAddr>, flags: &[u8], out: &mut Vec<PexPeer>) {
    for (i, addr) in addrs.enumerate() {
        out.push(PexPeer {
            addr,
            flags: PexFlags(flags.get(i).copied().unwrap_or(0)),
        });
    }
}

/// One `ut_pex` message, IPv4 and IPv6 peers together.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PexMessage {
    pub added: Vec<PexPeer>,
    pub dropped: Vec<SocketAddr>,
}

impl PexMessage {
    /// Reads the payload of an `Extended` message carrying `ut_pex`.
    pub fn decode(payload: &[u8]) -> Result<Self, PexError> {
        let value = LIMITS
            .decode(payload)
            .map_err(|source| PexError::Bencode { source })?;
        let dict = value.as_dict().ok_or(PexError::NotADict {
            found: value.type_name(),
        })?;
        let list = |field, entry_len| capped_list(dict, field, entry_len);
        let bad = |field| move |source| PexError::BadList { field, source };
        let added4 = compact::decode_v4(list("added", compact::V4_LEN)?).map_err(bad("added"))?;
        let added6 = compact::decode_v6(list("added6", compact::V6_LEN)?).map_err(bad("added6"))?;
        let dropped4 =
            compact::decode_v4(list("dropped", compact::V4_LEN)?).map_err(bad("dropped"))?;
        let dropped6 =
            compact::decode_v6(list("dropped6", compact::V6_LEN)?).map_err(bad("dropped6"))?;
        let flags_of = |field: &str| dict.get_bytes(field.as_bytes()).unwrap_or_default();
        let mut added: Vec<PexPeer> = Vec::with_capacity(added4.len() + added6.len());
        push_with_flags(
            added4.into_iter().map(SocketAddr::V4),
            flags_of("added.f"),
            &mut added,
        );
        push_with_flags(
            added6.into_iter().map(SocketAddr::V6),
            flags_of("added6.f"),
            &mut added,
        );
        let dropped = dropped4
            .into_iter()
            .map(SocketAddr::V4)
            .chain(dropped6.into_iter().map(SocketAddr::V6))
            .collect();
        Ok(PexMessage { added, dropped })
    }

    /// The bencoded payload: the first [`MAX_PEX_PEERS_SENT`] added and the first
    /// [`MAX_PEX_PEERS_SENT`] dropped peers, split by address family. All six keys are always
    /// present, empty when there is nothing to say, as older clients expect.
    pub fn encode(&self) -> Vec<u8> {
        self.to_dict().encode()
    }

    /// Exactly `self.encode().len()`.
    pub fn encoded_len(&self) -> usize {
        self.to_dict().encoded_len()
    }

    fn to_dict(&self) -> OwnedDict {
        let (mut added4, mut flags4, mut added6, mut flags6) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for peer in self.added.iter().take(MAX_PEX_PEERS_SENT) {
            let (list, flags) = match peer.addr {
                SocketAddr::V4(_) => (&mut added4, &mut flags4),
                SocketAddr::V6(_) => (&mut added6, &mut flags6),
            };
            compact::encode(peer.addr, list);
            flags.push(peer.flags.0);
        }
        let (mut dropped4, mut dropped6) = (Vec::new(), Vec::new());
        for &addr in self.dropped.iter().take(MAX_PEX_PEERS_SENT) {
            compact::encode(
                addr,
                if addr.is_ipv4() {
                    &mut dropped4
                } else {
                    &mut dropped6
                },
            );
        }
        OwnedDict::new()
            .with("added", added4)
            .with("added.f", flags4)
            .with("added6", added6)
            .with("added6.f", flags6)
            .with("dropped", dropped4)
            .with("dropped6", dropped6)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn peer(addr: &str, flags: u8) -> PexPeer {
        PexPeer {
            addr: addr.parse().unwrap(),
            flags: PexFlags(flags),
        }
    }

    #[test]
    fn golden_bytes() {
        let message = PexMessage {
            added: vec![peer("10.0.0.1:6881", 0x12), peer("[::1]:80", 0x04)],
            dropped: vec!["1.2.3.4:258".parse().unwrap()],
        };
        let mut want = b"d5:added6:\x0a\x00\x00\x01\x1a\xe17:added.f1:\x126:added618:".to_vec();
        want.extend_from_slice(&[0; 15]);
        want.extend_from_slice(b"\x01\x00\x508:added6.f1:\x047:dropped6:\x01\x02\x03\x04\x01\x02");
        want.extend_from_slice(b"8:dropped60:e");
        assert_eq!(message.encode(), want);
        assert_eq!(message.encoded_len(), want.len());
        assert_eq!(PexMessage::decode(&want), Ok(message));
    }

    #[test]
    fn missing_keys_and_flags_are_tolerated() {
        let m = PexMessage::decode(
            b"d5:added12:\x01\x01\x01\x01\x00\x01\x02\x02\x02\x02\x00\x027:added.f1:\x02e",
        )
        .unwrap();
        assert_eq!(m.added, vec![peer("1.1.1.1:1", 0x02), peer("2.2.2.2:2", 0)]);
        assert!(m.dropped.is_empty());
        assert_eq!(PexMessage::decode(b"de"), Ok(PexMessage::default()));
        let extra_flags =
            PexMessage::decode(b"d5:added6:\x01\x01\x01\x01\x00\x017:added.f3:\x01\x02\x03e");
        assert_eq!(extra_flags.unwrap().added, vec![peer("1.1.1.1:1", 1)]);
    }

    #[test]
    fn bad_lists_are_typed_errors() {
        assert_eq!(
            PexMessage::decode(b"d7:dropped5:12345e"),
            Err(PexError::BadList {
                field: "dropped",
                source: CompactError::BadLength {
                    len: 5,
                    entry_len: 6
                }
            })
        );
        assert!(matches!(
            PexMessage::decode(b"d6:added66:123456e"),
            Err(PexError::BadList {
                field: "added6",
                ..
            })
        ));
        assert_eq!(
            PexMessage::decode(b"le"),
            Err(PexError::NotADict { found: "list" })
        );
        let full = PexMessage {
            added: vec![peer("1.2.3.4:5", 0)],
            dropped: vec![],
        }
        .encode();
        for cut in 0..full.len() {
            assert!(
                matches!(
                    PexMessage::decode(&full[..cut]),
                    Err(PexError::Bencode { .. })
                ),
                "{cut}"
            );
        }
    }

    #[test]
    fn thousands_of_addresses_are_refused() {
        let payload = OwnedDict::new().with("added", vec![7u8; 6 * 3000]).encode();
        assert_eq!(
            PexMessage::decode(&payload),
            Err(PexError::TooManyPeers {
                field: "added",
                count: 3000,
                max: MAX_PEX_PEERS_ACCEPTED
            })
        );
        let at_cap = OwnedDict::new()
            .with("dropped6", vec![7u8; 18 * 100])
            .encode();
        assert_eq!(
            PexMessage::decode(&at_cap).map(|m| m.dropped.len()),
            Ok(100)
        );
    }

    #[test]
    fn encode_sends_at_most_fifty_of_each() {
        let added: Vec<PexPeer> = (0..80u16)
            .map(|i| PexPeer {
                addr: SocketAddr::from(([10, 0, 0, 1], i)),
                flags: PexFlags(0),
            })
            .collect();
        let dropped: Vec<SocketAddr> = (0..70u16)
            .map(|i| SocketAddr::from(([10, 0, 0, 2], i)))
            .collect();
        let sent = PexMessage::decode(
            &PexMessage {
                added: added.clone(),
                dropped: dropped.clone(),
            }
            .encode(),
        )
        .unwrap();
        assert_eq!(sent.added, added[..50]);
        assert_eq!(sent.dropped, dropped[..50]);
    }

    fn any_addr() -> impl Strategy<Value = SocketAddr> {
        prop_oneof![
            any::<std::net::SocketAddrV4>().prop_map(SocketAddr::V4),
            any::<(u128, u16)>()
                .prop_map(|(ip, port)| SocketAddr::from((std::net::Ipv6Addr::from(ip), port))),
        ]
    }

    proptest! {
        #[test]
        fn round_trip_with_encoded_len(
            added in proptest::collection::vec((any_addr(), any::<u8>()), 0..=50),
            dropped in proptest::collection::vec(any_addr(), 0..=50),
        ) {
            let added: Vec<PexPeer> =
                added.into_iter().map(|(addr, f)| PexPeer { addr, flags: PexFlags(f) }).collect();
            let message = PexMessage { added, dropped };
            let bytes = message.encode();
            prop_assert_eq!(bytes.len(), message.encoded_len());
            let back = PexMessage::decode(&bytes).unwrap();
            // Decoding groups IPv4 before IPv6; compare per family, order kept within each.
            let family = |v4: bool, peers: &[PexPeer]| -> Vec<PexPeer> {
                peers.iter().filter(|p| p.addr.is_ipv4() == v4).copied().collect()
            };
            for v4 in [true, false] {
                prop_assert_eq!(family(v4, &back.added), family(v4, &message.added));
                let d = |list: &[SocketAddr]| -> Vec<SocketAddr> {
                    list.iter().filter(|a| a.is_ipv4() == v4).copied().collect()
                };
                prop_assert_eq!(d(&back.dropped), d(&message.dropped));
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = PexMessage::decode(&bytes);
        }
    }
}

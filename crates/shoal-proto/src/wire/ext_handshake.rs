//! The BEP 10 extended handshake: the bencoded dictionary carried by `Message::Extended { id: 0 }`.
//!
//! It tells the other side which extensions we speak and under which message id we want to
//! receive each (`m`), plus advisory facts: our listen port (`p`), client name (`v`), the address
//! we see them at (`yourip`), our own addresses (`ipv4`, `ipv6`), how many outstanding requests we
//! take (`reqq`) and the size of the torrent's metadata (`metadata_size`, BEP 9).
//!
//! Decoding is lenient about the advisory keys: unknown keys are ignored, and a known key of the
//! wrong type or out of range reads as absent, since none of them is worth a connection. It is
//! strict about the shape: the payload must be one bencoded dictionary with nothing after it, and
//! `m` may hold at most [`MAX_EXTENSIONS`] entries. `metadata_size` is passed through as sent; check
//! it with [`super::ut_metadata::MetadataLayout::new`] before allocating for it.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::bencode::{DecodeError, DecodeLimits, OwnedDict, OwnedValue};

use super::compact;

/// The name of the BEP 9 metadata exchange extension in `m`.
pub const UT_METADATA: &str = "ut_metadata";
/// The name of the BEP 11 peer exchange extension in `m`.
pub const UT_PEX: &str = "ut_pex";

/// The id shoal asks peers to use when they send us `ut_pex` messages.
pub const OUR_UT_PEX_ID: u8 = 1;
/// The id shoal asks peers to use when they send us `ut_metadata` messages.
pub const OUR_UT_METADATA_ID: u8 = 2;

/// Most entries accepted in a peer's `m` dictionary. Real clients list fewer than 20.
pub const MAX_EXTENSIONS: usize = 64;
/// Longest extension name kept from `m`; longer names are skipped.
pub const MAX_EXTENSION_NAME_LEN: usize = 64;
/// Longest client name (`v`) kept, in characters; longer names are cut.
pub const MAX_CLIENT_NAME_CHARS: usize = 64;

/// Bencode limits for the handshake dictionary: shallow and small.
const LIMITS: DecodeLimits = DecodeLimits {
    max_depth: 8,
    max_items: 4096,
};

/// Why an extended handshake payload was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ExtHandshakeError {
    #[error("extended handshake is not valid bencode: {source}")]
    Bencode { source: DecodeError },
    #[error("extended handshake is a bencoded {found}, not a dictionary")]
    NotADict { found: &'static str },
    #[error("extended handshake lists {count} extensions, more than {max}")]
    TooManyExtensions { count: usize, max: usize },
}

/// A decoded (or to-be-sent) BEP 10 extended handshake.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExtendedHandshake {
    /// Extension name to the id the sender wants to receive it under. An id of 0 (in a repeated
    /// handshake) means the sender turned that extension off.
    pub extensions: BTreeMap<String, u8>,
    /// `p`: the sender's listen port.
    pub listen_port: Option<u16>,
    /// `v`: the sender's client name and version, lossily decoded, at most
    /// [`MAX_CLIENT_NAME_CHARS`] characters.
    pub client: Option<String>,
    /// `yourip`: the address the sender sees the receiver at.
    pub your_ip: Option<IpAddr>,
    /// `ipv4`: the sender's own IPv4 address.
    pub ipv4: Option<Ipv4Addr>,
    /// `ipv6`: the sender's own IPv6 address.
    pub ipv6: Option<Ipv6Addr>,
    /// `reqq`: how many outstanding requests the sender accepts (1 or more).
    pub request_queue_len: Option<u32>,
    /// `metadata_size` (BEP 9): bytes in the torrent's info dictionary, as claimed.
    pub metadata_size: Option<u32>,
}

impl ExtendedHandshake {
    /// The start of shoal's own handshake: the extensions it speaks under [`OUR_UT_METADATA_ID`]
    /// and [`OUR_UT_PEX_ID`], and its client name. The caller fills in the rest (port, `yourip`,
    /// `reqq`, `metadata_size` once the metadata is known) with struct update syntax.
    pub fn shoal() -> Self {
        ExtendedHandshake {
            extensions: [
                (UT_METADATA.to_owned(), OUR_UT_METADATA_ID),
                (UT_PEX.to_owned(), OUR_UT_PEX_ID),
            ]
            .into(),
            client: Some(concat!("shoal/", env!("CARGO_PKG_VERSION")).to_owned()),
            ..Default::default()
        }
    }

    /// The id to send extension `name` under to this peer; `None` when it does not support it
    /// (absent, or turned off with id 0).
    pub fn extension_id(&self, name: &str) -> Option<u8> {
        self.extensions.get(name).copied().filter(|&id| id != 0)
    }

    /// The id to send `ut_metadata` messages under to this peer.
    pub fn ut_metadata_id(&self) -> Option<u8> {
        self.extension_id(UT_METADATA)
    }

    /// The id to send `ut_pex` messages under to this peer.
    pub fn ut_pex_id(&self) -> Option<u8> {
        self.extension_id(UT_PEX)
    }

    /// Reads the payload of an `Extended { id: 0 }` message.
    pub fn decode(payload: &[u8]) -> Result<Self, ExtHandshakeError> {
        let value = LIMITS
            .decode(payload)
            .map_err(|source| ExtHandshakeError::Bencode { source })?;
        let dict = value.as_dict().ok_or(ExtHandshakeError::NotADict {
            found: value.type_name(),
        })?;
        let mut extensions = BTreeMap::new();
        if let Some(m) = dict.get_dict(b"m") {
            if m.len() > MAX_EXTENSIONS {
                return Err(ExtHandshakeError::TooManyExtensions {
                    count: m.len(),
                    max: MAX_EXTENSIONS,
                });
            }
            for (name, id) in m.iter() {
                let name = std::str::from_utf8(name)
                    .ok()
                    .filter(|n| n.len() <= MAX_EXTENSION_NAME_LEN);
                let id = id.as_int().and_then(|id| u8::try_from(id).ok());
                if let (Some(name), Some(id)) = (name, id) {
                    extensions.insert(name.to_owned(), id);
                }
            }
        }
        let int_in = |key: &[u8]| dict.get_int(key);
        Ok(ExtendedHandshake {
            extensions,
            listen_port: int_in(b"p")
                .and_then(|p| u16::try_from(p).ok())
                .filter(|&p| p != 0),
            client: dict.get_bytes(b"v").map(|v| {
                String::from_utf8_lossy(v)
                    .chars()
                    .take(MAX_CLIENT_NAME_CHARS)
                    .collect()
            }),
            your_ip: dict.get_bytes(b"yourip").and_then(compact::decode_ip),
            ipv4: dict
                .get_bytes(b"ipv4")
                .and_then(|b| <[u8; 4]>::try_from(b).ok())
                .map(Ipv4Addr::from),
            ipv6: dict
                .get_bytes(b"ipv6")
                .and_then(|b| <[u8; 16]>::try_from(b).ok())
                .map(Ipv6Addr::from),
            request_queue_len: int_in(b"reqq")
                .and_then(|n| u32::try_from(n).ok())
                .filter(|&n| n != 0),
            metadata_size: int_in(b"metadata_size").and_then(|n| u32::try_from(n).ok()),
        })
    }

    /// The bencoded dictionary, ready to be the payload of `Extended { id: 0 }`. `m` is always
    /// present (possibly empty); the other keys only when set.
    pub fn encode(&self) -> Vec<u8> {
        self.to_dict().encode()
    }

    /// Exactly `self.encode().len()`.
    pub fn encoded_len(&self) -> usize {
        self.to_dict().encoded_len()
    }

    fn to_dict(&self) -> OwnedDict {
        let mut m = OwnedDict::new();
        for (name, &id) in &self.extensions {
            m.insert(name.as_bytes(), i64::from(id));
        }
        let ip_bytes = |ip: IpAddr| {
            let mut out = Vec::new();
            compact::encode_ip(ip, &mut out);
            OwnedValue::Bytes(out)
        };
        OwnedDict::new()
            .with("m", m)
            .with_opt("p", self.listen_port.map(i64::from))
            .with_opt("v", self.client.as_deref())
            .with_opt("yourip", self.your_ip.map(ip_bytes))
            .with_opt("ipv4", self.ipv4.map(|ip| ip_bytes(IpAddr::V4(ip))))
            .with_opt("ipv6", self.ipv6.map(|ip| ip_bytes(IpAddr::V6(ip))))
            .with_opt("reqq", self.request_queue_len.map(i64::from))
            .with_opt("metadata_size", self.metadata_size.map(i64::from))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn golden_encode() {
        let hs = ExtendedHandshake {
            extensions: [(UT_METADATA.to_owned(), 2), (UT_PEX.to_owned(), 1)].into(),
            listen_port: Some(6881),
            client: Some("shoal 0.1".to_owned()),
            your_ip: Some("127.0.0.1".parse().unwrap()),
            request_queue_len: Some(250),
            metadata_size: Some(31235),
            ..Default::default()
        };
        let want: &[u8] = b"d1:md11:ut_metadatai2e6:ut_pexi1ee13:metadata_sizei31235e\
1:pi6881e4:reqqi250e1:v9:shoal 0.16:yourip4:\x7f\x00\x00\x01e";
        assert_eq!(hs.encode(), want);
        assert_eq!(hs.encoded_len(), want.len());
        assert_eq!(ExtendedHandshake::decode(want), Ok(hs));
    }

    #[test]
    fn golden_decode_of_a_libtorrent_style_handshake() {
        let payload: &[u8] = b"d12:complete_agoi-1e1:md11:lt_donthavei7e10:share_modei8e\
11:upload_onlyi3e12:ut_holepunchi4e11:ut_metadatai2e6:ut_pexi1ee13:metadata_sizei5125e\
4:reqqi500e11:upload_onlyi0e1:v17:libtorrent 2.0.8\x00e";
        let hs = ExtendedHandshake::decode(payload).unwrap();
        assert_eq!(hs.ut_metadata_id(), Some(2));
        assert_eq!(hs.ut_pex_id(), Some(1));
        assert_eq!(hs.extension_id("lt_donthave"), Some(7));
        assert_eq!(hs.extensions.len(), 6);
        assert_eq!(hs.metadata_size, Some(5125));
        assert_eq!(hs.request_queue_len, Some(500));
        assert_eq!(hs.client.as_deref(), Some("libtorrent 2.0.8\0"));
        assert_eq!(hs.listen_port, None);
    }

    #[test]
    fn shoal_handshake_announces_our_ids() {
        let ours = ExtendedHandshake {
            listen_port: Some(6881),
            ..ExtendedHandshake::shoal()
        };
        let back = ExtendedHandshake::decode(&ours.encode()).unwrap();
        assert_eq!(back.ut_metadata_id(), Some(OUR_UT_METADATA_ID));
        assert_eq!(back.ut_pex_id(), Some(OUR_UT_PEX_ID));
        assert_ne!(OUR_UT_METADATA_ID, OUR_UT_PEX_ID);
        assert!(back.client.unwrap().starts_with("shoal/"));
    }

    #[test]
    fn disabled_extensions_read_as_unsupported() {
        let hs = ExtendedHandshake::decode(b"d1:md6:ut_pexi0eee").unwrap();
        assert_eq!(hs.extensions.get(UT_PEX), Some(&0));
        assert_eq!(hs.ut_pex_id(), None);
        assert_eq!(hs.ut_metadata_id(), None);
    }

    #[test]
    fn bad_advisory_values_read_as_absent() {
        let payload: &[u8] = b"d1:md1:ai300e1:bi-1e1:c3:xyz2:oki5ee1:pi70000e4:reqqi0e\
1:vi5e6:yourip3:abc4:ipv46:123456e";
        let hs = ExtendedHandshake::decode(payload).unwrap();
        assert_eq!(hs.extensions, [("ok".to_owned(), 5)].into());
        assert_eq!(hs.listen_port, None);
        assert_eq!(hs.request_queue_len, None);
        assert_eq!(hs.client, None);
        assert_eq!(hs.your_ip, None);
        assert_eq!(hs.ipv4, None);
        let no_m = ExtendedHandshake::decode(b"d1:mi3ee").unwrap();
        assert!(no_m.extensions.is_empty());
    }

    #[test]
    fn shape_errors_are_typed() {
        assert_eq!(
            ExtendedHandshake::decode(b"le"),
            Err(ExtHandshakeError::NotADict { found: "list" })
        );
        assert!(matches!(
            ExtendedHandshake::decode(b"d1:md11:ut_metadatai2eeexyz"),
            Err(ExtHandshakeError::Bencode {
                source: DecodeError::TrailingBytes { .. }
            })
        ));
        let full = ExtendedHandshake {
            extensions: [(UT_PEX.to_owned(), 1)].into(),
            listen_port: Some(1),
            ..Default::default()
        }
        .encode();
        for cut in 0..full.len() {
            assert!(
                matches!(
                    ExtendedHandshake::decode(&full[..cut]),
                    Err(ExtHandshakeError::Bencode { .. })
                ),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn too_many_extensions_are_refused() {
        let mut m = OwnedDict::new();
        for i in 0..=MAX_EXTENSIONS {
            m.insert(format!("x{i}").into_bytes(), 1);
        }
        let payload = OwnedDict::new().with("m", m).encode();
        assert_eq!(
            ExtendedHandshake::decode(&payload),
            Err(ExtHandshakeError::TooManyExtensions { count: 65, max: 64 })
        );
    }

    #[test]
    fn long_client_names_are_cut() {
        let name = "x".repeat(1000);
        let payload = OwnedDict::new().with("v", name.as_str()).encode();
        let hs = ExtendedHandshake::decode(&payload).unwrap();
        assert_eq!(hs.client.map(|c| c.len()), Some(MAX_CLIENT_NAME_CHARS));
    }

    fn any_handshake() -> impl Strategy<Value = ExtendedHandshake> {
        (
            proptest::collection::btree_map("[a-z_]{1,20}", any::<u8>(), 0..8),
            proptest::option::of(1u16..),
            proptest::option::of("[ -~]{0,64}"),
            proptest::option::of(any::<IpAddr>()),
            proptest::option::of(any::<Ipv4Addr>()),
            proptest::option::of(any::<Ipv6Addr>()),
            proptest::option::of(1u32..),
            proptest::option::of(any::<u32>()),
        )
            .prop_map(
                |(extensions, listen_port, client, your_ip, ipv4, ipv6, reqq, size)| {
                    ExtendedHandshake {
                        extensions,
                        listen_port,
                        client,
                        your_ip,
                        ipv4,
                        ipv6,
                        request_queue_len: reqq,
                        metadata_size: size,
                    }
                },
            )
    }

    proptest! {
        #[test]
        fn round_trip_with_encoded_len(hs in any_handshake()) {
            let bytes = hs.encode();
            prop_assert_eq!(bytes.len(), hs.encoded_len());
            prop_assert_eq!(ExtendedHandshake::decode(&bytes), Ok(hs));
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = ExtendedHandshake::decode(&bytes);
        }
    }
}

//! Fixed-size identifiers: the 20-byte SHA-1 infohash of a v1 torrent and the 20-byte peer id.
//!
//! Both print as lowercase hex; `InfoHash` also parses from hex (40 chars) and base32 (32 chars),
//! the two forms magnet links use.

use std::fmt;

/// The SHA-1 of a torrent's raw `info` dictionary bytes: a v1 torrent's identity.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InfoHash(pub [u8; 20]);

/// A peer's self-chosen 20-byte id, sent in the handshake.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerId(pub [u8; 20]);

/// Why a string is not an infohash.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InfoHashParseError {
    #[error("an infohash is 40 hex or 32 base32 characters, got {len}")]
    BadLength { len: usize },
    #[error("infohash {text:?} is not valid hex")]
    BadHex { text: String },
    #[error("infohash {text:?} is not valid base32")]
    BadBase32 { text: String },
}

impl InfoHash {
    /// SHA-1 of the given raw bytes (the `info` dictionary exactly as it appears in the file).
    pub fn of_info_bytes(info: &[u8]) -> Self {
        use sha1::Digest;
        let digest = sha1::Sha1::digest(info);
        let mut out = [0u8; 20];
        out.copy_from_slice(&digest);
        InfoHash(out)
    }

    /// Lowercase hex, 40 characters.
    pub fn to_hex(&self) -> String {
        data_encoding::HEXLOWER.encode(&self.0)
    }

    /// Uppercase RFC 4648 base32, 32 characters.
    pub fn to_base32(&self) -> String {
        data_encoding::BASE32.encode(&self.0)
    }

    /// Parses 40 hex characters (either case) or 32 base32 characters (either case).
    pub fn parse(text: &str) -> Result<Self, InfoHashParseError> {
        let mut out = [0u8; 20];
        match text.len() {
            40 => {
                let decoded = data_encoding::HEXLOWER_PERMISSIVE
                    .decode(text.as_bytes())
                    .map_err(|_| InfoHashParseError::BadHex {
                        text: text.to_owned(),
                    })?;
                out.copy_from_slice(&decoded);
            }
            32 => {
                let upper = text.to_ascii_uppercase();
                let decoded = data_encoding::BASE32
                    .decode(upper.as_bytes())
                    .map_err(|_| InfoHashParseError::BadBase32 {
                        text: text.to_owned(),
                    })?;
                if decoded.len() != 20 {
                    return Err(InfoHashParseError::BadBase32 {
                        text: text.to_owned(),
                    });
                }
                out.copy_from_slice(&decoded);
            }
            len => return Err(InfoHashParseError::BadLength { len }),
        }
        Ok(InfoHash(out))
    }
}

impl fmt::Display for InfoHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for InfoHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "InfoHash({})", self.to_hex())
    }
}

impl PeerId {
    /// Azureus-style id: `-SH0100-` followed by 12 caller-supplied random bytes.
    pub fn shoal(random: [u8; 12]) -> Self {
        let mut id = [0u8; 20];
        id[..8].copy_from_slice(b"-SH0100-");
        id[8..].copy_from_slice(&random);
        PeerId(id)
    }
}

impl fmt::Debug for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "PeerId({})",
            String::from_utf8_lossy(&self.0).escape_debug()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_and_base32_agree() {
        let h = InfoHash([0xab; 20]);
        assert_eq!(InfoHash::parse(&h.to_hex()).unwrap(), h);
        assert_eq!(InfoHash::parse(&h.to_base32()).unwrap(), h);
        assert_eq!(InfoHash::parse(&h.to_base32().to_lowercase()).unwrap(), h);
    }

    #[test]
    fn bad_lengths_and_digits_are_typed_errors() {
        assert_eq!(
            InfoHash::parse(&"a".repeat(39)),
            Err(InfoHashParseError::BadLength { len: 39 })
        );
        assert!(matches!(
            InfoHash::parse(&"g".repeat(40)),
            Err(InfoHashParseError::BadHex { .. })
        ));
        assert!(matches!(
            InfoHash::parse(&"1".repeat(32)),
            Err(InfoHashParseError::BadBase32 { .. })
        ));
    }
}

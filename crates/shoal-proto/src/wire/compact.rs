//! Compact peer addresses, shared by PEX (BEP 11) and tracker replies (BEP 23, BEP 7).
//!
//! An IPv4 peer is 6 bytes (address, then port, both big-endian) and an IPv6 peer 18 bytes; a
//! list is those entries back to back. A list whose length is not a multiple of the entry size is
//! a typed error rather than silently dropping the tail. The bare address forms (4 or 16 bytes, no
//! port) that BEP 10's `yourip`, `ipv4` and `ipv6` use live here too.
//!
//! Decoding allocates at most one entry per 6 (or 18) bytes actually present in the input.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

/// Bytes in one compact IPv4 peer.
pub const V4_LEN: usize = 6;
/// Bytes in one compact IPv6 peer.
pub const V6_LEN: usize = 18;

/// Why bytes are not a compact peer list.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CompactError {
    /// The list is `len` bytes long, not a multiple of the entry size `entry_len` (6 or 18).
    #[error("a compact peer list of {len} bytes is not a multiple of {entry_len}")]
    BadLength { len: usize, entry_len: usize },
}

fn check_len(bytes: &[u8], entry_len: usize) -> Result<(), CompactError> {
    if bytes.len().is_multiple_of(entry_len) {
        Ok(())
    } else {
        Err(CompactError::BadLength {
            len: bytes.len(),
            entry_len,
        })
    }
}

/// Reads a list of 6-byte IPv4 peers.
pub fn decode_v4(bytes: &[u8]) -> Result<Vec<SocketAddrV4>, CompactError> {
    check_len(bytes, V4_LEN)?;
    Ok(bytes
        .chunks_exact(V4_LEN)
        .map(|c| {
            let ip = Ipv4Addr::new(c[0], c[1], c[2], c[3]);
            SocketAddrV4::new(ip, u16::from_be_bytes([c[4], c[5]]))
        })
        .collect())
}

/// Reads a list of 18-byte IPv6 peers.
pub fn decode_v6(bytes: &[u8]) -> Result<Vec<SocketAddrV6>, CompactError> {
    check_len(bytes, V6_LEN)?;
    Ok(bytes
        .chunks_exact(V6_LEN)
        .map(|c| {
            let mut octets = [0u8; 16];
            octets.copy_from_slice(&c[..16]);
            SocketAddrV6::new(
                Ipv6Addr::from(octets),
                u16::from_be_bytes([c[16], c[17]]),
                0,
                0,
            )
        })
        .collect())
}

/// Appends one peer in compact form: 6 bytes for IPv4, 18 for IPv6. Callers that keep separate
/// v4 and v6 lists (PEX, BEP 7) pick the list by `addr.is_ipv4()`.
pub fn encode(addr: SocketAddr, out: &mut Vec<u8>) {
    encode_ip(addr.ip(), out);
    out.extend_from_slice(&addr.port().to_be_bytes());
}

/// Appends a bare address: 4 bytes for IPv4, 16 for IPv6 (BEP 10 `yourip`, `ipv4`, `ipv6`).
pub fn encode_ip(ip: IpAddr, out: &mut Vec<u8>) {
    match ip {
        IpAddr::V4(v4) => out.extend_from_slice(&v4.octets()),
        IpAddr::V6(v6) => out.extend_from_slice(&v6.octets()),
    }
}

/// Reads a bare address of 4 or 16 bytes; `None` for any other length.
pub fn decode_ip(bytes: &[u8]) -> Option<IpAddr> {
    if let Ok(v4) = <[u8; 4]>::try_from(bytes) {
        return Some(IpAddr::V4(Ipv4Addr::from(v4)));
    }
    <[u8; 16]>::try_from(bytes)
        .ok()
        .map(|v6| IpAddr::V6(Ipv6Addr::from(v6)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn golden_v4() {
        let bytes = [10, 0, 0, 1, 0x1a, 0xe1, 127, 0, 0, 1, 0, 80];
        let peers = decode_v4(&bytes).unwrap();
        assert_eq!(
            peers,
            vec![
                "10.0.0.1:6881".parse().unwrap(),
                "127.0.0.1:80".parse().unwrap()
            ]
        );
        let mut out = Vec::new();
        for p in &peers {
            encode(SocketAddr::V4(*p), &mut out);
        }
        assert_eq!(out, bytes);
    }

    #[test]
    fn golden_v6() {
        let mut bytes = vec![0x20, 0x01, 0x0d, 0xb8];
        bytes.extend_from_slice(&[0; 11]);
        bytes.extend_from_slice(&[1, 0x1a, 0xe1]);
        let peers = decode_v6(&bytes).unwrap();
        assert_eq!(peers, vec!["[2001:db8::1]:6881".parse().unwrap()]);
        let mut out = Vec::new();
        encode(SocketAddr::V6(peers[0]), &mut out);
        assert_eq!(out, bytes);
    }

    #[test]
    fn lengths_not_a_multiple_are_errors() {
        assert_eq!(
            decode_v4(&[0; 7]),
            Err(CompactError::BadLength {
                len: 7,
                entry_len: 6
            })
        );
        assert_eq!(
            decode_v6(&[0; 6]),
            Err(CompactError::BadLength {
                len: 6,
                entry_len: 18
            })
        );
        assert_eq!(decode_v4(&[]), Ok(vec![]));
        for len in 1..V6_LEN {
            assert!(
                decode_v6(&vec![0; V6_LEN + len]).is_err(),
                "trailing {len} bytes"
            );
        }
    }

    #[test]
    fn bare_addresses() {
        assert_eq!(decode_ip(&[1, 2, 3, 4]), Some("1.2.3.4".parse().unwrap()));
        assert_eq!(decode_ip(&[0; 16]), Some("::".parse().unwrap()));
        assert_eq!(decode_ip(&[0; 5]), None);
        let mut out = Vec::new();
        encode_ip("::1".parse().unwrap(), &mut out);
        assert_eq!(out.len(), 16);
    }

    proptest! {
        #[test]
        fn round_trips(v4 in proptest::collection::vec(any::<SocketAddrV4>(), 0..40),
                       v6 in proptest::collection::vec(any::<(u128, u16)>(), 0..40)) {
            let v6: Vec<SocketAddrV6> =
                v6.into_iter().map(|(ip, port)| SocketAddrV6::new(ip.into(), port, 0, 0)).collect();
            let (mut a, mut b) = (Vec::new(), Vec::new());
            v4.iter().for_each(|p| encode(SocketAddr::V4(*p), &mut a));
            v6.iter().for_each(|p| encode(SocketAddr::V6(*p), &mut b));
            prop_assert_eq!(a.len(), v4.len() * V4_LEN);
            prop_assert_eq!(decode_v4(&a).unwrap(), v4);
            prop_assert_eq!(decode_v6(&b).unwrap(), v6);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..100)) {
            let _ = decode_v4(&bytes);
            let _ = decode_v6(&bytes);
            let _ = decode_ip(&bytes);
        }
    }
}

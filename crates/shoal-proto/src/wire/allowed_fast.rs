//! The BEP 6 allowed-fast set: the pieces a peer may request from us while choked.
//!
//! Both sides can compute the same set from the peer's IPv4 address (masked to its /24, so all
//! hosts behind one NAT'd network share a set), the infohash and the piece count, using BEP 6's
//! canonical algorithm: hash `masked ip ‖ infohash` with SHA-1, read the digest as five big-endian
//! `u32`s, take each modulo the piece count, keep the new ones, hash the digest again until the set
//! is big enough. BEP 6 defines it for IPv4 only.

use std::net::Ipv4Addr;

use sha1::{Digest, Sha1};

use crate::InfoHash;

/// The largest set [`allowed_fast_set`] builds, whatever `k` asks for. Clients send about 10;
/// the cap bounds the SHA-1 work a caller can trigger.
pub const MAX_ALLOWED_FAST: u32 = 256;

/// BEP 6's canonical allowed-fast set, in the order the algorithm finds the pieces.
///
/// Returns `min(k, piece_count, MAX_ALLOWED_FAST)` distinct piece indices below `piece_count`
/// (empty for a torrent of zero pieces).
pub fn allowed_fast_set(ip: Ipv4Addr, info_hash: InfoHash, piece_count: u32, k: u32) -> Vec<u32> {
    let want = k.min(piece_count).min(MAX_ALLOWED_FAST) as usize;
    let mut set: Vec<u32> = Vec::with_capacity(want);
    let masked = u32::from(ip) & 0xFFFF_FF00;
    let mut x: [u8; 20] = {
        let mut hasher = Sha1::new();
        hasher.update(masked.to_be_bytes());
        hasher.update(info_hash.0);
        hasher.finalize().into()
    };
    while set.len() < want {
        for word in x.chunks_exact(4) {
            if set.len() >= want {
                break;
            }
            let y = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
            let index = y % piece_count;
            if !set.contains(&index) {
                set.push(index);
            }
        }
        x = Sha1::digest(x).into();
    }
    set
}

#[cfg(test)]
mod tests {
    use super::*;

    const BEP6_IP: Ipv4Addr = Ipv4Addr::new(80, 4, 4, 200);
    const BEP6_HASH: InfoHash = InfoHash([0xaa; 20]);

    #[test]
    fn bep6_example_vectors() {
        assert_eq!(
            allowed_fast_set(BEP6_IP, BEP6_HASH, 1313, 7),
            vec![1059, 431, 808, 1217, 287, 376, 1188]
        );
        assert_eq!(
            allowed_fast_set(BEP6_IP, BEP6_HASH, 1313, 9),
            vec![1059, 431, 808, 1217, 287, 376, 1188, 353, 508]
        );
    }

    #[test]
    fn same_slash_24_same_set_other_network_other_set() {
        let here = allowed_fast_set(BEP6_IP, BEP6_HASH, 1313, 10);
        assert_eq!(
            allowed_fast_set(Ipv4Addr::new(80, 4, 4, 1), BEP6_HASH, 1313, 10),
            here
        );
        assert_ne!(
            allowed_fast_set(Ipv4Addr::new(80, 4, 5, 200), BEP6_HASH, 1313, 10),
            here
        );
    }

    #[test]
    fn small_torrents_and_caps() {
        assert!(allowed_fast_set(BEP6_IP, BEP6_HASH, 0, 10).is_empty());
        let mut all = allowed_fast_set(BEP6_IP, BEP6_HASH, 3, 10);
        all.sort_unstable();
        assert_eq!(
            all,
            vec![0, 1, 2],
            "k above the piece count gives every piece"
        );
        let capped = allowed_fast_set(BEP6_IP, BEP6_HASH, 1_000_000, u32::MAX);
        assert_eq!(capped.len(), MAX_ALLOWED_FAST as usize);
        let mut distinct = capped.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(distinct.len(), capped.len());
        assert!(capped.iter().all(|&i| i < 1_000_000));
    }
}

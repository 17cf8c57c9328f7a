//! `announce_peer` tokens (BEP 5): a token is a hash of a secret and the asking node's IPv4
//! address, so only a node that did a `get_peers` from that address can announce. The secret
//! changes every [`ROTATION`]; tokens made with the current or the previous secret are accepted,
//! so a token stays valid for 5 to 10 minutes.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use rand::Rng;
use sha1::{Digest, Sha1};
use shoal_proto::dht::Token;

/// How often the secret changes.
pub const ROTATION: Duration = Duration::from_secs(5 * 60);
const TOKEN_LEN: usize = 8;

/// The two live secrets.
#[derive(Clone, Debug)]
pub struct TokenSecrets {
    current: [u8; 16],
    previous: [u8; 16],
    rotated_at: Instant,
}

impl TokenSecrets {
    pub fn new(rng: &mut impl Rng, now: Instant) -> Self {
        TokenSecrets {
            current: rng.gen(),
            previous: rng.gen(),
            rotated_at: now,
        }
    }

    /// The token to hand to a node at `ip`.
    pub fn token_for(&self, ip: Ipv4Addr) -> Token {
        make(&self.current, ip)
    }

    /// Whether `token` was handed to `ip` within the last two rotations.
    pub fn accepts(&self, ip: Ipv4Addr, token: &Token) -> bool {
        make(&self.current, ip) == *token || make(&self.previous, ip) == *token
    }

    /// Rotates the secret if [`ROTATION`] has passed.
    pub fn rotate_if_due(&mut self, now: Instant, rng: &mut impl Rng) {
        if now >= self.next_rotation() {
            self.previous = self.current;
            self.current = rng.gen();
            self.rotated_at = now;
        }
    }

    /// When the secret changes next.
    pub fn next_rotation(&self) -> Instant {
        self.rotated_at + ROTATION
    }
}

fn make(secret: &[u8; 16], ip: Ipv4Addr) -> Token {
    let mut hasher = Sha1::new();
    hasher.update(secret);
    hasher.update(ip.octets());
    let digest = hasher.finalize();
    let mut out = [0u8; TOKEN_LEN];
    out.copy_from_slice(&digest[..TOKEN_LEN]);
    Token::from(out)
}

//! KRPC, the message format of the Mainline DHT (BEP 5), IPv4 only.
//!
//! A KRPC message is one bencoded dictionary per UDP datagram: a query (`ping`, `find_node`,
//! `get_peers`, `announce_peer`), a response, or an error, each carrying a transaction id that
//! the answer echoes. [`Message::decode`] turns a datagram into a typed [`Message`];
//! [`Message::encode`] writes one back (canonical bencode, `encoded_len` exact).
//!
//! Guarantees on untrusted input: no panic; a datagram over [`MAX_MESSAGE_LEN`] is refused before
//! it is parsed; nesting and value counts are capped; transaction ids of any length from 1 to
//! [`MAX_TRANSACTION_ID_LEN`] bytes are kept byte for byte (libtorrent sends 2 bytes, others 4),
//! so a reply can echo them exactly; node and peer lists, tokens and error texts have caps.
//! A query whose envelope is sound but whose method or arguments are not gives
//! [`KrpcDecodeError::BadQuery`], which carries the transaction id and the KRPC error code to
//! answer with. Responses do not say which query they answer: the node matches them by
//! transaction id, so [`Response`] holds every field any response may carry.

mod decode;
mod encode;
#[cfg(test)]
mod tests;

use std::net::SocketAddrV4;

pub use decode::KrpcDecodeError;

/// Largest datagram decoded, in bytes. Real KRPC messages fit one Ethernet frame.
pub const MAX_MESSAGE_LEN: usize = 8 * 1024;
/// Longest transaction id accepted.
pub const MAX_TRANSACTION_ID_LEN: usize = 16;
/// Longest `announce_peer` token accepted.
pub const MAX_TOKEN_LEN: usize = 64;
/// Most compact nodes in one response.
pub const MAX_NODES: usize = 128;
/// Most peers (`values`) in one response.
pub const MAX_VALUES: usize = 512;
/// Longest error text kept; longer texts are cut (lossy UTF-8).
pub const MAX_ERROR_TEXT_LEN: usize = 256;
/// Length of one compact IPv4 node: id (20) + address (4) + port (2).
pub const COMPACT_NODE_LEN: usize = 26;

/// KRPC error codes (BEP 5).
pub mod error_code {
    pub const GENERIC: i64 = 201;
    pub const SERVER: i64 = 202;
    pub const PROTOCOL: i64 = 203;
    pub const METHOD_UNKNOWN: i64 = 204;
}

/// A 160-bit DHT node id (the same space as infohashes).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Default)]
pub struct NodeId(pub [u8; 20]);

impl NodeId {
    /// XOR distance to `other`, comparable as big-endian bytes.
    pub fn distance(&self, other: &[u8; 20]) -> [u8; 20] {
        let mut out = [0u8; 20];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = self.0[i] ^ other[i];
        }
        out
    }

    /// Lowercase hex, 40 characters.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// A KRPC transaction id: 1 to [`MAX_TRANSACTION_ID_LEN`] opaque bytes, echoed exactly.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TransactionId {
    len: u8,
    bytes: [u8; MAX_TRANSACTION_ID_LEN],
}

impl TransactionId {
    /// `None` when `bytes` is empty or longer than [`MAX_TRANSACTION_ID_LEN`].
    pub fn new(bytes: &[u8]) -> Option<Self> {
        if bytes.is_empty() || bytes.len() > MAX_TRANSACTION_ID_LEN {
            return None;
        }
        let mut out = [0u8; MAX_TRANSACTION_ID_LEN];
        out[..bytes.len()].copy_from_slice(bytes);
        Some(TransactionId {
            len: bytes.len() as u8,
            bytes: out,
        })
    }

    /// A 2-byte id from a counter, as shoal sends.
    pub fn from_u16(n: u16) -> Self {
        let mut bytes = [0u8; MAX_TRANSACTION_ID_LEN];
        bytes[..2].copy_from_slice(&n.to_be_bytes());
        TransactionId { len: 2, bytes }
    }

    /// The id's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

impl std::fmt::Debug for TransactionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TransactionId({})", self.as_bytes().escape_ascii())
    }
}

/// An `announce_peer` token: opaque bytes, 1 to [`MAX_TOKEN_LEN`] long.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct Token(Vec<u8>);

impl Token {
    /// `None` when `bytes` is empty or longer than [`MAX_TOKEN_LEN`].
    pub fn new(bytes: &[u8]) -> Option<Self> {
        (!bytes.is_empty() && bytes.len() <= MAX_TOKEN_LEN).then(|| Token(bytes.to_vec()))
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl From<[u8; 8]> for Token {
    /// An 8-byte token, the length shoal hands out.
    fn from(bytes: [u8; 8]) -> Self {
        Token(bytes.to_vec())
    }
}

/// A node as listed in `nodes`: its id and IPv4 address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct CompactNode {
    pub id: NodeId,
    pub addr: SocketAddrV4,
}

/// One KRPC message.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Message {
    pub transaction_id: TransactionId,
    pub body: Body,
}

/// What a message is.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Body {
    Query(Query),
    Response(Response),
    Error(KrpcError),
}

/// A query from the node `sender`.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Query {
    pub sender: NodeId,
    /// BEP 43: the sender does not answer queries; do not add it to a routing table.
    pub read_only: bool,
    pub method: Method,
}

/// The query methods of BEP 5.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Method {
    Ping,
    FindNode {
        target: [u8; 20],
    },
    GetPeers {
        info_hash: [u8; 20],
    },
    AnnouncePeer {
        info_hash: [u8; 20],
        /// The TCP port announced; meaningless (kept as sent, 0 if out of range) when
        /// `implied_port` is set, in which case the query's UDP source port counts.
        port: u16,
        implied_port: bool,
        token: Token,
    },
}

impl Method {
    /// The method name on the wire.
    pub fn name(&self) -> &'static str {
        match self {
            Method::Ping => "ping",
            Method::FindNode { .. } => "find_node",
            Method::GetPeers { .. } => "get_peers",
            Method::AnnouncePeer { .. } => "announce_peer",
        }
    }
}

/// A response from the node `sender`; which fields are set depends on the query it answers.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct Response {
    pub sender: NodeId,
    /// Closest nodes the sender knows (`find_node`, `get_peers`).
    pub nodes: Vec<CompactNode>,
    /// Peers for the infohash (`get_peers`).
    pub values: Vec<SocketAddrV4>,
    /// The token to present in a later `announce_peer` (`get_peers`).
    pub token: Option<Token>,
}

/// A KRPC error message.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct KrpcError {
    pub code: i64,
    /// Lossy UTF-8, at most [`MAX_ERROR_TEXT_LEN`] bytes.
    pub message: String,
}

impl Message {
    /// A query message.
    pub fn query(transaction_id: TransactionId, query: Query) -> Self {
        Message {
            transaction_id,
            body: Body::Query(query),
        }
    }

    /// A response message.
    pub fn response(transaction_id: TransactionId, response: Response) -> Self {
        Message {
            transaction_id,
            body: Body::Response(response),
        }
    }

    /// An error message; `message` is cut to [`MAX_ERROR_TEXT_LEN`] bytes.
    pub fn error(transaction_id: TransactionId, code: i64, message: &str) -> Self {
        Message {
            transaction_id,
            body: Body::Error(KrpcError {
                code,
                message: decode::capped_text(message.as_bytes()),
            }),
        }
    }
}

/// The fuzz entry point (`fuzz/fuzz_targets/krpc.rs`): decoding never panics, and a message that
/// decodes encodes to bytes that decode to the same message, of exactly `encoded_len` bytes.
pub mod fuzzing {
    use super::Message;

    pub fn run(data: &[u8]) {
        if let Ok(message) = Message::decode(data) {
            let bytes = message.encode();
            assert_eq!(bytes.len(), message.encoded_len());
            assert_eq!(Message::decode(&bytes).as_ref(), Ok(&message));
        }
    }
}

//! KRPC encoding through the canonical bencode encoder, so `encoded_len` is exact.

use super::{Body, CompactNode, Message, Method, Query, Response, COMPACT_NODE_LEN};
use crate::bencode::{OwnedDict, OwnedValue};

impl Message {
    /// The datagram for this message.
    pub fn encode(&self) -> Vec<u8> {
        OwnedValue::Dict(self.to_bencode()).encode()
    }

    /// Appends the datagram for this message to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        self.to_bencode().encode_into(out);
    }

    /// Exactly `self.encode().len()`.
    pub fn encoded_len(&self) -> usize {
        self.to_bencode().encoded_len()
    }

    fn to_bencode(&self) -> OwnedDict {
        let envelope = OwnedDict::new().with("t", self.transaction_id.as_bytes().to_vec());
        match &self.body {
            Body::Query(query) => envelope
                .with("y", "q")
                .with("q", query.method.name())
                .with("a", query_args(query)),
            Body::Response(response) => envelope.with("y", "r").with("r", response_dict(response)),
            Body::Error(error) => envelope.with("y", "e").with(
                "e",
                OwnedValue::List(vec![
                    OwnedValue::Int(error.code),
                    OwnedValue::Bytes(error.message.as_bytes().to_vec()),
                ]),
            ),
        }
    }
}

fn query_args(query: &Query) -> OwnedDict {
    let mut args = OwnedDict::new().with("id", query.sender.0.to_vec());
    if query.read_only {
        args.insert("ro", 1);
    }
    match &query.method {
        Method::Ping => {}
        Method::FindNode { target } => {
            args.insert("target", target.to_vec());
        }
        Method::GetPeers { info_hash } => {
            args.insert("info_hash", info_hash.to_vec());
        }
        Method::AnnouncePeer {
            info_hash,
            port,
            implied_port,
            token,
        } => {
            args.insert("info_hash", info_hash.to_vec());
            args.insert("port", i64::from(*port));
            args.insert("token", token.as_bytes().to_vec());
            if *implied_port {
                args.insert("implied_port", 1);
            }
        }
    }
    args
}

fn response_dict(response: &Response) -> OwnedDict {
    let mut r = OwnedDict::new().with("id", response.sender.0.to_vec());
    if !response.nodes.is_empty() {
        r.insert("nodes", compact_nodes(&response.nodes));
    }
    if !response.values.is_empty() {
        let values = response
            .values
            .iter()
            .map(|peer| OwnedValue::Bytes(compact_addr(peer).to_vec()))
            .collect();
        r.insert("values", OwnedValue::List(values));
    }
    if let Some(token) = &response.token {
        r.insert("token", token.as_bytes().to_vec());
    }
    r
}

/// Nodes in the compact form of BEP 5: 26 bytes each.
fn compact_nodes(nodes: &[CompactNode]) -> Vec<u8> {
    let mut out = Vec::with_capacity(nodes.len() * COMPACT_NODE_LEN);
    for node in nodes {
        out.extend_from_slice(&node.id.0);
        out.extend_from_slice(&compact_addr(&node.addr));
    }
    out
}

fn compact_addr(addr: &std::net::SocketAddrV4) -> [u8; 6] {
    let mut out = [0u8; 6];
    out[..4].copy_from_slice(&addr.ip().octets());
    out[4..].copy_from_slice(&addr.port().to_be_bytes());
    out
}

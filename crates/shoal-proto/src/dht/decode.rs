//! KRPC decoding: size cap, bencode with tight limits, then the envelope (`t`, `y`) and the body.

use std::net::{Ipv4Addr, SocketAddrV4};

use super::{
    error_code, Body, CompactNode, KrpcError, Message, Method, NodeId, Query, Response, Token,
    TransactionId, COMPACT_NODE_LEN, MAX_ERROR_TEXT_LEN, MAX_MESSAGE_LEN, MAX_NODES, MAX_TOKEN_LEN,
    MAX_VALUES,
};
use crate::bencode::{DecodeError, DecodeLimits, Dict, Value};

/// Bencode limits for one datagram: KRPC nests three levels; extensions get some room.
const LIMITS: DecodeLimits = DecodeLimits {
    max_depth: 16,
    max_items: 2_048,
};

/// Why a datagram is not a KRPC message we accept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KrpcDecodeError {
    #[error("datagram of {len} bytes is over the {max}-byte limit")]
    TooLarge { len: usize, max: usize },
    #[error("not bencode")]
    Bencode(#[from] DecodeError),
    #[error("the message is not a dictionary")]
    NotADictionary,
    #[error("field {field:?} is missing")]
    Missing { field: &'static str },
    #[error("field {field:?} is not a {expected}")]
    WrongType {
        field: &'static str,
        expected: &'static str,
    },
    #[error("field {field:?} is {len} bytes, expected {expected}")]
    WrongLength {
        field: &'static str,
        len: usize,
        expected: &'static str,
    },
    #[error("field {field:?} holds {count} entries, over the limit of {max}")]
    TooMany {
        field: &'static str,
        count: usize,
        max: usize,
    },
    #[error("unknown message type {kind:?}")]
    UnknownType { kind: String },
    #[error("unknown query method {method:?}")]
    UnknownMethod { method: String },
    #[error("port {port} is out of range")]
    BadPort { port: i64 },
    /// The envelope was sound (so the sender can be answered) but the query was not.
    #[error("bad {method:?} query (answer with KRPC error {code})")]
    BadQuery {
        transaction_id: TransactionId,
        method: String,
        code: i64,
        reason: Box<KrpcDecodeError>,
    },
}

impl Message {
    /// Decodes one datagram.
    pub fn decode(datagram: &[u8]) -> Result<Message, KrpcDecodeError> {
        if datagram.len() > MAX_MESSAGE_LEN {
            return Err(KrpcDecodeError::TooLarge {
                len: datagram.len(),
                max: MAX_MESSAGE_LEN,
            });
        }
        let value = LIMITS.decode(datagram)?;
        let dict = value.as_dict().ok_or(KrpcDecodeError::NotADictionary)?;
        let tid_bytes = bytes(dict, "t")?;
        let transaction_id = TransactionId::new(tid_bytes).ok_or(KrpcDecodeError::WrongLength {
            field: "t",
            len: tid_bytes.len(),
            expected: "1 to 16",
        })?;
        let body = match bytes(dict, "y")? {
            b"q" => Body::Query(decode_query(dict, transaction_id)?),
            b"r" => Body::Response(decode_response(sub_dict(dict, "r")?)?),
            b"e" => Body::Error(decode_error(dict)?),
            other => {
                return Err(KrpcDecodeError::UnknownType {
                    kind: capped_text(other),
                })
            }
        };
        Ok(Message {
            transaction_id,
            body,
        })
    }
}

fn decode_query(dict: &Dict<'_>, tid: TransactionId) -> Result<Query, KrpcDecodeError> {
    let method = bytes(dict, "q")?;
    let bad = |code, reason| KrpcDecodeError::BadQuery {
        transaction_id: tid,
        method: capped_text(method),
        code,
        reason: Box::new(reason),
    };
    let args = sub_dict(dict, "a").map_err(|e| bad(error_code::PROTOCOL, e))?;
    let parsed = match method {
        b"ping" => Ok(Method::Ping),
        b"find_node" => id20(args, "target").map(|target| Method::FindNode { target }),
        b"get_peers" => id20(args, "info_hash").map(|info_hash| Method::GetPeers { info_hash }),
        b"announce_peer" => announce(args),
        _ => {
            let unknown = KrpcDecodeError::UnknownMethod {
                method: capped_text(method),
            };
            return Err(bad(error_code::METHOD_UNKNOWN, unknown));
        }
    };
    let method = parsed.map_err(|e| bad(error_code::PROTOCOL, e))?;
    let sender = id20(args, "id").map_err(|e| bad(error_code::PROTOCOL, e))?;
    Ok(Query {
        sender: NodeId(sender),
        read_only: args.get_int(b"ro") == Some(1),
        method,
    })
}

fn announce(args: &Dict<'_>) -> Result<Method, KrpcDecodeError> {
    let info_hash = id20(args, "info_hash")?;
    let implied_port = args.get_int(b"implied_port").is_some_and(|n| n != 0);
    let token_bytes = bytes(args, "token")?;
    let token = Token::new(token_bytes).ok_or(KrpcDecodeError::WrongLength {
        field: "token",
        len: token_bytes.len(),
        expected: "1 to 64",
    })?;
    let port = match (args.get(b"port"), implied_port) {
        (None, true) => 0,
        (None, false) => return Err(KrpcDecodeError::Missing { field: "port" }),
        (Some(value), _) => {
            let n = value.as_int().ok_or(KrpcDecodeError::WrongType {
                field: "port",
                expected: "integer",
            })?;
            match u16::try_from(n) {
                Ok(port) if port != 0 || implied_port => port,
                _ if implied_port => 0,
                _ => return Err(KrpcDecodeError::BadPort { port: n }),
            }
        }
    };
    Ok(Method::AnnouncePeer {
        info_hash,
        port,
        implied_port,
        token,
    })
}

fn decode_response(r: &Dict<'_>) -> Result<Response, KrpcDecodeError> {
    let sender = NodeId(id20(r, "id")?);
    let nodes = match r.get(b"nodes") {
        None => Vec::new(),
        Some(value) => compact_nodes(value)?,
    };
    let values = match r.get(b"values") {
        None => Vec::new(),
        Some(value) => compact_peers(value)?,
    };
    let token = match r.get(b"token") {
        None => None,
        Some(value) => {
            let b = value.as_bytes().ok_or(KrpcDecodeError::WrongType {
                field: "token",
                expected: "byte string",
            })?;
            // An empty or oversized token is useless but does not spoil the response.
            (b.len() <= MAX_TOKEN_LEN).then(|| Token::new(b)).flatten()
        }
    };
    Ok(Response {
        sender,
        nodes,
        values,
        token,
    })
}

fn compact_nodes(value: &Value<'_>) -> Result<Vec<CompactNode>, KrpcDecodeError> {
    let b = value.as_bytes().ok_or(KrpcDecodeError::WrongType {
        field: "nodes",
        expected: "byte string",
    })?;
    if b.len() % COMPACT_NODE_LEN != 0 {
        return Err(KrpcDecodeError::WrongLength {
            field: "nodes",
            len: b.len(),
            expected: "a multiple of 26",
        });
    }
    let count = b.len() / COMPACT_NODE_LEN;
    if count > MAX_NODES {
        return Err(KrpcDecodeError::TooMany {
            field: "nodes",
            count,
            max: MAX_NODES,
        });
    }
    Ok(b.chunks_exact(COMPACT_NODE_LEN)
        .map(|chunk| {
            let mut id = [0u8; 20];
            id.copy_from_slice(&chunk[..20]);
            CompactNode {
                id: NodeId(id),
                addr: compact_addr(&chunk[20..]),
            }
        })
        .collect())
}

fn compact_peers(value: &Value<'_>) -> Result<Vec<SocketAddrV4>, KrpcDecodeError> {
    let list = value.as_list().ok_or(KrpcDecodeError::WrongType {
        field: "values",
        expected: "list",
    })?;
    if list.len() > MAX_VALUES {
        return Err(KrpcDecodeError::TooMany {
            field: "values",
            count: list.len(),
            max: MAX_VALUES,
        });
    }
    let mut peers = Vec::with_capacity(list.len());
    for item in list {
        // IPv6 peers (18 bytes) and junk entries are skipped: this codec is IPv4 only.
        if let Some(b) = item.as_bytes().filter(|b| b.len() == 6) {
            peers.push(compact_addr(b));
        }
    }
    Ok(peers)
}

fn decode_error(dict: &Dict<'_>) -> Result<KrpcError, KrpcDecodeError> {
    let list = dict.get_list(b"e").ok_or(KrpcDecodeError::WrongType {
        field: "e",
        expected: "list",
    })?;
    let code = list
        .first()
        .and_then(Value::as_int)
        .ok_or(KrpcDecodeError::WrongType {
            field: "e",
            expected: "[code, message] list",
        })?;
    let message = list.get(1).and_then(Value::as_bytes).unwrap_or_default();
    Ok(KrpcError {
        code,
        message: capped_text(message),
    })
}

/// `bytes` as lossy UTF-8, cut at a character boundary to at most [`MAX_ERROR_TEXT_LEN`] bytes
/// (idempotent, so a decoded text encodes and decodes to itself).
pub(super) fn capped_text(bytes: &[u8]) -> String {
    let cut = bytes.len().min(MAX_ERROR_TEXT_LEN * 2);
    let mut text = String::from_utf8_lossy(&bytes[..cut]).into_owned();
    if text.len() > MAX_ERROR_TEXT_LEN {
        let mut end = MAX_ERROR_TEXT_LEN;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

fn compact_addr(b: &[u8]) -> SocketAddrV4 {
    let ip = Ipv4Addr::new(b[0], b[1], b[2], b[3]);
    SocketAddrV4::new(ip, u16::from_be_bytes([b[4], b[5]]))
}

fn bytes<'a>(dict: &Dict<'a>, field: &'static str) -> Result<&'a [u8], KrpcDecodeError> {
    let value = dict
        .get(field.as_bytes())
        .ok_or(KrpcDecodeError::Missing { field })?;
    value.as_bytes().ok_or(KrpcDecodeError::WrongType {
        field,
        expected: "byte string",
    })
}

fn sub_dict<'d, 'a>(
    dict: &'d Dict<'a>,
    field: &'static str,
) -> Result<&'d Dict<'a>, KrpcDecodeError> {
    let value = dict
        .get(field.as_bytes())
        .ok_or(KrpcDecodeError::Missing { field })?;
    value.as_dict().ok_or(KrpcDecodeError::WrongType {
        field,
        expected: "dictionary",
    })
}

fn id20(dict: &Dict<'_>, field: &'static str) -> Result<[u8; 20], KrpcDecodeError> {
    let b = bytes(dict, field)?;
    <[u8; 20]>::try_from(b).map_err(|_| KrpcDecodeError::WrongLength {
        field,
        len: b.len(),
        expected: "20",
    })
}

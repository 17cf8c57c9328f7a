//! Decoded bencode values that borrow from the input, each with its exact raw byte span.

use std::fmt;

use super::encode::{OwnedDict, OwnedValue};

/// One decoded value. It borrows from the input and remembers where it came from: [`Value::raw`]
/// is the exact bytes it was decoded from (use it to hash an `info` dictionary), and
/// [`Value::offset`] is where those bytes start in the input.
#[derive(Clone, PartialEq, Eq)]
pub struct Value<'a> {
    kind: ValueKind<'a>,
    raw: &'a [u8],
    offset: usize,
}

/// What a [`Value`] holds.
#[derive(Clone, PartialEq, Eq)]
pub enum ValueKind<'a> {
    Int(i64),
    Bytes(&'a [u8]),
    List(Vec<Value<'a>>),
    Dict(Dict<'a>),
}

/// A decoded dictionary: its entries in input order, keys unique (the decoder rejects duplicates).
#[derive(Clone, PartialEq, Eq)]
pub struct Dict<'a> {
    entries: Vec<(&'a [u8], Value<'a>)>,
    canonical: bool,
}

impl<'a> Value<'a> {
    pub(crate) fn new(kind: ValueKind<'a>, raw: &'a [u8], offset: usize) -> Self {
        Value { kind, raw, offset }
    }

    /// What this value holds.
    pub fn kind(&self) -> &ValueKind<'a> {
        &self.kind
    }

    /// Consumes the value, returning what it holds.
    pub fn into_kind(self) -> ValueKind<'a> {
        self.kind
    }

    /// The exact input bytes this value was decoded from (e.g. `d4:name3:fooe`).
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }

    /// Where [`Value::raw`] starts in the decoded input.
    pub fn offset(&self) -> usize {
        self.offset
    }

    pub fn as_int(&self) -> Option<i64> {
        match self.kind {
            ValueKind::Int(n) => Some(n),
            _ => None,
        }
    }

    pub fn as_bytes(&self) -> Option<&'a [u8]> {
        match self.kind {
            ValueKind::Bytes(b) => Some(b),
            _ => None,
        }
    }

    /// A byte string that is valid UTF-8.
    pub fn as_str(&self) -> Option<&'a str> {
        self.as_bytes().and_then(|b| std::str::from_utf8(b).ok())
    }

    pub fn as_list(&self) -> Option<&[Value<'a>]> {
        match &self.kind {
            ValueKind::List(items) => Some(items),
            _ => None,
        }
    }

    pub fn as_dict(&self) -> Option<&Dict<'a>> {
        match &self.kind {
            ValueKind::Dict(d) => Some(d),
            _ => None,
        }
    }

    /// "integer", "byte string", "list" or "dictionary", for error messages.
    pub fn type_name(&self) -> &'static str {
        match self.kind {
            ValueKind::Int(_) => "integer",
            ValueKind::Bytes(_) => "byte string",
            ValueKind::List(_) => "list",
            ValueKind::Dict(_) => "dictionary",
        }
    }

    /// An owned copy (dictionary keys end up sorted, as the encoder writes them).
    pub fn to_owned_value(&self) -> OwnedValue {
        match &self.kind {
            ValueKind::Int(n) => OwnedValue::Int(*n),
            ValueKind::Bytes(b) => OwnedValue::Bytes(b.to_vec()),
            ValueKind::List(items) => {
                OwnedValue::List(items.iter().map(Value::to_owned_value).collect())
            }
            ValueKind::Dict(d) => {
                let mut out = OwnedDict::new();
                for (k, v) in d.iter() {
                    out.insert(k, v.to_owned_value());
                }
                OwnedValue::Dict(out)
            }
        }
    }
}

impl<'a> Dict<'a> {
    /// `entries` must have unique keys; `canonical` says whether they are in strictly increasing
    /// byte order (the decoder checks both).
    pub(crate) fn new(entries: Vec<(&'a [u8], Value<'a>)>, canonical: bool) -> Self {
        Dict { entries, canonical }
    }

    /// The value under `key`, if any.
    pub fn get(&self, key: &[u8]) -> Option<&Value<'a>> {
        if self.canonical {
            let at = self.entries.binary_search_by(|(k, _)| (*k).cmp(key)).ok()?;
            self.entries.get(at).map(|(_, v)| v)
        } else {
            self.entries.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
        }
    }

    /// The integer under `key`; `None` when missing or of another type.
    pub fn get_int(&self, key: &[u8]) -> Option<i64> {
        self.get(key)?.as_int()
    }

    /// The byte string under `key`; `None` when missing or of another type.
    pub fn get_bytes(&self, key: &[u8]) -> Option<&'a [u8]> {
        self.get(key)?.as_bytes()
    }

    /// The UTF-8 string under `key`; `None` when missing, of another type or not UTF-8.
    pub fn get_str(&self, key: &[u8]) -> Option<&'a str> {
        self.get(key)?.as_str()
    }

    /// The list under `key`; `None` when missing or of another type.
    pub fn get_list(&self, key: &[u8]) -> Option<&[Value<'a>]> {
        self.get(key)?.as_list()
    }

    /// The dictionary under `key`; `None` when missing or of another type.
    pub fn get_dict(&self, key: &[u8]) -> Option<&Dict<'a>> {
        self.get(key)?.as_dict()
    }

    /// Entries in input order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&'a [u8], &Value<'a>)> + '_ {
        self.entries.iter().map(|(k, v)| (*k, v))
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// True when the keys were in strictly increasing byte order in the input, as BEP 3 asks.
    pub fn is_canonical(&self) -> bool {
        self.canonical
    }
}

struct EscapedBytes<'b>(&'b [u8]);

impl fmt::Debug for EscapedBytes<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const SHOWN: usize = 64;
        let shown = &self.0[..self.0.len().min(SHOWN)];
        write!(f, "b\"{}\"", shown.escape_ascii())?;
        if self.0.len() > SHOWN {
            write!(f, "..({} bytes)", self.0.len())?;
        }
        Ok(())
    }
}

impl fmt::Debug for ValueKind<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ValueKind::Int(n) => write!(f, "{n}"),
            ValueKind::Bytes(b) => EscapedBytes(b).fmt(f),
            ValueKind::List(items) => f.debug_list().entries(items).finish(),
            ValueKind::Dict(d) => d.fmt(f),
        }
    }
}

impl fmt::Debug for Value<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.kind.fmt(f)
    }
}

impl fmt::Debug for Dict<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.entries.iter().map(|(k, v)| (EscapedBytes(k), v)))
            .finish()
    }
}

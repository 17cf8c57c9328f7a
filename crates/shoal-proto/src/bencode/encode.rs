//! The canonical encoder: owned values whose dictionaries keep their keys sorted, so the same
//! value always encodes to the same bytes.

use std::collections::BTreeMap;

/// An owned bencode value, built by code that wants to send or write bencode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OwnedValue {
    Int(i64),
    Bytes(Vec<u8>),
    List(Vec<OwnedValue>),
    Dict(OwnedDict),
}

/// An owned dictionary; its keys are always in sorted byte order, as BEP 3 requires.
///
/// ```
/// use shoal_proto::bencode::{OwnedDict, OwnedValue};
/// let m = OwnedDict::new().with("ut_metadata", 3).with("ut_pex", 1);
/// let hs = OwnedDict::new().with("m", m).with("p", 6881).with_opt("v", Some("shoal"));
/// assert_eq!(OwnedValue::from(hs).encode(), b"d1:md11:ut_metadatai3e6:ut_pexi1ee1:pi6881e1:v5:shoale");
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OwnedDict(BTreeMap<Vec<u8>, OwnedValue>);

impl OwnedDict {
    pub fn new() -> Self {
        OwnedDict(BTreeMap::new())
    }

    /// Adds (or replaces) `key`.
    pub fn insert(&mut self, key: impl Into<Vec<u8>>, value: impl Into<OwnedValue>) -> &mut Self {
        self.0.insert(key.into(), value.into());
        self
    }

    /// Builder form of [`OwnedDict::insert`].
    #[must_use]
    pub fn with(mut self, key: impl Into<Vec<u8>>, value: impl Into<OwnedValue>) -> Self {
        self.insert(key, value);
        self
    }

    /// Adds `key` only when `value` is `Some`.
    #[must_use]
    pub fn with_opt(self, key: impl Into<Vec<u8>>, value: Option<impl Into<OwnedValue>>) -> Self {
        match value {
            Some(value) => self.with(key, value),
            None => self,
        }
    }

    pub fn get(&self, key: &[u8]) -> Option<&OwnedValue> {
        self.0.get(key)
    }

    pub fn remove(&mut self, key: &[u8]) -> Option<OwnedValue> {
        self.0.remove(key)
    }

    /// Entries in sorted key order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&[u8], &OwnedValue)> + '_ {
        self.0.iter().map(|(k, v)| (k.as_slice(), v))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Canonical bytes of this dictionary.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        self.encode_into(&mut out);
        out
    }

    pub fn encode_into(&self, out: &mut Vec<u8>) {
        out.push(b'd');
        for (key, value) in &self.0 {
            encode_bytes(out, key);
            value.encode_into(out);
        }
        out.push(b'e');
    }

    pub fn encoded_len(&self) -> usize {
        2 + self
            .0
            .iter()
            .map(|(k, v)| bytes_encoded_len(k) + v.encoded_len())
            .sum::<usize>()
    }
}

impl OwnedValue {
    /// Canonical bytes of this value.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        self.encode_into(&mut out);
        out
    }

    /// Appends the canonical bytes of this value to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        match self {
            OwnedValue::Int(n) => encode_int(out, *n),
            OwnedValue::Bytes(b) => encode_bytes(out, b),
            OwnedValue::List(items) => {
                out.push(b'l');
                for item in items {
                    item.encode_into(out);
                }
                out.push(b'e');
            }
            OwnedValue::Dict(d) => d.encode_into(out),
        }
    }

    /// Exactly `self.encode().len()`, computed without encoding.
    pub fn encoded_len(&self) -> usize {
        match self {
            OwnedValue::Int(n) => int_encoded_len(*n),
            OwnedValue::Bytes(b) => bytes_encoded_len(b),
            OwnedValue::List(items) => 2 + items.iter().map(OwnedValue::encoded_len).sum::<usize>(),
            OwnedValue::Dict(d) => d.encoded_len(),
        }
    }

    pub fn as_dict(&self) -> Option<&OwnedDict> {
        match self {
            OwnedValue::Dict(d) => Some(d),
            _ => None,
        }
    }
}

/// Appends `i<n>e`.
pub fn encode_int(out: &mut Vec<u8>, n: i64) {
    out.push(b'i');
    push_decimal(out, n);
    out.push(b'e');
}

/// Appends `<len>:<bytes>`.
pub fn encode_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    push_decimal(out, bytes.len() as i64);
    out.push(b':');
    out.extend_from_slice(bytes);
}

fn push_decimal(out: &mut Vec<u8>, n: i64) {
    if n < 0 {
        out.push(b'-');
    }
    let mut magnitude = n.unsigned_abs();
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (magnitude % 10) as u8;
        magnitude /= 10;
        if magnitude == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

fn decimal_len(n: u64) -> usize {
    n.checked_ilog10().map_or(1, |log| log as usize + 1)
}

fn int_encoded_len(n: i64) -> usize {
    2 + usize::from(n < 0) + decimal_len(n.unsigned_abs())
}

fn bytes_encoded_len(bytes: &[u8]) -> usize {
    decimal_len(bytes.len() as u64) + 1 + bytes.len()
}

impl From<i64> for OwnedValue {
    fn from(n: i64) -> Self {
        OwnedValue::Int(n)
    }
}

macro_rules! from_small_int {
    ($($t:ty),*) => {$(
        impl From<$t> for OwnedValue {
            fn from(n: $t) -> Self {
                OwnedValue::Int(i64::from(n))
            }
        }
    )*};
}
from_small_int!(i32, u32, u16, u8);

impl From<&str> for OwnedValue {
    fn from(s: &str) -> Self {
        OwnedValue::Bytes(s.as_bytes().to_vec())
    }
}

impl From<String> for OwnedValue {
    fn from(s: String) -> Self {
        OwnedValue::Bytes(s.into_bytes())
    }
}

impl From<&[u8]> for OwnedValue {
    fn from(b: &[u8]) -> Self {
        OwnedValue::Bytes(b.to_vec())
    }
}

impl<const N: usize> From<&[u8; N]> for OwnedValue {
    fn from(b: &[u8; N]) -> Self {
        OwnedValue::Bytes(b.to_vec())
    }
}

impl From<Vec<u8>> for OwnedValue {
    fn from(b: Vec<u8>) -> Self {
        OwnedValue::Bytes(b)
    }
}

impl From<Vec<OwnedValue>> for OwnedValue {
    fn from(items: Vec<OwnedValue>) -> Self {
        OwnedValue::List(items)
    }
}

impl From<OwnedDict> for OwnedValue {
    fn from(d: OwnedDict) -> Self {
        OwnedValue::Dict(d)
    }
}

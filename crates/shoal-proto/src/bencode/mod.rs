//! Bencode (BEP 3): a zero-copy decoder and a canonical encoder.
//!
//! Decoding borrows from the input: a [`Value`] holds integers, byte-string slices, lists and
//! dictionaries, and each value knows the exact raw bytes it came from ([`Value::raw`]), so a
//! torrent's infohash is the SHA-1 of the `info` dictionary *as written*, never a re-encoding.
//!
//! Guarantees on untrusted input: no panic, no stack overflow (nesting is capped by
//! [`DecodeLimits::max_depth`], at most [`HARD_MAX_DEPTH`]), bounded work and memory (the count of
//! values is capped by [`DecodeLimits::max_items`], and a byte string's declared length is checked
//! against the remaining input before it is used). Errors carry the byte offset of the problem.
//!
//! Strictness, decided once:
//! - integers: `i-0e`, leading zeros (`i01e`, and `01:a` for lengths), empty `ie`, and values
//!   outside `i64` are rejected;
//! - dictionaries: keys must be byte strings and unique (a duplicate key is an error); keys out
//!   of sorted order are *accepted*, since real torrents have them ([`Dict::is_canonical`] tells);
//! - [`decode`] rejects bytes after the top-level value; [`decode_prefix`] returns how many bytes
//!   the value used and leaves the rest (BEP 9 data messages append raw bytes after a dictionary).
//!
//! Encoding goes through owned values ([`OwnedValue`], [`OwnedDict`]) whose dictionaries are
//! always sorted, so the same value always gives the same bytes; `encoded_len` is exact.

mod decode;
mod encode;
mod value;

#[doc(hidden)]
pub mod fuzzing;

#[cfg(test)]
mod tests;

pub use decode::{
    decode, decode_prefix, DecodeError, DecodeLimits, DEFAULT_MAX_DEPTH, DEFAULT_MAX_ITEMS,
    HARD_MAX_DEPTH,
};
pub use encode::{encode_bytes, encode_int, OwnedDict, OwnedValue};
pub use value::{Dict, Value, ValueKind};

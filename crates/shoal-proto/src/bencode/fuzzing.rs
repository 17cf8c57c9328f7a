//! Fuzz entry point shared by `fuzz/fuzz_targets/bencode.rs` and a stable smoke test.

use super::{decode, decode_prefix};

/// Decodes `data`; on success checks that the value spans the whole input and that its canonical
/// re-encoding decodes to the same value with an exact `encoded_len`. Panics (for the fuzzer) if
/// an invariant is broken.
pub fn run(data: &[u8]) {
    if let Ok(value) = decode(data) {
        assert_eq!(value.raw(), data);
        let owned = value.to_owned_value();
        let canonical = owned.encode();
        assert_eq!(canonical.len(), owned.encoded_len());
        let again = decode(&canonical).map(|v| v.to_owned_value());
        assert_eq!(again.as_ref(), Ok(&owned));
    }
    if let Ok((value, used)) = decode_prefix(data) {
        assert_eq!(value.raw(), &data[..used]);
    }
}

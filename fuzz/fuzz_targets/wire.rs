//! Peer wire decoders (handshake, frames, BEP 9/10/11 payloads, compact peers): never panic;
//! whole and byte-by-byte frame decoding agree; what decodes re-encodes to the same value.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    shoal_proto::wire::fuzzing::run(data);
});

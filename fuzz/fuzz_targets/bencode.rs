//! Bencode decoder: never panics; decoded values span their input and re-encode canonically.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    shoal_proto::bencode::fuzzing::run(data);
});

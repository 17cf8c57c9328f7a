//! Magnet link parser: never panics; whatever parses formats back to an equal link.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    shoal_proto::magnet::fuzzing::run(data);
});

//! Tracker replies and packets (HTTP bencode, UDP BEP 15, URLs): never panic; UDP packets that
//! decode encode back to the same value.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    shoal_proto::tracker::fuzzing::run(data);
});

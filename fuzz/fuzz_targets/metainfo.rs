//! Metainfo parser: never panics; parsed torrents have safe, unique, contiguous files.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    shoal_proto::metainfo::fuzzing::run(data);
});

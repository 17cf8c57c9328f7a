//! KRPC datagrams (the DHT's messages): decoding never panics; a message that decodes encodes
//! back to bytes that decode to the same message.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    shoal_proto::dht::fuzzing::run(data);
});

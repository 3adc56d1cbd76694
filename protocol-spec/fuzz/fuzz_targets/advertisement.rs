#![no_main]
//! `Advertisement::from_bytes`: accepts exactly 20 bytes and round-trips them.
use libfuzzer_sys::fuzz_target;
use traceless_protocol::Advertisement;

fuzz_target!(|data: &[u8]| {
    match Advertisement::from_bytes(data) {
        Some(ad) => assert_eq!(ad.to_bytes().as_slice(), data),
        None => assert_ne!(data.len(), 20),
    }
});

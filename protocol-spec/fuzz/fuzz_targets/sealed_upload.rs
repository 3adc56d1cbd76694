#![no_main]
//! `GatewaySealKey::open`: arbitrary bytes never open (nor panic).
use libfuzzer_sys::fuzz_target;
use traceless_protocol::GatewaySealKey;

fuzz_target!(|data: &[u8]| {
    let key = GatewaySealKey::from_secret(&[7; 32]).expect("valid secret");
    assert!(key.open(data).is_err());
});

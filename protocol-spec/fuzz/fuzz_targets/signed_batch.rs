#![no_main]
//! `SignedBatch::decode` then `verify` against a one-entry trust list.
use libfuzzer_sys::fuzz_target;
use traceless_protocol::{SignedBatch, TrustList};

fuzz_target!(|data: &[u8]| {
    let mut trust = TrustList::new();
    let key = ed25519_dalek::SigningKey::from_bytes(&[1; 32]).verifying_key();
    trust.insert("fuzz", 1, key);
    if let Ok(batch) = SignedBatch::decode(data) {
        let _ = batch.verify(&trust, 1_750_000_000);
    }
});

#![no_main]
//! `SignedRiskConfig::decode` then `verify` against a one-entry trust list.
use libfuzzer_sys::fuzz_target;
use traceless_protocol::{RiskParameters, SignedRiskConfig, TrustList};

fuzz_target!(|data: &[u8]| {
    let mut trust = TrustList::new();
    let key = ed25519_dalek::SigningKey::from_bytes(&[1; 32]).verifying_key();
    trust.insert("fuzz", 1, key);
    if let Ok(config) = SignedRiskConfig::decode(data) {
        let _ = config.verify(&trust, 1_750_000_000, &RiskParameters::default());
    }
});

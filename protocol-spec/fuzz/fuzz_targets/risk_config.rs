#![no_main]
//! `SignedRiskConfig::decode` then `verify` against a one-entry trust list.
use libfuzzer_sys::fuzz_target;
use traceless_protocol::{RiskParameters, SignedRiskConfig};

mod fixture;

fuzz_target!(|data: &[u8]| {
    let trust = &*fixture::TRUST;
    if let Ok(config) = SignedRiskConfig::decode(data) {
        let _ = config.verify(trust, 1_750_000_000, &RiskParameters::default());
    }
});

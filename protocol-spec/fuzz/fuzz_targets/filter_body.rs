#![no_main]
//! `DayFilter::decode_body` (every size and parameter check, then the bloom
//! filter itself) and, on success, probes of the decoded filter; then
//! `SignedFilter::decode` + `verify` against a one-entry trust list; then
//! `FilterParts::decode` (the HTTP body of several parts) and each part's
//! `SignedFilter::decode`.
use libfuzzer_sys::fuzz_target;
use traceless_protocol::filter::FilterEntry;
use traceless_protocol::{DayFilter, FilterParts, SignedFilter};

mod fixture;

fuzz_target!(|data: &[u8]| {
    if let Ok(f) = DayFilter::decode_body(data, 1_750_000_000) {
        let _ = f.filter.contains(&FilterEntry([0; 16]));
        let _ = f.filter.contains(&FilterEntry([0xff; 16]));
    }
    let trust = &*fixture::TRUST;
    if let Ok(signed) = SignedFilter::decode(data) {
        let _ = signed.verify(trust, 1_750_000_000);
    }
    if let Ok(parts) = FilterParts::decode(data) {
        for part in parts.parts {
            if let Ok(signed) = SignedFilter::decode(&part) {
                let _ = signed.verify(trust, 1_750_000_000);
            }
        }
    }
});

#![no_main]
//! `SignedDeletionRecord::decode` then `verify`.
use libfuzzer_sys::fuzz_target;
use traceless_protocol::wire::SignedDeletionRecord;

fuzz_target!(|data: &[u8]| {
    if let Ok(record) = SignedDeletionRecord::decode(data) {
        let _ = record.verify();
    }
});

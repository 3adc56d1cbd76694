#![no_main]
//! `SignedBatch::decode` then `verify` against a one-entry trust list, for the
//! input itself and for each element if it decodes as a `BatchList`.
use libfuzzer_sys::fuzz_target;
use traceless_protocol::{BatchList, SignedBatch};

mod fixture;

fuzz_target!(|data: &[u8]| {
    let trust = &*fixture::TRUST;
    let listed = BatchList::decode(data).map_or(Vec::new(), |l| l.batches);
    for bytes in std::iter::once(data).chain(listed.iter().map(Vec::as_slice)) {
        if let Ok(batch) = SignedBatch::decode(bytes) {
            let _ = batch.verify(trust, 1_750_000_000);
        }
    }
});

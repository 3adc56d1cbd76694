#![no_main]
//! `SignedPeriodBatch::decode` then `verify_with_attachments` against a
//! one-entry trust list; a batch that decodes is also pruned and stripped of
//! its export signatures, and both must decode again to the same identifier.
use libfuzzer_sys::fuzz_target;
use traceless_protocol::SignedPeriodBatch;

mod fixture;

const NOW: u64 = 1_750_000_000;

fuzz_target!(|data: &[u8]| {
    let Ok(batch) = SignedPeriodBatch::decode(data) else {
        return;
    };
    let _ = batch.verify_with_attachments(&fixture::TRUST, NOW);
    let stripped = batch.without_export_signatures();
    let again = SignedPeriodBatch::decode(&stripped.encode()).expect("re-encodes canonically");
    assert_eq!(again.id(), batch.id());
    if let Ok(Some(pruned)) = batch.pruned_at(NOW) {
        let again = SignedPeriodBatch::decode(&pruned.encode()).expect("re-encodes canonically");
        assert_eq!(again.id(), batch.id());
    }
});

#![no_main]
//! The venue decoders of untrusted bytes: warning batches (phones, nodes),
//! pre-traces (the authority's gateway), trace secrets (the owner's tool),
//! opened stay reports (the gateway, SPEC.md §12.11).
use libfuzzer_sys::fuzz_target;
use traceless_protocol::venue::{PreTrace, SignedWarningBatch, StayReport, TraceSecret};
use traceless_protocol::TrustList;

fuzz_target!(|data: &[u8]| {
    if let Ok(batch) = SignedWarningBatch::decode(data) {
        assert_eq!(batch.encode(), data);
        let _ = batch.verify(&TrustList::new());
    }
    if let Ok(pre) = PreTrace::decode(data) {
        assert_eq!(PreTrace::decode(&pre.encode()), Ok(pre));
    }
    let _ = TraceSecret::decode(data);
    if let Ok(report) = StayReport::decode(data) {
        assert_eq!(report.encode(), data);
    }
});

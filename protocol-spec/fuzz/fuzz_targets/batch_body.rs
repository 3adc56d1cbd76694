#![no_main]
//! `Batch::decode_body`: every accepted body must re-encode to the same bytes.
use libfuzzer_sys::fuzz_target;
use traceless_protocol::Batch;

fuzz_target!(|data: &[u8]| {
    if let Ok(batch) = Batch::decode_body(data, 1_750_000_000) {
        assert_eq!(batch.encode_body(), data);
    }
});

#![no_main]
//! `Upload::decode`: every accepted request re-encodes to the fixed length.
use libfuzzer_sys::fuzz_target;
use traceless_protocol::wire::UPLOAD_REQUEST_LEN;
use traceless_protocol::Upload;

fuzz_target!(|data: &[u8]| {
    if let Ok(upload) = Upload::decode(data, 1_750_000_000) {
        assert_eq!(upload.encode_padded().map(|b| b.len()), Ok(UPLOAD_REQUEST_LEN));
    }
});

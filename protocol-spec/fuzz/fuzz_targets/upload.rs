#![no_main]
//! `Upload::decode` on inputs shaped to the fixed 1024 bytes (see `shape`):
//! every accepted request re-encodes to the fixed length and decodes again to
//! the same request.
use libfuzzer_sys::fuzz_target;
use traceless_protocol::wire::UPLOAD_REQUEST_LEN;
use traceless_protocol::Upload;

mod shape;

/// The clock the published upload vector was made at (vectors/traceless-v1.json).
const NOW: u64 = 1_750_000_000;

fuzz_target!(|data: &[u8]| {
    let request = shape::upload_request(data);
    if let Ok(upload) = Upload::decode(&request, NOW) {
        let again = upload.encode_padded().expect("an accepted upload re-encodes");
        assert_eq!(again.len(), UPLOAD_REQUEST_LEN);
        assert_eq!(Upload::decode(&again, NOW), Ok(upload));
    }
});

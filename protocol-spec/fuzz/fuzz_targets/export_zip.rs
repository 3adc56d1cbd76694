#![no_main]
//! `ExportFile::from_zip` on arbitrary bytes.
use libfuzzer_sys::fuzz_target;
use traceless_protocol::ExportFile;

fuzz_target!(|data: &[u8]| {
    let key = p256::ecdsa::SigningKey::from_slice(&[1; 32]).expect("valid scalar");
    let _ = ExportFile::from_zip(data, key.verifying_key(), 1_750_000_000);
});

#![no_main]
//! `ExportFile::from_zip` on arbitrary bytes.
use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use traceless_protocol::ExportFile;

/// Built once: deriving the verifying key (a P-256 multiplication) per execution
/// cost more than parsing most inputs.
static KEY: LazyLock<p256::ecdsa::VerifyingKey> = LazyLock::new(|| {
    *p256::ecdsa::SigningKey::from_slice(&[1; 32])
        .expect("valid scalar")
        .verifying_key()
});

fuzz_target!(|data: &[u8]| {
    let _ = ExportFile::from_zip(data, &KEY, 1_750_000_000);
});

#![no_main]
//! `log::verify_checkpoint` and the proof verifiers on arbitrary input.
use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use traceless_protocol::ed25519_dalek::SigningKey;
use traceless_protocol::log::{verify_checkpoint, verify_consistency, verify_inclusion, NoteKey};

/// Built once: deriving the public key per execution cost a scalar multiplication.
static LOG: LazyLock<NoteKey> =
    LazyLock::new(|| NoteKey::of_node(SigningKey::from_bytes(&[1; 32]).verifying_key()));

fuzz_target!(|data: &[u8]| {
    let log = &*LOG;
    let _ = verify_checkpoint(data, log, std::slice::from_ref(log));
    if data.len() >= 16 {
        let a = u64::from_le_bytes(data[..8].try_into().unwrap_or_default());
        let b = u64::from_le_bytes(data[8..16].try_into().unwrap_or_default());
        let proof: Vec<[u8; 32]> = data[16..]
            .chunks_exact(32)
            .map(|c| c.try_into().unwrap_or_default())
            .collect();
        let _ = verify_inclusion(&[0; 32], a, b, &proof, &[0; 32]);
        let _ = verify_consistency(a, b, &proof, &[0; 32], &[0; 32]);
    }
});

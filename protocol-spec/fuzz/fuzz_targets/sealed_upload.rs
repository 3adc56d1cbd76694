#![no_main]
//! `GatewaySealKey::open` and the upload inside, as a gateway takes a relayed
//! upload. The first byte picks the mode:
//! - even: the rest is a fuzzer-chosen upload request (shaped to 1024 bytes),
//!   sealed to the gateway's key; it must open to exactly that request, which
//!   then decodes as if it had been posted directly; the next two bytes, if
//!   nonzero, flip one byte of the sealed message, which must then never open;
//! - odd: the rest, cut or zero-extended to the sealed length with the version
//!   byte kept, never opens (arbitrary encapsulated keys and ciphertexts).
use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use traceless_protocol::sealed::{seal_upload, SEALED_UPLOAD_LEN};
use traceless_protocol::{GatewaySealKey, Upload};

mod shape;

const NOW: u64 = 1_750_000_000;

/// Built once: deriving the public key per execution cost an X25519 multiplication.
static KEY: LazyLock<GatewaySealKey> =
    LazyLock::new(|| GatewaySealKey::from_secret(&[7; 32]).expect("valid secret"));

fuzz_target!(|data: &[u8]| {
    let key = &*KEY;
    let (mode, rest) = data.split_first().unwrap_or((&0, &[]));
    if mode & 1 == 1 {
        let mut sealed = rest.to_vec();
        sealed.resize(SEALED_UPLOAD_LEN, 0);
        assert!(key.open(&sealed).is_err());
        return;
    }
    let (flip, rest) = match rest {
        [a, b, tail @ ..] => (usize::from(u16::from_le_bytes([*a, *b])), tail),
        _ => (0, rest),
    };
    let request = shape::upload_request(rest);
    let mut sealed = seal_upload(&key.public_bytes(), &request).expect("seals 1024 bytes");
    if flip == 0 {
        let opened = key.open(&sealed).expect("an untouched seal opens");
        assert_eq!(opened, request);
        assert_eq!(Upload::decode(&opened, NOW), Upload::decode(&request, NOW));
    } else {
        sealed[flip % SEALED_UPLOAD_LEN] ^= 0x01;
        assert!(key.open(&sealed).is_err(), "a tampered seal opened");
    }
});

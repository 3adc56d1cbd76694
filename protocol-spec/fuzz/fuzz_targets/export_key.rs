#![no_main]
//! `SignedExportKey::decode` then `verify` (SPEC.md §6.2) against a one-entry
//! trust list. Random bytes never carry a valid Ed25519 signature, so most
//! inputs are shaped past it: a first byte of 0x40 or more (three inputs in
//! four) means the rest is an `ExportKeyBody`, which the target signs with the
//! trusted key and wraps in the envelope, so mutations reach the body checks,
//! the signature check passing and the validity check. Below 0x40 the rest is
//! the envelope itself (its size, shape and canonical-encoding checks).
//!
//! Checked: a decoded envelope re-encodes to the input; an accepted
//! certificate is the trusted origin's, valid now, re-encodes to the signed
//! body and re-signs to the same envelope; one flipped signature bit
//! (position from the input) is always a bad signature.
use std::sync::LazyLock;

use ed25519_dalek::Signer;
use libfuzzer_sys::fuzz_target;
use traceless_protocol::{AuthorityKey, SignedExportKey, TrustList, WireError, EXPORT_KEY_CONTEXT};

/// The published batch vector's authority and clock (vectors/traceless-v1.json,
/// `batch`), which the seeds' certificates are signed by and valid at.
const NOW: u64 = 1_750_000_000;
const ORIGIN: &str = "example.health";

fn authority() -> AuthorityKey {
    AuthorityKey {
        origin: ORIGIN.into(),
        key_id: 7,
        signing_key: ed25519_dalek::SigningKey::from_bytes(&[0x42; 32]),
    }
}

/// `body` in an envelope signed as SPEC.md §6.2 says:
/// Ed25519 over `"traceless/v1/export-key" || 0x00 || body`.
fn signed(key: &AuthorityKey, body: &[u8]) -> SignedExportKey {
    let message = [EXPORT_KEY_CONTEXT, &[0], body].concat();
    SignedExportKey {
        body: body.to_vec(),
        key_id: key.key_id,
        signature: key.signing_key.sign(&message).to_bytes(),
    }
}

/// Built once: deriving the key pair per execution cost a scalar multiplication.
static FIXTURE: LazyLock<(AuthorityKey, TrustList)> = LazyLock::new(|| {
    let key = authority();
    let mut trust = TrustList::new();
    trust.insert(ORIGIN, key.key_id, key.signing_key.verifying_key());
    (key, trust)
});

fuzz_target!(|data: &[u8]| {
    let (key, trust) = &*FIXTURE;
    let (mode, rest) = data.split_first().unwrap_or((&0, &[]));
    let envelope = if *mode < 0x40 {
        rest.to_vec()
    } else {
        signed(key, rest).encode()
    };
    let Ok(decoded) = SignedExportKey::decode(&envelope) else {
        return;
    };
    assert_eq!(decoded.encode(), envelope, "a decoded envelope re-encodes");
    if let Ok(cert) = decoded.verify(trust, NOW) {
        assert_eq!(cert.origin, ORIGIN);
        assert!(cert.not_before <= NOW && NOW < cert.not_after);
        assert_eq!(cert.encode_body(), decoded.body, "the body is canonical");
        let again = cert.sign(key).expect("the trusted origin's certificate");
        assert_eq!(again, decoded, "Ed25519 is deterministic");
        let mut forged = decoded.clone();
        let bit = usize::from(*mode) % (forged.signature.len() * 8);
        forged.signature[bit / 8] ^= 1 << (bit % 8);
        assert!(matches!(
            forged.verify(trust, NOW),
            Err(WireError::BadSignature("export key certificate"))
        ));
    }
});

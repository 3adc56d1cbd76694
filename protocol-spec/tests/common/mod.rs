//! Helpers shared by the published-vector tests.
#![allow(dead_code)]

use rand_core::{CryptoRng, RngCore};

/// An RNG that hands out exactly the bytes it was built with, in order.
pub struct FixedRng {
    bytes: Vec<u8>,
    pos: usize,
}

impl FixedRng {
    /// An RNG that yields `bytes` and nothing more.
    pub fn new(bytes: Vec<u8>) -> Self {
        Self { bytes, pos: 0 }
    }

    /// The bytes that make `Scalar::random` return the scalar with these canonical
    /// 32 little-endian bytes: the scalar, then 32 zero bytes (the high half of the
    /// 512-bit integer that is reduced mod l).
    pub fn for_scalar(scalar: &[u8]) -> Self {
        assert_eq!(scalar.len(), 32, "ristretto255 scalars are 32 bytes");
        let mut bytes = scalar.to_vec();
        bytes.extend_from_slice(&[0u8; 32]);
        Self::new(bytes)
    }

    /// Panics unless every byte was drawn.
    pub fn assert_used_up(&self) {
        assert_eq!(
            self.pos,
            self.bytes.len(),
            "not all fixed RNG bytes were drawn"
        );
    }
}

impl RngCore for FixedRng {
    fn next_u32(&mut self) -> u32 {
        rand_core::impls::next_u32_via_fill(self)
    }
    fn next_u64(&mut self) -> u64 {
        rand_core::impls::next_u64_via_fill(self)
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        let end = self.pos + dest.len();
        assert!(end <= self.bytes.len(), "fixed RNG exhausted");
        dest.copy_from_slice(&self.bytes[self.pos..end]);
        self.pos = end;
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

impl CryptoRng for FixedRng {}

/// `key`'s certificate of the export key of secret `[5; 32]`, signer "262"
/// "v1", region "XX", valid for `not_before..not_after`, with that key.
pub fn export_certificate(
    key: &traceless_protocol::AuthorityKey,
    not_before: u64,
    not_after: u64,
) -> (traceless_protocol::SignedExportKey, p256::ecdsa::SigningKey) {
    let export_key = p256::ecdsa::SigningKey::from_slice(&[5; 32]).expect("fixed key");
    let certificate = traceless_protocol::ExportKeyCertificate {
        origin: key.origin.clone(),
        signer: traceless_protocol::ExportSigner {
            key_id: "262".into(),
            key_version: "v1".into(),
        },
        region: "XX".into(),
        public_key: *export_key.verifying_key(),
        not_before,
        not_after,
    }
    .sign(key)
    .expect("the authority's own origin");
    (certificate, export_key)
}

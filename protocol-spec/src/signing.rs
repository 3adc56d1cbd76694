//! Ed25519 signatures with domain separation, and the trust list of authorities.
//!
//! Every signature covers `context || 0x00 || body`, where `context` names the
//! message type, so a signature over one kind of message can never be replayed as
//! another (SPEC.md §5.2).

use std::collections::HashMap;

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use rand_core::OsRng;

use crate::error::WireError;

/// Signing context of batches.
pub const BATCH_CONTEXT: &[u8] = b"traceless/v1/batch";
/// Context of period batch headers (SPEC.md §5.9).
pub const BATCH_V2_CONTEXT: &[u8] = b"traceless/v2/batch";
/// Signing context of deletion-log entries.
pub const DELETION_CONTEXT: &[u8] = b"traceless/v1/deletion";
/// Signing context of day filters.
pub const FILTER_CONTEXT: &[u8] = b"traceless/v2/filter";
/// Signing context of risk configurations.
pub const RISK_CONFIG_CONTEXT: &[u8] = b"traceless/v1/risk-config";
/// Signing context of export key certificates.
pub const EXPORT_KEY_CONTEXT: &[u8] = b"traceless/v1/export-key";
/// Length of an Ed25519 signature.
pub const SIGNATURE_LEN: usize = 64;

fn signed_message(context: &[u8], body: &[u8]) -> Vec<u8> {
    let mut msg = Vec::with_capacity(context.len() + 1 + body.len());
    msg.extend_from_slice(context);
    msg.push(0);
    msg.extend_from_slice(body);
    msg
}

/// Signs `body` under `context`.
pub fn sign(key: &SigningKey, context: &[u8], body: &[u8]) -> [u8; SIGNATURE_LEN] {
    key.sign(&signed_message(context, body)).to_bytes()
}

/// Verifies a signature made by [`sign`] (strict: rejects malleable signatures and
/// weak public keys). `what` names the message in the error.
pub fn verify(
    key: &VerifyingKey,
    context: &[u8],
    body: &[u8],
    signature: &[u8],
    what: &'static str,
) -> Result<(), WireError> {
    let signature = Signature::from_slice(signature).map_err(|_| WireError::BadSignature(what))?;
    key.verify_strict(&signed_message(context, body), &signature)
        .map_err(|_| WireError::BadSignature(what))
}

/// A health authority's batch-signing key, held by its gateway.
pub struct AuthorityKey {
    /// The authority id, as in trust lists, e.g. `"de.rki"`.
    pub origin: String,
    /// Which of the authority's keys this is.
    pub key_id: u32,
    /// The secret key.
    pub signing_key: SigningKey,
}

impl AuthorityKey {
    /// Generates a fresh key from the OS CSPRNG.
    pub fn generate(origin: impl Into<String>, key_id: u32) -> Self {
        AuthorityKey {
            origin: origin.into(),
            key_id,
            signing_key: SigningKey::generate(&mut OsRng),
        }
    }

    /// The public half, for trust lists.
    pub fn verifying_key(&self) -> VerifyingKey {
        self.signing_key.verifying_key()
    }
}

/// The authorities whose batches a node or phone accepts: `(origin, key_id)` →
/// public key. A batch is trusted only because its signature verifies under a key
/// in this list, never because of who forwarded it.
#[derive(Clone, Debug, Default)]
pub struct TrustList {
    keys: HashMap<(String, u32), VerifyingKey>,
}

impl TrustList {
    /// An empty list: trusts nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) a trusted key after checking the origin's syntax
    /// ([`crate::validate_origin`]).
    pub fn try_insert(
        &mut self,
        origin: impl Into<String>,
        key_id: u32,
        key: VerifyingKey,
    ) -> Result<(), WireError> {
        let origin = origin.into();
        crate::wire::validate_origin(&origin)?;
        self.keys.insert((origin, key_id), key);
        Ok(())
    }

    /// Adds (or replaces) a trusted key without checking the origin: for origins
    /// already checked by [`crate::validate_origin`]; a key under a malformed
    /// origin can never verify a batch, since decoding rejects the origin first.
    pub fn insert(&mut self, origin: impl Into<String>, key_id: u32, key: VerifyingKey) {
        self.keys.insert((origin.into(), key_id), key);
    }

    /// Removes a key (e.g. after the authority rotated it out).
    pub fn remove(&mut self, origin: &str, key_id: u32) {
        self.keys.remove(&(origin.to_owned(), key_id));
    }

    /// The key for `(origin, key_id)`, or [`WireError::UntrustedSigner`].
    pub fn get(&self, origin: &str, key_id: u32) -> Result<&VerifyingKey, WireError> {
        self.keys
            .get(&(origin.to_owned(), key_id))
            .ok_or_else(|| WireError::UntrustedSigner {
                origin: origin.to_owned(),
                key_id,
            })
    }

    /// All trusted `(origin, key_id, key)` entries, sorted.
    pub fn entries(&self) -> Vec<(&str, u32, &VerifyingKey)> {
        let mut v: Vec<_> = self
            .keys
            .iter()
            .map(|((o, id), k)| (o.as_str(), *id, k))
            .collect();
        v.sort_by_key(|(o, id, _)| (*o, *id));
        v
    }
}

//! Signed warning batches (SPEC.md §12.8): an authority's Ed25519 signature
//! (trust list, context `traceless/v1/venue-warnings`) over the canonical
//! `WarningBatchBody`. The signature says which authority published; the keys
//! themselves prove the owner took part, since only `sk_id` completed with the
//! owner's share opens a record.

use prost::Message;

use super::ibe::{IdentityKey, G1_LEN};
use super::pb;
use super::trace::TraceWarning;
use super::VenueError;
use crate::signing::{sign, verify};
use crate::{AuthorityKey, TrustList, WireError};

/// Signing context of warning batches.
pub const VENUE_WARNINGS_CONTEXT: &[u8] = b"traceless/v1/venue-warnings";
/// Most warnings in one batch.
pub const MAX_WARNINGS: usize = 20_000;
/// Largest signed batch on the wire.
pub const MAX_BATCH_LEN: usize = MAX_WARNINGS * 160 + 1024;
/// Largest body [`WarningBatch::sign`] signs: with the envelope around it
/// (signature, key id, framing: under 128 bytes) the batch stays within
/// [`MAX_BATCH_LEN`], so every node accepts what a gateway signs.
pub const MAX_BODY_LEN: usize = MAX_BATCH_LEN - 128;

/// Splits `warnings`, in order, into runs that each make one batch within the
/// limits: at most [`MAX_WARNINGS`] warnings and a body of at most
/// [`MAX_BODY_LEN`] bytes for any origin (up to 64 characters) and sequence.
/// Warnings vary in size (the sealed details hold the authority's message), so
/// a count alone does not bound the bytes.
pub fn batch_runs(warnings: &[TraceWarning]) -> Vec<&[TraceWarning]> {
    // version, origin (64 characters), sequence and createdAt with their tags.
    const HEADER: usize = 2 + 66 + 11 + 11;
    let mut runs = Vec::new();
    let (mut start, mut len) = (0, HEADER);
    for (i, w) in warnings.iter().enumerate() {
        let n = to_pb(w).encoded_len();
        let framed = 1 + prost::length_delimiter_len(n) + n;
        if i > start && (i - start == MAX_WARNINGS || len + framed > MAX_BODY_LEN) {
            runs.push(&warnings[start..i]);
            (start, len) = (i, HEADER);
        }
        len += framed;
    }
    if start < warnings.len() {
        runs.push(&warnings[start..]);
    }
    runs
}

/// The content of a warning batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WarningBatch {
    /// Authority id, as in the trust list.
    pub origin: String,
    /// Per-origin sequence number.
    pub sequence: u64,
    /// Publication time, unix seconds.
    pub created_at: u64,
    /// The warnings.
    pub warnings: Vec<TraceWarning>,
}

/// A warning batch as it travels: body bytes, key id, signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedWarningBatch {
    /// Canonical `WarningBatchBody`.
    pub body: Vec<u8>,
    /// Which of the origin's keys signed.
    pub key_id: u32,
    /// Ed25519 signature.
    pub signature: Vec<u8>,
}

fn to_pb(w: &TraceWarning) -> pb::TraceWarning {
    pb::TraceWarning {
        identity: w.identity.to_vec(),
        secret_key_for_identity: w.key.to_bytes().to_vec(),
        day: w.day,
        encrypted_associated_data: w.sealed_details.clone(),
        nonce: w.nonce.to_vec(),
    }
}

fn from_pb(w: pb::TraceWarning) -> Result<TraceWarning, VenueError> {
    let len = |what, v: &Vec<u8>, expected| {
        if v.len() == expected {
            Ok(())
        } else {
            Err(VenueError::Length {
                what,
                len: v.len(),
                expected,
            })
        }
    };
    len("identity", &w.identity, 32)?;
    len("secretKeyForIdentity", &w.secret_key_for_identity, G1_LEN)?;
    len("nonce", &w.nonce, 12)?;
    if w.encrypted_associated_data.len() > 1024 {
        return Err(VenueError::PayloadTooLong {
            len: w.encrypted_associated_data.len(),
            max: 1024,
        });
    }
    Ok(TraceWarning {
        identity: w.identity.try_into().expect("checked"),
        key: IdentityKey::from_bytes(&w.secret_key_for_identity)?,
        day: w.day,
        sealed_details: w.encrypted_associated_data,
        nonce: w.nonce.try_into().expect("checked"),
    })
}

impl WarningBatch {
    /// The canonical body.
    pub fn encode_body(&self) -> Vec<u8> {
        pb::WarningBatchBody {
            version: 1,
            origin: self.origin.clone(),
            sequence: self.sequence,
            created_at: self.created_at,
            warnings: self.warnings.iter().map(to_pb).collect(),
        }
        .encode_to_vec()
    }

    /// Signs the batch with the authority's key.
    pub fn sign(&self, key: &AuthorityKey) -> Result<SignedWarningBatch, VenueError> {
        if self.origin != key.origin {
            return Err(VenueError::Signature(WireError::UntrustedSigner {
                origin: self.origin.clone(),
                key_id: key.key_id,
            }));
        }
        if self.warnings.len() > MAX_WARNINGS {
            return Err(VenueError::TooMany {
                len: self.warnings.len(),
                max: MAX_WARNINGS,
            });
        }
        let body = self.encode_body();
        if body.len() > MAX_BODY_LEN {
            return Err(VenueError::PayloadTooLong {
                len: body.len(),
                max: MAX_BODY_LEN,
            });
        }
        let signature = sign(&key.signing_key, VENUE_WARNINGS_CONTEXT, &body).to_vec();
        Ok(SignedWarningBatch {
            body,
            key_id: key.key_id,
            signature,
        })
    }
}

impl SignedWarningBatch {
    /// The wire bytes.
    pub fn encode(&self) -> Vec<u8> {
        pb::SignedWarningBatch {
            body: self.body.clone(),
            key_id: self.key_id,
            signature: self.signature.clone(),
        }
        .encode_to_vec()
    }

    /// Decodes the envelope (canonical, bounded); the body is checked by [`Self::verify`].
    pub fn decode(bytes: &[u8]) -> Result<Self, VenueError> {
        if bytes.len() > MAX_BATCH_LEN {
            return Err(VenueError::PayloadTooLong {
                len: bytes.len(),
                max: MAX_BATCH_LEN,
            });
        }
        let p = pb::SignedWarningBatch::decode(bytes).map_err(|e| VenueError::Malformed {
            what: "SignedWarningBatch",
            reason: e.to_string(),
        })?;
        if p.encode_to_vec() != bytes {
            return Err(VenueError::NonCanonical("SignedWarningBatch"));
        }
        Ok(SignedWarningBatch {
            body: p.body,
            key_id: p.key_id,
            signature: p.signature,
        })
    }

    /// Verifies the signature under the trust list, then decodes the body.
    pub fn verify(&self, trust: &TrustList) -> Result<WarningBatch, VenueError> {
        let origin = body_origin(&self.body)?;
        let key = trust
            .get(&origin, self.key_id)
            .map_err(VenueError::Signature)?;
        verify(
            key,
            VENUE_WARNINGS_CONTEXT,
            &self.body,
            &self.signature,
            "venue warnings",
        )
        .map_err(VenueError::Signature)?;
        WarningBatch::decode_body(&self.body)
    }
}

fn decode_pb_body(bytes: &[u8]) -> Result<pb::WarningBatchBody, VenueError> {
    let body = pb::WarningBatchBody::decode(bytes).map_err(|e| VenueError::Malformed {
        what: "WarningBatchBody",
        reason: e.to_string(),
    })?;
    if body.encode_to_vec() != bytes {
        return Err(VenueError::NonCanonical("WarningBatchBody"));
    }
    if body.version != 1 {
        return Err(VenueError::UnsupportedVersion {
            what: "WarningBatchBody",
            found: body.version,
            supported: 1,
        });
    }
    if body.warnings.len() > MAX_WARNINGS {
        return Err(VenueError::TooMany {
            len: body.warnings.len(),
            max: MAX_WARNINGS,
        });
    }
    Ok(body)
}

fn body_origin(bytes: &[u8]) -> Result<String, VenueError> {
    Ok(decode_pb_body(bytes)?.origin)
}

impl WarningBatch {
    /// Decodes a canonical `WarningBatchBody` without any signature: for bodies
    /// a node wrote itself (a gateway's queue of traced warnings), or after
    /// [`SignedWarningBatch::verify`] checked the signature.
    pub fn decode_body(bytes: &[u8]) -> Result<WarningBatch, VenueError> {
        if bytes.len() > MAX_BATCH_LEN {
            return Err(VenueError::PayloadTooLong {
                len: bytes.len(),
                max: MAX_BATCH_LEN,
            });
        }
        let body = decode_pb_body(bytes)?;
        Ok(WarningBatch {
            origin: body.origin,
            sequence: body.sequence,
            created_at: body.created_at,
            warnings: body
                .warnings
                .into_iter()
                .map(from_pb)
                .collect::<Result<_, _>>()?,
        })
    }
}

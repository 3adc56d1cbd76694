//! A published batch of either version, as one list carries them to phones
//! (SPEC.md §5.3, §5.9): readers accept both before gateways publish version 2.

use prost::Message;
use sha2::{Digest, Sha256};

use super::batch::SignedBatch;
use super::pb;
use super::period_batch::{SignedPeriodBatch, DIGEST_LEN, PERIOD_BATCH_VERSION};
use crate::diagnosis::DiagnosisKey;
use crate::error::WireError;
use crate::signing::TrustList;

/// A signed batch of version 1 (one day) or version 2 (one period).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PublishedBatch {
    /// A version 1 batch (SPEC.md §5.3).
    Day(SignedBatch),
    /// A version 2 period batch (SPEC.md §5.9).
    Period(SignedPeriodBatch),
}

/// What a verified batch of either version publishes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublishedKeys {
    /// Authority id.
    pub origin: String,
    /// Per-origin sequence number.
    pub sequence: u64,
    /// Publication time, unix seconds.
    pub created_at: u64,
    /// When the last of its keys expires.
    pub expires_at: u64,
    /// The keys not expired at verification.
    pub keys: Vec<DiagnosisKey>,
}

impl PublishedBatch {
    /// Decodes either envelope, chosen by the version its signed part starts
    /// with: 2 is a period batch; anything else is decoded as version 1, whose
    /// decoder refuses what it is not.
    pub fn decode(bytes: &[u8]) -> Result<PublishedBatch, WireError> {
        let version = pb::BatchEnvelope::decode(bytes)
            .ok()
            .and_then(|e| pb::Versioned::decode(e.signed.as_slice()).ok())
            .map(|v| v.version);
        Ok(match version {
            Some(PERIOD_BATCH_VERSION) => PublishedBatch::Period(SignedPeriodBatch::decode(bytes)?),
            _ => PublishedBatch::Day(SignedBatch::decode(bytes)?),
        })
    }

    /// The sequence number it claims, unverified (for moving a download
    /// cursor past a batch that fails verification).
    pub fn claimed_sequence(&self) -> Option<u64> {
        match self {
            PublishedBatch::Day(b) => b.claimed_sequence(),
            PublishedBatch::Period(b) => b.claimed_sequence(),
        }
    }

    /// The identifier a node's log names it by: SHA-256 of a version 1
    /// envelope, of a period batch's header (SPEC.md §5.9).
    pub fn id(&self) -> [u8; DIGEST_LEN] {
        match self {
            PublishedBatch::Day(b) => Sha256::digest(b.encode()).into(),
            PublishedBatch::Period(b) => b.id(),
        }
    }

    /// Verifies it as its version says ([`SignedBatch::verify`],
    /// [`SignedPeriodBatch::verify`]).
    pub fn verify(&self, trust: &TrustList, now_unix: u64) -> Result<PublishedKeys, WireError> {
        Ok(match self {
            PublishedBatch::Day(signed) => {
                let b = signed.verify(trust, now_unix)?;
                PublishedKeys {
                    expires_at: b.expires_at(),
                    origin: b.origin,
                    sequence: b.sequence,
                    created_at: b.created_at,
                    keys: b.keys,
                }
            }
            PublishedBatch::Period(signed) => {
                let b = signed.verify(trust, now_unix)?;
                PublishedKeys {
                    expires_at: b.days.iter().map(|d| d.expires_at()).max().unwrap_or(0),
                    keys: b.keys().cloned().collect(),
                    origin: b.origin,
                    sequence: b.sequence,
                    created_at: b.created_at,
                }
            }
        })
    }
}

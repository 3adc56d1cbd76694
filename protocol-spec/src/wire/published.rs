//! A published batch of either version, as one list carries them to phones
//! (SPEC.md §5.3, §5.9): readers accept both before gateways publish version 2.

use prost::Message;
use sha2::{Digest, Sha256};

use super::batch::{der_signature, Batch, SignedBatch};
use super::export_key::SignedExportKey;
use super::pb;
use super::period_batch::{SignedPeriodBatch, DIGEST_LEN, PERIOD_BATCH_VERSION};
use super::risk_config::SignedRiskConfig;
use crate::diagnosis::DiagnosisKey;
use crate::error::WireError;
use crate::signing::{TrustList, SIGNATURE_LEN};

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

/// One day of a batch verified with its attachments: the day as a one-day
/// batch (what its GAEN `export.bin` is built from, SPEC.md §6.2) and the
/// export key's signature over that file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExportDay {
    /// The day's keys, canonically ordered, with the batch's origin, sequence
    /// and `created_at`.
    pub batch: Batch,
    /// ECDSA P-256 signature over the day's `export.bin`, `r ‖ s`.
    pub export_signature: Option<[u8; SIGNATURE_LEN]>,
}

impl ExportDay {
    /// The export signature DER-encoded, as GAEN's `export.sig` carries it.
    pub fn der_signature(&self) -> Option<Vec<u8>> {
        der_signature(&self.export_signature?).ok()
    }
}

/// What a node learns from a batch of either version verified with its
/// attachments ([`PublishedBatch::verify_with_attachments`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedBatch {
    /// Its version: 1 (one day) or 2 (one period).
    pub version: u32,
    /// Its days not expired at verification, ascending (one for version 1).
    pub days: Vec<ExportDay>,
    /// The authority's export key certificate it carries.
    pub export_key: Option<SignedExportKey>,
    /// The authority's risk configuration it carries.
    pub risk_config: Option<SignedRiskConfig>,
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

    /// Its encoding as a node stores and forwards it (version 2 with its export
    /// signatures).
    pub fn encode(&self) -> Vec<u8> {
        match self {
            PublishedBatch::Day(b) => b.encode(),
            PublishedBatch::Period(b) => b.encode(),
        }
    }

    /// Its encoding as phones are served it: version 2 without export
    /// signatures (SPEC.md §5.9), version 1 as it is.
    pub fn served(&self) -> Vec<u8> {
        match self {
            PublishedBatch::Day(b) => b.encode(),
            PublishedBatch::Period(b) => b.without_export_signatures().encode(),
        }
    }

    /// The batch without the days expired at `now_unix` (SPEC.md §8.1), or
    /// `None` when nothing is left: a version 1 batch is one day, kept or
    /// gone whole; a period batch keeps each expired day's digest
    /// ([`SignedPeriodBatch::pruned_at`]). Call on a verified batch.
    pub fn pruned_at(&self, now_unix: u64) -> Result<Option<PublishedBatch>, WireError> {
        Ok(match self {
            PublishedBatch::Day(b) => {
                let batch = Batch::decode_body(&b.body, now_unix)?;
                (now_unix <= batch.expires_at()).then(|| self.clone())
            }
            PublishedBatch::Period(b) => b.pruned_at(now_unix)?.map(PublishedBatch::Period),
        })
    }

    /// Verifies it and its attachments as its version says
    /// ([`SignedBatch::verify_with_attachments`],
    /// [`SignedPeriodBatch::verify_with_attachments`]): what a node checks
    /// before it stores, forwards or serves exports of a batch.
    pub fn verify_with_attachments(
        &self,
        trust: &TrustList,
        now_unix: u64,
    ) -> Result<VerifiedBatch, WireError> {
        Ok(match self {
            PublishedBatch::Day(signed) => {
                let (batch, attachments) = signed.verify_with_attachments(trust, now_unix)?;
                let (export_key, export_signature) = match attachments.export {
                    Some(e) => (
                        Some(e.certificate),
                        Some(
                            e.signature
                                .as_slice()
                                .try_into()
                                .map_err(|_| WireError::BadSignature("export.bin"))?,
                        ),
                    ),
                    None => (None, None),
                };
                VerifiedBatch {
                    version: 1,
                    days: vec![ExportDay {
                        batch,
                        export_signature,
                    }],
                    export_key,
                    risk_config: attachments.risk_config,
                }
            }
            PublishedBatch::Period(signed) => {
                let (batch, attachments) = signed.verify_with_attachments(trust, now_unix)?;
                VerifiedBatch {
                    version: PERIOD_BATCH_VERSION,
                    days: batch
                        .days
                        .iter()
                        .map(|d| ExportDay {
                            batch: d.as_batch(&batch),
                            export_signature: d.export_signature,
                        })
                        .collect(),
                    export_key: attachments.export_key,
                    risk_config: attachments.risk_config,
                }
            }
        })
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

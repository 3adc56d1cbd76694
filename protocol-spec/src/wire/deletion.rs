//! The public deletion log: signed, hash-chained records of what retention removed
//! (SPEC.md §8.2).

use ed25519_dalek::{SigningKey, VerifyingKey};
use prost::Message;
use sha2::{Digest, Sha256};

use super::{check_reencodes, decode_limited, pb, signature_bytes, validate_origin};
use crate::error::WireError;
use crate::signing::{self, DELETION_CONTEXT, SIGNATURE_LEN};

/// Largest encoded deletion record accepted.
pub const MAX_DELETION_RECORD_LEN: usize = 64 << 10;

/// Batches of one origin and day removed in one retention run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeletedRange {
    /// Authority id.
    pub origin: String,
    /// First deleted sequence number.
    pub first_sequence: u64,
    /// Last deleted sequence number (inclusive).
    pub last_sequence: u64,
    /// Number of keys deleted.
    pub key_count: u64,
    /// UTC day of the deleted keys.
    pub day: u32,
}

/// One entry of a node's deletion log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeletionRecord {
    /// Position in the log, from 0 without gaps.
    pub index: u64,
    /// SHA-256 of the previous entry's [`SignedDeletionRecord::encode`]; zeros for entry 0.
    pub previous_hash: [u8; 32],
    /// When the deletion happened, unix seconds.
    pub deleted_at: u64,
    /// Ed25519 public key of the node that deleted.
    pub node_id: [u8; 32],
    /// What was deleted.
    pub deleted: Vec<DeletedRange>,
}

impl DeletionRecord {
    /// `previous_hash` of the first entry.
    pub const GENESIS_HASH: [u8; 32] = [0; 32];

    /// Canonical encoding of the record.
    pub fn encode_body(&self) -> Vec<u8> {
        pb::DeletionRecord {
            index: self.index,
            previous_hash: self.previous_hash.to_vec(),
            deleted_at: self.deleted_at,
            node_id: self.node_id.to_vec(),
            deleted: self
                .deleted
                .iter()
                .map(|d| pb::DeletedRange {
                    origin: d.origin.clone(),
                    first_sequence: d.first_sequence,
                    last_sequence: d.last_sequence,
                    key_count: d.key_count,
                    day: d.day,
                })
                .collect(),
        }
        .encode_to_vec()
    }

    fn decode_body(bytes: &[u8]) -> Result<DeletionRecord, WireError> {
        const WHAT: &str = "deletion record";
        let m: pb::DeletionRecord = decode_limited(WHAT, bytes, MAX_DELETION_RECORD_LEN)?;
        let bytes32 = |field: &'static str, v: &[u8]| -> Result<[u8; 32], WireError> {
            v.try_into()
                .map_err(|_| WireError::invalid(field, format!("is {} bytes, not 32", v.len())))
        };
        let deleted = m
            .deleted
            .into_iter()
            .map(|d| {
                validate_origin(&d.origin)?;
                if d.first_sequence == 0 || d.first_sequence > d.last_sequence {
                    return Err(WireError::invalid(
                        "first_sequence",
                        "must be 1..=last_sequence",
                    ));
                }
                Ok(DeletedRange {
                    origin: d.origin,
                    first_sequence: d.first_sequence,
                    last_sequence: d.last_sequence,
                    key_count: d.key_count,
                    day: d.day,
                })
            })
            .collect::<Result<_, _>>()?;
        let record = DeletionRecord {
            index: m.index,
            previous_hash: bytes32("previous_hash", &m.previous_hash)?,
            deleted_at: m.deleted_at,
            node_id: bytes32("node_id", &m.node_id)?,
            deleted,
        };
        if record.encode_body() != bytes {
            return Err(WireError::NonCanonical(WHAT));
        }
        Ok(record)
    }

    /// Signs the record with the node's key (whose public half must be `node_id`).
    pub fn sign(&self, node_key: &SigningKey) -> Result<SignedDeletionRecord, WireError> {
        if node_key.verifying_key().to_bytes() != self.node_id {
            return Err(WireError::invalid(
                "node_id",
                "differs from the signing key",
            ));
        }
        let body = self.encode_body();
        let signature = signing::sign(node_key, DELETION_CONTEXT, &body);
        Ok(SignedDeletionRecord { body, signature })
    }
}

/// A deletion record with its node signature, as published.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedDeletionRecord {
    /// Canonical encoding of the [`DeletionRecord`].
    pub body: Vec<u8>,
    /// Ed25519 signature over `"traceless/v1/deletion" || 0x00 || body`.
    pub signature: [u8; SIGNATURE_LEN],
}

impl SignedDeletionRecord {
    /// Protobuf encoding.
    pub fn encode(&self) -> Vec<u8> {
        pb::SignedDeletionRecord {
            body: self.body.clone(),
            signature: self.signature.to_vec(),
        }
        .encode_to_vec()
    }

    /// Decodes the envelope; rejects one that is not canonically encoded.
    pub fn decode(bytes: &[u8]) -> Result<SignedDeletionRecord, WireError> {
        let m: pb::SignedDeletionRecord =
            decode_limited("signed deletion record", bytes, MAX_DELETION_RECORD_LEN)?;
        let signature = signature_bytes(&m.signature)?;
        let record = SignedDeletionRecord {
            body: m.body,
            signature,
        };
        check_reencodes("signed deletion record", &record.encode(), bytes)?;
        Ok(record)
    }

    /// The hash the next entry chains to: SHA-256 of [`SignedDeletionRecord::encode`].
    pub fn hash(&self) -> [u8; 32] {
        Sha256::digest(self.encode()).into()
    }

    /// Decodes the body and verifies the signature under the record's own `node_id`.
    pub fn verify(&self) -> Result<DeletionRecord, WireError> {
        let record = DeletionRecord::decode_body(&self.body)?;
        let key = VerifyingKey::from_bytes(&record.node_id)
            .map_err(|_| WireError::invalid("node_id", "is not an Ed25519 public key"))?;
        signing::verify(
            &key,
            DELETION_CONTEXT,
            &self.body,
            &self.signature,
            "deletion record",
        )?;
        Ok(record)
    }
}

/// Verifies a whole log: every signature by `node_id`, indices 0, 1, 2, ... and
/// each entry chaining to the hash of the one before.
pub fn verify_deletion_log(
    entries: &[SignedDeletionRecord],
    node_id: &[u8; 32],
) -> Result<Vec<DeletionRecord>, WireError> {
    let mut previous = DeletionRecord::GENESIS_HASH;
    let mut records = Vec::with_capacity(entries.len());
    for (i, entry) in entries.iter().enumerate() {
        let record = entry.verify()?;
        if &record.node_id != node_id {
            return Err(WireError::invalid(
                "node_id",
                "entry signed by another node",
            ));
        }
        if record.index != i as u64 || record.previous_hash != previous {
            return Err(WireError::BrokenChain {
                index: record.index,
            });
        }
        previous = entry.hash();
        records.push(record);
    }
    Ok(records)
}

//! Publication proofs (SPEC.md §8.3.1): a node shows that its public log holds
//! a batch's publication and, once retention removed the batch, its deletion,
//! both as inclusion proofs against one checkpoint. A phone checks a proof
//! against the batch bytes it was served and the witnesses it trusts, so a node
//! cannot serve it a batch that is not in a witnessed log, and a patient can see
//! where their keys were published and when they were deleted.

use ed25519_dalek::VerifyingKey;
use prost::Message;

use super::checkpoint::{verify_checkpoint, NoteKey, VerifiedCheckpoint, MAX_CHECKPOINT_LEN};
use super::entry::{DeletionKind, Event, PublicationForm, MAX_ENTRY_LEN};
use super::tree::{leaf_hash, verify_inclusion, Hash};
use super::LogError;
use crate::wire::pb;

/// Longest inclusion path: a tree of at most 2^64 leaves.
const MAX_PATH: usize = 64;

/// Largest encoded proof: a checkpoint, two entries with full paths, framing.
pub const MAX_PUBLICATION_PROOF_LEN: usize =
    MAX_CHECKPOINT_LEN + 2 * (MAX_ENTRY_LEN + MAX_PATH * 34 + 32) + 64;

/// One log leaf and its inclusion path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogInclusion {
    /// Leaf index.
    pub index: u64,
    /// The leaf data ([`Event::encode`]).
    pub entry: Vec<u8>,
    /// Sibling hashes, leaf side first.
    pub path: Vec<Hash>,
}

/// A node's proof about one batch, as served by
/// `GET /v1/log/proof/batch/{origin}/{sequence}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicationProof {
    /// The node's Ed25519 key, which signs its log's checkpoints.
    pub node_id: [u8; 32],
    /// The checkpoint note both inclusions are proven against.
    pub checkpoint: Vec<u8>,
    /// The batch's publication entry.
    pub published: LogInclusion,
    /// The deletion entry covering the batch, once deleted.
    pub deleted: Option<LogInclusion>,
}

/// What a verified proof establishes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedPublication {
    /// The node whose log it is.
    pub node_id: [u8; 32],
    /// The checkpoint, with the trusted witnesses that cosigned it.
    pub checkpoint: VerifiedCheckpoint,
    /// Leaf index of the publication.
    pub index: u64,
    /// UTC day of the batch's keys.
    pub day: u32,
    /// Keys in the batch.
    pub key_count: u64,
    /// When the node stored the batch, unix seconds.
    pub published_at: u64,
    /// The deletion, if the proof carries one.
    pub deleted: Option<VerifiedDeletion>,
}

/// A verified deletion of the batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VerifiedDeletion {
    /// Leaf index of the deletion entry.
    pub index: u64,
    /// When the node deleted the batch, unix seconds (from its signed record).
    pub deleted_at: u64,
}

fn malformed(why: impl Into<String>) -> LogError {
    LogError::Malformed {
        what: "publication proof",
        why: why.into(),
    }
}

fn mismatch(why: impl Into<String>) -> LogError {
    LogError::EntryMismatch(why.into())
}

impl LogInclusion {
    fn to_pb(&self) -> pb::LogInclusion {
        pb::LogInclusion {
            index: self.index,
            entry: self.entry.clone(),
            path: self.path.iter().map(|h| h.to_vec()).collect(),
        }
    }

    fn from_pb(m: pb::LogInclusion) -> Result<Self, LogError> {
        if m.path.len() > MAX_PATH {
            return Err(malformed(format!("{} path hashes", m.path.len())));
        }
        let path = m
            .path
            .iter()
            .map(|h| {
                <[u8; 32]>::try_from(h.as_slice())
                    .map_err(|_| malformed(format!("a path hash of {} bytes", h.len())))
            })
            .collect::<Result<_, _>>()?;
        Ok(LogInclusion {
            index: m.index,
            entry: m.entry,
            path,
        })
    }

    /// Verifies the leaf at `index` under the checkpoint's root and decodes it.
    fn verify(&self, checkpoint: &VerifiedCheckpoint) -> Result<Event, LogError> {
        let cp = &checkpoint.checkpoint;
        verify_inclusion(
            &leaf_hash(&self.entry),
            self.index,
            cp.size,
            &self.path,
            &cp.root,
        )?;
        Event::decode(&self.entry)
    }
}

impl PublicationProof {
    /// Protobuf encoding.
    pub fn encode(&self) -> Vec<u8> {
        pb::PublicationProof {
            node_id: self.node_id.to_vec(),
            checkpoint: self.checkpoint.clone(),
            published: Some(self.published.to_pb()),
            deleted: self.deleted.as_ref().map(LogInclusion::to_pb),
        }
        .encode_to_vec()
    }

    /// Decodes a proof; refuses one over its size limit, with a field of the
    /// wrong length, or that does not re-encode to the same bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, LogError> {
        if bytes.len() > MAX_PUBLICATION_PROOF_LEN {
            return Err(LogError::Oversized {
                what: "publication proof",
                len: bytes.len(),
                max: MAX_PUBLICATION_PROOF_LEN,
            });
        }
        let m = pb::PublicationProof::decode(bytes).map_err(|e| malformed(e.to_string()))?;
        let node_id = <[u8; 32]>::try_from(m.node_id.as_slice())
            .map_err(|_| malformed(format!("node_id is {} bytes, not 32", m.node_id.len())))?;
        let published = m
            .published
            .ok_or_else(|| malformed("no publication entry"))
            .and_then(LogInclusion::from_pb)?;
        let deleted = m.deleted.map(LogInclusion::from_pb).transpose()?;
        let proof = PublicationProof {
            node_id,
            checkpoint: m.checkpoint,
            published,
            deleted,
        };
        if proof.encode() != bytes {
            return Err(LogError::NonCanonical("publication proof"));
        }
        Ok(proof)
    }

    /// Verifies that the node's log, at a checkpoint cosigned by at least
    /// `required` of `witnesses`, holds the publication of batch
    /// `origin`/`sequence` whose served bytes hash to `content_id`, and (when
    /// the proof carries it) that node's signed deletion of it.
    pub fn verify(
        &self,
        origin: &str,
        sequence: u64,
        content_id: &Hash,
        witnesses: &[NoteKey],
        required: usize,
    ) -> Result<VerifiedPublication, LogError> {
        let key = VerifyingKey::from_bytes(&self.node_id)
            .map_err(|_| malformed("node_id is not an Ed25519 public key"))?;
        let checkpoint = verify_checkpoint(&self.checkpoint, &NoteKey::of_node(key), witnesses)?;
        checkpoint.require_witnesses(required)?;
        let (day, key_count, published_at) = match self.published.verify(&checkpoint)? {
            Event::Published {
                form: PublicationForm::Batch,
                origin: o,
                sequence: s,
                day,
                key_count,
                content_id: c,
                at,
            } if o == origin && s == sequence => {
                if &c != content_id {
                    return Err(mismatch("the logged content id is not the batch's"));
                }
                (day, key_count, at)
            }
            _ => return Err(mismatch(format!("entry is not batch {origin}/{sequence}"))),
        };
        let deleted = match &self.deleted {
            None => None,
            Some(d) => Some(self.verify_deletion(d, &checkpoint, origin, sequence)?),
        };
        Ok(VerifiedPublication {
            node_id: self.node_id,
            checkpoint,
            index: self.published.index,
            day,
            key_count,
            published_at,
            deleted,
        })
    }

    fn verify_deletion(
        &self,
        d: &LogInclusion,
        checkpoint: &VerifiedCheckpoint,
        origin: &str,
        sequence: u64,
    ) -> Result<VerifiedDeletion, LogError> {
        let Event::Deleted { kinds, record } = d.verify(checkpoint)? else {
            return Err(mismatch("deletion entry is not a deletion"));
        };
        // Decoding the entry verified the record's signature under its node_id.
        let body = record
            .verify()
            .map_err(|e| malformed(format!("deletion record: {e}")))?;
        if body.node_id != self.node_id {
            return Err(mismatch("deletion record signed by another node"));
        }
        // Records from before kinds were logged (no kinds) deleted batches only.
        let covers = body.deleted.iter().enumerate().any(|(i, r)| {
            r.origin == origin
                && (r.first_sequence..=r.last_sequence).contains(&sequence)
                && kinds.get(i).is_none_or(|k| *k == DeletionKind::Batch)
        });
        if !covers {
            return Err(mismatch(format!(
                "deletion record does not cover batch {origin}/{sequence}"
            )));
        }
        Ok(VerifiedDeletion {
            index: d.index,
            deleted_at: body.deleted_at,
        })
    }
}

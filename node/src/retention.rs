//! Retention (SPEC.md §8): batches whose keys' validity ended more than
//! `RETENTION_DAYS` ago are deleted whole, and each run that deletes something
//! appends a signed, hash-chained entry to the public deletion log. Nothing else
//! about a deleted batch is kept.

use std::collections::BTreeMap;

use traceless_protocol::ed25519_dalek::SigningKey;
use traceless_protocol::wire::{DeletedRange, DeletionRecord};
use traceless_protocol::WireError;

use crate::storage::{BatchMeta, StorageError, Store};

/// Why a retention run failed (nothing was deleted then).
#[derive(Debug, thiserror::Error)]
pub enum RetentionError {
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The log entry could not be signed.
    #[error("deletion record: {0}")]
    Record(#[from] WireError),
}

/// The ranges a deletion record lists: per origin and day, runs of consecutive
/// sequence numbers, so that a range never covers a batch that was not deleted.
pub fn deleted_ranges(batches: &[BatchMeta]) -> Vec<DeletedRange> {
    let mut groups: BTreeMap<(&str, u32), Vec<(u64, u64)>> = BTreeMap::new();
    for b in batches {
        groups
            .entry((b.origin.as_str(), b.day))
            .or_default()
            .push((b.sequence, b.key_count));
    }
    let mut out = Vec::new();
    for ((origin, day), mut seqs) in groups {
        seqs.sort_unstable();
        let mut run: Option<DeletedRange> = None;
        for (seq, keys) in seqs {
            match &mut run {
                Some(r) if r.last_sequence + 1 == seq => {
                    r.last_sequence = seq;
                    r.key_count += keys;
                }
                _ => {
                    out.extend(run.take());
                    run = Some(DeletedRange {
                        origin: origin.to_owned(),
                        first_sequence: seq,
                        last_sequence: seq,
                        key_count: keys,
                        day,
                    });
                }
            }
        }
        out.extend(run);
    }
    out
}

/// Deletes every batch due at `now` (its last key's validity ended more than
/// `RETENTION_DAYS` ago) and logs it. Returns the new log entry, if any.
pub fn run(
    store: &dyn Store,
    node_key: &SigningKey,
    now: u64,
) -> Result<Option<DeletionRecord>, RetentionError> {
    // Due means `now > expires_at`, the same boundary at which batch verification
    // starts refusing the batch, so a deleted batch cannot come back.
    let due = store.expired_batches(now.saturating_sub(1))?;
    if due.is_empty() {
        return Ok(None);
    }
    let log = store.deletion_log()?;
    let record = DeletionRecord {
        index: log.len() as u64,
        previous_hash: log
            .last()
            .map_or(DeletionRecord::GENESIS_HASH, |e| e.hash()),
        deleted_at: now,
        node_id: node_key.verifying_key().to_bytes(),
        deleted: deleted_ranges(&due),
    };
    let signed = record.sign(node_key)?;
    store.delete_and_log(&due, &signed)?;
    tracing::info!(
        batches = due.len(),
        keys = due.iter().map(|b| b.key_count).sum::<u64>(),
        "retention deleted expired batches"
    );
    Ok(Some(record))
}

//! Retention (SPEC.md §8): batches whose keys' validity ended more than
//! `RETENTION_DAYS` ago are deleted whole, and so are day filters and a gateway's
//! filter entries at the end of their day's retention; each run that deletes
//! something appends a signed, hash-chained entry to the public deletion log,
//! and the same record, with the kind of each range, to the transparency log
//! (`crate::log`). Nothing else about a deleted batch or filter is kept.
//!
//! `DeletedRange` has no kind field, so a deleted day filter is logged as a range
//! of its origin and day whose `first_sequence..=last_sequence` are the filter's
//! revisions this node held and whose `key_count` is its entry count (on the
//! gateway: the entries it deleted). Filter ranges follow the batch ranges of the
//! same record.

use std::collections::BTreeMap;

use traceless_protocol::ed25519_dalek::SigningKey;
use traceless_protocol::log::DeletionKind;
use traceless_protocol::wire::{DeletedRange, DeletionRecord};
use traceless_protocol::WireError;

use crate::log::{LogStoreError, TransparencyLog};
use crate::storage::{BatchMeta, Expired, FilterMeta, StorageError, Store};

/// Why a retention run failed (nothing was deleted then).
#[derive(Debug, thiserror::Error)]
pub enum RetentionError {
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The log entry could not be signed.
    #[error("deletion record: {0}")]
    Record(#[from] WireError),
    /// The deletion is done and in the deletion chain, but its transparency-log
    /// entry failed (the next run or start appends it).
    #[error("transparency log: {0}")]
    Log(#[from] LogStoreError),
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

/// The ranges a deletion record lists for expired filters and filter entries:
/// one per (origin, day) with the revision range held and the entry count. A
/// gateway's entries of a day are counted in its own filter's range (or, if no
/// filter of that day was ever built, in a range of revision 1).
pub fn deleted_filter_ranges(
    filters: &[FilterMeta],
    entry_days: &[(u32, u64)],
    gateway_origin: Option<&str>,
) -> Vec<DeletedRange> {
    let mut ranges: BTreeMap<(String, u32), DeletedRange> = BTreeMap::new();
    for f in filters {
        ranges.insert(
            (f.origin.clone(), f.day),
            DeletedRange {
                origin: f.origin.clone(),
                first_sequence: f.first_revision.max(1),
                last_sequence: f.revision.max(1),
                key_count: f.entries,
                day: f.day,
            },
        );
    }
    if let Some(origin) = gateway_origin {
        for &(day, entries) in entry_days {
            let r = ranges
                .entry((origin.to_owned(), day))
                .or_insert_with(|| DeletedRange {
                    origin: origin.to_owned(),
                    first_sequence: 1,
                    last_sequence: 1,
                    key_count: 0,
                    day,
                });
            r.key_count = r.key_count.max(entries);
        }
    }
    ranges.into_values().collect()
}

/// Deletes every batch, day filter and filter entry due at `now` (its last key's validity ended more than
/// `RETENTION_DAYS` ago) and logs it. Returns the new log entry, if any.
pub fn run(
    store: &dyn Store,
    tlog: &TransparencyLog,
    node_key: &SigningKey,
    gateway_origin: Option<&str>,
    now: u64,
) -> Result<Option<DeletionRecord>, RetentionError> {
    // Due means `now > expires_at`, the same boundary at which batch and filter
    // verification start refusing them, so a deleted one cannot come back.
    let due: Expired = store.expired(now.saturating_sub(1))?;
    if due.is_empty() {
        return Ok(None);
    }
    let mut deleted = deleted_ranges(&due.batches);
    let mut kinds = vec![DeletionKind::Batch; deleted.len()];
    for r in deleted_filter_ranges(&due.filters, &due.entry_days, gateway_origin) {
        let is_filter = due
            .filters
            .iter()
            .any(|f| f.origin == r.origin && f.day == r.day);
        kinds.push(if is_filter {
            DeletionKind::Filter
        } else {
            DeletionKind::Entries
        });
        deleted.push(r);
    }
    let log = store.deletion_log()?;
    let record = DeletionRecord {
        index: log.len() as u64,
        previous_hash: log
            .last()
            .map_or(DeletionRecord::GENESIS_HASH, |e| e.hash()),
        deleted_at: now,
        node_id: node_key.verifying_key().to_bytes(),
        deleted,
    };
    let signed = record.sign(node_key)?;
    store.delete_and_log(&due, &signed)?;
    tlog.log_deletions(&store.deletion_log()?, &kinds)?;
    tracing::info!(
        batches = due.batches.len(),
        keys = due.batches.iter().map(|b| b.key_count).sum::<u64>(),
        filters = due.filters.len(),
        filter_entries = due.entry_days.iter().map(|d| d.1).sum::<u64>(),
        "retention deleted expired batches and filters"
    );
    Ok(Some(record))
}

//! Retention (SPEC.md §8): batches whose keys' validity ended more than
//! `RETENTION_DAYS` ago are deleted whole, and so are day filters and a gateway's
//! filter entries at the end of their day's retention; each run that deletes
//! something appends a signed, hash-chained entry to the public deletion log,
//! and the same record, with the kind of each range, to the transparency log
//! (`crate::log`). Nothing else about a deleted batch or filter is kept. Venue
//! warning batches go 14 days after their `createdAt`, in the same record
//! (ranges of kind `warnings`).
//!
//! `DeletedRange` has no kind field, so a deleted day filter is logged as ranges
//! of its origin and day whose `first_sequence..=last_sequence` are runs of the
//! part revisions this node held and whose `key_count` is their entries (on the
//! gateway: the entries it deleted). Filter ranges follow the batch ranges of the
//! same record.

use std::collections::BTreeMap;

use traceless_protocol::ed25519_dalek::SigningKey;
use traceless_protocol::log::DeletionKind;
use traceless_protocol::wire::{DeletedRange, DeletionRecord};
use traceless_protocol::WireError;

use crate::log::{LogStoreError, TransparencyLog};
use crate::storage::warnings::{WarningFiles, WarningMeta};
use crate::storage::{Expired, ExpiredBatch, FilterMeta, StorageError, Store};

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
/// sequence numbers, so that a range never covers a batch whose keys of that
/// day were not deleted (a period batch is in the range of each day pruned).
pub fn deleted_ranges(batches: &[ExpiredBatch]) -> Vec<DeletedRange> {
    runs_of(batches.iter().flat_map(|b| {
        b.days
            .iter()
            .map(|d| (b.meta.origin.as_str(), d.day, b.meta.sequence, d.key_count))
    }))
}

/// Per (origin, day), runs of consecutive numbers (sequences or part revisions)
/// with the sum of their counts.
fn runs_of<'a>(items: impl Iterator<Item = (&'a str, u32, u64, u64)>) -> Vec<DeletedRange> {
    let mut groups: BTreeMap<(&str, u32), Vec<(u64, u64)>> = BTreeMap::new();
    for (origin, day, n, count) in items {
        groups.entry((origin, day)).or_default().push((n, count));
    }
    let mut out = Vec::new();
    for ((origin, day), mut numbers) in groups {
        numbers.sort_unstable();
        let mut run: Option<DeletedRange> = None;
        for (n, count) in numbers {
            match &mut run {
                Some(r) if r.last_sequence + 1 == n => {
                    r.last_sequence = n;
                    r.key_count += count;
                }
                _ => {
                    out.extend(run.take());
                    run = Some(DeletedRange {
                        origin: origin.to_owned(),
                        first_sequence: n,
                        last_sequence: n,
                        key_count: count,
                        day,
                    });
                }
            }
        }
        out.extend(run);
    }
    out
}

/// The ranges a deletion record lists for expired filter parts and filter
/// entries: per (origin, day), runs of the part revisions held with their
/// entries. A gateway's entries of a day are counted in the range of its own
/// parts (its parts are 1..=n; if no part of that day was ever built, in a
/// range of revision 1).
pub fn deleted_filter_ranges(
    filters: &[FilterMeta],
    entry_days: &[(u32, u64)],
    gateway_origin: Option<&str>,
) -> Vec<DeletedRange> {
    let mut ranges = runs_of(
        filters
            .iter()
            .map(|f| (f.origin.as_str(), f.day, f.revision, f.entries)),
    );
    if let Some(origin) = gateway_origin {
        for &(day, entries) in entry_days {
            match ranges
                .iter_mut()
                .find(|r| r.origin == origin && r.day == day)
            {
                Some(r) => r.key_count = r.key_count.max(entries),
                None => ranges.push(DeletedRange {
                    origin: origin.to_owned(),
                    first_sequence: 1,
                    last_sequence: 1,
                    key_count: entries,
                    day,
                }),
            }
        }
        ranges.sort_by(|a, b| (&a.origin, a.day).cmp(&(&b.origin, b.day)));
    }
    ranges
}

/// The ranges a deletion record lists for expired venue warning batches: per
/// (origin, day of `createdAt`), runs of warning sequences with their warnings.
pub fn deleted_warning_ranges(batches: &[WarningMeta]) -> Vec<DeletedRange> {
    runs_of(
        batches
            .iter()
            .map(|w| (w.origin.as_str(), w.day(), w.sequence, w.warnings as u64)),
    )
}

/// Deletes every batch, day filter and filter entry due at `now` (its last key's validity ended more than
/// `RETENTION_DAYS` ago) and every venue warning batch 14 days old, and logs it.
/// Returns the new log entry, if any.
///
/// Warning batches live in files, not in sled: their files are removed after
/// the record is stored, so a crash in between leaves a record naming batches
/// still on disk, which the next run deletes and records again (never a
/// deletion without a record).
pub fn run(
    store: &dyn Store,
    warnings: &WarningFiles,
    tlog: &TransparencyLog,
    node_key: &SigningKey,
    gateway_origin: Option<&str>,
    now: u64,
) -> Result<Option<DeletionRecord>, RetentionError> {
    // Due means `now > expires_at`, the same boundary at which batch and filter
    // verification start refusing them, so a deleted one cannot come back.
    let due: Expired = store.expired(now.saturating_sub(1))?;
    let due_warnings = warnings.expired(now)?;
    if due.is_empty() && due_warnings.is_empty() {
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
    for r in deleted_warning_ranges(&due_warnings) {
        kinds.push(DeletionKind::Warnings);
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
    warnings.delete(&due_warnings)?;
    tlog.log_deletions(&store.deletion_log()?, &kinds)?;
    tracing::info!(
        batches = due.batches.iter().filter(|b| b.kept.is_none()).count(),
        pruned_batches = due.batches.iter().filter(|b| b.kept.is_some()).count(),
        keys = due
            .batches
            .iter()
            .flat_map(|b| &b.days)
            .map(|d| d.key_count)
            .sum::<u64>(),
        filters = due.filters.len(),
        filter_entries = due.entry_days.iter().map(|d| d.1).sum::<u64>(),
        warning_batches = due_warnings.len(),
        "retention deleted expired batches, filters and warnings"
    );
    Ok(Some(record))
}

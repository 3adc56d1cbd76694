//! The node's transparency log (SPEC.md §8.3): an append-only Merkle log of
//! what this node published, deleted and issued, in the node's sled tree under
//! the [`keyspace`] prefixes `L` (entries), `H` (perfect-subtree hashes) and `M`
//! (bookkeeping).
//!
//! An append writes the entry, the subtree hashes it completes and the
//! bookkeeping it changes in one `apply_batch`, then flushes: after a crash the
//! log holds every acknowledged entry and its tree is whole (the size is the
//! number of entries, and every hash an entry completes was written with it).
//! Checkpoints are signed with the node's key (the deletion-log key) at the
//! current size on demand; the log never rewrites an entry, so it can never
//! sign two inconsistent checkpoints.
//!
//! Deletions keep their signed, hash-chained records (SPEC.md §5.5) and every
//! record is also a log entry: [`TransparencyLog::log_deletions`] appends the
//! records the log does not hold yet, which at open migrates an old chain and
//! after a crash between retention's commit and its log entry catches up.
//!
//! Publication entries are indexed under [`LOG_INDEX`], in the same write as
//! the entry: each batch's publication and the deletion record that covers it
//! by (origin, sequence), one key per batch (a lookup is one read; ranges of
//! different records and days interleave by sequence, and the keys are never
//! more than the batches published), and each filter revision's publication by
//! (origin, day, revision). [`TransparencyLog::index_existing`] indexes a log
//! written before an index kind existed, once, at start; then
//! [`TransparencyLog::log_unlogged`] logs the stored batches and filters the
//! index does not know (stored, then a crash before their entry).

use std::sync::Mutex;

use traceless_protocol::ed25519_dalek::SigningKey;
use traceless_protocol::log::tree::{self, completed_by_append, PerfectHashes};
use traceless_protocol::log::{
    leaf_hash, log_origin, verify_checkpoint, Checkpoint, DeletionKind, Event, Hash, LogError,
    LogInclusion, NoteKey, PublicationForm, PublicationProof,
};
use traceless_protocol::wire::SignedDeletionRecord;

use sha2::{Digest, Sha256};

use crate::config::TrustEntry;
use crate::storage::keyspace::{
    log_filter_index_key, log_hash_key, log_index_key, log_leaf_key, log_meta_key, split_index_key,
    split_log_leaf_key, LOG_INDEX_DELETED, LOG_INDEX_PUBLISHED, LOG_INDEX_WARNING, LOG_LEAF,
};
use crate::storage::warnings::{WarningFiles, WarningMeta};
use crate::storage::{BatchMeta, BatchStore, FilterMeta, FilterStore, StorageError};

/// Most entries one `/v1/log/entries` answer holds.
pub const MAX_ENTRIES_PER_REQUEST: u64 = 256;

/// Bookkeeping: how many deletion-chain records are in the log.
const DELETIONS_LOGGED: &str = "deletions";
/// Prefix of the per-origin mark of the highest batch sequence logged.
const BATCHES_LOGGED: &str = "batches ";
/// Bookkeeping: digest of the last trust list logged.
const TRUST_DIGEST: &str = "trust";
/// Bookkeeping: present once every entry is in the index. Its name changes
/// with each new index kind (`indexed` held batches only; `indexed 2` adds
/// filter revisions), so an older log is indexed again, once: re-indexing
/// writes the same keys it wrote before.
const INDEXED: &str = "indexed 3";

/// Why a log operation failed.
#[derive(Debug, thiserror::Error)]
pub enum LogStoreError {
    /// The request does not fit the log (a size beyond it, wrong order).
    #[error(transparent)]
    Log(#[from] LogError),
    /// Storage failed; nothing was acknowledged.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl From<sled::Error> for LogStoreError {
    fn from(e: sled::Error) -> Self {
        LogStoreError::Storage(e.into())
    }
}

/// The node's log over its sled tree.
pub struct TransparencyLog {
    db: sled::Db,
    key: SigningKey,
    origin: String,
    /// Serialises appends (the size is read, then written).
    append: Mutex<()>,
}

/// A tree read at one moment: the log's hashes and its size.
struct Stored<'a> {
    db: &'a sled::Db,
}

impl PerfectHashes for Stored<'_> {
    type Error = LogStoreError;
    fn perfect(&self, level: u32, index: u64) -> Result<Hash, LogStoreError> {
        if level == 0 {
            let v = self
                .db
                .get(log_leaf_key(index))?
                .ok_or(StorageError::Corrupt("L"))?;
            return Ok(leaf_hash(&v));
        }
        let v = self
            .db
            .get(log_hash_key(level, index))?
            .ok_or(StorageError::Corrupt("H"))?;
        v.as_ref()
            .try_into()
            .map_err(|_| StorageError::Corrupt("H").into())
    }
}

impl TransparencyLog {
    /// The log in `db`, signed with `key`.
    pub fn open(db: sled::Db, key: SigningKey) -> Self {
        let origin = log_origin(&key.verifying_key().to_bytes());
        TransparencyLog {
            db,
            key,
            origin,
            append: Mutex::new(()),
        }
    }

    /// The sled tree the log lives in (witness state, operator accounts and
    /// upload statistics share it).
    pub fn db(&self) -> sled::Db {
        self.db.clone()
    }

    /// The log's origin (its checkpoint key name).
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The public key checkpoints verify under, with its name.
    pub fn note_key(&self) -> NoteKey {
        NoteKey::of_node(self.key.verifying_key())
    }

    /// Number of entries.
    pub fn size(&self) -> Result<u64, LogStoreError> {
        Ok(match self.db.scan_prefix([LOG_LEAF]).next_back() {
            Some(item) => {
                let (k, _) = item?;
                split_log_leaf_key(&k).ok_or(StorageError::Corrupt("L"))? + 1
            }
            None => 0,
        })
    }

    /// Appends `event` durably and returns its index.
    pub fn append(&self, event: &Event) -> Result<u64, LogStoreError> {
        self.append_with(event, &[], None)
    }

    /// Appends `event` with bookkeeping values (and, under `index_as`, the
    /// entry's own index), in one atomic, flushed write.
    fn append_with(
        &self,
        event: &Event,
        meta: &[(&str, Vec<u8>)],
        index_as: Option<&str>,
    ) -> Result<u64, LogStoreError> {
        let _guard = self.append.lock().unwrap_or_else(|e| e.into_inner());
        let index = self.size()?;
        let data = event.encode();
        let completed = completed_by_append(&Stored { db: &self.db }, index, leaf_hash(&data))?;
        let mut ops = sled::Batch::default();
        ops.insert(log_leaf_key(index), data);
        for (level, i, hash) in completed {
            ops.insert(log_hash_key(level, i), &hash[..]);
        }
        for (name, value) in meta {
            ops.insert(log_meta_key(name), value.as_slice());
        }
        if let Some(name) = index_as {
            ops.insert(log_meta_key(name), &index.to_be_bytes()[..]);
        }
        for key in self.index_keys(event)? {
            ops.insert(key, &index.to_be_bytes()[..]);
        }
        self.db.apply_batch(ops)?;
        self.db.flush()?;
        Ok(index)
    }

    /// The index keys that point at `event`'s entry: a batch's or a filter
    /// revision's publication's own, or for a deletion record those of the
    /// logged batch publications its batch ranges cover (ranges of kind batch,
    /// or of no kind in records from before kinds were logged, as
    /// [`PublicationProof::verify`] reads them), of the range's day and not yet
    /// indexed as deleted.
    fn index_keys(&self, event: &Event) -> Result<Vec<Vec<u8>>, LogStoreError> {
        let (kinds, record) = match event {
            Event::Published {
                form: PublicationForm::Batch,
                origin,
                sequence,
                ..
            } => return Ok(vec![log_index_key(LOG_INDEX_PUBLISHED, origin, *sequence)]),
            Event::Published {
                form: PublicationForm::Filter,
                origin,
                sequence,
                day,
                ..
            } => return Ok(vec![log_filter_index_key(origin, *day, *sequence)]),
            Event::Published {
                form: PublicationForm::Warning,
                origin,
                sequence,
                ..
            } => return Ok(vec![log_index_key(LOG_INDEX_WARNING, origin, *sequence)]),
            Event::Deleted { kinds, record } => (kinds, record),
            _ => return Ok(Vec::new()),
        };
        let Ok(record) = record.verify() else {
            tracing::error!("transparency log: a deletion record of this node does not verify");
            return Ok(Vec::new());
        };
        let mut keys = Vec::new();
        for (i, r) in record.deleted.iter().enumerate() {
            if kinds.get(i).is_some_and(|k| *k != DeletionKind::Batch) {
                continue;
            }
            let from = log_index_key(LOG_INDEX_PUBLISHED, &r.origin, r.first_sequence);
            let to = log_index_key(LOG_INDEX_PUBLISHED, &r.origin, r.last_sequence);
            for item in self.db.range(from..=to) {
                let (k, v) = item?;
                let (origin, sequence) =
                    split_index_key(&k, 1).ok_or(StorageError::Corrupt("I"))?;
                let deleted = log_index_key(LOG_INDEX_DELETED, &origin, sequence);
                let same_day = match self.entry(be_u64(&v, "I")?)? {
                    Some(e) => {
                        matches!(Event::decode(&e), Ok(Event::Published { day, .. }) if day == r.day)
                    }
                    None => false,
                };
                if origin == r.origin && same_day && !self.db.contains_key(&deleted)? {
                    keys.push(deleted);
                }
            }
        }
        Ok(keys)
    }

    /// Indexes every publication and deletion entry of a log written before
    /// the index (or its newest kind) existed, in log order, once (a marker
    /// records that it is done; a crash before it means the next start does it
    /// again, to the same keys).
    /// Returns the number of entries indexed.
    pub fn index_existing(&self) -> Result<u64, LogStoreError> {
        if self.db.contains_key(log_meta_key(INDEXED))? {
            return Ok(0);
        }
        let _guard = self.append.lock().unwrap_or_else(|e| e.into_inner());
        let mut indexed = 0;
        for item in self.db.scan_prefix([LOG_LEAF]) {
            let (k, data) = item?;
            let index = split_log_leaf_key(&k).ok_or(StorageError::Corrupt("L"))?;
            let Ok(event) = Event::decode(&data) else {
                continue;
            };
            let keys = self.index_keys(&event)?;
            if keys.is_empty() {
                continue;
            }
            let mut ops = sled::Batch::default();
            for key in keys {
                ops.insert(key, &index.to_be_bytes()[..]);
            }
            self.db.apply_batch(ops)?;
            indexed += 1;
        }
        self.db.insert(log_meta_key(INDEXED), &[1u8][..])?;
        self.db.flush()?;
        Ok(indexed)
    }

    fn indexed(&self, kind: u8, origin: &str, sequence: u64) -> Result<Option<u64>, LogStoreError> {
        self.db
            .get(log_index_key(kind, origin, sequence))?
            .map(|v| be_u64(&v, "I"))
            .transpose()
    }

    /// The proof that this log holds the publication of batch
    /// `origin`/`sequence` and, once logged, the deletion that covers it (none
    /// if the log never recorded the batch). Both are proven against
    /// `witnessed` (this node's latest announced checkpoint, with the
    /// cosignatures it holds) when that covers them, else against a checkpoint
    /// of the current size.
    pub fn publication_proof(
        &self,
        origin: &str,
        sequence: u64,
        witnessed: Option<Vec<u8>>,
    ) -> Result<Option<PublicationProof>, LogStoreError> {
        let Some(published) = self.indexed(LOG_INDEX_PUBLISHED, origin, sequence)? else {
            return Ok(None);
        };
        let deleted = self.indexed(LOG_INDEX_DELETED, origin, sequence)?;
        let needed = deleted.map_or(published, |d| d.max(published)) + 1;
        let witnessed = witnessed.and_then(|note| {
            let size = verify_checkpoint(&note, &self.note_key(), &[])
                .ok()?
                .checkpoint
                .size;
            (size >= needed).then_some((size, note))
        });
        let (size, checkpoint) = match witnessed {
            Some(w) => w,
            None => {
                let (cp, note) = self.checkpoint()?;
                (cp.size, note)
            }
        };
        let inclusion = |index: u64| -> Result<LogInclusion, LogStoreError> {
            Ok(LogInclusion {
                index,
                entry: self.entry(index)?.ok_or(StorageError::Corrupt("L"))?,
                path: self.prove_inclusion(index, size)?,
            })
        };
        Ok(Some(PublicationProof {
            node_id: self.key.verifying_key().to_bytes(),
            checkpoint,
            published: inclusion(published)?,
            deleted: deleted.map(inclusion).transpose()?,
        }))
    }

    /// Entry `index`'s leaf data.
    pub fn entry(&self, index: u64) -> Result<Option<Vec<u8>>, LogStoreError> {
        Ok(self.db.get(log_leaf_key(index))?.map(|v| v.to_vec()))
    }

    /// Entries `start..end` (at most [`MAX_ENTRIES_PER_REQUEST`], and not past
    /// the end of the log).
    pub fn entries(&self, start: u64, end: u64) -> Result<Vec<Vec<u8>>, LogStoreError> {
        let size = self.size()?;
        if start >= end || end > size {
            return Err(LogError::BeyondLog {
                size: end,
                log_size: size,
            }
            .into());
        }
        let end = end.min(start.saturating_add(MAX_ENTRIES_PER_REQUEST));
        self.db
            .range(log_leaf_key(start)..log_leaf_key(end))
            .map(|item| Ok(item?.1.to_vec()))
            .collect()
    }

    /// Every entry (the transparency page; tests).
    pub fn all_entries(&self) -> Result<Vec<Vec<u8>>, LogStoreError> {
        self.db
            .scan_prefix([LOG_LEAF])
            .map(|item| Ok(item?.1.to_vec()))
            .collect()
    }

    fn check_size(&self, size: u64) -> Result<(), LogStoreError> {
        let log_size = self.size()?;
        if size > log_size {
            return Err(LogError::BeyondLog { size, log_size }.into());
        }
        Ok(())
    }

    /// The root at `size`.
    pub fn root(&self, size: u64) -> Result<Hash, LogStoreError> {
        self.check_size(size)?;
        tree::root(&Stored { db: &self.db }, size)
    }

    /// The checkpoint at the current size and its signed note.
    pub fn checkpoint(&self) -> Result<(Checkpoint, Vec<u8>), LogStoreError> {
        let _guard = self.append.lock().unwrap_or_else(|e| e.into_inner());
        let size = self.size()?;
        let cp = Checkpoint {
            origin: self.origin.clone(),
            size,
            root: tree::root(&Stored { db: &self.db }, size)?,
        };
        let note = cp.sign(&self.key);
        Ok((cp, note))
    }

    /// The inclusion proof of entry `index` in the tree of `size` entries.
    pub fn prove_inclusion(&self, index: u64, size: u64) -> Result<Vec<Hash>, LogStoreError> {
        self.check_size(size)?;
        tree::prove_inclusion(&Stored { db: &self.db }, index, size)
    }

    /// The consistency proof between the trees of `old` and `new` entries.
    pub fn prove_consistency(&self, old: u64, new: u64) -> Result<Vec<Hash>, LogStoreError> {
        self.check_size(new)?;
        tree::prove_consistency(&Stored { db: &self.db }, old, new)
    }

    fn meta_u64(&self, name: &str) -> Result<u64, LogStoreError> {
        Ok(match self.db.get(log_meta_key(name))? {
            Some(v) => be_u64(&v, "M")?,
            None => 0,
        })
    }

    /// Appends the deletion-chain records the log does not hold yet (`chain` is
    /// the whole chain, oldest first); `kinds` are the range kinds of the newest
    /// record, when the caller knows them. Returns the indexes appended.
    pub fn log_deletions(
        &self,
        chain: &[SignedDeletionRecord],
        newest_kinds: &[DeletionKind],
    ) -> Result<Vec<u64>, LogStoreError> {
        let logged = self.meta_u64(DELETIONS_LOGGED)? as usize;
        let mut out = Vec::new();
        for (i, record) in chain.iter().enumerate().skip(logged) {
            let kinds = if i + 1 == chain.len() {
                newest_kinds.to_vec()
            } else {
                Vec::new()
            };
            let event = Event::Deleted {
                kinds,
                record: record.clone(),
            };
            let count = (i as u64 + 1).to_be_bytes().to_vec();
            let name = deletion_entry_name(i as u64);
            out.push(self.append_with(&event, &[(DELETIONS_LOGGED, count)], Some(&name))?);
        }
        Ok(out)
    }

    /// Logs `origin`'s stored batches above the last one logged, in sequence
    /// order, each at its `created_at` (for a gateway's own batches: the period
    /// boundary) and each append with the new high-water mark; a batch the index
    /// holds already (logged by [`TransparencyLog::log_unlogged`]) only
    /// moves the mark. Called after each publication (a failed append is
    /// retried at the next), never logging a batch twice. Returns the indexes
    /// appended.
    pub fn log_batches_of(
        &self,
        store: &dyn BatchStore,
        origin: &str,
    ) -> Result<Vec<u64>, LogStoreError> {
        let name = format!("{BATCHES_LOGGED}{origin}");
        let mut logged = self.meta_u64(&name)?;
        let mut out = Vec::new();
        loop {
            let page = store.list_batches(origin, logged, 1000)?;
            let Some(last) = page.last() else {
                return Ok(out);
            };
            let end = last.sequence;
            for m in &page {
                let mark = m.sequence.to_be_bytes().to_vec();
                if self
                    .indexed(LOG_INDEX_PUBLISHED, origin, m.sequence)?
                    .is_some()
                {
                    self.db.insert(log_meta_key(&name), mark)?;
                    continue;
                }
                out.push(self.append_with(
                    &batch_event(m, m.created_at),
                    &[(&name, mark)],
                    None,
                )?);
            }
            logged = end;
        }
    }

    /// Logs every stored batch and part of a day filter whose publication the
    /// index does not hold, batches in (origin, sequence) order, then parts in
    /// (origin, day, revision) order: at start, after [`TransparencyLog::index_existing`]
    /// and before anything is served, for what a node stored (a relay from
    /// gossip or catch-up, a gateway from its own rebuild) and crashed before
    /// logging (relays receive them out of order, so no high-water mark finds
    /// them). One index read per stored batch or part, no scan of the log; a
    /// second call appends nothing. Returns the indexes appended.
    pub fn log_unlogged<S>(&self, store: &S) -> Result<Vec<u64>, LogStoreError>
    where
        S: BatchStore + FilterStore + ?Sized,
    {
        // Each at its signed `created_at`, not now: when the node stored it was
        // lost in the crash, and now (the restart, maybe days later) would
        // claim a later publication than happened. `created_at` is signed by
        // the authority, no later than the store (ingest refuses what comes
        // from the future, beyond the clock-skew allowance), and what the
        // gateway reconciliation uses, so the entry is the same whichever start
        // writes it.
        let mut events = Vec::new();
        for m in store.all_batches()? {
            if self
                .indexed(LOG_INDEX_PUBLISHED, &m.origin, m.sequence)?
                .is_none()
            {
                events.push(batch_event(&m, m.created_at));
            }
        }
        for m in store.all_filters()? {
            let key = log_filter_index_key(&m.origin, m.day, m.revision);
            if !self.db.contains_key(key)? {
                events.push(filter_event(&m, m.created_at));
            }
        }
        events
            .iter()
            .map(|event| self.append_with(event, &[], None))
            .collect()
    }

    /// [`TransparencyLog::log_unlogged`] for venue warning batches: logs, at
    /// their `createdAt`, the batches in `files` whose publication entry the
    /// index lacks (stored just before a crash). Returns the indexes appended.
    pub fn log_unlogged_warnings(&self, files: &WarningFiles) -> Result<Vec<u64>, LogStoreError> {
        let mut out = Vec::new();
        for m in files.list(None, 0)? {
            if self
                .indexed(LOG_INDEX_WARNING, &m.origin, m.sequence)?
                .is_none()
            {
                out.push(self.append_with(&warning_event(&m), &[], None)?);
            }
        }
        Ok(out)
    }

    /// The log index of deletion record `record_index`'s entry (none for records
    /// logged before this index was kept).
    pub fn deletion_entry(&self, record_index: u64) -> Result<Option<u64>, LogStoreError> {
        let name = deletion_entry_name(record_index);
        Ok(match self.db.get(log_meta_key(&name))? {
            Some(_) => Some(self.meta_u64(&name)?),
            None => None,
        })
    }

    /// Logs the trust list if it differs from the last one logged.
    pub fn log_trust_list(
        &self,
        digest: Hash,
        authorities: u64,
        at: u64,
    ) -> Result<Option<u64>, LogStoreError> {
        if self.db.get(log_meta_key(TRUST_DIGEST))?.as_deref() == Some(&digest[..]) {
            return Ok(None);
        }
        let event = Event::TrustList {
            digest,
            authorities,
            at,
        };
        Ok(Some(self.append_with(
            &event,
            &[(TRUST_DIGEST, digest.to_vec())],
            None,
        )?))
    }
}

/// A stored big-endian u64 (a value under prefix `what`).
fn be_u64(v: &[u8], what: &'static str) -> Result<u64, LogStoreError> {
    Ok(u64::from_be_bytes(
        v.try_into().map_err(|_| StorageError::Corrupt(what))?,
    ))
}

/// The bookkeeping name under which a deletion record's log index is kept.
fn deletion_entry_name(record_index: u64) -> String {
    format!("deletion {record_index}")
}

/// SHA-256 over the trust list as configured (origin, key id and key of each
/// entry, in order): what a [`Event::TrustList`] entry commits to.
pub fn trust_digest(trust: &[TrustEntry]) -> Hash {
    let mut h = Sha256::new();
    for t in trust {
        h.update(format!(
            "{} {} {}\n",
            t.origin,
            t.key_id,
            t.public_key.to_ascii_lowercase()
        ));
    }
    h.finalize().into()
}

/// The event of a batch this node stored: a period batch is named by its
/// last day, whose deletion deletes it (its other days are pruned before,
/// each in the deletion record's range of its day), with the keys of all.
pub fn batch_event(m: &BatchMeta, at: u64) -> Event {
    Event::Published {
        form: PublicationForm::Batch,
        origin: m.origin.clone(),
        sequence: m.sequence,
        day: m.last_day(),
        key_count: m.key_count(),
        content_id: m.content_id,
        at,
    }
}

/// The event of a part of a day filter this node stored (its revision in
/// `sequence`).
pub fn filter_event(m: &FilterMeta, at: u64) -> Event {
    Event::Published {
        form: PublicationForm::Filter,
        origin: m.origin.clone(),
        sequence: m.revision,
        day: m.day,
        key_count: m.entries,
        content_id: m.content_id,
        at,
    }
}

/// The event of a venue warning batch this node stored, at its `createdAt`.
pub fn warning_event(m: &WarningMeta) -> Event {
    Event::Published {
        form: PublicationForm::Warning,
        origin: m.origin.clone(),
        sequence: m.sequence,
        day: m.day(),
        key_count: m.warnings as u64,
        content_id: m.content_id,
        at: m.created_at,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::storage::{SledStore, StoredBatch, StoredFilter};

    fn stored(origin: &str, sequence: u64) -> StoredBatch {
        StoredBatch {
            meta: BatchMeta {
                origin: origin.into(),
                sequence,
                version: 1,
                days: vec![crate::storage::BatchDay {
                    day: 20_000,
                    key_count: 3,
                    expires_at: u64::MAX,
                }],
                created_at: 1_728_000_000 + sequence * 3600,
                visible_from: 0,
                content_id: [sequence as u8; 32],
            },
            bytes: vec![sequence as u8; 40],
        }
    }

    fn published(log: &TransparencyLog) -> Vec<(String, u64, u64)> {
        log.all_entries()
            .unwrap()
            .iter()
            .filter_map(|e| match Event::decode(e).unwrap() {
                Event::Published {
                    origin,
                    sequence,
                    at,
                    ..
                } => Some((origin, sequence, at)),
                _ => None,
            })
            .collect()
    }

    /// A deletion record signed by `key` over `ranges`, chained to `chain`.
    fn record(
        key: &SigningKey,
        chain: &[SignedDeletionRecord],
        ranges: &[(u64, u64, u32)],
    ) -> SignedDeletionRecord {
        use traceless_protocol::wire::{DeletedRange, DeletionRecord};
        DeletionRecord {
            index: chain.len() as u64,
            previous_hash: chain
                .last()
                .map_or(DeletionRecord::GENESIS_HASH, |r| r.hash()),
            deleted_at: 1_728_100_000,
            node_id: key.verifying_key().to_bytes(),
            deleted: ranges
                .iter()
                .map(|&(first, last, day)| DeletedRange {
                    origin: "a.health".into(),
                    first_sequence: first,
                    last_sequence: last,
                    key_count: 3,
                    day,
                })
                .collect(),
        }
        .sign(key)
        .unwrap()
    }

    /// A deletion points at a batch only through a range of kind batch (or of
    /// no kind) of the batch's origin and day: a filter range over the same
    /// numbers, or a range of another day, does not.
    #[test]
    fn deletions_are_indexed_by_their_batch_ranges_only() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let key = SigningKey::from_bytes(&[5; 32]);
        let log = TransparencyLog::open(db, key.clone());
        for seq in 1..=3 {
            log.append(&batch_event(&stored("a.health", seq).meta, 1))
                .unwrap();
        }
        let deleted = |seq| {
            log.publication_proof("a.health", seq, None)
                .unwrap()
                .unwrap()
                .deleted
                .map(|d| d.index)
        };
        let mut chain = vec![record(&key, &[], &[(1, 1, 20_000), (2, 3, 20_000)])];
        let kinds = [DeletionKind::Batch, DeletionKind::Filter];
        assert_eq!(log.log_deletions(&chain, &kinds).unwrap(), vec![3]);
        assert_eq!([deleted(1), deleted(2), deleted(3)], [Some(3), None, None]);
        // No kinds (a record from before they were logged): the day decides.
        chain.push(record(&key, &chain, &[(2, 2, 19_999), (3, 3, 20_000)]));
        assert_eq!(log.log_deletions(&chain, &[]).unwrap(), vec![4]);
        assert_eq!(
            [deleted(1), deleted(2), deleted(3)],
            [Some(3), None, Some(4)]
        );
        assert!(log
            .publication_proof("a.health", 4, None)
            .unwrap()
            .is_none());
        assert!(log
            .publication_proof("b.health", 1, None)
            .unwrap()
            .is_none());
    }

    /// A relay's batches stored out of order and killed before their entries
    /// (the store written directly, as the crash leaves it) are logged at the
    /// next open, once each, at their creation time, with proofs that verify;
    /// the gateway's mark then skips what was logged so.
    #[test]
    fn batches_a_relay_stored_before_a_crash_are_logged_once_at_the_next_open() {
        let dir = tempfile::tempdir().unwrap();
        let key = SigningKey::from_bytes(&[5; 32]);
        let open = || {
            let store = SledStore::open(&dir.path().join("db")).unwrap();
            let log = TransparencyLog::open(store.db(), key.clone());
            assert_eq!(log.index_existing().unwrap(), 0);
            (store, log)
        };
        let (store, log) = open();
        store.put_batch(&stored("b.health", 7)).unwrap();
        log.append(&batch_event(&stored("b.health", 7).meta, 5))
            .unwrap();
        for (origin, seq) in [("b.health", 9), ("a.health", 4), ("b.health", 2)] {
            store.put_batch(&stored(origin, seq)).unwrap();
        }
        assert!(log
            .publication_proof("b.health", 9, None)
            .unwrap()
            .is_none());
        drop((store, log));

        let (store, log) = open();
        assert_eq!(log.log_unlogged(&store).unwrap(), vec![1, 2, 3]);
        let t = 1_728_000_000;
        assert_eq!(
            published(&log),
            vec![
                ("b.health".into(), 7, 5),
                ("a.health".into(), 4, t + 4 * 3600),
                ("b.health".into(), 2, t + 2 * 3600),
                ("b.health".into(), 9, t + 9 * 3600),
            ]
        );
        for (origin, seq) in [("a.health", 4), ("b.health", 2), ("b.health", 9)] {
            let proof = log.publication_proof(origin, seq, None).unwrap().unwrap();
            let v = proof.verify(origin, seq, &[seq as u8; 32], &[], 0).unwrap();
            assert_eq!((v.published_at, v.deleted), (t + seq * 3600, None));
        }
        // A gateway of b.health: its mark moves past them, logging none again.
        assert!(log.log_batches_of(&store, "b.health").unwrap().is_empty());
        drop((store, log));

        let (store, log) = open();
        assert!(log.log_unlogged(&store).unwrap().is_empty());
        assert_eq!(log.size().unwrap(), 4, "a second open appends nothing");
    }

    fn stored_filter(origin: &str, day: u32, revision: u64) -> StoredFilter {
        StoredFilter {
            meta: FilterMeta {
                origin: origin.into(),
                day,
                revision,
                created_at: 1_728_000_000 + revision * 3600,
                entries: 10 * revision,
                content_id: [revision as u8; 32],
                len: 40,
            },
            bytes: vec![revision as u8; 40],
        }
    }

    /// Filter revisions stored and killed before their entries are logged at
    /// the next open, once each, at their creation time; a revision that was
    /// logged is not logged again; and a log indexed before filter revisions
    /// were (the old marker, no filter keys) is indexed again, once, so its
    /// logged revision is not appended twice.
    #[test]
    fn filters_stored_before_a_crash_are_logged_once_at_the_next_open() {
        let dir = tempfile::tempdir().unwrap();
        let key = SigningKey::from_bytes(&[5; 32]);
        let open = || {
            let store = SledStore::open(&dir.path().join("db")).unwrap();
            let log = TransparencyLog::open(store.db(), key.clone());
            let indexed = log.index_existing().unwrap();
            (store, log, indexed)
        };
        let (store, log, _) = open();
        store
            .put_filter(&stored_filter("a.health", 20_000, 2))
            .unwrap();
        log.append(&filter_event(&stored_filter("a.health", 20_000, 2).meta, 5))
            .unwrap();
        // A log from before filter keys: the logged revision's key is gone and
        // only the old marker is there.
        log.db
            .remove(log_filter_index_key("a.health", 20_000, 2))
            .unwrap();
        log.db.remove(log_meta_key(INDEXED)).unwrap();
        log.db.insert(log_meta_key("indexed"), &[1u8][..]).unwrap();
        store
            .put_filter(&stored_filter("b.health", 20_001, 3))
            .unwrap();
        store.put_batch(&stored("a.health", 1)).unwrap();
        drop((store, log));

        let (store, log, indexed) = open();
        assert_eq!(indexed, 1, "the old log's filter entry is indexed");
        assert_eq!(log.log_unlogged(&store).unwrap(), vec![1, 2]);
        let t = 1_728_000_000;
        assert_eq!(
            published(&log),
            vec![
                ("a.health".into(), 2, 5),
                ("a.health".into(), 1, t + 3600),
                ("b.health".into(), 3, t + 3 * 3600),
            ]
        );
        let filter = Event::decode(&log.entry(2).unwrap().unwrap()).unwrap();
        assert!(matches!(
            filter,
            Event::Published {
                form: PublicationForm::Filter,
                day: 20_001,
                key_count: 30,
                ..
            }
        ));
        drop((store, log));

        let (store, log, indexed) = open();
        assert_eq!(indexed, 0, "indexed once");
        assert!(log.log_unlogged(&store).unwrap().is_empty());
        assert_eq!(log.size().unwrap(), 3, "a second open appends nothing");
    }

    #[test]
    fn batches_stored_before_a_crash_are_logged_once_at_their_creation_time() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(&dir.path().join("db")).unwrap();
        let log = TransparencyLog::open(store.db(), SigningKey::from_bytes(&[5; 32]));
        store
            .put_batches(&[stored("a.health", 1), stored("a.health", 2)])
            .unwrap();
        store.put_batch(&stored("b.health", 1)).unwrap();
        assert_eq!(log.log_batches_of(&store, "a.health").unwrap(), vec![0, 1]);
        // Again (a restart, or the next boundary): nothing new, nothing twice.
        assert!(log.log_batches_of(&store, "a.health").unwrap().is_empty());
        store.put_batch(&stored("a.health", 3)).unwrap();
        assert_eq!(log.log_batches_of(&store, "a.health").unwrap(), vec![2]);
        let t = 1_728_000_000;
        assert_eq!(
            published(&log),
            vec![
                ("a.health".into(), 1, t + 3600),
                ("a.health".into(), 2, t + 7200),
                ("a.health".into(), 3, t + 10_800),
            ],
            "another origin's batches are not logged as this gateway's"
        );
    }
}

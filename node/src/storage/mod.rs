//! Durable storage of batches, day filters and filter entries (SPEC.md §5.8), the
//! deletion log, upload codes and embargoed keys.
//!
//! Everything lives in one sled tree under the named one-byte key prefixes of
//! [`keyspace`], so that every
//! logical change (a batch and its indexes; a retention run and its log entry; an
//! upload, its code and its batches) is one atomic `apply_batch` followed by a
//! flush. A write is acknowledged only after the flush returns: sled's flush is
//! `sync_file_range` on Linux, which survives `kill -9` (not power loss).
//!
//! Filter entries are keyed by `(day, interval, entry)` and nothing else, so the
//! tree's order says nothing about which entries came from one upload; the TEK
//! they were derived from is never written.
//!
//! sled is log-structured: a removed record stays in its files until the segment
//! is reused, so deleting a record does not take its bytes off the disk. What
//! retention or an embargo release must really destroy therefore lives outside
//! sled, in a directory next to the database (`<db>-files/`):
//!
//! - each batch's signed bytes (its TEKs) in a file of their own, deleted at
//!   retention; sled keeps only the batch's metadata and indexes;
//! - each part of a day filter's signed bytes in a file of their own, deleted
//!   at retention;
//! - each embargoed key a gateway holds in a file of its own, deleted when the
//!   key is released into a batch; sled keeps only its release time;
//! - a random per-day key under which that day's filter entries are stored
//!   AES-128-encrypted (a permutation of the 16-byte entry, so order and
//!   uniqueness are kept). Deleting the day's key file at retention leaves
//!   sled's copies of the entries unreadable.
//!
//! A file is written and synced before the sled commit that refers to it, and
//! deleted after the commit that stops referring to it; a crash in between leaves
//! an orphan, removed at open. A database from before batches and held keys moved
//! to files has them migrated at open, into files and a rewritten database: sled
//! keeps removed records in its segments, so the old database is replaced whole.
//!
//! Modules: [`keyspace`] (prefixes, key builders), [`records`] (codecs),
//! [`files`] (the files beside sled), [`entries`] (encrypted filter entries),
//! [`migrate`] (older databases), [`sweep`] (orphans at open), [`summary`] (the
//! figures kept up to date on every write), [`traits`] (the interfaces by who
//! needs them) and [`sled_store`] (their implementation).

pub mod entries;
pub mod files;
pub mod keyspace;
pub mod migrate;
pub mod records;
pub mod sled_store;
pub mod summary;
pub mod sweep;
pub mod traits;
pub mod warnings;

pub use files::{
    files_dir, BATCH_FILE_PREFIX, ENTRY_KEY_FILE_PREFIX, FILTER_FILE_PREFIX, PENDING_FILE_PREFIX,
};
pub use records::{
    content_id, BatchDay, BatchMeta, CodeRecord, Expired, ExpiredBatch, FilterMeta, GatewayCommit,
    PendingKey, PublishedPeriod, PutOutcome, StoredBatch, StoredEntry, StoredFilter,
};
pub use sled_store::{SledStore, DEFAULT_CACHE_BYTES};
pub use summary::{DaySummary, StoreSummary};
pub use traits::{
    BatchStore, CodeStore, FilterStore, GatewayStore, PoolStore, RetentionStore, Store,
    SummaryStore,
};

/// Why a storage operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The database could not be opened, read, written or flushed.
    #[error("database: {0}")]
    Db(#[from] sled::Error),
    /// Another process (or another store in this one) has the database open:
    /// two nodes cannot share a data dir.
    #[error("the database {} is in use by another process (two nodes cannot share a data dir)", .0.display())]
    InUse(std::path::PathBuf),
    /// A stored record does not decode (corruption or a foreign database).
    #[error("stored record under {0} is corrupt")]
    Corrupt(&'static str),
    /// A file next to the database (day filters, entry keys) failed.
    #[error("file: {0}")]
    Io(#[from] std::io::Error),
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::files::{replaced_dir, rewrite_dir, write_durably};
    use super::keyspace::{
        batch_key, batch_key_with, log_filter_index_key, pending_key, LEGACY_BATCH_BODY,
        LEGACY_FILTER,
    };
    use super::migrate::finish_replacement;
    use super::records::encode_key;
    use super::*;
    use std::path::{Path, PathBuf};
    use traceless_protocol::{DiagnosisKey, Tek};

    fn meta(sequence: u64) -> BatchMeta {
        BatchMeta {
            origin: "test.health".into(),
            sequence,
            version: 1,
            days: vec![BatchDay {
                day: 19_675,
                key_count: 1,
                expires_at: 2_000_000_000,
            }],
            created_at: 1,
            visible_from: 0,
            content_id: [sequence as u8; 32],
        }
    }

    /// The files under `dir` whose raw bytes contain `needle`.
    fn files_containing(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
        let mut found = Vec::new();
        let mut todo = vec![dir.to_owned()];
        while let Some(d) = todo.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    todo.push(p);
                } else if std::fs::read(&p)
                    .unwrap()
                    .windows(needle.len())
                    .any(|w| w == needle)
                {
                    found.push(p);
                }
            }
        }
        found
    }

    /// A data directory written before batch bodies and held keys moved to files
    /// (`x` records; `p` records holding the key) is served after open, from
    /// files, and the old database, whose segments held the key and the body, is
    /// replaced by a rewritten one that holds neither.
    #[test]
    fn old_databases_are_migrated_to_files_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let tek = *b"old-held-tek-\x01\x02\x03";
        let body = b"old batch body, in sled";
        let key = DiagnosisKey {
            tek: Tek(tek),
            rolling_start: 2_833_200,
            rolling_period: 144,
            transmission_risk: 4,
            days_since_onset: 1,
        };
        {
            let store = SledStore::open(&path).unwrap();
            let m = meta(1);
            store
                .db
                .insert(batch_key(&m.origin, 1), m.encode())
                .unwrap();
            store
                .db
                .insert(batch_key_with(LEGACY_BATCH_BODY, &m.origin, 1), &body[..])
                .unwrap();
            store
                .db
                .insert(pending_key(1, *b"idid5678"), encode_key(&key))
                .unwrap();
            store.db.flush().unwrap();
        }
        assert!(
            !files_containing(&path, &tek).is_empty(),
            "control: sled wrote the key"
        );
        assert!(
            !files_containing(&path, body).is_empty(),
            "control: sled wrote the body"
        );
        let store = SledStore::open_after_drop(&path).unwrap();
        assert_eq!(files_containing(&path, &tek), Vec::<PathBuf>::new());
        assert_eq!(files_containing(&path, body), Vec::<PathBuf>::new());
        assert!(!rewrite_dir(&path).exists() && !replaced_dir(&path).exists());
        let b = store.get_batch("test.health", 1).unwrap().unwrap();
        assert_eq!(b.bytes, body);
        assert!(store.batch_file("test.health", 1).exists());
        assert_eq!(store.db.scan_prefix([LEGACY_BATCH_BODY]).count(), 0);
        let due = store.pending_due(1).unwrap();
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].key, key);
        assert!(store.db.get(&due[0].id).unwrap().unwrap().is_empty());
    }

    /// A batch record written before period batches (68 bytes: day, key
    /// count, created_at, visible_from, expires_at, content id) is read as the
    /// version 1 batch it was, found by its day and deleted at its expiry.
    #[test]
    fn batch_records_of_the_old_layout_read_as_version_1() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let m = meta(4);
        let d = m.days[0];
        let mut old = Vec::new();
        old.extend_from_slice(&d.day.to_be_bytes());
        for n in [d.key_count, m.created_at, m.visible_from, d.expires_at] {
            old.extend_from_slice(&n.to_be_bytes());
        }
        old.extend_from_slice(&m.content_id);
        assert_eq!(old.len(), 68);
        let store = SledStore::open(&path).unwrap();
        let key = batch_key(&m.origin, m.sequence);
        assert_eq!(BatchMeta::decode(&key, &old).unwrap(), m);
        assert_eq!(BatchMeta::decode(&key, &m.encode()).unwrap(), m);
        // A period batch's days round-trip; a cut record is corrupt.
        let period = BatchMeta {
            version: 2,
            days: (0..3)
                .map(|i| BatchDay {
                    day: d.day + i,
                    key_count: 10 + u64::from(i),
                    expires_at: d.expires_at + u64::from(i) * 86_400,
                })
                .collect(),
            ..m.clone()
        };
        let encoded = period.encode();
        assert_eq!(BatchMeta::decode(&key, &encoded).unwrap(), period);
        assert_eq!(period.expires_at(), d.expires_at);
        assert_eq!(period.last_day(), d.day + 2);
        assert!(matches!(
            BatchMeta::decode(&key, &encoded[..encoded.len() - 1]),
            Err(StorageError::Corrupt("b"))
        ));
        store
            .put_batch(&StoredBatch {
                meta: m.clone(),
                bytes: vec![9; 40],
            })
            .unwrap();
        store.db.insert(&key, old).unwrap();
        assert_eq!(store.batches_of_day(d.day).unwrap(), vec![m.clone()]);
        let expired = store.expired(d.expires_at).unwrap();
        assert_eq!(expired.batches.len(), 1);
        assert_eq!(
            (
                expired.batches[0].days.clone(),
                expired.batches[0].kept.clone()
            ),
            (m.days.clone(), None)
        );
    }

    fn part(day: u32, revision: u64, fill: u8) -> StoredFilter {
        StoredFilter {
            meta: FilterMeta {
                origin: "test.health".into(),
                day,
                revision,
                created_at: 1_728_000_000,
                entries: 2,
                content_id: [fill; 32],
                len: 3,
            },
            bytes: vec![fill; 3],
        }
    }

    /// A gateway's data dir with a version-1 day filter (its `f` record, its
    /// file and its log-index key) opens with all three gone and the day's
    /// entries unfolded; a part then folds the entries it names and no others,
    /// and a second part under the same revision is a duplicate or a conflict.
    #[test]
    fn version_1_filters_are_dropped_at_open_and_their_entries_fold_into_parts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let day = 20_000;
        let entries: Vec<StoredEntry> = (0..3u8)
            .map(|i| StoredEntry {
                day,
                interval: day * 144 + u32::from(i),
                entry: traceless_protocol::FilterEntry([i; 16]),
            })
            .collect();
        let v1_file;
        {
            let store = SledStore::open(&path).unwrap();
            store
                .commit_gateway(&GatewayCommit {
                    filter_entries: entries.clone(),
                    ..Default::default()
                })
                .unwrap();
            let mut k = vec![LEGACY_FILTER];
            k.extend_from_slice(b"test.health\0");
            k.extend_from_slice(&day.to_be_bytes());
            store.db.insert(k, vec![0u8; 72]).unwrap();
            v1_file = store.filter_file("test.health", day, 1);
            write_durably(&v1_file, b"a version-1 filter").unwrap();
            store
                .db
                .insert(
                    log_filter_index_key("test.health", day, 1),
                    &7u64.to_be_bytes()[..],
                )
                .unwrap();
            store.db.flush().unwrap();
        }
        let store = SledStore::open_after_drop(&path).unwrap();
        assert_eq!(store.db.scan_prefix([LEGACY_FILTER]).count(), 0);
        assert!(!store
            .db
            .contains_key(log_filter_index_key("test.health", day, 1))
            .unwrap());
        assert!(!v1_file.exists(), "the version-1 file is swept");
        assert!(store.all_filters().unwrap().is_empty());
        assert_eq!(store.unfolded_entries_of_day(day).unwrap(), entries);

        let first = part(day, 1, 1);
        assert_eq!(
            store.put_built_filter(&first, &entries[..2]).unwrap(),
            PutOutcome::New
        );
        assert_eq!(store.unfolded_entries_of_day(day).unwrap(), entries[2..]);
        assert_eq!(store.put_filter(&first).unwrap(), PutOutcome::Duplicate);
        assert_eq!(
            store.put_filter(&part(day, 1, 2)).unwrap(),
            PutOutcome::Conflict
        );
        assert_eq!(store.put_filter(&part(day, 2, 3)).unwrap(), PutOutcome::New);
        let held: Vec<u64> = store
            .filter_parts("test.health", day)
            .unwrap()
            .iter()
            .map(|m| m.revision)
            .collect();
        assert_eq!(held, vec![1, 2]);
        assert_eq!(
            store.get_filter("test.health", day, 1).unwrap().unwrap(),
            first
        );
        // A part may fold only entries of its own day.
        let other_day = StoredEntry {
            day: day + 1,
            ..entries[2]
        };
        assert!(matches!(
            store.put_built_filter(&part(day, 3, 4), &[other_day]),
            Err(StorageError::Corrupt(_))
        ));
        assert!(store.get_filter("test.health", day, 3).unwrap().is_none());
        drop(store);
        // Reopened: parts, folds and no orphan sweep of the parts' files.
        let store = SledStore::open_after_drop(&path).unwrap();
        assert_eq!(store.unfolded_entries_of_day(day).unwrap(), entries[2..]);
        assert_eq!(store.filter_parts("test.health", day).unwrap().len(), 2);
        assert_eq!(
            store.get_filter("test.health", day, 1).unwrap().unwrap(),
            first
        );
    }

    /// A replacement a crash interrupted: before the swap, the rewrite is
    /// discarded and the database kept; between the two renames, the rewrite is
    /// put in place; a replaced database left behind is deleted.
    #[test]
    fn interrupted_database_replacements_are_finished_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let mark = |p: &Path, what: &str| {
            std::fs::create_dir_all(p).unwrap();
            std::fs::write(p.join("mark"), what).unwrap();
        };
        let marked = |p: &Path| std::fs::read_to_string(p.join("mark")).unwrap();
        mark(&path, "db");
        mark(&rewrite_dir(&path), "rewrite");
        mark(&replaced_dir(&path), "replaced");
        finish_replacement(&path).unwrap();
        assert_eq!(marked(&path), "db");
        assert!(!rewrite_dir(&path).exists() && !replaced_dir(&path).exists());

        std::fs::rename(&path, replaced_dir(&path)).unwrap();
        mark(&rewrite_dir(&path), "rewrite");
        finish_replacement(&path).unwrap();
        assert_eq!(marked(&path), "rewrite");
        assert!(!rewrite_dir(&path).exists() && !replaced_dir(&path).exists());
    }

    /// A batch file without metadata (a crash before the commit) is removed at
    /// open; a committed one is kept.
    #[test]
    fn orphan_batch_files_are_swept_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let orphan = {
            let store = SledStore::open(&path).unwrap();
            let kept = StoredBatch {
                meta: meta(1),
                bytes: b"kept".to_vec(),
            };
            assert_eq!(store.put_batch(&kept).unwrap(), PutOutcome::New);
            let orphan = store.batch_file("test.health", 2);
            write_durably(&orphan, b"never committed").unwrap();
            orphan
        };
        let store = SledStore::open_after_drop(&path).unwrap();
        assert!(!orphan.exists());
        assert_eq!(
            store.get_batch("test.health", 1).unwrap().unwrap().bytes,
            b"kept"
        );
    }

    /// An upload's keys with one release time share one pool file (a period
    /// reads and removes a file per upload, not per key); keys of another
    /// release time get their own. Each file holds only its keys, and removing
    /// its id removes the file and all of its keys, after a reopen too.
    #[test]
    fn pooled_keys_of_one_commit_share_a_file_per_release_time() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let key = |b: u8| DiagnosisKey {
            tek: Tek([b; 16]),
            rolling_start: 2_833_200,
            rolling_period: 144,
            transmission_risk: 4,
            days_since_onset: 1,
        };
        let store = SledStore::open(&path).unwrap();
        store
            .commit_gateway(&GatewayCommit {
                add_pending: vec![(10, key(1)), (10, key(2)), (20, key(3)), (10, key(4))],
                ..Default::default()
            })
            .unwrap();
        assert_eq!(store.pending_count().unwrap(), 4);
        let due = store.pending_due(10).unwrap();
        let teks: Vec<u8> = due.iter().map(|p| p.key.tek.0[0]).collect();
        assert_eq!(teks, vec![1, 2, 4]);
        assert!(due.iter().all(|p| p.id == due[0].id), "one file");
        let file = store.pending_file(&due[0].id);
        assert_eq!(
            files_containing(&path.with_file_name("db-files"), &[4; 16]),
            vec![file.clone()]
        );
        assert!(files_containing(&path.with_file_name("db-files"), &[3; 16]) != vec![file.clone()]);
        store
            .commit_gateway(&GatewayCommit {
                remove_pending: vec![due[0].id.clone()],
                ..Default::default()
            })
            .unwrap();
        assert!(!file.exists());
        drop(store);
        let store = SledStore::open_after_drop(&path).unwrap();
        assert_eq!(store.pending_count().unwrap(), 1);
        assert!(store.pending_due(10).unwrap().is_empty());
        let later = store.pending_due(20).unwrap();
        assert_eq!(later.len(), 1);
        assert_eq!(later[0].key, key(3));
    }
}

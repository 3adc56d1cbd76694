//! Durable storage of batches, day filters and filter entries (SPEC.md §5.8), the
//! deletion log, upload codes and embargoed keys.
//!
//! Everything lives in one sled tree under one-byte key prefixes, so that every
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
//! - each day filter's signed bytes in a file of their own, deleted at retention;
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

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use aes::cipher::{BlockCipherDecrypt, BlockCipherEncrypt, KeyInit};
use aes::Aes128;
use rand_core::{OsRng, RngCore};
use sha2::{Digest, Sha256};
use traceless_protocol::filter::FILTER_ENTRY_LEN;
use traceless_protocol::wire::{filter_expires_at, SignedDeletionRecord};
use traceless_protocol::{Batch, DayFilter, DiagnosisKey, FilterEntry, Tek};

/// Why a storage operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The database could not be opened, read, written or flushed.
    #[error("database: {0}")]
    Db(#[from] sled::Error),
    /// A stored record does not decode (corruption or a foreign database).
    #[error("stored record under {0} is corrupt")]
    Corrupt(&'static str),
    /// A file next to the database (day filters, entry keys) failed.
    #[error("file: {0}")]
    Io(#[from] std::io::Error),
}

/// File-name prefix of the per-day keys that encrypt stored filter entries.
pub const ENTRY_KEY_FILE_PREFIX: &str = "entry-key-";
/// File-name prefix of stored day filters (`filter-<hex origin>-<day>-<revision>`).
pub const FILTER_FILE_PREFIX: &str = "filter-";
/// File-name prefix of stored batches (`batch-<hex origin>-<sequence>`).
pub const BATCH_FILE_PREFIX: &str = "batch-";
/// File-name prefix of embargoed keys held by a gateway (`pending-<hex id>`).
pub const PENDING_FILE_PREFIX: &str = "pending-";

/// What is known about a stored batch without reading its bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchMeta {
    /// Authority id.
    pub origin: String,
    /// Per-origin sequence number.
    pub sequence: u64,
    /// UTC day of the keys.
    pub day: u32,
    /// Number of keys.
    pub key_count: u64,
    /// Publication time claimed by the authority.
    pub created_at: u64,
    /// Unix seconds from which the batch may be served and forwarded (embargo).
    pub visible_from: u64,
    /// Unix seconds at which retention deletes the batch.
    pub expires_at: u64,
    /// SHA-256 of the `SignedBatch` encoding: ETag and gossip message id.
    pub content_id: [u8; 32],
}

impl BatchMeta {
    /// Metadata of a verified batch and its exact signed bytes.
    pub fn of(batch: &Batch, signed_bytes: &[u8]) -> Self {
        BatchMeta {
            origin: batch.origin.clone(),
            sequence: batch.sequence,
            day: batch.day,
            key_count: batch.keys.len() as u64,
            created_at: batch.created_at,
            visible_from: crate::embargo::batch_visible_from(batch),
            expires_at: batch.expires_at(),
            content_id: content_id(signed_bytes),
        }
    }

    /// Whether the batch may be served and forwarded at `now`.
    pub fn is_visible(&self, now: u64) -> bool {
        now >= self.visible_from
    }

    const LEN: usize = 4 + 8 * 4 + 32;

    fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(Self::LEN);
        v.extend_from_slice(&self.day.to_be_bytes());
        v.extend_from_slice(&self.key_count.to_be_bytes());
        v.extend_from_slice(&self.created_at.to_be_bytes());
        v.extend_from_slice(&self.visible_from.to_be_bytes());
        v.extend_from_slice(&self.expires_at.to_be_bytes());
        v.extend_from_slice(&self.content_id);
        v
    }

    fn decode(key: &[u8], v: &[u8]) -> Result<Self, StorageError> {
        let (origin, sequence) = split_batch_key(&key[1..]).ok_or(StorageError::Corrupt("b"))?;
        if v.len() != Self::LEN {
            return Err(StorageError::Corrupt("b"));
        }
        let u64_at = |i: usize| u64::from_be_bytes(v[i..i + 8].try_into().unwrap_or([0; 8]));
        Ok(BatchMeta {
            origin,
            sequence,
            day: u32::from_be_bytes(v[0..4].try_into().unwrap_or([0; 4])),
            key_count: u64_at(4),
            created_at: u64_at(12),
            visible_from: u64_at(20),
            expires_at: u64_at(28),
            content_id: v[36..68].try_into().unwrap_or([0; 32]),
        })
    }
}

/// SHA-256 of a `SignedBatch` encoding.
pub fn content_id(signed_bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(signed_bytes).into()
}

/// A batch as stored: its metadata and exact signed bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredBatch {
    /// Metadata.
    pub meta: BatchMeta,
    /// The `SignedBatch` encoding, served byte for byte.
    pub bytes: Vec<u8>,
}

/// Result of storing a batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PutOutcome {
    /// Stored now, and flushed.
    New,
    /// The identical batch was already stored.
    Duplicate,
    /// Another batch with the same origin and sequence is stored (the authority
    /// signed two different batches under one number); the first one is kept.
    Conflict,
}

/// What is known about a stored day filter without reading its bytes. A node
/// keeps only the newest revision per (origin, day).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FilterMeta {
    /// Authority id.
    pub origin: String,
    /// UTC day of the entries.
    pub day: u32,
    /// Revision of the stored (newest) filter.
    pub revision: u64,
    /// The first revision this node stored for (origin, day): with `revision`,
    /// the range the deletion log records.
    pub first_revision: u64,
    /// Publication time claimed by the authority.
    pub created_at: u64,
    /// Entries folded into the filter.
    pub entries: u64,
    /// SHA-256 of the `SignedFilter` encoding: ETag and gossip message id.
    pub content_id: [u8; 32],
    /// Length of the `SignedFilter` encoding.
    pub len: u64,
}

impl FilterMeta {
    /// Metadata of a verified filter and its exact signed bytes.
    pub fn of(filter: &DayFilter, signed_bytes: &[u8]) -> Self {
        FilterMeta {
            origin: filter.origin.clone(),
            day: filter.day,
            revision: filter.revision,
            first_revision: filter.revision,
            created_at: filter.created_at,
            entries: filter.filter.entries(),
            content_id: content_id(signed_bytes),
            len: signed_bytes.len() as u64,
        }
    }

    /// Unix seconds after which retention deletes the filter.
    pub fn expires_at(&self) -> u64 {
        filter_expires_at(self.day)
    }

    const LEN: usize = 8 * 5 + 32;

    fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(Self::LEN);
        for n in [
            self.revision,
            self.first_revision,
            self.created_at,
            self.entries,
            self.len,
        ] {
            v.extend_from_slice(&n.to_be_bytes());
        }
        v.extend_from_slice(&self.content_id);
        v
    }

    fn decode(key: &[u8], v: &[u8]) -> Result<Self, StorageError> {
        let bad = || StorageError::Corrupt("f");
        let (origin, day) = split_filter_key(key.get(1..).ok_or_else(bad)?).ok_or_else(bad)?;
        if v.len() != Self::LEN {
            return Err(bad());
        }
        let u64_at = |i: usize| u64::from_be_bytes(v[i..i + 8].try_into().unwrap_or([0; 8]));
        Ok(FilterMeta {
            origin,
            day,
            revision: u64_at(0),
            first_revision: u64_at(8),
            created_at: u64_at(16),
            entries: u64_at(24),
            len: u64_at(32),
            content_id: v[40..72].try_into().map_err(|_| bad())?,
        })
    }
}

/// A day filter as stored: its metadata and exact signed bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredFilter {
    /// Metadata.
    pub meta: FilterMeta,
    /// The `SignedFilter` encoding, served byte for byte.
    pub bytes: Vec<u8>,
}

/// Result of storing a day filter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FilterPutOutcome {
    /// Stored (replacing a lower revision, if any), and flushed.
    New,
    /// A revision at least as high is stored already; nothing changed.
    Stale,
}

/// One filter entry a gateway holds: the UTC day, the interval and the entry.
/// Never the TEK or the RPI it came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct StoredEntry {
    /// UTC day of `interval`.
    pub day: u32,
    /// The chosen interval.
    pub interval: u32,
    /// `SHA-256(context || 0 || RPI || interval)[..16]`.
    pub entry: FilterEntry,
}

/// What one retention run deletes.
#[derive(Clone, Debug, Default)]
pub struct Expired {
    /// Expired batches.
    pub batches: Vec<BatchMeta>,
    /// Expired day filters.
    pub filters: Vec<FilterMeta>,
    /// Days whose stored filter entries expired, with how many there are.
    pub entry_days: Vec<(u32, u64)>,
}

impl Expired {
    /// Whether nothing is due.
    pub fn is_empty(&self) -> bool {
        self.batches.is_empty() && self.filters.is_empty() && self.entry_days.is_empty()
    }
}

/// A single-use upload code as stored: never the code, only a salted hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CodeRecord {
    /// Random per-code salt.
    pub salt: [u8; 16],
    /// SHA-256 of `salt || secret`.
    pub hash: [u8; 32],
    /// Unix seconds after which the code is void.
    pub expires_at: u64,
}

impl CodeRecord {
    #[cfg(test)]
    pub(crate) fn encode_for_test(&self) -> Vec<u8> {
        self.encode()
    }

    fn encode(&self) -> Vec<u8> {
        [&self.salt[..], &self.hash, &self.expires_at.to_be_bytes()].concat()
    }

    fn decode(v: &[u8]) -> Result<Self, StorageError> {
        if v.len() != 56 {
            return Err(StorageError::Corrupt("c"));
        }
        Ok(CodeRecord {
            salt: v[0..16]
                .try_into()
                .map_err(|_| StorageError::Corrupt("c"))?,
            hash: v[16..48]
                .try_into()
                .map_err(|_| StorageError::Corrupt("c"))?,
            expires_at: u64::from_be_bytes(
                v[48..56]
                    .try_into()
                    .map_err(|_| StorageError::Corrupt("c"))?,
            ),
        })
    }
}

/// A diagnosis key a gateway accepted but holds back until its embargo ends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingKey {
    /// Storage id (release time and a random suffix).
    pub id: Vec<u8>,
    /// The key.
    pub key: DiagnosisKey,
}

/// One atomic change made by a gateway for an upload or an embargo release.
#[derive(Debug, Default)]
pub struct GatewayCommit {
    /// Upload code to consume.
    pub consume_code: Option<[u8; 8]>,
    /// Embargoed keys to hold, with their release times.
    pub add_pending: Vec<(u64, DiagnosisKey)>,
    /// Pending keys now released into `batches`.
    pub remove_pending: Vec<Vec<u8>>,
    /// New batches signed by the gateway.
    pub batches: Vec<StoredBatch>,
    /// The gateway's next sequence number after these batches.
    pub next_sequence: Option<(String, u64)>,
    /// An upload token to mark spent: (epoch, SHA-256 of its input).
    pub spend_token: Option<(u32, [u8; 32])>,
    /// Filter entries of a filter-form upload (entries already stored are kept once).
    pub filter_entries: Vec<StoredEntry>,
}

/// The node's storage: a small interface so that the engine can be swapped.
pub trait Store: Send + Sync + 'static {
    /// Stores a verified batch durably (or reports it as a duplicate or conflict).
    fn put_batch(&self, batch: &StoredBatch) -> Result<PutOutcome, StorageError>;
    /// Stores many verified batches with one flush (bulk ingest).
    fn put_batches(&self, batches: &[StoredBatch]) -> Result<Vec<PutOutcome>, StorageError>;
    /// Stores a verified batch that is already being announced, so it is not held
    /// for the release job: a visible batch accepted from gossip, which gossipsub
    /// forwards itself once validated.
    fn put_announced_batch(&self, batch: &StoredBatch) -> Result<PutOutcome, StorageError>;
    /// A stored batch.
    fn get_batch(&self, origin: &str, sequence: u64) -> Result<Option<StoredBatch>, StorageError>;
    /// Metadata of one origin's batches with a sequence above `after`, ascending.
    fn list_batches(
        &self,
        origin: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<BatchMeta>, StorageError>;
    /// Metadata of every stored batch, by origin then sequence.
    fn all_batches(&self) -> Result<Vec<BatchMeta>, StorageError>;
    /// Metadata of the batches of one UTC day.
    fn batches_of_day(&self, day: u32) -> Result<Vec<BatchMeta>, StorageError>;
    /// Metadata of batches whose retention ended at or before `now`.
    fn expired_batches(&self, now: u64) -> Result<Vec<BatchMeta>, StorageError>;
    /// Deletes expired batches, filters and filter entries and appends the record
    /// of it to the deletion log, atomically.
    fn delete_and_log(
        &self,
        expired: &Expired,
        record: &SignedDeletionRecord,
    ) -> Result<(), StorageError>;
    /// The deletion log, oldest first.
    fn deletion_log(&self) -> Result<Vec<SignedDeletionRecord>, StorageError>;
    /// Held (embargoed) batches that become visible at or before `now`.
    fn held_due(&self, now: u64) -> Result<Vec<BatchMeta>, StorageError>;
    /// Marks held batches as released (they have been or are being gossiped).
    fn mark_released(&self, batches: &[BatchMeta]) -> Result<(), StorageError>;
    /// Adds upload codes (by id).
    fn insert_codes(&self, codes: &[([u8; 8], CodeRecord)]) -> Result<(), StorageError>;
    /// An upload code's record.
    fn get_code(&self, id: &[u8; 8]) -> Result<Option<CodeRecord>, StorageError>;
    /// Removes codes that expired at or before `now`; returns how many.
    fn purge_codes(&self, now: u64) -> Result<usize, StorageError>;
    /// Embargoed keys whose release time is at or before `now`.
    fn pending_due(&self, now: u64) -> Result<Vec<PendingKey>, StorageError>;
    /// Number of embargoed keys held by the gateway.
    fn pending_count(&self) -> Result<u64, StorageError>;
    /// The gateway's next sequence number for `origin` (1 if none yet).
    fn next_sequence(&self, origin: &str) -> Result<u64, StorageError>;
    /// Applies a gateway change atomically and durably.
    fn commit_gateway(&self, commit: &GatewayCommit) -> Result<(), StorageError>;
    /// Whether an upload token (epoch, SHA-256 of its input) was spent.
    fn token_spent(&self, epoch: u32, id: &[u8; 32]) -> Result<bool, StorageError>;
    /// Forgets spent tokens of every epoch not in `keep` (their key is retired, so
    /// they can never verify again); returns how many were removed.
    fn purge_spent_tokens(&self, keep: &[u32]) -> Result<usize, StorageError>;
    /// Stores a verified day filter if its revision is higher than the stored
    /// one for its (origin, day), replacing that one, durably.
    fn put_filter(&self, filter: &StoredFilter) -> Result<FilterPutOutcome, StorageError>;
    /// The newest stored filter of (origin, day).
    fn get_filter(&self, origin: &str, day: u32) -> Result<Option<StoredFilter>, StorageError>;
    /// Metadata of the newest stored filter of (origin, day).
    fn filter_meta(&self, origin: &str, day: u32) -> Result<Option<FilterMeta>, StorageError>;
    /// Metadata of every stored filter, by origin then day.
    fn all_filters(&self) -> Result<Vec<FilterMeta>, StorageError>;
    /// Days with stored filter entries (gateway), with their entry counts, ascending.
    fn filter_entry_days(&self) -> Result<Vec<(u32, u64)>, StorageError>;
    /// The stored entries of one day, by interval then entry.
    fn filter_entries_of_day(&self, day: u32) -> Result<Vec<StoredEntry>, StorageError>;
    /// Whether an entry is stored.
    fn has_filter_entry(&self, entry: &StoredEntry) -> Result<bool, StorageError>;
    /// Expired batches, filters and filter-entry days at `now` (due when their
    /// expiry is at or before `now`).
    fn expired(&self, now: u64) -> Result<Expired, StorageError>;
}

fn filter_key(prefix: u8, origin: &str, day: u32) -> Vec<u8> {
    let mut k = Vec::with_capacity(origin.len() + 6);
    k.push(prefix);
    k.extend_from_slice(origin.as_bytes());
    k.push(0);
    k.extend_from_slice(&day.to_be_bytes());
    k
}

fn split_filter_key(k: &[u8]) -> Option<(String, u32)> {
    if k.len() < 6 {
        return None;
    }
    let (origin, rest) = k.split_at(k.len() - 5);
    if rest[0] != 0 {
        return None;
    }
    let day = u32::from_be_bytes(rest[1..].try_into().ok()?);
    Some((String::from_utf8(origin.to_vec()).ok()?, day))
}

/// `n || day || interval || sealed entry`: entries sort by day, interval and the
/// encrypted entry only.
fn entry_key(e: &StoredEntry) -> Vec<u8> {
    let mut k = Vec::with_capacity(9 + FILTER_ENTRY_LEN);
    k.push(b'n');
    k.extend_from_slice(&e.day.to_be_bytes());
    k.extend_from_slice(&e.interval.to_be_bytes());
    k.extend_from_slice(&e.entry.0);
    k
}

/// `k || day`: the number of entries stored for a day.
fn entry_count_key(day: u32) -> Vec<u8> {
    let mut k = vec![b'k'];
    k.extend_from_slice(&day.to_be_bytes());
    k
}

fn spent_key(epoch: u32, id: &[u8; 32]) -> Vec<u8> {
    let mut k = vec![b't'];
    k.extend_from_slice(&epoch.to_be_bytes());
    k.extend_from_slice(id);
    k
}

/// The sled implementation of [`Store`], with day filters and entry keys in files
/// next to the database (see the module docs).
pub struct SledStore {
    db: sled::Db,
    write: Mutex<()>,
    files: PathBuf,
    entry_keys: Mutex<BTreeMap<u32, [u8; 16]>>,
}

/// The directory next to the database `db_dir` for the files retention deletes.
pub fn files_dir(db_dir: &Path) -> PathBuf {
    sibling(db_dir, "-files")
}

/// `db_dir` with `suffix` appended to its name.
fn sibling(db_dir: &Path, suffix: &str) -> PathBuf {
    let name = db_dir
        .file_name()
        .map_or_else(|| "db".into(), |n| n.to_string_lossy().into_owned());
    db_dir.with_file_name(format!("{name}{suffix}"))
}

/// Where a database is rewritten before it replaces the one in `db_dir`.
fn rewrite_dir(db_dir: &Path) -> PathBuf {
    sibling(db_dir, ".rewrite")
}

/// Where the replaced database waits for deletion.
fn replaced_dir(db_dir: &Path) -> PathBuf {
    sibling(db_dir, ".replaced")
}

fn open_sled(dir: &Path) -> Result<sled::Db, StorageError> {
    Ok(sled::Config::new()
        .path(dir)
        .mode(sled::Mode::HighThroughput)
        .flush_every_ms(None)
        .open()?)
}

/// [`open_sled`] right after a handle on `dir` was dropped: sled's background
/// threads hold its file lock briefly after the drop. Bounded (2 s).
fn open_sled_after_drop(dir: &Path) -> Result<sled::Db, StorageError> {
    for _ in 0..200 {
        match open_sled(dir) {
            Err(StorageError::Db(_)) => std::thread::sleep(std::time::Duration::from_millis(10)),
            other => return other,
        }
    }
    open_sled(dir)
}

/// Completes or undoes a database replacement a crash interrupted: a rewrite
/// that had not replaced the database yet is discarded (the migration runs
/// again), one that had is put in place, and a replaced database is deleted.
fn finish_replacement(db_dir: &Path) -> Result<(), StorageError> {
    let rewrite = rewrite_dir(db_dir);
    if rewrite.exists() {
        if db_dir.exists() {
            std::fs::remove_dir_all(&rewrite)?;
        } else {
            std::fs::rename(&rewrite, db_dir)?;
        }
    }
    remove_dir_bounded(&replaced_dir(db_dir))
}

/// Syncs the directory holding `path`, so that a rename of `path` is durable.
fn sync_parent(path: &Path) -> Result<(), StorageError> {
    let parent = path
        .parent()
        .ok_or(StorageError::Corrupt("database path"))?;
    std::fs::File::open(parent)?.sync_all()?;
    Ok(())
}

/// Deletes `dir` and everything in it; retries briefly while a dropped sled
/// handle's threads may still write into it. Gone already is fine.
fn remove_dir_bounded(dir: &Path) -> Result<(), StorageError> {
    for _ in 0..100 {
        match std::fs::remove_dir_all(dir) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(10)),
            Ok(()) => return Ok(()),
        }
    }
    Ok(std::fs::remove_dir_all(dir)?)
}

/// Writes `bytes` to `path` and syncs the file and its directory. A file is only
/// ever referred to by a record committed after this returned, and never
/// rewritten once referred to, so a file a crash or an error leaves half-written
/// is one no record refers to: removed here on error, or at the next open. (No
/// temporary file and rename: on ext4 that cut `bench` durable ingest from
/// ~1.6 M to ~0.17 M keys/s.)
fn write_durably(path: &Path, bytes: &[u8]) -> Result<(), StorageError> {
    write_all_durably(&[(path.to_owned(), bytes)])
}

/// [`write_durably`] for many files, with one fsync of each directory at the end.
fn write_all_durably(files: &[(PathBuf, &[u8])]) -> Result<(), StorageError> {
    let mut dirs = std::collections::BTreeSet::new();
    for (path, bytes) in files {
        let dir = path.parent().ok_or(StorageError::Corrupt("file path"))?;
        if dirs.insert(dir) {
            std::fs::create_dir_all(dir)?;
        }
        let written = std::fs::File::create(path)
            .and_then(|mut f| f.write_all(bytes).and_then(|()| f.sync_all()));
        if let Err(e) = written {
            let _ = std::fs::remove_file(path);
            return Err(e.into());
        }
    }
    for dir in dirs {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// Deletes a file; one that is already gone is fine.
fn remove_if_present(path: &Path) -> Result<(), StorageError> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
        _ => Ok(()),
    }
}

/// Reads a file; `None` if it is gone (deleted between reading the metadata
/// that refers to it and the file).
fn read_if_present(path: &Path) -> Result<Option<Vec<u8>>, StorageError> {
    match std::fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}

fn batch_file_name(origin: &str, sequence: u64) -> String {
    format!("{BATCH_FILE_PREFIX}{}-{sequence}", hex::encode(origin))
}

fn parse_batch_file(name: &str) -> Option<(String, u64)> {
    let rest = name.strip_prefix(BATCH_FILE_PREFIX)?;
    let (origin, sequence) = rest.split_once('-')?;
    let origin = String::from_utf8(hex::decode(origin).ok()?).ok()?;
    Some((origin, sequence.parse().ok()?))
}

fn filter_file_stem(origin: &str, day: u32) -> String {
    format!("{FILTER_FILE_PREFIX}{}-{day}-", hex::encode(origin))
}

fn parse_filter_file(name: &str) -> Option<(String, u32, u64)> {
    let rest = name.strip_prefix(FILTER_FILE_PREFIX)?;
    let mut parts = rest.split('-');
    let origin = String::from_utf8(hex::decode(parts.next()?).ok()?).ok()?;
    let day = parts.next()?.parse().ok()?;
    let revision = parts.next()?.parse().ok()?;
    parts.next().is_none().then_some((origin, day, revision))
}

fn batch_key(prefix: u8, origin: &str, sequence: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(origin.len() + 10);
    k.push(prefix);
    k.extend_from_slice(origin.as_bytes());
    k.push(0);
    k.extend_from_slice(&sequence.to_be_bytes());
    k
}

fn split_batch_key(k: &[u8]) -> Option<(String, u64)> {
    if k.len() < 10 {
        return None;
    }
    let (origin, rest) = k.split_at(k.len() - 9);
    if rest[0] != 0 {
        return None;
    }
    let seq = u64::from_be_bytes(rest[1..].try_into().ok()?);
    Some((String::from_utf8(origin.to_vec()).ok()?, seq))
}

fn indexed_key(prefix: u8, lead: &[u8], origin: &str, sequence: u64) -> Vec<u8> {
    let mut k = vec![prefix];
    k.extend_from_slice(lead);
    k.extend_from_slice(&batch_key(0, origin, sequence)[1..]);
    k
}

fn encode_key(k: &DiagnosisKey) -> Vec<u8> {
    let mut v = k.tek.0.to_vec();
    v.extend_from_slice(&k.rolling_start.to_be_bytes());
    v.extend_from_slice(&k.rolling_period.to_be_bytes());
    v.push(k.transmission_risk);
    v.push(k.days_since_onset as u8);
    v
}

fn decode_key(v: &[u8]) -> Result<DiagnosisKey, StorageError> {
    let bad = || StorageError::Corrupt("p");
    if v.len() != 26 {
        return Err(bad());
    }
    Ok(DiagnosisKey {
        tek: Tek(v[0..16].try_into().map_err(|_| bad())?),
        rolling_start: u32::from_be_bytes(v[16..20].try_into().map_err(|_| bad())?),
        rolling_period: u32::from_be_bytes(v[20..24].try_into().map_err(|_| bad())?),
        transmission_risk: v[24],
        days_since_onset: v[25] as i8,
    })
}

impl SledStore {
    /// Opens (or creates) the database in `dir`.
    pub fn open(dir: &Path) -> Result<Self, StorageError> {
        Self::open_with(dir, open_sled)
    }

    /// [`SledStore::open`] right after a store on `dir` was dropped (tests
    /// reopening a database); see [`open_sled_after_drop`].
    #[cfg(test)]
    fn open_after_drop(dir: &Path) -> Result<Self, StorageError> {
        Self::open_with(dir, open_sled_after_drop)
    }

    fn open_with(
        dir: &Path,
        open: fn(&Path) -> Result<sled::Db, StorageError>,
    ) -> Result<Self, StorageError> {
        finish_replacement(dir)?;
        let store = Self::with_db(open(dir)?, dir);
        let store = if store.migrate_to_files(dir)? {
            drop(store);
            std::fs::rename(dir, replaced_dir(dir))?;
            std::fs::rename(rewrite_dir(dir), dir)?;
            sync_parent(dir)?;
            remove_dir_bounded(&replaced_dir(dir))?;
            Self::with_db(open_sled_after_drop(dir)?, dir)
        } else {
            store
        };
        store.remove_orphan_files()?;
        Ok(store)
    }

    fn with_db(db: sled::Db, dir: &Path) -> Self {
        SledStore {
            db,
            write: Mutex::new(()),
            files: files_dir(dir),
            entry_keys: Mutex::new(BTreeMap::new()),
        }
    }

    /// Moves what older versions kept inside sled into files: batch bodies
    /// (`x` records) and embargoed keys (the values of `p` records). sled keeps
    /// removed records in its segments, so rather than removing them this copies
    /// every other record, and `p` records without their key, into a fresh
    /// database at [`rewrite_dir`], to replace `dir`'s. Returns whether it did.
    fn migrate_to_files(&self, dir: &Path) -> Result<bool, StorageError> {
        let mut old = Vec::new();
        for item in self.db.scan_prefix([b'x']) {
            let (k, v) = item?;
            let (origin, sequence) = split_batch_key(&k[1..]).ok_or(StorageError::Corrupt("x"))?;
            old.push((k, self.batch_file(&origin, sequence), v));
        }
        for item in self.db.scan_prefix([b'p']) {
            let (k, v) = item?;
            if !v.is_empty() {
                old.push((k.clone(), self.pending_file(&k), v));
            }
        }
        if old.is_empty() {
            return Ok(false);
        }
        let files: Vec<(PathBuf, &[u8])> = old
            .iter()
            .map(|(_, path, v)| (path.clone(), v.as_ref()))
            .collect();
        write_all_durably(&files)?;
        let fresh = open_sled(&rewrite_dir(dir))?;
        let mut ops = sled::Batch::default();
        for (n, item) in self.db.iter().enumerate() {
            let (k, v) = item?;
            match k.first() {
                Some(b'x') => {}
                Some(b'p') => ops.insert(k, &[][..]),
                _ => ops.insert(k, v),
            }
            if n % 10_000 == 9_999 {
                fresh.apply_batch(std::mem::take(&mut ops))?;
            }
        }
        fresh.apply_batch(ops)?;
        fresh.flush()?;
        tracing::info!(
            records = old.len(),
            "moved batch bodies and held keys out of sled into files; database rewritten"
        );
        Ok(true)
    }

    /// Removes files that no record refers to: a batch or held key whose record
    /// was never committed or was deleted, a filter revision whose metadata was
    /// never committed or was replaced, an entry key of a day without entries, a
    /// file half-written when the node crashed, a temporary file of older versions.
    fn remove_orphan_files(&self) -> Result<(), StorageError> {
        let Ok(dir) = std::fs::read_dir(&self.files) else {
            return Ok(());
        };
        for item in dir {
            let path = item?.path();
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let keep = if let Some((origin, sequence)) = parse_batch_file(&name) {
                self.db.contains_key(batch_key(b'b', &origin, sequence))?
            } else if let Some(id) = name.strip_prefix(PENDING_FILE_PREFIX) {
                match hex::decode(id) {
                    Ok(id) => self.db.contains_key([&[b'p'][..], &id].concat())?,
                    Err(_) => false,
                }
            } else if let Some((origin, day, revision)) = parse_filter_file(&name) {
                self.filter_meta(&origin, day)?
                    .is_some_and(|m| m.revision == revision)
            } else if let Some(day) = name.strip_prefix(ENTRY_KEY_FILE_PREFIX) {
                day.parse::<u32>()
                    .ok()
                    .map(|d| self.db.contains_key(entry_count_key(d)))
                    .transpose()?
                    .unwrap_or(false)
            } else {
                false
            };
            if !keep {
                std::fs::remove_file(&path)?;
            }
        }
        Ok(())
    }

    fn batch_file(&self, origin: &str, sequence: u64) -> PathBuf {
        self.files.join(batch_file_name(origin, sequence))
    }

    /// The file of a held key, named by its sled key (`p || release time || random`).
    fn pending_file(&self, id: &[u8]) -> PathBuf {
        let id = id.get(1..).unwrap_or_default();
        self.files
            .join(format!("{PENDING_FILE_PREFIX}{}", hex::encode(id)))
    }

    fn filter_file(&self, origin: &str, day: u32, revision: u64) -> PathBuf {
        self.files
            .join(format!("{}{revision}", filter_file_stem(origin, day)))
    }

    /// Deletes every file of (origin, day): the stored revision and any orphan.
    fn remove_filter_files(&self, origin: &str, day: u32) -> Result<(), StorageError> {
        let stem = filter_file_stem(origin, day);
        let Ok(dir) = std::fs::read_dir(&self.files) else {
            return Ok(());
        };
        for item in dir {
            let path = item?.path();
            if path
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(&stem))
            {
                std::fs::remove_file(&path)?;
            }
        }
        Ok(())
    }

    /// Makes the deletions in the files directory durable.
    fn sync_files_dir(&self) -> Result<(), StorageError> {
        if let Ok(d) = std::fs::File::open(&self.files) {
            d.sync_all()?;
        }
        Ok(())
    }

    fn entry_key_path(&self, day: u32) -> PathBuf {
        self.files.join(format!("{ENTRY_KEY_FILE_PREFIX}{day}"))
    }

    /// The cipher of a day's entries; with `create`, a new random key is written
    /// durably if the day has none yet.
    fn entry_cipher(&self, day: u32, create: bool) -> Result<Option<Aes128>, StorageError> {
        let mut keys = self.entry_keys.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(k) = keys.get(&day) {
            return Ok(Some(Aes128::new(&(*k).into())));
        }
        let path = self.entry_key_path(day);
        let key: [u8; 16] = match std::fs::read(&path) {
            Ok(b) => b
                .try_into()
                .map_err(|_| StorageError::Corrupt("entry key"))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => {
                let mut k = [0u8; 16];
                OsRng.fill_bytes(&mut k);
                write_durably(&path, &k)?;
                k
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        keys.insert(day, key);
        Ok(Some(Aes128::new(&key.into())))
    }

    /// The sled key of an entry: the entry encrypted under its day's key.
    fn sealed_entry_key(cipher: &Aes128, e: &StoredEntry) -> Vec<u8> {
        let mut block = e.entry.0.into();
        cipher.encrypt_block(&mut block);
        let sealed: [u8; FILTER_ENTRY_LEN] = block.into();
        entry_key(&StoredEntry {
            entry: FilterEntry(sealed),
            ..*e
        })
    }

    /// Sets a day's entry count as if that many entries were stored.
    #[cfg(test)]
    pub(crate) fn set_entry_count_for_test(&self, day: u32, n: u64) {
        self.db
            .insert(entry_count_key(day), &n.to_be_bytes()[..])
            .expect("insert");
    }

    fn entry_count(&self, day: u32) -> Result<u64, StorageError> {
        Ok(match self.db.get(entry_count_key(day))? {
            Some(v) => u64::from_be_bytes(
                v.as_ref()
                    .try_into()
                    .map_err(|_| StorageError::Corrupt("k"))?,
            ),
            None => 0,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ()> {
        self.write.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a batch's records to `b` and its file to `files` (written before `b`
    /// is applied).
    fn add_batch_ops<'a>(
        &self,
        b: &mut sled::Batch,
        files: &mut Vec<(PathBuf, &'a [u8])>,
        sb: &'a StoredBatch,
        hold: bool,
    ) {
        let m = &sb.meta;
        files.push((self.batch_file(&m.origin, m.sequence), &sb.bytes));
        b.insert(batch_key(b'b', &m.origin, m.sequence), m.encode());
        b.insert(
            indexed_key(b'd', &m.day.to_be_bytes(), &m.origin, m.sequence),
            &[][..],
        );
        b.insert(
            indexed_key(b'e', &m.expires_at.to_be_bytes(), &m.origin, m.sequence),
            &[][..],
        );
        // A batch starts held unless it is already being announced; the release
        // job gossips it and clears the mark (at once for batches that are
        // visible on arrival).
        if hold {
            b.insert(
                indexed_key(b'h', &m.visible_from.to_be_bytes(), &m.origin, m.sequence),
                &[][..],
            );
        }
    }

    fn check_existing(&self, m: &BatchMeta) -> Result<Option<PutOutcome>, StorageError> {
        Ok(match self.db.get(batch_key(b'b', &m.origin, m.sequence))? {
            None => None,
            Some(v) => {
                let old = BatchMeta::decode(&batch_key(b'b', &m.origin, m.sequence), &v)?;
                Some(if old.content_id == m.content_id {
                    PutOutcome::Duplicate
                } else {
                    PutOutcome::Conflict
                })
            }
        })
    }

    fn scan_index(&self, prefix: &[u8], lead_len: usize) -> Result<Vec<BatchMeta>, StorageError> {
        let mut out = Vec::new();
        for item in self.db.scan_prefix(prefix) {
            let (k, _) = item?;
            let (origin, seq) =
                split_batch_key(&k[1 + lead_len..]).ok_or(StorageError::Corrupt("index"))?;
            if let Some(v) = self.db.get(batch_key(b'b', &origin, seq))? {
                out.push(BatchMeta::decode(&batch_key(b'b', &origin, seq), &v)?);
            }
        }
        Ok(out)
    }

    fn put_batches_with(
        &self,
        batches: &[StoredBatch],
        hold: bool,
    ) -> Result<Vec<PutOutcome>, StorageError> {
        let _guard = self.lock();
        let mut ops = sled::Batch::default();
        let mut files = Vec::new();
        let mut outcomes = Vec::with_capacity(batches.len());
        let mut seen = std::collections::HashSet::new();
        for sb in batches {
            let outcome = match self.check_existing(&sb.meta)? {
                Some(o) => o,
                None if !seen.insert((sb.meta.origin.clone(), sb.meta.sequence)) => {
                    PutOutcome::Duplicate
                }
                None => {
                    self.add_batch_ops(&mut ops, &mut files, sb, hold);
                    PutOutcome::New
                }
            };
            outcomes.push(outcome);
        }
        if outcomes.contains(&PutOutcome::New) {
            // The files first: metadata never points at a batch that is not on disk.
            write_all_durably(&files)?;
            self.db.apply_batch(ops)?;
            self.db.flush()?;
        }
        Ok(outcomes)
    }

    /// Removes every record under `prefix` for which `expired(key, value)` holds,
    /// with one flush; returns how many were removed.
    fn purge_prefix(
        &self,
        prefix: u8,
        mut expired: impl FnMut(&[u8], &[u8]) -> Result<bool, StorageError>,
    ) -> Result<usize, StorageError> {
        let mut ops = sled::Batch::default();
        let mut n = 0;
        for item in self.db.scan_prefix([prefix]) {
            let (k, v) = item?;
            if expired(&k, &v)? {
                ops.remove(k);
                n += 1;
            }
        }
        if n > 0 {
            self.db.apply_batch(ops)?;
            self.db.flush()?;
        }
        Ok(n)
    }

    fn range_index(&self, prefix: u8, upto_inclusive: u64) -> Result<Vec<BatchMeta>, StorageError> {
        let mut out = Vec::new();
        let start = vec![prefix];
        let mut end = vec![prefix];
        end.extend_from_slice(&upto_inclusive.saturating_add(1).to_be_bytes());
        for item in self.db.range(start..end) {
            let (k, _) = item?;
            let (origin, seq) = split_batch_key(&k[9..]).ok_or(StorageError::Corrupt("index"))?;
            if let Some(v) = self.db.get(batch_key(b'b', &origin, seq))? {
                out.push(BatchMeta::decode(&batch_key(b'b', &origin, seq), &v)?);
            }
        }
        Ok(out)
    }
}

impl Store for SledStore {
    fn put_batch(&self, batch: &StoredBatch) -> Result<PutOutcome, StorageError> {
        Ok(self.put_batches(std::slice::from_ref(batch))?[0])
    }

    fn put_batches(&self, batches: &[StoredBatch]) -> Result<Vec<PutOutcome>, StorageError> {
        self.put_batches_with(batches, true)
    }

    fn put_announced_batch(&self, batch: &StoredBatch) -> Result<PutOutcome, StorageError> {
        Ok(self.put_batches_with(std::slice::from_ref(batch), false)?[0])
    }

    fn get_batch(&self, origin: &str, sequence: u64) -> Result<Option<StoredBatch>, StorageError> {
        let key = batch_key(b'b', origin, sequence);
        let Some(meta) = self.db.get(&key)? else {
            return Ok(None);
        };
        let meta = BatchMeta::decode(&key, &meta)?;
        Ok(read_if_present(&self.batch_file(origin, sequence))?
            .map(|bytes| StoredBatch { meta, bytes }))
    }

    fn list_batches(
        &self,
        origin: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<BatchMeta>, StorageError> {
        let start = batch_key(b'b', origin, after.saturating_add(1));
        let end = batch_key(b'b', origin, u64::MAX);
        let mut out = Vec::new();
        for item in self.db.range(start..=end).take(limit) {
            let (k, v) = item?;
            out.push(BatchMeta::decode(&k, &v)?);
        }
        Ok(out)
    }

    fn all_batches(&self) -> Result<Vec<BatchMeta>, StorageError> {
        self.db
            .scan_prefix([b'b'])
            .map(|item| {
                let (k, v) = item?;
                BatchMeta::decode(&k, &v)
            })
            .collect()
    }

    fn batches_of_day(&self, day: u32) -> Result<Vec<BatchMeta>, StorageError> {
        let mut prefix = vec![b'd'];
        prefix.extend_from_slice(&day.to_be_bytes());
        self.scan_index(&prefix, 4)
    }

    fn expired_batches(&self, now: u64) -> Result<Vec<BatchMeta>, StorageError> {
        self.range_index(b'e', now)
    }

    fn delete_and_log(
        &self,
        expired: &Expired,
        record: &SignedDeletionRecord,
    ) -> Result<(), StorageError> {
        let _guard = self.lock();
        let index = self.db.scan_prefix([b'l']).count() as u64;
        let mut ops = sled::Batch::default();
        for m in &expired.batches {
            ops.remove(batch_key(b'b', &m.origin, m.sequence));
            ops.remove(indexed_key(
                b'd',
                &m.day.to_be_bytes(),
                &m.origin,
                m.sequence,
            ));
            ops.remove(indexed_key(
                b'e',
                &m.expires_at.to_be_bytes(),
                &m.origin,
                m.sequence,
            ));
            ops.remove(indexed_key(
                b'h',
                &m.visible_from.to_be_bytes(),
                &m.origin,
                m.sequence,
            ));
        }
        for f in &expired.filters {
            ops.remove(filter_key(b'f', &f.origin, f.day));
        }
        for &(day, _) in &expired.entry_days {
            let mut prefix = vec![b'n'];
            prefix.extend_from_slice(&day.to_be_bytes());
            for item in self.db.scan_prefix(prefix) {
                ops.remove(item?.0);
            }
            ops.remove(entry_count_key(day));
        }
        let mut key = vec![b'l'];
        key.extend_from_slice(&index.to_be_bytes());
        ops.insert(key, record.encode());
        self.db.apply_batch(ops)?;
        self.db.flush()?;
        // What sled cannot destroy: the batches' and filters' bytes and the keys
        // of the entries (a crash before this point leaves orphans, removed at open).
        for m in &expired.batches {
            remove_if_present(&self.batch_file(&m.origin, m.sequence))?;
        }
        for f in &expired.filters {
            self.remove_filter_files(&f.origin, f.day)?;
        }
        let mut keys = self.entry_keys.lock().unwrap_or_else(|e| e.into_inner());
        for &(day, _) in &expired.entry_days {
            keys.remove(&day);
            remove_if_present(&self.entry_key_path(day))?;
        }
        if !expired.is_empty() {
            self.sync_files_dir()?;
        }
        Ok(())
    }

    fn deletion_log(&self) -> Result<Vec<SignedDeletionRecord>, StorageError> {
        self.db
            .scan_prefix([b'l'])
            .map(|item| {
                let (_, v) = item?;
                SignedDeletionRecord::decode(&v).map_err(|_| StorageError::Corrupt("l"))
            })
            .collect()
    }

    fn held_due(&self, now: u64) -> Result<Vec<BatchMeta>, StorageError> {
        self.range_index(b'h', now)
    }

    fn mark_released(&self, batches: &[BatchMeta]) -> Result<(), StorageError> {
        let mut ops = sled::Batch::default();
        for m in batches {
            ops.remove(indexed_key(
                b'h',
                &m.visible_from.to_be_bytes(),
                &m.origin,
                m.sequence,
            ));
        }
        self.db.apply_batch(ops)?;
        Ok(())
    }

    fn insert_codes(&self, codes: &[([u8; 8], CodeRecord)]) -> Result<(), StorageError> {
        let mut ops = sled::Batch::default();
        for (id, rec) in codes {
            let mut k = vec![b'c'];
            k.extend_from_slice(id);
            ops.insert(k, rec.encode());
        }
        self.db.apply_batch(ops)?;
        self.db.flush()?;
        Ok(())
    }

    fn get_code(&self, id: &[u8; 8]) -> Result<Option<CodeRecord>, StorageError> {
        let mut k = vec![b'c'];
        k.extend_from_slice(id);
        self.db.get(k)?.map(|v| CodeRecord::decode(&v)).transpose()
    }

    fn purge_codes(&self, now: u64) -> Result<usize, StorageError> {
        self.purge_prefix(b'c', |_, v| Ok(CodeRecord::decode(v)?.expires_at <= now))
    }

    fn pending_due(&self, now: u64) -> Result<Vec<PendingKey>, StorageError> {
        let mut end = vec![b'p'];
        end.extend_from_slice(&now.saturating_add(1).to_be_bytes());
        self.db
            .range(vec![b'p']..end)
            .filter_map(|item| {
                let k = match item {
                    Ok((k, _)) => k,
                    Err(e) => return Some(Err(e.into())),
                };
                // A key released between the scan and the read is gone: skip it.
                match read_if_present(&self.pending_file(&k)) {
                    Ok(Some(v)) => Some(decode_key(&v).map(|key| PendingKey {
                        id: k.to_vec(),
                        key,
                    })),
                    Ok(None) => None,
                    Err(e) => Some(Err(e)),
                }
            })
            .collect()
    }

    fn pending_count(&self) -> Result<u64, StorageError> {
        Ok(self.db.scan_prefix([b'p']).count() as u64)
    }

    fn next_sequence(&self, origin: &str) -> Result<u64, StorageError> {
        let mut k = vec![b's'];
        k.extend_from_slice(origin.as_bytes());
        Ok(match self.db.get(k)? {
            Some(v) => u64::from_be_bytes(
                v.as_ref()
                    .try_into()
                    .map_err(|_| StorageError::Corrupt("s"))?,
            ),
            None => 1,
        })
    }

    fn commit_gateway(&self, c: &GatewayCommit) -> Result<(), StorageError> {
        let _guard = self.lock();
        let mut ops = sled::Batch::default();
        if let Some(id) = c.consume_code {
            let mut k = vec![b'c'];
            k.extend_from_slice(&id);
            ops.remove(k);
        }
        let mut files: Vec<(PathBuf, &[u8])> = Vec::new();
        let held: Vec<(Vec<u8>, Vec<u8>)> = c
            .add_pending
            .iter()
            .map(|(release_at, key)| {
                let mut k = vec![b'p'];
                k.extend_from_slice(&release_at.to_be_bytes());
                k.extend_from_slice(&rand::random::<[u8; 8]>());
                (k, encode_key(key))
            })
            .collect();
        for (k, v) in &held {
            files.push((self.pending_file(k), v));
            ops.insert(k.as_slice(), &[][..]);
        }
        for id in &c.remove_pending {
            ops.remove(id.as_slice());
        }
        for sb in &c.batches {
            self.add_batch_ops(&mut ops, &mut files, sb, true);
        }
        if let Some((origin, next)) = &c.next_sequence {
            let mut k = vec![b's'];
            k.extend_from_slice(origin.as_bytes());
            ops.insert(k, &next.to_be_bytes()[..]);
        }
        if let Some((epoch, id)) = &c.spend_token {
            ops.insert(spent_key(*epoch, id), &[][..]);
        }
        let mut added: BTreeMap<u32, u64> = Default::default();
        let mut seen = std::collections::HashSet::new();
        let mut ciphers = BTreeMap::new();
        for e in &c.filter_entries {
            if let std::collections::btree_map::Entry::Vacant(v) = ciphers.entry(e.day) {
                v.insert(
                    self.entry_cipher(e.day, true)?
                        .ok_or(StorageError::Corrupt("entry key"))?,
                );
            }
        }
        for e in &c.filter_entries {
            let cipher = ciphers
                .get(&e.day)
                .ok_or(StorageError::Corrupt("entry key"))?;
            let k = Self::sealed_entry_key(cipher, e);
            if self.db.contains_key(&k)? || !seen.insert(k.clone()) {
                continue;
            }
            ops.insert(k, &[][..]);
            *added.entry(e.day).or_default() += 1;
        }
        for (day, n) in added {
            let count = self.entry_count(day)? + n;
            ops.insert(entry_count_key(day), &count.to_be_bytes()[..]);
        }
        // The files first: no record points at a batch or key not on disk.
        write_all_durably(&files)?;
        self.db.apply_batch(ops)?;
        self.db.flush()?;
        // Released keys now live in their batches.
        for id in &c.remove_pending {
            remove_if_present(&self.pending_file(id))?;
        }
        if !c.remove_pending.is_empty() {
            self.sync_files_dir()?;
        }
        Ok(())
    }

    fn token_spent(&self, epoch: u32, id: &[u8; 32]) -> Result<bool, StorageError> {
        Ok(self.db.contains_key(spent_key(epoch, id))?)
    }

    fn purge_spent_tokens(&self, keep: &[u32]) -> Result<usize, StorageError> {
        let _guard = self.lock();
        self.purge_prefix(b't', |k, _| {
            let epoch = k
                .get(1..5)
                .and_then(|b| b.try_into().ok())
                .map(u32::from_be_bytes)
                .ok_or(StorageError::Corrupt("spent token"))?;
            Ok(!keep.contains(&epoch))
        })
    }

    fn put_filter(&self, filter: &StoredFilter) -> Result<FilterPutOutcome, StorageError> {
        let _guard = self.lock();
        let m = &filter.meta;
        let mut meta = m.clone();
        let mut old_revision = None;
        if let Some(old) = self.filter_meta(&m.origin, m.day)? {
            if old.revision >= m.revision {
                return Ok(FilterPutOutcome::Stale);
            }
            meta.first_revision = old.first_revision.min(m.revision);
            old_revision = Some(old.revision);
        }
        // The file first: metadata never points at a revision that is not on disk.
        write_durably(
            &self.filter_file(&m.origin, m.day, m.revision),
            &filter.bytes,
        )?;
        self.db
            .insert(filter_key(b'f', &m.origin, m.day), meta.encode())?;
        self.db.flush()?;
        if let Some(old) = old_revision {
            remove_if_present(&self.filter_file(&m.origin, m.day, old))?;
        }
        Ok(FilterPutOutcome::New)
    }

    fn get_filter(&self, origin: &str, day: u32) -> Result<Option<StoredFilter>, StorageError> {
        let Some(meta) = self.filter_meta(origin, day)? else {
            return Ok(None);
        };
        // `None` if replaced or deleted between reading the metadata and the file.
        Ok(
            read_if_present(&self.filter_file(origin, day, meta.revision))?
                .map(|bytes| StoredFilter { meta, bytes }),
        )
    }

    fn filter_meta(&self, origin: &str, day: u32) -> Result<Option<FilterMeta>, StorageError> {
        let key = filter_key(b'f', origin, day);
        self.db
            .get(&key)?
            .map(|v| FilterMeta::decode(&key, &v))
            .transpose()
    }

    fn all_filters(&self) -> Result<Vec<FilterMeta>, StorageError> {
        self.db
            .scan_prefix([b'f'])
            .map(|item| {
                let (k, v) = item?;
                FilterMeta::decode(&k, &v)
            })
            .collect()
    }

    fn filter_entry_days(&self) -> Result<Vec<(u32, u64)>, StorageError> {
        self.db
            .scan_prefix([b'k'])
            .map(|item| {
                let (k, v) = item?;
                let bad = || StorageError::Corrupt("k");
                let day: [u8; 4] = k.get(1..5).ok_or_else(bad)?.try_into().map_err(|_| bad())?;
                let n: [u8; 8] = v.as_ref().try_into().map_err(|_| bad())?;
                Ok((u32::from_be_bytes(day), u64::from_be_bytes(n)))
            })
            .collect()
    }

    fn filter_entries_of_day(&self, day: u32) -> Result<Vec<StoredEntry>, StorageError> {
        let Some(cipher) = self.entry_cipher(day, false)? else {
            return Ok(Vec::new());
        };
        let mut prefix = vec![b'n'];
        prefix.extend_from_slice(&day.to_be_bytes());
        let mut entries: Vec<StoredEntry> = self
            .db
            .scan_prefix(prefix)
            .map(|item| {
                let (k, _) = item?;
                let bad = || StorageError::Corrupt("n");
                if k.len() != 9 + FILTER_ENTRY_LEN {
                    return Err(bad());
                }
                let sealed: [u8; FILTER_ENTRY_LEN] = k[9..].try_into().map_err(|_| bad())?;
                let mut block = sealed.into();
                cipher.decrypt_block(&mut block);
                Ok(StoredEntry {
                    day,
                    interval: u32::from_be_bytes(k[5..9].try_into().map_err(|_| bad())?),
                    entry: FilterEntry(block.into()),
                })
            })
            .collect::<Result<_, StorageError>>()?;
        entries.sort_unstable();
        Ok(entries)
    }

    fn has_filter_entry(&self, entry: &StoredEntry) -> Result<bool, StorageError> {
        match self.entry_cipher(entry.day, false)? {
            Some(cipher) => Ok(self
                .db
                .contains_key(Self::sealed_entry_key(&cipher, entry))?),
            None => Ok(false),
        }
    }

    fn expired(&self, now: u64) -> Result<Expired, StorageError> {
        Ok(Expired {
            batches: self.expired_batches(now)?,
            filters: self
                .all_filters()?
                .into_iter()
                .filter(|f| f.expires_at() <= now)
                .collect(),
            entry_days: self
                .filter_entry_days()?
                .into_iter()
                .filter(|&(day, _)| filter_expires_at(day) <= now)
                .collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn meta(sequence: u64) -> BatchMeta {
        BatchMeta {
            origin: "test.health".into(),
            sequence,
            day: 19_675,
            key_count: 1,
            created_at: 1,
            visible_from: 0,
            expires_at: 2_000_000_000,
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
                .insert(batch_key(b'b', &m.origin, 1), m.encode())
                .unwrap();
            store
                .db
                .insert(batch_key(b'x', &m.origin, 1), &body[..])
                .unwrap();
            store
                .db
                .insert(&b"p\0\0\0\0\0\0\0\x01idid5678"[..], encode_key(&key))
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
        assert_eq!(store.db.scan_prefix([b'x']).count(), 0);
        let due = store.pending_due(1).unwrap();
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].key, key);
        assert!(store.db.get(&due[0].id).unwrap().unwrap().is_empty());
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
}

//! The sled implementation of the storage traits: one sled tree (see
//! [`super::keyspace`]) and the files beside it (see [`super::files`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use traceless_protocol::wire::{filter_expires_at, PublishedBatch, SignedDeletionRecord};

use super::files::{
    batch_file_name, files_dir, filter_file_stem, read_if_present, remove_dir_bounded,
    remove_if_present, replace_all_durably, replaced_dir, rewrite_dir, sync_parent,
    write_all_durably, write_durably, PENDING_FILE_PREFIX,
};
use super::keyspace::*;
use super::migrate::finish_replacement;
use super::records::*;
use super::summary::{StoreSummary, Tally};
use super::traits::*;
use super::StorageError;

/// The sled implementation of [`Store`], with day filters and entry keys in files
/// next to the database (see the module docs).
pub struct SledStore {
    pub(super) db: sled::Db,
    write: Mutex<()>,
    pub(super) files: PathBuf,
    pub(super) entry_keys: Mutex<BTreeMap<u32, [u8; 16]>>,
    /// The figures of what is stored, updated after every commit (see
    /// [`super::summary`]); rebuilt at open.
    tally: Mutex<Tally>,
}

/// The most sled's page cache holds unless configured (`[storage] cache_mib`).
/// sled's own default, 1 GiB, let a node's memory grow with its store until
/// then; batches and held keys live in files (SPEC.md §8.1), so sled holds
/// only indexes, logs and small records, and 64 MiB keeps them hot.
pub const DEFAULT_CACHE_BYTES: u64 = 64 << 20;

/// Opens the sled database in `dir` with a page cache of at most
/// `cache_bytes`. sled's file lock refusing a second opener becomes
/// [`StorageError::InUse`].
pub(super) fn open_sled(dir: &Path, cache_bytes: u64) -> Result<sled::Db, StorageError> {
    sled::Config::new()
        .path(dir)
        .cache_capacity(cache_bytes)
        .mode(sled::Mode::HighThroughput)
        .flush_every_ms(None)
        .open()
        .map_err(|e| match e {
            // sled 0.34 reports the failed `flock` (WouldBlock) only as an
            // `ErrorKind::Other` with this message.
            sled::Error::Io(io) if io.to_string().starts_with("could not acquire lock") => {
                StorageError::InUse(dir.to_owned())
            }
            other => StorageError::Db(other),
        })
}

/// [`open_sled`] right after a handle on `dir` was dropped: sled's background
/// threads hold its file lock briefly after the drop. Bounded (2 s).
pub(super) fn open_sled_after_drop(dir: &Path, cache_bytes: u64) -> Result<sled::Db, StorageError> {
    for _ in 0..200 {
        match open_sled(dir, cache_bytes) {
            Err(StorageError::Db(_) | StorageError::InUse(_)) => {
                std::thread::sleep(std::time::Duration::from_millis(10))
            }
            other => return other,
        }
    }
    open_sled(dir, cache_bytes)
}

impl SledStore {
    /// Opens (or creates) the database in `dir`, its cache bounded by
    /// [`DEFAULT_CACHE_BYTES`].
    pub fn open(dir: &Path) -> Result<Self, StorageError> {
        Self::open_with_cache(dir, DEFAULT_CACHE_BYTES)
    }

    /// [`SledStore::open`] with sled's page cache bounded by `cache_bytes`.
    pub fn open_with_cache(dir: &Path, cache_bytes: u64) -> Result<Self, StorageError> {
        Self::open_with(dir, cache_bytes, open_sled)
    }

    /// The database handle, for the transparency log's own prefixes
    /// (`crate::log`), which commit and flush on their own.
    pub fn db(&self) -> sled::Db {
        self.db.clone()
    }

    /// [`SledStore::open`] right after a store on `dir` was dropped (tests
    /// reopening a database); see [`open_sled_after_drop`].
    #[cfg(test)]
    pub(super) fn open_after_drop(dir: &Path) -> Result<Self, StorageError> {
        Self::open_with(dir, DEFAULT_CACHE_BYTES, open_sled_after_drop)
    }

    fn open_with(
        dir: &Path,
        cache_bytes: u64,
        open: fn(&Path, u64) -> Result<sled::Db, StorageError>,
    ) -> Result<Self, StorageError> {
        finish_replacement(dir)?;
        let store = Self::with_db(open(dir, cache_bytes)?, dir);
        let store = if store.migrate_to_files(dir)? {
            drop(store);
            std::fs::rename(dir, replaced_dir(dir))?;
            std::fs::rename(rewrite_dir(dir), dir)?;
            sync_parent(dir)?;
            remove_dir_bounded(&replaced_dir(dir))?;
            Self::with_db(open_sled_after_drop(dir, cache_bytes)?, dir)
        } else {
            store
        };
        store.drop_legacy_filters()?;
        store.remove_orphan_files()?;
        *store.tally() = Tally::rebuild(&store)?;
        Ok(store)
    }

    fn with_db(db: sled::Db, dir: &Path) -> Self {
        SledStore {
            db,
            write: Mutex::new(()),
            files: files_dir(dir),
            entry_keys: Mutex::new(BTreeMap::new()),
            tally: Mutex::new(Tally::default()),
        }
    }

    fn tally(&self) -> std::sync::MutexGuard<'_, Tally> {
        self.tally.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn batch_file(&self, origin: &str, sequence: u64) -> PathBuf {
        self.files.join(batch_file_name(origin, sequence))
    }

    /// The file of a held key, named by its sled key (`p || release time || random`).
    pub(super) fn pending_file(&self, id: &[u8]) -> PathBuf {
        let id = id.get(1..).unwrap_or_default();
        self.files
            .join(format!("{PENDING_FILE_PREFIX}{}", hex::encode(id)))
    }

    pub(super) fn filter_file(&self, origin: &str, day: u32, revision: u64) -> PathBuf {
        self.files
            .join(format!("{}{revision}", filter_file_stem(origin, day)))
    }

    /// Makes the deletions in the files directory durable.
    pub(super) fn sync_files_dir(&self) -> Result<(), StorageError> {
        if let Ok(d) = std::fs::File::open(&self.files) {
            d.sync_all()?;
        }
        Ok(())
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
        b.insert(batch_key(&m.origin, m.sequence), m.encode());
        for d in &m.days {
            b.insert(day_index_key(m, d.day), &[][..]);
        }
        b.insert(expiry_index_key(m), &[][..]);
        // A batch starts held unless it is already being announced; the release
        // job gossips it and clears the mark (at once for batches that are
        // visible on arrival).
        if hold {
            b.insert(
                index_key(
                    HELD_INDEX,
                    &m.visible_from.to_be_bytes(),
                    &m.origin,
                    m.sequence,
                ),
                &[][..],
            );
        }
    }

    fn check_existing(&self, m: &BatchMeta) -> Result<Option<PutOutcome>, StorageError> {
        Ok(match self.db.get(batch_key(&m.origin, m.sequence))? {
            None => None,
            Some(v) => {
                let old = BatchMeta::decode(&batch_key(&m.origin, m.sequence), &v)?;
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
                split_index_key(&k, lead_len).ok_or(StorageError::Corrupt("index"))?;
            if let Some(v) = self.db.get(batch_key(&origin, seq))? {
                out.push(BatchMeta::decode(&batch_key(&origin, seq), &v)?);
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
            let mut tally = self.tally();
            for (sb, _) in batches
                .iter()
                .zip(&outcomes)
                .filter(|(_, o)| **o == PutOutcome::New)
            {
                tally.batch_added(&sb.meta);
            }
            drop(tally);
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
            let (origin, seq) = split_index_key(&k, 8).ok_or(StorageError::Corrupt("index"))?;
            if let Some(v) = self.db.get(batch_key(&origin, seq))? {
                out.push(BatchMeta::decode(&batch_key(&origin, seq), &v)?);
            }
        }
        Ok(out)
    }
}

/// A batch's entry in the index by UTC day, one per held day.
fn day_index_key(m: &BatchMeta, day: u32) -> Vec<u8> {
    index_key(DAY_INDEX, &day.to_be_bytes(), &m.origin, m.sequence)
}

/// A batch's entry in the index by retention time: its next expiry.
fn expiry_index_key(m: &BatchMeta) -> Vec<u8> {
    index_key(
        EXPIRY_INDEX,
        &m.expires_at().to_be_bytes(),
        &m.origin,
        m.sequence,
    )
}

impl BatchStore for SledStore {
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
        let key = batch_key(origin, sequence);
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
        let start = batch_key(origin, after.saturating_add(1));
        let end = batch_key(origin, u64::MAX);
        let mut out = Vec::new();
        for item in self.db.range(start..=end).take(limit) {
            let (k, v) = item?;
            out.push(BatchMeta::decode(&k, &v)?);
        }
        Ok(out)
    }

    fn all_batches(&self) -> Result<Vec<BatchMeta>, StorageError> {
        self.db
            .scan_prefix([BATCH])
            .map(|item| {
                let (k, v) = item?;
                BatchMeta::decode(&k, &v)
            })
            .collect()
    }

    fn batches_of_day(&self, day: u32) -> Result<Vec<BatchMeta>, StorageError> {
        self.scan_index(&numbered(DAY_INDEX, &day.to_be_bytes()), 4)
    }

    fn held_due(&self, now: u64) -> Result<Vec<BatchMeta>, StorageError> {
        self.range_index(HELD_INDEX, now)
    }

    fn mark_released(&self, batches: &[BatchMeta]) -> Result<(), StorageError> {
        let mut ops = sled::Batch::default();
        for m in batches {
            ops.remove(index_key(
                HELD_INDEX,
                &m.visible_from.to_be_bytes(),
                &m.origin,
                m.sequence,
            ));
        }
        self.db.apply_batch(ops)?;
        Ok(())
    }
}

impl SledStore {
    /// Stores a part and marks the entries it folds (the gateway's own parts),
    /// in one flushed write. The file goes first: metadata never points at a
    /// part that is not on disk.
    fn put_part(
        &self,
        filter: &StoredFilter,
        folded: &[StoredEntry],
    ) -> Result<PutOutcome, StorageError> {
        let _guard = self.lock();
        let m = &filter.meta;
        let key = filter_key(&m.origin, m.day, m.revision);
        if let Some(v) = self.db.get(&key)? {
            let held = FilterMeta::decode(&key, &v)?;
            return Ok(if held.content_id == m.content_id {
                PutOutcome::Duplicate
            } else {
                PutOutcome::Conflict
            });
        }
        if folded.iter().any(|e| e.day != m.day) {
            return Err(StorageError::Corrupt("n: folded into another day's part"));
        }
        write_durably(
            &self.filter_file(&m.origin, m.day, m.revision),
            &filter.bytes,
        )?;
        let mut ops = sled::Batch::default();
        ops.insert(key, m.encode());
        if !folded.is_empty() {
            let cipher = self
                .entry_cipher(m.day, false)?
                .ok_or(StorageError::Corrupt("entry key"))?;
            for e in folded {
                ops.insert(
                    Self::sealed_entry_key(&cipher, e),
                    &m.revision.to_be_bytes()[..],
                );
            }
        }
        self.db.apply_batch(ops)?;
        self.tally().filter_stored(m);
        self.db.flush()?;
        Ok(PutOutcome::New)
    }
}

impl FilterStore for SledStore {
    fn put_filter(&self, filter: &StoredFilter) -> Result<PutOutcome, StorageError> {
        self.put_part(filter, &[])
    }

    fn get_filter(
        &self,
        origin: &str,
        day: u32,
        revision: u64,
    ) -> Result<Option<StoredFilter>, StorageError> {
        let key = filter_key(origin, day, revision);
        let Some(v) = self.db.get(&key)? else {
            return Ok(None);
        };
        let meta = FilterMeta::decode(&key, &v)?;
        // `None` if retention deleted it between reading the metadata and the file.
        Ok(read_if_present(&self.filter_file(origin, day, revision))?
            .map(|bytes| StoredFilter { meta, bytes }))
    }

    fn filter_parts(&self, origin: &str, day: u32) -> Result<Vec<FilterMeta>, StorageError> {
        self.filter_metas(&filter_day_prefix(origin, day))
    }

    fn all_filters(&self) -> Result<Vec<FilterMeta>, StorageError> {
        self.filter_metas(&[FILTER])
    }
}

impl SledStore {
    fn filter_metas(&self, prefix: &[u8]) -> Result<Vec<FilterMeta>, StorageError> {
        self.db
            .scan_prefix(prefix)
            .map(|item| {
                let (k, v) = item?;
                FilterMeta::decode(&k, &v)
            })
            .collect()
    }
}

impl CodeStore for SledStore {
    fn insert_codes(&self, codes: &[([u8; 8], CodeRecord)]) -> Result<(), StorageError> {
        let mut ops = sled::Batch::default();
        for (id, rec) in codes {
            ops.insert(code_key(id), rec.encode());
        }
        self.db.apply_batch(ops)?;
        self.db.flush()?;
        Ok(())
    }

    fn get_code(&self, id: &[u8; 8]) -> Result<Option<CodeRecord>, StorageError> {
        self.db
            .get(code_key(id))?
            .map(|v| CodeRecord::decode(&v))
            .transpose()
    }

    fn purge_codes(&self, now: u64) -> Result<usize, StorageError> {
        self.purge_prefix(CODE, |_, v| Ok(CodeRecord::decode(v)?.expires_at <= now))
    }

    fn commit_gateway(&self, c: &GatewayCommit) -> Result<(), StorageError> {
        let _guard = self.lock();
        let mut ops = sled::Batch::default();
        if let Some(id) = c.consume_code {
            ops.remove(code_key(&id));
        }
        let mut files: Vec<(PathBuf, &[u8])> = Vec::new();
        // One file per release time of the commit (an upload's keys mostly
        // share one), so that a period is read and removed a file per upload,
        // not a file per key; each file is still destroyed whole.
        let mut groups: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
        for (release_at, key) in &c.add_pending {
            groups
                .entry(*release_at)
                .or_default()
                .extend_from_slice(&encode_key(key));
        }
        let held: Vec<(Vec<u8>, Vec<u8>)> = groups
            .into_iter()
            .map(|(release_at, keys)| (pending_key(release_at, rand::random::<[u8; 8]>()), keys))
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
            ops.insert(sequence_key(origin), &next.to_be_bytes()[..]);
        }
        if let Some((epoch, id)) = &c.spend_token {
            ops.insert(spent_key(*epoch, id), &[][..]);
        }
        if let Some(p) = &c.published_period {
            ops.insert(&[PUBLISHED_PERIOD][..], &p.encode()[..]);
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
        for (&day, n) in &added {
            let count = self.entry_count(day)? + n;
            ops.insert(entry_count_key(day), &count.to_be_bytes()[..]);
        }
        // The files first: no record points at a batch or key not on disk.
        write_all_durably(&files)?;
        self.db.apply_batch(ops)?;
        {
            let mut tally = self.tally();
            for sb in &c.batches {
                tally.batch_added(&sb.meta);
            }
            for (day, n) in added {
                tally.entries_added(day, n);
            }
        }
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
}

impl PoolStore for SledStore {
    fn pending_due(&self, now: u64) -> Result<Vec<PendingKey>, StorageError> {
        let end = numbered(PENDING, &now.saturating_add(1).to_be_bytes());
        self.db
            .range(vec![PENDING]..end)
            .filter_map(|item| {
                let k = match item {
                    Ok((k, _)) => k,
                    Err(e) => return Some(Err(e.into())),
                };
                // Keys released between the scan and the read are gone: skip them.
                match read_if_present(&self.pending_file(&k)) {
                    Ok(Some(v)) => Some(decode_keys(&v).map(|keys| {
                        keys.into_iter()
                            .map(|key| PendingKey {
                                id: k.to_vec(),
                                key,
                            })
                            .collect::<Vec<_>>()
                    })),
                    Ok(None) => None,
                    Err(e) => Some(Err(e)),
                }
            })
            .collect::<Result<Vec<_>, _>>()
            .map(|groups| groups.into_iter().flatten().collect())
    }

    fn pending_count(&self) -> Result<u64, StorageError> {
        let mut n = 0;
        for item in self.db.scan_prefix([PENDING]) {
            let (k, _) = item?;
            n += match std::fs::metadata(self.pending_file(&k)) {
                Ok(m) => m.len() / KEY_RECORD_LEN as u64,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
                Err(e) => return Err(e.into()),
            };
        }
        Ok(n)
    }

    fn published_period(&self) -> Result<Option<PublishedPeriod>, StorageError> {
        self.db
            .get([PUBLISHED_PERIOD])?
            .map(|v| PublishedPeriod::decode(&v))
            .transpose()
    }
}

impl GatewayStore for SledStore {
    fn next_sequence(&self, origin: &str) -> Result<u64, StorageError> {
        Ok(match self.db.get(sequence_key(origin))? {
            Some(v) => u64::from_be_bytes(
                v.as_ref()
                    .try_into()
                    .map_err(|_| StorageError::Corrupt("s"))?,
            ),
            None => 1,
        })
    }

    fn token_spent(&self, epoch: u32, id: &[u8; 32]) -> Result<bool, StorageError> {
        Ok(self.db.contains_key(spent_key(epoch, id))?)
    }

    fn purge_spent_tokens(&self, keep: &[u32]) -> Result<usize, StorageError> {
        let _guard = self.lock();
        self.purge_prefix(SPENT_TOKEN, |k, _| {
            let epoch = split_spent_key(k).ok_or(StorageError::Corrupt("spent token"))?;
            Ok(!keep.contains(&epoch))
        })
    }

    fn filter_entry_days(&self) -> Result<Vec<(u32, u64)>, StorageError> {
        self.db
            .scan_prefix([ENTRY_COUNT])
            .map(|item| {
                let (k, v) = item?;
                let bad = || StorageError::Corrupt("k");
                let day = split_entry_count_key(&k).ok_or_else(bad)?;
                let n: [u8; 8] = v.as_ref().try_into().map_err(|_| bad())?;
                Ok((day, u64::from_be_bytes(n)))
            })
            .collect()
    }

    fn unfolded_entries_of_day(&self, day: u32) -> Result<Vec<StoredEntry>, StorageError> {
        let Some(cipher) = self.entry_cipher(day, false)? else {
            return Ok(Vec::new());
        };
        let mut entries = Vec::new();
        for item in self.db.scan_prefix(entry_day_prefix(day)) {
            let (k, folded_by) = item?;
            if folded_by.is_empty() {
                entries.push(Self::open_entry_key(&cipher, day, &k)?);
            }
        }
        entries.sort_unstable();
        Ok(entries)
    }

    fn put_built_filter(
        &self,
        filter: &StoredFilter,
        folded: &[StoredEntry],
    ) -> Result<PutOutcome, StorageError> {
        self.put_part(filter, folded)
    }

    fn has_filter_entry(&self, entry: &StoredEntry) -> Result<bool, StorageError> {
        match self.entry_cipher(entry.day, false)? {
            Some(cipher) => Ok(self
                .db
                .contains_key(Self::sealed_entry_key(&cipher, entry))?),
            None => Ok(false),
        }
    }
}

impl RetentionStore for SledStore {
    fn expired_batches(&self, now: u64) -> Result<Vec<BatchMeta>, StorageError> {
        self.range_index(EXPIRY_INDEX, now)
    }

    fn expired(&self, now: u64) -> Result<Expired, StorageError> {
        let mut batches = Vec::new();
        for meta in self.expired_batches(now)? {
            let (days, rest): (Vec<_>, Vec<_>) =
                meta.days.iter().partition(|d| d.expires_at <= now);
            let kept = if rest.is_empty() {
                None
            } else {
                // Due here is `expires_at <= now`; `pruned_at(t)` drops the
                // days with `expires_at < t`: the same days at `t = now + 1`.
                let bytes = read_if_present(&self.batch_file(&meta.origin, meta.sequence))?
                    .ok_or(StorageError::Corrupt("batch file"))?;
                let pruned = PublishedBatch::decode(&bytes)
                    .and_then(|b| b.pruned_at(now.saturating_add(1)))
                    .map_err(|_| StorageError::Corrupt("batch file"))?
                    .ok_or(StorageError::Corrupt("batch file"))?;
                Some(StoredBatch {
                    meta: BatchMeta {
                        days: rest,
                        ..meta.clone()
                    },
                    bytes: pruned.encode(),
                })
            };
            batches.push(ExpiredBatch { meta, days, kept });
        }
        Ok(Expired {
            batches,
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

    fn delete_and_log(
        &self,
        expired: &Expired,
        record: &SignedDeletionRecord,
    ) -> Result<(), StorageError> {
        let _guard = self.lock();
        let index = self.tally().deletion_log_len();
        let mut ops = sled::Batch::default();
        for e in &expired.batches {
            let m = &e.meta;
            for d in &e.days {
                ops.remove(day_index_key(m, d.day));
            }
            ops.remove(expiry_index_key(m));
            match &e.kept {
                Some(kept) => {
                    ops.insert(batch_key(&m.origin, m.sequence), kept.meta.encode());
                    ops.insert(expiry_index_key(&kept.meta), &[][..]);
                }
                None => {
                    ops.remove(batch_key(&m.origin, m.sequence));
                    ops.remove(index_key(
                        HELD_INDEX,
                        &m.visible_from.to_be_bytes(),
                        &m.origin,
                        m.sequence,
                    ));
                }
            }
        }
        // A pruned batch's file is replaced before the record is applied: a
        // crash in between leaves the days gone from the file and still listed
        // in sled, so the next run records their deletion (the keys are never
        // kept longer than retention, the record at worst comes one run late).
        let pruned: Vec<_> = expired
            .batches
            .iter()
            .filter_map(|e| e.kept.as_ref())
            .map(|k| {
                (
                    self.batch_file(&k.meta.origin, k.meta.sequence),
                    &k.bytes[..],
                )
            })
            .collect();
        replace_all_durably(&pruned)?;
        for f in &expired.filters {
            ops.remove(filter_key(&f.origin, f.day, f.revision));
        }
        for &(day, _) in &expired.entry_days {
            for item in self.db.scan_prefix(entry_day_prefix(day)) {
                ops.remove(item?.0);
            }
            ops.remove(entry_count_key(day));
        }
        ops.insert(log_key(index), record.encode());
        self.db.apply_batch(ops)?;
        {
            let mut tally = self.tally();
            for e in &expired.batches {
                tally.batch_pruned(e);
            }
            for f in &expired.filters {
                tally.filter_removed(f);
            }
            for &(day, _) in &expired.entry_days {
                tally.entries_removed(day);
            }
            tally.log_appended();
        }
        self.db.flush()?;
        // What sled cannot destroy: the batches' and filters' bytes and the keys
        // of the entries (a crash before this point leaves orphans, removed at open).
        for m in expired.batches.iter().filter(|e| e.kept.is_none()) {
            remove_if_present(&self.batch_file(&m.meta.origin, m.meta.sequence))?;
        }
        for f in &expired.filters {
            remove_if_present(&self.filter_file(&f.origin, f.day, f.revision))?;
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
            .scan_prefix([DELETION_LOG])
            .map(|item| {
                let (_, v) = item?;
                SignedDeletionRecord::decode(&v).map_err(|_| StorageError::Corrupt("l"))
            })
            .collect()
    }
}

impl SummaryStore for SledStore {
    fn summary(&self, now: u64) -> StoreSummary {
        self.tally().at(now)
    }
}

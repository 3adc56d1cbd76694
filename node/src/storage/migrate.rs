//! Migration of databases written by older versions: batch bodies and held keys
//! move out of sled into files, and the database is rewritten whole (sled keeps
//! removed records in its segments). A replacement a crash interrupted is
//! finished at the next open.

use std::path::{Path, PathBuf};

use super::files::{remove_dir_bounded, replaced_dir, rewrite_dir, write_all_durably};
use super::keyspace::{
    split_batch_key, LEGACY_BATCH_BODY, LEGACY_FILTER, LOG_INDEX, LOG_INDEX_FILTER, PENDING,
};
use super::sled_store::{open_sled, SledStore, DEFAULT_CACHE_BYTES};
use super::StorageError;

/// Completes or undoes a database replacement a crash interrupted: a rewrite
/// that had not replaced the database yet is discarded (the migration runs
/// again), one that had is put in place, and a replaced database is deleted.
pub(super) fn finish_replacement(db_dir: &Path) -> Result<(), StorageError> {
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

impl SledStore {
    /// Moves what older versions kept inside sled into files: batch bodies
    /// (`x` records) and embargoed keys (the values of `p` records). sled keeps
    /// removed records in its segments, so rather than removing them this copies
    /// every other record, and `p` records without their key, into a fresh
    /// database at [`rewrite_dir`], to replace `dir`'s. Returns whether it did.
    pub(super) fn migrate_to_files(&self, dir: &Path) -> Result<bool, StorageError> {
        let mut old = Vec::new();
        for item in self.db.scan_prefix([LEGACY_BATCH_BODY]) {
            let (k, v) = item?;
            let (origin, sequence) = split_batch_key(&k).ok_or(StorageError::Corrupt("x"))?;
            old.push((k, self.batch_file(&origin, sequence), v));
        }
        for item in self.db.scan_prefix([PENDING]) {
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
        let fresh = open_sled(&rewrite_dir(dir), DEFAULT_CACHE_BYTES)?;
        let mut ops = sled::Batch::default();
        for (n, item) in self.db.iter().enumerate() {
            let (k, v) = item?;
            match k.first() {
                Some(&LEGACY_BATCH_BODY) => {}
                Some(&PENDING) => ops.insert(k, &[][..]),
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

    /// Removes version-1 day filters (SPEC.md §5.8): their metadata, and the
    /// log-index keys of their publications, so that the parts that replace them
    /// (the gateway refolds every entry into part 1 at its next boundary, relays
    /// fetch the parts) are logged under the same (origin, day, revision). Their
    /// files are orphans then, removed by the sweep that follows at open. The
    /// log keeps their publication entries. Returns how many were removed.
    pub(super) fn drop_legacy_filters(&self) -> Result<usize, StorageError> {
        let mut ops = sled::Batch::default();
        let mut n = 0;
        for item in self.db.scan_prefix([LEGACY_FILTER]) {
            ops.remove(item?.0);
            n += 1;
        }
        if n == 0 {
            return Ok(0);
        }
        for item in self.db.scan_prefix([LOG_INDEX, LOG_INDEX_FILTER]) {
            ops.remove(item?.0);
        }
        self.db.apply_batch(ops)?;
        self.db.flush()?;
        tracing::info!(
            filters = n,
            "removed version-1 day filters; their entries are republished as parts"
        );
        Ok(n)
    }
}

//! The files kept beside sled (`<db>-files/`): what retention or an embargo
//! release must really destroy lives here, one file per batch, filter revision,
//! held key and per-day entry key, written durably before the record that
//! refers to them and deleted after the record that stops referring to them.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::StorageError;

/// File-name prefix of the per-day keys that encrypt stored filter entries.
pub const ENTRY_KEY_FILE_PREFIX: &str = "entry-key-";
/// File-name prefix of stored day filters (`filter-<hex origin>-<day>-<revision>`).
pub const FILTER_FILE_PREFIX: &str = "filter-";
/// File-name prefix of stored batches (`batch-<hex origin>-<sequence>`).
pub const BATCH_FILE_PREFIX: &str = "batch-";
/// File-name prefix of embargoed keys held by a gateway (`pending-<hex id>`).
pub const PENDING_FILE_PREFIX: &str = "pending-";

/// The directory next to the database `db_dir` for the files retention deletes.
pub fn files_dir(db_dir: &Path) -> PathBuf {
    sibling(db_dir, "-files")
}

/// `db_dir` with `suffix` appended to its name.
pub(super) fn sibling(db_dir: &Path, suffix: &str) -> PathBuf {
    let name = db_dir
        .file_name()
        .map_or_else(|| "db".into(), |n| n.to_string_lossy().into_owned());
    db_dir.with_file_name(format!("{name}{suffix}"))
}

/// Where a database is rewritten before it replaces the one in `db_dir`.
pub(super) fn rewrite_dir(db_dir: &Path) -> PathBuf {
    sibling(db_dir, ".rewrite")
}

/// Where the replaced database waits for deletion.
pub(super) fn replaced_dir(db_dir: &Path) -> PathBuf {
    sibling(db_dir, ".replaced")
}

/// Syncs the directory holding `path`, so that a rename of `path` is durable.
pub(super) fn sync_parent(path: &Path) -> Result<(), StorageError> {
    let parent = path
        .parent()
        .ok_or(StorageError::Corrupt("database path"))?;
    std::fs::File::open(parent)?.sync_all()?;
    Ok(())
}

/// Deletes `dir` and everything in it; retries briefly while a dropped sled
/// handle's threads may still write into it. Gone already is fine.
pub(super) fn remove_dir_bounded(dir: &Path) -> Result<(), StorageError> {
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
pub(super) fn write_durably(path: &Path, bytes: &[u8]) -> Result<(), StorageError> {
    write_all_durably(&[(path.to_owned(), bytes)])
}

/// [`write_durably`] for many files, with one fsync of each directory at the end.
pub(super) fn write_all_durably(files: &[(PathBuf, &[u8])]) -> Result<(), StorageError> {
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

/// Replaces files that records refer to (a period batch with a day pruned,
/// SPEC.md §8.1): each is written beside its path, synced and renamed over
/// it, then the directories are synced, so a crash leaves the old file or the
/// new one, never half of one. The temporary name parses as nothing, so one a
/// crash leaves behind is removed at open.
pub(super) fn replace_all_durably(files: &[(PathBuf, &[u8])]) -> Result<(), StorageError> {
    let staged: Vec<(PathBuf, &[u8])> = files
        .iter()
        .map(|(path, bytes)| (path.with_extension("replacing"), *bytes))
        .collect();
    write_all_durably(&staged)?;
    for ((path, _), (tmp, _)) in files.iter().zip(&staged) {
        std::fs::rename(tmp, path)?;
    }
    if let Some((path, _)) = files.first() {
        sync_parent(path)?;
    }
    Ok(())
}

/// Deletes a file; one that is already gone is fine.
pub(super) fn remove_if_present(path: &Path) -> Result<(), StorageError> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
        _ => Ok(()),
    }
}

/// Reads a file; `None` if it is gone (deleted between reading the metadata
/// that refers to it and the file).
pub(super) fn read_if_present(path: &Path) -> Result<Option<Vec<u8>>, StorageError> {
    match std::fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}

pub(super) fn batch_file_name(origin: &str, sequence: u64) -> String {
    format!("{BATCH_FILE_PREFIX}{}-{sequence}", hex::encode(origin))
}

pub(super) fn parse_batch_file(name: &str) -> Option<(String, u64)> {
    let rest = name.strip_prefix(BATCH_FILE_PREFIX)?;
    let (origin, sequence) = rest.split_once('-')?;
    let origin = String::from_utf8(hex::decode(origin).ok()?).ok()?;
    Some((origin, sequence.parse().ok()?))
}

pub(super) fn filter_file_stem(origin: &str, day: u32) -> String {
    format!("{FILTER_FILE_PREFIX}{}-{day}-", hex::encode(origin))
}

pub(super) fn parse_filter_file(name: &str) -> Option<(String, u32, u64)> {
    let rest = name.strip_prefix(FILTER_FILE_PREFIX)?;
    let mut parts = rest.split('-');
    let origin = String::from_utf8(hex::decode(parts.next()?).ok()?).ok()?;
    let day = parts.next()?.parse().ok()?;
    let revision = parts.next()?.parse().ok()?;
    parts.next().is_none().then_some((origin, day, revision))
}

//! Venue warnings on a node (SPEC.md §12.10), in files of their own under
//! `<data_dir>/warnings/`, not in sled: sled keeps removed records in its log,
//! and a warning batch past retention, or a traced trace waiting for its
//! boundary, must really be gone once deleted.
//!
//! - `queue/q-<traced_at>-<random>`: a gateway's traced warnings waiting for
//!   the next period boundary, as a canonical unsigned `WarningBatchBody`
//!   (origin "", sequence 0, `createdAt` = trace time);
//! - `published/w-<hex origin>-<sequence>`: the exact `SignedWarningBatch`
//!   bytes, as published or received;
//! - `next-<hex origin>`: a gateway's next warning sequence (BE64), kept apart
//!   so that retention deleting old batches never reuses a number.

use std::path::{Path, PathBuf};

use rand::RngCore;
use sha2::{Digest, Sha256};
use traceless_protocol::venue::{SignedWarningBatch, TraceWarning, WarningBatch};

use super::{files, StorageError};

/// How long a warning batch is kept after its `createdAt` (as key batches).
pub const WARNING_RETENTION_SECS: u64 = 14 * 86_400;

/// A stored warning batch's metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WarningMeta {
    /// Authority id.
    pub origin: String,
    /// Per-origin sequence.
    pub sequence: u64,
    /// Publication time (a period boundary of its gateway).
    pub created_at: u64,
    /// Warnings in it.
    pub warnings: usize,
    /// SHA-256 of the signed bytes (the ETag).
    pub content_id: [u8; 32],
}

impl WarningMeta {
    /// UTC day of `created_at`: the day its deletion record names.
    pub fn day(&self) -> u32 {
        traceless_protocol::day_of_unix(self.created_at)
    }
}

/// What storing a received batch did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WarningPut {
    /// Stored.
    New,
    /// The same bytes were held already.
    Duplicate,
    /// Other bytes are held under this (origin, sequence): the first is kept.
    Conflict,
}

/// The warning files of one data directory.
#[derive(Debug, Clone)]
pub struct WarningFiles {
    dir: PathBuf,
}

/// Writes `bytes` to a temporary file beside `path`, syncs it, renames it over
/// `path` and syncs the directory: a reader sees the old bytes or the new, never
/// half of them (the `next-` files are rewritten in place of the old).
fn write_durably(path: &Path, bytes: &[u8]) -> Result<(), StorageError> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    files::sync_parent(path)
}

/// The name of a warning file at `path`, or none for a temporary file that
/// [`write_durably`] left behind (a crash before its rename): never read as a
/// queued trace or a stored batch.
fn stored_name(path: &Path) -> Option<String> {
    let name = path.file_name()?.to_string_lossy().into_owned();
    (!name.ends_with(".tmp")).then_some(name)
}

/// Deletes `paths` (gone already is fine), then syncs each directory once.
fn remove_durably(paths: &[PathBuf]) -> Result<(), StorageError> {
    for p in paths {
        files::remove_if_present(p)?;
    }
    let mut synced = std::collections::BTreeSet::new();
    for p in paths {
        if p.parent().is_some_and(|d| synced.insert(d)) {
            files::sync_parent(p)?;
        }
    }
    Ok(())
}

/// Metadata of verified signed bytes.
pub fn meta_of(batch: &WarningBatch, bytes: &[u8]) -> WarningMeta {
    WarningMeta {
        origin: batch.origin.clone(),
        sequence: batch.sequence,
        created_at: batch.created_at,
        warnings: batch.warnings.len(),
        content_id: Sha256::digest(bytes).into(),
    }
}

/// Metadata of stored signed bytes (verified when they were stored).
pub fn read_meta(bytes: &[u8]) -> Result<WarningMeta, StorageError> {
    let signed = SignedWarningBatch::decode(bytes)
        .map_err(|_| StorageError::Corrupt("stored warning batch"))?;
    let batch = WarningBatch::decode_body(&signed.body)
        .map_err(|_| StorageError::Corrupt("stored warning batch"))?;
    Ok(meta_of(&batch, bytes))
}

impl WarningFiles {
    /// The warning files of `data_dir` (directories made on first use).
    pub fn at(data_dir: &Path) -> Self {
        WarningFiles {
            dir: data_dir.join("warnings"),
        }
    }

    fn queue_dir(&self) -> PathBuf {
        self.dir.join("queue")
    }

    fn published_dir(&self) -> PathBuf {
        self.dir.join("published")
    }

    fn ensure(&self) -> Result<(), StorageError> {
        std::fs::create_dir_all(self.queue_dir())?;
        std::fs::create_dir_all(self.published_dir())?;
        Ok(())
    }

    fn batch_path(&self, origin: &str, sequence: u64) -> PathBuf {
        self.published_dir()
            .join(format!("w-{}-{sequence:020}", hex::encode(origin)))
    }

    /// Queues traced warnings durably for the first boundary after `traced_at`.
    pub fn enqueue(&self, warnings: Vec<TraceWarning>, traced_at: u64) -> Result<(), StorageError> {
        self.ensure()?;
        let body = WarningBatch {
            origin: String::new(),
            sequence: 0,
            created_at: traced_at,
            warnings,
        }
        .encode_body();
        let mut r = [0u8; 8];
        rand::rngs::OsRng.fill_bytes(&mut r);
        let path = self
            .queue_dir()
            .join(format!("q-{traced_at:020}-{}", hex::encode(r)));
        write_durably(&path, &body)
    }

    /// Queued traces with a trace time before `boundary`, oldest first, with
    /// their files (removed by [`Self::commit_publication`]).
    pub fn queued_before(
        &self,
        boundary: u64,
    ) -> Result<(Vec<TraceWarning>, Vec<PathBuf>), StorageError> {
        let mut files = Vec::new();
        match std::fs::read_dir(self.queue_dir()) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Default::default()),
            Err(e) => return Err(e.into()),
            Ok(rd) => {
                for entry in rd {
                    let path = entry?.path();
                    let name = stored_name(&path);
                    let Some(at) = name
                        .as_deref()
                        .and_then(|n| n.strip_prefix("q-"))
                        .and_then(|n| n.split('-').next())
                        .and_then(|t| t.parse::<u64>().ok())
                    else {
                        continue;
                    };
                    if at < boundary {
                        files.push((at, path));
                    }
                }
            }
        }
        files.sort();
        let mut warnings = Vec::new();
        let mut paths = Vec::new();
        for (_, path) in files {
            let bytes = std::fs::read(&path)?;
            let body = WarningBatch::decode_body(&bytes)
                .map_err(|_| StorageError::Corrupt("queued warnings"))?;
            warnings.extend(body.warnings);
            paths.push(path);
        }
        Ok((warnings, paths))
    }

    /// The next warning sequence of `origin` (1 for a first batch, as key
    /// batches number from 1, so that deletion ranges can name it).
    pub fn next_sequence(&self, origin: &str) -> Result<u64, StorageError> {
        let path = self.dir.join(format!("next-{}", hex::encode(origin)));
        match files::read_if_present(&path)? {
            None => Ok(1),
            Some(b) => Ok(u64::from_be_bytes(
                b.try_into()
                    .map_err(|_| StorageError::Corrupt("warning sequence"))?,
            )),
        }
    }

    /// Stores a gateway's own signed batches, advances its sequence, then
    /// removes the queued files they came from, in that order: a crash before
    /// the sequence moved republishes the same numbers with the same traces
    /// (the batch files are rewritten); a crash after it, before the removal,
    /// publishes those traces once more under new numbers, which phones
    /// match once per visit and window (SPEC.md §12.6). No trace is lost.
    pub fn commit_publication(
        &self,
        origin: &str,
        batches: &[(WarningMeta, Vec<u8>)],
        next_sequence: u64,
        queued: &[PathBuf],
    ) -> Result<(), StorageError> {
        self.ensure()?;
        for (m, bytes) in batches {
            write_durably(&self.batch_path(&m.origin, m.sequence), bytes)?;
        }
        write_durably(
            &self.dir.join(format!("next-{}", hex::encode(origin))),
            &next_sequence.to_be_bytes(),
        )?;
        remove_durably(queued)
    }

    /// Stores a verified batch received from a peer (exact bytes).
    pub fn put(&self, meta: &WarningMeta, bytes: &[u8]) -> Result<WarningPut, StorageError> {
        self.ensure()?;
        let path = self.batch_path(&meta.origin, meta.sequence);
        match std::fs::read(&path) {
            Ok(held) if held == bytes => Ok(WarningPut::Duplicate),
            Ok(_) => Ok(WarningPut::Conflict),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                write_durably(&path, bytes)?;
                Ok(WarningPut::New)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The signed bytes of one batch.
    pub fn get(&self, origin: &str, sequence: u64) -> Result<Option<Vec<u8>>, StorageError> {
        files::read_if_present(&self.batch_path(origin, sequence))
    }

    /// Every stored batch (of `origin` if given) with a sequence above
    /// `after`, by origin then sequence. The bytes were verified when stored;
    /// their bodies are read again here, and only theirs: the sequence is in
    /// the file name, so a phone's cursor costs what lies above it.
    pub fn list(&self, origin: Option<&str>, after: u64) -> Result<Vec<WarningMeta>, StorageError> {
        let rd = match std::fs::read_dir(self.published_dir()) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
            Ok(rd) => rd,
        };
        let prefix = origin.map(|o| format!("w-{}-", hex::encode(o)));
        let mut out = Vec::new();
        for entry in rd {
            let path = entry?.path();
            let Some(name) = stored_name(&path).filter(|n| n.starts_with("w-")) else {
                continue;
            };
            if prefix.as_deref().is_some_and(|p| !name.starts_with(p)) {
                continue;
            }
            let sequence = name
                .rsplit_once('-')
                .and_then(|(_, s)| s.parse::<u64>().ok());
            if sequence.is_some_and(|s| s <= after) {
                continue;
            }
            out.push(read_meta(&std::fs::read(&path)?)?);
        }
        out.sort_by(|a, b| (&a.origin, a.sequence).cmp(&(&b.origin, b.sequence)));
        Ok(out)
    }

    /// Every batch created at least [`WARNING_RETENTION_SECS`] before `now`:
    /// due for deletion.
    pub fn expired(&self, now: u64) -> Result<Vec<WarningMeta>, StorageError> {
        Ok(self
            .list(None, 0)?
            .into_iter()
            .filter(|m| m.created_at.saturating_add(WARNING_RETENTION_SECS) <= now)
            .collect())
    }

    /// Removes the files of `batches`, durably (a batch already gone is fine).
    pub fn delete(&self, batches: &[WarningMeta]) -> Result<(), StorageError> {
        let paths: Vec<PathBuf> = batches
            .iter()
            .map(|m| self.batch_path(&m.origin, m.sequence))
            .collect();
        remove_durably(&paths)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// A half-written queue file a crash left before its rename is not read
    /// as a queued trace (it would not decode and would block publication).
    #[test]
    fn a_temporary_file_left_in_the_queue_is_not_a_queued_trace() {
        let dir = tempfile::tempdir().unwrap();
        let files = WarningFiles::at(dir.path());
        files.enqueue(Vec::new(), 100).unwrap();
        let left = files.queue_dir().join(format!("q-{:020}-00.tmp", 50));
        std::fs::write(&left, b"half").unwrap();
        let (_, queued) = files.queued_before(200).unwrap();
        assert_eq!(queued.len(), 1, "{queued:?}");
        assert!(!queued.contains(&left));
    }

    /// A listing above a cursor reads no file at or below it (here a corrupt
    /// one, which a full listing reports).
    #[test]
    fn a_listing_above_the_cursor_reads_nothing_below_it() {
        let dir = tempfile::tempdir().unwrap();
        let files = WarningFiles::at(dir.path());
        files.ensure().unwrap();
        std::fs::write(files.batch_path("a.health", 1), b"not a batch").unwrap();
        assert_eq!(files.list(Some("a.health"), 1).unwrap(), Vec::new());
        assert_eq!(files.list(None, 1).unwrap(), Vec::new());
        assert!(matches!(
            files.list(Some("a.health"), 0),
            Err(StorageError::Corrupt("stored warning batch"))
        ));
    }
}

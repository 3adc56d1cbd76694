//! The orphan sweep at open: files that no record refers to (left by a crash
//! between a file write and its commit, or a commit and a file deletion) are
//! removed.

use super::files::{
    parse_batch_file, parse_filter_file, ENTRY_KEY_FILE_PREFIX, PENDING_FILE_PREFIX,
};
use super::keyspace::{batch_key, entry_count_key, filter_key, numbered, PENDING};
use super::sled_store::SledStore;
use super::StorageError;

impl SledStore {
    /// Removes files that no record refers to: a batch or held key whose record
    /// was never committed or was deleted, a filter revision whose metadata was
    /// never committed or was replaced, an entry key of a day without entries, a
    /// file half-written when the node crashed, a temporary file of older versions.
    pub(super) fn remove_orphan_files(&self) -> Result<(), StorageError> {
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
                self.db.contains_key(batch_key(&origin, sequence))?
            } else if let Some(id) = name.strip_prefix(PENDING_FILE_PREFIX) {
                match hex::decode(id) {
                    Ok(id) => self.db.contains_key(numbered(PENDING, &id))?,
                    Err(_) => false,
                }
            } else if let Some((origin, day, revision)) = parse_filter_file(&name) {
                self.db.contains_key(filter_key(&origin, day, revision))?
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
}

//! Encrypted filter entries: a gateway's entries of a day are stored in sled
//! AES-128-encrypted under a random per-day key kept in a file of its own
//! (a permutation of the 16-byte entry, so order and uniqueness are kept).
//! Deleting the key file at retention leaves sled's copies unreadable.

use std::path::PathBuf;

use aes::cipher::{BlockCipherDecrypt, BlockCipherEncrypt, KeyInit};
use aes::Aes128;
use rand_core::{OsRng, RngCore};
use traceless_protocol::filter::FILTER_ENTRY_LEN;
use traceless_protocol::FilterEntry;

use super::files::{write_durably, ENTRY_KEY_FILE_PREFIX};
use super::keyspace::{entry_count_key, entry_key, split_entry_key};
use super::records::StoredEntry;
use super::sled_store::SledStore;
use super::StorageError;

impl SledStore {
    pub(super) fn entry_key_path(&self, day: u32) -> PathBuf {
        self.files.join(format!("{ENTRY_KEY_FILE_PREFIX}{day}"))
    }

    /// The cipher of a day's entries; with `create`, a new random key is written
    /// durably if the day has none yet.
    pub(super) fn entry_cipher(
        &self,
        day: u32,
        create: bool,
    ) -> Result<Option<Aes128>, StorageError> {
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
    pub(super) fn sealed_entry_key(cipher: &Aes128, e: &StoredEntry) -> Vec<u8> {
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

    pub(super) fn entry_count(&self, day: u32) -> Result<u64, StorageError> {
        Ok(match self.db.get(entry_count_key(day))? {
            Some(v) => u64::from_be_bytes(
                v.as_ref()
                    .try_into()
                    .map_err(|_| StorageError::Corrupt("k"))?,
            ),
            None => 0,
        })
    }

    /// Decrypts one stored entry key of `day`.
    pub(super) fn open_entry_key(
        cipher: &Aes128,
        day: u32,
        k: &[u8],
    ) -> Result<StoredEntry, StorageError> {
        let (interval, sealed) = split_entry_key(k).ok_or(StorageError::Corrupt("n"))?;
        let mut block = sealed.into();
        cipher.decrypt_block(&mut block);
        Ok(StoredEntry {
            day,
            interval,
            entry: FilterEntry(block.into()),
        })
    }
}

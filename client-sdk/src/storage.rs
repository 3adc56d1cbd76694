//! Where the SDK's bytes live: a small trait with two implementations, sled on
//! disk for phones and memory for simulations of many phones. Everything written
//! through it is already encrypted (see [`crate::vault`]), except the keyring's
//! wrapped keys and public sync bookkeeping.
//!
//! On disk, `<dir>/db/` is the sled database and `<dir>/keyring` the day-key file.
//! The keyring is a separate, small, fixed-layout file because crypto-shredding
//! must overwrite a key *in place*: sled is log-structured and would keep the old
//! bytes in an earlier segment until its own compaction, which we do not rely on.
//! For the same reason the [`SideFile`]s live in files of their own, overwritten
//! in place: the open venue check-in, the one record that names a venue
//! (`<dir>/checkin`, zeroed at check-out), and the patient's data report
//! (`<dir>/data-report`, zeroed when forgotten).

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::error::{Result, SdkError};

/// The key spaces the SDK uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Table {
    /// Aggregated sightings, sealed per day in segments of tokens.
    Sightings,
    /// The phone's own TEKs, sealed per day.
    OwnKeys,
    /// Exposure windows found by matching, sealed per day of exposure.
    Exposures,
    /// Sync bookkeeping (cursors, synced batches) and schedules; public data only.
    Meta,
    /// Day filters (filter form): the revision held per origin and day, sealed
    /// under the filter's day, and the observations that hit it, sealed under
    /// the day they were heard.
    Filters,
    /// Finished venue check-ins (SPEC.md §12.6): the key-private IBE records,
    /// the times-only diary and the warnings that matched, sealed per day.
    Checkins,
}

impl Table {
    /// Every table, in a fixed order.
    pub const ALL: [Table; 6] = [
        Table::Sightings,
        Table::OwnKeys,
        Table::Exposures,
        Table::Meta,
        Table::Filters,
        Table::Checkins,
    ];

    /// The name used as sled tree name and as AEAD associated data.
    pub fn name(self) -> &'static str {
        match self {
            Table::Sightings => "sightings",
            Table::OwnKeys => "own-keys",
            Table::Exposures => "exposures",
            Table::Meta => "meta",
            Table::Filters => "filters",
            Table::Checkins => "checkins",
        }
    }
}

/// Key-value storage plus one small file that can be overwritten in place.
pub trait Storage: Send + Sync {
    /// The value under `key`.
    fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>>;
    /// Sets `key` to `value`.
    fn put(&self, table: Table, key: &[u8], value: &[u8]) -> Result<()>;
    /// Removes `key` (no error if absent).
    fn remove(&self, table: Table, key: &[u8]) -> Result<()>;
    /// Every entry whose key starts with `prefix`, in key order.
    fn scan(&self, table: Table, prefix: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>>;
    /// Makes every write so far durable against a process crash.
    fn flush(&self) -> Result<()>;
    /// The whole keyring file (empty if it does not exist yet).
    fn read_keyring(&self) -> Result<Vec<u8>>;
    /// Overwrites `bytes` at `offset` of the keyring file in place and syncs it to
    /// the device before returning.
    fn write_keyring(&self, offset: u64, bytes: &[u8]) -> Result<()>;
    /// The whole side file (empty if it does not exist yet).
    fn read_side(&self, file: SideFile) -> Result<Vec<u8>>;
    /// Overwrites the side file from its start with `bytes` in place (callers
    /// always write the same length) and syncs it to the device.
    fn write_side(&self, file: SideFile, bytes: &[u8]) -> Result<()>;
}

/// A fixed-length, master-sealed file kept outside sled so that it can be
/// destroyed by overwriting it in place.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SideFile {
    /// The open venue check-in.
    OpenCheckIn,
    /// The patient's data report (where their uploaded keys were published).
    DataReport,
}

impl SideFile {
    /// Every side file, in a fixed order.
    pub const ALL: [SideFile; 2] = [SideFile::OpenCheckIn, SideFile::DataReport];

    /// The file's name under the storage directory.
    pub fn name(self) -> &'static str {
        match self {
            SideFile::OpenCheckIn => "checkin",
            SideFile::DataReport => "data-report",
        }
    }
}

/// sled database plus keyring file under one directory.
pub struct SledStorage {
    db: sled::Db,
    trees: Vec<sled::Tree>,
    keyring: Mutex<File>,
    side: [Mutex<File>; 2],
    /// Last, so that it is dropped after the database (fields drop in order).
    _released: LockReleased,
}

/// Waits, when dropped, until sled has let go of its lock file.
///
/// sled takes an exclusive `flock` on `<db>/db` at open and releases it only
/// when the last of its internal references is gone; some belong to background
/// threads that outlive the `Db` briefly. A host that shuts down and reopens at
/// once (or retries an open refused for a wrong master key) would otherwise be
/// refused with `WouldBlock` now and then. No crate exposes this wait.
struct LockReleased(PathBuf);

impl LockReleased {
    /// Longest wait; a lock still held then belongs to someone else.
    const PATIENCE: Duration = Duration::from_secs(5);
}

impl Drop for LockReleased {
    fn drop(&mut self) {
        let Ok(file) = File::open(&self.0) else {
            return;
        };
        let deadline = Instant::now() + Self::PATIENCE;
        let mut pause = Duration::from_micros(100);
        loop {
            match file.try_lock() {
                Ok(()) => {
                    let _ = file.unlock();
                    return;
                }
                Err(TryLockError::WouldBlock) if Instant::now() < deadline => {
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(20));
                }
                Err(_) => return,
            }
        }
    }
}

fn open_in_place(path: &Path) -> Result<File> {
    Ok(OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)?)
}

fn read_all(file: &Mutex<File>) -> Result<Vec<u8>> {
    let mut file = file.lock().map_err(|_| poisoned())?;
    let mut out = Vec::new();
    file.seek(SeekFrom::Start(0))?;
    file.read_to_end(&mut out)?;
    Ok(out)
}

fn write_at(file: &Mutex<File>, offset: u64, bytes: &[u8]) -> Result<()> {
    let mut file = file.lock().map_err(|_| poisoned())?;
    file.seek(SeekFrom::Start(offset))?;
    file.write_all(bytes)?;
    file.sync_data()?;
    Ok(())
}

impl SledStorage {
    /// Opens (creating if needed) the storage under `dir`.
    pub fn open(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir)?;
        let keyring = open_in_place(&dir.join("keyring"))?;
        let [a, b] = SideFile::ALL.map(|f| open_in_place(&dir.join(f.name())));
        let db_dir = dir.join("db");
        let db = sled::Config::new()
            .path(&db_dir)
            .mode(sled::Mode::LowSpace)
            .open()?;
        let trees = Table::ALL
            .iter()
            .map(|t| db.open_tree(t.name()))
            .collect::<Result<_, _>>()?;
        Ok(SledStorage {
            db,
            trees,
            keyring: Mutex::new(keyring),
            side: [Mutex::new(a?), Mutex::new(b?)],
            _released: LockReleased(db_dir.join("db")),
        })
    }

    fn tree(&self, table: Table) -> &sled::Tree {
        &self.trees[table as usize]
    }
}

impl Storage for SledStorage {
    fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.tree(table).get(key)?.map(|v| v.to_vec()))
    }

    fn put(&self, table: Table, key: &[u8], value: &[u8]) -> Result<()> {
        self.tree(table).insert(key, value)?;
        Ok(())
    }

    fn remove(&self, table: Table, key: &[u8]) -> Result<()> {
        self.tree(table).remove(key)?;
        Ok(())
    }

    fn scan(&self, table: Table, prefix: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        self.tree(table)
            .scan_prefix(prefix)
            .map(|r| {
                let (k, v) = r?;
                Ok((k.to_vec(), v.to_vec()))
            })
            .collect()
    }

    fn flush(&self) -> Result<()> {
        self.db.flush()?;
        Ok(())
    }

    fn read_keyring(&self) -> Result<Vec<u8>> {
        read_all(&self.keyring)
    }

    fn write_keyring(&self, offset: u64, bytes: &[u8]) -> Result<()> {
        write_at(&self.keyring, offset, bytes)
    }

    fn read_side(&self, file: SideFile) -> Result<Vec<u8>> {
        read_all(&self.side[file as usize])
    }

    fn write_side(&self, file: SideFile, bytes: &[u8]) -> Result<()> {
        write_at(&self.side[file as usize], 0, bytes)
    }
}

fn poisoned() -> SdkError {
    SdkError::Storage("a previous call panicked while holding the storage lock".into())
}

/// Entries of every table, keyed by (table, key).
type Entries = BTreeMap<(Table, Vec<u8>), Vec<u8>>;

/// Everything in memory: for simulations and tests of logic above storage.
#[derive(Default)]
pub struct MemoryStorage {
    tables: Mutex<Entries>,
    keyring: Mutex<Vec<u8>>,
    side: [Mutex<Vec<u8>>; 2],
}

impl MemoryStorage {
    /// Empty storage.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Storage for MemoryStorage {
    fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let tables = self.tables.lock().map_err(|_| poisoned())?;
        Ok(tables.get(&(table, key.to_vec())).cloned())
    }

    fn put(&self, table: Table, key: &[u8], value: &[u8]) -> Result<()> {
        let mut tables = self.tables.lock().map_err(|_| poisoned())?;
        tables.insert((table, key.to_vec()), value.to_vec());
        Ok(())
    }

    fn remove(&self, table: Table, key: &[u8]) -> Result<()> {
        let mut tables = self.tables.lock().map_err(|_| poisoned())?;
        tables.remove(&(table, key.to_vec()));
        Ok(())
    }

    fn scan(&self, table: Table, prefix: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let tables = self.tables.lock().map_err(|_| poisoned())?;
        Ok(tables
            .range((table, prefix.to_vec())..)
            .take_while(|((t, k), _)| *t == table && k.starts_with(prefix))
            .map(|((_, k), v)| (k.clone(), v.clone()))
            .collect())
    }

    fn flush(&self) -> Result<()> {
        Ok(())
    }

    fn read_keyring(&self) -> Result<Vec<u8>> {
        Ok(self.keyring.lock().map_err(|_| poisoned())?.clone())
    }

    fn write_keyring(&self, offset: u64, bytes: &[u8]) -> Result<()> {
        let mut file = self.keyring.lock().map_err(|_| poisoned())?;
        let offset = usize::try_from(offset).map_err(|_| poisoned())?;
        if file.len() < offset + bytes.len() {
            file.resize(offset + bytes.len(), 0);
        }
        file[offset..offset + bytes.len()].copy_from_slice(bytes);
        Ok(())
    }

    fn read_side(&self, file: SideFile) -> Result<Vec<u8>> {
        Ok(self.side[file as usize]
            .lock()
            .map_err(|_| poisoned())?
            .clone())
    }

    fn write_side(&self, file: SideFile, bytes: &[u8]) -> Result<()> {
        *self.side[file as usize].lock().map_err(|_| poisoned())? = bytes.to_vec();
        Ok(())
    }
}

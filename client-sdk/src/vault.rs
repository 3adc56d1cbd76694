//! Encryption at rest with crypto-shredding.
//!
//! Every record of day `D` (sightings heard on `D`, the phone's own TEKs of `D`,
//! exposures found on `D`, the revisions of `D`'s day filters, filter hits heard
//! on `D`) is sealed with XChaCha20-Poly1305 under a key derived from a random
//! 32-byte *day key*. Day keys are wrapped by the host app's master
//! key (held in Android Keystore / iOS Keychain) and kept in the keyring file, one
//! fixed slot per day. Destroying day `D` overwrites its slot with zeros in place
//! and syncs the file: from then on nothing of `D` can be decrypted, whatever old
//! pages the database engine still keeps.
//!
//! ```text
//! keyring  = header(64) || slot[0] || ... || slot[15]
//! header   = "TLKEYRG1" || nonce(24) || AEAD_master(nonce, "", aad = CHECK_AAD) || 0x00*16
//! slot[d % 16] = LE32(d) || LE32(1) || nonce(24) || AEAD_master(nonce, day_key, aad = SLOT_AAD || LE32(d))
//! seal_key  = HKDF-SHA256(day_key, salt = None, info = "traceless/sdk/v1/seal", 32)
//! index_key = HKDF-SHA256(day_key, salt = None, info = "traceless/sdk/v1/index", 32)
//! record   = nonce(24) || XChaCha20-Poly1305(seal_key, nonce, plaintext, aad = table || 0x00 || storage key)
//! ```
//!
//! Storage keys never carry a token or a TEK in clear: a record about token `x` of
//! day `D` is stored under `BE32(D) || HMAC-SHA256(index_key, label || 0x00 || x)[..16]`.
//! Sightings are grouped: the record is that of one of a day's segments of tokens
//! (`x` is the segment number, see [`crate::sightings`]), not of one token.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use rand_core::{OsRng, RngCore};
use sha2::Sha256;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::error::{Result, SdkError};
use crate::storage::{Storage, Table};

/// The host app's master key: 32 bytes from the platform keystore.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct MasterKey(pub [u8; 32]);

const MAGIC: &[u8; 8] = b"TLKEYRG1";
const HEADER_LEN: usize = 64;
const SLOT_LEN: usize = 80;
/// Number of day-key slots; more than the retention window plus today.
pub const SLOTS: u32 = 16;
const CHECK_AAD: &[u8] = b"traceless/sdk/v1/keyring-check";
const SLOT_AAD: &[u8] = b"traceless/sdk/v1/day-key";
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;

/// The subkeys of one day.
#[derive(Zeroize, ZeroizeOnDrop)]
struct DayKeys {
    seal: [u8; 32],
    index: [u8; 32],
}

impl DayKeys {
    fn derive(day_key: &[u8; 32]) -> Self {
        let hk = Hkdf::<Sha256>::new(None, day_key);
        let mut keys = DayKeys {
            seal: [0; 32],
            index: [0; 32],
        };
        hk.expand(b"traceless/sdk/v1/seal", &mut keys.seal)
            .expect("32 bytes is a valid HKDF-SHA256 length");
        hk.expand(b"traceless/sdk/v1/index", &mut keys.index)
            .expect("32 bytes is a valid HKDF-SHA256 length");
        keys
    }
}

/// A decrypted record, overwritten with zeros when dropped.
pub type Plaintext = Zeroizing<Vec<u8>>;

/// A stored record: its storage key and its plaintext, or why it could not be opened.
pub type OpenedRecord = (Vec<u8>, Result<Plaintext>);

/// Sealed per-day storage over a [`Storage`].
pub struct Vault {
    storage: Arc<dyn Storage>,
    master: XChaCha20Poly1305,
    days: BTreeMap<u32, DayKeys>,
    /// Counts sighting writes and destroyed days (see [`Vault::sightings_version`]).
    sightings_version: AtomicU64,
}

fn slot_offset(day: u32) -> u64 {
    (HEADER_LEN + (day % SLOTS) as usize * SLOT_LEN) as u64
}

fn slot_aad(day: u32) -> Vec<u8> {
    [SLOT_AAD, &day.to_le_bytes()].concat()
}

/// The nonce in the first 24 bytes of `bytes` (callers check the length).
fn xnonce(bytes: &[u8]) -> &XNonce {
    let array: &[u8; NONCE_LEN] = bytes[..NONCE_LEN].try_into().expect("24 bytes");
    array.into()
}

fn random_nonce() -> [u8; NONCE_LEN] {
    let mut n = [0u8; NONCE_LEN];
    OsRng.fill_bytes(&mut n);
    n
}

impl Vault {
    /// Opens the vault: creates the keyring on first use, checks the master key,
    /// and unwraps every live day key.
    pub fn open(storage: Arc<dyn Storage>, master: &MasterKey) -> Result<Self> {
        let cipher = XChaCha20Poly1305::new(&master.0.into());
        let raw = storage.read_keyring()?;
        let mut vault = Vault {
            storage,
            master: cipher,
            days: BTreeMap::new(),
            sightings_version: AtomicU64::new(0),
        };
        if raw.is_empty() {
            vault.write_header()?;
            return Ok(vault);
        }
        if raw.len() < HEADER_LEN || &raw[..8] != MAGIC {
            return Err(SdkError::Corrupt("keyring header is damaged".into()));
        }
        let nonce = xnonce(&raw[8..8 + NONCE_LEN]);
        let tag = &raw[8 + NONCE_LEN..8 + NONCE_LEN + TAG_LEN];
        vault
            .master
            .decrypt(
                nonce,
                Payload {
                    msg: tag,
                    aad: CHECK_AAD,
                },
            )
            .map_err(|_| SdkError::WrongMasterKey)?;
        for slot in raw[HEADER_LEN..].chunks_exact(SLOT_LEN) {
            if slot.iter().all(|&b| b == 0) {
                continue;
            }
            let day = u32::from_le_bytes(slot[..4].try_into().expect("4 bytes"));
            let nonce = xnonce(&slot[8..8 + NONCE_LEN]);
            let plain = vault
                .master
                .decrypt(
                    nonce,
                    Payload {
                        msg: &slot[8 + NONCE_LEN..],
                        aad: &slot_aad(day),
                    },
                )
                .map(Zeroizing::new)
                .map_err(|_| SdkError::Corrupt(format!("day key slot of day {day} is damaged")))?;
            // The decrypted day key, in `plain` and in `day_key`, is wiped below.
            let mut day_key: [u8; 32] = plain
                .as_slice()
                .try_into()
                .map_err(|_| SdkError::Corrupt(format!("day key of day {day} has a bad length")))?;
            vault.days.insert(day, DayKeys::derive(&day_key));
            day_key.zeroize();
        }
        Ok(vault)
    }

    fn write_header(&self) -> Result<()> {
        let nonce = random_nonce();
        let tag = self
            .master
            .encrypt(
                xnonce(&nonce),
                Payload {
                    msg: &[],
                    aad: CHECK_AAD,
                },
            )
            .map_err(|_| SdkError::Storage("sealing the keyring check failed".into()))?;
        let mut header = [0u8; HEADER_LEN];
        header[..8].copy_from_slice(MAGIC);
        header[8..8 + NONCE_LEN].copy_from_slice(&nonce);
        header[8 + NONCE_LEN..8 + NONCE_LEN + TAG_LEN].copy_from_slice(&tag);
        self.storage.write_keyring(0, &header)?;
        // Reserve every slot so that later writes never grow the file.
        self.storage
            .write_keyring(HEADER_LEN as u64, &[0u8; SLOTS as usize * SLOT_LEN])
    }

    /// Days whose key is live, ascending.
    pub fn live_days(&self) -> Vec<u32> {
        self.days.keys().copied().collect()
    }

    /// Whether day `day` still has its key.
    pub fn has_day(&self, day: u32) -> bool {
        self.days.contains_key(&day)
    }

    /// Creates the key of `day` if it does not exist yet. The slot it takes must be
    /// free: the caller destroys days older than the retention window first.
    pub fn ensure_day(&mut self, day: u32) -> Result<()> {
        if self.days.contains_key(&day) {
            return Ok(());
        }
        if let Some(other) = self.days.keys().find(|&&d| d % SLOTS == day % SLOTS) {
            return Err(SdkError::InvalidArgument(format!(
                "day {day} would reuse the key slot of day {other}, which is still kept; \
                 the clock moved by more than {SLOTS} days"
            )));
        }
        let mut day_key = [0u8; 32];
        OsRng.fill_bytes(&mut day_key);
        let nonce = random_nonce();
        let wrapped = self
            .master
            .encrypt(
                xnonce(&nonce),
                Payload {
                    msg: &day_key,
                    aad: &slot_aad(day),
                },
            )
            .map_err(|_| SdkError::Storage("wrapping a day key failed".into()))?;
        let mut slot = Vec::with_capacity(SLOT_LEN);
        slot.extend_from_slice(&day.to_le_bytes());
        slot.extend_from_slice(&1u32.to_le_bytes());
        slot.extend_from_slice(&nonce);
        slot.extend_from_slice(&wrapped);
        // The key is durable before anything is sealed under it.
        self.storage.write_keyring(slot_offset(day), &slot)?;
        self.days.insert(day, DayKeys::derive(&day_key));
        day_key.zeroize();
        Ok(())
    }

    /// Destroys the key of `day`: overwrites its slot with zeros and syncs, then
    /// removes the day's (now undecryptable) records to reclaim space.
    pub fn destroy_day(&mut self, day: u32) -> Result<()> {
        *self.sightings_version.get_mut() += 1;
        if self.days.remove(&day).is_some() {
            self.storage
                .write_keyring(slot_offset(day), &[0u8; SLOT_LEN])?;
        }
        for table in [
            Table::Sightings,
            Table::OwnKeys,
            Table::Exposures,
            Table::Filters,
            Table::Checkins,
        ] {
            for (key, _) in self.storage.scan(table, &day.to_be_bytes())? {
                self.storage.remove(table, &key)?;
            }
        }
        Ok(())
    }

    fn keys(&self, day: u32) -> Result<&DayKeys> {
        self.days
            .get(&day)
            .ok_or_else(|| SdkError::InvalidArgument(format!("day {day} has no key (expired)")))
    }

    /// The storage key of the record about `item` (labelled `label`) of `day`:
    /// `BE32(day) || HMAC(index_key, label || 0x00 || item)[..16]`.
    pub fn record_key(&self, day: u32, label: &[u8], item: &[u8]) -> Result<[u8; 20]> {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.keys(day)?.index)
            .expect("HMAC takes any key length");
        mac.update(label);
        mac.update(&[0]);
        mac.update(item);
        let tag = mac.finalize().into_bytes();
        let mut key = [0u8; 20];
        key[..4].copy_from_slice(&day.to_be_bytes());
        key[4..].copy_from_slice(&tag[..16]);
        Ok(key)
    }

    fn aad(table: Table, key: &[u8]) -> Vec<u8> {
        [table.name().as_bytes(), &[0], key].concat()
    }

    /// Changes whenever a sighting record is written through [`Vault::put`] or a
    /// day is destroyed (from the attempt on, whether or not it succeeds): what
    /// was decrypted from [`Table::Sightings`] under another version may be stale.
    pub fn sightings_version(&self) -> u64 {
        self.sightings_version.load(Ordering::Relaxed)
    }

    /// Seals `plaintext` under the key of the day that `key` starts with and stores it.
    pub fn put(&self, table: Table, key: &[u8], plaintext: &[u8]) -> Result<()> {
        if table == Table::Sightings {
            self.sightings_version.fetch_add(1, Ordering::Relaxed);
        }
        let day = day_of_key(key)?;
        let cipher = XChaCha20Poly1305::new(&self.keys(day)?.seal.into());
        let nonce = random_nonce();
        let sealed = cipher
            .encrypt(
                xnonce(&nonce),
                Payload {
                    msg: plaintext,
                    aad: &Self::aad(table, key),
                },
            )
            .map_err(|_| SdkError::Storage("sealing a record failed".into()))?;
        self.storage
            .put(table, key, &[&nonce[..], &sealed].concat())
    }

    /// Reads and opens one record; `Ok(None)` if absent.
    pub fn get(&self, table: Table, key: &[u8]) -> Result<Option<Plaintext>> {
        match self.storage.get(table, key)? {
            Some(sealed) => self.open_record(table, key, &sealed).map(Some),
            None => Ok(None),
        }
    }

    /// Every record of `day` in `table`: `(storage key, plaintext or why it could not be opened)`.
    pub fn scan_day(&self, table: Table, day: u32) -> Result<Vec<OpenedRecord>> {
        Ok(self
            .storage
            .scan(table, &day.to_be_bytes())?
            .into_iter()
            .map(|(k, v)| {
                let plain = self.open_record(table, &k, &v);
                (k, plain)
            })
            .collect())
    }

    fn open_record(&self, table: Table, key: &[u8], sealed: &[u8]) -> Result<Plaintext> {
        let day = day_of_key(key)?;
        if sealed.len() < NONCE_LEN + TAG_LEN {
            return Err(SdkError::Corrupt(format!(
                "{} record of day {day} is truncated",
                table.name()
            )));
        }
        let cipher = XChaCha20Poly1305::new(&self.keys(day)?.seal.into());
        cipher
            .decrypt(
                xnonce(&sealed[..NONCE_LEN]),
                Payload {
                    msg: &sealed[NONCE_LEN..],
                    aad: &Self::aad(table, key),
                },
            )
            .map_err(|_| {
                SdkError::Corrupt(format!(
                    "{} record of day {day} does not authenticate",
                    table.name()
                ))
            })
            .map(Zeroizing::new)
    }

    /// Seals `plaintext` under the master key itself (for a record that belongs
    /// to no day, such as the open check-in): `nonce(24) || AEAD(…, aad)`.
    pub fn seal_with_master(&self, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>> {
        let nonce = random_nonce();
        let sealed = self
            .master
            .encrypt(
                xnonce(&nonce),
                Payload {
                    msg: plaintext,
                    aad,
                },
            )
            .map_err(|_| SdkError::Storage("sealing a record failed".into()))?;
        Ok([&nonce[..], &sealed].concat())
    }

    /// Opens [`Vault::seal_with_master`]; `Corrupt` naming `what` if it does not
    /// authenticate.
    pub fn open_with_master(&self, aad: &[u8], sealed: &[u8], what: &str) -> Result<Plaintext> {
        if sealed.len() < NONCE_LEN + TAG_LEN {
            return Err(SdkError::Corrupt(format!("{what} is truncated")));
        }
        self.master
            .decrypt(
                xnonce(&sealed[..NONCE_LEN]),
                Payload {
                    msg: &sealed[NONCE_LEN..],
                    aad,
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| SdkError::Corrupt(format!("{what} does not authenticate")))
    }

    /// The plain storage underneath (for public bookkeeping in [`Table::Meta`]).
    pub fn storage(&self) -> &dyn Storage {
        self.storage.as_ref()
    }
}

fn day_of_key(key: &[u8]) -> Result<u32> {
    key.get(..4)
        .map(|b| u32::from_be_bytes(b.try_into().expect("4 bytes")))
        .ok_or_else(|| SdkError::Corrupt("record key shorter than its day prefix".into()))
}

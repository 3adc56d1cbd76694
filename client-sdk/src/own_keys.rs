//! The phone's own Temporary Exposure Keys: one random TEK per UTC day, a fresh
//! one right after a real upload, kept (sealed under the day's key) for the
//! retention window so that a diagnosis can publish them.

use serde::{Deserialize, Serialize};
use traceless_protocol::{
    day_of_interval, day_start_interval, interval_number, Advertisement, Metadata, Tek,
    INTERVALS_PER_DAY,
};

use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::error::{Result, SdkError};
use crate::storage::Table;
use crate::vault::Vault;

/// One of the phone's TEKs with its validity. Overwritten with zeros when
/// dropped; `Debug` does not show the key.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
pub struct OwnKey {
    /// The key.
    pub tek: [u8; 16],
    /// First interval it is valid for.
    pub rolling_start: u32,
    /// Number of intervals it is valid for.
    pub rolling_period: u32,
    /// Set when the key was handed to an upload: it is no longer broadcast.
    pub retired: bool,
}

impl std::fmt::Debug for OwnKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OwnKey")
            .field("tek", &"..")
            .field("rolling_start", &self.rolling_start)
            .field("rolling_period", &self.rolling_period)
            .field("retired", &self.retired)
            .finish()
    }
}

impl OwnKey {
    fn validity_end(&self) -> u32 {
        self.rolling_start + self.rolling_period
    }

    /// Whether this key is the one to broadcast in `interval`.
    fn in_use_at(&self, interval: u32) -> bool {
        !self.retired && (self.rolling_start..self.validity_end()).contains(&interval)
    }
}

fn storage_key(day: u32) -> [u8; 4] {
    day.to_be_bytes()
}

/// The keys of `day`, in order of validity (empty if none or the day expired).
pub fn keys_of_day(vault: &Vault, day: u32) -> Result<Vec<OwnKey>> {
    if !vault.has_day(day) {
        return Ok(Vec::new());
    }
    match vault.get(Table::OwnKeys, &storage_key(day))? {
        Some(bytes) => postcard::from_bytes(&bytes)
            .map_err(|e| SdkError::Corrupt(format!("own keys of day {day}: {e}"))),
        None => Ok(Vec::new()),
    }
}

fn store_day(vault: &mut Vault, day: u32, keys: &[OwnKey]) -> Result<()> {
    vault.ensure_day(day)?;
    let bytes = Zeroizing::new(postcard::to_stdvec(keys).expect("encoding to memory cannot fail"));
    vault.put(Table::OwnKeys, &storage_key(day), &bytes)?;
    crate::tokens::ensure_record(vault, day)?;
    vault.storage().flush()
}

/// The key valid at `now`, drawn from the OS CSPRNG on first use of the day.
pub fn current(vault: &mut Vault, now: u64) -> Result<OwnKey> {
    let interval = interval_number(now);
    let day = day_of_interval(interval);
    let mut keys = keys_of_day(vault, day)?;
    if let Some(k) = keys.iter().find(|k| k.in_use_at(interval)) {
        return Ok(k.clone());
    }
    // The day's first key covers the whole day; a key replacing a retired one
    // starts now.
    let start = if keys.is_empty() {
        day_start_interval(day)
    } else {
        interval
    };
    let key = OwnKey {
        tek: Tek::generate().0,
        rolling_start: start,
        rolling_period: day_start_interval(day) + INTERVALS_PER_DAY - start,
        retired: false,
    };
    keys.push(key.clone());
    store_day(vault, day, &keys)?;
    Ok(key)
}

/// The advertisement to broadcast at `now`.
pub fn advertisement(vault: &mut Vault, now: u64, tx_power_dbm: i8) -> Result<Advertisement> {
    let key = current(vault, now)?;
    Ok(Tek(key.tek).advertisement(interval_number(now), Metadata::new(tx_power_dbm)))
}

/// Retires the key in use at `now`: its validity ends with the current interval
/// and the next [`current`] call draws a fresh key valid from now on. Called when a
/// real upload is built, so that nobody can recognise the rest of today's
/// broadcasts from the published key.
pub fn retire_current_key(vault: &mut Vault, now: u64) -> Result<()> {
    let interval = interval_number(now);
    let day = day_of_interval(interval);
    let mut keys = keys_of_day(vault, day)?;
    if let Some(k) = keys.iter_mut().find(|k| k.in_use_at(interval)) {
        k.rolling_period = interval + 1 - k.rolling_start;
        k.retired = true;
        store_day(vault, day, &keys)?;
    }
    Ok(())
}

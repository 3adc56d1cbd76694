//! Public statistics per day (SPEC.md §8.4): real uploads and keys a gateway
//! accepted, and codes its operators issued, by UTC day.
//!
//! A day's figures are published only once the day is over, and then only if
//! it had at least [`MIN_UPLOADS`] uploads or ended [`WITHHOLD_SECONDS`] ago;
//! before that the page says "fewer than 10" and nothing else about the day
//! (every one of the last [`DAYS_SHOWN`] complete days is listed, with or
//! without uploads, so a row's presence says nothing either). Figures for the
//! running day are never shown: their growth from one period to the next would
//! count the real uploads among the dummies.

use serde::Serialize;
use traceless_protocol::log::Event;

use crate::log::TransparencyLog;
use crate::storage::keyspace::upload_stats_key;
use crate::storage::StorageError;

/// Uploads a day needs for its figures to be published before [`WITHHOLD_SECONDS`].
pub const MIN_UPLOADS: u64 = 10;
/// After the end of a day, its figures are published whatever they are.
pub const WITHHOLD_SECONDS: u64 = 48 * 3600;
/// Complete days listed.
pub const DAYS_SHOWN: u32 = 14;

/// Counts of real (not dummy) uploads per day, in the gateway's sled tree.
pub struct UploadStats {
    db: sled::Db,
}

fn decode(v: Option<&[u8]>) -> (u64, u64) {
    match v {
        Some(v) if v.len() == 16 => {
            let (a, b) = v.split_at(8);
            (
                u64::from_be_bytes(a.try_into().unwrap_or_default()),
                u64::from_be_bytes(b.try_into().unwrap_or_default()),
            )
        }
        _ => (0, 0),
    }
}

impl UploadStats {
    /// The counters in `db`.
    pub fn open(db: sled::Db) -> Self {
        UploadStats { db }
    }

    /// Counts one real upload of `keys` keys accepted at `now`.
    pub fn count_upload(&self, keys: u64, now: u64) -> Result<(), StorageError> {
        let day = (now / 86_400) as u32;
        self.db.update_and_fetch(upload_stats_key(day), |old| {
            let (u, k) = decode(old);
            let mut v = (u + 1).to_be_bytes().to_vec();
            v.extend_from_slice(&(k + keys).to_be_bytes());
            Some(v)
        })?;
        Ok(())
    }

    /// Uploads and keys of `day`.
    pub fn of_day(&self, day: u32) -> Result<(u64, u64), StorageError> {
        Ok(decode(self.db.get(upload_stats_key(day))?.as_deref()))
    }
}

/// One day's public figures.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct DayFigures {
    /// The UTC day (days since 1970-01-01).
    pub day: u32,
    /// Whether the figures are published; if not, the three counts are absent.
    pub published: bool,
    /// Real uploads accepted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uploads: Option<u64>,
    /// Keys in them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keys: Option<u64>,
    /// Codes issued by operators.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub codes_issued: Option<u64>,
}

/// The last [`DAYS_SHOWN`] complete days before `now` (the public boundary),
/// newest first, each published or withheld by the rule above.
pub fn public_days(
    stats: &UploadStats,
    log: &TransparencyLog,
    now: u64,
) -> Result<Vec<DayFigures>, StorageError> {
    let today = (now / 86_400) as u32;
    let first = today.saturating_sub(DAYS_SHOWN);
    let mut codes = std::collections::BTreeMap::<u32, u64>::new();
    let entries = log
        .all_entries()
        .map_err(|e| StorageError::Io(std::io::Error::other(e.to_string())))?;
    for e in entries.iter().filter(|e| e.starts_with(b"codes-issued ")) {
        if let Ok(Event::CodesIssued { count, at, .. }) = Event::decode(e) {
            *codes.entry((at / 86_400) as u32).or_default() += count;
        }
    }
    (first..today)
        .rev()
        .map(|day| {
            let (uploads, keys) = stats.of_day(day)?;
            let day_end = (u64::from(day) + 1) * 86_400;
            let published = uploads >= MIN_UPLOADS || now >= day_end + WITHHOLD_SECONDS;
            let shown = |n: u64| published.then_some(n);
            Ok(DayFigures {
                day,
                published,
                uploads: shown(uploads),
                keys: shown(keys),
                codes_issued: shown(codes.get(&day).copied().unwrap_or(0)),
            })
        })
        .collect()
}

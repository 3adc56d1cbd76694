//! Sync: verify downloaded batches and export files, match their keys against
//! the stored sightings, keep the resulting exposure windows (sealed under the day
//! of exposure) and summarise them per day.
//!
//! Only what the app may learn leaves this module: per day, the minutes and the
//! score. Which token, which key and what time matched stay inside.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use traceless_protocol::p256::ecdsa::VerifyingKey as ExportKey;
use traceless_protocol::{
    day_of_interval, exposure_windows, match_keys_parallel, DiagnosisKey, ExportFile,
    ExposureWindow, KeyMatch, Metadata, PublishedBatch, ScanInstance, TrustList, WireError,
};

use crate::config::SdkConfig;
use crate::error::{Result, SdkError};
use crate::filters::{self, ScanId};
use crate::sightings::{attenuation, duration_s, ObservationSet, Observations};
use crate::storage::Table;
use crate::vault::Vault;

/// What one sync call did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncReport {
    /// Keys verified and matched; for a day filter, the entries it holds (0 if
    /// its revision was not newer than the one held, and nothing was done).
    pub keys: usize,
    /// New exposure windows found (0 for nearly every batch); for a day filter,
    /// the days of hearing that gained hits.
    pub new_windows: usize,
}

/// Published keys that passed verification, with where they came from.
pub(crate) struct Verified {
    /// Bookkeeping key in [`Table::Meta`] that marks this download as synced.
    pub synced_key: Vec<u8>,
    /// What a node's log names the download by (SPEC.md §8.3; the SHA-256 of
    /// the bytes, of a period batch's header).
    pub content_id: [u8; 32],
    /// Origin and sequence, when it is a batch (for the cursor).
    pub cursor: Option<(String, u64)>,
    /// Unix seconds from which the download's bookkeeping may be forgotten.
    pub expires_at: u64,
    /// Publication time: only sightings before it are matched.
    pub published_at: u64,
    pub keys: Vec<DiagnosisKey>,
}

fn batch_synced_key(origin: &str, sequence: u64) -> Vec<u8> {
    [
        b"synced/batch/",
        origin.as_bytes(),
        &[0],
        &sequence.to_be_bytes(),
    ]
    .concat()
}

fn cursor_key(origin: &str) -> Vec<u8> {
    [b"cursor/", origin.as_bytes()].concat()
}

const SYNCED_PREFIX: &[u8] = b"synced/";

/// Verifies a signed batch of either version (SPEC.md §5.3, §5.9) against the
/// trust list.
pub(crate) fn verify_batch(bytes: &[u8], trust: &TrustList, now: u64) -> Result<Verified> {
    let signed = PublishedBatch::decode(bytes)?;
    let batch = signed.verify(trust, now)?;
    Ok(Verified {
        synced_key: batch_synced_key(&batch.origin, batch.sequence),
        content_id: signed.id(),
        expires_at: batch.expires_at,
        published_at: batch.created_at,
        cursor: Some((batch.origin, batch.sequence)),
        keys: batch.keys,
    })
}

/// Verifies a GAEN export zip against the configured export keys.
pub(crate) fn verify_export(bytes: &[u8], keys: &[ExportKey], now: u64) -> Result<Verified> {
    if keys.is_empty() {
        return Err(WireError::BadSignature("export.bin (no export key is trusted)").into());
    }
    let mut last_err = None;
    for key in keys {
        match ExportFile::from_zip(bytes, key, now) {
            Ok(file) => {
                let expires_at = file
                    .keys
                    .iter()
                    .map(DiagnosisKey::expires_at)
                    .max()
                    .unwrap_or(0);
                if now > expires_at {
                    return Err(WireError::Expired {
                        expired_at: expires_at,
                        now,
                    }
                    .into());
                }
                let digest = Sha256::digest(bytes);
                return Ok(Verified {
                    synced_key: [b"synced/export/".as_slice(), &digest].concat(),
                    content_id: digest.into(),
                    cursor: None,
                    expires_at,
                    published_at: file.end_timestamp,
                    keys: file.keys,
                });
            }
            Err(e @ WireError::BadSignature(_)) => last_err = Some(e),
            Err(e) => return Err(e.into()),
        }
    }
    Err(last_err.expect("at least one key was tried").into())
}

/// Fails if this download was synced before.
pub(crate) fn check_not_synced(vault: &Vault, v: &Verified) -> Result<()> {
    if vault.storage().get(Table::Meta, &v.synced_key)?.is_some() {
        let what = match &v.cursor {
            Some((origin, seq)) => format!("batch {origin}/{seq}"),
            None => "export file".to_owned(),
        };
        return Err(SdkError::AlreadySynced(what));
    }
    Ok(())
}

/// One exposure window of a key match: the index of its key, the window, and
/// the scan instances it holds (`(RPI, first seen)`, so that a filter hit of the
/// same scan instance is not counted again).
pub(crate) type KeyWindow = (usize, ExposureWindow, Vec<ScanId>);

/// Matches `v` against `set` (indexed once, probed by every download until the
/// sightings change): only sightings from before the publication, with
/// attenuation recomputed from the sender's metadata where the host did not know
/// the TX power, scans above `max_attenuation_db` dropped (SPEC.md §7.2) and the
/// sighting runs of each matched key joined into its exposure time (§7.1).
pub(crate) fn match_verified(
    v: &Verified,
    set: &ObservationSet,
    config: &SdkConfig,
) -> Vec<KeyWindow> {
    let matches = match_keys_parallel(&set.index, &v.keys, config.matcher_threads);
    let mut observations = Observations::default();
    let mut ids = Vec::new();
    let mut kept = Vec::new();
    for m in matches {
        let key = &v.keys[m.key_index];
        let aemk = key.tek.aemk();
        let mut ours = Vec::new();
        let mut runs = Vec::new();
        for &o in &m.observations {
            let source = &set.sources[o as usize];
            if source.seen_at >= v.published_at {
                continue;
            }
            let mut obs = set.observations()[o as usize];
            if source.tx_power.is_none() {
                let meta: Metadata = aemk.decrypt_metadata(&obs.rpi, &source.aem);
                obs.attenuation_db = attenuation(meta.tx_power_dbm(), source.rssi);
            }
            if config.risk.ignores(obs.attenuation_db) {
                continue;
            }
            ours.push(observations.len() as u32);
            ids.push((obs.rpi.0, source.seen_at));
            runs.push(source.run);
            observations.push(obs);
        }
        for (&o, seconds) in ours.iter().zip(duration_s(&runs, config.scan_period_s)) {
            observations[o as usize].duration_s = seconds;
        }
        if !ours.is_empty() {
            kept.push(KeyMatch {
                key_index: m.key_index,
                observations: ours,
            });
        }
    }
    kept.iter()
        .flat_map(|m| {
            exposure_windows(&v.keys, &observations, std::slice::from_ref(m))
                .into_iter()
                .map(|w| {
                    let scans = m
                        .observations
                        .iter()
                        .filter(|&&o| day_of_interval(observations[o as usize].interval) == w.day)
                        .map(|&o| ids[o as usize])
                        .collect();
                    (m.key_index, w, scans)
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

/// An exposure window as stored.
#[derive(Serialize, Deserialize)]
struct StoredWindow {
    transmission_risk: u8,
    days_since_onset: i8,
    /// (interval, attenuation dB, seconds)
    scans: Vec<(u32, u8, u16)>,
}

const WINDOW_LABEL: &[u8] = b"window";

/// Stores windows of `keys`, once per (key, day) however often the key is
/// published; returns how many were new. Windows of expired days are dropped.
pub(crate) fn store_windows(
    vault: &Vault,
    keys: &[DiagnosisKey],
    windows: &[KeyWindow],
) -> Result<usize> {
    let mut new = 0;
    for (key_index, w, scans) in windows {
        if !vault.has_day(w.day) {
            continue;
        }
        let key = &keys[*key_index];
        let id = [&key.tek.0[..], &key.rolling_start.to_be_bytes()].concat();
        let storage_key = vault.record_key(w.day, WINDOW_LABEL, &id)?;
        if vault
            .storage()
            .get(Table::Exposures, &storage_key)?
            .is_some()
        {
            continue;
        }
        let stored = StoredWindow {
            transmission_risk: w.transmission_risk,
            days_since_onset: w.days_since_onset,
            scans: w
                .scans
                .iter()
                .map(|s| (s.interval, s.attenuation_db, s.seconds))
                .collect(),
        };
        let bytes = postcard::to_stdvec(&stored).expect("encoding to memory cannot fail");
        filters::add_key_matched(vault, w.day, scans)?;
        vault.put(Table::Exposures, &storage_key, &bytes)?;
        new += 1;
    }
    Ok(new)
}

/// Marks the download synced and advances the origin's cursor.
pub(crate) fn mark_synced(vault: &Vault, v: &Verified) -> Result<()> {
    let storage = vault.storage();
    storage.put(Table::Meta, &v.synced_key, &v.expires_at.to_be_bytes())?;
    if let Some((origin, seq)) = &v.cursor {
        if cursor(vault, origin)?.is_none_or(|c| c < *seq) {
            storage.put(Table::Meta, &cursor_key(origin), &seq.to_be_bytes())?;
        }
    }
    Ok(())
}

/// The highest sequence number synced from `origin`.
pub(crate) fn cursor(vault: &Vault, origin: &str) -> Result<Option<u64>> {
    Ok(vault
        .storage()
        .get(Table::Meta, &cursor_key(origin))?
        .and_then(|v| v.try_into().ok().map(u64::from_be_bytes)))
}

/// Forgets synced-download marks whose keys are all past retention (a replay of
/// such a download is rejected as expired anyway).
pub(crate) fn prune_synced(vault: &Vault, now: u64) -> Result<()> {
    let storage = vault.storage();
    for (k, v) in storage.scan(Table::Meta, SYNCED_PREFIX)? {
        let expires = v.try_into().ok().map(u64::from_be_bytes).unwrap_or(0);
        if expires < now {
            storage.remove(Table::Meta, &k)?;
        }
    }
    Ok(())
}

/// Every stored exposure window of the live days, key form and filter form;
/// also counts unreadable records.
pub(crate) fn load_windows(vault: &Vault) -> Result<(Vec<ExposureWindow>, usize)> {
    let (mut windows, unreadable) = load_key_windows(vault)?;
    let (filter_windows, filter_unreadable) = filters::load_windows(vault)?;
    windows.extend(filter_windows);
    Ok((windows, unreadable + filter_unreadable))
}

/// The key-form windows of the live days; also counts unreadable ones.
fn load_key_windows(vault: &Vault) -> Result<(Vec<ExposureWindow>, usize)> {
    let mut windows = Vec::new();
    let mut unreadable = 0;
    for day in vault.live_days() {
        for (_, plain) in vault.scan_day(Table::Exposures, day)? {
            match plain
                .ok()
                .and_then(|p| postcard::from_bytes::<StoredWindow>(&p).ok())
            {
                Some(s) => windows.push(ExposureWindow {
                    day,
                    transmission_risk: s.transmission_risk,
                    days_since_onset: s.days_since_onset,
                    scans: s
                        .scans
                        .into_iter()
                        .map(|(interval, attenuation_db, seconds)| ScanInstance {
                            interval,
                            attenuation_db,
                            seconds,
                        })
                        .collect(),
                }),
                None => unreadable += 1,
            }
        }
    }
    Ok((windows, unreadable))
}

//! Received advertisements, aggregated per token into exposure windows and kept
//! sealed under the day's key. Raw scans are not kept: each token of a day is one
//! record holding its sighting runs (SPEC.md §7.1: first and last sighting,
//! count, shortest gap, strongest RSSI).
//!
//! Tokens heard over the air are chosen by whoever broadcasts them, so what they
//! can make a phone store is capped ([`Caps`]): distinct tokens per interval and
//! per day, and scan instances per token. The record's storage key is an HMAC of
//! the token under the day's index key, never the token itself.

use std::collections::btree_map::Entry;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use traceless_protocol::{
    day_of_unix, exposure_seconds, interval_number, Advertisement, Aem, Observation,
    ObservationIndex, Rpi, SightingRun, ADVERTISEMENT_LEN,
};
use zeroize::Zeroize;

use crate::error::{Result, SdkError};
use crate::storage::Table;
use crate::vault::Vault;

/// One received advertisement as the host app reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sighting {
    /// The 20-byte payload (RPI || AEM).
    pub advertisement: Advertisement,
    /// Received signal strength, dBm.
    pub rssi_dbm: i8,
    /// The sender's calibrated TX power in dBm if the host knows it; otherwise
    /// the SDK takes it from the metadata once the token's key is published.
    pub tx_power_dbm: Option<i8>,
    /// When it was received, unix seconds.
    pub seen_at: u64,
}

impl Sighting {
    /// Parses a payload reported by the host.
    pub fn new(
        payload: &[u8],
        rssi_dbm: i8,
        tx_power_dbm: Option<i8>,
        seen_at: u64,
    ) -> Result<Self> {
        let advertisement =
            Advertisement::from_bytes(payload).ok_or(SdkError::Advertisement(payload.len()))?;
        debug_assert_eq!(payload.len(), ADVERTISEMENT_LEN);
        Ok(Sighting {
            advertisement,
            rssi_dbm,
            tx_power_dbm,
            seen_at,
        })
    }
}

/// Bounds on what received advertisements can make the phone store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Caps {
    /// New distinct tokens accepted per 10-minute interval (a crowded station
    /// rarely shows more than a few hundred phones).
    pub tokens_per_interval: u32,
    /// Distinct tokens accepted per day (a busy phone hears ~1,500).
    pub tokens_per_day: u32,
    /// Sighting runs kept per token (a token lives one 10-minute interval, so an
    /// honest sender makes one or two).
    pub scans_per_token: usize,
}

impl Default for Caps {
    fn default() -> Self {
        Caps {
            tokens_per_interval: 500,
            tokens_per_day: 10_000,
            scans_per_token: 32,
        }
    }
}

/// One sighting run of a token ([`SightingRun`] and what was received).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Scan {
    pub first: u64,
    pub last: u64,
    pub sightings: u32,
    pub min_gap: u32,
    pub max_rssi: i8,
    pub tx_power: Option<i8>,
}

impl Scan {
    pub fn run(&self) -> SightingRun {
        SightingRun {
            first: self.first,
            last: self.last,
            sightings: self.sightings,
            min_gap: self.min_gap,
        }
    }

    fn set_run(&mut self, run: SightingRun) {
        self.first = run.first;
        self.last = run.last;
        self.sightings = run.sightings;
        self.min_gap = run.min_gap;
    }
}

/// Everything kept about one token of one day.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct TokenRecord {
    pub rpi: [u8; 16],
    pub aem: [u8; 4],
    pub scans: Vec<Scan>,
}

const LABEL: &[u8] = b"sighting";

impl TokenRecord {
    /// Adds a report; `false` if it would exceed the per-token cap.
    fn add(&mut self, s: &Sighting, cap: usize) -> bool {
        let rssi = s.rssi_dbm;
        if let Some(scan) = self
            .scans
            .iter_mut()
            .find(|scan| scan.run().admits(s.seen_at))
        {
            let mut run = scan.run();
            run.add(s.seen_at);
            scan.set_run(run);
            scan.max_rssi = scan.max_rssi.max(rssi);
            scan.tx_power = scan.tx_power.or(s.tx_power_dbm);
            return true;
        }
        if self.scans.len() >= cap {
            return false;
        }
        let at = self.scans.partition_point(|scan| scan.first < s.seen_at);
        self.scans.insert(
            at,
            Scan {
                first: s.seen_at,
                last: s.seen_at,
                sightings: 1,
                min_gap: 0,
                max_rssi: rssi,
                tx_power: s.tx_power_dbm,
            },
        );
        true
    }
}

/// Per-interval and per-day counts of distinct tokens, for the caps.
#[derive(Default)]
pub(crate) struct Counters {
    per_interval: BTreeMap<u32, u32>,
    per_day: BTreeMap<u32, u32>,
}

impl Counters {
    fn day_count(&mut self, vault: &Vault, day: u32) -> Result<&mut u32> {
        match self.per_day.entry(day) {
            Entry::Occupied(e) => Ok(e.into_mut()),
            Entry::Vacant(e) => {
                let stored = vault.storage().scan(Table::Sightings, &day.to_be_bytes())?;
                Ok(e.insert(stored.len() as u32))
            }
        }
    }

    /// Forgets counts of days before `day` and intervals before `interval`.
    pub fn prune(&mut self, day: u32, interval: u32) {
        self.per_day = self.per_day.split_off(&day);
        self.per_interval = self.per_interval.split_off(&interval);
    }
}

/// Records one sighting into its token's record. The caller has checked the time.
pub(crate) fn record(
    vault: &mut Vault,
    counters: &mut Counters,
    caps: &Caps,
    s: &Sighting,
) -> Result<()> {
    let day = day_of_unix(s.seen_at);
    vault.ensure_day(day)?;
    let rpi = s.advertisement.rpi.0;
    let key = vault.record_key(day, LABEL, &rpi)?;
    // An unreadable old record is replaced: it can never be decrypted anyway.
    let existing = vault
        .get(Table::Sightings, &key)
        .ok()
        .flatten()
        .and_then(|bytes| postcard::from_bytes::<TokenRecord>(&bytes).ok());
    let mut record = match existing {
        Some(r) => r,
        None => {
            let interval = interval_number(s.seen_at);
            let in_interval = counters.per_interval.get(&interval).copied().unwrap_or(0);
            if in_interval >= caps.tokens_per_interval {
                return Err(SdkError::OverCapacity(
                    "too many distinct tokens in this interval",
                ));
            }
            if *counters.day_count(vault, day)? >= caps.tokens_per_day {
                return Err(SdkError::OverCapacity(
                    "too many distinct tokens on this day",
                ));
            }
            *counters.per_interval.entry(interval).or_insert(0) += 1;
            *counters.day_count(vault, day)? += 1;
            TokenRecord {
                rpi,
                aem: s.advertisement.aem.0,
                scans: Vec::new(),
            }
        }
    };
    if !record.add(s, caps.scans_per_token) {
        return Err(SdkError::OverCapacity(
            "too many scan instances of one token",
        ));
    }
    let bytes = postcard::to_stdvec(&record).expect("encoding to memory cannot fail");
    vault.put(Table::Sightings, &key, &bytes)
}

/// Where an observation came from, to finish scoring it after a match.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ObservationSource {
    /// When the sighting run began, unix seconds.
    pub seen_at: u64,
    /// The sighting run, to join it with the other runs of a matched key.
    pub run: SightingRun,
    /// Strongest RSSI of the scan instance.
    pub rssi: i8,
    /// TX power, if the host reported it.
    pub tx_power: Option<i8>,
    /// The token's encrypted metadata (holds the sender's TX power).
    pub aem: Aem,
}

impl ObservationSource {
    fn wipe(&mut self) {
        self.seen_at.zeroize();
        self.run = SightingRun::default();
        self.rssi.zeroize();
        self.tx_power.zeroize();
        self.aem.0.zeroize();
    }
}

/// Decrypted observations, overwritten with zeros when dropped.
#[derive(Default)]
pub(crate) struct Observations(pub Vec<Observation>);

impl AsRef<[Observation]> for Observations {
    fn as_ref(&self) -> &[Observation] {
        &self.0
    }
}

impl std::ops::Deref for Observations {
    type Target = Vec<Observation>;

    fn deref(&self) -> &Vec<Observation> {
        &self.0
    }
}

impl std::ops::DerefMut for Observations {
    fn deref_mut(&mut self) -> &mut Vec<Observation> {
        &mut self.0
    }
}

impl Drop for Observations {
    fn drop(&mut self) {
        for o in &mut self.0 {
            o.rpi.0.zeroize();
            o.interval.zeroize();
            o.attenuation_db.zeroize();
            o.duration_s.zeroize();
        }
    }
}

/// Every stored scan instance as a matcher observation, indexed for matching,
/// with its source: what [`load`] decrypts, kept by the `Sdk` between sync calls
/// (see `Sdk::observations` for when it is dropped) so that each batch, export
/// and day filter is matched without decrypting and indexing again.
///
/// When dropped, the observations and their sources are overwritten with zeros.
/// That is best effort, not a guarantee: the index's hash table (which holds
/// the distinct tokens), buffers the vectors outgrew while loading and the
/// decrypted records they were read from are freed without being wiped.
pub(crate) struct ObservationSet {
    /// The observations, indexed (`index.get_ref()`: in load order, parallel
    /// to `sources`).
    pub index: ObservationIndex<'static, Observations>,
    pub sources: Vec<ObservationSource>,
    /// Records that could not be decrypted or decoded (damaged storage).
    pub unreadable: usize,
    /// [`Vault::sightings_version`] when loaded: a set of another version is stale.
    pub version: u64,
}

impl ObservationSet {
    /// Every observation, parallel to `sources`.
    pub fn observations(&self) -> &[Observation] {
        self.index.get_ref().as_ref()
    }
}

impl Drop for ObservationSet {
    fn drop(&mut self) {
        self.sources.iter_mut().for_each(ObservationSource::wipe);
    }
}

/// Loads every live day's sightings and indexes them. Attenuation uses the
/// host-reported TX power where known and `assumed_tx_power` otherwise
/// (corrected after a match). Each run's duration is its time as a sender of
/// its own ([`exposure_seconds`] of the run alone, a lone sighting taken at
/// `scan_period_s`); a key match joins the runs of its tokens again
/// ([`crate::sync`]).
pub(crate) fn load(
    vault: &Vault,
    scan_period_s: u16,
    assumed_tx_power: i8,
) -> Result<ObservationSet> {
    let version = vault.sightings_version();
    let mut observations = Observations(Vec::new());
    let mut sources = Vec::new();
    let mut unreadable = 0;
    for day in vault.live_days() {
        for (_, plain) in vault.scan_day(Table::Sightings, day)? {
            let record = match plain.and_then(|p| {
                postcard::from_bytes::<TokenRecord>(&p)
                    .map_err(|e| SdkError::Corrupt(e.to_string()))
            }) {
                Ok(r) => r,
                Err(_) => {
                    unreadable += 1;
                    continue;
                }
            };
            for scan in &record.scans {
                let tx = scan.tx_power.unwrap_or(assumed_tx_power);
                let run = scan.run();
                observations.0.push(Observation {
                    rpi: Rpi(record.rpi),
                    interval: interval_number(scan.first),
                    attenuation_db: attenuation(tx, scan.max_rssi),
                    duration_s: duration_s(&[run], scan_period_s)[0],
                });
                sources.push(ObservationSource {
                    seen_at: scan.first,
                    run,
                    rssi: scan.max_rssi,
                    tx_power: scan.tx_power,
                    aem: Aem(record.aem),
                });
            }
        }
    }
    Ok(ObservationSet {
        index: ObservationIndex::owning(observations),
        sources,
        unreadable,
        version,
    })
}

/// [`exposure_seconds`] of the runs of one sender, as observation durations.
pub(crate) fn duration_s(runs: &[SightingRun], scan_period_s: u16) -> Vec<u16> {
    exposure_seconds(runs, u64::from(scan_period_s))
        .into_iter()
        .map(|s| u16::try_from(s).unwrap_or(u16::MAX))
        .collect()
}

/// `attenuation = TX power - RSSI`, clamped to 0..=255 dB.
pub(crate) fn attenuation(tx_power_dbm: i8, rssi_dbm: i8) -> u8 {
    (i16::from(tx_power_dbm) - i16::from(rssi_dbm)).clamp(0, 255) as u8
}

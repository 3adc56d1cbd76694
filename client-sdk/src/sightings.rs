//! Received advertisements, aggregated per token into exposure windows and kept
//! sealed under the day's key. Raw scans are not kept: each token of a day has its
//! sighting runs (SPEC.md §7.1: first and last sighting, count, shortest gap,
//! strongest RSSI).
//!
//! The tokens of a day are stored in [`SEGMENTS_PER_DAY`] sealed *segments*, not
//! one record each: token `x` of day `D` lives in segment
//! `HMAC(index_key_D, "sighting" || 0x00 || x)[0] % SEGMENTS_PER_DAY`, stored under
//! `BE32(D) || HMAC(index_key_D, "sighting-segment" || 0x00 || segment)[..16]`.
//! Loading 14 days of a busy phone then opens a few hundred records instead of
//! 20,000 (reading them was a third of a cold sync), and recording a sighting
//! rewrites one segment (~2 KB for 1,500 tokens a day). What the disk shows is
//! no more than before: per day, a bounded number of sealed records whose total
//! size grows with the tokens heard (one record per token showed their number
//! exactly); the segment a token falls in is keyed, so neither a token nor a
//! segment number is ever visible. A store written one record per token is
//! rewritten into segments when it is opened ([`migrate`]).
//!
//! Tokens heard over the air are chosen by whoever broadcasts them, so what they
//! can make a phone store is capped ([`Caps`]): distinct tokens per interval and
//! per day, and scan instances per token.

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
const SEGMENT_LABEL: &[u8] = b"sighting-segment";

/// Sealed segments the tokens of one day are spread over.
pub(crate) const SEGMENTS_PER_DAY: u8 = 32;

/// [`Table::Meta`] key present once the sightings are stored in segments.
const LAYOUT_KEY: &[u8] = b"sightings-layout";
const LAYOUT_SEGMENTS: &[u8] = b"segments-v1";

/// The tokens of one day that fall in one segment, sorted by token.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Segment {
    pub tokens: Vec<TokenRecord>,
}

impl Segment {
    /// Where `rpi` is (`Ok`) or would go (`Err`).
    fn find(&self, rpi: &[u8; 16]) -> std::result::Result<usize, usize> {
        self.tokens.binary_search_by(|t| t.rpi.cmp(rpi))
    }

    fn decode(plain: &[u8]) -> Result<Self> {
        postcard::from_bytes(plain).map_err(|e| SdkError::Corrupt(e.to_string()))
    }
}

/// The storage keys of the segments of `day`, by segment number.
fn segment_keys(vault: &Vault, day: u32) -> Result<Vec<[u8; 20]>> {
    (0..SEGMENTS_PER_DAY)
        .map(|s| vault.record_key(day, SEGMENT_LABEL, &[s]))
        .collect()
}

/// The segment number of token `rpi` of `day`.
fn segment_of(vault: &Vault, day: u32, rpi: &[u8; 16]) -> Result<u8> {
    Ok(vault.record_key(day, LABEL, rpi)?[4] % SEGMENTS_PER_DAY)
}

/// The segment stored under `key`; empty if absent or unreadable (an unreadable
/// segment can never be decrypted, so it is replaced).
fn read_segment(vault: &Vault, key: &[u8]) -> Segment {
    vault
        .get(Table::Sightings, key)
        .ok()
        .flatten()
        .and_then(|plain| Segment::decode(&plain).ok())
        .unwrap_or_default()
}

fn write_segment(vault: &Vault, key: &[u8], segment: &Segment) -> Result<()> {
    let bytes = zeroize::Zeroizing::new(
        postcard::to_stdvec(segment).expect("encoding to memory cannot fail"),
    );
    vault.put(Table::Sightings, key, &bytes)
}

/// The sighting records of `day`: readable segments (with the number of
/// unreadable ones), anything else under the day's prefix counted unreadable.
fn day_segments(vault: &Vault, day: u32) -> Result<(Vec<Segment>, usize)> {
    let keys = segment_keys(vault, day)?;
    let mut segments = Vec::new();
    let mut unreadable = 0;
    for (key, plain) in vault.scan_day(Table::Sightings, day)? {
        if !keys.iter().any(|k| k[..] == key[..]) {
            unreadable += 1;
            continue;
        }
        match plain.and_then(|p| Segment::decode(&p)) {
            Ok(s) => segments.push(s),
            Err(_) => unreadable += 1,
        }
    }
    Ok((segments, unreadable))
}

/// Rewrites a store of one sealed record per (day, token) into segments, once
/// (a [`Table::Meta`] marker says it is done). Idempotent if interrupted: the
/// segments are written and flushed before the old records are removed, and an
/// old record whose token a segment already holds is not merged again. Old
/// records that do not open are left for the day's shredding to remove.
pub(crate) fn migrate(vault: &Vault) -> Result<()> {
    let storage = vault.storage();
    if storage.get(Table::Meta, LAYOUT_KEY)?.is_some() {
        return Ok(());
    }
    for day in vault.live_days() {
        let keys = segment_keys(vault, day)?;
        let mut old = Vec::new();
        let mut segments: Vec<Option<Segment>> = vec![None; keys.len()];
        for (key, plain) in vault.scan_day(Table::Sightings, day)? {
            if keys.iter().any(|k| k[..] == key[..]) {
                continue;
            }
            let Ok(record) = plain.and_then(|p| {
                postcard::from_bytes::<TokenRecord>(&p)
                    .map_err(|e| SdkError::Corrupt(e.to_string()))
            }) else {
                continue;
            };
            let s = segment_of(vault, day, &record.rpi)? as usize;
            let segment = segments[s].get_or_insert_with(|| read_segment(vault, &keys[s]));
            if let Err(at) = segment.find(&record.rpi) {
                segment.tokens.insert(at, record);
            }
            old.push(key);
        }
        for (key, segment) in keys.iter().zip(&segments) {
            if let Some(segment) = segment {
                write_segment(vault, key, segment)?;
            }
        }
        storage.flush()?;
        for key in old {
            storage.remove(Table::Sightings, &key)?;
        }
    }
    storage.put(Table::Meta, LAYOUT_KEY, LAYOUT_SEGMENTS)?;
    storage.flush()
}

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
                let (segments, _) = day_segments(vault, day)?;
                let tokens: usize = segments.iter().map(|s| s.tokens.len()).sum();
                Ok(e.insert(tokens as u32))
            }
        }
    }

    /// Forgets counts of days before `day` and intervals before `interval`.
    pub fn prune(&mut self, day: u32, interval: u32) {
        self.per_day = self.per_day.split_off(&day);
        self.per_interval = self.per_interval.split_off(&interval);
    }
}

/// Records one sighting into its token's record, in its segment. The caller has
/// checked the time.
pub(crate) fn record(
    vault: &mut Vault,
    counters: &mut Counters,
    caps: &Caps,
    s: &Sighting,
) -> Result<()> {
    let day = day_of_unix(s.seen_at);
    vault.ensure_day(day)?;
    let rpi = s.advertisement.rpi.0;
    let key = vault.record_key(day, SEGMENT_LABEL, &[segment_of(vault, day, &rpi)?])?;
    let mut segment = read_segment(vault, &key);
    match segment.find(&rpi) {
        Ok(i) => {
            if !segment.tokens[i].add(s, caps.scans_per_token) {
                return Err(SdkError::OverCapacity(
                    "too many scan instances of one token",
                ));
            }
        }
        Err(at) => {
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
            let mut record = TokenRecord {
                rpi,
                aem: s.advertisement.aem.0,
                scans: Vec::new(),
            };
            if !record.add(s, caps.scans_per_token) {
                return Err(SdkError::OverCapacity(
                    "too many scan instances of one token",
                ));
            }
            *counters.per_interval.entry(interval).or_insert(0) += 1;
            *counters.day_count(vault, day)? += 1;
            segment.tokens.insert(at, record);
        }
    }
    write_segment(vault, &key, &segment)
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
        let (segments, bad) = day_segments(vault, day)?;
        unreadable += bad;
        for record in segments.iter().flat_map(|s| &s.tokens) {
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use traceless_protocol::{Advertisement, Aem};

    use super::*;
    use crate::storage::{MemoryStorage, Storage};
    use crate::vault::MasterKey;

    const DAY: u32 = 20_000;

    fn sighting(token: u16, day: u32, at: u64) -> Sighting {
        let mut rpi = [0u8; 16];
        rpi[..2].copy_from_slice(&token.to_le_bytes());
        rpi[15] = 0xa5;
        Sighting {
            advertisement: Advertisement {
                rpi: Rpi(rpi),
                aem: Aem([token as u8; 4]),
            },
            rssi_dbm: -60,
            tx_power_dbm: None,
            seen_at: u64::from(day) * 86_400 + at,
        }
    }

    /// Writes `s` as the one-record-per-token layout did: the token's record
    /// under `BE32(day) || HMAC(index_key, "sighting" || 0 || token)[..16]`.
    fn put_legacy(vault: &mut Vault, s: &Sighting) {
        let day = day_of_unix(s.seen_at);
        vault.ensure_day(day).unwrap();
        let key = vault
            .record_key(day, LABEL, &s.advertisement.rpi.0)
            .unwrap();
        let mut record = vault
            .get(Table::Sightings, &key)
            .unwrap()
            .map(|p| postcard::from_bytes::<TokenRecord>(&p).unwrap())
            .unwrap_or(TokenRecord {
                rpi: s.advertisement.rpi.0,
                aem: s.advertisement.aem.0,
                scans: Vec::new(),
            });
        assert!(record.add(s, 32));
        vault
            .put(
                Table::Sightings,
                &key,
                &postcard::to_stdvec(&record).unwrap(),
            )
            .unwrap();
    }

    /// (token, interval, duration) of every loaded observation, sorted.
    fn loaded(vault: &Vault) -> Vec<(Rpi, u32, u16)> {
        let set = load(vault, 60, -8).unwrap();
        assert_eq!(set.unreadable, 0);
        let mut seen: Vec<_> = set
            .observations()
            .iter()
            .map(|o| (o.rpi, o.interval, o.duration_s))
            .collect();
        seen.sort_unstable();
        seen
    }

    /// A store of one record per token is rewritten into at most
    /// `SEGMENTS_PER_DAY` records a day holding the same observations; migrating
    /// again, or again after a crash left the old records beside the segments,
    /// changes nothing; new sightings then join the migrated tokens.
    #[test]
    fn one_record_per_token_is_migrated_into_segments() {
        let storage = Arc::new(MemoryStorage::new());
        let mut vault = Vault::open(storage.clone(), &MasterKey([3; 32])).unwrap();
        let sightings: Vec<Sighting> = (0..400u16)
            .flat_map(|t| {
                let day = DAY + u32::from(t % 2);
                let at = 600 * u64::from(t % 144);
                [sighting(t, day, at), sighting(t, day, at + 30)]
            })
            .collect();
        for s in &sightings {
            put_legacy(&mut vault, s);
        }
        let legacy = storage.scan(Table::Sightings, &[]).unwrap();
        assert_eq!(legacy.len(), 400);
        // The legacy layout loads as unreadable records: the migration is needed.
        assert_eq!(load(&vault, 60, -8).unwrap().unreadable, 400);

        migrate(&vault).unwrap();
        let expected = loaded(&vault);
        assert_eq!(expected.len(), 400, "one run per token");
        for day in [DAY, DAY + 1] {
            let records = storage.scan(Table::Sightings, &day.to_be_bytes()).unwrap();
            assert!(
                records.len() <= SEGMENTS_PER_DAY as usize,
                "{}",
                records.len()
            );
            assert!(records.len() > 1, "tokens are spread over segments");
        }

        migrate(&vault).unwrap();
        assert_eq!(loaded(&vault), expected, "a second migration is a no-op");

        // A crash between writing the segments and removing the old records.
        for (key, value) in &legacy {
            storage.put(Table::Sightings, key, value).unwrap();
        }
        storage.remove(Table::Meta, LAYOUT_KEY).unwrap();
        migrate(&vault).unwrap();
        assert_eq!(loaded(&vault), expected, "old records are not merged twice");
        assert!(storage.scan(Table::Sightings, &[]).unwrap().len() <= 2 * 32);

        // Recording goes on in the segments: a known token is not counted again,
        // a new one is counted against the day's cap with the migrated ones.
        let mut counters = Counters::default();
        let caps = Caps {
            tokens_per_day: 201,
            ..Caps::default()
        };
        record(&mut vault, &mut counters, &caps, &sighting(0, DAY, 20_000)).unwrap();
        record(
            &mut vault,
            &mut counters,
            &caps,
            &sighting(1_000, DAY, 20_000),
        )
        .unwrap();
        assert!(matches!(
            record(
                &mut vault,
                &mut counters,
                &caps,
                &sighting(1_001, DAY, 20_000)
            ),
            Err(SdkError::OverCapacity(_))
        ));
        assert_eq!(loaded(&vault).len(), expected.len() + 2);
    }
}

//! Filter form on the phone (SPEC.md §5.8): verify a downloaded day filter,
//! probe the stored sightings against it, and keep what hit.
//!
//! A day filter of `(origin, day)` grows by signed *parts* (version 2): part `r`
//! holds only the entries that became publishable after part `r - 1`. The phone
//! keeps, sealed in [`Table::Filters`]:
//!
//! ```text
//! parts held of (origin, day)      under day `day`:  record_key(day, "filter-revision", origin)
//! hits of (origin, day) heard on h under day `h`:    record_key(h, "filter-hits", origin || 0x00 || BE32(day))
//! ```
//!
//! `h` is `day - 1`, `day` or `day + 1` (tokens drift by up to 12 intervals), and
//! a hit is sealed under the day it was heard so that it is shredded with the
//! sighting it repeats. A part not held yet (in any order) *adds* its hits to
//! those of its `(origin, day)`; a part held already is ignored. Every hit is one scan
//! instance `(RPI, first seen)`: when windows are built, a scan instance that
//! hit several filters (two origins, or two days' filters through drift) counts
//! once, and a scan instance already in a key-form window (the same TEK
//! published in both forms) is not counted again: key-form windows note their
//! scan instances here, per day of hearing:
//!
//! ```text
//! key-matched scans of h           under day `h`:    record_key(h, "key-matched", "")
//! ```
//!
//! Filter hits become exposure windows scored at transmission risk 5 and days
//! since onset 0 ([`filter_windows`]), next to the key-form windows.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use traceless_protocol::filter::probe_filter;
use traceless_protocol::{
    day_of_interval, filter_windows, DayFilter, ExposureWindow, Observation, Rpi, SignedFilter,
    TrustList,
};

use crate::error::Result;
use crate::sightings::{ObservationSet, Observations};
use crate::storage::Table;
use crate::vault::Vault;

const REVISION_LABEL: &[u8] = b"filter-revision";
const HITS_LABEL: &[u8] = b"filter-hits";
const KEY_MATCHED_LABEL: &[u8] = b"key-matched";

/// One record of [`Table::Filters`].
#[derive(Serialize, Deserialize)]
enum FilterRecord {
    /// A version-1 whole-day filter's revision held for an (origin, day):
    /// read as holding no part (version-1 filters are served no more; the
    /// hits they gave are kept, parts add to them).
    Revision(u64),
    /// The scan instances of one day that hit an (origin, day)'s filter.
    Hits(Vec<FilterHit>),
    /// The scan instances of one day that are in key-form windows, sorted.
    KeyMatched(Vec<ScanId>),
    /// The part numbers held for an (origin, day), ascending.
    Parts(Vec<u64>),
}

/// A scan instance: its token and when it began.
pub(crate) type ScanId = ([u8; 16], u64);

/// One scan instance that hit a day filter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub(crate) struct FilterHit {
    /// The token heard.
    pub rpi: [u8; 16],
    /// When the scan instance began (with `rpi`, identifies it).
    pub seen_at: u64,
    /// Its interval.
    pub interval: u32,
    /// Attenuation in dB (host-reported or assumed TX power: a filter carries no
    /// metadata key to read the sender's).
    pub attenuation_db: u8,
    /// Seconds it stands for.
    pub seconds: u16,
}

fn encode(record: &FilterRecord) -> Vec<u8> {
    postcard::to_stdvec(record).expect("encoding to memory cannot fail")
}

/// The record under `key`, or `None` if it is absent or unreadable: for records
/// that are rebuilt whole from what is at hand (hits, key-matched scans).
fn read_lenient(vault: &Vault, key: &[u8]) -> Option<FilterRecord> {
    let bytes = vault.get(Table::Filters, key).ok()??;
    postcard::from_bytes(&bytes).ok()
}

fn hits_item(origin: &str, day: u32) -> Vec<u8> {
    [origin.as_bytes(), &[0], &day.to_be_bytes()].concat()
}

/// Decodes a signed filter and verifies it against the trust list at `now`.
pub(crate) fn verify(bytes: &[u8], trust: &TrustList, now: u64) -> Result<DayFilter> {
    Ok(SignedFilter::decode(bytes)?.verify(trust, now)?)
}

/// The parts held for `(origin, day)`, ascending.
pub(crate) fn parts(vault: &Vault, origin: &str, day: u32) -> Result<Vec<u64>> {
    if !vault.has_day(day) {
        return Ok(Vec::new());
    }
    let key = vault.record_key(day, REVISION_LABEL, origin.as_bytes())?;
    match vault.get(Table::Filters, &key)? {
        None => Ok(Vec::new()),
        Some(bytes) => match postcard::from_bytes(&bytes) {
            Ok(FilterRecord::Parts(p)) => Ok(p),
            Ok(FilterRecord::Revision(_)) => Ok(Vec::new()),
            _ => Err(crate::SdkError::Corrupt(format!(
                "filter parts of {origin}, day {day}: the record is damaged"
            ))),
        },
    }
}

/// The highest `r` such that every part `1..=r` of `(origin, day)` is held, if
/// any: the host fetches the parts after it.
pub(crate) fn revision(vault: &Vault, origin: &str, day: u32) -> Result<Option<u64>> {
    let held = parts(vault, origin, day)?;
    let prefix = held
        .iter()
        .zip(1u64..)
        .take_while(|(p, want)| **p == *want)
        .count() as u64;
    Ok((prefix > 0).then_some(prefix))
}

/// The stored scan instances that hit `filter`: those heard on the filter's day
/// or the day either side (drift), recorded before its `created_at`.
pub(crate) fn probe(filter: &DayFilter, set: &ObservationSet) -> Vec<FilterHit> {
    let observations = set.observations();
    let days = filter.day.saturating_sub(1)..=filter.day.saturating_add(1);
    let candidates: Vec<usize> = (0..observations.len())
        .filter(|&i| {
            days.contains(&day_of_interval(observations[i].interval))
                && set.sources[i].seen_at < filter.created_at
        })
        .collect();
    let subset = Observations(candidates.iter().map(|&i| observations[i]).collect());
    probe_filter(
        &filter.filter,
        filter.day,
        filter.created_at,
        subset.as_ref(),
    )
    .into_iter()
    .map(|k| {
        let i = candidates[k as usize];
        let o = &observations[i];
        FilterHit {
            rpi: o.rpi.0,
            seen_at: set.sources[i].seen_at,
            interval: o.interval,
            attenuation_db: o.attenuation_db,
            seconds: o.duration_s,
        }
    })
    .collect()
}

/// Adds `hits` to those of `filter`'s `(origin, day)` and records the part as
/// held. Returns how many days (of hearing) gained hits.
pub(crate) fn store(vault: &mut Vault, filter: &DayFilter, hits: Vec<FilterHit>) -> Result<usize> {
    let mut held = parts(vault, &filter.origin, filter.day)?;
    let mut by_day: BTreeMap<u32, Vec<FilterHit>> = BTreeMap::new();
    for h in hits {
        by_day
            .entry(day_of_interval(h.interval))
            .or_default()
            .push(h);
    }
    let item = hits_item(&filter.origin, filter.day);
    let mut grown = 0;
    for (heard, new) in by_day {
        if !vault.has_day(heard) {
            continue;
        }
        let key = vault.record_key(heard, HITS_LABEL, &item)?;
        let mut all = match read_lenient(vault, &key) {
            Some(FilterRecord::Hits(old)) => old,
            _ => Vec::new(),
        };
        let before = all.len();
        all.extend(new);
        all.sort_unstable();
        all.dedup();
        if all.len() > before {
            grown += 1;
            vault.put(Table::Filters, &key, &encode(&FilterRecord::Hits(all)))?;
        }
    }
    // The parts live under the filter's day; a filter that verified lies
    // inside the retention window, so its day's key slot is free or its own.
    if let Err(at) = held.binary_search(&filter.revision) {
        held.insert(at, filter.revision);
    }
    vault.ensure_day(filter.day)?;
    let key = vault.record_key(filter.day, REVISION_LABEL, filter.origin.as_bytes())?;
    vault.put(Table::Filters, &key, &encode(&FilterRecord::Parts(held)))?;
    Ok(grown)
}

/// Notes that the scan instances `scans` of `day` are in a key-form window, so
/// that filter hits of them are not counted a second time.
pub(crate) fn add_key_matched(vault: &Vault, day: u32, scans: &[ScanId]) -> Result<()> {
    if scans.is_empty() {
        return Ok(());
    }
    let key = vault.record_key(day, KEY_MATCHED_LABEL, &[])?;
    let mut all = match read_lenient(vault, &key) {
        Some(FilterRecord::KeyMatched(v)) => v,
        _ => Vec::new(),
    };
    all.extend_from_slice(scans);
    all.sort_unstable();
    all.dedup();
    vault.put(
        Table::Filters,
        &key,
        &encode(&FilterRecord::KeyMatched(all)),
    )
}

/// The exposure windows of every stored filter hit of the live days: a scan
/// instance counts once however many filters it hit, and not at all if it is
/// in a key-form window already. Also counts unreadable records.
pub(crate) fn load_windows(vault: &Vault) -> Result<(Vec<ExposureWindow>, usize)> {
    let mut hits = BTreeMap::new();
    let mut key_matched = Vec::new();
    let mut unreadable = 0;
    for day in vault.live_days() {
        for (_, plain) in vault.scan_day(Table::Filters, day)? {
            match plain.ok().and_then(|p| postcard::from_bytes(&p).ok()) {
                Some(FilterRecord::Hits(list)) => {
                    for h in list {
                        hits.insert((h.rpi, h.seen_at), h);
                    }
                }
                Some(FilterRecord::KeyMatched(list)) => key_matched.extend(list),
                Some(FilterRecord::Revision(_) | FilterRecord::Parts(_)) => {}
                None => unreadable += 1,
            }
        }
    }
    for id in &key_matched {
        hits.remove(id);
    }
    let observations: Vec<Observation> = hits
        .values()
        .map(|h| Observation {
            rpi: Rpi(h.rpi),
            interval: h.interval,
            attenuation_db: h.attenuation_db,
            duration_s: h.seconds,
        })
        .collect();
    let all: Vec<u32> = (0..observations.len() as u32).collect();
    Ok((filter_windows(&observations, &all), unreadable))
}

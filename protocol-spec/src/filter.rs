//! Filter form (SPEC.md §5.8): chosen intervals of a diagnosis key published as
//! unlinkable hashed entries folded into Bloom filters, one per origin, day and
//! part (each part holds the entries that became publishable since the last).
//!
//! The gateway derives the RPI of every interval the patient chose, hashes
//! `(RPI, interval)` into a [`FilterEntry`] and forgets the TEK. Entries of one key
//! cannot be linked to each other, and a phone that heard an RPI can only test it.
//!
//! The bitmap and its bit operations are the `bloomfilter` crate's, pinned to a hash
//! family SPEC.md defines byte for byte. Two of the crate's defaults are unusable
//! here, so this module wraps it:
//! - Hashing a `[u8]` through `Hash` also writes its length as a `usize`, which
//!   differs between 32- and 64-bit phones. Items here write raw bytes only.
//! - Its positions beyond the first two are `h0 + t·h1`: when `h1` shares factors
//!   with the bitmap size (always a multiple of 8) they collapse onto a few bits.
//!   Measured (version 1) with 40 hashes at 58 bits per entry: 26 false positives in 2·10^7
//!   probes at 1,000 entries (1.3·10^-6, against 7.9·10^-13 in theory). So the crate
//!   runs with ONE hash per item and each entry goes in as 48 items `entry || t`:
//!   48 independent SipHash-1-3 positions.
//!
//! Headers are validated before the crate sees them (it panics on a zero-length
//! bitmap). `tests/filter_vectors.rs` recomputes bit positions from the SPEC text
//! alone, so a crate upgrade that changes hashing or bit order fails the suite.

use std::hash::{Hash, Hasher};

use bloomfilter::Bloom;
use sha2::{Digest, Sha256};

use crate::derive::{compress, state_bytes, SHA256_IV};
use crate::diagnosis::DiagnosisKey;
use crate::error::WireError;
use crate::interval::{
    day_start_interval, interval_number, EnIntervalNumber, DRIFT_TOLERANCE_INTERVALS,
    INTERVALS_PER_DAY,
};
use crate::keys::Rpi;
use crate::matcher::Observation;

/// Domain separation prefix of entry hashes.
pub const FILTER_ENTRY_CONTEXT: &[u8] = b"traceless/v1/filter-entry";
/// Length of one entry: SHA-256 truncated to 128 bits.
pub const FILTER_ENTRY_LEN: usize = 16;
/// Most parts one (origin, day) may have over its life (SPEC.md §5.8): at most one
/// part an hour while the day accepts entries (16 days of 24 boundaries). A phone
/// probes an observation against up to this many parts, so each part is sized
/// for the budget divided by it.
pub const MAX_FILTER_PARTS: u64 = 384;
/// Hash functions per entry, `k = ceil(log2(P_max / ε))` for the false-positive
/// target ε of SPEC.md §5.8 (one false alarm per million phones over 14 days)
/// shared by [`MAX_FILTER_PARTS`] parts.
pub const FILTER_HASHES: u32 = 48;
/// Bitmap bits per entry, `ceil(k / ln 2)`: the Bloom optimum for `k` hashes.
pub const FILTER_BITS_PER_ENTRY: u64 = 70;
/// Most entries in one part (a 4.4 MB bitmap).
pub const MAX_FILTER_ENTRIES: u64 = 500_000;
/// Length of the per-part hash seed: one SipHash-1-3 key.
pub const FILTER_SEED_LEN: usize = 16;
/// Bytes of a mask of chosen intervals: one bit per interval of a key's day.
pub const INTERVAL_MASK_LEN: usize = (INTERVALS_PER_DAY as usize).div_ceil(8);
/// Transmission risk level a filter match is scored at (weight 1.0 by default):
/// the filter form carries no per-key metadata.
pub const FILTER_TRANSMISSION_RISK: u8 = 5;
/// Intervals that must have ended after an entry's interval before a filter may
/// hold it: a token replayed after publication then lies outside the drift
/// tolerance of the entry (the filter form's embargo, SPEC.md §5.8).
pub const FILTER_EMBARGO_INTERVALS: u32 = DRIFT_TOLERANCE_INTERVALS + 1;

/// The bloomfilter crate's serialization header: version, bitmap length, its hash
/// count (always 1 here, see the module docs), two SipHash keys (the second unused).
const BLOOM_HEADER_LEN: usize = 1 + 8 + 4 + 32;
const BLOOM_FORMAT_VERSION: u8 = 1;
const BLOOM_HASHES_PER_ITEM: u32 = 1;

/// One published (RPI, interval) pair, hashed so that entries cannot be linked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct FilterEntry(pub [u8; FILTER_ENTRY_LEN]);

impl FilterEntry {
    /// `SHA-256(context || 0x00 || RPI || interval as u32 LE)[..16]`.
    pub fn new(rpi: &Rpi, interval: EnIntervalNumber) -> Self {
        let digest = Sha256::new()
            .chain_update(FILTER_ENTRY_CONTEXT)
            .chain_update([0])
            .chain_update(rpi.0)
            .chain_update(interval.to_le_bytes())
            .finalize();
        let mut e = [0; FILTER_ENTRY_LEN];
        e.copy_from_slice(&digest[..FILTER_ENTRY_LEN]);
        FilterEntry(e)
    }
}

/// [`FilterEntry::new`] of one RPI at many intervals, for probing. The SHA-256 input
/// is a single block in which only the interval's four bytes change, so the block
/// is built once per token and each entry costs one compression from the IV (no
/// hasher state, buffering or padding logic per entry). Tested equal to
/// [`FilterEntry::new`].
struct EntryHasher {
    block: [u8; 64],
}

impl EntryHasher {
    /// Offset of the interval in the block: after context, `0x00` and the RPI.
    const INTERVAL_AT: usize = FILTER_ENTRY_CONTEXT.len() + 1 + 16;
    const INPUT_LEN: usize = Self::INTERVAL_AT + 4;

    fn new(rpi: &Rpi) -> Self {
        const { assert!(Self::INPUT_LEN <= 55, "the entry input fits one block") };
        let mut block = [0u8; 64];
        block[..FILTER_ENTRY_CONTEXT.len()].copy_from_slice(FILTER_ENTRY_CONTEXT);
        block[FILTER_ENTRY_CONTEXT.len() + 1..Self::INTERVAL_AT].copy_from_slice(&rpi.0);
        block[Self::INPUT_LEN] = 0x80;
        block[56..].copy_from_slice(&((Self::INPUT_LEN as u64) * 8).to_be_bytes());
        EntryHasher { block }
    }

    fn entry(&mut self, interval: EnIntervalNumber) -> FilterEntry {
        self.block[Self::INTERVAL_AT..Self::INPUT_LEN].copy_from_slice(&interval.to_le_bytes());
        let mut state = SHA256_IV;
        compress(&mut state, &self.block);
        let mut e = [0; FILTER_ENTRY_LEN];
        e.copy_from_slice(&state_bytes(&state)[..FILTER_ENTRY_LEN]);
        FilterEntry(e)
    }
}

/// What the crate hashes for position `t` of an entry: `entry || t`, 17 raw bytes
/// and no length prefix (SPEC.md §5.8).
#[derive(Clone, Copy)]
struct Position([u8; FILTER_ENTRY_LEN + 1]);

impl Position {
    fn of(entry: &FilterEntry, t: u8) -> Self {
        let mut b = [t; FILTER_ENTRY_LEN + 1];
        b[..FILTER_ENTRY_LEN].copy_from_slice(&entry.0);
        Position(b)
    }
}

impl Hash for Position {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write(&self.0);
    }
}

/// Which intervals of a key a patient publishes: bit `j` (byte `j / 8`, bit
/// `j % 8`, least significant first) stands for interval `rolling_start + j`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct IntervalMask(pub [u8; INTERVAL_MASK_LEN]);

impl IntervalMask {
    /// Every interval of a key valid for `rolling_period` intervals.
    pub fn all(rolling_period: u32) -> Self {
        let mut m = IntervalMask::default();
        for j in 0..rolling_period.min(INTERVALS_PER_DAY) {
            m.set(j, true);
        }
        m
    }

    /// Whether offset `j` is chosen.
    pub fn get(&self, j: u32) -> bool {
        j < INTERVALS_PER_DAY && self.0[(j / 8) as usize] & (1 << (j % 8)) != 0
    }

    /// Chooses or removes offset `j` (ignored past the day).
    pub fn set(&mut self, j: u32, chosen: bool) {
        if j < INTERVALS_PER_DAY {
            let bit = 1 << (j % 8);
            let byte = &mut self.0[(j / 8) as usize];
            *byte = if chosen { *byte | bit } else { *byte & !bit };
        }
    }

    /// The chosen offsets, ascending.
    pub fn offsets(&self) -> impl Iterator<Item = u32> + '_ {
        (0..INTERVALS_PER_DAY).filter(|&j| self.get(j))
    }

    /// Decodes a mask field of exactly [`INTERVAL_MASK_LEN`] bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, WireError> {
        bytes.try_into().map(IntervalMask).map_err(|_| {
            WireError::invalid(
                "filter_intervals",
                format!("mask is {} bytes, not {INTERVAL_MASK_LEN}", bytes.len()),
            )
        })
    }

    /// Checks the mask against its key: something chosen, nothing outside the
    /// key's validity, nothing that has not ended by `now_unix`.
    pub fn validate(&self, key: &DiagnosisKey, now_unix: u64) -> Result<(), WireError> {
        let last = self
            .offsets()
            .last()
            .ok_or_else(|| WireError::invalid("filter_intervals", "mask chooses no interval"))?;
        if last >= key.rolling_period {
            return Err(WireError::invalid(
                "filter_intervals",
                format!(
                    "chooses offset {last}, outside the key's rolling period {}",
                    key.rolling_period
                ),
            ));
        }
        let interval = key.rolling_start + last;
        let now = interval_number(now_unix);
        if interval >= now {
            return Err(WireError::invalid(
                "filter_intervals",
                format!("chooses interval {interval}, which has not ended (now {now})"),
            ));
        }
        Ok(())
    }
}

/// The entries a gateway publishes for `key` restricted to `mask`, with their
/// intervals. Call [`IntervalMask::validate`] first.
pub fn filter_entries(
    key: &DiagnosisKey,
    mask: &IntervalMask,
) -> Vec<(EnIntervalNumber, FilterEntry)> {
    let rpik = key.tek.rpik();
    mask.offsets()
        .filter(|&j| j < key.rolling_period)
        .map(|j| {
            let interval = key.rolling_start + j;
            (interval, FilterEntry::new(&rpik.rpi(interval), interval))
        })
        .collect()
}

/// Bitmap bytes of a filter of `entries` entries: `ceil(n · 70 / 8)`, at least 1.
pub fn filter_bitmap_len(entries: u64) -> u64 {
    (entries.max(1) * FILTER_BITS_PER_ENTRY).div_ceil(8)
}

/// A Bloom filter over [`FilterEntry`]s with validated SPEC.md §5.8 parameters.
#[derive(Clone, Debug)]
pub struct EntryFilter {
    bloom: Bloom<Position>,
    entries: u64,
}

impl EntryFilter {
    /// Folds `entries` (distinct) into a filter hashed under `seed`.
    pub fn build(entries: &[FilterEntry], seed: [u8; FILTER_SEED_LEN]) -> Result<Self, WireError> {
        let n = entries.len() as u64;
        if n == 0 || n > MAX_FILTER_ENTRIES {
            return Err(WireError::invalid(
                "entry_count",
                format!("{n} entries; a filter holds 1..={MAX_FILTER_ENTRIES}"),
            ));
        }
        let bitmap = vec![0; filter_bitmap_len(n) as usize];
        let mut filter = Self::from_parts(n, FILTER_HASHES, &seed, &bitmap)?;
        for e in entries {
            for t in 0..FILTER_HASHES as u8 {
                filter.bloom.set(&Position::of(e, t));
            }
        }
        Ok(filter)
    }

    /// Rebuilds a filter from its wire fields, rejecting any size, hash count or
    /// bitmap that SPEC.md §5.8 does not allow for `entries` entries.
    pub fn from_parts(
        entries: u64,
        hashes: u32,
        seed: &[u8],
        bitmap: &[u8],
    ) -> Result<Self, WireError> {
        if entries == 0 || entries > MAX_FILTER_ENTRIES {
            return Err(WireError::invalid(
                "entry_count",
                format!("{entries} entries; a filter holds 1..={MAX_FILTER_ENTRIES}"),
            ));
        }
        if hashes != FILTER_HASHES {
            return Err(WireError::invalid(
                "hashes",
                format!("{hashes} hash functions; version 2 filters use {FILTER_HASHES}"),
            ));
        }
        let seed: [u8; FILTER_SEED_LEN] = seed.try_into().map_err(|_| {
            WireError::invalid(
                "seed",
                format!("is {} bytes, not {FILTER_SEED_LEN}", seed.len()),
            )
        })?;
        let expected = filter_bitmap_len(entries);
        if bitmap.len() as u64 != expected {
            return Err(WireError::invalid(
                "bitmap",
                format!(
                    "is {} bytes; a filter of {entries} entries has {expected}",
                    bitmap.len()
                ),
            ));
        }
        let set_bits: u64 = bitmap.iter().map(|b| u64::from(b.count_ones())).sum();
        if set_bits > entries * u64::from(hashes) {
            return Err(WireError::invalid(
                "bitmap",
                format!("{set_bits} bits set, more than {entries} entries can set"),
            ));
        }
        let mut bytes = Vec::with_capacity(BLOOM_HEADER_LEN + bitmap.len());
        bytes.push(BLOOM_FORMAT_VERSION);
        bytes.extend_from_slice(&(bitmap.len() as u64).to_le_bytes());
        bytes.extend_from_slice(&BLOOM_HASHES_PER_ITEM.to_le_bytes());
        bytes.extend_from_slice(&seed);
        bytes.extend_from_slice(&[0; 32 - FILTER_SEED_LEN]);
        bytes.extend_from_slice(bitmap);
        let bloom = Bloom::from_bytes(bytes)
            .map_err(|e| WireError::invalid("bitmap", format!("bloom filter rejected it: {e}")))?;
        Ok(EntryFilter { bloom, entries })
    }

    /// Whether `entry` may be in the filter (false positives at rate ε, no false negatives).
    pub fn contains(&self, entry: &FilterEntry) -> bool {
        (0..FILTER_HASHES as u8).all(|t| self.bloom.check(&Position::of(entry, t)))
    }

    /// Number of entries folded in.
    pub fn entries(&self) -> u64 {
        self.entries
    }

    /// The hash seed.
    pub fn seed(&self) -> [u8; FILTER_SEED_LEN] {
        let mut seed = [0; FILTER_SEED_LEN];
        seed.copy_from_slice(&self.bloom.seed()[..FILTER_SEED_LEN]);
        seed
    }

    /// The bitmap bytes (bit `b` is byte `b / 8`, bit `b % 8`, least significant first).
    pub fn bitmap(&self) -> &[u8] {
        &self.bloom.as_slice()[BLOOM_HEADER_LEN..]
    }
}

/// Indices of the `observations` that hit `filter` for `day`, ascending: an
/// observation at interval `t` probes every interval `j` of the day with
/// `|t - j| <= 12`, and only observations made before `published_at` (unix
/// seconds) are probed, so a token replayed after publication never matches.
///
/// A token is usually heard in several scans a few minutes apart, whose drift
/// windows overlap: each `(RPI, j)` is hashed and tested once per token, not once
/// per observation (at most 144 per token, the day's intervals).
pub fn probe_filter(
    filter: &EntryFilter,
    day: u32,
    published_at: u64,
    observations: &[Observation],
) -> Vec<u32> {
    let first = day_start_interval(day);
    let last = first + INTERVALS_PER_DAY - 1;
    let cutoff = interval_number(published_at);
    let window = |t: EnIntervalNumber| {
        (
            t.saturating_sub(DRIFT_TOLERANCE_INTERVALS).max(first),
            t.saturating_add(DRIFT_TOLERANCE_INTERVALS).min(last),
        )
    };
    let mut order: Vec<u32> = (0..observations.len() as u32)
        .filter(|&i| observations[i as usize].interval < cutoff)
        .collect();
    order.sort_unstable_by_key(|&i| (observations[i as usize].rpi, i));
    let mut matched = Vec::new();
    for token in
        order.chunk_by(|&a, &b| observations[a as usize].rpi == observations[b as usize].rpi)
    {
        let mut hasher = EntryHasher::new(&observations[token[0] as usize].rpi);
        let (lo, hi) = token
            .iter()
            .map(|&i| window(observations[i as usize].interval))
            .fold((u32::MAX, 0), |(lo, hi), (l, h)| (lo.min(l), hi.max(h)));
        let hits: Vec<EnIntervalNumber> = (lo..=hi)
            .filter(|&j| filter.contains(&hasher.entry(j)))
            .collect();
        matched.extend(token.iter().copied().filter(|&i| {
            let (l, h) = window(observations[i as usize].interval);
            hits.iter().any(|j| (l..=h).contains(j))
        }));
    }
    matched.sort_unstable();
    matched
}

/// Whether a filter for `day` may hold an entry of `interval` at `now_unix`: the
/// interval is on that day and [`FILTER_EMBARGO_INTERVALS`] have ended since.
pub fn entry_publishable(interval: EnIntervalNumber, now_unix: u64) -> bool {
    interval + FILTER_EMBARGO_INTERVALS <= interval_number(now_unix)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::keys::Tek;

    fn entries(n: u32) -> Vec<FilterEntry> {
        let tek = Tek([7; 16]);
        let rpik = tek.rpik();
        (0..n).map(|i| FilterEntry::new(&rpik.rpi(i), i)).collect()
    }

    proptest::proptest! {
        /// The probe's one-compression entry hash is the entry of SPEC.md §5.8.
        #[test]
        fn entry_hasher_equals_filter_entry(
            rpi in proptest::prelude::any::<[u8; 16]>(),
            intervals in proptest::collection::vec(proptest::prelude::any::<u32>(), 1..30),
        ) {
            let rpi = Rpi(rpi);
            let mut hasher = EntryHasher::new(&rpi);
            for j in intervals {
                proptest::prop_assert_eq!(hasher.entry(j), FilterEntry::new(&rpi, j));
            }
        }
    }

    #[test]
    fn every_entry_folded_in_is_found() {
        let e = entries(1000);
        let f = EntryFilter::build(&e, [3; 16]).unwrap();
        assert!(e.iter().all(|x| f.contains(x)));
        assert_eq!(f.bitmap().len() as u64, filter_bitmap_len(1000));
    }

    #[test]
    fn the_same_entry_under_another_interval_is_absent() {
        let tek = Tek([9; 16]);
        let rpi = tek.rpik().rpi(500);
        let f = EntryFilter::build(&[FilterEntry::new(&rpi, 500)], [1; 16]).unwrap();
        assert!(f.contains(&FilterEntry::new(&rpi, 500)));
        assert!(!f.contains(&FilterEntry::new(&rpi, 501)));
    }

    #[test]
    fn wire_parts_round_trip_and_bad_parameters_are_rejected() {
        let e = entries(100);
        let f = EntryFilter::build(&e, [5; 16]).unwrap();
        let g = EntryFilter::from_parts(100, FILTER_HASHES, &f.seed(), f.bitmap()).unwrap();
        assert!(e.iter().all(|x| g.contains(x)));
        let err = |r: Result<EntryFilter, WireError>| r.unwrap_err().to_string();
        assert!(err(EntryFilter::from_parts(100, 40, &f.seed(), f.bitmap())).contains("hash"));
        assert!(err(EntryFilter::from_parts(
            101,
            FILTER_HASHES,
            &f.seed(),
            f.bitmap()
        ))
        .contains("bitmap"));
        assert!(
            err(EntryFilter::from_parts(0, FILTER_HASHES, &f.seed(), &[])).contains("entry_count")
        );
        assert!(err(EntryFilter::from_parts(
            100,
            FILTER_HASHES,
            &[0; 15],
            f.bitmap()
        ))
        .contains("seed"));
        let full = vec![0xff; f.bitmap().len()];
        assert!(err(EntryFilter::from_parts(
            100,
            FILTER_HASHES,
            &f.seed(),
            &full
        ))
        .contains("bits set"));
    }

    #[test]
    fn masks_outside_the_key_or_in_the_future_are_rejected() {
        let now = 1_700_000_000;
        let start = day_start_interval(crate::interval::day_of_unix(now)) - 144;
        let key = DiagnosisKey {
            tek: Tek([1; 16]),
            rolling_start: start,
            rolling_period: 100,
            transmission_risk: 5,
            days_since_onset: 0,
        };
        assert!(IntervalMask::all(100).validate(&key, now).is_ok());
        assert!(IntervalMask::default().validate(&key, now).is_err());
        assert!(IntervalMask::all(101).validate(&key, now).is_err());
        let today = DiagnosisKey {
            rolling_start: start + 144,
            rolling_period: 144,
            ..key.clone()
        };
        assert!(IntervalMask::all(144).validate(&today, now).is_err());
        let mut chosen = IntervalMask::default();
        chosen.set(3, true);
        chosen.set(99, true);
        let got: Vec<u32> = filter_entries(&key, &chosen).iter().map(|e| e.0).collect();
        assert_eq!(got, vec![start + 3, start + 99]);
    }
}

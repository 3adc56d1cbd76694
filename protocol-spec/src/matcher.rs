//! Local matching: which of the phone's observed tokens belong to published keys.
//!
//! A token observed at interval `t` matches a published key `K` if, for some `j` in
//! `K.rolling_start .. K.rolling_start + K.rolling_period`, `RPI_j(K) == token` and
//! `|t - j| <= 12` (±2 h clock drift, SPEC.md §7.1). Nothing outside the key's
//! validity window plus that tolerance ever matches.
//!
//! The fast path ([`match_keys`]) derives each key's RPIs with [`TokenDeriver`] and
//! probes an [`ObservationIndex`]: first a small blocked Bloom prefilter (two bits in
//! one 64-bit word, sized to stay in L2), then, for the ~0.1 % of probes that pass,
//! an exact hash map. Observed tokens are attacker-chosen (anyone can broadcast), so:
//! the exact map uses SipHash with a per-index random key (std `RandomState`), and
//! the prefilter words are chosen by a multiply-shift hash with per-index random odd
//! multipliers. Whatever tokens an attacker plants, the prefilter has at most two bits
//! set per distinct token, so the false-positive rate seen by the (pseudorandom)
//! derived RPIs is bounded by the number of observations, not by their values.

use std::collections::HashMap;

use rand_core::{OsRng, RngCore};

use crate::derive::TokenDeriver;
use crate::diagnosis::DiagnosisKey;
use crate::interval::{EnIntervalNumber, DRIFT_TOLERANCE_INTERVALS};
use crate::keys::Rpi;

/// One received advertisement (or several aggregated scans of it), as the matcher sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Observation {
    /// The received token.
    pub rpi: Rpi,
    /// Interval in which it was received, by the phone's clock.
    pub interval: EnIntervalNumber,
    /// Attenuation (TX power - RSSI) in dB.
    pub attenuation_db: u8,
    /// Seconds of exposure this observation stands for.
    pub duration_s: u16,
}

/// All observations of one published key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyMatch {
    /// Index of the key in the slice passed to the matcher.
    pub key_index: usize,
    /// Indices into the observation slice, ascending.
    pub observations: Vec<u32>,
}

/// Bits of the prefilter per observation (rounded up to a power of two):
/// ~0.15 % false positives with two bits per 64-bit word, 128 KiB for 20,000 tokens.
const FILTER_BITS_PER_OBSERVATION: usize = 32;
const MIN_FILTER_WORDS: usize = 64;

/// A phone's observations, indexed for probing by derived RPIs.
pub struct ObservationIndex<'a> {
    observations: &'a [Observation],
    filter: Vec<u64>,
    /// `64 - log2(filter.len())`: the hash's top bits select the word.
    shift: u32,
    multipliers: [u64; 2],
    /// RPI → range of `order` holding the indices of its observations.
    exact: HashMap<Rpi, (u32, u32)>,
    order: Vec<u32>,
}

impl<'a> ObservationIndex<'a> {
    /// Indexes `observations` (at most `u32::MAX` of them) with fresh random hash keys.
    pub fn new(observations: &'a [Observation]) -> Self {
        let words = (observations.len() * FILTER_BITS_PER_OBSERVATION / 64)
            .next_power_of_two()
            .max(MIN_FILTER_WORDS);
        let multipliers = [OsRng.next_u64() | 1, OsRng.next_u64() | 1];
        let mut index = ObservationIndex {
            observations,
            filter: vec![0; words],
            shift: 64 - words.trailing_zeros(),
            multipliers,
            exact: HashMap::with_capacity(observations.len()),
            order: Vec::with_capacity(observations.len()),
        };
        let mut sorted: Vec<u32> = (0..observations.len() as u32).collect();
        sorted.sort_unstable_by_key(|&i| (observations[i as usize].rpi, i));
        for group in
            sorted.chunk_by(|&a, &b| observations[a as usize].rpi == observations[b as usize].rpi)
        {
            let rpi = observations[group[0] as usize].rpi;
            let (word, mask) = index.filter_slot(&rpi.0);
            index.filter[word] |= mask;
            let start = index.order.len() as u32;
            index.order.extend_from_slice(group);
            index.exact.insert(rpi, (start, group.len() as u32));
        }
        index
    }

    /// The indexed observations.
    pub fn observations(&self) -> &'a [Observation] {
        self.observations
    }

    #[inline]
    fn filter_slot(&self, rpi: &[u8; 16]) -> (usize, u64) {
        let (lo, hi) = rpi.split_at(8);
        let lo = u64::from_le_bytes(lo.try_into().expect("8 bytes"));
        let hi = u64::from_le_bytes(hi.try_into().expect("8 bytes"));
        let h = lo.wrapping_mul(self.multipliers[0]) ^ hi.wrapping_mul(self.multipliers[1]);
        let mask = (1u64 << ((h >> 20) & 63)) | (1u64 << ((h >> 26) & 63));
        ((h >> self.shift) as usize, mask)
    }

    #[inline]
    fn may_contain(&self, rpi: &[u8; 16]) -> bool {
        let (word, mask) = self.filter_slot(rpi);
        self.filter[word] & mask == mask
    }

    /// Indices of the observations of `rpi` (empty if none).
    pub fn lookup(&self, rpi: &Rpi) -> &[u32] {
        match self.exact.get(rpi) {
            Some(&(start, len)) => &self.order[start as usize..(start + len) as usize],
            None => &[],
        }
    }

    /// Appends to `out` the observations matching RPI `rpi` of interval `interval`.
    #[inline]
    fn collect(&self, rpi: &Rpi, interval: EnIntervalNumber, out: &mut Vec<u32>) {
        for &o in self.lookup(rpi) {
            if self.observations[o as usize].interval.abs_diff(interval)
                <= DRIFT_TOLERANCE_INTERVALS
            {
                out.push(o);
            }
        }
    }
}

/// Matches published `keys` against the indexed observations on the calling thread.
/// Results are in key order.
pub fn match_keys(index: &ObservationIndex<'_>, keys: &[DiagnosisKey]) -> Vec<KeyMatch> {
    match_range(index, keys, 0)
}

/// Like [`match_keys`], split over `threads` scoped threads; returns the same result.
pub fn match_keys_parallel(
    index: &ObservationIndex<'_>,
    keys: &[DiagnosisKey],
    threads: usize,
) -> Vec<KeyMatch> {
    let threads = threads.clamp(1, keys.len().max(1));
    if threads == 1 {
        return match_keys(index, keys);
    }
    let chunk = keys.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = keys
            .chunks(chunk)
            .enumerate()
            .map(|(i, part)| scope.spawn(move || match_range(index, part, i * chunk)))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("matcher thread panicked"))
            .collect()
    })
}

fn match_range(
    index: &ObservationIndex<'_>,
    keys: &[DiagnosisKey],
    offset: usize,
) -> Vec<KeyMatch> {
    let mut deriver = TokenDeriver::new();
    let mut found = Vec::new();
    let mut hits = Vec::new();
    for (k, key) in keys.iter().enumerate() {
        let rpis = deriver.rpis(&key.tek, key.rolling_start, key.rolling_period);
        for (j, block) in rpis.iter().enumerate() {
            let rpi: &[u8; 16] = block.as_ref();
            if index.may_contain(rpi) {
                index.collect(&Rpi(*rpi), key.rolling_start + j as u32, &mut hits);
            }
        }
        if !hits.is_empty() {
            hits.sort_unstable();
            found.push(KeyMatch {
                key_index: offset + k,
                observations: std::mem::take(&mut hits),
            });
        }
    }
    found
}

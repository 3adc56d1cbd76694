//! Local matching: which of the phone's observed tokens belong to published keys.
//!
//! A token observed at interval `t` matches a published key `K` if, for some `j` in
//! `K.rolling_start .. K.rolling_start + K.rolling_period`, `RPI_j(K) == token` and
//! `|t - j| <= 12` (±2 h clock drift, SPEC.md §7.1). Nothing outside the key's
//! validity window plus that tolerance ever matches.
//!
//! The fast path ([`match_keys`]) derives each key's RPIs with [`TokenDeriver`] and
//! probes an [`ObservationIndex`]: first a small blocked Bloom prefilter (two bits in
//! one 64-bit word), then, for the ~0.1 % of probes that pass, an exact hash map.
//! The prefilter is split by day: the filter of day `d` holds only the tokens
//! observed within the drift tolerance of `d`, which is all an RPI of an interval of
//! `d` can match. A key's probes then touch one small filter (8 KiB for 1,500
//! tokens a day, in L1), and a key of a day without observations probes nothing.
//!
//! Observed tokens are attacker-chosen (anyone can broadcast), so the exact map uses SipHash with a per-index random key (std `RandomState`), and
//! the prefilter word and bits are raw bits of the token XORed with per-index
//! random keys. Whatever tokens an attacker plants, the prefilter has at most two
//! bits set per distinct token, so the false-positive rate seen by the
//! (pseudorandom) derived RPIs is bounded by the number of observations, not by
//! their values.
//!
//! An index usually borrows its observations ([`ObservationIndex::new`]). One that
//! is probed by many calls (a phone matching batch after batch against the same
//! sightings) can hold them instead ([`ObservationIndex::owning`]), so that it is
//! built once and kept, rather than rebuilt per call.

use std::collections::HashMap;
use std::marker::PhantomData;

use aes::Block;
use rand_core::{OsRng, RngCore};

use crate::derive::TokenDeriver;
use crate::diagnosis::DiagnosisKey;
use crate::interval::{
    day_of_interval, day_start_interval, EnIntervalNumber, DRIFT_TOLERANCE_INTERVALS,
};
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

/// Bits of the prefilter per observation (rounded up to a power of two per day):
/// ~0.15 % false positives with two bits per 64-bit word.
const FILTER_BITS_PER_OBSERVATION: usize = 32;
const MIN_FILTER_WORDS: usize = 8;

/// A phone's observations, indexed for probing by derived RPIs.
///
/// `O` holds the observations: a borrowed slice by default
/// ([`ObservationIndex::new`]), or any container the index keeps
/// ([`ObservationIndex::owning`]).
pub struct ObservationIndex<'a, O = &'a [Observation]> {
    observations: O,
    /// The prefilter words of every day in [`ObservationIndex::days`], one day after another.
    filter: Vec<u64>,
    /// The days some observation is within the drift tolerance of, ascending.
    days: Vec<DaySlot>,
    seeds: [u64; 2],
    /// RPI → range of `order` holding the indices of its observations.
    exact: HashMap<Rpi, (u32, u32)>,
    order: Vec<u32>,
    borrowed: PhantomData<&'a [Observation]>,
}

/// Where one day's prefilter lies in [`ObservationIndex::filter`].
#[derive(Clone, Copy)]
struct DaySlot {
    day: u32,
    first_word: u32,
}

/// One day's prefilter: a word array of a power-of-two length.
#[derive(Clone, Copy)]
struct DayFilter<'f> {
    words: &'f [u64],
    seeds: [u64; 2],
}

impl DayFilter<'_> {
    /// Calls `hit(j)` for every `j` whose RPI `rpis[j]` may be in the filter. Hits
    /// are rare (~0.15 % of random RPIs), so `hit` should be out of line: the loop
    /// then keeps its few values in registers.
    #[inline]
    fn scan(&self, rpis: &[Block], mut hit: impl FnMut(usize)) {
        let (words, seeds) = (self.words, self.seeds);
        for (j, block) in rpis.iter().enumerate() {
            let (word, mask) = filter_slot(seeds, words.len(), block.as_ref());
            if words[word] & mask == mask {
                hit(j);
            }
        }
    }
}

impl<'a> ObservationIndex<'a> {
    /// Indexes `observations` (at most `u32::MAX` of them) with fresh random hash keys.
    pub fn new(observations: &'a [Observation]) -> Self {
        Self::owning(observations)
    }

    /// The indexed observations.
    pub fn observations(&self) -> &'a [Observation] {
        self.observations
    }
}

impl<O: AsRef<[Observation]>> ObservationIndex<'_, O> {
    /// Like [`ObservationIndex::new`], but the index keeps `observations` (a
    /// `Vec`, a `Box<[_]>`, a container that zeroizes itself on drop) and borrows
    /// nothing, so it can be built once and probed by any number of
    /// [`match_keys`] calls; usually typed `ObservationIndex<'static, O>`. It
    /// matches exactly like [`ObservationIndex::new`] over the same slice.
    /// `as_ref` must return the same observations for as long as the index holds
    /// the container.
    pub fn owning(observations: O) -> Self {
        let held = observations.as_ref();
        let seeds = [OsRng.next_u64(), OsRng.next_u64()];
        let mut exact = HashMap::with_capacity(held.len());
        let mut order = Vec::with_capacity(held.len());
        let mut sorted: Vec<u32> = (0..held.len() as u32).collect();
        sorted.sort_unstable_by_key(|&i| (held[i as usize].rpi, i));
        // (day, token): every day within the drift tolerance of one of its observations.
        let mut day_tokens: Vec<(u32, Rpi)> = Vec::with_capacity(held.len() + held.len() / 4);
        for group in sorted.chunk_by(|&a, &b| held[a as usize].rpi == held[b as usize].rpi) {
            let rpi = held[group[0] as usize].rpi;
            let start = order.len() as u32;
            order.extend_from_slice(group);
            exact.insert(rpi, (start, group.len() as u32));
            for &o in group {
                let t = held[o as usize].interval;
                let days = day_of_interval(t.saturating_sub(DRIFT_TOLERANCE_INTERVALS))
                    ..=day_of_interval(t.saturating_add(DRIFT_TOLERANCE_INTERVALS));
                day_tokens.extend(days.map(|d| (d, rpi)));
            }
        }
        day_tokens.sort_unstable();
        day_tokens.dedup();
        let mut filter = Vec::new();
        let mut days = Vec::new();
        for tokens in day_tokens.chunk_by(|a, b| a.0 == b.0) {
            let words = (tokens.len() * FILTER_BITS_PER_OBSERVATION / 64)
                .next_power_of_two()
                .max(MIN_FILTER_WORDS);
            let slot = DaySlot {
                day: tokens[0].0,
                first_word: filter.len() as u32,
            };
            let tokens_words = words;
            filter.resize(filter.len() + words, 0);
            let words = &mut filter[slot.first_word as usize..];
            for (_, rpi) in tokens {
                let (word, mask) = filter_slot(seeds, tokens_words, &rpi.0);
                words[word] |= mask;
            }
            days.push(slot);
        }
        ObservationIndex {
            observations,
            filter,
            days,
            seeds,
            exact,
            order,
            borrowed: PhantomData,
        }
    }

    /// What holds the indexed observations (for an index from
    /// [`ObservationIndex::owning`]).
    pub fn get_ref(&self) -> &O {
        &self.observations
    }

    /// The prefilter of RPIs of intervals of `day`, if any observation is near it.
    #[inline]
    fn day_filter(&self, day: u32) -> Option<DayFilter<'_>> {
        let i = self.days.binary_search_by_key(&day, |s| s.day).ok()?;
        let slot = self.days[i];
        let end = self
            .days
            .get(i + 1)
            .map_or(self.filter.len(), |next| next.first_word as usize);
        Some(DayFilter {
            words: &self.filter[slot.first_word as usize..end],
            seeds: self.seeds,
        })
    }

    /// Indices of the observations of `rpi` (empty if none).
    pub fn lookup(&self, rpi: &Rpi) -> &[u32] {
        match self.exact.get(rpi) {
            Some(&(start, len)) => &self.order[start as usize..(start + len) as usize],
            None => &[],
        }
    }

    /// Appends to `out` the observations matching RPI `rpi` of interval `interval`.
    #[cold]
    #[inline(never)]
    fn collect(&self, rpi: &Rpi, interval: EnIntervalNumber, out: &mut Vec<u32>) {
        let observations = self.observations.as_ref();
        for &o in self.lookup(rpi) {
            if observations[o as usize].interval.abs_diff(interval) <= DRIFT_TOLERANCE_INTERVALS {
                out.push(o);
            }
        }
    }

    /// Appends to `out` the observations matching `rpis`, the RPIs of the
    /// intervals from `start` on, probing each day's RPIs against that day's filter.
    fn probe(&self, rpis: &[Block], start: EnIntervalNumber, out: &mut Vec<u32>) {
        // Intervals past u32::MAX do not exist (the reference stops there too).
        let rpis = &rpis[..rpis.len().min((u32::MAX - start) as usize)];
        let mut j = 0;
        while j < rpis.len() {
            let first = start + j as u32;
            let day = day_of_interval(first);
            let day_end = (day_start_interval(day + 1) - start) as usize;
            let end = day_end.min(rpis.len());
            if let Some(filter) = self.day_filter(day) {
                filter.scan(&rpis[j..end], |k| {
                    self.collect(&Rpi(rpis[j + k].into()), first + k as u32, out)
                });
            }
            j = end;
        }
    }
}

/// The prefilter word of `rpi` and the two bits it sets there, under the
/// index's hash keys `seeds`, in a filter of `words` words (a power of two): the
/// word from the first eight bytes, the bits from the last eight, each XORed with
/// a random key.
///
/// Derived RPIs are AES outputs, uniform in every bit, so selecting by raw bits
/// spreads them evenly. Observed tokens are attacker-chosen, but whatever they are,
/// each distinct token sets at most two bits, so the false-positive rate the derived
/// RPIs see is bounded by the number of tokens; the random keys keep an attacker
/// from even knowing which words their tokens land in. The exact map behind the
/// prefilter is keyed SipHash.
#[inline]
fn filter_slot(seeds: [u64; 2], words: usize, rpi: &[u8; 16]) -> (usize, u64) {
    let (lo, hi) = rpi.split_at(8);
    let word = u64::from_le_bytes(lo.try_into().expect("8 bytes")) ^ seeds[0];
    let bits = u64::from_le_bytes(hi.try_into().expect("8 bytes")) ^ seeds[1];
    // Two table loads instead of two shifts by a register (several micro-ops each
    // on x86 without BMI2).
    let mask = BIT[(bits & 63) as usize] | BIT[((bits >> 6) & 63) as usize];
    (word as usize & (words - 1), mask)
}

/// `BIT[i] = 1 << i`.
const BIT: [u64; 64] = {
    let mut bits = [0u64; 64];
    let mut i = 0;
    while i < 64 {
        bits[i] = 1 << i;
        i += 1;
    }
    bits
};

/// Matches published `keys` against the indexed observations on the calling thread.
/// Results are in key order.
pub fn match_keys<O: AsRef<[Observation]>>(
    index: &ObservationIndex<'_, O>,
    keys: &[DiagnosisKey],
) -> Vec<KeyMatch> {
    match_range(index, keys, 0)
}

/// Like [`match_keys`], split over `threads` scoped threads; returns the same result.
pub fn match_keys_parallel<O: AsRef<[Observation]> + Sync>(
    index: &ObservationIndex<'_, O>,
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

fn match_range<O: AsRef<[Observation]>>(
    index: &ObservationIndex<'_, O>,
    keys: &[DiagnosisKey],
    offset: usize,
) -> Vec<KeyMatch> {
    let mut deriver = TokenDeriver::new();
    let mut found = Vec::new();
    let mut hits = Vec::new();
    deriver.for_each_key(keys, |k, rpis| {
        index.probe(rpis, keys[k].rolling_start, &mut hits);
        if !hits.is_empty() {
            hits.sort_unstable();
            found.push(KeyMatch {
                key_index: offset + k,
                observations: std::mem::take(&mut hits),
            });
        }
    });
    found.sort_unstable_by_key(|m| m.key_index);
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::interval::day_start_interval;
    use crate::keys::Tek;

    /// An index that holds its observations finds exactly what a borrowing one
    /// finds, alone and split over threads, after it has moved (as a cache does).
    #[test]
    fn an_owning_index_matches_like_a_borrowing_one() {
        let start = day_start_interval(20_000);
        let keys: Vec<DiagnosisKey> = (0..40u8)
            .map(|seed| DiagnosisKey {
                tek: Tek([seed; 16]),
                rolling_start: start,
                rolling_period: 144,
                transmission_risk: 5,
                days_since_onset: 0,
            })
            .collect();
        let mut observations: Vec<Observation> = (0..2_000u32)
            .map(|i| Observation {
                rpi: Rpi([(i % 251) as u8 ^ 0x5a; 16]),
                interval: start + i % 144,
                attenuation_db: 50,
                duration_s: 60,
            })
            .collect();
        for (k, key) in keys.iter().enumerate().step_by(3) {
            let token = start + 10 * (k as u32 % 13);
            for drift in [0, 12, 13] {
                observations.push(Observation {
                    rpi: key.tek.rpik().rpi(token),
                    interval: token + drift,
                    attenuation_db: 40,
                    duration_s: 300,
                });
            }
        }
        let expected = match_keys(&ObservationIndex::new(&observations), &keys);
        assert_eq!(expected.len(), keys.len().div_ceil(3));

        let owned: ObservationIndex<'static, Vec<Observation>> =
            ObservationIndex::owning(observations.clone());
        let kept = Box::new(owned);
        assert_eq!(kept.get_ref(), &observations);
        assert_eq!(match_keys(&kept, &keys), expected);
        assert_eq!(match_keys_parallel(&kept, &keys, 3), expected);
        assert_eq!(
            match_keys(&kept, &keys),
            expected,
            "probing again changes nothing"
        );
        let boxed = ObservationIndex::owning(observations.clone().into_boxed_slice());
        assert_eq!(match_keys(&boxed, &keys), expected);
    }
}

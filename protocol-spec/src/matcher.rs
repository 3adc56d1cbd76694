//! Local matching: which of the phone's observed tokens belong to published keys.
//!
//! A token observed at interval `t` matches a published key `K` if, for some `j` in
//! `K.rolling_start .. K.rolling_start + K.rolling_period`, `RPI_j(K) == token` and
//! `|t - j| <= 12` (±2 h clock drift, SPEC.md §7.1). Nothing outside the key's
//! validity window plus that tolerance ever matches.
//!
//! The fast path ([`match_keys`]) derives each key's RPIs with [`TokenDeriver`] and
//! probes an [`ObservationIndex`]: first a tag table (one byte per slot, one load
//! and a compare per RPI), then, for the ~0.15 % of probes that pass, an exact hash
//! map. The tag table is split by day: the table of day `d` holds only the tokens
//! observed within the drift tolerance of `d`, which is all an RPI of an interval of
//! `d` can match. A key's probes then touch one small table (32 KiB for 1,500
//! tokens a day, in L1), and a key of a day without observations probes nothing.
//! The probe loop is instantiated per table size (2^6 to 2^20 slots), so that a
//! slot is the top bits of one multiply, in bounds by construction: per RPI a
//! load, an XOR, a multiply, a shift, a byte load and two compares
//! (`benches/matcher.rs` prints the gain over one generic loop with a mask and
//! a bounds check: 1.10x probing). Measured and not kept: 8 slots per token
//! instead of 16 (tables half the size pass twice the RPIs: 0.93x).
//!
//! Observed tokens are attacker-chosen (anyone can broadcast), so the exact map
//! uses SipHash with a per-index random key (std `RandomState`), and a token's
//! slot and tag come from a keyed multiply-shift hash of its first eight bytes
//! (universal: without the per-index random keys, an attacker cannot make two
//! tokens share a slot more often than chance). Tokens that agree in those bits
//! share slot and tag, which costs nothing; whatever the tokens, each fills at
//! most one slot, so the rate at which the (pseudorandom) derived RPIs pass the
//! table is bounded by the number of observations, not by their values.
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

/// Tag-table slots per distinct token near a day, before rounding up to a power of
/// two: 1/32 to 1/16 of the slots are taken, so a random RPI passes the table
/// (a shared slot, or a 7-bit tag match) with probability 0.06-0.2 %.
const SLOTS_PER_TOKEN: usize = 16;
const MIN_SLOT_BITS: u32 = 6;
/// A slot no token fills. Tags are odd, so it never equals one.
const EMPTY: u8 = 0;
/// A slot that tokens of different tags fill: every RPI landing there is checked
/// exactly. Even, so it never equals a tag.
const SHARED: u8 = 2;

/// A phone's observations, indexed for probing by derived RPIs.
///
/// `O` holds the observations: a borrowed slice by default
/// ([`ObservationIndex::new`]), or any container the index keeps
/// ([`ObservationIndex::owning`]).
pub struct ObservationIndex<'a, O = &'a [Observation]> {
    observations: O,
    /// The tag tables of every day in [`ObservationIndex::days`], one after another.
    tags: Vec<u8>,
    /// The days some observation is within the drift tolerance of, ascending.
    days: Vec<DaySlot>,
    hash: SlotHash,
    /// RPI → range of `order` holding the indices of its observations.
    exact: HashMap<Rpi, (u32, u32)>,
    order: Vec<u32>,
    borrowed: PhantomData<&'a [Observation]>,
}

/// Where one day's tag table lies in [`ObservationIndex::tags`].
#[derive(Clone, Copy)]
struct DaySlot {
    day: u32,
    first: u32,
    /// The table has `1 << bits` slots.
    bits: u32,
}

/// The per-index keys of the slot hash (see [`SlotHash::slot`]).
#[derive(Clone, Copy)]
struct SlotHash {
    xor: u64,
    /// Odd.
    mul: u64,
}

impl SlotHash {
    fn random() -> Self {
        SlotHash {
            xor: OsRng.next_u64(),
            mul: OsRng.next_u64() | 1,
        }
    }

    /// The slot (in a table of `1 << bits` slots, `bits` in 1..=63) and the tag
    /// of `rpi`: `x = first 8 bytes ^ xor`, slot = the top `bits` bits of
    /// `x * mul` (multiply-shift, universal over the low 48 bits of `x`; tokens
    /// equal there get the same slot and tag), tag = the low byte of `x`, made
    /// odd. Derived RPIs are AES outputs, uniform in every bit, so slot and tag
    /// are uniform and independent for them.
    #[inline(always)]
    fn slot(self, bits: u32, rpi: &[u8; 16]) -> (usize, u8) {
        let (lo, _) = rpi.split_first_chunk::<8>().expect("16 bytes");
        let x = u64::from_le_bytes(*lo) ^ self.xor;
        (
            (x.wrapping_mul(self.mul) >> (64 - bits)) as usize,
            x as u8 | 1,
        )
    }
}

/// One day's tag table: `tags.len()` (a power of two) slots.
#[derive(Clone, Copy)]
struct DayTable<'t> {
    tags: &'t [u8],
    hash: SlotHash,
}

impl DayTable<'_> {
    /// Calls `hit(j)` for every `j` whose RPI `rpis[j]` may be in the table. Hits
    /// are rare (~0.15 % of random RPIs), so `hit` should be out of line: the loop
    /// then keeps its few values in registers.
    ///
    /// The loop is instantiated per table size ([`scan_sized`]), so that the
    /// slot is a shift by a constant that the compiler knows to be in bounds: no
    /// mask and no bounds check per probe.
    /// `sized: false` runs the generic loop instead (a benchmark's lever).
    #[inline]
    fn scan(&self, rpis: &[Block], sized: bool, hit: impl FnMut(usize)) {
        if !sized {
            return scan_any(self.tags, self.hash, rpis, hit);
        }
        macro_rules! sized {
            ($($bits:literal)*) => {
                match self.tags.len().trailing_zeros() {
                    $($bits => scan_sized::<$bits, { 1 << $bits }>(
                        self.tags.try_into().expect("a table of 1 << bits slots"),
                        self.hash,
                        rpis,
                        hit,
                    ),)*
                    _ => scan_any(self.tags, self.hash, rpis, hit),
                }
            };
        }
        sized!(6 7 8 9 10 11 12 13 14 15 16 17 18 19 20)
    }
}

/// [`DayTable::scan`] on a table of `N = 1 << BITS` slots.
#[inline]
fn scan_sized<const BITS: u32, const N: usize>(
    tags: &[u8; N],
    hash: SlotHash,
    rpis: &[Block],
    mut hit: impl FnMut(usize),
) {
    for (j, block) in rpis.iter().enumerate() {
        let (slot, tag) = hash.slot(BITS, block.as_ref());
        let held = tags[slot];
        if (held == tag) | (held == SHARED) {
            hit(j);
        }
    }
}

/// [`DayTable::scan`] on a table of any power-of-two size (a mask and a bounds
/// check per probe).
fn scan_any(tags: &[u8], hash: SlotHash, rpis: &[Block], mut hit: impl FnMut(usize)) {
    let bits = tags.len().trailing_zeros();
    let mask = tags.len() - 1;
    for (j, block) in rpis.iter().enumerate() {
        let (slot, tag) = hash.slot(bits, block.as_ref());
        let held = tags[slot & mask];
        if (held == tag) | (held == SHARED) {
            hit(j);
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
        Self::with_slots_per_token(observations, SLOTS_PER_TOKEN)
    }

    /// [`ObservationIndex::owning`] with `slots` (≥ 1) tag-table slots per token
    /// before rounding up instead of 16: fewer make smaller tables that pass more
    /// random RPIs. For benchmarks weighing that trade; matches the same.
    #[doc(hidden)]
    pub fn with_slots_per_token(observations: O, slots: usize) -> Self {
        let held = observations.as_ref();
        let hash = SlotHash::random();
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
        let mut tags = Vec::new();
        let mut days = Vec::new();
        for tokens in day_tokens.chunk_by(|a, b| a.0 == b.0) {
            let bits = (tokens.len() * slots.max(1))
                .next_power_of_two()
                .trailing_zeros()
                .max(MIN_SLOT_BITS);
            let slot = DaySlot {
                day: tokens[0].0,
                first: tags.len() as u32,
                bits,
            };
            tags.resize(tags.len() + (1 << bits), EMPTY);
            let table = &mut tags[slot.first as usize..];
            for (_, rpi) in tokens {
                let (i, tag) = hash.slot(bits, &rpi.0);
                table[i] = match table[i] {
                    EMPTY => tag,
                    held if held == tag => tag,
                    _ => SHARED,
                };
            }
            days.push(slot);
        }
        ObservationIndex {
            observations,
            tags,
            days,
            hash,
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

    /// The tag table of RPIs of intervals of `day`, if any observation is near it.
    #[inline]
    fn day_table(&self, day: u32) -> Option<DayTable<'_>> {
        let i = self.days.binary_search_by_key(&day, |s| s.day).ok()?;
        let slot = self.days[i];
        let first = slot.first as usize;
        Some(DayTable {
            tags: &self.tags[first..first + (1 << slot.bits)],
            hash: self.hash,
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
    /// intervals from `start` on (as [`TokenDeriver::rpis`] gives them), probing
    /// each day's RPIs against that day's tag table: the probing half of
    /// [`match_keys`], public so that benchmarks can time it apart.
    pub fn probe(&self, rpis: &[Block], start: EnIntervalNumber, out: &mut Vec<u32>) {
        self.probe_with(rpis, start, out, true)
    }

    /// [`ObservationIndex::probe`] through the generic loop (a mask and a
    /// bounds check per probe), not the one instantiated per table size: for
    /// benchmarks weighing that lever. Finds the same.
    #[doc(hidden)]
    pub fn probe_generic(&self, rpis: &[Block], start: EnIntervalNumber, out: &mut Vec<u32>) {
        self.probe_with(rpis, start, out, false)
    }

    #[inline]
    fn probe_with(&self, rpis: &[Block], start: EnIntervalNumber, out: &mut Vec<u32>, sized: bool) {
        // Intervals past u32::MAX do not exist (the reference stops there too).
        let rpis = &rpis[..rpis.len().min((u32::MAX - start) as usize)];
        let mut j = 0;
        while j < rpis.len() {
            let first = start + j as u32;
            let day = day_of_interval(first);
            let day_end = (day_start_interval(day + 1) - start) as usize;
            let end = day_end.min(rpis.len());
            if let Some(table) = self.day_table(day) {
                table.scan(&rpis[j..end], sized, |k| {
                    self.collect(&Rpi(rpis[j + k].into()), first + k as u32, out)
                });
            }
            j = end;
        }
    }
}

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

    /// 40 keys of the day starting at interval `start`.
    fn forty_keys(start: EnIntervalNumber) -> Vec<DiagnosisKey> {
        (0..40u8)
            .map(|seed| DiagnosisKey {
                tek: Tek([seed; 16]),
                rolling_start: start,
                rolling_period: 144,
                transmission_risk: 5,
                days_since_onset: 0,
            })
            .collect()
    }

    /// Tokens of different tags that land in one slot are all found: 40 keys
    /// heard in each of their 144 intervals fill a day's table with slots shared by
    /// two tokens (checked), and every observation still matches its key.
    #[test]
    fn tokens_sharing_a_slot_are_all_found() {
        let start = day_start_interval(20_000);
        let keys = forty_keys(start);
        let observations: Vec<Observation> = keys
            .iter()
            .flat_map(|key| {
                let rpik = key.tek.rpik();
                (start..start + 144).map(move |i| Observation {
                    rpi: rpik.rpi(i),
                    interval: i,
                    attenuation_db: 50,
                    duration_s: 60,
                })
            })
            .collect();
        let index = ObservationIndex::new(&observations);
        let shared = index.tags.iter().filter(|&&t| t == SHARED).count();
        assert!(shared > 10, "only {shared} shared slots");
        let found = match_keys(&index, &keys);
        assert_eq!(found.len(), keys.len());
        for (k, m) in found.iter().enumerate() {
            let expected: Vec<u32> = (k as u32 * 144..(k as u32 + 1) * 144).collect();
            assert_eq!(m.observations, expected, "key {k}");
        }
    }

    /// An index that holds its observations finds exactly what a borrowing one
    /// finds, alone and split over threads, after it has moved (as a cache does).
    #[test]
    fn an_owning_index_matches_like_a_borrowing_one() {
        let start = day_start_interval(20_000);
        let keys = forty_keys(start);
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

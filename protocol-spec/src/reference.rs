//! The straightforward matcher: the definition of a match written as plainly as
//! possible (HKDF per key, one AES block per call, a std hash map). It is the
//! oracle the fast matcher is tested against and the baseline its speed is
//! measured against; it is not meant for production use.

use std::collections::HashMap;

use crate::diagnosis::DiagnosisKey;
use crate::interval::DRIFT_TOLERANCE_INTERVALS;
use crate::keys::Rpi;
use crate::matcher::{KeyMatch, Observation};

/// Matches `keys` against `observations` by the definition in SPEC.md §7.1.
pub fn match_keys_reference(observations: &[Observation], keys: &[DiagnosisKey]) -> Vec<KeyMatch> {
    let mut by_rpi: HashMap<Rpi, Vec<u32>> = HashMap::new();
    for (i, o) in observations.iter().enumerate() {
        by_rpi.entry(o.rpi).or_default().push(i as u32);
    }
    let mut found = Vec::new();
    for (key_index, key) in keys.iter().enumerate() {
        let rpik = key.tek.rpik();
        let mut hits = Vec::new();
        for j in key.rolling_start..key.validity_end().min(key.rolling_start + 144) {
            for &o in by_rpi.get(&rpik.rpi(j)).into_iter().flatten() {
                if observations[o as usize].interval.abs_diff(j) <= DRIFT_TOLERANCE_INTERVALS {
                    hits.push(o);
                }
            }
        }
        if !hits.is_empty() {
            hits.sort_unstable();
            found.push(KeyMatch {
                key_index,
                observations: hits,
            });
        }
    }
    found
}

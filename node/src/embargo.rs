//! Embargo (SPEC.md §6.3): a key still valid when uploaded is stored but neither
//! served nor gossiped until `EMBARGO_SECONDS` after its validity ends, so that
//! nobody can recognise the uploader's live broadcasts.

use traceless_protocol::{interval_start_seconds, Batch, DiagnosisKey, EMBARGO_SECONDS};

/// Unix seconds from which `key` may be served: the end of its validity plus the
/// embargo. For a key whose validity ended long ago this lies in the past.
pub fn release_at(key: &DiagnosisKey) -> u64 {
    interval_start_seconds(key.validity_end()) + EMBARGO_SECONDS
}

/// Whether `key` must still be held back at `now`.
pub fn is_embargoed(key: &DiagnosisKey, now: u64) -> bool {
    now < release_at(key)
}

/// Unix seconds from which a whole batch may be served and forwarded: the latest
/// release time of its keys. Applied to every batch, whoever signed it, so a
/// gateway that publishes too early is held back by every relay.
pub fn batch_visible_from(batch: &Batch) -> u64 {
    batch.keys.iter().map(release_at).max().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use traceless_protocol::{day_start_interval, Tek};

    #[test]
    fn todays_key_is_held_until_two_hours_after_midnight() {
        let day = 19_675;
        let key = DiagnosisKey {
            tek: Tek([1; 16]),
            rolling_start: day_start_interval(day),
            rolling_period: 144,
            transmission_risk: 4,
            days_since_onset: 0,
        };
        let midnight = u64::from(day + 1) * 86_400;
        assert!(is_embargoed(&key, midnight - 1));
        assert!(is_embargoed(&key, midnight + 2 * 3600 - 1));
        assert!(!is_embargoed(&key, midnight + 2 * 3600));
    }
}

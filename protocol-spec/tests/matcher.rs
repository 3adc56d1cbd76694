//! The fast matcher returns exactly what the straightforward one does, and both
//! honour the validity window and the ±12-interval drift tolerance.

use proptest::prelude::*;
use traceless_protocol::*;

const DAY: u32 = 20_000;

fn key(seed: u8, day_offset: u32, period: u32) -> DiagnosisKey {
    DiagnosisKey {
        tek: Tek([seed; 16]),
        rolling_start: day_start_interval(DAY + day_offset),
        rolling_period: period,
        transmission_risk: 5,
        days_since_onset: 1,
    }
}

fn heard(key: &DiagnosisKey, token_interval: u32, observed_at: u32) -> Observation {
    Observation {
        rpi: key.tek.rpik().rpi(token_interval),
        interval: observed_at,
        attenuation_db: 50,
        duration_s: 60,
    }
}

fn fast(observations: &[Observation], keys: &[DiagnosisKey]) -> Vec<KeyMatch> {
    match_keys(&ObservationIndex::new(observations), keys)
}

#[test]
fn drift_tolerance_is_twelve_intervals_each_way() {
    let k = key(1, 0, 144);
    let t = k.rolling_start + 50;
    let obs = [
        heard(&k, t, t - 12),
        heard(&k, t, t + 12),
        heard(&k, t, t - 13),
        heard(&k, t, t + 13),
    ];
    for m in [
        fast(&obs, std::slice::from_ref(&k)),
        match_keys_reference(&obs, std::slice::from_ref(&k)),
    ] {
        assert_eq!(
            m,
            vec![KeyMatch {
                key_index: 0,
                observations: vec![0, 1]
            }]
        );
    }
}

#[test]
fn tokens_outside_the_validity_window_never_match() {
    // A key valid for 10 intervals: its derivation continues past the window
    // (AES does not know about validity), but those tokens must not match.
    let k = key(2, 0, 10);
    let inside = k.rolling_start + 9;
    let after = k.rolling_start + 10;
    let before = k.rolling_start - 1;
    let obs = [
        heard(&k, inside, inside),
        heard(&k, after, after),
        heard(&k, before, before),
    ];
    for m in [
        fast(&obs, std::slice::from_ref(&k)),
        match_keys_reference(&obs, std::slice::from_ref(&k)),
    ] {
        assert_eq!(
            m,
            vec![KeyMatch {
                key_index: 0,
                observations: vec![0]
            }]
        );
    }
}

#[test]
fn tokens_near_a_day_boundary_match_across_it() {
    // A key starting mid-day runs into the next day; the index keeps one prefilter
    // per day, so a token of either day heard on the other must still be found.
    let k = key(6, 0, 144);
    let k = DiagnosisKey {
        rolling_start: k.rolling_start + 100,
        ..k
    };
    let next_day = day_start_interval(DAY + 1);
    let obs = [
        heard(&k, next_day - 1, next_day + 11), // token of day 0, heard on day 1
        heard(&k, next_day, next_day - 12),     // token of day 1, heard on day 0
        heard(&k, next_day + 43, next_day + 43), // last interval of the key
        heard(&k, next_day - 1, next_day + 12), // 13 intervals late
    ];
    for m in [
        fast(&obs, std::slice::from_ref(&k)),
        match_keys_reference(&obs, &[k]),
    ] {
        assert_eq!(
            m,
            vec![KeyMatch {
                key_index: 0,
                observations: vec![0, 1, 2]
            }]
        );
    }
}

#[test]
fn unrelated_tokens_and_keys_do_not_match() {
    let published = key(3, 0, 144);
    let other = key(4, 0, 144);
    let obs: Vec<Observation> = (0..144)
        .map(|i| heard(&other, other.rolling_start + i, other.rolling_start + i))
        .collect();
    assert!(fast(&obs, std::slice::from_ref(&published)).is_empty());
    assert!(match_keys_reference(&obs, &[published]).is_empty());
}

#[test]
fn parallel_matcher_returns_the_serial_result() {
    let keys: Vec<DiagnosisKey> = (0..50).map(|i| key(i, u32::from(i % 3), 144)).collect();
    let obs: Vec<Observation> = keys
        .iter()
        .step_by(7)
        .map(|k| heard(k, k.rolling_start + 3, k.rolling_start + 3))
        .collect();
    let index = ObservationIndex::new(&obs);
    let serial = match_keys(&index, &keys);
    assert_eq!(serial.len(), 8);
    for threads in [1, 2, 3, 64] {
        assert_eq!(match_keys_parallel(&index, &keys, threads), serial);
    }
}

#[test]
fn a_flood_of_identical_attacker_tokens_is_matched_correctly() {
    // An attacker replays one token thousands of times: the index groups them,
    // and only the ones within the drift window of the real interval match.
    let k = key(5, 0, 144);
    let t = k.rolling_start + 70;
    let obs: Vec<Observation> = (0..5_000).map(|i| heard(&k, t, t - 2_500 + i)).collect();
    let m = fast(&obs, std::slice::from_ref(&k));
    assert_eq!(m, match_keys_reference(&obs, &[k]));
    assert_eq!(m[0].observations.len(), 25);
}

fn arb_key() -> impl Strategy<Value = DiagnosisKey> {
    (any::<[u8; 16]>(), 0u32..3, 0u32..144, 1u32..=144).prop_map(|(tek, day, offset, period)| {
        DiagnosisKey {
            tek: Tek(tek),
            rolling_start: day_start_interval(DAY + day) + offset,
            rolling_period: period,
            transmission_risk: 5,
            days_since_onset: 0,
        }
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Random keys; observations mixing tokens of those keys (at random intervals
    /// and random drift, inside and outside the windows) with random noise.
    #[test]
    fn fast_matcher_equals_reference(
        keys in prop::collection::vec(arb_key(), 1..20),
        picks in prop::collection::vec((any::<prop::sample::Index>(), 0u32..170, -20i32..=20), 0..60),
        noise in prop::collection::vec((any::<[u8; 16]>(), 0u32..432), 0..60),
        threads in 1usize..4,
    ) {
        let mut obs: Vec<Observation> = picks
            .iter()
            .map(|(k, offset, drift)| {
                let k = k.get(&keys);
                let token_interval = k.rolling_start + offset;
                heard(k, token_interval, token_interval.saturating_add_signed(*drift))
            })
            .collect();
        obs.extend(noise.iter().map(|(rpi, i)| Observation {
            rpi: Rpi(*rpi),
            interval: day_start_interval(DAY) + i,
            attenuation_db: 60,
            duration_s: 30,
        }));
        let expected = match_keys_reference(&obs, &keys);
        let index = ObservationIndex::new(&obs);
        prop_assert_eq!(&match_keys(&index, &keys), &expected);
        prop_assert_eq!(&match_keys_parallel(&index, &keys, threads), &expected);
    }
}

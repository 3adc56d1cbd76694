//! Exposure time does not depend on how often the host scans (SPEC.md §7.1): a
//! contact of known length, heard at any cadence from 4 s to 300 s, with jitter
//! and randomly missed sightings, is reported through the public API as about
//! the time it lasted.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use traceless_protocol::{
    interval_number, Clock, DiagnosisKey, ManualClock, Metadata, Tek, INTERVALS_PER_DAY,
};

/// How one contact is heard.
#[derive(Clone, Copy, Debug)]
struct Contact {
    /// Seconds the two phones are near each other.
    seconds: u64,
    /// Mean seconds between two scans of the host.
    cadence: u64,
    /// Each gap between scans varies uniformly by up to this fraction of `cadence`.
    jitter: f64,
    /// Probability that a scan misses the advertisement.
    loss: f64,
}

/// The minutes a listener reports after hearing one contact of `c` that starts
/// `start` seconds into day 0 (the sender's key is then published).
fn reported_minutes(c: Contact, start: u64, rng: &mut StdRng) -> f64 {
    let begin = at(DAY0, 0) + start;
    let mut heard = Vec::new();
    // The first scan falls anywhere within one cadence of the contact's start.
    let mut t = begin as f64 + rng.gen_range(0.0..c.cadence as f64);
    while t < (begin + c.seconds) as f64 {
        if !rng.gen_bool(c.loss) {
            heard.push(t as u64);
        }
        let spread = c.jitter * c.cadence as f64;
        t += c.cadence as f64 + rng.gen_range(-spread..=spread);
    }
    minutes_heard_at(&heard)
}

/// The minutes a listener reports after hearing one sender at the unix times
/// `heard` (all on day 0), once the sender's key is published.
fn minutes_heard_at(heard: &[u64]) -> f64 {
    let clock = ManualClock::new(at(DAY0, 0));
    let mut listener = phone(&clock);
    let tek = Tek([7; 16]);
    for &now in heard {
        let ad = tek.advertisement(interval_number(now), Metadata::new(-8));
        clock.set(now);
        listener
            .record_sighting(&ad.to_bytes(), -60, None, now)
            .unwrap();
    }
    clock.set(at(DAY0 + 1, 600));
    let mut authority = Authority::new("test.health");
    authority.trusted_by(&mut listener);
    let key = DiagnosisKey {
        tek,
        rolling_start: DAY0 * INTERVALS_PER_DAY,
        rolling_period: INTERVALS_PER_DAY,
        transmission_risk: 5,
        days_since_onset: 0,
    };
    listener
        .sync_batch(&authority.batch(vec![key], clock.now()))
        .unwrap();
    listener
        .exposure_summary()
        .unwrap()
        .first()
        .map_or(0.0, |d| d.minutes)
}

/// Mean reported minutes of `n` contacts like `c` at random start times.
fn mean_minutes(c: Contact, n: usize, seed: u64) -> f64 {
    let mut rng = StdRng::seed_from_u64(seed);
    let total: f64 = (0..n)
        .map(|_| {
            let start = rng.gen_range(3_600..40_000);
            reported_minutes(c, start, &mut rng)
        })
        .sum();
    total / n as f64
}

/// The closing note's table: reported minutes of a 30-minute contact per
/// cadence, without and with 30 % of sightings missed (mean of 200 contacts).
/// `cargo test -p traceless-sdk --test duration -- --ignored --nocapture`
#[test]
#[ignore = "prints the table for the report; the properties below are the checks"]
fn table_of_reported_minutes_for_a_30_minute_contact() {
    println!("cadence_s  loss_0%  loss_30%");
    for cadence in [4, 10, 30, 60, 61, 120, 300] {
        let c = |loss| Contact {
            seconds: 1_800,
            cadence,
            jitter: 0.0,
            loss,
        };
        let n = if cadence < 30 { 40 } else { 200 };
        println!(
            "{cadence:>9}  {:>7.1}  {:>8.1}",
            mean_minutes(c(0.0), n, cadence),
            mean_minutes(c(0.3), n, cadence + 1),
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]

    /// Averaged over 64 contacts at random start times, the reported minutes are
    /// within ±10 % of the contact's length at every cadence, jitter and loss
    /// rate; without loss and jitter each single contact is off by at most one
    /// scan cadence (which scans fall inside it is chance).
    ///
    /// 64, not 16: a 20-minute contact heard every 300 s is 4 scans, each
    /// contact is off by up to a cadence (25 %), and the mean of 16 strayed past
    /// 10 % by chance alone (e.g. 30.8 min for 27 at 239 s, 19 % jitter, 12 %
    /// loss), while the estimator's bias stays within about 7 % (a model of it
    /// over 4,000 contacts per setting).
    #[test]
    fn reported_minutes_do_not_depend_on_the_scan_cadence(
        cadence in 4u64..=300,
        jitter in 0.0f64..=0.2,
        loss in 0.0f64..=0.3,
        minutes in 20u64..=60,
        seed: u64,
    ) {
        let c = Contact { seconds: minutes * 60, cadence, jitter, loss };
        let mean = mean_minutes(c, 64, seed);
        prop_assert!(
            (mean - minutes as f64).abs() <= 0.1 * minutes as f64,
            "{c:?}: {mean:.1} reported for {minutes} min"
        );
        let exact = Contact { jitter: 0.0, loss: 0.0, ..c };
        let mut rng = StdRng::seed_from_u64(seed);
        let one = reported_minutes(exact, rng.gen_range(3_600..40_000), &mut rng);
        let bound = (0.1 * minutes as f64).max(cadence as f64 / 60.0);
        prop_assert!((one - minutes as f64).abs() <= bound, "{exact:?}: {one:.1}");
    }
}

/// The example: a 10-minute contact across an interval boundary, heard
/// every 61 s, was reported as 18.1 minutes (high risk); it is 10 minutes.
#[test]
fn a_ten_minute_contact_across_a_token_rotation_is_ten_minutes() {
    let c = Contact {
        seconds: 600,
        cadence: 61,
        jitter: 0.0,
        loss: 0.0,
    };
    let mut rng = StdRng::seed_from_u64(1);
    // Starts 5 minutes before an interval boundary: two tokens of the sender.
    let minutes = reported_minutes(c, 10 * 600 - 300, &mut rng);
    assert!((9.0..=11.0).contains(&minutes), "{minutes:.1} min");
}

/// A sender heard once is taken at the configured scan period (300 s), and a
/// sender heard again after more than the longest bridged gap is two contacts,
/// not one long one.
#[test]
fn a_lone_sighting_is_one_scan_period_and_a_long_gap_is_not_counted() {
    let t = at(DAY0, 600);
    assert_eq!(minutes_heard_at(&[t]), 5.0, "one sighting");
    let apart = [t, t + 60, t + 120, t + 1_200, t + 1_260];
    // Each run is its span plus its 60-s cadence: 3 + 2 minutes.
    assert_eq!(
        minutes_heard_at(&apart),
        5.0,
        "the 18-minute gap is not exposure"
    );
    let bridged = [t, t + 60, t + 120, t + 900, t + 960];
    // 900 s is bridged: 16 min of span, one cadence, 12 of 17 scans missed
    // between the ends (capped at half): 16 + 1 · 1.5 / 0.5 = 19 min.
    assert_eq!(minutes_heard_at(&bridged), 19.0);
}

//! Risk scoring: buckets, weights, infectiousness and the daily threshold.

use traceless_protocol::*;

fn window(day: u32, tr: u8, dso: i8, scans: &[(u8, u16)]) -> ExposureWindow {
    ExposureWindow {
        day,
        transmission_risk: tr,
        days_since_onset: dso,
        scans: scans
            .iter()
            .enumerate()
            .map(|(i, &(attenuation_db, seconds))| ScanInstance {
                interval: day_start_interval(day) + i as u32,
                attenuation_db,
                seconds,
            })
            .collect(),
    }
}

#[test]
fn attenuation_buckets_weight_minutes() {
    let p = RiskParameters::default();
    assert_eq!(p.attenuation_weight(57), 1.0);
    assert_eq!(p.attenuation_weight(58), 0.4);
    assert_eq!(p.attenuation_weight(62), 0.4);
    assert_eq!(p.attenuation_weight(63), 0.0);
    assert_eq!(p.attenuation_weight(74), 0.0);
    // 10 min near + 10 min medium + 10 min far = 14 weighted minutes.
    let w = window(100, 5, 0, &[(50, 600), (60, 600), (70, 600)]);
    let days = p.daily_summaries(&[w]);
    assert_eq!(days.len(), 1);
    assert_eq!(days[0].minutes, 30.0);
    assert_eq!(days[0].weighted_minutes, 14.0);
}

#[test]
fn scans_above_the_maximum_attenuation_count_no_minutes_and_make_no_day() {
    let p = RiskParameters::default();
    assert!(p.ignores(74) && !p.ignores(73));
    let mixed = window(100, 5, 0, &[(50, 600), (74, 600)]);
    let days = p.daily_summaries(&[mixed, window(101, 5, 0, &[(80, 600)])]);
    assert_eq!(days.len(), 1, "a day of ignored scans only is no day");
    assert_eq!(days[0].minutes, 10.0, "the 74-dB scan counts no minute");
}

#[test]
fn score_crosses_the_threshold_only_with_enough_close_contact() {
    let p = RiskParameters::default();
    let short = window(100, 5, 0, &[(50, 600)]); // 10 near minutes
    let long = window(101, 5, 0, &[(50, 600), (50, 600)]); // 20 near minutes
    let days = p.daily_summaries(&[short, long]);
    assert!(!days[0].high_risk, "{days:?}");
    assert!(days[1].high_risk, "{days:?}");
}

#[test]
fn transmission_risk_and_infectiousness_scale_the_score() {
    let p = RiskParameters::default();
    let scans = [(50, 1200)];
    let low = p.daily_summaries(&[window(1, 1, 0, &scans)]);
    let high = p.daily_summaries(&[window(1, 8, 0, &scans)]);
    assert_eq!(low[0].score, 0.0);
    assert!(high[0].score > 20.0);
    let none = p.daily_summaries(&[window(1, 8, 14, &scans)]);
    assert_eq!(none[0].score, 20.0 * 1.6 * p.infectiousness_weight(14));
}

#[test]
fn windows_split_by_day_and_sum_per_day() {
    let p = RiskParameters::default();
    let days = p.daily_summaries(&[
        window(5, 5, 0, &[(50, 300)]),
        window(5, 5, 0, &[(50, 300)]),
        window(6, 5, 0, &[(50, 300)]),
    ]);
    assert_eq!(
        days.iter().map(|d| (d.day, d.minutes)).collect::<Vec<_>>(),
        vec![(5, 10.0), (6, 5.0)]
    );
}

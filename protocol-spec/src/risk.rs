//! Risk scoring (SPEC.md §7.2): matched observations → exposure windows → per-day
//! weighted minutes and score → a threshold decision. Only the day and the
//! minutes leave this module; never which token or which time matched.

use std::collections::BTreeMap;

use crate::diagnosis::{DiagnosisKey, MAX_DAYS_SINCE_ONSET};
use crate::filter::FILTER_TRANSMISSION_RISK;
use crate::interval::{day_of_interval, EnIntervalNumber};
use crate::matcher::{KeyMatch, Observation};

/// One scan's contribution to a window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScanInstance {
    /// Interval of the scan.
    pub interval: EnIntervalNumber,
    /// Attenuation in dB.
    pub attenuation_db: u8,
    /// Seconds of exposure it stands for.
    pub seconds: u16,
}

/// The observations of one published key on one day.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExposureWindow {
    /// UTC day of the observations.
    pub day: u32,
    /// Transmission risk level of the matched key.
    pub transmission_risk: u8,
    /// Days since onset of symptoms of the matched key.
    pub days_since_onset: i8,
    /// The scans, in time order.
    pub scans: Vec<ScanInstance>,
}

/// Builds one window per (matched key, day of observation).
pub fn exposure_windows(
    keys: &[DiagnosisKey],
    observations: &[Observation],
    matches: &[KeyMatch],
) -> Vec<ExposureWindow> {
    matches
        .iter()
        .flat_map(|m| {
            let key = &keys[m.key_index];
            windows_by_day(
                observations,
                &m.observations,
                key.transmission_risk,
                key.days_since_onset,
            )
        })
        .collect()
}

/// Builds one window per UTC day of the `matched` observations of one day filter
/// (SPEC.md §5.8): scored at [`FILTER_TRANSMISSION_RISK`] and days since onset 0,
/// since the filter form carries no per-key metadata.
pub fn filter_windows(observations: &[Observation], matched: &[u32]) -> Vec<ExposureWindow> {
    windows_by_day(observations, matched, FILTER_TRANSMISSION_RISK, 0)
}

/// Groups the `matched` observations by UTC day into windows with one metadata.
fn windows_by_day(
    observations: &[Observation],
    matched: &[u32],
    transmission_risk: u8,
    days_since_onset: i8,
) -> Vec<ExposureWindow> {
    let mut by_day: BTreeMap<u32, Vec<ScanInstance>> = BTreeMap::new();
    for &o in matched {
        let o = &observations[o as usize];
        by_day
            .entry(day_of_interval(o.interval))
            .or_default()
            .push(ScanInstance {
                interval: o.interval,
                attenuation_db: o.attenuation_db,
                seconds: o.duration_s,
            });
    }
    by_day
        .into_iter()
        .map(|(day, mut scans)| {
            scans.sort_by_key(|s| (s.interval, s.attenuation_db, s.seconds));
            ExposureWindow {
                day,
                transmission_risk,
                days_since_onset,
                scans,
            }
        })
        .collect()
}

/// How infectious a person is on a day, from days since onset (GAEN v2 notion).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Infectiousness {
    /// Not counted.
    None,
    /// Standard infectiousness.
    Standard,
    /// High infectiousness (around symptom onset).
    High,
}

/// The parameters of risk scoring. [`RiskParameters::default`] documents its sources.
#[derive(Clone, Debug, PartialEq)]
pub struct RiskParameters {
    /// Bucket bounds in dB: `< t[0]` near, `t[0]..t[1]` medium, `>= t[1]` far.
    pub attenuation_thresholds_db: [u8; 2],
    /// Minutes weights of the near, medium and far buckets.
    pub attenuation_weights: [f64; 3],
    /// Scans with attenuation above this are ignored entirely.
    pub max_attenuation_db: u8,
    /// Value of each transmission risk level 0..=8.
    pub transmission_risk_values: [f64; 9],
    /// Infectiousness for days since onset -14..=14 (index `dso + 14`).
    pub infectiousness: [Infectiousness; 29],
    /// Weights of [`Infectiousness::Standard`] and [`Infectiousness::High`].
    pub infectiousness_weights: [f64; 2],
    /// Per-day score at or above which the day counts as an exposure at high risk.
    pub threshold: f64,
}

impl Default for RiskParameters {
    /// Defaults (SPEC.md §7.2 gives the sources): attenuation buckets 58/63 dB with
    /// weights 1.0/0.4/0.0 and the 15-minute daily trigger (calibrated on the
    /// simulator's city-100k from SwissCovid's and CWA v2's 55/63 dB, 1.0/0.5/0.0);
    /// scans above 73 dB dropped (CWA); transmission risk values and infectiousness
    /// by days since onset as in CWA's risk calculation v2.
    fn default() -> Self {
        let mut infectiousness = [Infectiousness::None; 29];
        for dso in -14i32..=14 {
            infectiousness[(dso + 14) as usize] = match dso {
                -3..=3 => Infectiousness::High,
                -14..=-4 | 4..=14 => Infectiousness::Standard,
                _ => Infectiousness::None,
            };
        }
        RiskParameters {
            attenuation_thresholds_db: [58, 63],
            attenuation_weights: [1.0, 0.4, 0.0],
            max_attenuation_db: 73,
            transmission_risk_values: [0.0, 0.0, 0.0, 0.6, 0.8, 1.0, 1.2, 1.4, 1.6],
            infectiousness,
            infectiousness_weights: [1.0, 1.0],
            threshold: 15.0,
        }
    }
}

/// What an exposure was found from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ExposureKind {
    /// Bluetooth tokens heard near a person who later tested positive.
    Proximity,
    /// A check-in at a venue that was traced for an overlapping time (SPEC.md §12.7).
    Venue,
}

/// Exposure summed over one day and kind. This is all an app is told.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DaySummary {
    /// UTC day.
    pub day: u32,
    /// Proximity (scored as below) or venue (minutes of overlap, weighted by the
    /// case's transmission risk; score = weighted minutes; presence-tracing threshold).
    pub kind: ExposureKind,
    /// Minutes of exposure heard (all buckets, before weighting).
    pub minutes: f64,
    /// Minutes weighted by attenuation bucket.
    pub weighted_minutes: f64,
    /// Weighted minutes times transmission risk value times infectiousness weight.
    pub score: f64,
    /// Whether `score >= threshold`.
    pub high_risk: bool,
}

impl RiskParameters {
    /// Whether a scan at `attenuation_db` is ignored entirely (above
    /// `max_attenuation_db`: no minutes, no window).
    pub fn ignores(&self, attenuation_db: u8) -> bool {
        attenuation_db > self.max_attenuation_db
    }

    /// Weight of a scan at `attenuation_db`.
    pub fn attenuation_weight(&self, attenuation_db: u8) -> f64 {
        let [near, medium] = self.attenuation_thresholds_db;
        match attenuation_db {
            a if a > self.max_attenuation_db => 0.0,
            a if a < near => self.attenuation_weights[0],
            a if a < medium => self.attenuation_weights[1],
            _ => self.attenuation_weights[2],
        }
    }

    /// Weight of the infectiousness of a key `days_since_onset` days from onset.
    pub fn infectiousness_weight(&self, days_since_onset: i8) -> f64 {
        let i = (i32::from(days_since_onset.clamp(-MAX_DAYS_SINCE_ONSET, MAX_DAYS_SINCE_ONSET))
            + 14) as usize;
        match self.infectiousness[i] {
            Infectiousness::None => 0.0,
            Infectiousness::Standard => self.infectiousness_weights[0],
            Infectiousness::High => self.infectiousness_weights[1],
        }
    }

    /// Sums windows into one summary per day, ascending by day. Ignored scans
    /// ([`RiskParameters::ignores`]) count nothing, and a window of ignored scans
    /// only makes no day.
    pub fn daily_summaries(&self, windows: &[ExposureWindow]) -> Vec<DaySummary> {
        let mut days: BTreeMap<u32, DaySummary> = BTreeMap::new();
        for w in windows {
            let counted = || w.scans.iter().filter(|s| !self.ignores(s.attenuation_db));
            if counted().next().is_none() {
                continue;
            }
            let minutes: f64 = counted().map(|s| f64::from(s.seconds) / 60.0).sum();
            let weighted: f64 = counted()
                .map(|s| f64::from(s.seconds) / 60.0 * self.attenuation_weight(s.attenuation_db))
                .sum();
            let tr = self.transmission_risk_values[usize::from(w.transmission_risk.min(8))];
            let score = weighted * tr * self.infectiousness_weight(w.days_since_onset);
            let d = days.entry(w.day).or_insert(DaySummary {
                day: w.day,
                kind: ExposureKind::Proximity,
                minutes: 0.0,
                weighted_minutes: 0.0,
                score: 0.0,
                high_risk: false,
            });
            d.minutes += minutes;
            d.weighted_minutes += weighted;
            d.score += score;
        }
        days.into_values()
            .map(|mut d| {
                d.high_risk = d.score >= self.threshold;
                d
            })
            .collect()
    }
}

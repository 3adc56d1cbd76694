//! Corona-Warn-App's presence-tracing risk (SPEC.md §12.7), applied to the
//! traced window: a case's stay under 10 minutes is dropped, the rest extended
//! by min(stay, 30 min) for aerosols; the overlap with the phone's stay, in
//! minutes, is weighted by the case's transmission risk value and summed per
//! day; 10 weighted minutes or more in a day is high risk.

use super::record::VisitMatch;

/// Parameters (defaults: CWA's `presence-tracing-parameters.yaml`).
#[derive(Debug, Clone, PartialEq)]
pub struct PresenceRisk {
    /// Case stays shorter than this are dropped, seconds.
    pub min_stay_seconds: u64,
    /// Longest aerosol extension of a case's stay, seconds.
    pub max_extension_seconds: u64,
    /// Weighted minutes per day at or above which the day is high risk.
    pub high_risk_minutes: f64,
    /// Transmission risk value per level 0..=8 (CWA: 1–2 → 0, 3 → 0.6 … 8 → 1.6;
    /// 0 = unknown → 1.0).
    pub transmission_risk_values: [f64; 9],
}

impl Default for PresenceRisk {
    fn default() -> Self {
        PresenceRisk {
            min_stay_seconds: 600,
            max_extension_seconds: 1800,
            high_risk_minutes: 10.0,
            transmission_risk_values: [1.0, 0.0, 0.0, 0.6, 0.8, 1.0, 1.2, 1.4, 1.6],
        }
    }
}

/// A day's venue exposure.
#[derive(Debug, Clone, PartialEq)]
pub struct VenueExposureDay {
    /// UTC day.
    pub day: u32,
    /// Weighted overlap minutes.
    pub minutes: f64,
    /// `minutes >= high_risk_minutes`.
    pub high_risk: bool,
}

impl PresenceRisk {
    /// Weighted overlap minutes of one match (0 if dropped or disjoint).
    pub fn minutes(&self, m: &VisitMatch) -> f64 {
        let stay = m.window_end.saturating_sub(m.window_start);
        if stay < self.min_stay_seconds {
            return 0.0;
        }
        let end = m.window_end + stay.min(self.max_extension_seconds);
        let overlap = m
            .departure
            .min(end)
            .saturating_sub(m.arrival.max(m.window_start));
        let trv = self.transmission_risk_values[(m.risk_level as usize).min(8)];
        overlap as f64 / 60.0 * trv
    }

    /// Per-day sums, ascending by day, days with 0 minutes left out.
    pub fn score(&self, matches: &[VisitMatch]) -> Vec<VenueExposureDay> {
        let mut days = std::collections::BTreeMap::<u32, f64>::new();
        for m in matches {
            let minutes = self.minutes(m);
            if minutes > 0.0 {
                *days.entry(m.day).or_default() += minutes;
            }
        }
        days.into_iter()
            .map(|(day, minutes)| VenueExposureDay {
                day,
                minutes,
                high_risk: minutes >= self.high_risk_minutes,
            })
            .collect()
    }
}

//! Risk calibration from one run's stored exposure windows: every phone's
//! windows are scored again under each attenuation-bucket setting, and each
//! score threshold gives one (recall, precision) point against ground truth,
//! so a precision–recall curve per setting costs no second simulation.
//!
//! "Notified" here is the phone's state at the end of the run (any day at or
//! above the threshold), not the notification time the run itself reports.

use std::collections::HashSet;

use serde::Serialize;
use traceless_protocol::RiskParameters;

use crate::phones::Phone;
use crate::population::PersonId;

/// Score thresholds (weighted minutes per day) each curve is drawn at.
pub const THRESHOLDS: [f64; 12] = [
    2.5, 5.0, 7.5, 10.0, 12.5, 15.0, 17.5, 20.0, 25.0, 30.0, 40.0, 60.0,
];

/// One attenuation-bucket setting.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Setting {
    /// Short label for plots.
    pub name: String,
    /// Bucket bounds, dB.
    pub thresholds_db: [u8; 2],
    /// Near, medium and far weights.
    pub weights: [f64; 3],
}

/// The settings compared: today's default (SwissCovid/CWA 55/63 dB, 1/0.5/0)
/// and variations of bounds and weights.
pub fn settings() -> Vec<Setting> {
    let s = |name: &str, thresholds_db, weights| Setting {
        name: name.into(),
        thresholds_db,
        weights,
    };
    vec![
        s("default 55/63 1/.5/0", [55, 63], [1.0, 0.5, 0.0]),
        s("50/60 1/.5/0", [50, 60], [1.0, 0.5, 0.0]),
        s("60/68 1/.5/0", [60, 68], [1.0, 0.5, 0.0]),
        s("55/63 1/.3/0", [55, 63], [1.0, 0.3, 0.0]),
        s("55/63 1/.5/.1", [55, 63], [1.0, 0.5, 0.1]),
    ]
}

/// One threshold's outcome under one setting.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Point {
    /// Score threshold.
    pub threshold: f64,
    /// Phones notified.
    pub notified: usize,
    /// Notified and truly close / notified.
    pub precision: f64,
    /// Notified and truly close / truly close.
    pub recall: f64,
}

/// The precision–recall curve of one setting.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Curve {
    /// The setting.
    pub setting: Setting,
    /// One point per [`THRESHOLDS`] entry.
    pub points: Vec<Point>,
}

/// The curves of every [`settings`] entry over `phones` (those that found a
/// window are rescored; the others score 0), against `close` (ground truth).
pub fn curves(phones: &mut [Phone], close: &HashSet<PersonId>) -> Vec<Curve> {
    settings()
        .into_iter()
        .map(|setting| {
            let risk = RiskParameters {
                attenuation_thresholds_db: setting.thresholds_db,
                attenuation_weights: setting.weights,
                ..RiskParameters::default()
            };
            let scores: Vec<(f64, bool)> = phones
                .iter_mut()
                .filter(|p| p.windows > 0)
                .map(|p| (p.max_day_score(&risk), close.contains(&p.person)))
                .collect();
            let points = THRESHOLDS
                .iter()
                .map(|&threshold| {
                    let notified = scores.iter().filter(|s| s.0 >= threshold).count();
                    let tp = scores.iter().filter(|s| s.0 >= threshold && s.1).count();
                    let ratio = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
                    Point {
                        threshold,
                        notified,
                        precision: ratio(tp, notified),
                        recall: ratio(tp, close.len()),
                    }
                })
                .collect();
            Curve { setting, points }
        })
        .collect()
}

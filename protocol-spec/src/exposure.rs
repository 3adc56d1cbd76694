//! How sightings become exposure time (SPEC.md §7.1), independent of the
//! host's scan cadence.
//!
//! A phone keeps, per heard token, *sighting runs*: sightings at most
//! [`MAX_SIGHTING_GAP_SECONDS`] apart, summarised as first and last time, the
//! number of sightings and the shortest gap between two of them. Once a key is
//! matched, all its tokens belong to one sender, so the runs of one key are
//! joined across token rotations, and a joined run stands for its span plus one
//! scan cadence, the cadence read from the sightings themselves (the shortest
//! gap) and corrected for the scans that missed the sender:
//!
//! ```text
//! c      = shortest gap between two sightings of the run (or the assumed cadence)
//! slots  = span / c + 1           scans the host made while the sender was near
//! q      = (slots - heard) / (slots - 2)   share of the scans between the first
//!                                         and last sighting that missed it, ≤ 0.5
//!                                         (0 with fewer than 3 slots)
//! time   = span + c · (1 + q) / (1 - q)
//! ```
//!
//! `c · (1 + q) / (1 - q)` is one cadence for the scan after the last sighting
//! plus the expected missed scans at each end (`q / (1 - q)` each). Time
//! counted per run is thus the same at every cadence from 4 s to 300 s,
//! unlike a count of scans times a scan period.

use crate::interval::INTERVAL_SECONDS;

/// Sightings of one token, or of one key's tokens, at most this far apart belong
/// to one run: three times the longest scan period supported (300 s), so that
/// two missed scans in a row at the slowest cadence do not split a contact.
pub const MAX_SIGHTING_GAP_SECONDS: u64 = 900;
/// Longest scan period (seconds between two scans) the SDK supports.
pub const MAX_SCAN_PERIOD_SECONDS: u64 = 300;
/// Most seconds one run of one token stands for: a token is broadcast for one
/// interval, plus a bridged gap to the sender's next token.
pub const MAX_TOKEN_SECONDS: u64 = INTERVAL_SECONDS + MAX_SIGHTING_GAP_SECONDS;
/// Reports of one token less than this apart come from one scan (a host may
/// report one advertisement several times per scan).
pub const SAME_SCAN_SECONDS: u64 = 2;
/// Largest share of missed scans the loss correction assumes.
const MAX_LOSS: f64 = 0.5;

/// One run of sightings of one token.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct SightingRun {
    /// First sighting, unix seconds.
    pub first: u64,
    /// Last sighting, unix seconds.
    pub last: u64,
    /// Sightings in the run (at least 1).
    pub sightings: u32,
    /// Shortest gap between two sightings of the run, seconds (0 with one sighting).
    pub min_gap: u32,
}

impl SightingRun {
    /// A run of one sighting at `at`.
    pub fn new(at: u64) -> Self {
        SightingRun {
            first: at,
            last: at,
            sightings: 1,
            min_gap: 0,
        }
    }

    /// Whether a sighting at `at` belongs to this run.
    pub fn admits(&self, at: u64) -> bool {
        at + MAX_SIGHTING_GAP_SECONDS >= self.first && at <= self.last + MAX_SIGHTING_GAP_SECONDS
    }

    /// Adds a sighting at `at`; one less than [`SAME_SCAN_SECONDS`] from an end
    /// of the run (another report of the same scan) is not counted again.
    pub fn add(&mut self, at: u64) {
        let gap = if at > self.last {
            at - self.last
        } else if at < self.first {
            self.first - at
        } else {
            // Inside the run: the nearest neighbour is unknown; only a repeat of
            // an end counts as the same scan.
            (at - self.first).min(self.last - at)
        };
        if gap < SAME_SCAN_SECONDS {
            return;
        }
        self.first = self.first.min(at);
        self.last = self.last.max(at);
        self.sightings = self.sightings.saturating_add(1);
        self.min_gap = min_gap(self.min_gap, gap);
    }
}

fn min_gap(a: u32, gap: u64) -> u32 {
    let gap = u32::try_from(gap).unwrap_or(u32::MAX);
    if a == 0 {
        gap
    } else {
        a.min(gap)
    }
}

/// Seconds each run stands for, in the order given. `runs` are the runs of one
/// sender (one matched key on one day, or one token of a day filter); a run
/// without any gap to read the cadence from is taken at `assumed_cadence_s`.
///
/// Runs at most [`MAX_SIGHTING_GAP_SECONDS`] apart are joined; a joined run's
/// time (see the module doc) is split over its runs from each run's first
/// sighting to the next run's, the last taking the rest. No run stands for more
/// than [`MAX_TOKEN_SECONDS`].
pub fn exposure_seconds(runs: &[SightingRun], assumed_cadence_s: u64) -> Vec<u64> {
    let mut order: Vec<usize> = (0..runs.len()).collect();
    order.sort_by_key(|&i| (runs[i].first, runs[i].last));
    let mut seconds = vec![0; runs.len()];
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        let mut last = runs[order[start]].last;
        while end < order.len() && runs[order[end]].first <= last + MAX_SIGHTING_GAP_SECONDS {
            last = last.max(runs[order[end]].last);
            end += 1;
        }
        let joined = &order[start..end];
        let total = joined_seconds(runs, joined, assumed_cadence_s);
        let first = runs[joined[0]].first;
        let mut counted = 0;
        for (k, &i) in joined.iter().enumerate() {
            let share = match joined.get(k + 1) {
                Some(&next) => runs[next].first - runs[i].first,
                None => total.saturating_sub(runs[i].first - first),
            };
            let share = share.min(total - counted).min(MAX_TOKEN_SECONDS);
            seconds[i] = share;
            counted += share;
        }
        start = end;
    }
    seconds
}

/// `span + c · (1 + q) / (1 - q)` of the joined runs `joined` (sorted by first).
fn joined_seconds(runs: &[SightingRun], joined: &[usize], assumed_cadence_s: u64) -> u64 {
    let first = runs[joined[0]].first;
    let mut last = first;
    let mut heard = 0u64;
    let mut cadence = 0u32;
    let mut previous_last: Option<u64> = None;
    for &i in joined {
        let r = &runs[i];
        heard += u64::from(r.sightings.max(1));
        if r.min_gap > 0 {
            cadence = min_gap(cadence, u64::from(r.min_gap));
        }
        if let Some(p) = previous_last {
            if r.first > p {
                cadence = min_gap(cadence, r.first - p);
            }
        }
        previous_last = Some(previous_last.map_or(r.last, |p| p.max(r.last)));
        last = last.max(r.last);
    }
    let span = last - first;
    let c = if cadence == 0 {
        assumed_cadence_s.clamp(1, MAX_SCAN_PERIOD_SECONDS) as f64
    } else {
        f64::from(cadence)
    };
    let slots = (span as f64 / c).round() + 1.0;
    // The first and last slots were heard by definition: the loss rate is
    // read from the slots between them.
    let q = if slots > 2.0 {
        ((slots - heard as f64) / (slots - 2.0)).clamp(0.0, MAX_LOSS)
    } else {
        0.0
    };
    span + (c * (1.0 + q) / (1.0 - q)).round() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(times: &[u64]) -> SightingRun {
        let mut r = SightingRun::new(times[0]);
        for &t in &times[1..] {
            r.add(t);
        }
        r
    }

    #[test]
    fn a_run_without_missed_scans_stands_for_its_span_plus_one_cadence() {
        let r = run(&[100, 160, 220, 280]);
        assert_eq!((r.sightings, r.min_gap), (4, 60));
        assert_eq!(exposure_seconds(&[r], 300), vec![240]);
    }

    #[test]
    fn tokens_of_one_sender_are_joined_across_rotation_and_missed_scans_are_corrected() {
        // Scans every 100 s from 0 to 1100; the sender rotates at 600; the scans
        // at 300 and 700 missed it.
        let a = run(&[0, 100, 200, 400, 500]);
        let b = run(&[600, 800, 900, 1000, 1100]);
        let s = exposure_seconds(&[b, a], 300);
        // 12 slots, 10 heard: q = 2/10, time = 1100 + 100 · 1.2/0.8 = 1250.
        assert_eq!(s.iter().sum::<u64>(), 1250);
        assert_eq!(
            s[1], 600,
            "the first token stands until the next one starts"
        );
    }

    #[test]
    fn a_lone_sighting_takes_the_assumed_cadence_and_distant_runs_are_not_joined() {
        let s = exposure_seconds(&[SightingRun::new(0), SightingRun::new(5_000)], 120);
        assert_eq!(s, vec![120, 120]);
    }

    #[test]
    fn repeated_reports_of_one_scan_count_once() {
        let r = run(&[10, 10, 70, 70, 70]);
        assert_eq!((r.sightings, r.min_gap), (2, 60));
    }
}

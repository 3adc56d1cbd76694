//! The publication schedule (SPEC.md §6.4): a gateway publishes accepted keys
//! only at fixed period boundaries, all keys of a period shuffled together and
//! padded to at least k, so that nothing public moves when an upload arrives
//! and nothing in a batch says which keys came from the same upload.
//!
//! This module holds the schedule's arithmetic and the padding; the gateway
//! ([`crate::gateway::Gateway::publish_period`]) applies them to its durable pool.

use std::collections::VecDeque;

use rand::seq::SliceRandom;
use rand::Rng;
use traceless_protocol::wire::MAX_BATCH_KEYS;
use traceless_protocol::{
    day_of_interval, day_of_unix, day_start_interval, DiagnosisKey, PeriodBatch, Tek,
};

use crate::embargo;

/// Real key shapes remembered as templates for padding.
const SHAPES_KEPT: usize = 4096;

/// Fixed-length periods starting at multiples of `period` unix seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Schedule {
    period: u64,
}

impl Schedule {
    /// Periods of `period_seconds` (at least 1).
    pub fn new(period_seconds: u64) -> Self {
        Schedule {
            period: period_seconds.max(1),
        }
    }

    /// The last boundary at or before `now`: the start of the current period, and
    /// the `created_at` of what is published in it.
    pub fn boundary_at(&self, now: u64) -> u64 {
        now - now % self.period
    }

    /// The first boundary strictly after `t`: when a key that may be published
    /// from `t` is published.
    pub fn publication_of(&self, t: u64) -> u64 {
        self.boundary_at(t) + self.period
    }

    /// Length of a period in seconds.
    pub fn period(&self) -> u64 {
        self.period
    }
}

/// The time from which an accepted key may be published: now, or the end of its
/// embargo (SPEC.md §6.3) if that is later. The key joins the pool of the period
/// that time falls in.
pub fn eligible_at(key: &DiagnosisKey, now: u64) -> u64 {
    now.max(embargo::release_at(key))
}

/// What a key looks like on the wire apart from its TEK, with its day relative
/// to the period's day, so that a shape seen days ago still fits a new period.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Shape {
    days_back: u32,
    rolling_offset: u32,
    rolling_period: u32,
    transmission_risk: u8,
    days_since_onset: i8,
}

/// Templates for padding keys: the shapes of recently published real keys
/// (in memory; after a restart the prior below is used until real keys arrive).
#[derive(Debug, Default)]
pub struct Shapes(VecDeque<Shape>);

impl Shapes {
    /// Remembers the shapes of real keys published at `boundary`.
    pub fn learn(&mut self, keys: &[DiagnosisKey], boundary: u64) {
        let today = day_of_unix(boundary);
        for k in keys {
            let day = day_of_interval(k.rolling_start);
            self.0.push_back(Shape {
                days_back: today.saturating_sub(day),
                rolling_offset: k.rolling_start - day_start_interval(day),
                rolling_period: k.rolling_period,
                transmission_risk: k.transmission_risk,
                days_since_onset: k.days_since_onset,
            });
            if self.0.len() > SHAPES_KEPT {
                self.0.pop_front();
            }
        }
    }

    /// A whole-day key `days_back` days before the period's day, with the values
    /// a phone sends for an upload without symptom data (SPEC.md §5.1).
    fn prior(rng: &mut impl Rng) -> Shape {
        Shape {
            days_back: rng.gen_range(2..=13),
            rolling_offset: 0,
            rolling_period: 144,
            transmission_risk: 0,
            days_since_onset: 0,
        }
    }

    /// `count` padding keys for a period published at `boundary`: fresh random
    /// TEKs (they can match no phone) with shapes drawn from the real ones. A
    /// shape that would be embargoed or expired at `boundary` is redrawn, a few
    /// times, before the prior (which always fits) is used.
    pub fn padding(&self, count: usize, boundary: u64, rng: &mut impl Rng) -> Vec<DiagnosisKey> {
        let today = day_of_unix(boundary);
        let mut out = Vec::with_capacity(count);
        let mut misses = 0;
        while out.len() < count {
            let shape = if self.0.is_empty() || misses >= 16 {
                Self::prior(rng)
            } else {
                self.0[rng.gen_range(0..self.0.len())]
            };
            let mut tek = [0u8; 16];
            rng.fill(&mut tek);
            let key = today.checked_sub(shape.days_back).map(|day| DiagnosisKey {
                tek: Tek(tek),
                rolling_start: day_start_interval(day) + shape.rolling_offset,
                rolling_period: shape.rolling_period,
                transmission_risk: shape.transmission_risk,
                days_since_onset: shape.days_since_onset,
            });
            match key {
                Some(k) if k.expires_at() > boundary && !embargo::is_embargoed(&k, boundary) => {
                    out.push(k);
                    misses = 0;
                }
                _ => misses += 1,
            }
        }
        out
    }
}

/// How many padding keys a period with `real` keys gets: up to `k`, plus a
/// uniform 0..=k/10 more so that the total does not show whether the period
/// reached k on its own.
pub fn padding_count(real: usize, k: u64, rng: &mut impl Rng) -> usize {
    let k = usize::try_from(k).unwrap_or(usize::MAX);
    k.saturating_sub(real) + rng.gen_range(0..=k / 10)
}

/// The period batches of one period (SPEC.md §5.9): every key shuffled
/// together, cut into batches of at most [`MAX_BATCH_KEYS`] (one, below that),
/// numbered from `first_sequence`, all created at `boundary`. Each batch
/// splits its keys by day and sorts each day by TEK, so nothing of the
/// arrival order survives.
pub fn period_batches(
    origin: &str,
    mut keys: Vec<DiagnosisKey>,
    boundary: u64,
    first_sequence: u64,
    rng: &mut impl Rng,
) -> Vec<PeriodBatch> {
    keys.shuffle(rng);
    keys.chunks(MAX_BATCH_KEYS)
        .zip(first_sequence..)
        .map(|(chunk, sequence)| PeriodBatch::from_keys(origin, sequence, boundary, chunk.to_vec()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    #[test]
    fn boundaries() {
        let s = Schedule::new(3600);
        assert_eq!(s.boundary_at(7199), 3600);
        assert_eq!(s.boundary_at(7200), 7200);
        assert_eq!(s.publication_of(7199), 7200);
        assert_eq!(
            s.publication_of(7200),
            10_800,
            "a key at a boundary waits a period"
        );
    }

    #[test]
    fn padding_is_valid_at_the_boundary_and_mimics_real_shapes() {
        let mut rng = StdRng::seed_from_u64(1);
        let boundary = 1_700_000_000 / 3600 * 3600;
        let today = day_of_unix(boundary);
        let mut shapes = Shapes::default();
        let prior = shapes.padding(50, boundary, &mut rng);
        assert!(prior
            .iter()
            .all(|k| !embargo::is_embargoed(k, boundary) && k.expires_at() > boundary));
        let real: Vec<_> = (3..6)
            .map(|back| DiagnosisKey {
                tek: Tek([9; 16]),
                rolling_start: day_start_interval(today - back),
                rolling_period: 144,
                transmission_risk: 6,
                days_since_onset: -(back as i8),
            })
            .collect();
        shapes.learn(&real, boundary);
        let pad = shapes.padding(30, boundary, &mut rng);
        assert_eq!(pad.len(), 30);
        for k in &pad {
            assert_eq!(k.transmission_risk, 6);
            assert!(real
                .iter()
                .any(|r| r.rolling_start == k.rolling_start
                    && r.days_since_onset == k.days_since_onset));
            assert_ne!(k.tek, Tek([9; 16]));
        }
    }

    #[test]
    fn padding_counts() {
        let mut rng = StdRng::seed_from_u64(2);
        for _ in 0..100 {
            let n = padding_count(0, 140, &mut rng);
            assert!((140..=154).contains(&n));
            assert!(padding_count(500, 140, &mut rng) <= 14);
        }
        assert_eq!(padding_count(0, 1, &mut rng), 1);
        assert_eq!(padding_count(3, 0, &mut rng), 0);
    }
}

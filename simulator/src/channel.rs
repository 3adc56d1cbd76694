//! The Bluetooth channel: log-distance path loss, a per-encounter pocket/bag loss,
//! per-scan orientation and body noise, fast fading and a reception probability
//! per advertisement, and scans on the listener's own duty cycle (a window of a
//! few seconds every `scan_period_s`, as the phone OSes do). A scan reports the
//! strongest advertisement it received, as a host app batching scan results does. Attenuation-based risk scoring thus faces realistic
//! error: a phone 1.5 m away in a bag can look farther than one 3 m away on a table.

use rand::Rng;
use rand_distr::{Distribution, Normal};

use crate::mobility::Encounter;
use crate::population::PersonId;
use crate::scenario::Scenario;
use crate::seed::{mix, rng, Stream};

/// One received advertisement, as the listener's OS reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Scan {
    /// Seconds after midnight.
    pub at: u32,
    /// Attenuation (TX power - RSSI), dB.
    pub attenuation_db: u8,
}

/// Phase of `listener`'s scan cycle, seconds.
pub fn scan_phase(s: &Scenario, listener: PersonId) -> u32 {
    (mix(s.seed ^ u64::from(listener).wrapping_mul(0x9e37)) % u64::from(s.channel.scan_period_s))
        as u32
}

/// Mean attenuation at `distance_m`, dB.
pub fn path_loss_db(s: &Scenario, distance_m: f64) -> f64 {
    s.channel.loss_at_1m_db + 10.0 * s.channel.path_loss_exponent * distance_m.max(0.1).log10()
}

/// What `listener` receives of `speaker` during `e` on simulated day `d`.
pub fn scans(
    s: &Scenario,
    d: u32,
    e: &Encounter,
    listener: PersonId,
    speaker: PersonId,
) -> Vec<Scan> {
    let c = &s.channel;
    let period = c.scan_period_s;
    let phase = scan_phase(s, listener);
    // First scan at or after the start.
    let first = if e.start <= phase {
        phase
    } else {
        phase + (e.start - phase).div_ceil(period) * period
    };
    if first >= e.end() {
        return Vec::new();
    }
    let mut r = rng(
        s.seed,
        Stream::Scan,
        &[
            u64::from(d),
            u64::from(listener),
            u64::from(speaker),
            u64::from(e.start),
        ],
    );
    let pocket = if r.gen_bool(c.pocket_probability) {
        c.pocket_loss_db * r.gen_range(0.5..1.5)
    } else {
        0.0
    } + if r.gen_bool(c.pocket_probability) {
        c.pocket_loss_db * r.gen_range(0.5..1.5)
    } else {
        0.0
    };
    let mean = path_loss_db(s, f64::from(e.distance_m)) + pocket;
    let noise = Normal::new(0.0, c.noise_db.max(1e-6)).expect("positive sigma");
    let fast = Normal::new(0.0, c.fast_fading_db.max(1e-6)).expect("positive sigma");
    let adverts = ((c.scan_window_s * 1000.0) / f64::from(c.advertising_interval_ms))
        .floor()
        .max(1.0) as u32;
    let mut out = Vec::new();
    let mut t = first;
    while t < e.end() {
        let slow = mean + noise.sample(&mut r);
        let mut best: Option<f64> = None;
        for _ in 0..adverts {
            let a = slow + fast.sample(&mut r);
            // Reception falls off over the last 15 dB before the sensitivity limit.
            let margin = ((c.sensitivity_db - a) / 15.0).clamp(0.0, 1.0);
            if r.gen_bool((c.reception_probability * margin).clamp(0.0, 1.0)) {
                best = Some(best.map_or(a, |b: f64| b.min(a)));
            }
        }
        if let Some(a) = best {
            out.push(Scan {
                at: t,
                attenuation_db: a.round().clamp(0.0, 120.0) as u8,
            });
        }
        t += period;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mobility::Place;

    fn mean_attenuation(s: &Scenario, distance_m: f32) -> f64 {
        let mut total = 0.0;
        let mut n = 0.0;
        for start in 0..200u32 {
            let e = Encounter {
                a: 1,
                b: 2,
                start: start * 7,
                duration: 3600,
                distance_m,
                place: Place::Work(0),
            };
            for sc in scans(s, 0, &e, 1, 2) {
                total += f64::from(sc.attenuation_db);
                n += 1.0;
            }
        }
        total / n
    }

    #[test]
    fn farther_is_weaker_on_average_and_scans_follow_the_duty_cycle() {
        let s = Scenario::default();
        assert!(mean_attenuation(&s, 1.0) + 5.0 < mean_attenuation(&s, 4.0));
        let e = Encounter {
            a: 1,
            b: 2,
            start: 0,
            duration: 3600,
            distance_m: 1.0,
            place: Place::Work(0),
        };
        let got = scans(&s, 0, &e, 1, 2);
        assert!(got.len() <= 12, "one scan per 5 minutes at most");
        assert!(got.windows(2).all(|w| w[1].at - w[0].at >= 300));
        assert_eq!(got, scans(&s, 0, &e, 1, 2), "seeded");
    }
}

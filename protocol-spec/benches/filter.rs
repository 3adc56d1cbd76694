//! Filter-form rates on one core (SPEC.md §5.8), with a baseline from the same run:
//! the phone's probe of one observation (up to 25 entry hashes, each one SHA-256
//! compression tested against a day filter; fewer per observation when a token is
//! heard in several scans), the gateway's entry derivation and filter build, the
//! probe's building blocks alone (one SHA-256 compression; one entry hash through
//! the `Digest` API), and raw AES-128 blocks as the common baseline of the matcher
//! bench. Rates are per second of thread CPU time (`support/rate.rs`); the probe
//! and its SHA-256 baseline are timed round-robin in the same run (best of 10
//! slices of 0.1 s each, as the matcher bench does), so that both see the same
//! machine. The lines to watch: observations/s / compressions/s, and
//! observations/s x entries per observation / compressions/s, the share of the
//! probe's time spent in SHA-256. Also prints the size figures: bits per
//! entry against the Bloom optimum for the measured fill, and bytes per
//! published interval in filter form and key form.
//!
//! Run: `cargo bench -p traceless-protocol --bench filter`.

#![allow(missing_docs)]

#[path = "support/rate.rs"]
mod support;

use std::hint::black_box;

use aes::cipher::{BlockCipherEncrypt, KeyInit};
use rand::{Rng, SeedableRng};
use traceless_protocol::filter::*;
use traceless_protocol::*;

use support::{rate, Contest, Timer};

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    println!("traceless-protocol filter-form bench (one core)");
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let cipher = aes::Aes128::new(&[7u8; 16].into());
    let mut blocks = vec![aes::Block::default(); 1024];
    let aes = rate("baseline: raw AES-128 blocks", 1024, || {
        cipher.encrypt_blocks(black_box(&mut blocks));
    });
    let sha = rate(
        "baseline: entry hash via Digest (SHA-256 of 46 bytes)",
        1,
        || {
            black_box(FilterEntry::new(black_box(&Rpi([1; 16])), 7));
        },
    );

    let n = 200_000usize;
    let entries: Vec<FilterEntry> = (0..n).map(|_| FilterEntry(rng.gen())).collect();
    let build = rate("gateway: fold entries into a filter (200k)", n, || {
        black_box(EntryFilter::build(&entries, [3; 16]).expect("builds"));
    });
    let key = DiagnosisKey {
        tek: Tek([5; 16]),
        rolling_start: 2_900_000,
        rolling_period: 144,
        transmission_risk: 5,
        days_since_onset: 0,
    };
    let derive = rate(
        "gateway: derive entries of a full day (per entry)",
        144,
        || {
            black_box(filter_entries(&key, &IntervalMask::all(144)));
        },
    );

    let filter = EntryFilter::build(&entries, [3; 16]).expect("builds");
    let day = 20_000;
    let first = day_start_interval(day);
    let observations: Vec<Observation> = (0..10_000)
        .map(|i| Observation {
            rpi: Rpi(rng.gen()),
            interval: first + 12 + (i % 120),
            attenuation_db: 60,
            duration_s: 120,
        })
        .collect();
    let published = interval_start_seconds(first + 200);
    // The usual case: each token heard in 3 scans of consecutive intervals.
    let rescanned: Vec<Observation> = observations
        .chunks(3)
        .flat_map(|c| {
            c.iter().enumerate().map(|(k, o)| Observation {
                rpi: c[0].rpi,
                interval: c[0].interval + k as u32,
                ..*o
            })
        })
        .collect();
    // The probe and its SHA-256 baseline round-robin, as the matcher bench times
    // its figures: best of 10 slices of 0.1 s each, thread CPU time, so both see
    // the same machine conditions.
    #[allow(deprecated)] // sha2 0.10's compress256 takes generic-array 0.14 blocks.
    let block = sha2::digest::generic_array::GenericArray::clone_from_slice(&[0x5a; 64]);
    let mut state = [0x6a09_e667u32; 8];
    let mut c = Contest::default();
    let sha_slot = c.add(1_000, Timer::ThreadCpu, || {
        for _ in 0..1_000 {
            sha2::compress256(&mut state, std::slice::from_ref(&block));
        }
        black_box(&state);
    });
    let probe_slot = c.add(observations.len(), Timer::ThreadCpu, || {
        black_box(probe_filter(
            &filter,
            day,
            published,
            black_box(&observations),
        ));
    });
    let rescanned_slot = c.add(rescanned.len(), Timer::ThreadCpu, || {
        black_box(probe_filter(&filter, day, published, black_box(&rescanned)));
    });
    let r = c.run(10);
    let (compressions, probe) = (r[sha_slot], r[probe_slot]);
    println!(
        "  round-robin, best of 10 slices of 0.1 s (thread CPU time); load average {}",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    for (label, rate) in [
        (
            "baseline: SHA-256 compressions (sha2::compress256)",
            compressions,
        ),
        ("phone: probe observations, each token once", probe),
        (
            "phone: probe observations, tokens heard 3 times",
            r[rescanned_slot],
        ),
    ] {
        println!("  {label:<52} {rate:>12.0} /s");
    }

    let ones: u64 = filter
        .bitmap()
        .iter()
        .map(|b| u64::from(b.count_ones()))
        .sum();
    let fill = ones as f64 / (filter.bitmap().len() * 8) as f64;
    let epsilon = fill.powi(FILTER_HASHES as i32);
    let bits_per_entry = (filter.bitmap().len() * 8) as f64 / n as f64;
    let optimum = 1.0 / std::f64::consts::LN_2 * (1.0 / epsilon).log2();
    println!("ratios and sizes:");
    println!("  probe / raw AES block        {:>8.4}", probe / aes);
    println!("  probe / entry hash           {:>8.4}", probe / sha);
    println!(
        "  probe / SHA-256 compressions {:>8.4}  (observations/s per compression/s, same run)",
        probe / compressions
    );
    println!(
        "  3-scan probe / compressions  {:>8.4}",
        r[rescanned_slot] / compressions
    );
    // Each observation probes every interval within ±12 of it on the day: 25, fewer
    // at the day's edges.
    let per_observation: f64 = observations
        .iter()
        .map(|o| {
            let lo = o.interval.saturating_sub(12).max(first);
            let hi = (o.interval + 12).min(first + 143);
            f64::from(hi - lo + 1)
        })
        .sum::<f64>()
        / observations.len() as f64;
    println!(
        "  probe x {per_observation:.1} entries / compressions {:>8.4}  (1.0 = all probe time in SHA-256)",
        probe * per_observation / compressions
    );
    println!("  build / entry hash           {:>8.4}", build / sha);
    println!("  derive / entry hash          {:>8.4}", derive / sha);
    println!("  fill {fill:.4}, false-positive rate fill^40 = {epsilon:.2e}");
    println!(
        "  bits per entry {bits_per_entry:.2}, Bloom optimum 1.44*log2(1/eps) = {optimum:.2}, \
         information bound log2(1/eps) = {:.2}",
        (1.0 / epsilon).log2()
    );
    println!(
        "  bytes per published interval: filter form {:.2}, key form {:.3} (16.35 B per key / 144)",
        bits_per_entry / 8.0,
        16.35 / 144.0
    );
}

//! Matcher speed, with its baselines measured in the same run:
//! - `aes_blocks`: raw AES-128 throughput (144 blocks per key, one fixed key): the hardware ceiling;
//! - `derive_only`: TokenDeriver (HKDF + 144 RPIs per key), no probing;
//! - `fast`: the matcher, one core; `fast_parallel`: the matcher on all cores;
//! - `reference`: the straightforward matcher.
//!
//! Run: `cargo bench -p traceless-protocol --bench matcher`. The summary table at the
//! end prints keys/s of each and their ratios.

#![allow(missing_docs)] // criterion_group! generates an undocumented pub fn

use std::hint::black_box;
use std::time::{Duration, Instant};

use aes::cipher::{BlockCipherEncrypt, KeyInit};
use criterion::{criterion_group, Criterion, Throughput};
use rand::{Rng, RngCore, SeedableRng};
use traceless_protocol::*;

const OBSERVATIONS: usize = 20_000;
const KEYS: usize = 20_000;
const REFERENCE_KEYS: usize = 2_000;

struct Fixture {
    keys: Vec<DiagnosisKey>,
    observations: Vec<Observation>,
}

/// 20,000 published keys over 14 days; 20,000 observations, a few of them real.
fn fixture() -> Fixture {
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let first_day = 19_000;
    let keys: Vec<DiagnosisKey> = (0..KEYS)
        .map(|i| {
            let mut tek = [0u8; 16];
            rng.fill_bytes(&mut tek);
            DiagnosisKey {
                tek: Tek(tek),
                rolling_start: day_start_interval(first_day + (i % 14) as u32),
                rolling_period: 144,
                transmission_risk: 5,
                days_since_onset: 0,
            }
        })
        .collect();
    let mut observations: Vec<Observation> = (0..OBSERVATIONS)
        .map(|_| {
            let mut rpi = [0u8; 16];
            rng.fill_bytes(&mut rpi);
            Observation {
                rpi: Rpi(rpi),
                interval: day_start_interval(first_day + rng.gen_range(0..14))
                    + rng.gen_range(0..144),
                attenuation_db: rng.gen_range(40..80),
                duration_s: 300,
            }
        })
        .collect();
    for (n, key) in keys.iter().step_by(1000).enumerate() {
        let interval = key.rolling_start + 20;
        observations[n] = Observation {
            rpi: key.tek.rpik().rpi(interval),
            interval,
            attenuation_db: 50,
            duration_s: 300,
        };
    }
    Fixture { keys, observations }
}

fn aes_blocks(keys: &[DiagnosisKey]) {
    let cipher = aes::Aes128::new(&[7u8; 16].into());
    let input = [aes::Block::default(); MAX_TOKENS_PER_KEY];
    let mut out = [aes::Block::default(); MAX_TOKENS_PER_KEY];
    for _ in keys {
        cipher
            .encrypt_blocks_b2b(black_box(&input), &mut out)
            .expect("same length");
        black_box(&out);
    }
}

fn derive_only(keys: &[DiagnosisKey]) {
    let mut deriver = TokenDeriver::new();
    for k in keys {
        black_box(deriver.rpis(&k.tek, k.rolling_start, k.rolling_period));
    }
}

fn bench(c: &mut Criterion) {
    let f = fixture();
    let index = ObservationIndex::new(&f.observations);
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut g = c.benchmark_group("matcher");
    g.throughput(Throughput::Elements(KEYS as u64));
    g.bench_function("aes_blocks", |b| b.iter(|| aes_blocks(&f.keys)));
    g.bench_function("derive_only", |b| b.iter(|| derive_only(&f.keys)));
    g.bench_function("fast", |b| b.iter(|| match_keys(&index, &f.keys)));
    g.bench_function("fast_parallel", |b| {
        b.iter(|| match_keys_parallel(&index, &f.keys, threads))
    });
    g.throughput(Throughput::Elements(REFERENCE_KEYS as u64));
    g.bench_function("reference", |b| {
        b.iter(|| match_keys_reference(&f.observations, &f.keys[..REFERENCE_KEYS]))
    });
    g.finish();
}

/// Keys per second of `run` over `keys` keys: best of several ~1 s measurements.
fn rate(keys: usize, mut run: impl FnMut()) -> f64 {
    run();
    (0..5)
        .map(|_| {
            let start = Instant::now();
            let mut n = 0;
            while start.elapsed() < Duration::from_millis(300) {
                run();
                n += 1;
            }
            (n * keys) as f64 / start.elapsed().as_secs_f64()
        })
        .fold(0.0, f64::max)
}

fn summary() {
    let f = fixture();
    let index = ObservationIndex::new(&f.observations);
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    assert_eq!(
        match_keys(&index, &f.keys[..REFERENCE_KEYS]),
        match_keys_reference(&f.observations, &f.keys[..REFERENCE_KEYS]),
        "fast and reference matchers disagree"
    );
    let aes = rate(KEYS, || aes_blocks(&f.keys));
    let derive = rate(KEYS, || derive_only(&f.keys));
    let fast = rate(KEYS, || drop(black_box(match_keys(&index, &f.keys))));
    let parallel = rate(KEYS, || {
        drop(black_box(match_keys_parallel(&index, &f.keys, threads)))
    });
    let reference = rate(REFERENCE_KEYS, || {
        drop(black_box(match_keys_reference(
            &f.observations,
            &f.keys[..REFERENCE_KEYS],
        )))
    });
    println!("\nmatcher summary: {KEYS} keys, {OBSERVATIONS} observed tokens, {threads} threads");
    println!("{:<34} {:>12} {:>14}", "", "keys/s", "vs reference");
    for (name, r) in [
        ("raw AES-128, 144 blocks/key", aes),
        ("derivation only (HKDF + 144 RPIs)", derive),
        ("fast matcher, 1 core", fast),
        ("fast matcher, all cores", parallel),
        ("straightforward reference, 1 core", reference),
    ] {
        println!("{name:<34} {r:>12.0} {:>13.1}x", r / reference);
    }
    println!(
        "fast matcher = {:.0}% of derivation-only, {:.0}% of raw AES",
        100.0 * fast / derive,
        100.0 * fast / aes
    );
}

criterion_group!(benches, bench);

fn main() {
    if std::env::args().any(|a| a == "--summary-only") {
        summary();
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
    summary();
}

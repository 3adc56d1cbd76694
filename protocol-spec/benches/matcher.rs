//! Matcher speed against the hardware floor, every figure measured in the same run:
//! - the floor: the fewest primitives a key needs, at their best measured rate on
//!   this CPU: 6 SHA-256 compressions (HKDF with the zero-salt HMAC state cached,
//!   see `TokenDeriver::rpiks`) and 144 AES-128 blocks on the backend the `aes`
//!   crate selects (VAES-512 / VAES-256 / AES-NI / ARMv8 AES), without key schedule;
//! - `derive_only`: TokenDeriver (HKDF + 144 RPIs per key), no probing;
//! - `fast`: the matcher, one core; `fast_parallel`: the matcher on all cores;
//! - `reference`: the straightforward matcher.
//!
//! Run: `cargo bench -p traceless-protocol --bench matcher -- --summary-only`. The
//! summary prints keys/s of each, the ratios the matcher is held to (derivation
//! / floor ≥ 0.80, matcher / derivation ≥ 0.85, two cores / one ≥ 1.9), and the
//! levers behind them (HKDF lanes, AES batch width).

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
    TokenDeriver::new().for_each_key(keys, |_, rpis| {
        black_box(rpis);
    });
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

/// Units per second of `run` (`units` per call): best of five ~0.3 s measurements.
fn rate(units: usize, mut run: impl FnMut()) -> f64 {
    run();
    (0..5)
        .map(|_| {
            let start = Instant::now();
            let mut n = 0;
            while start.elapsed() < Duration::from_millis(300) {
                run();
                n += 1;
            }
            (n * units) as f64 / start.elapsed().as_secs_f64()
        })
        .fold(0.0, f64::max)
}

/// SHA-256 compressions per second: `N` independent states, one block each in turn
/// (N = 1 is one dependent chain), as `sha2::compress256` runs on this CPU.
#[allow(deprecated)] // sha2 0.10's compress256 takes generic-array 0.14 blocks.
fn sha256_rate<const N: usize>() -> f64 {
    use sha2::digest::generic_array::GenericArray;
    let block = GenericArray::clone_from_slice(&[0x5a; 64]);
    let mut states = [[0x6a09_e667u32; 8]; N];
    const ROUNDS: usize = 1_000;
    rate(ROUNDS * N, || {
        for _ in 0..ROUNDS {
            for state in &mut states {
                sha2::compress256(state, std::slice::from_ref(&block));
            }
        }
        black_box(&states);
    })
}

/// AES-128 blocks per second, `batch` blocks per `encrypt_blocks` call under one key.
fn aes_block_rate(batch: usize) -> f64 {
    let cipher = aes::Aes128::new(&[7u8; 16].into());
    let mut blocks = vec![aes::Block::default(); batch];
    let calls = 9_216 / batch;
    rate(calls * batch, || {
        for _ in 0..calls {
            cipher.encrypt_blocks(black_box(&mut blocks));
        }
    })
}

/// RPIKs per second, one key after another.
fn hkdf_rate(keys: &[DiagnosisKey]) -> f64 {
    let deriver = TokenDeriver::new();
    rate(keys.len(), || {
        for k in keys {
            black_box(deriver.rpik(&k.tek));
        }
    })
}

/// AES key schedules plus 144 blocks per second (the key schedule is not in the floor).
fn aes_with_schedule_rate(keys: &[DiagnosisKey]) -> f64 {
    let input = [aes::Block::default(); MAX_TOKENS_PER_KEY];
    let mut out = [aes::Block::default(); MAX_TOKENS_PER_KEY];
    rate(keys.len(), || {
        for k in keys {
            let cipher = aes::Aes128::new(&k.tek.0.into());
            cipher
                .encrypt_blocks_b2b(black_box(&input), &mut out)
                .expect("same length");
            black_box(&out);
        }
    })
}

/// Derivation one key after another, without the pipelining of `for_each_key`.
fn derive_one_by_one(keys: &[DiagnosisKey]) {
    let mut deriver = TokenDeriver::new();
    for k in keys {
        black_box(deriver.rpis(&k.tek, k.rolling_start, k.rolling_period));
    }
}

fn row(name: &str, r: f64, ratio: Option<(f64, &str)>) {
    match ratio {
        Some((x, of)) => println!("{name:<44} {r:>12.0} {x:>8.2} {of}"),
        None => println!("{name:<44} {r:>12.0}"),
    }
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
    let sha_chain = sha256_rate::<1>();
    let sha_lanes = sha256_rate::<4>();
    let sha = sha_chain.max(sha_lanes);
    let aes_144 = aes_block_rate(MAX_TOKENS_PER_KEY);
    let aes_wide = aes_block_rate(1_152);
    let aes = aes_144.max(aes_wide);
    let floor = 1.0 / (6.0 / sha + MAX_TOKENS_PER_KEY as f64 / aes);
    let hkdf = hkdf_rate(&f.keys);
    let aes_keys = aes_with_schedule_rate(&f.keys);
    let one_by_one = rate(KEYS, || derive_one_by_one(&f.keys));
    let derive = rate(KEYS, || derive_only(&f.keys));
    let fast = rate(KEYS, || drop(black_box(match_keys(&index, &f.keys))));
    let parallel = rate(KEYS, || {
        drop(black_box(match_keys_parallel(&index, &f.keys, threads)))
    });
    let big = big_observations(&f);
    let big_index = ObservationIndex::new(&big);
    let fast_big = rate(KEYS, || drop(black_box(match_keys(&big_index, &f.keys))));
    let reference = rate(REFERENCE_KEYS, || {
        drop(black_box(match_keys_reference(
            &f.observations,
            &f.keys[..REFERENCE_KEYS],
        )))
    });
    println!(
        "\nmatcher summary: {KEYS} keys over 14 days, {OBSERVATIONS} observed tokens, \
         {threads} threads, aes hardware: {}",
        aes::hardware_accelerated()
    );
    println!("{:<44} {:>12} {:>8}", "primitives", "per s", "ratio");
    row("SHA-256 compressions, one chain", sha_chain, None);
    row(
        "SHA-256 compressions, 4 states interleaved",
        sha_lanes,
        Some((sha_lanes / sha_chain, "x one chain")),
    );
    row("AES-128 blocks, 144 per call", aes_144, None);
    row(
        "AES-128 blocks, 1152 per call",
        aes_wide,
        Some((aes_wide / aes_144, "x 144 per call")),
    );
    println!("{:<44} {:>12} {:>8}", "keys", "keys/s", "ratio");
    row("floor: 6 compressions + 144 AES blocks", floor, None);
    row(
        "HKDF only (RPIK)",
        hkdf,
        Some((hkdf / (sha / 6.0), "of 6 compressions")),
    );
    row(
        "AES key schedule + 144 blocks",
        aes_keys,
        Some((aes_keys / (aes / 144.0), "of 144 blocks")),
    );
    row(
        "derivation, keys one by one",
        one_by_one,
        Some((one_by_one / floor, "of floor")),
    );
    row(
        "derivation, pipelined (HKDF + 144 RPIs)",
        derive,
        Some((derive / floor, "of floor (target 0.80)")),
    );
    row(
        "fast matcher, 1 core",
        fast,
        Some((fast / derive, "of derivation (target 0.85)")),
    );
    row(
        &format!("fast matcher, {threads} cores"),
        parallel,
        Some((parallel / fast, "x 1 core (target 1.9 on 2)")),
    );
    row(
        &format!("fast matcher, 1 core, {BIG_OBSERVATIONS} tokens"),
        fast_big,
        Some((fast_big / derive, "of derivation")),
    );
    row(
        "straightforward reference, 1 core",
        reference,
        Some((fast / reference, "fast 1 core / this")),
    );
}

const BIG_OBSERVATIONS: usize = 100_000;

/// The fixture's observations plus random tokens up to [`BIG_OBSERVATIONS`].
fn big_observations(f: &Fixture) -> Vec<Observation> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(8);
    let mut big = f.observations.clone();
    let first = f.keys[0].rolling_start;
    big.extend((f.observations.len()..BIG_OBSERVATIONS).map(|_| Observation {
        rpi: Rpi(rng.gen()),
        interval: first + rng.gen_range(0..14 * 144),
        attenuation_db: 60,
        duration_s: 300,
    }));
    big
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

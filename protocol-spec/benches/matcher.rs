//! Matcher speed against the hardware floor, every figure measured in the same run:
//! - the floor: the fewest primitives a key needs, each at its best measured rate
//!   on this CPU: 6 SHA-256 compressions (HKDF with the zero-salt HMAC state
//!   cached, see `TokenDeriver::rpik`; rate of 4 independent states), one AES-128
//!   encryption key schedule (a fresh RPIK per key; independent keys back to
//!   back) and 144 AES-128 blocks on the backend the `aes` crate selects
//!   (VAES-512 / VAES-256 / AES-NI / ARMv8 AES; rate at 1152 blocks per call).
//!   The floor without the key schedule (the previous definition) is printed too;
//! - the primitives on all threads at once against one (does the CPU scale?);
//! - `derive_only`: TokenDeriver (HKDF + 144 RPIs per key), no probing;
//! - `probe_only`: the matcher's probing alone (`ObservationIndex::probe` on RPIs
//!   derived beforehand), and the rate derivation then probing would reach if
//!   their costs simply added: the matcher's gap to derivation is this probing;
//! - `fast`: the matcher, one core; `fast_parallel`: the matcher on all cores;
//! - `reference`: the straightforward matcher.
//!
//! Run: `cargo bench -p traceless-protocol --bench matcher -- --summary-only`. The
//! summary prints keys/s of each, the ratios the matcher is held to (derivation
//! / floor ≥ 0.80, matcher / derivation ≥ 0.85, two cores / one ≥ 1.9), and the
//! levers behind them (HKDF lanes, AES batch width).

#![allow(missing_docs)] // criterion_group! generates an undocumented pub fn

#[path = "support/rate.rs"]
mod support;

use support::{Contest, Timer};

use std::hint::black_box;

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

/// What the matcher derives (`TokenDeriver::for_each_key`), without probing.
fn derive_only(keys: &[DiagnosisKey]) {
    let mut deriver = TokenDeriver::new();
    deriver.for_each_key(keys, |_, rpis| {
        black_box(rpis);
    });
}

/// One key at a time (`TokenDeriver::rpis`): no HKDF interleaving.
fn derive_one_by_one(keys: &[DiagnosisKey]) {
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

/// `N` independent SHA-256 states, 1,000 compressions each in turn (N = 1 is one
/// dependent chain), as `sha2::compress256` runs on this CPU: (compressions, run).
#[allow(deprecated)] // sha2 0.10's compress256 takes generic-array 0.14 blocks.
fn sha256_compressions<const N: usize>() -> (usize, impl FnMut()) {
    use sha2::digest::generic_array::GenericArray;
    let block = GenericArray::clone_from_slice(&[0x5a; 64]);
    let mut states = [[0x6a09_e667u32; 8]; N];
    const ROUNDS: usize = 1_000;
    (ROUNDS * N, move || {
        for _ in 0..ROUNDS {
            for state in &mut states {
                sha2::compress256(state, std::slice::from_ref(&block));
            }
        }
        black_box(&states);
    })
}

/// AES-128 blocks, `batch` per `encrypt_blocks` call under one key: (blocks, run).
fn aes_blocks_batched(batch: usize) -> (usize, impl FnMut()) {
    let cipher = aes::Aes128Enc::new(&[7u8; 16].into());
    let mut blocks = vec![aes::Block::default(); batch];
    let calls = 9_216 / batch;
    (calls * batch, move || {
        for _ in 0..calls {
            cipher.encrypt_blocks(black_box(&mut blocks));
        }
    })
}

/// AES-128 encryption key schedules of independent keys, back to back: (schedules, run).
fn aes_key_schedules() -> (usize, impl FnMut()) {
    let keys: Vec<[u8; 16]> = (0..1_024u32)
        .map(|i| std::array::from_fn(|b| (i as u8).wrapping_mul(b as u8 + 1)))
        .collect();
    (keys.len(), move || {
        for key in &keys {
            black_box(aes::Aes128Enc::new(&(*key).into()));
        }
    })
}

/// `run` (doing `units` per call) on `threads` scoped threads at once, 20 calls
/// each: (units, run), to be timed by wall clock.
fn on_threads<F: FnMut() + Send>(
    threads: usize,
    make: impl Fn() -> (usize, F) + Sync,
) -> (usize, impl FnMut()) {
    let units = make().0 * 20 * threads;
    (units, move || {
        std::thread::scope(|scope| {
            for _ in 0..threads {
                scope.spawn(|| {
                    let (_, mut run) = make();
                    for _ in 0..20 {
                        run();
                    }
                });
            }
        })
    })
}

/// RPIKs, one key after another.
fn hkdf_only(keys: &[DiagnosisKey]) {
    let mut deriver = TokenDeriver::new();
    for k in keys {
        black_box(deriver.rpik(&k.tek));
    }
}

/// RPIKs, [`HKDF_LANES`] keys interleaved.
fn hkdf_interleaved(keys: &[DiagnosisKey]) {
    let mut deriver = TokenDeriver::new();
    for group in keys.chunks_exact(HKDF_LANES) {
        black_box(deriver.rpiks(std::array::from_fn::<_, HKDF_LANES, _>(|l| &group[l].tek)));
    }
}

/// The matcher's probing alone: every key's 144 probes at its rolling start, keys in
/// rolling-start order as the matcher visits them, on RPIs derived beforehand (8
/// keys' worth, in L1 as the matcher's own are).
/// `generic`: through the generic probe loop (a mask and a bounds check per probe).
fn probe_only(
    index: &ObservationIndex<'_>,
    sorted_keys: &[DiagnosisKey],
    pool: &[Vec<aes::Block>],
    generic: bool,
) {
    let mut hits = Vec::new();
    for (k, key) in sorted_keys.iter().enumerate() {
        let rpis = &pool[k % pool.len()];
        if generic {
            index.probe_generic(rpis, key.rolling_start, &mut hits);
        } else {
            index.probe(rpis, key.rolling_start, &mut hits);
        }
        hits.clear();
    }
    black_box(&hits);
}

/// An AES key schedule (not part of the floor) and 144 blocks per key.
fn aes_with_schedule(keys: &[DiagnosisKey]) {
    let input = [aes::Block::default(); MAX_TOKENS_PER_KEY];
    let mut out = [aes::Block::default(); MAX_TOKENS_PER_KEY];
    for k in keys {
        let cipher = aes::Aes128Enc::new(&k.tek.0.into());
        cipher
            .encrypt_blocks_b2b(black_box(&input), &mut out)
            .expect("same length");
        black_box(&out);
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
    // Lever: tag tables of 8 slots per token (half the size, twice the passes).
    let index_8 = ObservationIndex::with_slots_per_token(&f.observations[..], 8);
    let big = big_observations(&f);
    let big_index = ObservationIndex::new(&big);
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    assert_eq!(
        match_keys(&index, &f.keys[..REFERENCE_KEYS]),
        match_keys_reference(&f.observations, &f.keys[..REFERENCE_KEYS]),
        "fast and reference matchers disagree"
    );
    let keys = &f.keys[..];
    let mut sorted_keys = f.keys.clone();
    sorted_keys.sort_by_key(|k| k.rolling_start);
    let mut deriver = TokenDeriver::new();
    let pool: Vec<Vec<aes::Block>> = keys[..8]
        .iter()
        .map(|k| deriver.rpis(&k.tek, k.rolling_start, 144).to_vec())
        .collect();
    let mut c = Contest::default();
    let (n, run) = sha256_compressions::<1>();
    let sha_chain = c.add(n, Timer::ThreadCpu, run);
    let (n, run) = sha256_compressions::<4>();
    let sha_lanes = c.add(n, Timer::ThreadCpu, run);
    let (n, run) = aes_blocks_batched(MAX_TOKENS_PER_KEY);
    let aes_144 = c.add(n, Timer::ThreadCpu, run);
    let (n, run) = aes_blocks_batched(1_152);
    let aes_wide = c.add(n, Timer::ThreadCpu, run);
    let (n, run) = aes_key_schedules();
    let schedules = c.add(n, Timer::ThreadCpu, run);
    let (n, run) = on_threads(threads, sha256_compressions::<4>);
    let sha_threads = c.add(n, Timer::Wall, run);
    let (n, run) = on_threads(threads, || aes_blocks_batched(1_152));
    let aes_threads = c.add(n, Timer::Wall, run);
    let hkdf = c.add(KEYS, Timer::ThreadCpu, || hkdf_only(keys));
    let hkdf_lanes = c.add(KEYS, Timer::ThreadCpu, || hkdf_interleaved(keys));
    let aes_keys = c.add(KEYS, Timer::ThreadCpu, || aes_with_schedule(keys));
    let derive = c.add(KEYS, Timer::ThreadCpu, || derive_only(keys));
    let derive_single = c.add(KEYS, Timer::ThreadCpu, || derive_one_by_one(keys));
    let probes = c.add(KEYS, Timer::ThreadCpu, || {
        probe_only(&index, &sorted_keys, &pool, false)
    });
    let fast = c.add(KEYS, Timer::ThreadCpu, || {
        drop(black_box(match_keys(&index, keys)))
    });
    let probes_generic = c.add(KEYS, Timer::ThreadCpu, || {
        probe_only(&index, &sorted_keys, &pool, true)
    });
    let probes_8 = c.add(KEYS, Timer::ThreadCpu, || {
        probe_only(&index_8, &sorted_keys, &pool, false)
    });
    let fast_8 = c.add(KEYS, Timer::ThreadCpu, || {
        drop(black_box(match_keys(&index_8, keys)))
    });
    let parallel = c.add(KEYS, Timer::Wall, || {
        drop(black_box(match_keys_parallel(&index, keys, threads)))
    });
    let fast_big = c.add(KEYS, Timer::ThreadCpu, || {
        drop(black_box(match_keys(&big_index, keys)))
    });
    let reference = c.add(REFERENCE_KEYS, Timer::ThreadCpu, || {
        drop(black_box(match_keys_reference(
            &f.observations,
            &keys[..REFERENCE_KEYS],
        )))
    });
    let r = c.run(10);
    let sha = r[sha_chain].max(r[sha_lanes]);
    let aes = r[aes_144].max(r[aes_wide]);
    let blocks_floor = 1.0 / (6.0 / sha + MAX_TOKENS_PER_KEY as f64 / aes);
    let floor = 1.0 / (6.0 / sha + 1.0 / r[schedules] + MAX_TOKENS_PER_KEY as f64 / aes);
    println!(
        "\nmatcher summary: {KEYS} keys over 14 days, {OBSERVATIONS} observed tokens, \
         {threads} threads, aes hardware: {}; best of 10 round-robin slices of 0.1 s \
         (thread CPU time; the {threads}-core run wall-clock); load average {}",
        aes::hardware_accelerated(),
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    println!("{:<44} {:>12} {:>8}", "primitives", "per s", "ratio");
    row("SHA-256 compressions, one chain", r[sha_chain], None);
    row(
        "SHA-256 compressions, 4 states interleaved",
        r[sha_lanes],
        Some((r[sha_lanes] / r[sha_chain], "x one chain")),
    );
    row("AES-128 blocks, 144 per call", r[aes_144], None);
    row(
        "AES-128 blocks, 1152 per call",
        r[aes_wide],
        Some((r[aes_wide] / r[aes_144], "x 144 per call")),
    );
    row("AES-128 key schedules (encryption)", r[schedules], None);
    row(
        &format!("SHA-256, 4 states, on {threads} threads"),
        r[sha_threads],
        Some((r[sha_threads] / r[sha_lanes], "x 1 thread")),
    );
    row(
        &format!("AES-128, 1152 per call, on {threads} threads"),
        r[aes_threads],
        Some((r[aes_threads] / r[aes_wide], "x 1 thread")),
    );
    println!("{:<44} {:>12} {:>8}", "keys", "keys/s", "ratio");
    row("floor: 6 compr. + key schedule + 144 blocks", floor, None);
    row(
        "  without the key schedule",
        blocks_floor,
        Some((blocks_floor / floor, "x floor")),
    );
    row(
        "HKDF only (RPIK)",
        r[hkdf],
        Some((r[hkdf] / (sha / 6.0), "of 6 compressions")),
    );
    row(
        &format!("HKDF, {HKDF_LANES} keys interleaved"),
        r[hkdf_lanes],
        Some((r[hkdf_lanes] / (sha / 6.0), "of 6 compressions")),
    );
    row(
        "AES key schedule + 144 blocks",
        r[aes_keys],
        Some((r[aes_keys] / (aes / 144.0), "of 144 blocks")),
    );
    row(
        "derivation (HKDF + 144 RPIs)",
        r[derive],
        Some((r[derive] / floor, "of floor (target 0.80)")),
    );
    row(
        "derivation, one key at a time",
        r[derive_single],
        Some((r[derive_single] / floor, "of floor")),
    );
    row(
        "probing only (144 probes per key)",
        r[probes],
        Some((r[probes] / r[derive], "x derivation")),
    );
    let both = 1.0 / (1.0 / r[derive] + 1.0 / r[probes]);
    row(
        "  derivation then probing, if costs add",
        both,
        Some((both / r[derive], "of derivation")),
    );
    row(
        "fast matcher, 1 core",
        r[fast],
        Some((r[fast] / r[derive], "of derivation (target 0.85)")),
    );
    row(
        "  lever: probing, one generic loop",
        r[probes_generic],
        Some((r[probes_generic] / r[probes], "x per-size loops (kept)")),
    );
    row(
        "  lever: probing, 8 tag slots per token",
        r[probes_8],
        Some((r[probes_8] / r[probes], "x 16 slots (kept)")),
    );
    row(
        "  lever: fast matcher, 8 tag slots per token",
        r[fast_8],
        Some((r[fast_8] / r[fast], "x 16 slots (kept)")),
    );
    row(
        &format!("fast matcher, {threads} cores"),
        r[parallel],
        Some((r[parallel] / r[fast], "x 1 core (target 1.9 on 2)")),
    );
    // What the primitives alone allow on all cores: the floor's SHA-256 share
    // scaled as SHA-256 scales, its AES share (blocks and schedule) as AES does.
    let sha_share = 6.0 / sha;
    let aes_share = 1.0 / r[schedules] + MAX_TOKENS_PER_KEY as f64 / aes;
    let ceiling = (sha_share + aes_share)
        / (sha_share / (r[sha_threads] / r[sha_lanes])
            + aes_share / (r[aes_threads] / r[aes_wide]));
    row(
        &format!("  ceiling: the floor on {threads} cores"),
        floor * ceiling,
        Some((ceiling, "x 1 core: what the primitives allow")),
    );
    row(
        &format!("  fast matcher, {threads} cores / 1, against that"),
        r[parallel],
        Some((r[parallel] / r[fast] / ceiling, "of the ceiling's ratio")),
    );
    row(
        &format!("fast matcher, 1 core, {BIG_OBSERVATIONS} tokens"),
        r[fast_big],
        Some((r[fast_big] / r[derive], "of derivation")),
    );
    row(
        "straightforward reference, 1 core",
        r[reference],
        Some((r[fast] / r[reference], "fast 1 core / this")),
    );
}

const BIG_OBSERVATIONS: usize = 100_000;

/// The fixture's observations plus random tokens up to [`BIG_OBSERVATIONS`].
fn big_observations(f: &Fixture) -> Vec<Observation> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(8);
    let mut big = f.observations.clone();
    let first = f.keys[0].rolling_start;
    big.extend(
        (f.observations.len()..BIG_OBSERVATIONS).map(|_| Observation {
            rpi: Rpi(rng.gen()),
            interval: first + rng.gen_range(0..14 * 144),
            attenuation_db: 60,
            duration_s: 300,
        }),
    );
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

//! Bytes a phone downloads per day in key form, version 1 day batches (SPEC.md
//! §5.3) against version 2 period batches (§5.9), both in one gzip-encoded
//! `BatchList` per day as a node serves them (§6.1; gzip at its fastest level,
//! as the node's compression layer), over the payload floor of 16 bytes per
//! published key. The same keys in both forms: each period holds the uploads
//! of `uploads` patients (onset 1–5 days back, keys from two days before onset
//! to yesterday, metadata as the SDK sets it), signed with an export key,
//! and in the last rows padded as a gateway pads each period (SPEC.md §6.4;
//! the floor then counts the padding keys, which phones download too).
//! HTTP heads are not counted (the simulator counts them).
//!
//! Run: `cargo bench -p traceless-protocol --bench batch_size`.

#![allow(missing_docs)]

use std::io::Write;

use p256::ecdsa::SigningKey as ExportSigningKey;
use rand::{Rng, SeedableRng};
use traceless_protocol::wire::Publication;
use traceless_protocol::*;

const NOW: u64 = 1_750_000_000;
const ORIGIN: &str = "bench.health";

fn gzip_len(bytes: &[u8]) -> usize {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).expect("in memory");
    e.finish().expect("in memory").len()
}

fn period_keys(rng: &mut impl Rng, uploads: usize, today: u32) -> Vec<DiagnosisKey> {
    let mut keys = Vec::new();
    for _ in 0..uploads {
        let onset = today - rng.gen_range(1..=5);
        for day in (onset - 2).max(today - 13)..today {
            let dso = (i64::from(day) - i64::from(onset)) as i8;
            keys.push(DiagnosisKey {
                tek: Tek(rng.gen()),
                rolling_start: day_start_interval(day),
                rolling_period: 144,
                transmission_risk: transmission_risk(i32::from(dso)),
                days_since_onset: dso,
            });
        }
    }
    keys
}

/// SPEC.md §6.4's padding to `k`: `max(0, k - real) + 0..=k/10` fresh TEKs,
/// each with the metadata of a random real key of the period (before any: a
/// whole-day key 2-13 days back, risk 0, onset 0).
fn pad(rng: &mut impl Rng, keys: &mut Vec<DiagnosisKey>, k: usize, today: u32) {
    if k == 0 {
        return;
    }
    let real = keys.len();
    let extra = k.saturating_sub(real) + rng.gen_range(0..=k / 10);
    for _ in 0..extra {
        let mut key = match real {
            0 => DiagnosisKey {
                tek: Tek([0; 16]),
                rolling_start: day_start_interval(today - rng.gen_range(2..=13)),
                rolling_period: 144,
                transmission_risk: 0,
                days_since_onset: 0,
            },
            n => keys[rng.gen_range(0..n)].clone(),
        };
        key.tek = Tek(rng.gen());
        keys.push(key);
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let authority = AuthorityKey {
        origin: ORIGIN.into(),
        key_id: 1,
        signing_key: ed25519_dalek::SigningKey::from_bytes(&[3; 32]),
    };
    let export_key = ExportSigningKey::from_slice(&[5; 32]).expect("fixed key");
    let certificate = ExportKeyCertificate {
        origin: ORIGIN.into(),
        signer: ExportSigner {
            key_id: "262".into(),
            key_version: "v1".into(),
        },
        region: "XX".into(),
        public_key: *export_key.verifying_key(),
        not_before: 0,
        not_after: u64::MAX,
    }
    .sign(&authority)
    .expect("origin matches");
    let publication = Publication {
        export: Some((&certificate, &export_key)),
        risk_config: None,
    };
    println!(
        "traceless-protocol batch sizes: key form per phone per day over the floor (16 B per key)"
    );
    println!(
        "{:>8} {:>8} {:>4} {:>11} {:>10} {:>14} {:>14} {:>8}",
        "periods", "uploads", "k", "keys/day", "floor B", "v1 day batches", "v2 periods", "v2/v1"
    );
    // (periods a day, uploads a period, padding k): the last rows pad every
    // hourly period to the default k = 140 (SPEC.md §6.4).
    for (periods, uploads, k) in [
        (1, 1, 0),
        (1, 3, 0),
        (24, 1, 0),
        (4, 10, 0),
        (4, 25, 0),
        (24, 10, 0),
        (24, 50, 0),
        (24, 0, 140),
        (24, 1, 140),
        (24, 5, 140),
    ] {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let (mut v1, mut v2, mut floor) = (0usize, 0usize, 0usize);
        let days = 7;
        let (mut seq1, mut seq2) = (1u64, 1u64);
        for d in 0..days {
            let today = day_of_unix(NOW) - days + d;
            let (mut list1, mut list2) = (BatchList::default(), BatchList::default());
            for p in 0..periods {
                let created_at = u64::from(today) * 86_400 + p * (86_400 / periods);
                let mut keys = period_keys(&mut rng, uploads, today);
                pad(&mut rng, &mut keys, k, today);
                floor += 16 * keys.len();
                let period = PeriodBatch::from_keys(ORIGIN, seq2, created_at, keys);
                seq2 += 1;
                for day in &period.days {
                    let mut b = day.as_batch(&period);
                    b.sequence = seq1;
                    seq1 += 1;
                    let signed = b.sign_with(&authority, publication).expect("signs");
                    list1.batches.push(signed.encode());
                }
                let signed = period.sign_with(&authority, publication).expect("signs");
                list2
                    .batches
                    .push(signed.without_export_signatures().encode());
            }
            v1 += gzip_len(&list1.encode());
            v2 += gzip_len(&list2.encode());
        }
        let per_day = |b: usize| b as f64 / f64::from(days);
        println!(
            "{periods:>8} {uploads:>8} {k:>4} {:>11.0} {:>10.0} {:>13.2}x {:>13.2}x {:>8.2}",
            per_day(floor) / 16.0,
            per_day(floor),
            v1 as f64 / floor as f64,
            v2 as f64 / floor as f64,
            v2 as f64 / v1 as f64
        );
    }
}

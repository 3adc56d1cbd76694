//! Venue check-in costs on one core (SPEC.md §12), next to a baseline from the
//! same run (Ed25519 verification): a check-in of one hour (one IBE encryption),
//! the owner's pre-trace key and the authority's completion per hour, matching
//! per (record × published key) when the key does not open the record (the
//! common case: one pairing) and when it does, and the download a phone makes
//! per day at 200 traced venues a day.
//!
//! Run: `cargo bench -p traceless-protocol --bench venue`.

#![allow(missing_docs)]

#[path = "support/rate.rs"]
mod support;

use std::hint::black_box;

use traceless_protocol::ed25519_dalek::Signer;
use traceless_protocol::venue::*;
use traceless_protocol::*;

use ark_bls12_381::{Bls12_381, G1Affine, G2Affine};
use ark_ec::pairing::Pairing;
use ark_ec::AffineRepr;
use support::rate;

const DAY: u64 = 20_000 * 86_400;

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    println!("traceless-protocol venue bench (one core)");
    let authority = AuthorityKey::generate("bench.health", 1);
    let msg = [7u8; 64];
    let sig = authority.signing_key.sign(&msg);
    let public = authority.verifying_key();
    let baseline = rate("baseline: Ed25519 verify", 1, || {
        assert!(public.verify_strict(black_box(&msg), &sig).is_ok());
    });
    let (g1, g2) = (G1Affine::generator(), G2Affine::generator());
    let pairing = rate("baseline: one BLS12-381 pairing (arkworks)", 1, || {
        let _ = black_box(Bls12_381::pairing(black_box(g1), black_box(g2)));
    });
    let ha = GatewaySealKey::generate();
    let venue = VenueDescription::new("Bakery", "Main St 1, Town", 1, 30, 120);
    let created = create_venue(&venue, &ha.public_bytes()).expect("venue");
    let (a, d) = (DAY + 10 * 3600 + 300, DAY + 10 * 3600 + 3000);
    let scan = rate("phone: check-in, one hour (parse + IBE encrypt)", 1, || {
        let url = created.entry.to_url("https://x.example/c");
        let entry = EntryCode::from_url(&url).expect("entry");
        black_box(seal_visit(&entry, a, d));
    });
    let now = DAY + 86_400;
    let pre_rate = rate("owner: pre-trace key (per hour)", 1, || {
        black_box(
            created
                .trace_secret
                .pre_trace(DAY + 36_000, DAY + 39_600, now)
                .expect("pre"),
        );
    });
    let pre = created
        .trace_secret
        .pre_trace(DAY + 36_000, DAY + 39_600, now)
        .expect("pre");
    let complete = rate("authority: complete + check (per hour)", 1, || {
        black_box(complete_trace(&pre, &ha, "Get tested", 5, now).expect("trace"));
    });
    let traced = complete_trace(&pre, &ha, "Get tested", 5, now).expect("trace");
    let records = seal_visit(&created.entry, a, d);
    let other = create_venue(&venue, &ha.public_bytes()).expect("venue");
    let other_pre = other
        .trace_secret
        .pre_trace(DAY + 36_000, DAY + 39_600, now)
        .expect("pre");
    let miss_warnings = complete_trace(&other_pre, &ha, "m", 5, now)
        .expect("trace")
        .warnings;
    let miss = rate(
        "phone: match, key does not open record (per record x key)",
        1,
        || {
            assert!(match_records(black_box(&records), &miss_warnings).is_empty());
        },
    );
    let hit = rate("phone: match, key opens record", 1, || {
        assert_eq!(
            match_records(black_box(&records), &traced.warnings).len(),
            1
        );
    });
    println!(
        "  cost in Ed25519 verifications: check-in {:.2}, pre-trace {:.2}, completion {:.2}, miss {:.2}, hit {:.2}",
        baseline / scan,
        baseline / pre_rate,
        baseline / complete,
        baseline / miss,
        baseline / hit
    );
    println!(
        "  cost in pairings: check-in {:.2}, pre-trace {:.2}, completion {:.2}, miss {:.2}, hit {:.2}",
        pairing / scan,
        pairing / pre_rate,
        pairing / complete,
        pairing / miss,
        pairing / hit
    );
    // Download: 200 traced venues a day, each traced for 3 hours = 600 warnings.
    let mut warnings = Vec::new();
    for _ in 0..200 {
        let v = create_venue(&venue, &ha.public_bytes()).expect("venue");
        let p = v
            .trace_secret
            .pre_trace(DAY + 36_000, DAY + 46_800, now)
            .expect("pre");
        warnings.extend(
            complete_trace(&p, &ha, "Please get tested and watch for symptoms", 5, now)
                .expect("trace")
                .warnings,
        );
    }
    let n = warnings.len();
    let batch = WarningBatch {
        origin: "bench.health".into(),
        sequence: 1,
        created_at: now,
        warnings,
    };
    let bytes = batch.sign(&authority).expect("sign").encode().len();
    println!(
        "  download: 200 venues x 3 h = {n} warnings, {bytes} bytes signed ({:.1} B per warning; CrowdNotifier's estimate 80 B/record)",
        bytes as f64 / n as f64
    );
    println!(
        "  phone matching at 5 records/day against {n} warnings: {} pairings, {:.2} s on this core",
        5 * n,
        5.0 * n as f64 / miss
    );
}

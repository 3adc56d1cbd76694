//! Filter-form vectors (`vectors/filter-v2.json`, SPEC.md §5.8). Entries and bit
//! positions are recomputed here from the SPEC text alone (SHA-256 and SipHash-1-3
//! straight from their crates, the position formula written out below), and the
//! crate's `EntryFilter`, which sits on the `bloomfilter` crate, must produce the
//! same bitmap bit for bit. A `bloomfilter` release that changes its hashing fails
//! here. `TRACELESS_WRITE_VECTORS=1` rewrites the file (only for a new version).

#![allow(clippy::unwrap_used)]

use std::hash::Hasher;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use siphasher::sip::SipHasher13;
use traceless_protocol::filter::*;
use traceless_protocol::*;

const PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/vectors/filter-v2.json");

fn key() -> DiagnosisKey {
    DiagnosisKey {
        tek: Tek(std::array::from_fn(|b| 0xa0 ^ b as u8)),
        rolling_start: day_start_interval(20_300),
        rolling_period: 144,
        transmission_risk: 5,
        days_since_onset: 0,
    }
}

fn seed() -> [u8; 16] {
    std::array::from_fn(|b| (b as u8).wrapping_mul(29).wrapping_add(3))
}

/// Chosen offsets: a morning, a lunch, an evening, with gaps the patient removed.
fn mask() -> IntervalMask {
    let mut m = IntervalMask::default();
    for j in (48..60).chain(72..75).chain(110..130) {
        m.set(j, true);
    }
    m
}

/// SPEC.md §5.8: SHA-256(context || 0x00 || RPI || LE32(i))[0..16].
fn spec_entry(rpi: &[u8; 16], interval: u32) -> [u8; 16] {
    let mut h = Sha256::new();
    h.update(b"traceless/v1/filter-entry");
    h.update([0]);
    h.update(rpi);
    h.update(interval.to_le_bytes());
    h.finalize()[..16].try_into().unwrap()
}

/// SPEC.md §5.8: position_t = SipHash-1-3(seed, e || t) mod m.
fn spec_positions(entry: &[u8; 16], seed: &[u8; 16], m: u64) -> Vec<u64> {
    (0..FILTER_HASHES as u8)
        .map(|t| {
            let mut s = SipHasher13::new_with_key(seed);
            s.write(entry);
            s.write(&[t]);
            s.finish() % m
        })
        .collect()
}

fn compute() -> Value {
    let key = key();
    let rpik = key.tek.rpik();
    let entries: Vec<(u32, [u8; 16], [u8; 16])> = mask()
        .offsets()
        .map(|j| {
            let i = key.rolling_start + j;
            let rpi = rpik.rpi(i).0;
            (i, rpi, spec_entry(&rpi, i))
        })
        .collect();
    let n = entries.len() as u64;
    let m_bytes = (n * 70).div_ceil(8);
    let mut bitmap = vec![0u8; m_bytes as usize];
    for (_, _, e) in &entries {
        for p in spec_positions(e, &seed(), m_bytes * 8) {
            bitmap[(p / 8) as usize] |= 1 << (p % 8);
        }
    }
    json!({
        "source": "SPEC.md §5.8, computed from its text",
        "tek": hex::encode(key.tek.0),
        "rolling_start_interval_number": key.rolling_start,
        "rolling_period": key.rolling_period,
        "mask": hex::encode(mask().0),
        "entries": entries.iter().map(|(i, rpi, e)| json!({
            "interval": i, "rpi": hex::encode(rpi), "entry": hex::encode(e),
        })).collect::<Vec<_>>(),
        "seed": hex::encode(seed()),
        "hashes": FILTER_HASHES,
        "bitmap_len": m_bytes,
        "first_entry_positions": spec_positions(&entries[0].2, &seed(), m_bytes * 8),
        "bitmap_sha256": hex::encode(Sha256::digest(&bitmap)),
        "bitmap": hex::encode(&bitmap),
    })
}

#[test]
fn filter_vectors_match_the_spec_and_the_crate() {
    let expected = compute();
    if std::env::var_os("TRACELESS_WRITE_VECTORS").is_some() {
        std::fs::write(
            PATH,
            serde_json::to_string_pretty(&expected).unwrap() + "\n",
        )
        .unwrap();
    }
    let file: Value = serde_json::from_str(&std::fs::read_to_string(PATH).unwrap()).unwrap();
    // The SPEC recomputation agrees with the committed file...
    assert_eq!(
        file, expected,
        "vectors/filter-v2.json differs from SPEC.md §5.8"
    );

    // ...and so does the crate: entries through filter_entries, bitmap through the
    // bloomfilter crate.
    let got = filter_entries(&key(), &mask());
    let want = file["entries"].as_array().unwrap();
    assert_eq!(got.len(), want.len());
    for ((i, e), w) in got.iter().zip(want) {
        assert_eq!(u64::from(*i), w["interval"].as_u64().unwrap());
        assert_eq!(hex::encode(e.0), w["entry"].as_str().unwrap());
    }
    let entries: Vec<FilterEntry> = got.iter().map(|(_, e)| *e).collect();
    let filter = EntryFilter::build(&entries, seed()).unwrap();
    assert_eq!(
        hex::encode(filter.bitmap()),
        file["bitmap"].as_str().unwrap()
    );
    assert!(entries.iter().all(|e| filter.contains(e)));
}

#[test]
fn a_filter_decoded_from_its_wire_parts_answers_like_the_spec() {
    let file: Value = serde_json::from_str(&std::fs::read_to_string(PATH).unwrap()).unwrap();
    let bitmap = hex::decode(file["bitmap"].as_str().unwrap()).unwrap();
    let n = file["entries"].as_array().unwrap().len() as u64;
    let filter = EntryFilter::from_parts(n, FILTER_HASHES, &seed(), &bitmap).unwrap();
    // A probe is a hit iff every SPEC position is set: check 20,000 non-members.
    let m = bitmap.len() as u64 * 8;
    for x in 0..20_000u32 {
        let e = spec_entry(&[7; 16], x);
        let spec_hit = spec_positions(&e, &seed(), m)
            .iter()
            .all(|p| bitmap[(p / 8) as usize] & (1 << (p % 8)) != 0);
        assert_eq!(filter.contains(&FilterEntry(e)), spec_hit);
    }
}

//! The period batch vectors (`vectors/period-batch-v2.json`, SPEC.md §5.9):
//! fixed keys and the exact bytes a conformant implementation produces for
//! them. This test checks the crate against the file; with
//! `TRACELESS_WRITE_VECTORS=1` it (re)writes the file instead, which is only
//! ever done on purpose.

use serde_json::{json, Value};
use traceless_protocol::wire::Publication;
use traceless_protocol::*;

mod common;

const PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/vectors/period-batch-v2.json");
const NOW: u64 = 1_750_000_000;
const ORIGIN: &str = "example.health";
const AUTHORITY_SEED: [u8; 32] = [0x42; 32];
/// The secret of `common::export_certificate`'s export key.
const EXPORT_SECRET: [u8; 32] = [0x05; 32];

fn authority() -> AuthorityKey {
    AuthorityKey {
        origin: ORIGIN.into(),
        key_id: 7,
        signing_key: ed25519_dalek::SigningKey::from_bytes(&AUTHORITY_SEED),
    }
}

/// Keys of three days: the oldest two with the table's risk levels, one day
/// with a level set otherwise and a key valid for part of the day.
fn keys() -> Vec<DiagnosisKey> {
    let today = day_of_unix(NOW);
    let key = |i: u8, day: u32, dso: i8, risk: u8| DiagnosisKey {
        tek: Tek(std::array::from_fn(|b| {
            i.wrapping_mul(29).wrapping_add(b as u8)
        })),
        rolling_start: day_start_interval(day),
        rolling_period: 144,
        transmission_risk: risk,
        days_since_onset: dso,
    };
    let mut partial = key(5, today - 1, 2, 6);
    partial.rolling_start += 12;
    partial.rolling_period = 100;
    vec![
        key(0, today - 9, -2, 6),
        key(1, today - 9, -1, 6),
        key(2, today - 5, 2, 6),
        key(3, today - 1, 6, 0),
        key(4, today - 1, 6, 4),
        partial,
    ]
}

fn signed() -> SignedPeriodBatch {
    let (certificate, export_key) =
        common::export_certificate(&authority(), NOW - 86_400, NOW + 365 * 86_400);
    PeriodBatch::from_keys(ORIGIN, 1, NOW, keys())
        .sign_with(
            &authority(),
            Publication {
                export: Some((&certificate, &export_key)),
                risk_config: None,
            },
        )
        .expect("signs")
}

fn trust() -> TrustList {
    let mut trust = TrustList::new();
    trust.insert(ORIGIN, 7, authority().verifying_key());
    trust
}

fn compute() -> Value {
    let full = signed();
    let oldest = full.verify(&trust(), NOW).expect("verifies").days[0].expires_at();
    let pruned = full
        .pruned_at(oldest + 1)
        .expect("decodes")
        .expect("two days left");
    json!({
        "description": "Traceless period batch (version 2) vectors; see SPEC.md §5.9. All byte strings hex.",
        "now": NOW,
        "authority": {
            "origin": ORIGIN,
            "key_id": 7,
            "seed": hex::encode(AUTHORITY_SEED),
            "public_key": hex::encode(authority().verifying_key().to_bytes()),
        },
        "export_secret_key": hex::encode(EXPORT_SECRET),
        "keys": keys().iter().map(|k| json!({
            "key_data": hex::encode(k.tek.0),
            "rolling_start_interval_number": k.rolling_start,
            "rolling_period": k.rolling_period,
            "transmission_risk_level": k.transmission_risk,
            "days_since_onset_of_symptoms": k.days_since_onset,
        })).collect::<Vec<_>>(),
        "day_keys": full.days.iter().map(|d| hex::encode(&d.keys)).collect::<Vec<_>>(),
        "header": hex::encode(&full.header),
        "signed": hex::encode(full.encode()),
        "without_export_signatures": hex::encode(full.without_export_signatures().encode()),
        "pruned_at": oldest + 1,
        "pruned": hex::encode(pruned.encode()),
        "id": hex::encode(full.id()),
    })
}

#[test]
fn crate_reproduces_the_published_period_batch_vectors() {
    let computed = compute();
    if std::env::var_os("TRACELESS_WRITE_VECTORS").is_some() {
        let text = serde_json::to_string_pretty(&computed).expect("serializes") + "\n";
        std::fs::write(PATH, text).expect("vectors written");
        return;
    }
    let published: Value =
        serde_json::from_str(&std::fs::read_to_string(PATH).expect("vectors file exists"))
            .expect("vectors parse");
    assert_eq!(computed, published, "output differs from {PATH}");
}

#[test]
fn published_period_batches_decode_and_verify() {
    let v: Value =
        serde_json::from_str(&std::fs::read_to_string(PATH).expect("vectors file exists"))
            .expect("vectors parse");
    let bytes = |name: &str| hex::decode(v[name].as_str().expect("hex")).expect("hex");
    let at = v["pruned_at"].as_u64().expect("number");
    for (name, now, days) in [
        ("signed", NOW, 3),
        ("without_export_signatures", NOW, 3),
        ("pruned", at, 2),
    ] {
        let b = SignedPeriodBatch::decode(&bytes(name)).expect("decodes");
        assert_eq!(
            hex::encode(b.id()),
            v["id"].as_str().expect("hex"),
            "{name}"
        );
        assert_eq!(
            b.verify(&trust(), now).expect("verifies").days.len(),
            days,
            "{name}"
        );
    }
    SignedPeriodBatch::decode(&bytes("signed"))
        .expect("decodes")
        .verify_with_attachments(&trust(), NOW)
        .expect("export signatures verify");
}

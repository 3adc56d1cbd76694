//! Traceless's own test vectors (`vectors/traceless-v1.json`): fixed inputs and the
//! exact bytes a conformant implementation must produce for them. This test checks
//! the crate against the file; with `TRACELESS_WRITE_VECTORS=1` it (re)writes the
//! file instead, which is only ever done on purpose, for a new protocol version.

use serde_json::{json, Value};
use traceless_protocol::wire::*;
use traceless_protocol::*;

const PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/vectors/traceless-v1.json");
const NOW: u64 = 1_750_000_000;
const DAY: u32 = 20_252; // day_of_unix(NOW) - 1

fn tek(i: u8) -> Tek {
    Tek(std::array::from_fn(|b| {
        i.wrapping_mul(17).wrapping_add(b as u8)
    }))
}

fn keys() -> Vec<DiagnosisKey> {
    (0..6u8)
        .map(|i| DiagnosisKey {
            tek: tek(i),
            rolling_start: day_start_interval(DAY),
            rolling_period: 144,
            transmission_risk: 3 + i % 3,
            days_since_onset: i as i8 % 2 - 1,
        })
        .collect()
}

fn key_json(k: &DiagnosisKey) -> Value {
    json!({
        "key_data": hex::encode(k.tek.0),
        "rolling_start_interval_number": k.rolling_start,
        "rolling_period": k.rolling_period,
        "transmission_risk_level": k.transmission_risk,
        "days_since_onset_of_symptoms": k.days_since_onset,
    })
}

fn compute() -> Value {
    // Batch signed by a fixed authority key.
    let seed = [0x42u8; 32];
    let authority = AuthorityKey {
        origin: "example.health".into(),
        key_id: 7,
        signing_key: ed25519_dalek::SigningKey::from_bytes(&seed),
    };
    let batch = Batch {
        origin: "example.health".into(),
        sequence: 1,
        created_at: NOW,
        day: DAY,
        keys: keys(),
    };
    let signed = batch.clone().sign(&authority).expect("origin matches");

    // Upload request.
    let upload = Upload {
        upload_code: b"CODE-1234".to_vec(),
        token: None,
        keys: keys()[..2].to_vec(),
        dummy: false,
        filter_intervals: Vec::new(),
        stays: Default::default(),
    };

    // Deletion log of two entries by a fixed node key.
    let node = ed25519_dalek::SigningKey::from_bytes(&[0x24; 32]);
    let node_id = node.verifying_key().to_bytes();
    let first = DeletionRecord {
        index: 0,
        previous_hash: DeletionRecord::GENESIS_HASH,
        deleted_at: NOW,
        node_id,
        deleted: vec![DeletedRange {
            origin: "example.health".into(),
            first_sequence: 1,
            last_sequence: 3,
            key_count: 1234,
            day: DAY - 15,
        }],
    }
    .sign(&node)
    .expect("node key matches");
    let second = DeletionRecord {
        index: 1,
        previous_hash: first.hash(),
        deleted_at: NOW + 3600,
        node_id,
        deleted: vec![],
    }
    .sign(&node)
    .expect("node key matches");

    // Matching: tokens of key 0 heard at the edges of the drift tolerance.
    let k = keys()[0].clone();
    let t = k.rolling_start + 30;
    let rpi = k.tek.rpik().rpi(t);
    let observations: Vec<Observation> = [(t - 12, 50u8), (t + 12, 58), (t + 13, 50), (t - 13, 50)]
        .iter()
        .map(|&(interval, attenuation_db)| Observation {
            rpi,
            interval,
            attenuation_db,
            duration_s: 600,
        })
        .collect();
    let published = keys();
    let matches = match_keys(&ObservationIndex::new(&observations), &published);
    let windows = exposure_windows(&published, &observations, &matches);
    let days = RiskParameters::default().daily_summaries(&windows);

    json!({
        "description": "Traceless protocol v1 vectors; see SPEC.md. All byte strings hex.",
        "batch": {
            "signing_key_seed": hex::encode(seed),
            "public_key": hex::encode(authority.verifying_key().to_bytes()),
            "origin": batch.origin, "key_id": 7, "sequence": batch.sequence,
            "created_at": batch.created_at, "day": batch.day,
            "keys": batch.keys.iter().map(key_json).collect::<Vec<_>>(),
            "body": hex::encode(&signed.body),
            "signed_batch": hex::encode(signed.encode()),
        },
        "upload": {
            "upload_code": hex::encode(&upload.upload_code),
            "dummy": upload.dummy,
            "keys": upload.keys.iter().map(key_json).collect::<Vec<_>>(),
            "request": hex::encode(upload.encode_padded().expect("fits")),
        },
        "deletion_log": {
            "node_key_seed": hex::encode([0x24u8; 32]),
            "node_id": hex::encode(node_id),
            "entries": [hex::encode(first.encode()), hex::encode(second.encode())],
            "entry_hashes": [hex::encode(first.hash()), hex::encode(second.hash())],
        },
        "matching": {
            "key": key_json(&k),
            "observations": observations.iter().map(|o| json!({
                "rpi": hex::encode(o.rpi.0), "interval": o.interval,
                "attenuation_db": o.attenuation_db, "duration_s": o.duration_s,
            })).collect::<Vec<_>>(),
            "matched_observations": matches.iter().flat_map(|m| m.observations.clone()).collect::<Vec<_>>(),
            "daily_summaries": days.iter().map(|d| json!({
                "day": d.day, "minutes": d.minutes, "weighted_minutes": d.weighted_minutes,
                "score": d.score, "high_risk": d.high_risk,
            })).collect::<Vec<_>>(),
        },
    })
}

#[test]
fn crate_reproduces_the_published_traceless_vectors() {
    let computed = compute();
    if std::env::var_os("TRACELESS_WRITE_VECTORS").is_some() {
        let text = serde_json::to_string_pretty(&computed).expect("serializes") + "\n";
        std::fs::write(PATH, text).expect("vectors written");
        return;
    }
    let published: Value =
        serde_json::from_str(&std::fs::read_to_string(PATH).expect("vectors file exists"))
            .expect("vectors parse");
    assert_eq!(
        computed, published,
        "output differs from vectors/traceless-v1.json"
    );
}

#[test]
fn published_vectors_decode_and_verify() {
    let v: Value =
        serde_json::from_str(&std::fs::read_to_string(PATH).expect("vectors file exists"))
            .expect("vectors parse");
    let b = &v["batch"];
    let public: [u8; 32] = hex::decode(b["public_key"].as_str().expect("hex"))
        .expect("hex")
        .try_into()
        .expect("32");
    let mut trust = TrustList::new();
    trust.insert(
        "example.health",
        7,
        ed25519_dalek::VerifyingKey::from_bytes(&public).expect("key"),
    );
    let wire = hex::decode(b["signed_batch"].as_str().expect("hex")).expect("hex");
    let batch = SignedBatch::decode(&wire)
        .expect("decodes")
        .verify(&trust, NOW)
        .expect("verifies");
    assert_eq!(batch.keys.len(), b["keys"].as_array().expect("array").len());

    let request = hex::decode(v["upload"]["request"].as_str().expect("hex")).expect("hex");
    assert_eq!(request.len(), UPLOAD_REQUEST_LEN);
    assert_eq!(
        Upload::decode(&request, NOW).expect("decodes").keys.len(),
        2
    );

    let node_id: [u8; 32] = hex::decode(v["deletion_log"]["node_id"].as_str().expect("hex"))
        .expect("hex")
        .try_into()
        .expect("32");
    let entries: Vec<SignedDeletionRecord> = v["deletion_log"]["entries"]
        .as_array()
        .expect("array")
        .iter()
        .map(|e| {
            SignedDeletionRecord::decode(&hex::decode(e.as_str().expect("hex")).expect("hex"))
                .expect("decodes")
        })
        .collect();
    assert_eq!(
        verify_deletion_log(&entries, &node_id)
            .expect("chain verifies")
            .len(),
        2
    );
}

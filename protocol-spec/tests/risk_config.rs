//! Signed risk configurations (SPEC.md §7.3): the published vector byte for
//! byte, a round trip, and a typed error for every kind of bad input. With
//! `TRACELESS_WRITE_VECTORS=1` the vector file is (re)written instead.

#![allow(clippy::unwrap_used)]

use prost::Message;
use serde_json::{json, Value};
use traceless_protocol::wire::*;
use traceless_protocol::*;

const PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/vectors/risk-config-v1.json");
const NOW: u64 = 1_750_000_000;
const SEED: [u8; 32] = [0x5a; 32];

fn authority() -> (AuthorityKey, TrustList) {
    let key = AuthorityKey {
        origin: "example.health".into(),
        key_id: 2,
        signing_key: ed25519_dalek::SigningKey::from_bytes(&SEED),
    };
    let mut trust = TrustList::new();
    trust
        .try_insert("example.health", 2, key.verifying_key())
        .unwrap();
    (key, trust)
}

/// The vector's configuration: buckets 50/60 dB, weights 1.0/0.6/0.1, a 12-minute threshold.
fn config() -> RiskConfig {
    RiskConfig {
        origin: "example.health".into(),
        revision: 3,
        created_at: NOW - 3_600,
        parameters: RiskParameters {
            attenuation_thresholds_db: [50, 60],
            attenuation_weights: [1.0, 0.6, 0.1],
            max_attenuation_db: 70,
            threshold: 12.5,
            ..RiskParameters::default()
        },
    }
}

fn compute() -> Value {
    let (key, _) = authority();
    let signed = config().sign(&key).unwrap();
    json!({
        "description": "A risk configuration signed by example.health key 2 (SPEC.md §7.3)",
        "signing_key_seed": hex::encode(SEED),
        "public_key": hex::encode(key.verifying_key().to_bytes()),
        "origin": "example.health", "key_id": 2, "revision": 3, "created_at": NOW - 3_600,
        "attenuation_thresholds_db": [50, 60], "attenuation_weights": [1.0, 0.6, 0.1],
        "max_attenuation_db": 70, "threshold": 12.5,
        "transmission_risk_values": RiskParameters::default().transmission_risk_values,
        "infectiousness_weights": RiskParameters::default().infectiousness_weights,
        "body": hex::encode(&signed.body),
        "signed_risk_config": hex::encode(signed.encode()),
    })
}

#[test]
fn crate_reproduces_the_published_risk_config_vector() {
    let computed = compute();
    if std::env::var_os("TRACELESS_WRITE_VECTORS").is_some() {
        let text = serde_json::to_string_pretty(&computed).unwrap() + "\n";
        std::fs::write(PATH, text).unwrap();
        return;
    }
    let published: Value = serde_json::from_str(&std::fs::read_to_string(PATH).unwrap()).unwrap();
    assert_eq!(computed, published, "output differs from {PATH}");
    let bytes = hex::decode(published["signed_risk_config"].as_str().unwrap()).unwrap();
    let (_, trust) = authority();
    let got = SignedRiskConfig::decode(&bytes)
        .unwrap()
        .verify(&trust, NOW, &RiskParameters::default())
        .unwrap();
    assert_eq!(got, config());
}

#[test]
fn untrusted_forged_padded_and_malformed_configs_are_rejected_by_kind() {
    let (key, trust) = authority();
    let base = RiskParameters::default();
    let good = config().sign(&key).unwrap();
    let stranger = AuthorityKey::generate("example.health", 2);
    let forged = config().sign(&stranger).unwrap();
    assert_eq!(
        forged.verify(&trust, NOW, &base),
        Err(WireError::BadSignature("risk config"))
    );
    let other = RiskConfig {
        origin: "other.health".into(),
        ..config()
    };
    let untrusted = other
        .sign(&AuthorityKey::generate("other.health", 2))
        .unwrap();
    assert!(matches!(
        untrusted.verify(&trust, NOW, &base),
        Err(WireError::UntrustedSigner { .. })
    ));
    let padded = [good.encode().as_slice(), &[0x48, 0x01]].concat();
    assert_eq!(
        SignedRiskConfig::decode(&padded),
        Err(WireError::NonCanonical("signed risk config"))
    );

    let body = pb::RiskConfigBody::decode(good.body.as_slice()).unwrap();
    fn field(f: &'static str) -> impl Fn(WireError) -> bool {
        move |e| matches!(e, WireError::InvalidField { field, .. } if field == f)
    }
    type Case = (pb::RiskConfigBody, Box<dyn Fn(WireError) -> bool>);
    let cases: Vec<Case> = vec![
        (
            pb::RiskConfigBody {
                transmission_risk_permille: vec![1000; 8],
                ..body.clone()
            },
            Box::new(field("transmission_risk_permille")),
        ),
        (
            pb::RiskConfigBody {
                near_db: 61,
                ..body.clone()
            },
            Box::new(field("medium_db")),
        ),
        (
            pb::RiskConfigBody {
                weight_far_permille: MAX_PERMILLE + 1,
                ..body.clone()
            },
            Box::new(field("weight_far_permille")),
        ),
        (
            pb::RiskConfigBody {
                max_attenuation_db: 256,
                ..body.clone()
            },
            Box::new(field("max_attenuation_db")),
        ),
        (
            pb::RiskConfigBody {
                revision: 0,
                ..body.clone()
            },
            Box::new(field("revision")),
        ),
        (
            pb::RiskConfigBody {
                threshold_centiminutes: 0,
                ..body.clone()
            },
            Box::new(field("threshold_centiminutes")),
        ),
        (
            pb::RiskConfigBody {
                origin: "Bad Origin".into(),
                ..body.clone()
            },
            Box::new(field("origin")),
        ),
        (
            pb::RiskConfigBody {
                version: 2,
                ..body.clone()
            },
            Box::new(|e| matches!(e, WireError::UnsupportedVersion { found: 2, .. })),
        ),
        (
            pb::RiskConfigBody {
                created_at: NOW + 3 * 3600,
                ..body.clone()
            },
            Box::new(|e| matches!(e, WireError::TimeInFuture { .. })),
        ),
    ];
    for (i, (b, expected)) in cases.into_iter().enumerate() {
        let err = RiskConfig::decode_body(&b.encode_to_vec(), NOW, &base).unwrap_err();
        assert!(expected(err.clone()), "case {i}: unexpected error {err}");
    }
}

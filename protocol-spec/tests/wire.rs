//! Wire formats: round trips for every message, canonical encoding, the bytes a
//! published key costs, and a typed error for every kind of bad input.

use proptest::prelude::*;
use traceless_protocol::wire::*;
use traceless_protocol::*;

const NOW: u64 = 1_750_000_000;

fn today() -> u32 {
    day_of_unix(NOW)
}

fn arb_key(day: u32) -> impl Strategy<Value = DiagnosisKey> {
    (any::<[u8; 16]>(), 0u32..3, 0u8..=8, -14i8..=14).prop_map(
        move |(tek, period_kind, tr, dso)| DiagnosisKey {
            tek: Tek(tek),
            rolling_start: day_start_interval(day) + period_kind * 10,
            rolling_period: 144 - period_kind * 10,
            transmission_risk: tr,
            days_since_onset: dso,
        },
    )
}

fn authority() -> (AuthorityKey, TrustList) {
    let key = AuthorityKey::generate("test.health", 3);
    let mut trust = TrustList::new();
    trust.insert("test.health", 3, key.verifying_key());
    (key, trust)
}

fn batch(keys: Vec<DiagnosisKey>) -> Batch {
    Batch {
        origin: "test.health".into(),
        sequence: 9,
        created_at: NOW - 60,
        day: today() - 1,
        keys,
    }
}

fn simple_keys(n: u8) -> Vec<DiagnosisKey> {
    (0..n)
        .map(|i| DiagnosisKey {
            tek: Tek([i; 16]),
            rolling_start: day_start_interval(today() - 1),
            rolling_period: 144,
            transmission_risk: 4,
            days_since_onset: 2,
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn signed_batch_round_trips(keys in prop::collection::vec(arb_key(today() - 1), 1..50)) {
        let (key, trust) = authority();
        let mut expected = batch(keys);
        let wire = expected.clone().sign(&key).unwrap().encode();
        expected.canonicalize();
        let decoded = SignedBatch::decode(&wire).unwrap().verify(&trust, NOW).unwrap();
        prop_assert_eq!(decoded, expected);
    }

    #[test]
    fn upload_round_trips_at_fixed_length(
        keys in prop::collection::vec(arb_key(today() - 3), 0..=MAX_UPLOAD_KEYS),
        code in prop::collection::vec(any::<u8>(), 0..=MAX_UPLOAD_CODE_LEN),
        dummy in any::<bool>(),
    ) {
        let upload = Upload { upload_code: code, token: None, dummy: dummy || keys.is_empty(), keys, filter_intervals: Vec::new() };
        let bytes = upload.encode_padded().unwrap();
        prop_assert_eq!(bytes.len(), UPLOAD_REQUEST_LEN);
        prop_assert_eq!(Upload::decode(&bytes, NOW).unwrap(), upload);
    }

    #[test]
    fn deletion_log_round_trips(
        ranges in prop::collection::vec(("[a-z]{1,10}", 1u64..1000, 0u64..100, any::<u64>(), any::<u32>()), 0..5),
        entries in 1usize..5,
    ) {
        let node = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
        let node_id = node.verifying_key().to_bytes();
        let mut log = Vec::new();
        let mut previous_hash = DeletionRecord::GENESIS_HASH;
        for index in 0..entries as u64 {
            let record = DeletionRecord {
                index,
                previous_hash,
                deleted_at: NOW + index,
                node_id,
                deleted: ranges.iter().map(|(o, first, extra, keys, day)| DeletedRange {
                    origin: o.clone(), first_sequence: *first, last_sequence: first + extra,
                    key_count: *keys, day: *day,
                }).collect(),
            };
            let signed = record.sign(&node).unwrap();
            let decoded = SignedDeletionRecord::decode(&signed.encode()).unwrap();
            prop_assert_eq!(&decoded, &signed);
            previous_hash = signed.hash();
            log.push(decoded);
        }
        prop_assert_eq!(verify_deletion_log(&log, &node_id).unwrap().len(), entries);
    }

    /// Arbitrary bytes never panic a decoder.
    #[test]
    fn decoders_reject_garbage_without_panicking(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        let (_, trust) = authority();
        if let Ok(b) = SignedBatch::decode(&bytes) { let _ = b.verify(&trust, NOW); }
        let _ = Batch::decode_body(&bytes, NOW);
        let _ = Upload::decode(&bytes, NOW);
        if let Ok(r) = SignedDeletionRecord::decode(&bytes) { let _ = r.verify(); }
    }
}

#[test]
fn a_published_key_costs_at_most_20_bytes_in_a_batch() {
    // A realistic day batch: 1,000 keys, days since onset spread over -3..=10,
    // transmission risk derived from it (as CWA does): few distinct groups.
    let keys: Vec<DiagnosisKey> = (0..1000u32)
        .map(|i| {
            let dso = (i % 14) as i8 - 3;
            let mut tek = [0u8; 16];
            tek[..4].copy_from_slice(&i.to_be_bytes());
            DiagnosisKey {
                tek: Tek(tek),
                rolling_start: day_start_interval(today() - 1),
                rolling_period: 144,
                transmission_risk: 8 - dso.unsigned_abs().min(7),
                days_since_onset: dso,
            }
        })
        .collect();
    let (key, _) = authority();
    let wire = batch(keys).sign(&key).unwrap().encode();
    let per_key = wire.len() as f64 / 1000.0;
    println!(
        "batch of 1000 keys: {} bytes, {per_key:.2} B/key",
        wire.len()
    );
    assert!(per_key <= 20.0, "{per_key} B/key");
}

#[test]
fn forged_untrusted_and_expired_batches_are_rejected() {
    let (key, trust) = authority();
    let signed = batch(simple_keys(3)).sign(&key).unwrap();

    let mut forged = signed.clone();
    forged.signature[5] ^= 1;
    assert_eq!(
        forged.verify(&trust, NOW),
        Err(WireError::BadSignature("batch"))
    );

    let mut tampered = signed.clone();
    let last = tampered.body.len() - 1;
    tampered.body[last] ^= 1;
    assert_eq!(
        tampered.verify(&trust, NOW),
        Err(WireError::BadSignature("batch"))
    );

    let impostor = AuthorityKey::generate("test.health", 3);
    let by_impostor = batch(simple_keys(3)).sign(&impostor).unwrap();
    assert_eq!(
        by_impostor.verify(&trust, NOW),
        Err(WireError::BadSignature("batch"))
    );

    let unknown_id = AuthorityKey::generate("test.health", 4);
    assert!(matches!(
        batch(simple_keys(1))
            .sign(&unknown_id)
            .unwrap()
            .verify(&trust, NOW),
        Err(WireError::UntrustedSigner { key_id: 4, .. })
    ));

    let later = NOW + 17 * 86_400;
    assert!(matches!(
        signed.verify(&trust, later),
        Err(WireError::Expired { .. })
    ));
    assert!(signed.verify(&trust, NOW).is_ok());
}

#[test]
fn bad_batch_bodies_get_errors_naming_the_problem() {
    let start = day_start_interval(today() - 1);
    type Expect = fn(&WireError) -> bool;
    let cases: Vec<(pb::BatchBody, Expect)> = vec![
        (body(2, vec![group(start, 144, 16)]), |e| {
            matches!(e, WireError::UnsupportedVersion { found: 2, .. })
        }),
        (body(1, vec![group(start, 0, 16)]), |e| {
            *e == WireError::RollingPeriod(0)
        }),
        (body(1, vec![group(start, 145, 16)]), |e| {
            *e == WireError::RollingPeriod(145)
        }),
        (body(1, vec![group(start, 144, 15)]), |e| {
            *e == WireError::KeyLength(15)
        }),
        (body(1, vec![group(start, 144, 0)]), |e| {
            *e == WireError::KeyLength(0)
        }),
        (body(1, vec![]), |e| *e == WireError::Empty("batch")),
        (body(1, vec![group(start + 144, 144, 16)]), |e| {
            matches!(e, WireError::WrongDay { .. })
        }),
        (
            pb::BatchBody {
                groups: vec![pb::KeyGroup {
                    transmission_risk_level: 9,
                    ..group(start, 144, 16)
                }],
                ..body(1, vec![])
            },
            |e| *e == WireError::TransmissionRisk(9),
        ),
        (
            pb::BatchBody {
                groups: vec![pb::KeyGroup {
                    days_since_onset_of_symptoms: -15,
                    ..group(start, 144, 16)
                }],
                ..body(1, vec![])
            },
            |e| *e == WireError::DaysSinceOnset(-15),
        ),
        (
            // Two identical groups: decodes, but is not canonical.
            body(1, vec![group(start, 144, 16), group(start, 144, 16)]),
            |e| *e == WireError::NonCanonical("batch body"),
        ),
        (
            pb::BatchBody {
                created_at: NOW + 3 * 3600,
                ..body(1, vec![group(start, 144, 16)])
            },
            |e| matches!(e, WireError::TimeInFuture { .. }),
        ),
        (
            pb::BatchBody {
                origin: "Bad Origin".into(),
                ..body(1, vec![group(start, 144, 16)])
            },
            |e| {
                matches!(
                    e,
                    WireError::InvalidField {
                        field: "origin",
                        ..
                    }
                )
            },
        ),
        (
            pb::BatchBody {
                sequence: 0,
                ..body(1, vec![group(start, 144, 16)])
            },
            |e| {
                matches!(
                    e,
                    WireError::InvalidField {
                        field: "sequence",
                        ..
                    }
                )
            },
        ),
    ];
    for (i, (b, expected)) in cases.into_iter().enumerate() {
        let err = Batch::decode_body(&prost::Message::encode_to_vec(&b), NOW).unwrap_err();
        assert!(expected(&err), "case {i}: unexpected error {err}");
    }
}

#[test]
fn a_key_starting_in_the_future_is_rejected() {
    let future_day = today() + 1;
    let b = pb::BatchBody {
        day: future_day,
        ..body(1, vec![group(day_start_interval(future_day), 144, 16)])
    };
    let err = Batch::decode_body(&prost::Message::encode_to_vec(&b), NOW).unwrap_err();
    assert!(matches!(err, WireError::StartInFuture { .. }), "{err}");
}

#[test]
fn truncated_and_oversized_inputs_are_rejected() {
    let (key, _) = authority();
    let wire = batch(simple_keys(5)).sign(&key).unwrap().encode();
    for cut in [1, 10, wire.len() / 2, wire.len() - 1] {
        let err = SignedBatch::decode(&wire[..cut]).unwrap_err();
        assert!(
            matches!(
                err,
                WireError::Malformed { .. } | WireError::InvalidField { .. }
            ),
            "cut at {cut}: {err}"
        );
    }
    let huge = vec![0u8; MAX_SIGNED_BATCH_LEN + 1];
    assert!(matches!(
        SignedBatch::decode(&huge),
        Err(WireError::Oversized { .. })
    ));

    let upload = Upload {
        upload_code: vec![1; 8],
        token: None,
        keys: simple_keys(2),
        dummy: false,
        filter_intervals: Vec::new(),
    }
    .encode_padded()
    .unwrap();
    assert!(matches!(
        Upload::decode(&upload[..1000], NOW),
        Err(WireError::InvalidField {
            field: "length",
            ..
        })
    ));
    let mut longer = upload.clone();
    longer.push(0);
    assert!(matches!(
        Upload::decode(&longer, NOW),
        Err(WireError::Oversized { .. })
    ));
    let mut nonzero_padding = upload.clone();
    *nonzero_padding.last_mut().unwrap() = 1;
    assert!(matches!(
        Upload::decode(&nonzero_padding, NOW),
        Err(WireError::InvalidField {
            field: "padding",
            ..
        })
    ));
    let too_many = Upload {
        upload_code: vec![],
        token: None,
        keys: vec![simple_keys(1)[0]; MAX_UPLOAD_KEYS + 1],
        dummy: false,
        filter_intervals: Vec::new(),
    };
    assert!(matches!(
        too_many.encode_padded(),
        Err(WireError::TooManyKeys { .. })
    ));
}

#[test]
fn a_broken_deletion_chain_is_detected() {
    let node = ed25519_dalek::SigningKey::from_bytes(&[9; 32]);
    let node_id = node.verifying_key().to_bytes();
    let record = |index, previous_hash| DeletionRecord {
        index,
        previous_hash,
        deleted_at: NOW,
        node_id,
        deleted: vec![],
    };
    let first = record(0, DeletionRecord::GENESIS_HASH).sign(&node).unwrap();
    let good = record(1, first.hash()).sign(&node).unwrap();
    let bad = record(1, [1; 32]).sign(&node).unwrap();
    assert!(verify_deletion_log(&[first.clone(), good], &node_id).is_ok());
    assert_eq!(
        verify_deletion_log(&[first.clone(), bad], &node_id),
        Err(WireError::BrokenChain { index: 1 })
    );
    let other = ed25519_dalek::SigningKey::from_bytes(&[10; 32]);
    assert!(verify_deletion_log(&[first], &other.verifying_key().to_bytes()).is_err());
}

fn body(version: u32, groups: Vec<pb::KeyGroup>) -> pb::BatchBody {
    pb::BatchBody {
        version,
        origin: "test.health".into(),
        sequence: 1,
        created_at: NOW,
        day: today() - 1,
        groups,
    }
}

fn group(start: u32, period: u32, key_len: usize) -> pb::KeyGroup {
    pb::KeyGroup {
        rolling_start_interval_number: start,
        rolling_period: period,
        transmission_risk_level: 3,
        days_since_onset_of_symptoms: 1,
        key_data: vec![0xab; key_len],
    }
}

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
        let upload = Upload { upload_code: code, token: None, dummy: dummy || keys.is_empty(), keys, filter_intervals: Vec::new(), stays: Default::default() };
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
            // Two identical groups: one tuple split in two.
            body(1, vec![group(start, 144, 16), group(start, 144, 16)]),
            |e| {
                *e == WireError::KeyOrder {
                    group: 1,
                    fault: KeyOrderFault::SplitGroup,
                }
            },
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
        stays: Default::default(),
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
        keys: vec![simple_keys(1)[0].clone(); MAX_UPLOAD_KEYS + 1],
        dummy: false,
        filter_intervals: Vec::new(),
        stays: Default::default(),
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
        ..Default::default()
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

/// A group of day `today() - 1` at `start_offset` intervals with the given TEKs.
fn group_of_keys(start_offset: u32, teks: &[u8]) -> pb::KeyGroup {
    pb::KeyGroup {
        rolling_start_interval_number: day_start_interval(today() - 1) + start_offset,
        rolling_period: 10,
        transmission_risk_level: 3,
        days_since_onset_of_symptoms: 1,
        key_data: teks.iter().flat_map(|&b| [b; 16]).collect(),
    }
}

#[test]
fn a_batch_body_out_of_canonical_order_is_rejected_with_what_is_wrong() {
    use prost::Message;
    let decode = |groups| Batch::decode_body(&body(1, groups).encode_to_vec(), NOW);
    let fault = |group, fault| Err(WireError::KeyOrder { group, fault });
    assert!(decode(vec![group_of_keys(0, &[1, 2]), group_of_keys(10, &[1])]).is_ok());
    assert_eq!(
        decode(vec![group_of_keys(0, &[2, 1])]),
        fault(0, KeyOrderFault::KeysUnsorted)
    );
    assert_eq!(
        decode(vec![group_of_keys(0, &[1, 1])]),
        fault(0, KeyOrderFault::DuplicateKey)
    );
    assert_eq!(
        decode(vec![group_of_keys(10, &[1]), group_of_keys(0, &[1])]),
        fault(1, KeyOrderFault::GroupsUnsorted)
    );
    // One tuple over two adjacent groups (keys in order across them) ...
    assert_eq!(
        decode(vec![group_of_keys(0, &[1]), group_of_keys(0, &[2])]),
        fault(1, KeyOrderFault::SplitGroup)
    );
    // ... and over two groups with another between them.
    assert_eq!(
        decode(vec![
            group_of_keys(0, &[1]),
            group_of_keys(10, &[1]),
            group_of_keys(0, &[2])
        ]),
        fault(2, KeyOrderFault::GroupsUnsorted)
    );
}

#[test]
fn a_padded_copy_of_a_genuine_signed_envelope_is_rejected() {
    let (key, trust) = authority();
    let genuine = batch(simple_keys(3)).sign(&key).unwrap().encode();
    assert!(SignedBatch::decode(&genuine)
        .unwrap()
        .verify(&trust, NOW)
        .is_ok());
    // Field 9 (varint 1) and field 10 (bytes) appended: unknown to the schema,
    // the signed body untouched, so the signature alone would still verify.
    for pad in [&[0x48, 0x01][..], &[0x52, 0x02, 0xde, 0xad][..]] {
        let padded = [genuine.as_slice(), pad].concat();
        assert_eq!(
            SignedBatch::decode(&padded),
            Err(WireError::NonCanonical("signed batch"))
        );
    }
    let entry = FilterEntry::new(&Rpi([7; 16]), day_start_interval(today() - 2));
    let filter = DayFilter {
        origin: "test.health".into(),
        day: today() - 2,
        revision: 1,
        created_at: NOW - 60,
        filter: EntryFilter::build(&[entry], [1; 16]).unwrap(),
    }
    .sign(&key)
    .unwrap()
    .encode();
    assert!(SignedFilter::decode(&filter).is_ok());
    let padded = [filter.as_slice(), &[0x48, 0x01]].concat();
    assert_eq!(
        SignedFilter::decode(&padded),
        Err(WireError::NonCanonical("signed filter"))
    );
}

#[test]
fn an_origin_outside_a_z0_9_dot_dash_is_rejected_by_the_one_validator() {
    for good in ["de.rki", "test-health.1", &"a".repeat(64)] {
        assert_eq!(validate_origin(good), Ok(()), "{good}");
    }
    for bad in [
        "",
        "Bad Origin",
        "DE.RKI",
        "de_rki",
        "dé.rki",
        &"a".repeat(65),
    ] {
        assert!(
            matches!(
                validate_origin(bad),
                Err(WireError::InvalidField {
                    field: "origin",
                    ..
                })
            ),
            "{bad:?}"
        );
        let mut trust = TrustList::new();
        let key = AuthorityKey::generate("test.health", 1).verifying_key();
        assert!(matches!(
            trust.try_insert(bad, 1, key),
            Err(WireError::InvalidField {
                field: "origin",
                ..
            })
        ));
        assert!(trust.entries().is_empty());
    }
}

/// Uploads of every key count, code length and form, with their unpadded length.
fn uploads_of_every_length() -> Vec<(Upload, usize)> {
    use prost::Message;
    let mut out = Vec::new();
    for keys in 0..=MAX_UPLOAD_KEYS {
        for code_len in 0..=MAX_UPLOAD_CODE_LEN {
            for masks in [false, true] {
                let keys: Vec<DiagnosisKey> = simple_keys(keys as u8);
                let upload = Upload {
                    upload_code: vec![b'c'; code_len],
                    dummy: keys.is_empty(),
                    filter_intervals: if masks {
                        keys.iter().map(|_| IntervalMask::all(144)).collect()
                    } else {
                        Vec::new()
                    },
                    keys,
                    ..Upload::default()
                };
                // The unpadded length: what the request encodes to without padding.
                let unpadded = match upload.encode_padded() {
                    Ok(bytes) => {
                        let m = pb::UploadRequest::decode(bytes.as_slice())
                            .expect("padded request decodes");
                        pb::UploadRequest {
                            padding: vec![],
                            ..m
                        }
                        .encoded_len()
                    }
                    Err(e) => {
                        assert!(
                            matches!(
                                e,
                                WireError::InvalidField {
                                    field: "padding",
                                    ..
                                }
                            ),
                            "{e}"
                        );
                        continue;
                    }
                };
                out.push((upload, unpadded));
            }
        }
    }
    out
}

#[test]
fn every_unpadded_length_pads_to_exactly_1024_bytes_including_894() {
    let uploads = uploads_of_every_length();
    for (upload, _) in &uploads {
        let bytes = upload.encode_padded().unwrap();
        assert_eq!(bytes.len(), UPLOAD_REQUEST_LEN);
        assert_eq!(&Upload::decode(&bytes, NOW).unwrap(), upload);
    }
    let lengths: std::collections::BTreeSet<usize> = uploads.iter().map(|u| u.1).collect();
    for n in [893, 894, 895] {
        assert!(lengths.contains(&n), "unpadded length {n} pads to 1024");
    }
    // The longest request the limits allow (16 keys with masks, a 64-byte code).
    assert_eq!(lengths.last(), Some(&900));
}

#[test]
fn padding_with_a_shortest_form_length_is_rejected() {
    use prost::Message;
    // An unpadded length of 900: 121 bytes of padding, whose length fits one byte.
    let (upload, _) = uploads_of_every_length()
        .into_iter()
        .find(|u| u.1 == 900)
        .unwrap();
    let good = upload.encode_padded().unwrap();
    let m = pb::UploadRequest::decode(good.as_slice()).unwrap();
    assert_eq!(m.padding.len(), 121);
    // Encoded by prost with a one-byte length and one more zero byte, it is
    // 1024 bytes too: a second encoding of the same request.
    let shortest = pb::UploadRequest {
        padding: vec![0; 122],
        ..m
    }
    .encode_to_vec();
    assert_eq!(shortest.len(), UPLOAD_REQUEST_LEN);
    assert!(matches!(
        Upload::decode(&shortest, NOW),
        Err(WireError::InvalidField {
            field: "padding",
            ..
        })
    ));
}

/// A batch list carries the exact `SignedBatch` bytes, in order, and nothing
/// else: padding or an unknown field is refused by kind, as are garbage and
/// an oversized body.
#[test]
fn batch_lists_carry_batches_byte_for_byte() {
    let (key, trust) = authority();
    let signed: Vec<Vec<u8>> = (1..=3u8)
        .map(|i| {
            let mut b = batch(simple_keys(i));
            b.sequence = u64::from(i);
            b.sign(&key).unwrap().encode()
        })
        .collect();
    let list = BatchList {
        batches: signed.clone(),
    };
    let bytes = list.encode();
    let back = BatchList::decode(&bytes).unwrap();
    assert_eq!(back.batches, signed);
    for (i, b) in back.batches.iter().enumerate() {
        let got = SignedBatch::decode(b).unwrap().verify(&trust, NOW).unwrap();
        assert_eq!(got.sequence, i as u64 + 1);
    }
    assert!(BatchList::default().encode().is_empty());
    assert_eq!(BatchList::decode(&[]).unwrap(), BatchList::default());
    let mut odd = bytes.clone();
    odd.extend_from_slice(&[0x12, 0x01, 0x00]);
    assert!(matches!(
        BatchList::decode(&odd),
        Err(WireError::NonCanonical("batch list"))
    ));
    assert!(matches!(
        BatchList::decode(&[0xff]),
        Err(WireError::Malformed { .. })
    ));
    assert!(matches!(
        BatchList::decode(&vec![0; MAX_LIST_LEN + 1]),
        Err(WireError::Oversized { .. })
    ));
}

/// Stays travel alone in a real upload (SPEC.md §5.4, §12.11): each report of a
/// sealed stay's length, at most `MAX_UPLOAD_STAYS`, with the day of onset.
#[test]
fn stay_uploads_carry_sealed_reports_alone() {
    use traceless_protocol::venue::sealed_stay_len;
    let stays = |n: usize, len: usize, onset_day: u32| Stays {
        onset_day,
        reports: vec![vec![5; len]; n],
    };
    let decode = |u: Upload| Upload::decode(&u.encode_padded().expect("fits"), NOW);
    let good = Upload {
        stays: stays(6, sealed_stay_len(1), 20_000),
        ..Default::default()
    };
    assert_eq!(decode(good.clone()).expect("decodes"), good);
    let field = |r: Result<Upload, WireError>| match r {
        Err(WireError::InvalidField { field, .. }) => field,
        other => panic!("expected InvalidField, got {other:?}"),
    };
    let with_keys = Upload {
        keys: simple_keys(1),
        ..good.clone()
    };
    assert_eq!(field(decode(with_keys)), "stays");
    let dummy = Upload {
        dummy: true,
        ..good.clone()
    };
    assert_eq!(field(decode(dummy)), "stays");
    let odd = Upload {
        stays: stays(1, sealed_stay_len(1) + 1, 20_000),
        ..Default::default()
    };
    assert_eq!(field(decode(odd)), "stays");
    let no_onset = Upload {
        stays: stays(1, sealed_stay_len(1), 0),
        ..Default::default()
    };
    assert_eq!(field(decode(no_onset)), "onset_day");
    let onset_alone = Upload {
        keys: simple_keys(1),
        stays: stays(0, 0, 20_000),
        ..Default::default()
    };
    assert_eq!(field(decode(onset_alone)), "onset_day");
    let many = Upload {
        stays: stays(MAX_UPLOAD_STAYS + 1, sealed_stay_len(1), 20_000),
        ..Default::default()
    };
    assert!(
        matches!(
            many.encode_padded(),
            Err(WireError::InvalidField {
                field: "padding",
                ..
            })
        ),
        "nine one-hour reports do not fit the fixed length"
    );
}

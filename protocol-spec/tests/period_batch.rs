//! SPEC.md §5.9: period batches. One signature covers every day of a
//! publication period; retention replaces an expired day by its digest and the
//! signature still verifies; phones can be served the batch without export
//! signatures; every way a received batch can be wrong has its own error.

#![allow(clippy::unwrap_used)]

use ed25519_dalek::Signer;
use proptest::prelude::*;
use prost::Message;
use sha2::{Digest, Sha256};
use traceless_protocol::wire::{pb, DaySection, PrunedDay, Publication};
use traceless_protocol::PublishedBatch;
use traceless_protocol::*;

mod common;

const NOW: u64 = 1_750_000_000;
const ORIGIN: &str = "test.health";

fn authority() -> (AuthorityKey, TrustList) {
    let key = AuthorityKey::generate(ORIGIN, 3);
    let mut trust = TrustList::new();
    trust.insert(ORIGIN, 3, key.verifying_key());
    (key, trust)
}

fn diagnosis_key(tek: u8, day: u32, dso: i8) -> DiagnosisKey {
    DiagnosisKey {
        tek: Tek([tek; 16]),
        rolling_start: day_start_interval(day),
        rolling_period: 144,
        transmission_risk: transmission_risk(i32::from(dso)),
        days_since_onset: dso,
    }
}

/// Keys of three days, one of them valid for part of its day only.
fn period() -> PeriodBatch {
    let today = day_of_unix(NOW);
    let mut partial = diagnosis_key(9, today - 1, 1);
    partial.rolling_start += 30;
    partial.rolling_period = 50;
    let keys = vec![
        diagnosis_key(7, today - 10, -2),
        diagnosis_key(3, today - 10, -3),
        diagnosis_key(5, today - 4, 4),
        partial,
        diagnosis_key(1, today - 1, 0),
    ];
    PeriodBatch::from_keys(ORIGIN, 4, NOW - 60, keys)
}

fn exported(key: &AuthorityKey) -> SignedPeriodBatch {
    let (certificate, export_key) = common::export_certificate(key, NOW - 86_400, NOW + 86_400);
    period()
        .sign_with(
            key,
            Publication {
                export: Some((&certificate, &export_key)),
                risk_config: None,
            },
        )
        .unwrap()
}

fn round_trip(b: &SignedPeriodBatch) -> SignedPeriodBatch {
    SignedPeriodBatch::decode(&b.encode()).unwrap()
}

/// `days` (DayKeys encodings) under a header with their true digest, signed by
/// `key`: whatever the days contain, only their own checks can refuse them.
fn signed_days(key: &AuthorityKey, days: Vec<Vec<u8>>) -> SignedPeriodBatch {
    let mut h = Sha256::new();
    h.update(b"traceless/v2/days\0");
    for d in &days {
        h.update(pb::DayKeys::decode(d.as_slice()).unwrap().day.to_be_bytes());
        h.update(Sha256::digest(d));
    }
    let header = pb::PeriodBatchHeader {
        version: 2,
        origin: ORIGIN.into(),
        sequence: 1,
        created_at: NOW,
        days_digest: h.finalize().to_vec(),
        ..Default::default()
    }
    .encode_to_vec();
    let message = [BATCH_V2_CONTEXT, &[0], &header].concat();
    SignedPeriodBatch {
        signature: key.signing_key.sign(&message).to_bytes(),
        header,
        key_id: key.key_id,
        days: days
            .into_iter()
            .map(|keys| DaySection {
                keys,
                export_signature: None,
            })
            .collect(),
        pruned: Vec::new(),
    }
}

fn day_keys(edit: impl FnOnce(&mut pb::DayKeys)) -> Vec<u8> {
    let mut m = pb::DayKeys {
        day: day_of_unix(NOW) - 2,
        key_data: [[1u8; 16], [2; 16]].concat(),
        days_since_onset: vec![0, 1],
        transmission_risk: vec![5, 6],
        partial: Vec::new(),
    };
    edit(&mut m);
    m.encode_to_vec()
}

fn refusal(
    key: &AuthorityKey,
    trust: &TrustList,
    edit: impl FnOnce(&mut pb::DayKeys),
) -> WireError {
    round_trip(&signed_days(key, vec![day_keys(edit)]))
        .verify(trust, NOW)
        .unwrap_err()
}

#[test]
fn a_signed_period_batch_verifies_to_its_days() {
    let (key, trust) = authority();
    let signed = round_trip(&exported(&key));
    let batch = signed.verify(&trust, NOW).unwrap();
    let mut expected = period();
    for d in &mut expected.days {
        d.export_signature = signed.days.iter().find_map(|s| {
            (pb::DayKeys::decode(s.keys.as_slice()).unwrap().day == d.day)
                .then_some(s.export_signature)
                .flatten()
        });
    }
    assert_eq!(batch, expected);
    assert_eq!(batch.days.len(), 3);
    assert_eq!(batch.keys().count(), 5);
    let (_, attachments) = signed.verify_with_attachments(&trust, NOW).unwrap();
    assert!(attachments.export_key.is_some());
    assert_eq!(signed.claimed_sequence(), Some(4));
}

#[test]
fn from_keys_sorts_each_day_by_tek_and_keeps_one_key_per_tek() {
    let today = day_of_unix(NOW);
    let b = PeriodBatch::from_keys(
        ORIGIN,
        1,
        NOW,
        vec![
            diagnosis_key(9, today - 1, 0),
            diagnosis_key(2, today - 1, 3),
            diagnosis_key(9, today - 1, 1),
            diagnosis_key(9, today - 2, 0),
        ],
    );
    let days: Vec<(u32, Vec<u8>, Vec<i8>)> = b
        .days
        .iter()
        .map(|d| {
            (
                d.day,
                d.keys.iter().map(|k| k.tek.0[0]).collect(),
                d.keys.iter().map(|k| k.days_since_onset).collect(),
            )
        })
        .collect();
    assert_eq!(
        days,
        vec![
            (today - 2, vec![9], vec![0]),
            (today - 1, vec![2, 9], vec![3, 0])
        ]
    );
}

#[test]
fn pruning_keeps_the_signature_and_the_identifier() {
    let (key, trust) = authority();
    let signed = exported(&key);
    let oldest = signed.verify(&trust, NOW).unwrap().days[0].expires_at();
    let after = oldest + 1;
    assert_eq!(
        signed.pruned_at(oldest).unwrap().unwrap(),
        signed,
        "nothing expired yet"
    );
    let pruned = round_trip(&signed.pruned_at(after).unwrap().unwrap());
    assert_eq!(pruned.days.len(), 2);
    assert_eq!(pruned.pruned.len(), 1);
    assert_eq!(
        pruned.pruned[0].digest,
        <[u8; 32]>::from(Sha256::digest(&signed.days[0].keys))
    );
    assert_eq!(pruned.id(), signed.id());
    let batch = pruned.verify_with_attachments(&trust, after).unwrap().0;
    assert_eq!(batch.days, signed.verify(&trust, after).unwrap().days);
    assert_eq!(batch.keys().count(), 3);

    // Pruned again when the next day expires, then nothing is left.
    let next = batch.days[0].expires_at() + 1;
    let twice = pruned.pruned_at(next).unwrap().unwrap();
    assert_eq!(twice.pruned.len(), 2);
    assert!(twice.pruned[0].day < twice.pruned[1].day);
    twice.verify(&trust, next).unwrap();
    let last = batch.days[1].expires_at() + 1;
    assert_eq!(twice.pruned_at(last).unwrap(), None);
    assert!(matches!(
        signed.verify(&trust, last),
        Err(WireError::Expired { .. })
    ));
}

#[test]
fn phones_are_served_the_batch_without_export_signatures() {
    let (key, trust) = authority();
    let full = exported(&key);
    let native = round_trip(&full.without_export_signatures());
    assert!(native.encode().len() + 3 * 60 < full.encode().len());
    assert_eq!(native.id(), full.id());
    assert_eq!(native.verify(&trust, NOW).unwrap().keys().count(), 5);
    assert_eq!(
        native.verify_with_attachments(&trust, NOW).unwrap_err(),
        WireError::BadSignature("export.bin")
    );
    // One day's export signature under another day: the ECDSA check fails.
    let mut swapped = full.clone();
    swapped.days[0].export_signature = full.days[1].export_signature;
    assert_eq!(
        swapped.verify_with_attachments(&trust, NOW).unwrap_err(),
        WireError::BadSignature("export.bin")
    );
    swapped.verify(&trust, NOW).unwrap();
}

#[test]
fn days_that_are_not_the_signed_ones_are_refused() {
    let (key, trust) = authority();
    let signed = exported(&key);
    let mismatch = Err(WireError::DigestMismatch("period batch days"));

    let mut dropped = signed.clone();
    dropped.days.remove(1);
    assert_eq!(dropped.verify(&trust, NOW), mismatch);

    let mut f = signed.clone();
    let day = pb::DayKeys::decode(f.days[0].keys.as_slice()).unwrap().day;
    f.days.remove(0);
    f.pruned.push(PrunedDay {
        day,
        digest: [0; 32],
    });
    assert_eq!(f.verify(&trust, NOW), mismatch);

    let mut altered = signed.clone();
    let mut m = pb::DayKeys::decode(altered.days[2].keys.as_slice()).unwrap();
    m.days_since_onset[0] = m.days_since_onset[0].wrapping_add(1);
    altered.days[2].keys = m.encode_to_vec();
    assert_eq!(altered.verify(&trust, NOW), mismatch);

    let (other, _) = authority();
    let mut resigned = signed.clone();
    resigned.signature = exported(&other).signature;
    assert_eq!(
        resigned.verify(&trust, NOW),
        Err(WireError::BadSignature("batch"))
    );
    assert!(matches!(
        signed.verify(&TrustList::new(), NOW),
        Err(WireError::UntrustedSigner { key_id: 3, .. })
    ));
}

#[test]
fn malformed_days_are_refused_by_kind() {
    let (key, trust) = authority();
    let invalid = |field: &str, e: WireError| match e {
        WireError::InvalidField { field: f, .. } => assert_eq!(f, field),
        other => panic!("expected InvalidField {field}, got {other:?}"),
    };
    round_trip(&signed_days(&key, vec![day_keys(|_| {})]))
        .verify(&trust, NOW)
        .unwrap();
    invalid(
        "key_data",
        refusal(&key, &trust, |m| m.key_data = [[2u8; 16], [1; 16]].concat()),
    );
    invalid(
        "key_data",
        refusal(&key, &trust, |m| m.key_data = [[2u8; 16], [2; 16]].concat()),
    );
    invalid(
        "days_since_onset",
        refusal(&key, &trust, |m| {
            m.days_since_onset.pop().map(drop).unwrap()
        }),
    );
    invalid(
        "transmission_risk",
        refusal(&key, &trust, |m| m.transmission_risk.push(6)),
    );
    assert_eq!(
        refusal(&key, &trust, |m| m.key_data.pop().map(drop).unwrap()),
        WireError::KeyLength(31)
    );
    assert_eq!(
        refusal(&key, &trust, |m| m.transmission_risk[1] = 9),
        WireError::TransmissionRisk(9)
    );
    assert_eq!(
        refusal(&key, &trust, |m| m.days_since_onset[0] = (-15i8) as u8),
        WireError::DaysSinceOnset(-15)
    );
    let partial = |index, start_offset, rolling_period| pb::PartialKey {
        index,
        start_offset,
        rolling_period,
    };
    invalid(
        "partial",
        refusal(&key, &trust, |m| m.partial = vec![partial(0, 0, 144)]),
    );
    invalid(
        "partial",
        refusal(&key, &trust, |m| m.partial = vec![partial(2, 1, 10)]),
    );
    invalid(
        "partial",
        refusal(&key, &trust, |m| {
            m.partial = vec![partial(1, 1, 10), partial(0, 1, 10)]
        }),
    );
    invalid(
        "partial",
        refusal(&key, &trust, |m| m.partial = vec![partial(1, 144, 10)]),
    );
    assert_eq!(
        refusal(&key, &trust, |m| m.partial = vec![partial(1, 1, 0)]),
        WireError::RollingPeriod(0)
    );
    invalid("day", refusal(&key, &trust, |m| m.day = u32::MAX));
    // A key that starts after now (plus drift) is refused as for any batch.
    assert!(matches!(
        refusal(&key, &trust, |m| m.day = day_of_unix(NOW) + 1),
        WireError::StartInFuture { .. }
    ));
    // The risk column is left out exactly when §4's table gives every level.
    let defaults = day_keys(|m| m.transmission_risk = vec![6, 6]);
    assert_eq!(
        round_trip(&signed_days(&key, vec![defaults])).verify(&trust, NOW),
        Err(WireError::NonCanonical("day keys"))
    );
    let implied = signed_days(&key, vec![day_keys(|m| m.transmission_risk.clear())]);
    let levels: Vec<u8> = implied
        .verify(&trust, NOW)
        .unwrap()
        .keys()
        .map(|k| k.transmission_risk)
        .collect();
    assert_eq!(levels, vec![6, 6]);
    // An unknown field makes the encoding non-canonical.
    let mut unknown = day_keys(|_| {});
    unknown.extend([0x30, 0x01]);
    assert_eq!(
        round_trip(&signed_days(&key, vec![unknown])).verify(&trust, NOW),
        Err(WireError::NonCanonical("day keys"))
    );
}

#[test]
fn envelopes_out_of_shape_are_refused_by_kind() {
    let (key, trust) = authority();
    let today = day_of_unix(NOW);
    let a = day_keys(|m| m.day = today - 3);
    let b = day_keys(|m| m.day = today - 2);
    let invalid = |field: &str, e: WireError| match e {
        WireError::InvalidField { field: f, .. } => assert_eq!(f, field),
        other => panic!("expected InvalidField {field}, got {other:?}"),
    };
    signed_days(&key, vec![a.clone(), b.clone()])
        .verify(&trust, NOW)
        .unwrap();
    invalid(
        "days",
        signed_days(&key, vec![b.clone(), a.clone()])
            .verify(&trust, NOW)
            .unwrap_err(),
    );
    invalid(
        "days",
        signed_days(&key, vec![a.clone(), a.clone()])
            .verify(&trust, NOW)
            .unwrap_err(),
    );

    let mut both = signed_days(&key, vec![a.clone(), b.clone()]);
    both.pruned.push(PrunedDay {
        day: today - 2,
        digest: Sha256::digest(&b).into(),
    });
    invalid("days", both.verify(&trust, NOW).unwrap_err());

    let mut none = signed_days(&key, vec![a.clone()]);
    none.days.clear();
    assert_eq!(
        none.verify(&trust, NOW),
        Err(WireError::Empty("period batch"))
    );

    let mut stray = signed_days(&key, vec![a.clone()]);
    stray.days[0].export_signature = Some([1; 64]);
    invalid("export_signature", stray.verify(&trust, NOW).unwrap_err());

    let mut v1 = signed_days(&key, vec![a]);
    let mut h = pb::PeriodBatchHeader::decode(v1.header.as_slice()).unwrap();
    h.version = 1;
    v1.header = h.encode_to_vec();
    assert!(matches!(
        v1.verify(&trust, NOW),
        Err(WireError::UnsupportedVersion {
            found: 1,
            supported: 2,
            ..
        })
    ));

    let mut bytes = exported(&key).encode();
    bytes.extend([0x30, 0x01]);
    assert_eq!(
        SignedPeriodBatch::decode(&bytes),
        Err(WireError::NonCanonical("signed period batch"))
    );
    let mut short = exported(&key);
    short.pruned.push(PrunedDay {
        day: 1,
        digest: [0; 32],
    });
    let mut m = pb::SignedPeriodBatch::decode(short.encode().as_slice()).unwrap();
    m.pruned[0].digest.pop();
    invalid(
        "pruned digest",
        SignedPeriodBatch::decode(&m.encode_to_vec()).unwrap_err(),
    );
}

fn arb_key() -> impl Strategy<Value = DiagnosisKey> {
    let today = day_of_unix(NOW);
    (
        any::<[u8; 16]>(),
        1..14u32,
        0..144u32,
        1..=144u32,
        0..=8u8,
        -14..=14i8,
    )
        .prop_map(move |(tek, back, offset, period, tr, dso)| DiagnosisKey {
            tek: Tek(tek),
            rolling_start: day_start_interval(today - back) + offset,
            rolling_period: period,
            transmission_risk: tr,
            days_since_onset: dso,
        })
}

proptest! {
    #[test]
    fn any_period_round_trips(keys in prop::collection::vec(arb_key(), 1..60)) {
        let (key, trust) = authority();
        let batch = PeriodBatch::from_keys(ORIGIN, 9, NOW, keys.clone());
        let signed = SignedPeriodBatch::decode(&batch.sign_with(&key, Publication::default()).unwrap().encode()).unwrap();
        let verified = signed.verify(&trust, NOW).unwrap();
        prop_assert_eq!(&verified, &batch);
        // Every input key is published once, unless another key of its day has its TEK.
        let mut distinct: Vec<(u32, Tek)> = keys.iter().map(|k| (day_of_interval(k.rolling_start), k.tek.clone())).collect();
        distinct.sort_unstable();
        distinct.dedup();
        prop_assert_eq!(verified.keys().count(), distinct.len());
        for k in verified.keys() {
            prop_assert!(keys.contains(k));
        }
    }
}

#[test]
fn a_published_batch_is_decoded_by_the_version_it_starts_with() {
    let (signer, trust) = authority();
    let period = exported(&signer);
    let day = Batch {
        origin: ORIGIN.into(),
        sequence: 3,
        created_at: NOW - 60,
        day: day_of_unix(NOW) - 1,
        keys: vec![diagnosis_key(11, day_of_unix(NOW) - 1, 0)],
    }
    .sign(&signer)
    .unwrap();

    let v2 = PublishedBatch::decode(&period.without_export_signatures().encode()).unwrap();
    assert_eq!(v2.id(), period.id());
    assert_eq!(v2.claimed_sequence(), Some(4));
    let keys = v2.verify(&trust, NOW).unwrap();
    assert_eq!((keys.sequence, keys.keys.len()), (4, 5));
    let expiry = period
        .verify(&trust, NOW)
        .unwrap()
        .days
        .iter()
        .map(|d| d.expires_at())
        .max();
    assert_eq!(Some(keys.expires_at), expiry);

    let v1 = PublishedBatch::decode(&day.encode()).unwrap();
    assert_eq!(v1, PublishedBatch::Day(day.clone()));
    assert_eq!(v1.id(), <[u8; 32]>::from(Sha256::digest(day.encode())));
    assert_eq!(
        v1.verify(&trust, NOW).unwrap().keys,
        day.verify(&trust, NOW).unwrap().keys
    );

    // Neither version: version 1's decoder says what is wrong.
    assert!(matches!(
        PublishedBatch::decode(b"not a batch"),
        Err(WireError::Malformed { .. })
    ));
    let mut header = pb::PeriodBatchHeader::decode(period.header.as_slice()).unwrap();
    header.version = 3;
    let three = SignedPeriodBatch {
        header: header.encode_to_vec(),
        ..period
    };
    assert_eq!(
        PublishedBatch::decode(&three.encode()),
        Err(WireError::NonCanonical("signed batch"))
    );
}

#[test]
fn a_batch_built_by_hand_is_signed_only_in_canonical_form() {
    let (key, _) = authority();
    let today = day_of_unix(NOW);
    let mut wrong_day = period();
    wrong_day.days[0]
        .keys
        .push(diagnosis_key(200, today - 2, 0));
    assert_eq!(
        wrong_day
            .sign_with(&key, Publication::default())
            .unwrap_err(),
        WireError::WrongDay {
            key_day: today - 2,
            batch_day: today - 10
        }
    );
    let mut unsorted = period();
    unsorted.days[0].keys.reverse();
    assert!(matches!(
        unsorted.sign_with(&key, Publication::default()),
        Err(WireError::InvalidField {
            field: "key_data",
            ..
        })
    ));
    let mut days_unsorted = period();
    days_unsorted.days.swap(0, 1);
    assert!(matches!(
        days_unsorted.sign_with(&key, Publication::default()),
        Err(WireError::InvalidField { field: "days", .. })
    ));
}

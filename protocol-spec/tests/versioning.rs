//! SPEC.md §9: how version 1 grows. The optional batch attachments (fields 7–9
//! of `BatchBody`) are covered by the batch signature, come in the pairs and
//! shapes §5.3 fixes, and leave a body without them unchanged; a field no
//! version-1 reader knows is refused, so any further field needs version 2.

#![allow(clippy::unwrap_used)]

use ed25519_dalek::Signer;
use p256::ecdsa::SigningKey as ExportSigningKey;
use prost::Message;
use traceless_protocol::wire::pb;
use traceless_protocol::*;

const NOW: u64 = 1_750_000_000;
const ORIGIN: &str = "test.health";

fn authority() -> (AuthorityKey, TrustList) {
    let key = AuthorityKey::generate(ORIGIN, 3);
    let mut trust = TrustList::new();
    trust.insert(ORIGIN, 3, key.verifying_key());
    (key, trust)
}

fn batch() -> Batch {
    let day = day_of_unix(NOW) - 1;
    Batch {
        origin: ORIGIN.into(),
        sequence: 4,
        created_at: NOW - 60,
        day,
        keys: (1..=3u8)
            .map(|i| DiagnosisKey {
                tek: Tek([i; 16]),
                rolling_start: day_start_interval(day),
                rolling_period: 144,
                transmission_risk: 4,
                days_since_onset: 1,
            })
            .collect(),
    }
}

/// A batch carrying the authority's export certificate and export signature.
fn attached(key: &AuthorityKey) -> SignedBatch {
    let export_key = ExportSigningKey::from_slice(&[5; 32]).unwrap();
    let certificate = ExportKeyCertificate {
        origin: ORIGIN.into(),
        signer: ExportSigner {
            key_id: "262".into(),
            key_version: "v1".into(),
        },
        region: "XX".into(),
        public_key: *export_key.verifying_key(),
        not_before: NOW - 86_400,
        not_after: NOW + 86_400,
    }
    .sign(key)
    .unwrap();
    batch()
        .sign_with(
            key,
            wire::Publication {
                export: Some((&certificate, &export_key)),
                risk_config: None,
            },
        )
        .unwrap()
}

/// `body` signed by `key` as §5.2 says, whatever it contains.
fn signed(key: &AuthorityKey, body: Vec<u8>) -> SignedBatch {
    let message = [BATCH_CONTEXT, &[0], &body].concat();
    SignedBatch {
        body,
        key_id: key.key_id,
        signature: key.signing_key.sign(&message).to_bytes(),
    }
}

fn edited(body: &[u8], edit: impl FnOnce(&mut pb::BatchBody)) -> Vec<u8> {
    let mut m = pb::BatchBody::decode(body).unwrap();
    edit(&mut m);
    m.encode_to_vec()
}

#[test]
fn a_body_without_attachments_is_the_body_they_were_added_to() {
    let (key, trust) = authority();
    let plain = batch().sign(&key).unwrap();
    let with = attached(&key);
    // Stripping fields 7 and 8 gives exactly the body signed without them.
    let stripped = edited(&with.body, |m| {
        m.export_key.clear();
        m.export_signature.clear();
    });
    assert_eq!(stripped, plain.body);
    assert_eq!(plain.verify(&trust, NOW).unwrap(), batch());
    // A phone reads the attached batch as the same keys; a node verifies the
    // attachments too.
    assert_eq!(with.verify(&trust, NOW).unwrap(), batch());
    let (_, attachments) = with.verify_with_attachments(&trust, NOW).unwrap();
    assert_eq!(attachments.export.unwrap().signature.len(), 64);
}

#[test]
fn the_batch_signature_covers_the_attachments() {
    let (key, trust) = authority();
    let with = attached(&key);
    // A relay that strips the attachments, or swaps the export signature,
    // keeps the authority's signature over the original body: it fails.
    let stripped = SignedBatch {
        body: edited(&with.body, |m| {
            m.export_key.clear();
            m.export_signature.clear();
        }),
        ..with.clone()
    };
    assert_eq!(
        stripped.verify(&trust, NOW),
        Err(WireError::BadSignature("batch"))
    );
    let swapped = SignedBatch {
        body: edited(&with.body, |m| m.export_signature[10] ^= 1),
        ..with.clone()
    };
    assert_eq!(
        swapped.verify(&trust, NOW),
        Err(WireError::BadSignature("batch"))
    );
}

#[test]
fn a_writer_sends_both_export_fields_and_the_fixed_64_byte_signature() {
    let (key, trust) = authority();
    let with = attached(&key);
    let alone = signed(&key, edited(&with.body, |m| m.export_signature.clear()));
    assert!(matches!(
        alone.verify(&trust, NOW),
        Err(WireError::InvalidField {
            field: "export_signature",
            ..
        })
    ));
    let signature_alone = signed(&key, edited(&with.body, |m| m.export_key.clear()));
    assert!(matches!(
        signature_alone.verify(&trust, NOW),
        Err(WireError::InvalidField {
            field: "export_signature",
            ..
        })
    ));
    // The DER form GAEN's export.sig carries is not the batch's form.
    let r_s = pb::BatchBody::decode(with.body.as_slice())
        .unwrap()
        .export_signature;
    let der = p256::ecdsa::Signature::from_slice(&r_s)
        .unwrap()
        .to_der()
        .as_bytes()
        .to_vec();
    let der_body = signed(&key, edited(&with.body, |m| m.export_signature = der));
    assert!(matches!(
        der_body.verify(&trust, NOW),
        Err(WireError::InvalidField {
            field: "export_signature",
            ..
        })
    ));
}

/// The canonical check compares the body with its message re-encoded: the same
/// message with its fields out of order, or one field written twice, decodes to
/// the same batch and is refused.
#[test]
fn a_batch_body_encoded_any_other_way_is_refused_even_when_signed() {
    let (key, trust) = authority();
    for body in [batch().sign(&key).unwrap().body, attached(&key).body] {
        let m = pb::BatchBody::decode(body.as_slice()).unwrap();
        let day_first = [
            pb::BatchBody {
                day: m.day,
                ..Default::default()
            }
            .encode_to_vec(),
            pb::BatchBody {
                day: 0,
                ..m.clone()
            }
            .encode_to_vec(),
        ]
        .concat();
        let day_twice = [
            body.clone(),
            pb::BatchBody {
                day: m.day,
                ..Default::default()
            }
            .encode_to_vec(),
        ]
        .concat();
        for variant in [day_first, day_twice] {
            assert_eq!(pb::BatchBody::decode(variant.as_slice()).unwrap(), m);
            assert_eq!(
                signed(&key, variant).verify(&trust, NOW),
                Err(WireError::NonCanonical("batch body"))
            );
        }
        assert!(
            signed(&key, body).verify(&trust, NOW).is_ok(),
            "the control verifies"
        );
    }
}

#[test]
fn a_field_version_1_does_not_know_is_refused_even_when_signed() {
    let (key, trust) = authority();
    for body in [batch().sign(&key).unwrap().body, attached(&key).body] {
        // Field 10 (varint 1), signed by the authority: still refused, so a
        // new field in a signed message needs version 2 and a new context.
        let extended = signed(&key, [body.as_slice(), &[0x50, 0x01]].concat());
        assert_eq!(
            extended.verify(&trust, NOW),
            Err(WireError::NonCanonical("batch body"))
        );
    }
    let v2 = signed(
        &key,
        edited(&batch().sign(&key).unwrap().body, |m| m.version = 2),
    );
    assert!(matches!(
        v2.verify(&trust, NOW),
        Err(WireError::UnsupportedVersion { .. })
    ));
}

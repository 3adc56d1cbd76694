//! The protocol end to end: phones meet, one tests positive, the authority
//! publishes, every phone verifies and matches locally. Also what each party can
//! and cannot see in what it handles.

use traceless_protocol::*;
use traceless_tests::fixtures::{Authority, Phone};

const DAY0: u32 = 20_250;

fn at(day: u32, minute: u64) -> u64 {
    u64::from(day) * 86_400 + minute * 60
}

/// Alice and Bob spend 25 minutes close together; Carol is far away all day.
fn scenario() -> (Phone, Phone, Phone) {
    let (mut alice, mut bob, carol) = (Phone::new(), Phone::new(), Phone::new());
    for minute in (600..625).step_by(5) {
        let t = at(DAY0, minute);
        let ad = alice.advertise(t);
        bob.hear(ad, t, 52, 300);
        let ad = bob.advertise(t);
        alice.hear(ad, t, 52, 300);
    }
    (alice, bob, carol)
}

#[test]
fn a_close_contact_is_notified_and_a_stranger_is_not() {
    let (mut alice, bob, carol) = scenario();
    let mut authority = Authority::new("test.health");
    let trust = authority.trust_list();
    let now = at(DAY0 + 2, 0);

    let keys = alice.diagnosis_keys(&[DAY0 - 1, DAY0, DAY0 + 1], DAY0);
    let published: Vec<DiagnosisKey> = authority
        .publish(&keys, now)
        .iter()
        .flat_map(|wire| {
            SignedBatch::decode(wire)
                .and_then(|b| b.verify(&trust, now))
                .expect("authority batches verify")
                .keys
        })
        .collect();

    let bob_days = bob.exposure(&published);
    assert_eq!(bob_days.len(), 1, "{bob_days:?}");
    assert_eq!(bob_days[0].day, DAY0);
    assert_eq!(bob_days[0].minutes, 25.0);
    assert!(bob_days[0].high_risk);

    assert!(carol.exposure(&published).is_empty());
}

#[test]
fn a_batch_from_an_untrusted_authority_is_not_accepted() {
    let (mut alice, _, _) = scenario();
    let mut rogue = Authority::new("test.health");
    let trusted = Authority::new("test.health").trust_list();
    let now = at(DAY0 + 1, 0);
    let wires = rogue.publish(&alice.diagnosis_keys(&[DAY0], DAY0), now);
    // Control: there is something to refuse, and it is a valid batch of its own
    // signer (so the refusal is the trust list's doing, not a broken batch).
    assert!(!wires.is_empty());
    for wire in wires {
        let signed = SignedBatch::decode(&wire).unwrap();
        assert!(signed.verify(&rogue.trust_list(), now).is_ok());
        let err = signed.verify(&trusted, now).unwrap_err();
        assert_eq!(err, WireError::BadSignature("batch"));
    }
}

#[test]
fn a_relay_sees_keys_but_no_phone_identifier() {
    // What a relay stores is the batch: the diagnosed phone's TEKs (public by design)
    // and metadata. It must not carry anything the contact phone heard or sent.
    let (mut alice, bob, _) = scenario();
    let mut authority = Authority::new("test.health");
    let keys = alice.diagnosis_keys(&[DAY0], DAY0);
    let wire = authority.publish(&keys, at(DAY0 + 1, 0)).concat();
    // Control: both phones heard tokens, so the loops below check something.
    assert!(!bob.heard.is_empty() && !alice.heard.is_empty());
    for o in &bob.heard {
        assert!(
            !contains(&wire, &o.rpi.0),
            "a broadcast token appears in the batch"
        );
    }
    for o in &alice.heard {
        assert!(
            !contains(&wire, &o.rpi.0),
            "a token Alice heard (Bob's) appears in the batch"
        );
    }
    assert!(
        contains(&wire, &keys[0].tek.0),
        "the published TEK is in the batch"
    );
}

#[test]
fn a_sniffer_cannot_link_tokens_of_one_day_without_the_key() {
    // A sniffer records every token Alice and Bob broadcast on one day (144
    // intervals each) and tries to tell same-phone pairs from cross-phone pairs
    // by how close the tokens are (Hamming distance; a scheme with any per-phone
    // structure, a shared prefix, a counter, a common key stream, shows there).
    let (mut alice, mut bob) = (Phone::new(), Phone::new());
    let day = |p: &mut Phone| -> Vec<[u8; 16]> {
        (0..144)
            .map(|i| p.advertise(at(DAY0, i * 10)).rpi.0)
            .collect()
    };
    let (a, b) = (day(&mut alice), day(&mut bob));
    let distance = |x: &[u8; 16], y: &[u8; 16]| -> u32 {
        x.iter().zip(y).map(|(p, q)| (p ^ q).count_ones()).sum()
    };
    // Mean distance of same-phone pairs minus that of cross-phone pairs.
    let linkability = |a: &[[u8; 16]], b: &[[u8; 16]]| -> f64 {
        let mut same = (0.0, 0.0);
        for t in [a, b] {
            for i in 0..t.len() {
                for j in i + 1..t.len() {
                    same.0 += f64::from(distance(&t[i], &t[j]));
                    same.1 += 1.0;
                }
            }
        }
        let mut cross = (0.0, 0.0);
        for x in a {
            for y in b {
                cross.0 += f64::from(distance(x, y));
                cross.1 += 1.0;
            }
        }
        cross.0 / cross.1 - same.0 / same.1
    };
    // ~20 k pairs each side: the mean of a 128-bit distance has a standard error
    // under 0.05 bits, so one bit of difference would be a real signal.
    let gap = linkability(&a, &b);
    assert!(
        gap.abs() < 1.0,
        "same-phone tokens are {gap:.2} bits closer"
    );
    // Control: the same statistic sees a weak scheme (each phone's tokens share
    // their first 4 bytes) at once.
    let weak = |t: &[[u8; 16]]| -> Vec<[u8; 16]> {
        t.iter()
            .map(|r| {
                let mut r = *r;
                r[..4].copy_from_slice(&t[0][..4]);
                r
            })
            .collect()
    };
    assert!(linkability(&weak(&a), &weak(&b)) > 8.0);
    // With the key (once Alice publishes her TEK), every token of hers links,
    // and none of Bob's.
    let tek = alice.diagnosis_keys(&[DAY0], DAY0)[0].tek.clone();
    let first = day_start_interval(DAY0);
    let derived: Vec<[u8; 16]> = (0..144).map(|i| tek.rpik().rpi(first + i).0).collect();
    assert!(a.iter().all(|r| derived.contains(r)));
    assert!(!b.iter().any(|r| derived.contains(r)));
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

//! Witnessing (SPEC.md §8.3, C2SP tlog-witness semantics): a witness cosigns a
//! node's checkpoints while they stay consistent, catches a node that signs two
//! roots for one size, and refuses forged notes, bad proofs and stale sizes
//! with typed errors, its state unchanged.
#![allow(clippy::unwrap_used)]

use traceless_node::federation::witness::{Config, Event, Witness, WitnessError};
use traceless_protocol::ed25519_dalek::SigningKey;
use traceless_protocol::log::*;

const NOW: u64 = 1_700_000_000;

fn log_of(n: u64, salt: u8) -> MemoryTree {
    let mut t = MemoryTree::new();
    for i in 0..n {
        t.push(&[salt, i as u8]);
    }
    t
}

fn note(key: &SigningKey, t: &MemoryTree) -> Vec<u8> {
    Checkpoint {
        origin: log_origin(&key.verifying_key().to_bytes()),
        size: t.size(),
        root: t.root(),
    }
    .sign(key)
}

fn witness(seed: u8) -> Witness {
    Witness::new(
        SigningKey::from_bytes(&[seed; 32]),
        Config {
            name: format!("relay-{seed}.example"),
        },
    )
}

#[test]
fn consistent_checkpoints_are_cosigned_and_the_cosignature_verifies() {
    let gateway = SigningKey::from_bytes(&[1; 32]);
    let log = NoteKey::of_node(gateway.verifying_key());
    let mut w = witness(2);
    let t3 = log_of(3, 0);
    let Event::Cosigned { note: n3, .. } =
        w.add_checkpoint(0, &[], &note(&gateway, &t3), NOW).unwrap()
    else {
        panic!()
    };
    let v = verify_checkpoint(&n3, &log, &[w.note_key()]).unwrap();
    v.require_witnesses(1).unwrap();
    let t9 = log_of(9, 0);
    let proof = t9.prove_consistency(3, 9).unwrap();
    let e = w
        .add_checkpoint(3, &proof, &note(&gateway, &t9), NOW + 1)
        .unwrap();
    assert!(matches!(e, Event::Cosigned { size: 9, .. }));
    assert_eq!(w.latest(&log.name), Some((9, t9.root())));
}

#[test]
fn a_log_that_signs_two_roots_for_one_size_is_caught_and_no_longer_cosigned() {
    let gateway = SigningKey::from_bytes(&[1; 32]);
    let log = NoteKey::of_node(gateway.verifying_key());
    let mut w = witness(2);
    let honest = log_of(5, 0);
    let forked = log_of(5, 9);
    w.add_checkpoint(0, &[], &note(&gateway, &honest), NOW)
        .unwrap();
    let e = w
        .add_checkpoint(5, &[], &note(&gateway, &forked), NOW)
        .unwrap();
    let Event::Equivocation {
        size,
        first,
        second,
        ..
    } = e
    else {
        panic!("{e:?}")
    };
    assert_eq!(size, 5);
    // The evidence: both notes verify under the log's key, with different roots.
    let a = verify_checkpoint(&first, &log, &[]).unwrap().checkpoint;
    let b = verify_checkpoint(&second, &log, &[]).unwrap().checkpoint;
    assert_eq!(a.size, b.size);
    assert_ne!(a.root, b.root);
    assert!(w.is_equivocating(&log.name));
    let t6 = log_of(6, 0);
    let p = t6.prove_consistency(5, 6).unwrap();
    assert_eq!(
        w.add_checkpoint(5, &p, &note(&gateway, &t6), NOW),
        Err(WitnessError::Equivocating(log.name.clone()))
    );
}

#[test]
fn forged_notes_bad_proofs_and_stale_sizes_are_refused_and_change_nothing() {
    let gateway = SigningKey::from_bytes(&[1; 32]);
    let log = NoteKey::of_node(gateway.verifying_key());
    let mut w = witness(2);
    let t4 = log_of(4, 0);
    w.add_checkpoint(0, &[], &note(&gateway, &t4), NOW).unwrap();
    let before = w.latest(&log.name);

    // Signed by another key under the gateway's origin.
    let t8 = log_of(8, 0);
    let forged = Checkpoint {
        origin: log.name.clone(),
        size: 8,
        root: t8.root(),
    }
    .sign(&SigningKey::from_bytes(&[6; 32]));
    assert!(matches!(
        w.add_checkpoint(4, &t8.prove_consistency(4, 8).unwrap(), &forged, NOW),
        Err(WitnessError::Checkpoint(LogError::NotSignedByLog(_)))
    ));
    // A proof for another size, and a flipped proof.
    let n8 = note(&gateway, &t8);
    assert!(matches!(
        w.add_checkpoint(4, &t8.prove_consistency(3, 8).unwrap(), &n8, NOW),
        Err(WitnessError::BadProof(_))
    ));
    let mut bad = t8.prove_consistency(4, 8).unwrap();
    bad[0][0] ^= 1;
    assert_eq!(
        w.add_checkpoint(4, &bad, &n8, NOW),
        Err(WitnessError::BadProof(LogError::RootMismatch))
    );
    // A proof from a size the witness does not hold; an older checkpoint.
    assert_eq!(
        w.add_checkpoint(2, &t8.prove_consistency(2, 8).unwrap(), &n8, NOW),
        Err(WitnessError::Conflict { latest: 4, old: 2 })
    );
    assert_eq!(
        w.add_checkpoint(0, &[], &note(&gateway, &log_of(2, 0)), NOW),
        Err(WitnessError::Conflict { latest: 4, old: 0 })
    );
    // Truncated note; an origin that names no node log.
    let n = note(&gateway, &t8);
    assert!(matches!(
        w.add_checkpoint(4, &[], &n[..n.len() / 2], NOW),
        Err(WitnessError::Checkpoint(_))
    ));
    let other = Checkpoint {
        origin: "example.com/log".into(),
        size: 1,
        root: [0; 32],
    }
    .sign(&gateway);
    assert_eq!(
        w.add_checkpoint(0, &[], &other, NOW),
        Err(WitnessError::UnknownLog("example.com/log".into()))
    );
    assert_eq!(w.latest(&log.name), before, "bad input changed the witness");
    assert!(!w.is_equivocating(&log.name));
}

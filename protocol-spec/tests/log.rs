//! The transparency log (SPEC.md §8.3): RFC 6962 hashing and proofs checked byte
//! for byte against the transparency-dev reference vectors
//! (`vectors/merkle-rfc6962.json`), every proof of small trees verified and
//! every tampering refused, checkpoints and cosignatures, log entries, and the
//! project's own vectors (`vectors/log-v1.json`; `TRACELESS_WRITE_VECTORS=1`
//! rewrites them, only ever on purpose).

#![allow(clippy::unwrap_used)]

use serde_json::{json, Value};
use traceless_protocol::ed25519_dalek::SigningKey;
use traceless_protocol::log::checkpoint::merge_signatures;
use traceless_protocol::log::tree::{
    consistency_proof_len, empty_root, inclusion_proof_len, verify_consistency, verify_inclusion,
};
use traceless_protocol::log::*;
use traceless_protocol::wire::{DeletedRange, DeletionRecord};

fn h(s: &str) -> Hash {
    hex::decode(s).unwrap().try_into().unwrap()
}

fn hashes(v: &Value) -> Vec<Hash> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| h(x.as_str().unwrap()))
        .collect()
}

fn reference() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/vectors/merkle-rfc6962.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn reference_tree(v: &Value) -> (Vec<Vec<u8>>, MemoryTree) {
    let leaves: Vec<Vec<u8>> = v["leaves"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| hex::decode(l.as_str().unwrap()).unwrap())
        .collect();
    let mut t = MemoryTree::new();
    for l in &leaves {
        t.push(l);
    }
    (leaves, t)
}

#[test]
fn roots_and_proofs_match_the_transparency_dev_reference_vectors() {
    let v = reference();
    let (leaves, t) = reference_tree(&v);
    assert_eq!(
        MemoryTree::new().root(),
        h(v["empty_root"].as_str().unwrap())
    );
    assert_eq!(empty_root(), h(v["empty_root"].as_str().unwrap()));
    for (i, r) in v["roots"].as_array().unwrap().iter().enumerate() {
        assert_eq!(
            t.root_at(i as u64 + 1).unwrap(),
            h(r.as_str().unwrap()),
            "root {i}"
        );
    }
    for c in v["inclusion"].as_array().unwrap() {
        let (size, index) = (c["size"].as_u64().unwrap(), c["index"].as_u64().unwrap());
        let want = hashes(&c["proof"]);
        assert_eq!(t.prove_inclusion(index, size).unwrap(), want, "{c}");
        let root = t.root_at(size).unwrap();
        verify_inclusion(
            &leaf_hash(&leaves[index as usize]),
            index,
            size,
            &want,
            &root,
        )
        .unwrap();
    }
    for c in v["consistency"].as_array().unwrap() {
        let (old, new) = (c["old"].as_u64().unwrap(), c["new"].as_u64().unwrap());
        let want = hashes(&c["proof"]);
        assert_eq!(t.prove_consistency(old, new).unwrap(), want, "{c}");
        verify_consistency(
            old,
            new,
            &want,
            &t.root_at(old).unwrap(),
            &t.root_at(new).unwrap(),
        )
        .unwrap();
    }
}

/// Every inclusion and consistency proof of trees up to 40 leaves verifies, has
/// the length the sizes predict, and fails with a typed error when a hash is
/// flipped, a hash is dropped, or it is checked for another size.
#[test]
fn every_small_proof_verifies_and_every_tampering_is_refused() {
    let mut t = MemoryTree::new();
    for i in 0..40u32 {
        t.push(&i.to_be_bytes());
    }
    for size in 1..=40u64 {
        let root = t.root_at(size).unwrap();
        for index in 0..size {
            let leaf = leaf_hash(&(index as u32).to_be_bytes());
            let proof = t.prove_inclusion(index, size).unwrap();
            assert_eq!(proof.len(), inclusion_proof_len(index, size));
            verify_inclusion(&leaf, index, size, &proof, &root).unwrap();
            for j in 0..proof.len() {
                let mut bad = proof.clone();
                bad[j][0] ^= 1;
                assert_eq!(
                    verify_inclusion(&leaf, index, size, &bad, &root),
                    Err(LogError::RootMismatch)
                );
            }
            if let Some((_, short)) = proof.split_last() {
                assert!(matches!(
                    verify_inclusion(&leaf, index, size, short, &root),
                    Err(LogError::ProofLength { .. })
                ));
            }
            if size < 40 {
                // The proof for this size, checked against the next size's root.
                let next = t.root_at(size + 1).unwrap();
                assert!(matches!(
                    verify_inclusion(&leaf, index, size + 1, &proof, &next),
                    Err(LogError::ProofLength { .. } | LogError::RootMismatch)
                ));
            }
        }
        assert_eq!(
            verify_inclusion(&root, size, size, &[], &root),
            Err(LogError::IndexOutOfRange { index: size, size })
        );
        for old in 1..=size {
            let proof = t.prove_consistency(old, size).unwrap();
            assert_eq!(
                proof.len(),
                consistency_proof_len(old, size),
                "{old}->{size}"
            );
            let old_root = t.root_at(old).unwrap();
            verify_consistency(old, size, &proof, &old_root, &root).unwrap();
            for j in 0..proof.len() {
                let mut bad = proof.clone();
                bad[j][31] ^= 0x80;
                assert_eq!(
                    verify_consistency(old, size, &bad, &old_root, &root),
                    Err(LogError::RootMismatch),
                    "{old}->{size} hash {j}"
                );
            }
            let mut forked = old_root;
            forked[0] ^= 1;
            assert!(matches!(
                verify_consistency(old, size, &proof, &forked, &root),
                Err(LogError::RootMismatch)
            ));
        }
    }
    assert_eq!(
        t.prove_consistency(5, 3),
        Err(LogError::SizeOrder { old: 5, new: 3 })
    );
    assert!(matches!(
        t.prove_inclusion(0, 41),
        Err(LogError::BeyondLog { size: 41, .. })
    ));
}

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn witness(seed: u8) -> NoteKey {
    NoteKey {
        name: format!("witness-{seed}.example"),
        key: key(seed).verifying_key(),
    }
}

fn checkpoint(size: u64) -> Checkpoint {
    let mut t = MemoryTree::new();
    for i in 0..size {
        t.push(&i.to_be_bytes());
    }
    Checkpoint {
        origin: log_origin(&key(1).verifying_key().to_bytes()),
        size,
        root: t.root(),
    }
}

#[test]
fn checkpoints_verify_with_their_cosignatures_and_forgeries_are_refused() {
    let log = NoteKey::of_node(key(1).verifying_key());
    let cp = checkpoint(7);
    let note = cp.sign(&key(1));
    let v = verify_checkpoint(&note, &log, &[witness(2), witness(3)]).unwrap();
    assert_eq!(v.checkpoint, cp);
    assert!(v.cosignatures.is_empty());
    assert_eq!(
        v.require_witnesses(1),
        Err(LogError::TooFewWitnesses {
            found: 0,
            required: 1
        })
    );

    let w2 = cosign(&note, &witness(2).name, &key(2), 1_750_000_000).unwrap();
    let w3 = cosign(&note, &witness(3).name, &key(3), 1_750_000_001).unwrap();
    // An unknown witness's cosignature is ignored, not counted and not an error.
    let w9 = cosign(&note, &witness(9).name, &key(9), 1).unwrap();
    let merged = merge_signatures(&w2, &w3).unwrap().unwrap();
    let merged = merge_signatures(&merged, &w9).unwrap().unwrap();
    let v = verify_checkpoint(&merged, &log, &[witness(2), witness(3)]).unwrap();
    v.require_witnesses(2).unwrap();
    assert_eq!(
        v.cosignatures
            .iter()
            .map(|c| (c.witness.as_str(), c.time))
            .collect::<Vec<_>>(),
        [
            ("witness-2.example", 1_750_000_000),
            ("witness-3.example", 1_750_000_001)
        ]
    );

    // Another checkpoint's text does not merge.
    let other = checkpoint(8).sign(&key(1));
    assert_eq!(merge_signatures(&note, &other).unwrap(), None);

    // A forged tree size under the log's signature.
    let forged = String::from_utf8(note.clone())
        .unwrap()
        .replacen("\n7\n", "\n8\n", 1);
    assert_eq!(
        verify_checkpoint(forged.as_bytes(), &log, &[]),
        Err(LogError::BadSignature {
            name: log.name.clone()
        })
    );
    // Signed by another key under the log's name.
    let mut by_other = cp.clone();
    by_other.origin = log.name.clone();
    let impostor = NoteKey::of_node(key(5).verifying_key());
    assert_eq!(
        verify_checkpoint(&by_other.sign(&key(5)), &impostor, &[]),
        Err(LogError::WrongOrigin {
            expected: impostor.name.clone(),
            found: log.name.clone()
        })
    );
    assert_eq!(
        verify_checkpoint(
            &note,
            &NoteKey {
                name: log.name.clone(),
                key: key(5).verifying_key()
            },
            &[]
        ),
        Err(LogError::NotSignedByLog(log.name.clone()))
    );
    // A witness cosignature with a flipped timestamp.
    let text = String::from_utf8(w2.clone()).unwrap();
    let line = text.lines().last().unwrap();
    let b64 = line.rsplit(' ').next().unwrap();
    use base64::Engine;
    let mut raw = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap();
    raw[11] ^= 1;
    let tampered = text.replace(b64, &base64::engine::general_purpose::STANDARD.encode(raw));
    assert_eq!(
        verify_checkpoint(tampered.as_bytes(), &log, &[witness(2)]),
        Err(LogError::BadSignature {
            name: witness(2).name
        })
    );
    // Truncated, oversized, extension lines, bad root.
    assert!(matches!(
        verify_checkpoint(&note[..note.len() - 10], &log, &[]),
        Err(LogError::Malformed { .. })
    ));
    assert!(matches!(
        verify_checkpoint(&vec![b'a'; MAX_CHECKPOINT_LEN + 1], &log, &[]),
        Err(LogError::Oversized { .. })
    ));
    assert!(matches!(
        Checkpoint::parse_body(&format!("{}extension\n", cp.body())),
        Err(LogError::Malformed { .. })
    ));
    assert!(matches!(
        Checkpoint::parse_body(&cp.body().replacen("\n7\n", "\n07\n", 1)),
        Err(LogError::NonCanonical(_))
    ));
}

fn deletion_record() -> traceless_protocol::wire::SignedDeletionRecord {
    DeletionRecord {
        index: 0,
        previous_hash: DeletionRecord::GENESIS_HASH,
        deleted_at: 1_750_000_000,
        node_id: key(1).verifying_key().to_bytes(),
        deleted: vec![
            DeletedRange {
                origin: "de.rki".into(),
                first_sequence: 1,
                last_sequence: 4,
                key_count: 560,
                day: 20_236,
            },
            DeletedRange {
                origin: "de.rki".into(),
                first_sequence: 1,
                last_sequence: 2,
                key_count: 300,
                day: 20_236,
            },
        ],
    }
    .sign(&key(1))
    .unwrap()
}

fn events() -> Vec<Event> {
    vec![
        Event::TrustList {
            digest: [7; 32],
            authorities: 2,
            at: 1_750_000_000,
        },
        Event::Published {
            form: PublicationForm::Batch,
            origin: "de.rki".into(),
            sequence: 17,
            day: 20_251,
            key_count: 140,
            content_id: [0xab; 32],
            at: 1_750_000_100,
        },
        Event::Published {
            form: PublicationForm::Filter,
            origin: "de.rki".into(),
            sequence: 3,
            day: 20_251,
            key_count: 900,
            content_id: [0xcd; 32],
            at: 1_750_000_200,
        },
        Event::CodesIssued {
            actor: "case-worker.7".into(),
            count: 5,
            at: 1_750_000_300,
        },
        Event::CodesDeleted {
            count: 3,
            at: 1_750_000_400,
        },
        Event::Deleted {
            kinds: vec![DeletionKind::Batch, DeletionKind::Filter],
            record: deletion_record(),
        },
        Event::Deleted {
            kinds: vec![],
            record: deletion_record(),
        },
    ]
}

/// The account entries of SPEC.md §8.4 (published beside the log vectors,
/// outside their tree, so the older vectors stay byte for byte).
fn account_events() -> Vec<Event> {
    vec![
        Event::AccountChanged {
            actor: "operator-cli".into(),
            action: AccountAction::Created,
            target: "lead.1".into(),
            roles: OperatorRole::ALL.to_vec(),
            at: 1_750_000_600,
        },
        Event::AccountChanged {
            actor: "lead.1".into(),
            action: AccountAction::RolesChanged,
            target: "case-worker.7".into(),
            roles: vec![OperatorRole::IssueCodes],
            at: 1_750_000_700,
        },
        Event::AccountChanged {
            actor: "lead.1".into(),
            action: AccountAction::PasswordReset,
            target: "case-worker.7".into(),
            roles: vec![OperatorRole::IssueCodes],
            at: 1_750_000_800,
        },
        Event::AccountChanged {
            actor: "lead.1".into(),
            action: AccountAction::Disabled,
            target: "case-worker.7".into(),
            roles: vec![],
            at: 1_750_000_900,
        },
    ]
}

#[test]
fn account_entries_are_canonical() {
    for bad in [
        &b"account lead.1 created x issue-codes,issue-codes 1\n"[..],
        b"account lead.1 created x read-audit,issue-codes 1\n",
    ] {
        assert!(
            matches!(Event::decode(bad), Err(LogError::NonCanonical(_))),
            "{:?}",
            String::from_utf8_lossy(bad)
        );
    }
    for bad in [
        &b"account lead.1 created x admin 1\n"[..],
        b"account lead.1 promoted x - 1\n",
        b"account Lead created x - 1\n",
        b"account lead.1 created X - 1\n",
        b"account lead.1 created x  1\n",
    ] {
        assert!(
            matches!(Event::decode(bad), Err(LogError::Malformed { .. })),
            "{:?}",
            String::from_utf8_lossy(bad)
        );
    }
}

#[test]
fn entries_round_trip_and_bad_entries_are_refused() {
    for e in events().into_iter().chain(account_events()) {
        let bytes = e.encode();
        assert_eq!(Event::decode(&bytes).unwrap(), e);
        // Truncated anywhere: refused, never misread as another event.
        for cut in 0..bytes.len() {
            assert!(
                matches!(
                    Event::decode(&bytes[..cut]),
                    Err(LogError::Malformed { .. })
                ),
                "{cut} of {:?}",
                String::from_utf8_lossy(&bytes)
            );
        }
    }
    let bad = [
        &b"published batch de.rki 017 20251 140 abababababababababababababababababababababababababababababababab 1\n"[..],
        b"published batch DE 17 20251 140 abababababababababababababababababababababababababababababababab 1\n",
        b"codes-issued Alice 1 1\n",
        b"codes-issued a  1 1\n",
        b"deleted batch,filter AAAA\n",
        b"deleted batch ",
        b"nonsense 1\n",
    ];
    for b in bad {
        assert!(
            matches!(
                Event::decode(b),
                Err(LogError::Malformed { .. } | LogError::NonCanonical(_))
            ),
            "{:?}",
            String::from_utf8_lossy(b)
        );
    }
    assert!(matches!(
        Event::decode(b"published batch de.rki 017 20251 140 abababababababababababababababababababababababababababababababab 1\n"),
        Err(LogError::NonCanonical(_))
    ));
    // A deletion whose kinds do not match its ranges.
    let e = Event::Deleted {
        kinds: vec![DeletionKind::Batch],
        record: deletion_record(),
    };
    assert!(matches!(
        Event::decode(&e.encode()),
        Err(LogError::Malformed { .. })
    ));
}

/// The project's own vectors: a log of [`events`], its checkpoint signed by the
/// seed-1 key and cosigned by the seed-2 witness, and proofs.
#[test]
fn traceless_log_vectors() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/vectors/log-v1.json");
    let mut t = MemoryTree::new();
    let entries: Vec<Vec<u8>> = events().iter().map(Event::encode).collect();
    for e in &entries {
        t.push(e);
    }
    let log_key = key(1);
    let cp = Checkpoint {
        origin: log_origin(&log_key.verifying_key().to_bytes()),
        size: t.size(),
        root: t.root(),
    };
    let note = cosign(&cp.sign(&log_key), &witness(2).name, &key(2), 1_750_000_500).unwrap();
    let got = json!({
        "description": "Traceless transparency log (SPEC.md §8.3): log key = Ed25519 seed 32 x 0x01, witness key = seed 32 x 0x02; entries are leaf data (UTF-8); checkpoint is the cosigned note; proofs are hex, leaf side first.",
        "log_public_key": hex::encode(log_key.verifying_key().to_bytes()),
        "witness_name": witness(2).name,
        "witness_public_key": hex::encode(key(2).verifying_key().to_bytes()),
        "entries": entries.iter().map(|e| String::from_utf8(e.clone()).unwrap()).collect::<Vec<_>>(),
        "leaf_hashes": entries.iter().map(|e| hex::encode(leaf_hash(e))).collect::<Vec<_>>(),
        "root": hex::encode(t.root()),
        "checkpoint": String::from_utf8(note.clone()).unwrap(),
        "inclusion_3_of_7": t.prove_inclusion(3, 7).unwrap().iter().map(hex::encode).collect::<Vec<_>>(),
        "consistency_3_to_7": t.prove_consistency(3, 7).unwrap().iter().map(hex::encode).collect::<Vec<_>>(),
        "account_entries": account_events().iter().map(|e| String::from_utf8(e.encode()).unwrap()).collect::<Vec<_>>(),
        "account_leaf_hashes": account_events().iter().map(|e| hex::encode(leaf_hash(&e.encode()))).collect::<Vec<_>>(),
    });
    if std::env::var_os("TRACELESS_WRITE_VECTORS").is_some() {
        std::fs::write(path, serde_json::to_string_pretty(&got).unwrap() + "\n").unwrap();
    }
    let want: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert_eq!(got, want);
    let v = verify_checkpoint(
        want["checkpoint"].as_str().unwrap().as_bytes(),
        &NoteKey::of_node(log_key.verifying_key()),
        &[witness(2)],
    )
    .unwrap();
    v.require_witnesses(1).unwrap();
    assert_eq!(v.checkpoint, cp);
}

/// Measures proof sizes and verification time for a log of 10^6 entries
/// (prints; `cargo test --release -p traceless-protocol --test log -- --ignored
/// --nocapture`). Baseline in the same run: one SHA-256 leaf hash.
#[test]
#[ignore]
fn measure_proofs_of_a_million_entry_log() {
    use std::time::Instant;
    const N: u64 = 1_000_000;
    let mut t = MemoryTree::new();
    for i in 0..N {
        t.push(&i.to_be_bytes());
    }
    let root = t.root();
    let reps = 20_000u64;
    let start = Instant::now();
    let mut acc = 0u8;
    for i in 0..reps {
        acc ^= leaf_hash(&i.to_be_bytes())[0];
    }
    let per_hash = start.elapsed().as_secs_f64() / reps as f64;
    let mut incl_bytes = 0;
    let start = Instant::now();
    for i in 0..reps {
        let index = (i * 7919) % N;
        let proof = t.prove_inclusion(index, N).unwrap();
        incl_bytes = incl_bytes.max(proof.len() * 32);
        let s = Instant::now();
        verify_inclusion(&leaf_hash(&index.to_be_bytes()), index, N, &proof, &root).unwrap();
        let _ = s;
    }
    let gen_and_verify = start.elapsed().as_secs_f64() / reps as f64;
    let proofs: Vec<(u64, Vec<Hash>)> = (0..reps)
        .map(|i| {
            let index = (i * 7919) % N;
            (index, t.prove_inclusion(index, N).unwrap())
        })
        .collect();
    let start = Instant::now();
    for (index, proof) in &proofs {
        verify_inclusion(&leaf_hash(&index.to_be_bytes()), *index, N, proof, &root).unwrap();
    }
    let verify = start.elapsed().as_secs_f64() / reps as f64;
    let old = 999_000;
    let cproof = t.prove_consistency(old, N).unwrap();
    let old_root = t.root_at(old).unwrap();
    let start = Instant::now();
    for _ in 0..reps {
        verify_consistency(old, N, &cproof, &old_root, &root).unwrap();
    }
    let cverify = start.elapsed().as_secs_f64() / reps as f64;
    println!(
        "log of {N} entries: inclusion proof <= {incl_bytes} bytes, verify {:.1} us \
         ({:.1} leaf hashes); generate+verify {:.1} us; consistency {old}->{N}: {} bytes, \
         verify {:.1} us ({:.1} leaf hashes); one leaf hash {:.3} us [{acc}]",
        verify * 1e6,
        verify / per_hash,
        gen_and_verify * 1e6,
        cproof.len() * 32,
        cverify * 1e6,
        cverify / per_hash,
        per_hash * 1e6,
    );
}

/// Venue warning publications and deletions (SPEC.md §8.3, §12.10): the
/// entry's exact text, read back; a misspelt kind is refused.
#[test]
fn warning_entries_read_back_as_specified() {
    let published = Event::Published {
        form: PublicationForm::Warning,
        origin: "de.rki".into(),
        sequence: 4,
        day: 20_251,
        key_count: 3,
        content_id: [0xef; 32],
        at: 1_750_003_600,
    };
    let bytes = published.encode();
    assert_eq!(
        bytes,
        format!(
            "published warning de.rki 4 20251 3 {} 1750003600\n",
            "ef".repeat(32)
        )
        .into_bytes()
    );
    assert_eq!(Event::decode(&bytes).unwrap(), published);
    let deleted = Event::Deleted {
        kinds: vec![DeletionKind::Batch, DeletionKind::Warnings],
        record: deletion_record(),
    };
    let bytes = deleted.encode();
    assert!(bytes.starts_with(b"deleted batch,warnings "));
    assert_eq!(Event::decode(&bytes).unwrap(), deleted);
    let misspelt = String::from_utf8(bytes)
        .unwrap()
        .replace("warnings", "warning");
    assert!(matches!(
        Event::decode(misspelt.as_bytes()),
        Err(LogError::Malformed { .. })
    ));
}

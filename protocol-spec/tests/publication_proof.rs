//! Publication proofs (SPEC.md §8.3.1): a node's proof that its witnessed log
//! holds a batch's publication and deletion verifies against the batch's content
//! id, and every forgery, substitution or truncation is refused by kind.

#![allow(clippy::unwrap_used)]

use traceless_protocol::ed25519_dalek::SigningKey;
use traceless_protocol::log::*;
use traceless_protocol::wire::{DeletedRange, DeletionRecord};

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn witness(seed: u8) -> NoteKey {
    NoteKey::witness_of_node(key(seed).verifying_key())
}

const CONTENT: Hash = [0xab; 32];
const DELETED_AT: u64 = 1_751_300_000;

fn published(sequence: u64, content_id: Hash) -> Event {
    Event::Published {
        form: PublicationForm::Batch,
        origin: "de.rki".into(),
        sequence,
        day: 20_251,
        key_count: 140,
        content_id,
        at: 1_750_000_100 + sequence,
    }
}

/// A deletion record by `node` of de.rki 1..=4 (batches) and 5..=6 (filters).
fn deletion(node: u8) -> Event {
    let record = DeletionRecord {
        index: 0,
        previous_hash: DeletionRecord::GENESIS_HASH,
        deleted_at: DELETED_AT,
        node_id: key(node).verifying_key().to_bytes(),
        deleted: vec![
            DeletedRange {
                origin: "de.rki".into(),
                first_sequence: 1,
                last_sequence: 4,
                key_count: 560,
                day: 20_251,
            },
            DeletedRange {
                origin: "de.rki".into(),
                first_sequence: 5,
                last_sequence: 6,
                key_count: 2,
                day: 20_251,
            },
        ],
    }
    .sign(&key(node))
    .unwrap();
    Event::Deleted {
        kinds: vec![DeletionKind::Batch, DeletionKind::Filter],
        record,
    }
}

/// Node 1's log: trust list, batches 3 and 5, filter 7, node 1's deletion,
/// node 9's deletion, codes; checkpoint cosigned by witnesses 2 and 3.
struct Log {
    entries: Vec<Vec<u8>>,
    tree: MemoryTree,
    note: Vec<u8>,
}

fn log() -> Log {
    let events = [
        Event::TrustList {
            digest: [7; 32],
            authorities: 1,
            at: 1_750_000_000,
        },
        published(3, CONTENT),
        published(5, [0xcd; 32]),
        Event::Published {
            form: PublicationForm::Filter,
            origin: "de.rki".into(),
            sequence: 7,
            day: 20_251,
            key_count: 10,
            content_id: CONTENT,
            at: 1_750_000_200,
        },
        deletion(1),
        deletion(9),
        Event::CodesIssued {
            actor: "case-worker.1".into(),
            count: 3,
            at: 1_750_000_300,
        },
    ];
    let entries: Vec<Vec<u8>> = events.iter().map(Event::encode).collect();
    let mut tree = MemoryTree::new();
    for e in &entries {
        tree.push(e);
    }
    let cp = Checkpoint {
        origin: log_origin(&key(1).verifying_key().to_bytes()),
        size: tree.size(),
        root: tree.root(),
    };
    let mut note = cp.sign(&key(1));
    for w in [2, 3] {
        note = cosign(&note, &witness(w).name, &key(w), 1_750_000_500).unwrap();
    }
    Log {
        entries,
        tree,
        note,
    }
}

impl Log {
    fn inclusion(&self, index: u64) -> LogInclusion {
        LogInclusion {
            index,
            entry: self.entries[index as usize].clone(),
            path: self.tree.prove_inclusion(index, self.tree.size()).unwrap(),
        }
    }

    fn proof(&self, published: u64, deleted: Option<u64>) -> PublicationProof {
        PublicationProof {
            node_id: key(1).verifying_key().to_bytes(),
            checkpoint: self.note.clone(),
            published: self.inclusion(published),
            deleted: deleted.map(|d| self.inclusion(d)),
        }
    }
}

fn trusted() -> Vec<NoteKey> {
    vec![witness(2), witness(3)]
}

#[test]
fn a_publication_and_its_deletion_verify_against_a_witnessed_checkpoint() {
    let log = log();
    let p = log.proof(1, None);
    let v = PublicationProof::decode(&p.encode())
        .unwrap()
        .verify("de.rki", 3, &CONTENT, &trusted(), 2)
        .unwrap();
    assert_eq!(
        (v.index, v.day, v.key_count, v.published_at),
        (1, 20_251, 140, 1_750_000_103)
    );
    assert_eq!(v.checkpoint.cosignatures.len(), 2);
    assert_eq!(v.deleted, None);

    let v = log
        .proof(1, Some(4))
        .verify("de.rki", 3, &CONTENT, &trusted(), 2)
        .unwrap();
    assert_eq!(
        v.deleted,
        Some(VerifiedDeletion {
            index: 4,
            deleted_at: DELETED_AT
        })
    );
    // Off by default: no witness required, none trusted.
    log.proof(1, None)
        .verify("de.rki", 3, &CONTENT, &[], 0)
        .unwrap();
}

#[test]
fn too_few_trusted_witnesses_are_refused() {
    let log = log();
    let p = log.proof(1, None);
    assert_eq!(
        p.verify("de.rki", 3, &CONTENT, &trusted(), 3),
        Err(LogError::TooFewWitnesses {
            found: 2,
            required: 3
        })
    );
    // Cosignatures by keys the phone does not trust do not count.
    assert_eq!(
        p.verify("de.rki", 3, &CONTENT, &[witness(2), witness(4)], 2),
        Err(LogError::TooFewWitnesses {
            found: 1,
            required: 2
        })
    );
}

#[test]
fn a_proof_about_another_batch_or_other_bytes_is_refused() {
    let log = log();
    let mismatch = |r: Result<VerifiedPublication, LogError>| {
        assert!(matches!(r, Err(LogError::EntryMismatch(_))), "{r:?}")
    };
    // Other bytes under the same number (a node serving a batch not in its log).
    mismatch(
        log.proof(1, None)
            .verify("de.rki", 3, &[0xcd; 32], &trusted(), 2),
    );
    // The entry of batch 5 offered for batch 3, and another origin.
    mismatch(
        log.proof(2, None)
            .verify("de.rki", 3, &CONTENT, &trusted(), 2),
    );
    mismatch(
        log.proof(1, None)
            .verify("fr.sante", 3, &CONTENT, &trusted(), 2),
    );
    // A filter publication is not a batch.
    mismatch(
        log.proof(3, None)
            .verify("de.rki", 7, &CONTENT, &trusted(), 2),
    );
    // A non-publication entry as the publication.
    mismatch(
        log.proof(6, None)
            .verify("de.rki", 3, &CONTENT, &trusted(), 2),
    );
    // Batch 5 lies in the record's filter range: not a deletion of batch 5.
    mismatch(
        log.proof(2, Some(4))
            .verify("de.rki", 5, &[0xcd; 32], &trusted(), 2),
    );
    // A deletion signed by another node, though in this log.
    mismatch(
        log.proof(1, Some(5))
            .verify("de.rki", 3, &CONTENT, &trusted(), 2),
    );
    // A publication entry as the deletion.
    mismatch(
        log.proof(1, Some(2))
            .verify("de.rki", 3, &CONTENT, &trusted(), 2),
    );
}

#[test]
fn tampered_paths_indices_and_checkpoints_are_refused() {
    let log = log();
    let good = log.proof(1, Some(4));
    let verify = |p: &PublicationProof| p.verify("de.rki", 3, &CONTENT, &trusted(), 2);

    let mut p = good.clone();
    p.published.path.pop();
    assert!(matches!(verify(&p), Err(LogError::ProofLength { .. })));
    let mut p = good.clone();
    p.published.path[0][0] ^= 1;
    assert_eq!(verify(&p), Err(LogError::RootMismatch));
    let mut p = good.clone();
    p.published.index = 0;
    assert_eq!(verify(&p), Err(LogError::RootMismatch));
    let mut p = good.clone();
    p.deleted.as_mut().unwrap().path[1][5] ^= 1;
    assert_eq!(verify(&p), Err(LogError::RootMismatch));
    let mut p = good.clone();
    p.published.index = 7;
    assert!(matches!(
        verify(&p),
        Err(LogError::IndexOutOfRange { index: 7, size: 7 })
    ));
    // The log claimed to be another node's: its checkpoint names node 1.
    let mut p = good.clone();
    p.node_id = key(4).verifying_key().to_bytes();
    assert!(matches!(verify(&p), Err(LogError::WrongOrigin { .. })));
    // A changed tree head no longer carries the log's signature.
    let mut p = good.clone();
    let text = String::from_utf8(p.checkpoint.clone()).unwrap();
    p.checkpoint = text.replacen("\n7\n", "\n8\n", 1).into_bytes();
    assert!(
        matches!(
            verify(&p),
            Err(LogError::BadSignature { .. } | LogError::NotSignedByLog(_))
        ),
        "{:?}",
        verify(&p)
    );
    let mut p = good;
    p.node_id = (0..=255u8)
        .map(|i| [i; 32])
        .find(|b| traceless_protocol::ed25519_dalek::VerifyingKey::from_bytes(b).is_err())
        .unwrap();
    assert!(matches!(verify(&p), Err(LogError::Malformed { .. })));
}

#[test]
fn bad_encodings_are_refused_by_kind() {
    let log = log();
    let bytes = log.proof(1, Some(4)).encode();
    for cut in [0, 1, 10, bytes.len() / 2, bytes.len() - 1] {
        assert!(
            matches!(
                PublicationProof::decode(&bytes[..cut]),
                Err(LogError::Malformed { .. } | LogError::NonCanonical(_))
            ),
            "cut at {cut}"
        );
    }
    // An unknown field appended: one encoding only.
    let mut padded = bytes.clone();
    padded.extend_from_slice(&[0x28, 0x01]);
    assert_eq!(
        PublicationProof::decode(&padded),
        Err(LogError::NonCanonical("publication proof"))
    );
    let huge = vec![0u8; MAX_PUBLICATION_PROOF_LEN + 1];
    assert!(matches!(
        PublicationProof::decode(&huge),
        Err(LogError::Oversized { .. })
    ));
    // A path hash of the wrong length.
    let p = log.proof(1, None);
    let short = traceless_protocol::wire::pb::PublicationProof {
        node_id: p.node_id.to_vec(),
        checkpoint: p.checkpoint.clone(),
        published: Some(traceless_protocol::wire::pb::LogInclusion {
            index: 1,
            entry: p.published.entry.clone(),
            path: vec![vec![0; 31]],
        }),
        deleted: None,
    };
    assert!(matches!(
        PublicationProof::decode(&prost::Message::encode_to_vec(&short)),
        Err(LogError::Malformed { .. })
    ));
}

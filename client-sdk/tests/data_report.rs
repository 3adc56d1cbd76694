//! "Where is my data" and publication proofs on the phone (SPEC.md §8.3.1–2):
//! a patient's phone finds the batches that carry its uploaded keys, records
//! which nodes' witnessed logs hold them and when each deleted them; a phone
//! that requires proofs accepts a batch only with one cosigned by enough
//! trusted witnesses. Node logs here are built with the protocol crate's own
//! tree and checkpoint code, as a node builds them.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::*;
use sha2::{Digest, Sha256};
use traceless_protocol::ed25519_dalek::SigningKey;
use traceless_protocol::log::*;
use traceless_protocol::wire::{DeletedRange, DeletionRecord};
use traceless_protocol::{Clock, DiagnosisKey, ManualClock, Tek, Upload};
use traceless_sdk::{MasterKey, Sdk, SdkConfig, SdkError, SideFile, SledStorage, Storage, Table};

const CODE: &[u8] = b"TESTCODE0001";
const DELETED_AT: u64 = (DAY0 as u64 + 16) * 86_400;

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

/// A node's log of `events`, its checkpoint cosigned by the `witnesses` seeds.
struct NodeLog {
    node: u8,
    entries: Vec<Vec<u8>>,
    tree: MemoryTree,
    note: Vec<u8>,
}

impl NodeLog {
    fn new(node: u8, events: &[Event], witnesses: &[u8]) -> Self {
        let entries: Vec<Vec<u8>> = events.iter().map(Event::encode).collect();
        let mut tree = MemoryTree::new();
        for e in &entries {
            tree.push(e);
        }
        let cp = Checkpoint {
            origin: log_origin(&key(node).verifying_key().to_bytes()),
            size: tree.size(),
            root: tree.root(),
        };
        let mut note = cp.sign(&key(node));
        for &w in witnesses {
            let name = NoteKey::witness_of_node(key(w).verifying_key()).name;
            note = cosign(&note, &name, &key(w), DELETED_AT).unwrap();
        }
        NodeLog {
            node,
            entries,
            tree,
            note,
        }
    }

    fn inclusion(&self, index: u64) -> LogInclusion {
        LogInclusion {
            index,
            entry: self.entries[index as usize].clone(),
            path: self.tree.prove_inclusion(index, self.tree.size()).unwrap(),
        }
    }

    fn proof(&self, published: u64, deleted: Option<u64>) -> Vec<u8> {
        PublicationProof {
            node_id: key(self.node).verifying_key().to_bytes(),
            checkpoint: self.note.clone(),
            published: self.inclusion(published),
            deleted: deleted.map(|d| self.inclusion(d)),
        }
        .encode()
    }
}

/// The log entry a node writes when it stores `batch` as `origin`/`sequence`.
fn published(batch: &[u8], sequence: u64) -> Event {
    Event::Published {
        form: PublicationForm::Batch,
        origin: "test.health".into(),
        sequence,
        day: DAY0,
        key_count: 1,
        content_id: Sha256::digest(batch).into(),
        at: at(DAY0 + 1, 700),
    }
}

/// `node`'s signed deletion of test.health batches 1..=last.
fn deleted(node: u8, last: u64) -> Event {
    let record = DeletionRecord {
        index: 0,
        previous_hash: DeletionRecord::GENESIS_HASH,
        deleted_at: DELETED_AT,
        node_id: key(node).verifying_key().to_bytes(),
        deleted: vec![DeletedRange {
            origin: "test.health".into(),
            first_sequence: 1,
            last_sequence: last,
            key_count: last,
            day: DAY0,
        }],
    }
    .sign(&key(node))
    .unwrap();
    Event::Deleted {
        kinds: vec![DeletionKind::Batch],
        record,
    }
}

/// Alice uploads her key of DAY0; the authority publishes it as batch 1 and a
/// stranger's key as batch 2. Alice trusts the authority and witnesses 2 and 3.
struct World {
    clock: ManualClock,
    alice: Sdk,
    ours: Vec<u8>,
    theirs: Vec<u8>,
}

fn world(clock: ManualClock, mut alice: Sdk) -> World {
    let mut stranger = phone(&clock);
    stranger.advertisement().unwrap();
    alice.advertisement().unwrap();
    clock.set(at(DAY0 + 1, 600));
    let mut authority = Authority::new("test.health");
    let bundle = alice.diagnosis_upload(CODE, DAY0, &[]).unwrap();
    let ours = authority.publish_upload(&bundle, clock.now());
    assert_eq!(ours.len(), 1, "one key day");
    let theirs = stranger.diagnosis_upload(CODE, DAY0, &[]).unwrap();
    let theirs = authority.publish_upload(&theirs, clock.now()).remove(0);
    authority.trusted_by(&mut alice);
    for w in [2, 3] {
        alice.trust_witness(key(w).verifying_key());
    }
    World {
        clock,
        alice,
        ours: ours.into_iter().next().unwrap(),
        theirs,
    }
}

#[test]
fn a_patient_sees_which_batches_carry_their_keys_on_which_nodes_and_when_deleted() {
    let clock = ManualClock::new(at(DAY0, 600));
    let mut w = world(clock.clone(), phone(&clock));
    let report = w.alice.data_report().unwrap();
    assert_eq!(report.uploaded_at, Some(at(DAY0 + 1, 600)));
    assert!(report.keys_uploaded >= 1);
    assert!(report.publications.is_empty(), "nothing published yet");

    w.alice.sync_batch(&w.theirs).unwrap();
    assert!(w.alice.data_report().unwrap().publications.is_empty());
    w.alice.sync_batch(&w.ours).unwrap();
    let report = w.alice.data_report().unwrap();
    assert_eq!(report.publications.len(), 1);
    let p = &report.publications[0];
    assert_eq!(
        (p.origin.as_str(), p.sequence, p.day, p.keys, p.own_keys),
        ("test.health", 1, DAY0, 1, 1)
    );
    assert_eq!(p.content_id, <[u8; 32]>::from(Sha256::digest(&w.ours)));
    assert!(p.nodes.is_empty());

    // Two nodes' logs hold it; one of them later deletes it.
    let relay_a = NodeLog::new(
        10,
        &[published(&w.ours, 1), published(&w.theirs, 2)],
        &[2, 3],
    );
    let relay_b = NodeLog::new(11, &[published(&w.ours, 1)], &[2]);
    let p = w
        .alice
        .record_log_proof("https://relay-a.example", &relay_a.proof(0, None))
        .unwrap();
    assert_eq!(p.nodes.len(), 1);
    assert_eq!(
        (
            p.nodes[0].log_index,
            p.nodes[0].tree_size,
            p.nodes[0].witnesses
        ),
        (0, 2, 2)
    );
    assert_eq!(p.nodes[0].deleted_at, None);
    w.alice
        .record_log_proof("https://relay-b.example", &relay_b.proof(0, None))
        .unwrap();

    w.clock.set(DELETED_AT + 3600);
    let relay_a = NodeLog::new(
        10,
        &[
            published(&w.ours, 1),
            published(&w.theirs, 2),
            deleted(10, 2),
        ],
        &[2, 3],
    );
    let p = w
        .alice
        .record_log_proof("https://relay-a.example", &relay_a.proof(0, Some(2)))
        .unwrap();
    assert_eq!(p.nodes.len(), 2, "the node's entry is replaced, not added");
    let a = p.nodes.iter().find(|n| n.node.contains("relay-a")).unwrap();
    assert_eq!(
        (a.deleted_at, a.deletion_index),
        (Some(DELETED_AT), Some(2))
    );
    assert_eq!(a.tree_size, 3);
    let b = p.nodes.iter().find(|n| n.node.contains("relay-b")).unwrap();
    assert_eq!((b.deleted_at, b.witnesses), (None, 1));
}

#[test]
fn proofs_that_are_forged_or_about_someone_else_are_refused_and_change_nothing() {
    let clock = ManualClock::new(at(DAY0, 600));
    let mut w = world(clock.clone(), phone(&clock));
    w.alice.sync_batch(&w.ours).unwrap();
    w.alice.sync_batch(&w.theirs).unwrap();
    let before = w.alice.data_report().unwrap();
    let log = NodeLog::new(
        10,
        &[published(&w.ours, 1), published(&w.theirs, 2)],
        &[2, 3],
    );
    // The stranger's batch is not alice's to track.
    assert!(matches!(
        w.alice.record_log_proof("relay", &log.proof(1, None)),
        Err(SdkError::InvalidArgument(_))
    ));
    // A log that holds other bytes as batch 1.
    let lying = NodeLog::new(10, &[published(&w.theirs, 1)], &[2, 3]);
    assert!(matches!(
        w.alice.record_log_proof("relay", &lying.proof(0, None)),
        Err(SdkError::Log(LogError::EntryMismatch(_)))
    ));
    // A deletion by another node than the log's.
    let lying = NodeLog::new(10, &[published(&w.ours, 1), deleted(12, 1)], &[2, 3]);
    assert!(matches!(
        w.alice.record_log_proof("relay", &lying.proof(0, Some(1))),
        Err(SdkError::Log(LogError::EntryMismatch(_)))
    ));
    assert!(matches!(
        w.alice.record_log_proof("relay", b"not a proof"),
        Err(SdkError::Log(LogError::Malformed { .. }))
    ));
    assert!(matches!(
        w.alice.record_log_proof("", &log.proof(0, None)),
        Err(SdkError::InvalidArgument(_))
    ));
    assert_eq!(w.alice.data_report().unwrap(), before);
}

#[test]
fn a_phone_that_requires_proofs_takes_a_batch_only_with_enough_trusted_cosignatures() {
    let clock = ManualClock::new(at(DAY0, 600));
    let mut w = world(clock.clone(), phone(&clock));
    w.alice.require_log_proofs(2);
    assert!(matches!(
        w.alice.sync_batch(&w.ours),
        Err(SdkError::LogProofRequired { required: 2 })
    ));
    let once = NodeLog::new(10, &[published(&w.ours, 1)], &[2, 4]);
    assert!(matches!(
        w.alice.sync_batch_proven(&w.ours, &once.proof(0, None)),
        Err(SdkError::Log(LogError::TooFewWitnesses {
            found: 1,
            required: 2
        }))
    ));
    let other = NodeLog::new(10, &[published(&w.theirs, 1)], &[2, 3]);
    assert!(matches!(
        w.alice.sync_batch_proven(&w.ours, &other.proof(0, None)),
        Err(SdkError::Log(LogError::EntryMismatch(_)))
    ));
    assert_eq!(
        w.alice.cursor("test.health").unwrap(),
        None,
        "nothing synced"
    );
    let good = NodeLog::new(10, &[published(&w.ours, 1)], &[2, 3]);
    let r = w
        .alice
        .sync_batch_proven(&w.ours, &good.proof(0, None))
        .unwrap();
    assert_eq!(r.keys, 1);
    assert_eq!(w.alice.cursor("test.health").unwrap(), Some(1));
    w.alice.require_log_proofs(0);
    w.alice.sync_batch(&w.theirs).unwrap();
}

#[test]
fn the_report_survives_reopening_and_is_destroyed_when_forgotten_or_old() {
    let dir = tempfile::tempdir().unwrap();
    let master = MasterKey([9; 32]);
    let clock = ManualClock::new(at(DAY0, 600));
    let open = |clock: &ManualClock| {
        Sdk::open(
            dir.path(),
            &master,
            SdkConfig::default(),
            Arc::new(clock.clone()),
        )
        .unwrap()
    };
    let file = || std::fs::read(dir.path().join(SideFile::DataReport.name())).unwrap();

    // Another phone that never uploaded has a file of the same length, sealed.
    let other = tempfile::tempdir().unwrap();
    drop(
        Sdk::open(
            other.path(),
            &master,
            SdkConfig::default(),
            Arc::new(clock.clone()),
        )
        .unwrap(),
    );
    let never = std::fs::read(other.path().join("data-report")).unwrap();
    assert!(never.iter().any(|&b| b != 0), "sealed, not zeros");

    let mut w = world(clock.clone(), open(&clock));
    w.alice.sync_batch(&w.ours).unwrap();
    let report = w.alice.data_report().unwrap();
    assert_eq!(report.publications.len(), 1);
    let full = file();
    assert_eq!(full.len(), never.len(), "the length says nothing");
    drop(w.alice);

    let mut alice = open(&clock);
    assert_eq!(
        alice.data_report().unwrap(),
        report,
        "kept across reopening"
    );
    alice.forget_data_report().unwrap();
    assert!(alice.data_report().unwrap().publications.is_empty());
    assert_eq!(alice.data_report().unwrap().uploaded_at, None);
    let forgotten = file();
    assert_eq!(forgotten.len(), full.len());
    assert!(
        !contains(&forgotten, &full[24..56]),
        "the sealed report is overwritten in place"
    );
    drop(alice);
    assert_eq!(open(&clock).data_report().unwrap().uploaded_at, None);

    // A new upload starts a new report; it is gone KEEP_DAYS later by itself.
    let mut alice = open(&clock);
    let bundle = alice.diagnosis_upload(CODE, DAY0, &[]).unwrap();
    assert!(!Upload::decode(&bundle, clock.now())
        .unwrap()
        .keys
        .is_empty());
    assert!(alice.data_report().unwrap().uploaded_at.is_some());
    clock.advance(29 * 86_400);
    assert!(
        alice.data_report().unwrap().uploaded_at.is_some(),
        "kept 30 days"
    );
    clock.advance(86_400);
    assert_eq!(alice.data_report().unwrap().uploaded_at, None);
    drop(alice);
    assert_eq!(open(&clock).data_report().unwrap().uploaded_at, None);
    let storage = SledStorage::open(dir.path()).unwrap();
    assert_eq!(
        storage.read_side(SideFile::DataReport).unwrap().len(),
        full.len()
    );
}

/// Real sled storage that counts the writes of the data-report file.
struct CountingStorage {
    inner: SledStorage,
    report_writes: AtomicUsize,
}

impl CountingStorage {
    fn writes(&self) -> usize {
        self.report_writes.load(Ordering::SeqCst)
    }
}

impl Storage for CountingStorage {
    fn get(&self, table: Table, key: &[u8]) -> traceless_sdk::Result<Option<Vec<u8>>> {
        self.inner.get(table, key)
    }
    fn put(&self, table: Table, key: &[u8], value: &[u8]) -> traceless_sdk::Result<()> {
        self.inner.put(table, key, value)
    }
    fn remove(&self, table: Table, key: &[u8]) -> traceless_sdk::Result<()> {
        self.inner.remove(table, key)
    }
    fn scan(&self, table: Table, prefix: &[u8]) -> traceless_sdk::Result<Vec<(Vec<u8>, Vec<u8>)>> {
        self.inner.scan(table, prefix)
    }
    fn flush(&self) -> traceless_sdk::Result<()> {
        self.inner.flush()
    }
    fn read_keyring(&self) -> traceless_sdk::Result<Vec<u8>> {
        self.inner.read_keyring()
    }
    fn write_keyring(&self, offset: u64, bytes: &[u8]) -> traceless_sdk::Result<()> {
        self.inner.write_keyring(offset, bytes)
    }
    fn read_side(&self, file: SideFile) -> traceless_sdk::Result<Vec<u8>> {
        self.inner.read_side(file)
    }
    fn write_side(&self, file: SideFile, bytes: &[u8]) -> traceless_sdk::Result<()> {
        if file == SideFile::DataReport {
            self.report_writes.fetch_add(1, Ordering::SeqCst);
        }
        self.inner.write_side(file, bytes)
    }
}

/// The report file is written only when the report changes: a new store seals
/// its empty report once; opening the store again, the daily retention pass and
/// syncing a batch without the phone's keys (or one already noted) write
/// nothing. Every write seals under a fresh nonce, so the file's bytes show a
/// rewrite too.
#[test]
fn the_report_file_is_written_only_when_the_report_changes() {
    let dir = tempfile::tempdir().unwrap();
    let master = MasterKey([9; 32]);
    let clock = ManualClock::new(at(DAY0, 600));
    let open = || {
        let storage = Arc::new(CountingStorage {
            inner: SledStorage::open(dir.path()).unwrap(),
            report_writes: AtomicUsize::new(0),
        });
        let sdk = Sdk::with_storage(
            storage.clone(),
            &master,
            SdkConfig::default(),
            Arc::new(clock.clone()),
        )
        .unwrap();
        (sdk, storage)
    };
    let file = || std::fs::read(dir.path().join(SideFile::DataReport.name())).unwrap();

    let (sdk, storage) = open();
    assert_eq!(storage.writes(), 1, "a new store seals its empty report");
    drop((sdk, storage));
    let sealed_empty = file();

    let (mut alice, storage) = open();
    alice.advertisement().unwrap();
    assert_eq!(storage.writes(), 0, "reopening and the retention pass");
    assert_eq!(file(), sealed_empty);

    let mut w = world(clock.clone(), alice);
    assert_eq!(storage.writes(), 1, "the upload is noted");
    w.alice.sync_batch(&w.theirs).unwrap();
    assert_eq!(storage.writes(), 1, "a stranger's batch changes nothing");
    w.alice.sync_batch(&w.ours).unwrap();
    assert_eq!(storage.writes(), 2, "the batch with our key is noted");
    let _ = w.alice.sync_batch(&w.ours);
    assert_eq!(storage.writes(), 2, "noted once");
    let report = w.alice.data_report().unwrap();
    drop((w, storage));
    let full = file();
    assert_ne!(full, sealed_empty);

    let (mut alice, storage) = open();
    assert_eq!(alice.data_report().unwrap(), report);
    clock.advance(86_400);
    alice.advertisement().unwrap();
    assert_eq!(alice.data_report().unwrap(), report);
    assert_eq!(
        storage.writes(),
        0,
        "reopening and a new day's retention pass"
    );
    assert_eq!(file(), full);
}

/// Runs `tests/c/data_report.c` (behind `prefix`, e.g. valgrind) through both
/// its phases; the test publishes the C phone's upload and builds node 10's
/// log in between. Returns both phases' output.
fn c_walk(prefix: &[&str]) -> String {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let exe = dir.join("data_report");
    compile_c("data_report", &exe);
    let published_at = at(DAY0 + 1, 600);
    let mut times = at(DAY0, 0).to_le_bytes().to_vec();
    times.extend_from_slice(&published_at.to_le_bytes());
    std::fs::write(dir.join("times.bin"), times).unwrap();
    let run = |phase: &str| {
        run_c(
            prefix,
            &exe,
            &[
                dir.join("phone").as_os_str(),
                dir.as_os_str(),
                phase.as_ref(),
            ],
        )
    };
    let mut out = run("upload");

    let bundle = std::fs::read(dir.join("upload.bin")).unwrap();
    let keys = Upload::decode(&bundle, published_at)
        .unwrap()
        .keys
        .into_iter()
        .filter(|k| k.rolling_start / 144 == DAY0)
        .collect();
    let mut authority = Authority::new("test.health");
    let batch = authority.batch(keys, published_at);
    let stranger = DiagnosisKey {
        tek: Tek::generate(),
        rolling_start: DAY0 * 144,
        rolling_period: 144,
        transmission_risk: 4,
        days_since_onset: 0,
    };
    let other = authority.batch(vec![stranger], published_at);
    let mut trust = b"test.health\0".to_vec();
    trust.extend_from_slice(&authority.key.key_id.to_le_bytes());
    trust.extend_from_slice(authority.key.verifying_key().as_bytes());
    let files: [(&str, Vec<u8>); 6] = [
        ("authority.bin", trust),
        ("witness.bin", key(2).verifying_key().to_bytes().to_vec()),
        (
            "proof.bin",
            NodeLog::new(10, &[published(&batch, 1)], &[2]).proof(0, None),
        ),
        (
            "lying.bin",
            NodeLog::new(10, &[published(&other, 1)], &[2]).proof(0, None),
        ),
        (
            "deleted.bin",
            NodeLog::new(10, &[published(&batch, 1), deleted(10, 1)], &[2]).proof(0, Some(1)),
        ),
        ("batch.bin", batch),
    ];
    for (name, bytes) in files {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
    out.push_str(&run("report"));
    out
}

#[test]
fn a_c_program_follows_its_upload_from_sync_to_deletion() {
    let out = c_walk(&[]);
    assert!(
        out.contains("before upload: uploaded=0 keys=0 rows=0"),
        "{out}"
    );
    assert!(out.contains("after upload: uploaded=1"), "{out}");
    assert!(
        out.contains("lying proof: log proof: log entry does not match"),
        "{out}"
    );
    assert!(out.contains("synced keys=1"), "{out}");
    for (when, row) in [
        ("after sync", "node=- witnesses=0 deleted=0"),
        ("on a node", "node=relay-a.example witnesses=1 deleted=0"),
        ("deleted", "node=relay-a.example witnesses=1 deleted=1"),
    ] {
        let want = format!("{when}: uploaded=1");
        let at = out.find(&want).unwrap_or_else(|| panic!("{want}: {out}"));
        let line = out[at..].lines().nth(1).unwrap();
        assert_eq!(
            line.trim(),
            format!("test.health/1 day={DAY0} own=1/1 {row}"),
            "{out}"
        );
    }
    assert!(out.contains("forgotten: uploaded=0 keys=0 rows=0"), "{out}");
}

#[test]
fn the_data_report_c_program_runs_clean_under_valgrind() {
    let out = c_walk(&VALGRIND);
    assert!(out.contains("forgotten: uploaded=0"), "{out}");
}

//! The node's transparency log over HTTP (SPEC.md §8.3): what the node stores,
//! deletes and trusts becomes log entries; checkpoints verify under the node's
//! key; every inclusion proof and consistency proof the node serves verifies;
//! sizes the log cannot answer for are 400s that say which; an old deletion
//! chain is migrated into the log at open, each record still verifiable.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;

use common::*;
use traceless_node::log::TransparencyLog;
use traceless_node::storage::{Expired, RetentionStore, SledStore};
use traceless_node::ManualClock;
use traceless_protocol::ed25519_dalek::VerifyingKey;
use traceless_protocol::log::*;
use traceless_protocol::wire::{DeletedRange, DeletionRecord};

fn hashes(v: &serde_json::Value) -> Vec<Hash> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|h| {
            hex::decode(h.as_str().unwrap())
                .unwrap()
                .try_into()
                .unwrap()
        })
        .collect()
}

/// The node's log key, from its deletion log's `node_id`.
fn log_key(addr: SocketAddr) -> NoteKey {
    let id = get(addr, "/v1/deletion-log").json()["node_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let bytes: [u8; 32] = hex::decode(id).unwrap().try_into().unwrap();
    NoteKey::of_node(VerifyingKey::from_bytes(&bytes).unwrap())
}

fn checkpoint(addr: SocketAddr, key: &NoteKey) -> Checkpoint {
    let r = get(addr, "/v1/log/checkpoint");
    assert_eq!(r.status, 200);
    verify_checkpoint(&r.body, key, &[]).unwrap().checkpoint
}

/// Every entry, paging through `/v1/log/entries`.
fn all_entries(addr: SocketAddr, size: u64) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut start = 0;
    while start < size {
        let r = get(addr, &format!("/v1/log/entries?start={start}&end={size}"));
        assert_eq!(r.status, 200, "{}", r.text());
        let j = r.json();
        for e in j["entries"].as_array().unwrap() {
            out.push(e.as_str().unwrap().as_bytes().to_vec());
        }
        start = j["next"].as_u64().unwrap_or(size);
    }
    out
}

/// What a reader checks: the entries rebuild the checkpoint's root, every
/// entry decodes, and every inclusion proof the node serves verifies.
fn audit(addr: SocketAddr, key: &NoteKey) -> (Checkpoint, Vec<Event>) {
    let cp = checkpoint(addr, key);
    let entries = all_entries(addr, cp.size);
    let mut tree = MemoryTree::new();
    for e in &entries {
        tree.push(e);
    }
    assert_eq!(tree.root(), cp.root, "entries do not rebuild the root");
    for (i, e) in entries.iter().enumerate() {
        let r = get(
            addr,
            &format!("/v1/log/proof/inclusion?index={i}&size={}", cp.size),
        );
        assert_eq!(r.status, 200);
        let proof = hashes(&r.json()["proof"]);
        verify_inclusion(&leaf_hash(e), i as u64, cp.size, &proof, &cp.root).unwrap();
    }
    let events = entries.iter().map(|e| Event::decode(e).unwrap()).collect();
    (cp, events)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_and_deleted_batches_are_logged_and_every_proof_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(NOW - 2 * 86_400);
    let node = start_node(relay_config(dir.path()), &clock).await;
    let addr = node.http_addr;
    let key = log_key(addr);
    let a = authority();
    let core = node.core.clone();

    // At start: the trust list.
    let (first, events) = audit(addr, &key);
    assert_eq!(first.size, 1);
    assert!(matches!(events[0], Event::TrustList { authorities: 1, .. }));

    let old = signed_batch(&a, 1, TODAY - 16, 4, NOW - 2 * 86_400);
    core.ingest(&old).unwrap();
    clock.set(NOW);
    for seq in 2..=4 {
        core.ingest(&signed_batch(&a, seq, TODAY - 1, 5, NOW - 100))
            .unwrap();
    }
    // A duplicate is not logged again.
    core.ingest(&signed_batch(&a, 2, TODAY - 1, 5, NOW - 100))
        .unwrap();
    let (mid, _) = audit(addr, &key);
    assert_eq!(mid.size, 5);

    // The job may have run retention already; either way once.
    let _ = core.run_retention().unwrap();
    let (cp, events) = audit(addr, &key);
    assert_eq!(cp.size, 6, "{events:?}");
    let published: Vec<u64> = events
        .iter()
        .filter_map(|e| match e {
            Event::Published {
                form: PublicationForm::Batch,
                origin,
                sequence,
                key_count,
                content_id,
                ..
            } => {
                assert_eq!(origin, ORIGIN);
                let served = get(addr, &format!("/v1/batches/{ORIGIN}/{sequence}"));
                if *sequence == 1 {
                    assert_eq!(*key_count, 4);
                    assert_eq!(served.status, 404, "deleted batch still served");
                } else {
                    assert_eq!(*key_count, 5);
                    assert_eq!(
                        &common::content_id(&served.body),
                        content_id,
                        "logged content id is the served bytes'"
                    );
                }
                Some(*sequence)
            }
            _ => None,
        })
        .collect();
    assert_eq!(published, [1, 2, 3, 4]);
    let Event::Deleted { kinds, record } = &events[5] else {
        panic!("{:?}", events[5]);
    };
    assert_eq!(kinds, &[DeletionKind::Batch]);
    let r = record.verify().unwrap();
    assert_eq!(r.deleted[0].first_sequence, 1);
    assert_eq!(r.deleted[0].key_count, 4);
    // The same record is the chain's entry 0, byte for byte.
    assert_eq!(
        verified_deletion_log(addr)[0],
        r,
        "log and deletion chain disagree"
    );

    // Consistency between every pair of sizes the node ever showed.
    for (old, new) in [(first.size, cp.size), (mid.size, cp.size), (1, 1), (3, 5)] {
        let r = get(
            addr,
            &format!("/v1/log/proof/consistency?old={old}&new={new}"),
        );
        assert_eq!(r.status, 200, "{}", r.text());
        let proof = hashes(&r.json()["proof"]);
        let old_root = core.log.root(old).unwrap();
        let new_root = core.log.root(new).unwrap();
        verify_consistency(old, new, &proof, &old_root, &new_root).unwrap();
    }
    assert_eq!(core.log.root(first.size).unwrap(), first.root);
    assert_eq!(core.log.root(mid.size).unwrap(), mid.root);

    // Sizes the log cannot answer for: 404 naming the fault.
    for (path, says) in [
        (
            "/v1/log/proof/inclusion?index=0&size=7",
            "beyond the log's 6",
        ),
        (
            "/v1/log/proof/inclusion?index=6&size=6",
            "not in a tree of 6",
        ),
        (
            "/v1/log/proof/consistency?old=5&new=3",
            "not 0 < old <= new",
        ),
        (
            "/v1/log/proof/consistency?old=0&new=3",
            "not 0 < old <= new",
        ),
        (
            "/v1/log/proof/consistency?old=2&new=9",
            "beyond the log's 6",
        ),
        ("/v1/log/entries?start=0&end=99", "beyond the log's 6"),
        ("/v1/log/entries?start=4&end=4", "beyond the log's 6"),
    ] {
        let r = get(addr, path);
        assert_eq!(r.status, 404, "{path}");
        let why = r.json()["error"].as_str().unwrap().to_owned();
        assert!(why.contains(says), "{path}: {why}");
    }
    let r = get(addr, "/v1/log/proof/inclusion?index=x&size=1");
    assert_eq!(r.status, 400);
    drop(core);
    node.shutdown().await;
}

/// A database with a deletion chain from before the log (records, no log
/// entries): at open every record becomes a log entry, byte for byte, and the
/// chain still verifies on its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_old_deletion_chain_is_migrated_into_the_log_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let node_key = traceless_node::keys::deletion_log_key(dir.path()).unwrap();
    let mut chain = Vec::new();
    {
        let store = SledStore::open(&dir.path().join("db")).unwrap();
        for i in 0..3u64 {
            let record = DeletionRecord {
                index: i,
                previous_hash: chain.last().map_or(
                    DeletionRecord::GENESIS_HASH,
                    |r: &traceless_protocol::wire::SignedDeletionRecord| r.hash(),
                ),
                deleted_at: NOW - 1000 + i,
                node_id: node_key.verifying_key().to_bytes(),
                deleted: vec![DeletedRange {
                    origin: ORIGIN.into(),
                    first_sequence: i + 1,
                    last_sequence: i + 1,
                    key_count: 10,
                    day: TODAY - 20,
                }],
            }
            .sign(&node_key)
            .unwrap();
            store.delete_and_log(&Expired::default(), &record).unwrap();
            chain.push(record);
        }
        let log = TransparencyLog::open(store.db(), node_key.clone());
        assert_eq!(
            log.size().unwrap(),
            0,
            "control: an old database has no log"
        );
    }
    let clock = ManualClock::new(NOW);
    let node = start_node(relay_config(dir.path()), &clock).await;
    let (cp, events) = audit(node.http_addr, &log_key(node.http_addr));
    assert_eq!(cp.size, 4, "{events:?}");
    for (i, record) in chain.iter().enumerate() {
        assert_eq!(
            events[i],
            Event::Deleted {
                kinds: vec![],
                record: record.clone()
            }
        );
    }
    assert!(matches!(events[3], Event::TrustList { .. }));
    assert_eq!(verified_deletion_log(node.http_addr).len(), 3);
    let data_dir = dir.path().to_owned();
    node.shutdown().await;

    // Opening again appends nothing (the migration is done once).
    let node = start_node(relay_config(&data_dir), &clock).await;
    let (again, _) = audit(node.http_addr, &log_key(node.http_addr));
    assert_eq!(again, cp);
    node.shutdown().await;
}

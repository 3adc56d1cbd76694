//! `GET /v1/log/proof/batch/{origin}/{sequence}` (SPEC.md §8.3.1) on real nodes
//! over HTTP with real sled: the proof of a stored batch verifies against the
//! bytes `/v1/batches` serves, and after retention deleted the batch it carries
//! the deletion, which verifies too; bad input is a 400 that says which part,
//! an unknown batch a 404; a log from before the batch index is indexed at
//! start, and a batch stored before a crash but not logged is logged at the
//! next start; a relay that got the batch by gossip proves it with its own log, and
//! the gateway's proof is against a checkpoint its witness cosigned.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use traceless_node::storage::keyspace::{log_meta_key, LOG_INDEX};
use traceless_node::storage::{BatchMeta, BatchStore, PutOutcome, SledStore, StoredBatch};
use traceless_node::{upload_codes, ManualClock};
use traceless_protocol::log::{Event, LogError, NoteKey, PublicationProof, VerifiedPublication};
use traceless_protocol::Batch;

fn proof_path(origin: &str, sequence: impl std::fmt::Display) -> String {
    format!("/v1/log/proof/batch/{origin}/{sequence}")
}

/// The node's proof of `ORIGIN`/`sequence`, decoded.
fn proof(addr: SocketAddr, sequence: u64) -> PublicationProof {
    let r = get(addr, &proof_path(ORIGIN, sequence));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/x-protobuf"));
    PublicationProof::decode(&r.body).unwrap()
}

/// The batch bytes the node serves, and their content id.
fn served(addr: SocketAddr, sequence: u64) -> (Vec<u8>, [u8; 32]) {
    let r = get(addr, &format!("/v1/batches/{ORIGIN}/{sequence}"));
    assert_eq!(r.status, 200, "{}", r.text());
    let id = batch_id(&r.body);
    (r.body, id)
}

fn verify(p: &PublicationProof, sequence: u64, content_id: &[u8; 32]) -> VerifiedPublication {
    p.verify(ORIGIN, sequence, content_id, &[], 0).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_proof_verifies_while_stored_and_after_deletion() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(NOW - 2 * 86_400);
    let node = start_node(relay_config(dir.path()), &clock).await;
    let addr = node.http_addr;
    let core = node.core.clone();
    let a = authority();
    core.ingest(&signed_batch(&a, 1, TODAY - 16, 4, NOW - 2 * 86_400))
        .unwrap();
    core.ingest(&signed_batch(&a, 2, TODAY - 3, 5, NOW - 2 * 86_400))
        .unwrap();

    let (_, id1) = served(addr, 1);
    let p = proof(addr, 1);
    assert_eq!(p.node_id, core.node_id());
    let v = verify(&p, 1, &id1);
    assert_eq!((v.day, v.key_count, v.deleted), (TODAY - 16, 4, None));
    // The wrong bytes, or another batch's, do not verify.
    let (_, id2) = served(addr, 2);
    for (sequence, id) in [(1, &id2), (2, &id2)] {
        assert!(
            matches!(
                p.verify(ORIGIN, sequence, id, &[], 0),
                Err(LogError::EntryMismatch(_))
            ),
            "batch {sequence}"
        );
    }

    // Retention deletes batch 1 (the scheduled job may have run it first).
    clock.set(NOW);
    let _ = core.run_retention().unwrap();
    assert_eq!(core.store.deletion_log().unwrap().len(), 1);
    assert_eq!(
        get(addr, &format!("/v1/batches/{ORIGIN}/1")).status,
        404,
        "deleted batch still served"
    );
    let p = proof(addr, 1);
    let v = verify(&p, 1, &id1);
    let deleted = v.deleted.expect("the proof carries the deletion");
    assert!(deleted.index > v.index);
    assert_eq!(deleted.deleted_at, NOW, "retention ran at the clock's time");
    assert_eq!(verify(&proof(addr, 2), 2, &id2).deleted, None);

    // Bad input: 400 naming the part; a batch never logged: 404.
    for (path, says) in [
        (proof_path(ORIGIN, "x"), "sequence `x`"),
        (proof_path(ORIGIN, "-1"), "sequence `-1`"),
        (proof_path(ORIGIN, "18446744073709551616"), "sequence"),
        (proof_path(ORIGIN, "1.0"), "sequence"),
        (proof_path(ORIGIN, "+1"), "sequence `+1`"),
        (proof_path("Test.Health", 1), "origin `Test.Health`"),
        (proof_path("a_b", 1), "origin `a_b`"),
    ] {
        let r = get(addr, &path);
        assert_eq!(r.status, 400, "{path}");
        let why = r.json()["error"].as_str().unwrap().to_owned();
        assert!(why.contains(says), "{path}: {why}");
    }
    for path in [proof_path(ORIGIN, 3), proof_path("other.health", 1)] {
        let r = get(addr, &path);
        assert_eq!(r.status, 404, "{path}");
        assert!(r.json()["error"]
            .as_str()
            .unwrap()
            .contains("holds no batch"));
    }

    // A log from before the batch index: the index is removed (as an older
    // node never wrote it); at the next start it is rebuilt, once, and the
    // proofs are the same entries at the same indexes.
    let before = [proof(addr, 1), proof(addr, 2)];
    drop(core);
    node.shutdown().await;
    {
        let store = SledStore::open(&dir.path().join("db")).unwrap();
        let db = store.db();
        for k in db.scan_prefix([LOG_INDEX]).keys() {
            db.remove(k.unwrap()).unwrap();
        }
        db.remove(log_meta_key("indexed 3")).unwrap().unwrap();
        db.flush().unwrap();
        assert_eq!(db.scan_prefix([LOG_INDEX]).count(), 0, "control");
    }
    let node = start_node(relay_config(dir.path()), &clock).await;
    for (seq, old) in [(1, &before[0]), (2, &before[1])] {
        let new = proof(node.http_addr, seq);
        assert_eq!(new.published.entry, old.published.entry);
        assert_eq!(new.published.index, old.published.index);
        assert_eq!(
            new.deleted.as_ref().map(|d| (d.index, &d.entry)),
            old.deleted.as_ref().map(|d| (d.index, &d.entry))
        );
    }
    assert_eq!(node.core.log.index_existing().unwrap(), 0, "indexed once");
    node.shutdown().await;
}

/// A relay killed between storing a batch and appending its entry (the store
/// written directly, as the crash leaves it): the next start logs it before
/// serving, once, at the batch's creation time, and its proof verifies against
/// the served bytes; a further start appends nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_stored_before_a_crash_is_logged_at_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(NOW);
    let a = authority();
    let node = start_node(relay_config(dir.path()), &clock).await;
    node.core
        .ingest(&signed_batch(&a, 5, TODAY - 3, 4, NOW - 86_400))
        .unwrap();
    node.shutdown().await;
    let created_at = NOW - 2 * 86_400;
    {
        let store = SledStore::open(&dir.path().join("db")).unwrap();
        let batch = Batch {
            origin: ORIGIN.into(),
            sequence: 2,
            created_at,
            day: TODAY - 4,
            keys: keys_of_day(TODAY - 4, 3),
        };
        let bytes = batch.clone().sign(&a).unwrap().encode();
        let meta = BatchMeta::of(1, std::slice::from_ref(&batch), content_id(&bytes));
        assert_eq!(
            store.put_batch(&StoredBatch { meta, bytes }).unwrap(),
            PutOutcome::New
        );
    }

    let node = start_node(relay_config(dir.path()), &clock).await;
    let (_, id) = served(node.http_addr, 2);
    let p = proof(node.http_addr, 2);
    let v = verify(&p, 2, &id);
    assert_eq!((v.published_at, v.key_count), (created_at, 3));
    let logged = |node: &traceless_node::RunningNode| {
        let entries = node.core.log.all_entries().unwrap();
        let batches: Vec<u64> = entries
            .iter()
            .filter_map(|e| match Event::decode(e).unwrap() {
                Event::Published { sequence, .. } => Some(sequence),
                _ => None,
            })
            .collect();
        (entries.len(), batches)
    };
    let (size, batches) = logged(&node);
    assert_eq!(batches, vec![5, 2], "each batch logged once");
    node.shutdown().await;

    let node = start_node(relay_config(dir.path()), &clock).await;
    assert_eq!(
        logged(&node),
        (size, batches),
        "a second start appends nothing"
    );
    assert_eq!(proof(node.http_addr, 2).published, p.published);
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn gateway_and_relay_each_prove_the_batch_in_their_own_log() {
    let clock = ManualClock::new(NOW);
    let gw_dir = tempfile::tempdir().unwrap();
    let relay_dir = tempfile::tempdir().unwrap();
    // The relay's key is the gateway's known witness.
    let relay_key = traceless_node::keys::deletion_log_key(relay_dir.path()).unwrap();
    let witness = NoteKey::witness_of_node(relay_key.verifying_key());
    let mut config = gateway_config(gw_dir.path());
    config.witness.known = vec![hex::encode(relay_key.verifying_key().to_bytes())];
    let (codes, records) = upload_codes::issue(1, NOW + 86_400);
    upload_codes::write_incoming(gw_dir.path(), &records).unwrap();
    let gateway = start_node(config, &clock).await;
    let relay = start_relay(relay_dir.path(), &clock, &gateway.p2p_addrs, 1).await;
    assert!(wait_for_peers(&relay, 1).await);

    let r = http(
        gateway.http_addr,
        "POST",
        "/v1/upload",
        &[],
        &upload_body(&codes[0], keys_of_day(TODAY - 1, 3)),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    next_period(&gateway.core, &clock);
    let list = wait_for_batches(gateway.http_addr, 1);
    let seq = list["batches"][0]["sequence"].as_u64().unwrap();
    assert!(
        wait_until(Duration::from_secs(30), || get(
            relay.http_addr,
            &proof_path(ORIGIN, seq)
        )
        .status
            == 200)
        .await,
        "the relay never logged the gossiped batch"
    );
    let (bytes, id) = served(gateway.http_addr, seq);
    assert_eq!(served(relay.http_addr, seq).0, bytes, "same batch bytes");

    // The gateway's proof, once its witness cosigned a checkpoint covering
    // the batch: at least one trusted cosignature.
    let mut cosigned = None;
    assert!(
        wait_until(Duration::from_secs(30), || {
            let p = proof(gateway.http_addr, seq);
            cosigned = p
                .verify(ORIGIN, seq, &id, std::slice::from_ref(&witness), 1)
                .ok();
            cosigned.is_some()
        })
        .await,
        "the gateway's proof never carried its witness's cosignature"
    );
    let v = cosigned.unwrap();
    assert_eq!(v.node_id, gateway.core.node_id());
    assert_eq!(v.checkpoint.cosignatures[0].witness, witness.name);

    // The relay's: its own log, its own key.
    let p = proof(relay.http_addr, seq);
    assert_eq!(p.node_id, relay.core.node_id());
    assert_ne!(p.node_id, gateway.core.node_id());
    let v = verify(&p, seq, &id);
    assert_eq!(v.key_count, 3);
    gateway.shutdown().await;
    relay.shutdown().await;
}

/// The metadata of the measurements' batch `sequence`.
fn measured_meta(sequence: u64) -> BatchMeta {
    BatchMeta {
        origin: ORIGIN.into(),
        sequence,
        version: 1,
        days: vec![traceless_node::storage::BatchDay {
            day: TODAY - 1,
            key_count: 10,
            expires_at: u64::MAX,
        }],
        created_at: NOW,
        visible_from: 0,
        content_id: [sequence as u8; 32],
    }
}

/// Mean seconds per call of `f` over `n` calls.
fn per_call(n: u64, mut f: impl FnMut(u64)) -> f64 {
    let t = std::time::Instant::now();
    for i in 0..n {
        f(i);
    }
    t.elapsed().as_secs_f64() / n as f64
}

/// The lookup does not scan: a proof from the index against the same proof
/// work with the index known (entry read, inclusion path, checkpoint), on logs
/// of 1,000 and 100,000 batch entries; and indexing a whole old log at start
/// against appending it. Figures only, as ratios of the same run.
///
/// `cargo test -p traceless-node --test publication_proof -- --ignored --nocapture`
#[test]
#[ignore = "measurement: ~1 minute"]
fn proof_lookup_and_indexing_against_baselines() {
    use traceless_node::log::{batch_event, TransparencyLog};
    use traceless_protocol::ed25519_dalek::SigningKey;
    let key = SigningKey::from_bytes(&[9; 32]);
    for size in [1_000u64, 100_000] {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let log = TransparencyLog::open(db.clone(), key.clone());
        let t = std::time::Instant::now();
        for seq in 0..size {
            log.append(&batch_event(&measured_meta(seq), NOW)).unwrap();
        }
        let append = t.elapsed().as_secs_f64();
        let n = 2_000;
        let pick = |i: u64| (i * 7_919) % size;
        let indexed = per_call(n, |i| {
            log.publication_proof(ORIGIN, pick(i), None)
                .unwrap()
                .unwrap();
        });
        let known = per_call(n, |i| {
            let index = pick(i);
            let (cp, _) = log.checkpoint().unwrap();
            log.entry(index).unwrap().unwrap();
            log.prove_inclusion(index, cp.size).unwrap();
        });
        let bytes = log
            .publication_proof(ORIGIN, size / 2, None)
            .unwrap()
            .unwrap()
            .encode()
            .len();
        // An old log: the index removed, then built again as at start.
        for k in db.scan_prefix([LOG_INDEX]).keys() {
            db.remove(k.unwrap()).unwrap();
        }
        db.remove(log_meta_key("indexed")).unwrap();
        let t = std::time::Instant::now();
        assert_eq!(log.index_existing().unwrap(), size);
        let migrate = t.elapsed().as_secs_f64();
        eprintln!(
            "log of {size} entries: proof from the index {:.1} µs, same proof with the index known {:.1} µs \
             (ratio {:.2}); proof {bytes} bytes; indexing the whole log {:.3} s against appending it {:.3} s (ratio {:.3})",
            indexed * 1e6,
            known * 1e6,
            indexed / known,
            migrate,
            append,
            migrate / append
        );
    }
}

/// The start-up check for batches stored but not logged, on a store of 1,000
/// and 10,000 batches all logged (every start after a clean stop), against
/// listing the store's batches alone (what it cannot do without). Figures only,
/// as ratios of the same run.
///
/// `cargo test -p traceless-node --test publication_proof -- --ignored --nocapture`
#[test]
#[ignore = "measurement: ~1 minute"]
fn unlogged_batch_check_at_start_against_listing_the_store() {
    use traceless_node::log::TransparencyLog;
    use traceless_protocol::ed25519_dalek::SigningKey;
    for size in [1_000u64, 10_000] {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(&dir.path().join("db")).unwrap();
        let batches: Vec<StoredBatch> = (1..=size)
            .map(|sequence| StoredBatch {
                meta: measured_meta(sequence),
                bytes: vec![sequence as u8; 64],
            })
            .collect();
        store.put_batches(&batches).unwrap();
        let log = TransparencyLog::open(store.db(), SigningKey::from_bytes(&[9; 32]));
        assert_eq!(log.log_unlogged(&store).unwrap().len() as u64, size);
        let n = 20;
        let check = per_call(n, |_| {
            assert!(log.log_unlogged(&store).unwrap().is_empty());
        });
        let listing = per_call(n, |_| {
            assert_eq!(store.all_batches().unwrap().len() as u64, size);
        });
        eprintln!(
            "store of {size} logged batches: start-up check {:.2} ms, listing the store {:.2} ms (ratio {:.2})",
            check * 1e3,
            listing * 1e3,
            check / listing
        );
    }
}

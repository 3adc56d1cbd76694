//! Period batches (SPEC.md §5.9) on relays: what a node stores of one, how
//! retention takes each day out at its expiry (SPEC.md §8.1), that the pruned
//! form is the same batch to every node and to the log, and what is refused.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use traceless_node::core::IngestError;
use traceless_node::storage::PutOutcome;
use traceless_node::{ManualClock, RunningNode};
use traceless_protocol::log::PublicationProof;
use traceless_protocol::*;

/// A period batch of [`ORIGIN`] with `n` keys of each of `days`, encoded, and its keys.
fn period_batch(sequence: u64, days: &[(u32, usize)]) -> (Vec<u8>, Vec<DiagnosisKey>) {
    let keys: Vec<_> = days.iter().flat_map(|&(d, n)| keys_of_day(d, n)).collect();
    let batch = PeriodBatch::from_keys(ORIGIN, sequence, NOW - 60, keys.clone());
    let signed = batch.sign_with(&authority(), Default::default()).unwrap();
    (signed.encode(), keys)
}

/// Whether any file under `dir` holds one of `keys`' TEKs.
fn on_disk(dir: &std::path::Path, keys: &[DiagnosisKey]) -> bool {
    files_under(dir).iter().any(|f| {
        let bytes = std::fs::read(f).unwrap();
        keys.iter()
            .any(|k| bytes.windows(16).any(|w| w == k.tek.0.as_slice()))
    })
}

fn outcome(node: &RunningNode, bytes: &[u8]) -> PutOutcome {
    node.core.ingest(bytes).unwrap().outcome
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_period_batch_loses_each_day_at_its_expiry_and_stays_the_same_batch() {
    let clock = ManualClock::new(NOW);
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut nodes = Vec::new();
    for d in &dirs {
        nodes.push(start_node(relay_config(d.path()), &clock).await);
    }
    let (a, b, c) = (&nodes[0], &nodes[1], &nodes[2]);
    let (old_day, new_day) = (TODAY - 13, TODAY - 1);
    let (full, keys) = period_batch(1, &[(old_day, 2), (new_day, 3)]);
    let (old_keys, new_keys) = keys.split_at(2);
    assert_eq!(outcome(a, &full), PutOutcome::New);

    // Listed as one batch of two days; an export per day, none for the batch.
    let list = get(a.http_addr, &format!("/v1/batches?origin={ORIGIN}&after=0")).json();
    let entry = &list["batches"][0];
    assert_eq!(
        (entry["version"].as_u64(), entry["key_count"].as_u64()),
        (Some(2), Some(5))
    );
    assert_eq!(entry["days"], serde_json::json!([old_day, new_day]));
    let r = get(a.http_addr, &format!("/v1/exports/{ORIGIN}/1"));
    assert_eq!(r.status, 404);
    assert!(
        r.text()
            .contains(&format!("/v1/exports/{ORIGIN}/1/{{day}}")),
        "{}",
        r.text()
    );
    let r = get(
        a.http_addr,
        &format!("/v1/exports/{ORIGIN}/1/{}", TODAY - 5),
    );
    assert!(
        r.status == 404 && r.text().contains("no keys of that day"),
        "{}",
        r.text()
    );
    let r = get(a.http_addr, &format!("/v1/exports/{ORIGIN}/1/{new_day}"));
    assert!(
        r.status == 404 && r.text().contains("no export signature"),
        "{}",
        r.text()
    );
    let before = get(a.http_addr, &format!("/v1/batches/{ORIGIN}/1"));
    assert!(
        on_disk(dirs[0].path(), old_keys),
        "control: the old day is stored"
    );

    // The old day expires: retention prunes it, the batch stays.
    let expiry = a.core.store.all_batches().unwrap()[0].expires_at();
    assert_eq!(expiry, old_keys[0].expires_at());
    clock.set(expiry);
    assert!(
        a.core.run_retention().unwrap().is_none(),
        "not due at the expiry second"
    );
    clock.set(expiry + 1);
    let _ = a.core.run_retention().unwrap(); // or the scheduled job did
    let log = a.core.store.deletion_log().unwrap();
    assert_eq!(log.len(), 1);
    let record = log[0].verify().unwrap();
    assert_eq!(record.deleted.len(), 1);
    let range = &record.deleted[0];
    assert_eq!(
        (
            range.day,
            range.first_sequence,
            range.last_sequence,
            range.key_count
        ),
        (old_day, 1, 1, 2)
    );
    let meta = &a.core.store.all_batches().unwrap()[0];
    assert_eq!(
        meta.days.iter().map(|d| d.day).collect::<Vec<_>>(),
        [new_day]
    );
    assert!(
        !on_disk(dirs[0].path(), old_keys),
        "the pruned day's keys are gone"
    );
    assert!(on_disk(dirs[0].path(), new_keys));
    let pruned = get(a.http_addr, &format!("/v1/batches/{ORIGIN}/1"));
    assert_eq!(pruned.status, 200);
    assert_ne!(
        pruned.header("etag"),
        before.header("etag"),
        "what is served changed"
    );
    assert_eq!(batch_id(&pruned.body), batch_id(&full), "the batch did not");
    let served = batch_keys(&pruned.body, &trust(), clock.now());
    assert_eq!(served.len(), 3);

    // The log proves it published, not yet deleted: its last day lives.
    let proof = |n: &RunningNode| {
        let r = get(n.http_addr, &format!("/v1/log/proof/batch/{ORIGIN}/1"));
        PublicationProof::decode(&r.body)
            .unwrap()
            .verify(ORIGIN, 1, &batch_id(&full), &[], 0)
            .unwrap()
    };
    let v = proof(a);
    assert_eq!(
        (v.day, v.key_count, v.deleted.is_some()),
        (new_day, 5, false)
    );

    // The pruned form is the same batch: new to a node without it, a
    // duplicate to the one that holds it, and the full form does not bring
    // the day back. A node that still gets the full form stores it pruned.
    assert_eq!(outcome(b, &pruned.body), PutOutcome::New);
    assert_eq!(
        get(b.http_addr, &format!("/v1/batches/{ORIGIN}/1")).body,
        pruned.body
    );
    assert_eq!(outcome(a, &full), PutOutcome::Duplicate);
    assert!(!on_disk(dirs[0].path(), old_keys));
    assert_eq!(outcome(c, &full), PutOutcome::New);
    assert!(!on_disk(dirs[2].path(), old_keys) && on_disk(dirs[2].path(), new_keys));
    let (other, _) = period_batch(1, &[(new_day, 1)]);
    assert_eq!(outcome(a, &other), PutOutcome::Conflict);

    // A pruned day whose digest is not the signed one is refused.
    let mut forged = SignedPeriodBatch::decode(&pruned.body).unwrap();
    forged.pruned[0].digest[0] ^= 1;
    let fresh = tempfile::tempdir().unwrap();
    let d = start_node(relay_config(fresh.path()), &clock).await;
    assert!(matches!(
        d.core.ingest(&forged.encode()),
        Err(IngestError::Invalid(WireError::DigestMismatch(_)))
    ));
    assert!(d.core.store.all_batches().unwrap().is_empty());
    d.shutdown().await;

    // Its last day expires: the batch goes, and the log proves its deletion.
    let last = new_keys[0].expires_at();
    clock.set(last + 1);
    let _ = a.core.run_retention().unwrap();
    assert!(a.core.store.all_batches().unwrap().is_empty());
    assert_eq!(a.core.store.deletion_log().unwrap().len(), 2);
    assert_eq!(
        get(a.http_addr, &format!("/v1/batches/{ORIGIN}/1")).status,
        404
    );
    assert!(!on_disk(dirs[0].path(), &keys));
    let v = proof(a);
    assert_eq!(v.deleted.map(|d| d.deleted_at), Some(clock.now()));
    for n in nodes {
        n.shutdown().await;
    }
}

/// Across the switch (SPEC.md §5.9, "Readers before writers"): one origin's
/// day batches and period batches share its sequence numbers, and a relay
/// that comes later catches up on both by sequence and serves them in one list.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_catches_up_day_and_period_batches_of_one_origin_alike() {
    let clock = ManualClock::new(NOW);
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = start_node(relay_config(da.path()), &clock).await;
    let day_batch = signed_batch(&authority(), 1, TODAY - 3, 4, NOW - 7200);
    let (period, _) = period_batch(2, &[(TODAY - 5, 2), (TODAY - 2, 3)]);
    assert_eq!(outcome(&a, &day_batch), PutOutcome::New);
    assert_eq!(outcome(&a, &period), PutOutcome::New);

    let mut c = relay_config(db.path());
    c.p2p.bootstrap = a.p2p_addrs.iter().map(|x| x.to_string()).collect();
    let b = start_node(c, &clock).await;
    assert!(
        wait_until(std::time::Duration::from_secs(30), || {
            b.core.store.all_batches().unwrap().len() == 2
        })
        .await,
        "the relay caught up {} of 2",
        b.core.store.all_batches().unwrap().len()
    );
    let list = get(b.http_addr, &format!("/v1/batches?origin={ORIGIN}&after=0")).json();
    let versions: Vec<_> = list["batches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["version"].as_u64().unwrap())
        .collect();
    assert_eq!(versions, [1, 2]);
    let path = format!("/v1/batch-list/{ORIGIN}?after=0");
    let (from_a, from_b) = (get(a.http_addr, &path).body, get(b.http_addr, &path).body);
    assert_eq!(from_a, from_b, "the same list from both relays");
    let served = BatchList::decode(&from_b).unwrap().batches;
    assert_eq!(served[0], day_batch);
    let keys: usize = served
        .iter()
        .map(|bytes| batch_keys(bytes, &trust(), clock.now()).len())
        .sum();
    assert_eq!(keys, 9);
    a.shutdown().await;
    b.shutdown().await;
}

//! The transparency log survives `kill -9` mid-append with the real binary:
//! uploads are acknowledged and published (one-second periods) while the node is
//! killed at an arbitrary moment, in a publication or between a publication and
//! its log entries; after restart the entries rebuild the signed checkpoint's
//! root (the tree is whole), and every acknowledged upload's batch is a log
//! entry, exactly once, which the batch index finds (its publication proof
//! names that entry and verifies).
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::process::*;
use common::*;
use traceless_protocol::log::*;
use traceless_protocol::*;

#[test]
fn kill_9_mid_append_leaves_a_whole_tree_and_loses_no_acknowledged_entry() {
    let dir = tempfile::tempdir().unwrap();
    let config = gateway_via_cli(dir.path());
    let codes = cli(&[
        "codes",
        "issue",
        "--config",
        config.to_str().unwrap(),
        "--count",
        "40",
    ]);
    let codes: Vec<String> = codes.lines().map(str::to_owned).collect();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let today = day_of_unix(now);
    set_publication(&config, 1, 0);
    let (child, addr) = spawn_node(&config);

    // Uploads from a thread, recording each acknowledged one's keys, while the
    // main thread kills the node once some are in.
    let acked: Arc<Mutex<Vec<Tek>>> = Arc::default();
    let acked2 = acked.clone();
    let uploader = std::thread::spawn(move || {
        for (i, code) in codes.iter().enumerate() {
            let keys = keys_of_day(today - 2 - (i as u32 % 10), 1);
            let body = Upload {
                upload_code: code.as_bytes().to_vec(),
                token: None,
                keys: keys.clone(),
                dummy: false,
                filter_intervals: Vec::new(),
                stays: Default::default(),
            }
            .encode_padded()
            .unwrap();
            let Ok(r) = std::panic::catch_unwind(|| http(addr, "POST", "/v1/upload", &[], &body))
            else {
                return; // the node is gone
            };
            if r.status != 200 {
                return;
            }
            acked2.lock().unwrap().push(keys[0].tek.clone());
        }
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while acked.lock().unwrap().len() < 12 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    kill9(child);
    let _ = uploader.join();
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() >= 12,
        "only {} uploads before the kill",
        acked.len()
    );

    let (child, addr) = spawn_node(&config);
    // The pool left by the kill is published at the restarted node's first
    // boundaries: wait until every acknowledged key is served.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let list = loop {
        let list = get(addr, &format!("/v1/batches?origin={ORIGIN}&after=0")).json();
        let served = served_teks(addr, &list, &trust_of(&config), now);
        if acked.iter().all(|t| served.contains(t)) || std::time::Instant::now() > deadline {
            break list;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let node_id = get(addr, "/v1/deletion-log").json()["node_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let key = NoteKey::of_node(
        ed25519_dalek::VerifyingKey::from_bytes(&hex::decode(node_id).unwrap().try_into().unwrap())
            .unwrap(),
    );
    // Batches are served a moment before their log entries are appended: wait
    // until the log covers every listed batch.
    let listed: Vec<u64> = list["batches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["sequence"].as_u64().unwrap())
        .collect();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let (cp, tree, logged, indexes) = loop {
        let read = read_log(addr, &key);
        let covered = listed
            .iter()
            .all(|seq| read.2.contains(&(ORIGIN.to_owned(), *seq)));
        if covered || std::time::Instant::now() > deadline {
            break read;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(tree.root(), cp.root, "the tree after kill -9 is not whole");
    // Each acknowledged key is in a served batch that the log records once.
    let mut found = 0;
    for b in list["batches"].as_array().unwrap() {
        let seq = b["sequence"].as_u64().unwrap();
        let r = get(addr, b["url"].as_str().unwrap());
        let keys = batch_keys(&r.body, &trust_of(&config), now + 60);
        if keys.iter().any(|k| acked.contains(&k.tek)) {
            found += keys.iter().filter(|k| acked.contains(&k.tek)).count();
            let times = logged
                .iter()
                .filter(|l| **l == (ORIGIN.to_owned(), seq))
                .count();
            assert_eq!(times, 1, "acknowledged batch {seq} is logged {times} times");
        }
    }
    assert_eq!(found, acked.len(), "an acknowledged key was lost");
    // The index, written with each entry, agrees with the log after the kill.
    for seq in &listed {
        let r = get(addr, &format!("/v1/log/proof/batch/{ORIGIN}/{seq}"));
        assert_eq!(r.status, 200, "batch {seq}: {}", r.text());
        let proof = PublicationProof::decode(&r.body).unwrap();
        let body = get(addr, &format!("/v1/batches/{ORIGIN}/{seq}")).body;
        proof
            .verify(ORIGIN, *seq, &batch_id(&body), &[], 0)
            .unwrap();
        let at = logged.iter().position(|l| *l == (ORIGIN.to_owned(), *seq));
        assert_eq!(
            Some(proof.published.index),
            at.map(|i| indexes[i]),
            "batch {seq}: the index points elsewhere than the log"
        );
    }
    kill9(child);
}

/// The TEKs served in the listed batches.
fn served_teks(
    addr: std::net::SocketAddr,
    list: &serde_json::Value,
    trust: &TrustList,
    now: u64,
) -> Vec<Tek> {
    let mut teks = Vec::new();
    for b in list["batches"].as_array().unwrap() {
        let body = get(addr, b["url"].as_str().unwrap()).body;
        teks.extend(
            batch_keys(&body, trust, now + 60)
                .into_iter()
                .map(|k| k.tek),
        );
    }
    teks
}

/// The log as served: its checkpoint, the tree of its entries, and the
/// (origin, sequence) of every batch publication it records, with their
/// entries' indexes.
fn read_log(
    addr: std::net::SocketAddr,
    key: &NoteKey,
) -> (Checkpoint, MemoryTree, Vec<(String, u64)>, Vec<u64>) {
    let note = get(addr, "/v1/log/checkpoint").body;
    let cp = verify_checkpoint(&note, key, &[]).unwrap().checkpoint;
    let mut tree = MemoryTree::new();
    let mut logged = Vec::new();
    let mut indexes = Vec::new();
    let mut start = 0;
    while start < cp.size {
        let j = get(
            addr,
            &format!("/v1/log/entries?start={start}&end={}", cp.size),
        )
        .json();
        for (i, e) in j["entries"].as_array().unwrap().iter().enumerate() {
            let bytes = e.as_str().unwrap().as_bytes();
            tree.push(bytes);
            if let Event::Published {
                origin, sequence, ..
            } = Event::decode(bytes).unwrap()
            {
                logged.push((origin, sequence));
                indexes.push(start + i as u64);
            }
        }
        start = j["next"].as_u64().unwrap_or(cp.size);
    }
    (cp, tree, logged, indexes)
}

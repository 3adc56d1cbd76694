//! Expired data is gone from disk: keys uploaded to a real gateway (HTTP) and
//! gossiped to a relay (libp2p) are found in the raw bytes of the nodes' data
//! directories while stored, and nowhere in them once retention deleted their
//! batches, including a key that was first held under embargo. sled keeps a
//! removed record's bytes in its segment files, so this fails if a batch's or a
//! held key's TEK is ever written into sled.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use traceless_node::{upload_codes, ManualClock, RunningNode};
use traceless_protocol::wire::verify_deletion_log;
use traceless_protocol::*;

fn upload(node: &RunningNode, code: &str, keys: &[DiagnosisKey]) {
    let body = Upload {
        upload_code: code.as_bytes().to_vec(),
        token: None,
        keys: keys.to_vec(),
        dummy: false,
        filter_intervals: Vec::new(),
        stays: Default::default(),
    }
    .encode_padded()
    .unwrap();
    let r = http(node.http_addr, "POST", "/v1/upload", &[], &body);
    assert_eq!(r.status, 200, "{}", r.text());
}

/// The files under `dir` whose raw bytes contain `tek`.
fn files_holding(dir: &Path, tek: &Tek) -> Vec<PathBuf> {
    files_under(dir)
        .into_iter()
        .filter(|p| {
            // A file removed while we list (a temporary file) holds nothing.
            std::fs::read(p).is_ok_and(|bytes| bytes.windows(16).any(|w| w == tek.0))
        })
        .collect()
}

fn assert_on_disk(dir: &Path, keys: &[DiagnosisKey], what: &str) {
    for k in keys {
        assert!(
            !files_holding(dir, &k.tek).is_empty(),
            "control: a {what} TEK is not found under {dir:?}, so the scan proves nothing"
        );
    }
}

fn assert_gone(dir: &Path, keys: &[DiagnosisKey], what: &str) {
    for k in keys {
        let found = files_holding(dir, &k.tek);
        assert!(
            found.is_empty(),
            "an expired {what} TEK is still in {found:?}"
        );
    }
}

/// One retention run that deletes something; the deletion log's length after it.
fn retain(node: &RunningNode) -> usize {
    node.core
        .run_retention()
        .unwrap()
        .expect("something was due");
    node.core.store.deletion_log().unwrap().len()
}

fn assert_log_verifies(node: &RunningNode, records: usize) {
    let log = node.core.store.deletion_log().unwrap();
    let verified = verify_deletion_log(&log, &node.core.node_id()).unwrap();
    assert_eq!(verified.len(), records);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn expired_teks_are_gone_from_every_file_of_gateway_and_relay() {
    let clock = ManualClock::new(NOW);
    let gw_dir = tempfile::tempdir().unwrap();
    let relay_dir = tempfile::tempdir().unwrap();
    let config = gateway_config(gw_dir.path());
    let (codes, records) = upload_codes::issue(2, NOW + 86_400);
    upload_codes::write_incoming(gw_dir.path(), &records).unwrap();
    let gateway = start_node(config, &clock).await;
    let mut c = relay_config(relay_dir.path());
    c.p2p.bootstrap = gateway.p2p_addrs.iter().map(|a| a.to_string()).collect();
    let relay = start_node(c, &clock).await;

    // Two uploads: an old day (expires first), yesterday, and today's key, held
    // under embargo until two hours after midnight.
    let old = keys_of_day(TODAY - 10, 3);
    let yesterday = keys_of_day(TODAY - 1, 2);
    let held = keys_of_day(TODAY, 1);
    upload(&gateway, &codes[0], &old);
    upload(
        &gateway,
        &codes[1],
        &[yesterday.clone(), held.clone()].concat(),
    );
    assert_on_disk(gw_dir.path(), &held, "held");

    // Published together, in one period batch of three days, at the end of
    // the period in which the embargo ended.
    clock.set(u64::from(TODAY + 1) * 86_400 + 3 * 3600);
    gateway.core.run_period().unwrap();
    let stored = |n: &RunningNode| n.core.store.all_batches().unwrap().len();
    assert_eq!(stored(&gateway), 1);
    assert!(
        wait_until(Duration::from_secs(30), || stored(&relay) == 1).await,
        "the relay got {} of 1 batch",
        stored(&relay)
    );
    let all = [old.clone(), yesterday.clone(), held.clone()].concat();
    for dir in [gw_dir.path(), relay_dir.path()] {
        assert_on_disk(dir, &all, "stored");
    }

    // The old day expires: its keys go from the batch (pruned to its digest),
    // the other days stay.
    let expires_at = gateway.core.store.all_batches().unwrap()[0]
        .days
        .iter()
        .find(|d| d.day == TODAY - 10)
        .unwrap()
        .expires_at;
    clock.set(expires_at + 1);
    for n in [&gateway, &relay] {
        assert_eq!(retain(n), 1);
        assert_log_verifies(n, 1);
    }
    for dir in [gw_dir.path(), relay_dir.path()] {
        assert_gone(dir, &old, "old-day");
        assert_on_disk(dir, &[yesterday.clone(), held.clone()].concat(), "live");
    }

    // Everything expires: no uploaded key is left anywhere, not even in the
    // gateway's record of the once-held key.
    clock.set(u64::from(TODAY + 1) * 86_400 + 15 * 86_400);
    for n in [&gateway, &relay] {
        assert_eq!(retain(n), 2);
        assert_log_verifies(n, 2);
    }
    for dir in [gw_dir.path(), relay_dir.path()] {
        assert_gone(dir, &all, "uploaded");
    }
    gateway.shutdown().await;
    relay.shutdown().await;
    // Nothing comes back when the databases are closed.
    for dir in [gw_dir.path(), relay_dir.path()] {
        assert_gone(dir, &all, "uploaded");
    }
}

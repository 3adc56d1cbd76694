//! Node bench of the publication schedule (SPEC.md §6.4), each figure next to a
//! baseline measured in the same run: ingest of 100,000 keys into the pool
//! (uploads of 14 keys, each acknowledged after its flush) against the bare
//! store commits of the same keys, and the publication of that 100,000-key
//! period against signing the same keys into one period batch (SPEC.md §5.9).
//!
//! `cargo test --release -p traceless-node --test publication_bench -- --ignored --nocapture`
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Instant;

use common::*;
use traceless_node::config::PublicationConfig;
use traceless_node::gateway::Gateway;
use traceless_node::storage::{CodeStore, GatewayCommit, PoolStore, SledStore};
use traceless_node::upload_codes;
use traceless_protocol::*;

const KEYS: usize = 100_000;
const PER_UPLOAD: usize = 14;

fn upload_keys(i: usize) -> Vec<DiagnosisKey> {
    (0..PER_UPLOAD)
        .flat_map(|d| keys_of_day(TODAY - 1 - ((i + d) % 13) as u32, 1))
        .collect()
}

#[test]
#[ignore = "benchmark: ~1 minute in release"]
fn pool_ingest_and_a_100k_key_period() {
    let uploads = KEYS / PER_UPLOAD;
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(&dir.path().join("db")).unwrap();
    let queue = traceless_node::storage::warnings::WarningFiles::at(dir.path());
    let (codes, records) = upload_codes::issue(uploads, NOW + 86_400);
    store.insert_codes(&records).unwrap();
    let gateway = Gateway::new(
        authority(),
        u32::MAX,
        NOW,
        PublicationConfig {
            min_keys: 140,
            ..PublicationConfig::default()
        },
        GatewaySealKey::generate(),
        Vec::new(),
    );
    let boundary = NOW - NOW % 3600;
    assert!(gateway.publish_period(&store, boundary).unwrap().is_none());
    let bodies: Vec<Vec<u8>> = codes
        .iter()
        .enumerate()
        .map(|(i, code)| {
            Upload {
                upload_code: code.as_bytes().to_vec(),
                token: None,
                keys: upload_keys(i),
                dummy: false,
                filter_intervals: Vec::new(),
                stays: Default::default(),
            }
            .encode_padded()
            .unwrap()
        })
        .collect();

    // Baseline: the same keys committed straight to the store, one flush each.
    let base_dir = tempfile::tempdir().unwrap();
    let base = SledStore::open(&base_dir.path().join("db")).unwrap();
    let started = Instant::now();
    for i in 0..uploads {
        base.commit_gateway(&GatewayCommit {
            add_pending: upload_keys(i).into_iter().map(|k| (NOW, k)).collect(),
            ..Default::default()
        })
        .unwrap();
    }
    let base_rate = (uploads * PER_UPLOAD) as f64 / started.elapsed().as_secs_f64();

    let started = Instant::now();
    for body in &bodies {
        gateway.accept(&store, &queue, body, NOW).unwrap();
    }
    let ingest_rate = (uploads * PER_UPLOAD) as f64 / started.elapsed().as_secs_f64();

    // Baseline: signing the period's keys as one period batch, nothing stored.
    let all: Vec<DiagnosisKey> = (0..uploads).flat_map(upload_keys).collect();
    let started = Instant::now();
    PeriodBatch::from_keys(ORIGIN, 1, boundary + 3600, all)
        .sign_with(&authority(), Default::default())
        .unwrap()
        .encode();
    let sign_secs = started.elapsed().as_secs_f64();

    // Phase: reading the period's pool (publication does it again, inside).
    let started = Instant::now();
    let pooled = store.pending_due(boundary + 3599).unwrap().len();
    let read_secs = started.elapsed().as_secs_f64();
    assert_eq!(pooled, uploads * PER_UPLOAD);

    let started = Instant::now();
    let report = gateway
        .publish_period(&store, boundary + 3600)
        .unwrap()
        .unwrap();
    let publish_secs = started.elapsed().as_secs_f64();
    assert_eq!(report.real_keys, uploads * PER_UPLOAD);
    println!(
        "pool ingest: {ingest_rate:.0} keys/s in uploads of {PER_UPLOAD} (bare store commits: {base_rate:.0} keys/s, ratio {:.2}); \
         publishing a {}-key period into {} batches: {publish_secs:.2} s (signing alone: {sign_secs:.2} s, ratio {:.2}; \
         of it reading the pool: {read_secs:.2} s)",
        ingest_rate / base_rate,
        report.real_keys + report.padding_keys,
        report.batches.len(),
        publish_secs / sign_secs,
    );
}

//! Small faults from the review, each with the test that catches it: a data
//! dir already in use is a typed error (not sled's raw `WouldBlock`), and a
//! gateway's transparency page counts the embargoed keys `/metrics` counts (and
//! neither counts the publication pool), in gateway wording.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use traceless_node::storage::StorageError;
use traceless_node::{upload_codes, ManualClock, StartError};
use traceless_protocol::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_dir_in_use_is_a_typed_error_naming_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(NOW);
    let first = start_node(relay_config(dir.path()), &clock).await;
    let second =
        traceless_node::start(relay_config(dir.path()), std::sync::Arc::new(clock.clone())).await;
    match second {
        Err(StartError::Storage(StorageError::InUse(path))) => {
            assert_eq!(path, dir.path().join("db"));
        }
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("two nodes opened one data dir"),
    }
    // The first node is unharmed.
    assert_eq!(get(first.http_addr, "/healthz").status, 200);
    first.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateways_page_and_metrics_agree_and_count_no_pooled_key() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(NOW);
    let (codes, records) = upload_codes::issue(1, NOW + 86_400);
    upload_codes::write_incoming(dir.path(), &records).unwrap();
    let node = start_node(gateway_config(dir.path()), &clock).await;
    // Today's key is still valid: embargoed, held by the gateway outside any batch.
    let body = Upload {
        upload_code: codes[0].as_bytes().to_vec(),
        token: None,
        keys: keys_of_day(TODAY, 1),
        dummy: false,
        filter_intervals: Vec::new(),
        stays: Default::default(),
    }
    .encode_padded()
    .unwrap();
    let r = http(node.http_addr, "POST", "/v1/upload", &[], &body);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["embargoed_keys"], 1);
    // After the boundary, the page and /metrics agree, and neither counts the
    // key waiting in the pool: its growth would tell the period's uploads.
    next_period(&node.core, &clock);
    let metrics = get(node.http_addr, "/metrics").text();
    assert!(
        metrics.contains("\ntraceless_embargoed_keys 0\n"),
        "{metrics}"
    );
    assert!(!metrics.contains("traceless_pool"), "{metrics}");
    let page = get(node.http_addr, "/").text();
    assert!(page.contains("data-embargoed-keys=\"0\""), "{page}");
    assert!(page.contains("upload gateway"), "{page}");
    assert!(!page.contains("This server relays"), "{page}");
    node.shutdown().await;
}

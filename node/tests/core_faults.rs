//! Faults of the node's core found in review, each pinned by a test on a real
//! node (sled on disk, axum and libp2p on 127.0.0.1, an injected clock).
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use traceless_node::federation::FederationError;
use traceless_node::{upload_codes, ManualClock, StartError};

fn post_upload(node: &traceless_node::RunningNode, body: &[u8]) -> Response {
    http(node.http_addr, "POST", "/v1/upload", &[], body)
}

/// A valid code in an upload whose keys have all expired used to be answered
/// 200 and burned, so the patient's real upload then got 403. Now it is refused
/// (400, saying why) and the code still works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_of_only_expired_keys_is_refused_and_keeps_its_code() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(NOW);
    let (codes, records) = upload_codes::issue(1, NOW + 86_400);
    upload_codes::write_incoming(dir.path(), &records).unwrap();
    let node = start_node(gateway_config(dir.path()), &clock).await;

    let r = post_upload(&node, &upload_body(&codes[0], keys_of_day(TODAY - 20, 2)));
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("nothing to publish"), "{}", r.text());
    assert!(node.core.store.all_batches().unwrap().is_empty());

    let r = post_upload(&node, &upload_body(&codes[0], keys_of_day(TODAY - 1, 1)));
    assert_eq!(r.status, 200, "the code was not spent: {}", r.text());
    node.shutdown().await;
}

/// The gateway's upload bucket used to be charged before the code was checked,
/// and by dummies: junk and cover traffic drained it. Now only authenticated
/// real uploads are charged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_authenticated_real_uploads_charge_the_upload_bucket() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(NOW);
    let (codes, records) = upload_codes::issue(3, NOW + 86_400);
    upload_codes::write_incoming(dir.path(), &records).unwrap();
    let mut config = gateway_config(dir.path());
    config.gateway.as_mut().unwrap().uploads_per_minute = 2;
    let node = start_node(config, &clock).await;

    let wrong = format!("{}-{}", &codes[0][..16], "0".repeat(32));
    for _ in 0..5 {
        let r = post_upload(&node, &upload_body(&wrong, keys_of_day(TODAY - 1, 1)));
        assert_eq!(r.status, 403, "{}", r.text());
        let r = post_upload(&node, &dummy_upload_body());
        assert_eq!(r.status, 200, "a dummy is answered like a real upload");
        let r = post_upload(&node, &[0xff; traceless_protocol::wire::UPLOAD_REQUEST_LEN]);
        assert_eq!(r.status, 400);
    }
    for code in &codes[..2] {
        let r = post_upload(&node, &upload_body(code, keys_of_day(TODAY - 1, 1)));
        assert_eq!(r.status, 200, "{}", r.text());
    }
    // Control: the bucket (2 a minute) is empty now, for real uploads and, so
    // that the answer does not tell them apart, for dummies.
    let r = post_upload(&node, &upload_body(&codes[2], keys_of_day(TODAY - 1, 1)));
    assert_eq!(r.status, 429, "{}", r.text());
    let r = post_upload(&node, &dummy_upload_body());
    assert_eq!(r.status, 429, "{}", r.text());
    clock.advance(60);
    let r = post_upload(&node, &upload_body(&codes[2], keys_of_day(TODAY - 1, 1)));
    assert_eq!(r.status, 200, "the code survived the refusal: {}", r.text());
    node.shutdown().await;
}

/// libp2p binds TCP listeners with `SO_REUSEPORT`, so a second node on the same
/// p2p port used to start and share it silently. Now start-up fails, naming
/// the address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_p2p_port_in_use_fails_start_up() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let clock = ManualClock::new(NOW);
    let first = start_node(relay_config(a.path()), &clock).await;
    let tcp = first
        .p2p_addrs
        .iter()
        .find(|m| m.to_string().contains("/tcp/"))
        .unwrap()
        .to_string();
    let taken = tcp.split("/p2p/").next().unwrap().to_owned();
    let mut config = relay_config(b.path());
    config.p2p.listen = vec![taken.clone()];
    let err = traceless_node::start(config, std::sync::Arc::new(clock.clone()))
        .await
        .err()
        .expect("a second node on a taken p2p port must not start");
    assert!(
        matches!(&err, StartError::Federation(FederationError::Listen { addr, .. }) if *addr == taken),
        "{err}"
    );
    assert!(err.to_string().contains(&taken), "{err}");
    first.shutdown().await;
}

/// A data dir that cannot be created used to be reported as a "network" error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_dir_that_cannot_be_made_is_a_data_dir_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    let config = relay_config(&file.join("data"));
    let err = traceless_node::start(config, std::sync::Arc::new(ManualClock::new(NOW)))
        .await
        .err()
        .expect("must not start");
    assert!(matches!(err, StartError::DataDir { .. }), "{err}");
    assert!(!err.to_string().contains("network"), "{err}");
}

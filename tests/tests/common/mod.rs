//! Helpers shared by the end-to-end tests that run real nodes.

// Each test binary compiles this module and uses a part of it.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use traceless_node::config::TrustEntry;
use traceless_node::Config;
use traceless_protocol::AuthorityKey;
use traceless_sdk::Sdk;
use traceless_sim::http::request;

/// A node config in `dir` trusting `authority` for `origin`, HTTP on port 0,
/// fast gossip heartbeats and catch-up, and `bootstrap` as its peers.
pub fn node_config(
    dir: &Path,
    origin: &str,
    authority: &AuthorityKey,
    bootstrap: &[String],
) -> Config {
    let mut c = Config {
        data_dir: dir.to_owned(),
        ..Config::default()
    };
    c.p2p.listen = traceless_node::config::P2pConfig::ephemeral_listen();
    c.http.listen = "127.0.0.1:0".parse().unwrap();
    c.p2p.heartbeat_ms = 100;
    c.p2p.catchup_interval_secs = 1;
    c.p2p.bootstrap = bootstrap.to_vec();
    c.trust.push(TrustEntry {
        origin: origin.into(),
        key_id: authority.key_id,
        public_key: hex::encode(authority.verifying_key().to_bytes()),
    });
    c
}

/// Polls `f` every 50 ms for at most 10 s.
pub async fn eventually<T>(mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let end = Instant::now() + Duration::from_secs(10);
    while Instant::now() < end {
        if let Some(v) = f() {
            return Some(v);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

/// What a host app does to sync: download the batches of `origin` after the
/// SDK's cursor in one `BatchList` and hand each to the SDK. Returns how many
/// it synced.
pub fn sync_from(node: SocketAddr, origin: &str, phone: &mut Sdk) -> usize {
    let after = phone.cursor(origin).unwrap().unwrap_or(0);
    let r = request(
        node,
        "GET",
        &format!("/v1/batch-list/{origin}?after={after}"),
        b"",
    )
    .unwrap();
    assert_eq!(r.status, 200);
    let list = traceless_protocol::BatchList::decode(&r.body).unwrap();
    for bytes in &list.batches {
        phone.sync_batch(bytes).unwrap();
    }
    list.batches.len()
}

/// What a host app does to sync the filter form: list `origin`'s day filters
/// and, for each, download the parts above the SDK's complete prefix and hand
/// them to the SDK. Returns how many downloads it synced.
pub fn sync_filters_from(node: SocketAddr, origin: &str, phone: &mut Sdk) -> usize {
    let list = request(node, "GET", &format!("/v1/filters?origin={origin}"), b"")
        .unwrap()
        .try_json()
        .unwrap();
    let mut synced = 0;
    for entry in list["filters"].as_array().unwrap() {
        let day = entry["day"].as_u64().unwrap() as u32;
        let revision = entry["revision"].as_u64().unwrap();
        let held = phone.filter_revision(origin, day).unwrap();
        if held >= Some(revision) {
            continue;
        }
        let url = format!(
            "{}?after={}",
            entry["url"].as_str().unwrap(),
            held.unwrap_or(0)
        );
        let bytes = request(node, "GET", &url, b"").unwrap();
        assert_eq!(bytes.status, 200);
        phone.sync_filter(&bytes.body).unwrap();
        synced += 1;
    }
    synced
}

/// A host client of the simulated origin: downloads from `download`, posts
/// sealed uploads to `relay`, asks `gateway` for keys and tokens; short
/// timeouts, bounded retries.
pub fn host_client(download: &str, relay: &str, gateway: &str) -> traceless_sdk::client::Client {
    traceless_sdk::client::Client::new(traceless_sdk::client::ClientConfig {
        download_node: download.into(),
        relay: relay.into(),
        gateway: gateway.into(),
        origin: traceless_sim::nodes::ORIGIN.into(),
        http: traceless_sdk::client::HttpOptions {
            timeout: Duration::from_secs(10),
            retries: 2,
            backoff: Duration::from_millis(20),
            pinned_certificates: Vec::new(),
        },
    })
    .expect("a valid client configuration")
}

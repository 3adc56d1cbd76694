//! End to end over real parts: phones run the SDK, a gateway node accepts an
//! upload over HTTP, a relay node gets the signed batch over libp2p, and another
//! phone downloads it from the relay over HTTP, verifies it and matches locally.

#![allow(clippy::unwrap_used)]

mod common;
use common::{eventually, sync_from};

use std::path::Path;
use std::sync::Arc;

use traceless_node::config::GatewayConfig;
use traceless_node::{upload_codes, Config, Role, RunningNode};
use traceless_protocol::{AuthorityKey, Clock, ManualClock, Upload};
use traceless_sdk::{Sdk, SdkConfig};
use traceless_sim::http::request;

const ORIGIN: &str = "e2e.health";
/// 2023-11-14 12:00 UTC.
const DAY: u32 = 19_675;
const NOON: u64 = DAY as u64 * 86_400 + 12 * 3600;

fn node_config(dir: &Path, authority: &AuthorityKey, bootstrap: &[String]) -> Config {
    common::node_config(dir, ORIGIN, authority, bootstrap)
}

async fn gateway(dir: &Path, authority: &AuthorityKey, clock: &ManualClock) -> RunningNode {
    let mut c = node_config(dir, authority, &[]);
    let key_file = dir.join("authority.key");
    std::fs::create_dir_all(dir).unwrap();
    traceless_node::keys::write_authority_key(&key_file, authority).unwrap();
    c.role = Role::Gateway;
    c.gateway = Some(GatewayConfig {
        origin: ORIGIN.into(),
        authority_key_file: key_file,
        uploads_per_minute: 100,
        token_keys: Vec::new(),
        response_delay_ms: 0,
        export_key_file: None,
        risk_config_file: None,
    });
    traceless_node::start(c, Arc::new(clock.clone()))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_through_a_gateway_reaches_a_contact_through_a_relay() {
    let tmp = tempfile::tempdir().unwrap();
    let authority = AuthorityKey::generate(ORIGIN, 1);
    let node_clock = ManualClock::new(NOON);
    let (codes, records) = upload_codes::issue(1, NOON + 86_400);
    upload_codes::write_incoming(&tmp.path().join("gateway"), &records).unwrap();
    let gw = gateway(&tmp.path().join("gateway"), &authority, &node_clock).await;
    let bootstrap: Vec<String> = gw.p2p_addrs.iter().map(|a| a.to_string()).collect();
    let relay = traceless_node::start(
        node_config(&tmp.path().join("relay"), &authority, &bootstrap),
        Arc::new(node_clock.clone()),
    )
    .await
    .unwrap();

    // Yesterday, Alice and Bob sat together for half an hour; Carol was elsewhere.
    let phone_clock = ManualClock::new(NOON - 86_400);
    let new_phone = || Sdk::in_memory(SdkConfig::default(), Arc::new(phone_clock.clone())).unwrap();
    let (mut alice, mut bob, mut carol) = (new_phone(), new_phone(), new_phone());
    for _ in 0..8 {
        let ad = alice.advertisement().unwrap();
        bob.record_sighting(&ad.to_bytes(), -58, None, phone_clock.now())
            .unwrap();
        carol.advertisement().unwrap();
        phone_clock.advance(240);
    }

    // Today Alice tests positive and uploads with her code; Carol sends a dummy.
    phone_clock.set(NOON);
    alice.advertisement().unwrap();
    let bundle = alice
        .diagnosis_upload(codes[0].as_bytes(), DAY - 1, &[])
        .unwrap();
    let dummy = carol.dummy_upload().unwrap();
    assert_eq!(bundle.len(), dummy.len(), "an observer sees one length");
    let r = request(gw.http_addr, "POST", "/v1/upload", &bundle).unwrap();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let receipt = r.try_json().unwrap();
    assert_eq!(receipt["pooled_keys"], 2, "both keys wait for a boundary");
    assert_eq!(
        receipt["embargoed_keys"], 1,
        "today's key waits for the embargo too"
    );
    let r = request(gw.http_addr, "POST", "/v1/upload", &dummy).unwrap();
    assert_eq!(r.status, 200, "a dummy gets the same answer path");
    // The code was single-use.
    let replay = request(gw.http_addr, "POST", "/v1/upload", &bundle).unwrap();
    assert_ne!(replay.status, 200);

    // At the period's boundary the gateway publishes yesterday's key among
    // padding (SPEC.md §6.4); the batches reach the relay over libp2p; Bob and
    // Carol sync from the relay.
    node_clock.set(NOON + 3600);
    let count = |addr| {
        request(addr, "GET", &format!("/v1/batches?origin={ORIGIN}"), b"")
            .ok()
            .and_then(|r| r.try_json())
            .and_then(|l| l["batches"].as_array().map(Vec::len))
            .unwrap_or(0)
    };
    let listed = eventually(|| {
        let published = count(gw.http_addr);
        (published > 0 && count(relay.http_addr) == published).then_some(())
    })
    .await;
    assert!(listed.is_some(), "the relay never received the batches");
    for phone in [&mut bob, &mut carol] {
        phone
            .trust_authority(ORIGIN, 1, authority.verifying_key())
            .expect("valid origin");
        // One batch: yesterday's key among padding shaped like it.
        assert_eq!(sync_from(relay.http_addr, ORIGIN, phone), 1);
        assert_eq!(
            sync_from(relay.http_addr, ORIGIN, phone),
            0,
            "the cursor moved on"
        );
    }
    let bob_days = bob.exposure_summary().unwrap();
    assert_eq!(bob_days.len(), 1);
    assert_eq!(bob_days[0].day, DAY - 1);
    assert!(bob_days[0].high_risk, "{bob_days:?}");
    assert!(carol.exposure_summary().unwrap().is_empty());

    // What the relay serves is exactly what Alice uploaded for yesterday, signed.
    let upload = Upload::decode(&bundle, NOON).unwrap();
    assert_eq!(upload.keys.len(), 2);

    relay.shutdown().await;
    gw.shutdown().await;
}

//! The SDK's network client (feature `client`) against a real gateway and relay
//! on loopback: a patient buys a token and posts her sealed upload through the
//! relay, a contact's client pages through the batch list from its cursor and
//! is told of the exposure, the dummy schedule sends cover traffic when due,
//! and a dead node or a relay that is the gateway gets a typed error.

#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use traceless_protocol::{Clock, ManualClock};
use traceless_sdk::client::{Client, ClientConfig, ClientError, HttpOptions};
use traceless_sdk::{Sdk, SdkConfig};
use traceless_sim::nodes::{Nodes, ORIGIN};

const DAY: u32 = 19_675;
const NOON: u64 = DAY as u64 * 86_400 + 12 * 3600;

fn options() -> HttpOptions {
    HttpOptions {
        timeout: Duration::from_secs(10),
        retries: 2,
        backoff: Duration::from_millis(20),
        pinned_certificates: Vec::new(),
    }
}

fn client(download: String, relay: String, gateway: String) -> Result<Client, ClientError> {
    Client::new(ClientConfig {
        download_node: download,
        relay,
        gateway,
        origin: ORIGIN.into(),
        http: options(),
    })
}

#[test]
fn the_client_syncs_buys_tokens_uploads_through_the_relay_and_sends_dummies() {
    let tmp = tempfile::tempdir().unwrap();
    let nodes = Nodes::start(tmp.path(), 1, NOON, 1, 86_400).unwrap();
    let relay = format!("http://{}/", nodes.relays[0].http_addr);
    let gateway = format!("http://{}", nodes.gateway.http_addr);
    // Phones download from the gateway and post through the relay.
    let net = client(gateway.clone(), relay.clone(), gateway.clone()).unwrap();

    let clock = ManualClock::new(NOON - 86_400);
    let phone =
        || Mutex::new(Sdk::in_memory(SdkConfig::default(), Arc::new(clock.clone())).unwrap());
    let (alice, bob) = (phone(), phone());
    for _ in 0..8 {
        let ad = alice.lock().unwrap().advertisement().unwrap();
        bob.lock()
            .unwrap()
            .record_sighting(&ad.to_bytes(), -58, None, clock.now())
            .unwrap();
        clock.advance(240);
    }
    clock.set(NOON);
    assert_eq!(
        net.buy_tokens(&alice, nodes.codes[0].as_bytes(), 1)
            .unwrap(),
        1
    );
    assert!(
        matches!(
            net.buy_tokens(&alice, nodes.codes[0].as_bytes(), 1),
            Err(ClientError::Status { status: 403, .. })
        ),
        "a code buys tokens once"
    );
    net.upload_diagnosis(&alice, DAY - 1, &[]).unwrap();
    assert!(
        matches!(
            net.upload_diagnosis(&alice, DAY - 1, &[]),
            Err(ClientError::Sdk(traceless_sdk::SdkError::InvalidArgument(
                _
            )))
        ),
        "no token left"
    );

    // Publication at the next boundary; Bob's client syncs once it is served.
    nodes.clock.advance(3_600);
    nodes.release_due();
    clock.set(nodes.clock.now());
    bob.lock()
        .unwrap()
        .trust_authority(ORIGIN, 1, nodes.authority.verifying_key())
        .expect("valid origin");
    let end = Instant::now() + Duration::from_secs(20);
    let mut totals = net.sync(&bob).unwrap();
    while totals.batches == 0 && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(50));
        totals = net.sync(&bob).unwrap();
    }
    assert!(totals.batches >= 1, "no batch synced: {totals:?}");
    assert!(totals.keys > 0);
    assert_eq!(totals.rejected, 0);
    let days = bob.lock().unwrap().exposure_summary().unwrap();
    assert_eq!(days.len(), 1);
    assert_eq!(days[0].day, DAY - 1);
    let again = net.sync(&bob).unwrap();
    assert_eq!(again.batches, 0, "the cursor skips what was synced");

    // The dummy schedule sends when due and then waits for the next draw.
    let due = bob.lock().unwrap().next_dummy_upload_at().unwrap();
    assert!(!net.run_dummy_schedule(&bob, due - 1).unwrap());
    assert!(net.run_dummy_schedule(&bob, due).unwrap());
    let next = bob.lock().unwrap().next_dummy_upload_at().unwrap();
    assert!(next > clock.now(), "the next dummy is drawn after now");

    // Refusals.
    assert!(matches!(
        client(gateway.clone(), gateway.clone(), gateway.clone()),
        Err(ClientError::Config(_))
    ));
    assert!(matches!(
        client(relay.clone(), relay.clone(), gateway.clone()),
        Err(ClientError::Config(_))
    ));
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_url = format!("http://{}", dead.local_addr().unwrap());
    drop(dead);
    let lost = client(dead_url.clone(), relay, gateway).unwrap();
    assert!(matches!(
        lost.sync(&bob),
        Err(ClientError::Network { url, .. }) if url.starts_with(&dead_url)
    ));
    nodes.shutdown();
}

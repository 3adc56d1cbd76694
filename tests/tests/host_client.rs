//! The SDK's network client (feature `client`) against a real gateway and relay
//! on loopback: a patient buys a token and posts her sealed upload through the
//! relay, a contact's client pages through the batch list from its cursor and
//! is told of the exposure, the dummy schedule sends cover traffic when due,
//! and a dead node or a relay that is the gateway gets a typed error.

#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use traceless_protocol::filter::{EntryFilter, FilterEntry};
use traceless_protocol::{
    day_start_interval, Batch, Clock, DayFilter, DiagnosisKey, ManualClock, Tek,
};
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

/// What an authority publishes besides keys reaches a phone through a relay
/// (SPEC.md §6.2, §7.3): the export file a RELAY serves verifies under the key
/// the GATEWAY lists at `/v1/export-keys`, the phone trusts that key only
/// through the authority's certificate, a file signed by any other key is
/// refused, and the risk configuration the relay serves is applied only if it
/// is the authority's and newer.
#[test]
fn export_keys_and_risk_configuration_reach_the_phone_through_a_relay() {
    use traceless_protocol::p256::ecdsa::{SigningKey, VerifyingKey};
    use traceless_protocol::{
        AuthorityKey, ExportFile, ExportKeyCertificate, RiskConfig, RiskParameters,
        SignedExportKey, WireError,
    };
    use traceless_sdk::SdkError;
    use traceless_sim::http::request;

    let tmp = tempfile::tempdir().unwrap();
    let nodes = Nodes::start(tmp.path(), 1, NOON, 1, 86_400).unwrap();
    let relay_addr = nodes.relays[0].http_addr;
    let gateway_addr = nodes.gateway.http_addr;
    let relay = format!("http://{relay_addr}");
    let gateway = format!("http://{gateway_addr}");
    let clock = ManualClock::new(NOON - 86_400);
    let phone =
        || Mutex::new(Sdk::in_memory(SdkConfig::default(), Arc::new(clock.clone())).unwrap());
    let (alice, bob) = (phone(), phone());
    alice.lock().unwrap().advertisement().unwrap();
    clock.set(NOON);

    // Alice uploads through the relay; the batch reaches the relay by gossip.
    let upload = client(gateway.clone(), relay.clone(), gateway.clone()).unwrap();
    upload
        .buy_tokens(&alice, nodes.codes[0].as_bytes(), 1)
        .unwrap();
    upload.upload_diagnosis(&alice, DAY - 1, &[]).unwrap();
    nodes.clock.advance(3_600);
    nodes.release_due();
    clock.set(nodes.clock.now());
    let sequence = nodes.gateway_next_sequence() - 1;
    assert!(sequence >= 1, "the upload published a batch");
    // A period batch has one export per day (SPEC.md §6.2): Alice's key day's.
    let path = format!("/v1/exports/{ORIGIN}/{sequence}/{}", DAY - 1);
    let end = Instant::now() + Duration::from_secs(20);
    let mut zip = request(relay_addr, "GET", &path, &[]).unwrap();
    while zip.status != 200 && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(50));
        zip = request(relay_addr, "GET", &path, &[]).unwrap();
    }
    assert_eq!(zip.status, 200, "the relay serves the batch's export");

    // The gateway lists the authority's key; the relay's file verifies under it.
    let listed = request(gateway_addr, "GET", "/v1/export-keys", &[])
        .unwrap()
        .try_json()
        .unwrap();
    let entry = &listed["export_keys"][0];
    assert_eq!(entry["origin"], ORIGIN);
    let gateway_key = VerifyingKey::from_sec1_bytes(
        &hex::decode(entry["public_key_sec1"].as_str().unwrap()).unwrap(),
    )
    .unwrap();
    assert_eq!(&gateway_key, nodes.export_key.signing_key.verifying_key());
    let export = ExportFile::from_zip(&zip.body, &gateway_key, clock.now()).unwrap();
    assert_eq!(export.region, "XX");
    assert!(!export.keys.is_empty());
    let relay_listed = request(relay_addr, "GET", "/v1/export-keys", &[])
        .unwrap()
        .try_json()
        .unwrap();
    assert_eq!(
        relay_listed, listed,
        "every node lists the same certified key"
    );

    // Bob trusts the key only through the certificate, via the relay.
    // Bob only downloads here: his relay is never asked.
    let net = client(relay.clone(), "http://127.0.0.2:9".into(), gateway.clone()).unwrap();
    assert!(
        matches!(
            bob.lock().unwrap().sync_export(&zip.body),
            Err(SdkError::Rejected(WireError::BadSignature(_)))
        ),
        "no export key is trusted yet"
    );
    assert!(
        matches!(
            net.trust_export_keys(&bob),
            Err(ClientError::Sdk(SdkError::Rejected(
                WireError::UntrustedSigner { .. }
            )))
        ),
        "a certificate is worth nothing before its authority is trusted"
    );
    bob.lock()
        .unwrap()
        .trust_authority(ORIGIN, 1, nodes.authority.verifying_key())
        .unwrap();
    assert_eq!(net.trust_export_keys(&bob).unwrap(), 1);
    assert!(bob.lock().unwrap().sync_export(&zip.body).unwrap().keys > 0);

    // A file with the same keys signed by a node's own, uncertified key is refused.
    let certificate =
        SignedExportKey::decode(&hex::decode(entry["certificate"].as_str().unwrap()).unwrap())
            .unwrap();
    let cert = ExportKeyCertificate::decode_body(&certificate.body).unwrap();
    let node_key = SigningKey::random(&mut rand::rngs::OsRng);
    let forged = export.to_zip(&node_key);
    let fresh = phone();
    fresh
        .lock()
        .unwrap()
        .trust_authority(ORIGIN, 1, nodes.authority.verifying_key())
        .unwrap();
    net.trust_export_keys(&fresh).unwrap();
    assert!(matches!(
        fresh.lock().unwrap().sync_export(&forged),
        Err(SdkError::Rejected(WireError::BadSignature("export.bin")))
    ));
    // And a certificate by another authority key under the same origin is refused.
    let rogue = AuthorityKey::generate(ORIGIN, 1);
    let rogue_cert = ExportKeyCertificate {
        public_key: *node_key.verifying_key(),
        ..cert
    }
    .sign(&rogue)
    .unwrap();
    assert!(matches!(
        fresh
            .lock()
            .unwrap()
            .trust_export_certificate(&rogue_cert.encode()),
        Err(SdkError::Rejected(WireError::BadSignature(_)))
    ));

    // The risk configuration, from the relay: applied once, then unchanged (ETag).
    assert_eq!(net.update_risk_config(&bob).unwrap(), Some(1));
    assert_eq!(
        net.update_risk_config(&bob).unwrap(),
        None,
        "304: unchanged"
    );
    let before = bob.lock().unwrap().config().clone();
    let sign = |key: &AuthorityKey, revision: u64, threshold: f64| {
        RiskConfig {
            origin: ORIGIN.into(),
            revision,
            created_at: clock.now(),
            parameters: RiskParameters {
                threshold,
                ..RiskParameters::default()
            },
        }
        .sign(key)
        .unwrap()
        .encode()
    };
    assert!(matches!(
        bob.lock().unwrap().apply_risk_config(&sign(&rogue, 5, 1.0)),
        Err(SdkError::Rejected(WireError::BadSignature(_)))
    ));
    assert!(matches!(
        bob.lock()
            .unwrap()
            .apply_risk_config(&sign(&nodes.authority, 1, 1.0)),
        Err(SdkError::AlreadySynced(_))
    ));
    assert_eq!(
        bob.lock().unwrap().config(),
        &before,
        "refused configs change nothing"
    );
    assert_eq!(
        bob.lock()
            .unwrap()
            .apply_risk_config(&sign(&nodes.authority, 2, 20.0))
            .unwrap(),
        2
    );
    assert_eq!(bob.lock().unwrap().config().risk.threshold, 20.0);
    nodes.shutdown();
}

/// A gateway and a relay, a client that downloads from the gateway, and a
/// phone at noon that trusts the authority.
fn gateway_and_phone(dir: &std::path::Path) -> (Nodes, Client, Mutex<Sdk>) {
    let nodes = Nodes::start(dir, 1, NOON, 1, 86_400).unwrap();
    let gateway = format!("http://{}", nodes.gateway.http_addr);
    let relay = format!("http://{}/", nodes.relays[0].http_addr);
    let net = client(gateway.clone(), relay, gateway).unwrap();
    let clock = ManualClock::new(NOON);
    let phone = Mutex::new(Sdk::in_memory(SdkConfig::default(), Arc::new(clock)).unwrap());
    phone
        .lock()
        .unwrap()
        .trust_authority(ORIGIN, 1, nodes.authority.verifying_key())
        .unwrap();
    (nodes, net, phone)
}

/// A phone's sync asks for the batch list once when the node did not cut it
/// short, and asks again when the node names a next page (`Link: <…>;
/// rel="next"`, SPEC.md §6.1): 3 batches take one request, 1,001 take two,
/// and every batch is synced either way.
#[test]
fn the_client_asks_for_more_batches_only_when_the_node_says_more_follow() {
    let tmp = tempfile::tempdir().unwrap();
    let (nodes, net, phone) = gateway_and_phone(tmp.path());
    let core = &nodes.gateway.core;
    let publish = |sequences: std::ops::RangeInclusive<u64>| {
        for sequence in sequences {
            let mut tek = [7u8; 16];
            tek[..8].copy_from_slice(&sequence.to_be_bytes());
            let key = DiagnosisKey {
                tek: Tek(tek),
                rolling_start: day_start_interval(DAY - 2),
                rolling_period: 144,
                transmission_risk: 4,
                days_since_onset: 0,
            };
            let batch = Batch {
                origin: ORIGIN.into(),
                sequence,
                created_at: NOON - 100,
                day: DAY - 2,
                keys: vec![key],
            };
            core.ingest(&batch.sign(&nodes.authority).unwrap().encode())
                .unwrap();
        }
    };
    let lists = || core.metrics.requests("/v1/batch-list/{origin}", 200);

    publish(1..=3);
    let before = lists();
    let totals = net.sync(&phone).unwrap();
    assert_eq!((totals.batches, totals.rejected), (3, 0));
    assert_eq!(
        lists() - before,
        1,
        "a list not cut short is asked for once"
    );

    publish(4..=1_004);
    let before = lists();
    let totals = net.sync(&phone).unwrap();
    assert_eq!((totals.batches, totals.rejected), (1_001, 0));
    assert_eq!(lists() - before, 2, "one page of 1,000, then the rest");
    assert_eq!(phone.lock().unwrap().cursor(ORIGIN).unwrap(), Some(1_004));
    nodes.shutdown();
}

/// A phone's sync fetches the new parts of every day filter in one request
/// (`GET /v1/filter-parts/{origin}?held=…`, SPEC.md §6.1), not a listing and
/// a request per changed day: parts of three days take one request, a new
/// part of one of them one more, and nothing new one that brings nothing.
#[test]
fn the_client_fetches_every_days_new_filter_parts_in_one_request() {
    let tmp = tempfile::tempdir().unwrap();
    let (nodes, net, phone) = gateway_and_phone(tmp.path());
    let core = &nodes.gateway.core;
    let publish = |day: u32, revision: u64| {
        let entries: Vec<FilterEntry> = (0..20u8)
            .map(|i| {
                let mut e = [i; 16];
                e[..4].copy_from_slice(&day.to_be_bytes());
                e[4] = revision as u8;
                FilterEntry(e)
            })
            .collect();
        let part = DayFilter {
            origin: ORIGIN.into(),
            day,
            revision,
            created_at: NOON - 100,
            filter: EntryFilter::build(&entries, [revision as u8; 16]).unwrap(),
        };
        core.ingest_filter(&part.sign(&nodes.authority).unwrap().encode())
            .unwrap();
    };
    let requests = || core.metrics.requests("/v1/filter-parts/{origin}", 200);
    let held = |day| phone.lock().unwrap().filter_revision(ORIGIN, day).unwrap();

    for day in DAY - 3..DAY {
        publish(day, 1);
    }
    let before = requests();
    let totals = net.sync(&phone).unwrap();
    assert_eq!((totals.filters, totals.rejected), (1, 0));
    assert_eq!(requests() - before, 1, "three days' parts in one request");
    assert_eq!([held(DAY - 3), held(DAY - 2), held(DAY - 1)], [Some(1); 3]);

    publish(DAY - 2, 2);
    let before = requests();
    assert_eq!(net.sync(&phone).unwrap().filters, 1);
    assert_eq!(requests() - before, 1);
    assert_eq!(held(DAY - 2), Some(2), "only the new part was missing");

    let before = requests();
    assert_eq!(net.sync(&phone).unwrap().filters, 0, "nothing new");
    assert_eq!(requests() - before, 1);
    nodes.shutdown();
}

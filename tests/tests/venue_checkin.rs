//! Venue check-in end to end (SPEC.md §12): an owner creates a venue with the
//! node's `venue create` code for the real gateway's authority key, two phones
//! check in from its entry URL at different hours, the authority traces one
//! hour through the gateway, the warnings are published at the next period
//! boundary (manual clock), and each phone's host client lists and downloads
//! them: the phone that was there that hour gets a venue exposure, the other
//! none. A warning batch the node serves tampered is refused by kind and
//! changes nothing; once synced, a batch is never downloaded again (the SDK's
//! warning cursor, across reopening, and the client's ETags).

#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use traceless_node::venue::{create, CreateArgs};
use traceless_protocol::venue::{TraceSecret, VenueError};
use traceless_protocol::{Clock, ExposureKind, ManualClock, WireError};
use traceless_sdk::client::{Client, SyncTotals};
use traceless_sdk::{MasterKey, Sdk, SdkConfig, SdkError};
use traceless_sim::http::request;
use traceless_sim::nodes::{Nodes, ORIGIN};

const DAY: u32 = 19_675;
const NAME: &str = "Apotheke am Markt";
const BASE_URL: &str = "https://traceless.example/checkin";
const MASTER: MasterKey = MasterKey([5; 32]);

/// Unix seconds of `hour:minute` on `DAY`.
fn at(hour: u64, minute: u64) -> u64 {
    u64::from(DAY) * 86_400 + hour * 3600 + minute * 60
}

/// Only downloads here: the relay is never asked.
fn client(gateway: &str) -> Client {
    common::host_client(gateway, "http://127.0.0.2:9", gateway)
}

fn open_phone(dir: &Path, clock: &ManualClock, nodes: &Nodes) -> Mutex<Sdk> {
    let mut sdk = Sdk::open(dir, &MASTER, SdkConfig::default(), Arc::new(clock.clone())).unwrap();
    sdk.trust_authority(ORIGIN, 1, nodes.authority.verifying_key())
        .unwrap();
    Mutex::new(sdk)
}

/// The owner runs `venue create` with the gateway's authority key; returns the
/// poster's entry URL and the trace secret kept apart from it. (The URL is the
/// one the poster's QR code holds: node/tests/venue.rs reads it off the
/// rendered poster with a QR decoder and compares it with the trace secret's.)
fn create_venue(out: &Path, authority_key: [u8; 32]) -> (String, TraceSecret) {
    let written = create(&CreateArgs {
        name: NAME.into(),
        address: "Marktplatz 3, 04109 Leipzig".into(),
        venue_type: 3,
        default_stay: 30,
        max_stay: 120,
        valid_from: None,
        valid_to: None,
        authority_key: Some(hex::encode(authority_key)),
        self_reported: None,
        rooms: Vec::new(),
        base_url: BASE_URL.into(),
        out: out.to_owned(),
    })
    .unwrap();
    assert_eq!(
        written.len(),
        3,
        "poster.svg, poster.html, trace-secret.txt"
    );
    let text = std::fs::read_to_string(out.join("trace-secret.txt")).unwrap();
    let line = text.lines().find(|l| !l.starts_with('#')).unwrap();
    let secret = TraceSecret::from_text(line).unwrap();
    (secret.entry().to_url(BASE_URL), secret)
}

fn visit(phone: &Mutex<Sdk>, clock: &ManualClock, url: &str, from: u64, to: u64) {
    clock.set(from);
    phone.lock().unwrap().check_in(url).unwrap();
    clock.set(to);
    phone.lock().unwrap().check_out().unwrap();
}

/// The authority traces `[start, end)` through the gateway; the next boundary
/// publishes it. Returns the gateway's clock after the boundary.
fn trace_and_publish(nodes: &Nodes, secret: &TraceSecret, start: u64, end: u64) -> u64 {
    let pre = secret.pre_trace(start, end, nodes.clock.now()).unwrap();
    let (view, slots) = nodes
        .gateway
        .core
        .trace_venue(&pre, "Please get tested", 8)
        .unwrap();
    assert_eq!((view.description.as_str(), slots), (NAME, 1));
    let boundary = nodes
        .gateway
        .core
        .schedule()
        .publication_of(nodes.clock.now());
    nodes.clock.set(boundary);
    nodes.release_due();
    boundary
}

fn venue_days(phone: &Mutex<Sdk>) -> Vec<traceless_protocol::DaySummary> {
    let days = phone.lock().unwrap().exposure_summary().unwrap();
    assert!(
        days.iter().all(|d| d.kind == ExposureKind::Venue),
        "{days:?}"
    );
    days
}

/// One host sync's venue warning counts: (batches synced, new matches, rejected).
fn sync(net: &Client, phone: &Mutex<Sdk>) -> (usize, usize, usize) {
    let t: SyncTotals = net.sync(phone).unwrap();
    (t.warning_batches, t.venue_matches, t.rejected)
}

/// The stored file of warning batch `sequence` on the gateway (SPEC.md §12.10).
fn stored(gateway_dir: &Path, sequence: u64) -> PathBuf {
    gateway_dir
        .join("warnings/published")
        .join(format!("w-{}-{sequence:020}", hex::encode(ORIGIN)))
}

#[test]
fn a_phone_at_the_traced_venue_and_hour_is_warned_through_the_host_client_and_no_other() {
    let tmp = tempfile::tempdir().unwrap();
    let nodes = Nodes::start(tmp.path(), 0, at(14, 0), 1, 86_400).unwrap();
    let gateway = format!("http://{}", nodes.gateway.http_addr);
    let net_a = client(&gateway);
    let net_b = client(&gateway);
    let (url, secret) = create_venue(
        &tmp.path().join("poster"),
        net_a.gateway_keys().unwrap().seal,
    );

    // Ben was there 10:10-10:50, Anna 12:10-12:40.
    let clock = ManualClock::new(at(9, 0));
    let anna_dir = tmp.path().join("anna");
    let anna = open_phone(&anna_dir, &clock, &nodes);
    let ben = open_phone(&tmp.path().join("ben"), &clock, &nodes);
    visit(&ben, &clock, &url, at(10, 10), at(10, 50));
    visit(&anna, &clock, &url, at(12, 10), at(12, 40));

    // A case was there 12:00-13:00; nothing is listed before the boundary.
    clock.set(nodes.clock.now());
    assert_eq!(sync(&net_a, &anna), (0, 0, 0));
    let boundary = trace_and_publish(&nodes, &secret, at(12, 0), at(13, 0));
    clock.set(boundary);

    // The gateway serves the batch tampered (one signature bit): refused by
    // kind, counted, nothing stored, the cursor unmoved.
    let file = stored(&tmp.path().join("gateway"), 1);
    let honest = std::fs::read(&file).unwrap();
    let mut tampered = honest.clone();
    *tampered.last_mut().unwrap() ^= 1;
    std::fs::write(&file, &tampered).unwrap();
    let served = request(
        nodes.gateway.http_addr,
        "GET",
        &format!("/v1/warnings/{ORIGIN}/1"),
        b"",
    )
    .unwrap();
    assert_eq!((served.status, &served.body), (200, &tampered));
    assert_eq!(sync(&net_a, &anna), (0, 0, 1));
    assert!(matches!(
        anna.lock().unwrap().sync_venue_warnings(&tampered),
        Err(SdkError::Venue(VenueError::Signature(
            WireError::BadSignature(_)
        )))
    ));
    assert_eq!(anna.lock().unwrap().warning_cursor(ORIGIN).unwrap(), None);
    assert!(venue_days(&anna).is_empty());
    // The same bytes are not downloaded again (304 on their ETag).
    assert_eq!(sync(&net_a, &anna), (0, 0, 0));

    // Served as signed: Anna has a venue exposure, Ben, there at 10, none.
    std::fs::write(&file, &honest).unwrap();
    assert_eq!(sync(&net_a, &anna), (1, 1, 0));
    assert_eq!(sync(&net_b, &ben), (1, 0, 0));
    let days = venue_days(&anna);
    assert_eq!(days.len(), 1, "{days:?}");
    // 12:10-12:40 against the case's 12:00-13:00 (+30 min): 30 minutes, risk 8 (x1.6).
    assert_eq!(days[0].day, DAY);
    assert!((days[0].minutes - 30.0).abs() < 1e-9, "{days:?}");
    assert!((days[0].score - 48.0).abs() < 1e-9, "{days:?}");
    assert!(days[0].high_risk);
    assert!(venue_days(&ben).is_empty());
    for phone in [&anna, &ben] {
        assert_eq!(
            phone.lock().unwrap().warning_cursor(ORIGIN).unwrap(),
            Some(1)
        );
    }

    // Synced batches are not downloaded again: were they, the bytes now
    // served (tampered again) would be refused and counted. Also with a fresh
    // client (no ETags) on Anna's reopened phone: the cursor is in her vault.
    std::fs::write(&file, &tampered).unwrap();
    assert_eq!(sync(&net_a, &anna), (0, 0, 0));
    assert_eq!(sync(&net_b, &ben), (0, 0, 0));
    drop(anna);
    let anna = open_phone(&anna_dir, &clock, &nodes);
    assert_eq!(sync(&client(&gateway), &anna), (0, 0, 0));
    assert_eq!(venue_days(&anna).len(), 1, "the match survives reopening");

    // A second trace (Ben's hour) is batch 2: each phone downloads only it.
    let boundary = trace_and_publish(&nodes, &secret, at(10, 0), at(11, 0));
    clock.set(boundary);
    assert_eq!(sync(&client(&gateway), &anna), (1, 0, 0));
    assert_eq!(sync(&net_b, &ben), (1, 1, 0));
    assert_eq!(venue_days(&ben).len(), 1);
    assert_eq!(venue_days(&anna).len(), 1);
    for phone in [&anna, &ben] {
        assert_eq!(
            phone.lock().unwrap().warning_cursor(ORIGIN).unwrap(),
            Some(2)
        );
    }
    nodes.shutdown();
}

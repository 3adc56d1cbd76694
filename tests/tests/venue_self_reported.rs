//! Self-reported venue stays end to end (SPEC.md §12.11): a code for a place
//! with no owner is made from the real gateway's published keys; three phones
//! check in; the one diagnosed buys a token with the authority's code and
//! uploads its stays through the relay, sealed; nothing public moves until the
//! next boundary, which publishes the warnings; the phone that was there that
//! hour is warned, the one there later is not. A replay of the same upload is
//! refused as redeemed and queues nothing.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::{Arc, Mutex};

use common::host_client;
use traceless_protocol::venue::{create_self_reported, MasterPublic, VenueDescription};
use traceless_protocol::{ExposureKind, ManualClock};
use traceless_sdk::client::ClientError;
use traceless_sdk::{Sdk, SdkConfig};
use traceless_sim::http::request;
use traceless_sim::nodes::{Nodes, ORIGIN};

const DAY: u32 = 19_675;

fn at(hour: u64, minute: u64) -> u64 {
    u64::from(DAY) * 86_400 + hour * 3600 + minute * 60
}

fn warnings_listed(nodes: &Nodes) -> Vec<u8> {
    request(nodes.gateway.http_addr, "GET", "/v1/warnings", b"")
        .unwrap()
        .body
}

#[test]
fn a_self_reported_stay_warns_who_was_there_that_hour_and_nobody_else() {
    let tmp = tempfile::tempdir().unwrap();
    let nodes = Nodes::start(tmp.path(), 1, at(9, 0), 1, 86_400).unwrap();
    let gateway = format!("http://{}", nodes.gateway.http_addr);
    let relay = format!("http://{}", nodes.relays[0].http_addr);
    let net = host_client(&gateway, &relay, &gateway);

    // Anyone makes the gate's code from the gateway's published keys.
    let keys = net.gateway_keys().unwrap();
    let venue = VenueDescription::new("Hoftor Nord", "Gartenweg 2, Leipzig", 0, 15, 120);
    let url = create_self_reported(
        &venue,
        &MasterPublic::from_bytes(&keys.venue.expect("the gateway publishes its venue key"))
            .unwrap(),
        &keys.seal,
    )
    .unwrap()
    .to_url("https://traceless.example/checkin");

    let clock = ManualClock::new(at(9, 0));
    let phone = || {
        let mut sdk = Sdk::in_memory(SdkConfig::default(), Arc::new(clock.clone())).unwrap();
        sdk.trust_authority(ORIGIN, 1, nodes.authority.verifying_key())
            .unwrap();
        Mutex::new(sdk)
    };
    let (case, there, later) = (phone(), phone(), phone());
    for (p, from, to) in [
        (&case, at(10, 10), at(10, 50)),
        (&there, at(10, 30), at(11, 0)),
        (&later, at(13, 0), at(13, 30)),
    ] {
        clock.set(from);
        p.lock().unwrap().check_in(&url).unwrap();
        clock.set(to);
        p.lock().unwrap().check_out().unwrap();
    }

    // Diagnosed the same day: one token, one sealed upload through the relay.
    clock.set(at(14, 0));
    nodes.clock.set(at(14, 0));
    let before = warnings_listed(&nodes);
    assert_eq!(
        net.buy_tokens(&case, nodes.codes[0].as_bytes(), 1).unwrap(),
        1
    );
    let sealed = case
        .lock()
        .unwrap()
        .sealed_stay_uploads(&keys.seal, DAY)
        .unwrap();
    assert_eq!(sealed.len(), 1);
    let post = |body: &[u8]| {
        request(
            nodes.relays[0].http_addr,
            "POST",
            &format!("/v1/relay/{ORIGIN}"),
            body,
        )
        .unwrap()
        .status
    };
    assert_eq!(post(&sealed[0]), 200);
    assert_eq!(post(&sealed[0]), 409, "the token is redeemed once");
    assert_eq!(
        warnings_listed(&nodes),
        before,
        "nothing public moves before the boundary"
    );
    assert!(
        matches!(
            net.upload_stays(&case, DAY),
            Err(ClientError::Sdk(traceless_sdk::SdkError::InvalidArgument(
                _
            )))
        ),
        "no token left"
    );

    // The boundary publishes one batch of one warning (one hour slot).
    let boundary = nodes.gateway.core.schedule().publication_of(at(14, 0));
    nodes.clock.set(boundary);
    nodes.release_due();
    clock.set(boundary);
    let listed: serde_json::Value = serde_json::from_slice(&warnings_listed(&nodes)).unwrap();
    let batches = listed["warnings"].as_array().unwrap();
    assert_eq!(batches.len(), 1, "{listed}");
    assert_eq!(batches[0]["warning_count"], 1, "a replay queued nothing");
    for p in [&there, &later] {
        // A client per phone: a client's ETags are its phone's.
        let t = host_client(&gateway, &relay, &gateway).sync(p).unwrap();
        assert_eq!((t.warning_batches, t.rejected), (1, 0));
    }
    let days = there.lock().unwrap().exposure_summary().unwrap();
    assert_eq!(days.len(), 1, "{days:?}");
    assert_eq!(days[0].kind, ExposureKind::Venue);
    // 10:30-11:00 against the case's 10:10-10:50 + 30 min: 30 minutes at risk 6 (x1.2).
    assert!((days[0].minutes - 30.0).abs() < 1e-9, "{days:?}");
    assert!(days[0].high_risk);
    assert!(later.lock().unwrap().exposure_summary().unwrap().is_empty());
    nodes.shutdown();
}

//! "Where is my data", end to end (SPEC.md §8.3.1–2), with real nodes on
//! loopback that witness each other: a patient's phone uploads through a relay,
//! requires every batch it syncs to come with a publication proof cosigned by a
//! relay it trusts, finds the batch carrying its key, learns from each node's
//! witnessed log that the node holds it, and after retention that each node
//! deleted it, with the signed deletion entry in that node's log.

#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use traceless_protocol::{Clock, ManualClock};
use traceless_sdk::client::{Client, ClientConfig, HttpOptions};
use traceless_sdk::{DataReport, Sdk, SdkConfig};
use traceless_sim::nodes::{Nodes, ORIGIN};

const DAY: u32 = 19_675;
const NOON: u64 = DAY as u64 * 86_400 + 12 * 3600;

/// Moves the nodes one publication period on (they publish, announce their
/// checkpoints and collect cosignatures), the phone with them, until `done`
/// holds; bounded by 60 periods and 60 s.
fn periods_until(nodes: &Nodes, phone: &ManualClock, mut done: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + Duration::from_secs(60);
    for _ in 0..60 {
        if done() {
            return true;
        }
        if Instant::now() > end {
            break;
        }
        nodes.clock.advance(3_600);
        nodes.release_due();
        phone.set(nodes.clock.now());
        // Announcements and cosignatures travel on the nodes' own 1-s tick.
        std::thread::sleep(Duration::from_millis(1_200));
    }
    done()
}

#[test]
fn a_patient_follows_her_keys_from_upload_to_deletion_on_every_node() {
    let tmp = tempfile::tempdir().unwrap();
    let nodes = Nodes::start(tmp.path(), 2, NOON, 1, 86_400).unwrap();
    let url = |addr: std::net::SocketAddr| format!("http://{addr}");
    let (gateway, relay_0, relay_1) = (
        url(nodes.gateway.http_addr),
        url(nodes.relays[0].http_addr),
        url(nodes.relays[1].http_addr),
    );
    let net = Client::new(ClientConfig {
        download_node: relay_0.clone(),
        relay: relay_1.clone(),
        gateway: gateway.clone(),
        origin: ORIGIN.into(),
        http: HttpOptions {
            timeout: Duration::from_secs(10),
            retries: 2,
            backoff: Duration::from_millis(20),
            pinned_certificates: Vec::new(),
        },
    })
    .unwrap();

    let clock = ManualClock::new(NOON - 86_400);
    let alice = Mutex::new(Sdk::in_memory(SdkConfig::default(), Arc::new(clock.clone())).unwrap());
    alice.lock().unwrap().advertisement().unwrap();
    clock.set(NOON);
    {
        let mut a = alice.lock().unwrap();
        a.trust_authority(ORIGIN, 1, nodes.authority.verifying_key())
            .unwrap();
        // The relays witness each other's and the gateway's logs.
        for r in &nodes.relays {
            a.trust_witness(r.core.log.note_key().key);
        }
        a.require_log_proofs(1);
    }
    net.buy_tokens(&alice, nodes.codes[0].as_bytes(), 1)
        .unwrap();
    net.upload_diagnosis(&alice, DAY - 1, &[]).unwrap();
    let report = || -> DataReport { alice.lock().unwrap().data_report().unwrap() };
    assert!(report().uploaded_at.is_some());
    assert!(report().publications.is_empty());

    // Published at a boundary; synced only once relay 0's log holds it under
    // a checkpoint relay 1 cosigned (until then the phone refuses it).
    assert!(
        periods_until(&nodes, &clock, || net.sync(&alice).unwrap().batches > 0),
        "no witnessed batch synced"
    );
    let r = report();
    assert_eq!(r.publications.len(), 1, "{r:?}");
    let p = &r.publications[0];
    assert_eq!((p.origin.as_str(), p.day, p.own_keys), (ORIGIN, DAY - 1, 1));
    assert_eq!(
        p.nodes.len(),
        1,
        "the download node, from the sync's own proof"
    );
    assert_eq!(p.nodes[0].node, relay_0);
    assert!(p.nodes[0].witnesses >= 1);

    // Every node's log, each proven against a checkpoint a trusted relay cosigned.
    let all = [gateway.clone(), relay_0.clone(), relay_1.clone()];
    assert!(
        periods_until(&nodes, &clock, || {
            net.refresh_data_report(&alice, &all).is_ok()
                && report().publications[0].nodes.len() == 3
        }),
        "not on every node: {:?}",
        report()
    );
    let p = report().publications.remove(0);
    let ids: std::collections::HashSet<_> = p.nodes.iter().map(|n| n.node_id).collect();
    assert_eq!(ids.len(), 3, "three different logs");
    assert!(p
        .nodes
        .iter()
        .all(|n| n.witnesses >= 1 && n.deleted_at.is_none()));

    // Retention deletes the day's batches 14 days on; each node logs its signed
    // deletion record, and the next cosigned checkpoints prove it.
    nodes.clock.advance(15 * 86_400);
    clock.set(nodes.clock.now());
    nodes.run_retention();
    let deleted_after = nodes.clock.now();
    assert!(
        periods_until(&nodes, &clock, || {
            net.refresh_data_report(&alice, &all).is_ok()
                && report().publications[0]
                    .nodes
                    .iter()
                    .all(|n| n.deleted_at.is_some())
        }),
        "deletion not proven on every node: {:?}",
        report()
    );
    for n in &report().publications[0].nodes {
        let at = n.deleted_at.unwrap();
        assert!(at >= deleted_after && at <= nodes.clock.now(), "{n:?}");
        assert!(n.deletion_index.unwrap() > n.log_index);
    }
    nodes.shutdown();
}

//! `/metrics` read back by a real OpenMetrics parser (the Python
//! `prometheus_client` package's, Debian `python3-prometheus-client`, installed by
//! `.ci/install-metrics-parser.sh`): every family the node exports, under the
//! names `docs/operators.md` documents, with the values the node's own counters
//! hold, libp2p's own families in the same registry, and the gossipsub mesh
//! and peer-score gauges once two relays are connected.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use traceless_node::ManualClock;

/// The parser: reads the exposition on stdin and prints every family as
/// `{name: {"type": .., "samples": [[name, labels, value], ..]}}`. It raises
/// on anything that is not valid OpenMetrics (the old hand-written text had
/// no `# EOF` and failed here).
const PARSE: &str = r#"
import json, sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families
out = {}
for f in text_string_to_metric_families(sys.stdin.read()):
    out[f.name] = {"type": f.type, "samples": [[s.name, s.labels, s.value] for s in f.samples]}
print(json.dumps(out))
"#;

/// Where the Debian package puts the parser: the system interpreter.
const PYTHON: &str = "/usr/bin/python3";

type Families = BTreeMap<String, serde_json::Value>;

fn parse(text: &str) -> Families {
    let mut child = Command::new(PYTHON)
        .args(["-c", PARSE])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 with prometheus_client (.ci/install-metrics-parser.sh)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "not valid OpenMetrics: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The value of the one unlabelled sample of a family.
fn value(f: &Families, family: &str) -> f64 {
    let samples = f[family]["samples"].as_array().unwrap();
    assert_eq!(samples.len(), 1, "{family}: {samples:?}");
    samples[0][2].as_f64().unwrap()
}

/// The node's families and their types (counters without `_total`, as
/// OpenMetrics names them).
const EXPORTED: &[(&str, &str)] = &[
    ("traceless_batches_stored", "counter"),
    ("traceless_batches_duplicate", "counter"),
    ("traceless_batches_conflicting", "counter"),
    ("traceless_gossip_accepted", "counter"),
    ("traceless_gossip_rejected", "counter"),
    ("traceless_gossip_ignored", "counter"),
    ("traceless_gossip_published", "counter"),
    ("traceless_gossip_publish_duplicate", "counter"),
    ("traceless_catchup_batches", "counter"),
    ("traceless_catchup_rejected", "counter"),
    ("traceless_catchup_unserved", "counter"),
    ("traceless_catchup_rounds", "counter"),
    ("traceless_uploads_accepted", "counter"),
    ("traceless_uploads_refused", "counter"),
    ("traceless_relayed_uploads_accepted", "counter"),
    ("traceless_relayed_uploads_refused", "counter"),
    ("traceless_tokens_issued", "counter"),
    ("traceless_retention_deletions", "counter"),
    ("traceless_filters_stored", "counter"),
    ("traceless_filters_duplicate", "counter"),
    ("traceless_filters_conflicting", "counter"),
    ("traceless_filters_rejected", "counter"),
    ("traceless_filters_built", "counter"),
    ("traceless_http_requests", "counter"),
    ("traceless_gossipsub_mesh_peers", "gauge"),
    ("traceless_gossipsub_peer_score", "gauge"),
    ("traceless_peers_connected", "gauge"),
    ("traceless_batches", "gauge"),
    ("traceless_keys", "gauge"),
    ("traceless_deletion_log_entries", "gauge"),
    ("traceless_embargoed_keys", "gauge"),
    ("traceless_filters", "gauge"),
    ("traceless_filter_entries", "gauge"),
    ("traceless_gateway_filter_entries", "gauge"),
    ("traceless_clock_offset_seconds", "gauge"),
    ("traceless_clock_alarm", "gauge"),
    ("traceless_clock_peers", "gauge"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn metrics_parse_as_openmetrics_with_every_family_and_libp2p_gossipsub() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let clock = ManualClock::new(NOW);
    let n1 = start_relay(a.path(), &clock, &[], 1).await;
    let n2 = start_relay(b.path(), &clock, &n1.p2p_addrs, 1).await;
    assert!(wait_for_peers(&n1, 1).await);

    let key = authority();
    // Two batches (3 + 4 keys), one of them again, and one still embargoed
    // (today's keys: 2 h after the end of the day).
    n1.core
        .ingest(&signed_batch(&key, 1, TODAY - 2, 3, NOW - 60))
        .unwrap();
    let again = signed_batch(&key, 2, TODAY - 1, 4, NOW - 60);
    n1.core.ingest(&again).unwrap();
    n1.core.ingest(&again).unwrap();
    n1.core
        .ingest(&signed_batch(&key, 3, TODAY, 2, NOW - 60))
        .unwrap();
    assert_eq!(get(n1.http_addr, "/v1/origins").status, 200);

    // Gossipsub's mesh forms within a few heartbeats (100 ms here); the node
    // sets its mesh and score gauges every 2 s.
    let topic = "traceless/v1/batches";
    let meshed = wait_until(Duration::from_secs(10), || {
        n1.core.metrics.mesh_peers(topic) >= 1
    })
    .await;
    assert!(meshed, "no gossipsub mesh peer");
    // `/metrics` is as of the period boundary: the next one shows all of it.
    next_period(&n1.core, &clock);
    let r = get(n1.http_addr, "/metrics");
    assert_eq!(r.status, 200);
    assert!(
        r.header("content-type")
            .unwrap()
            .starts_with("application/openmetrics-text"),
        "{:?}",
        r.header("content-type")
    );
    let families = parse(&r.text());
    let mesh_peers = families["traceless_gossipsub_mesh_peers"]["samples"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s[1]["topic"] == topic)
        .map(|s| s[2].as_f64().unwrap())
        .sum::<f64>();
    assert!(mesh_peers >= 1.0, "no gossipsub mesh peer in /metrics");

    for (name, kind) in EXPORTED {
        let f = families
            .get(*name)
            .unwrap_or_else(|| panic!("{name} not exported"));
        assert_eq!(f["type"], *kind, "{name}");
    }
    // The values are the node's own figures.
    assert_eq!(value(&families, "traceless_batches_stored"), 3.0);
    // One duplicate is the test's own; the peer, catching up, may hand a batch
    // back once more before the snapshot, so the exposition is checked against
    // the node's own counter.
    let duplicates = value(&families, "traceless_batches_duplicate");
    assert!(
        duplicates >= 1.0 && duplicates <= n1.core.metrics.batches_duplicate.get() as f64,
        "{duplicates}"
    );
    assert_eq!(value(&families, "traceless_batches"), 3.0);
    assert_eq!(value(&families, "traceless_keys"), 9.0);
    assert_eq!(value(&families, "traceless_embargoed_keys"), 2.0);
    assert_eq!(value(&families, "traceless_peers_connected"), 1.0);
    let m = &n1.core.metrics;
    assert_eq!(
        value(&families, "traceless_filters_stored"),
        m.filters_stored.get() as f64
    );
    let origins = families["traceless_http_requests"]["samples"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s[1]["route"] == "/v1/origins")
        .cloned()
        .unwrap();
    assert_eq!(origins[1]["status"], "200");
    assert_eq!(origins[2].as_f64().unwrap(), 1.0);
    // The connected peer's gossipsub score.
    let scores = families["traceless_gossipsub_peer_score"]["samples"]
        .as_array()
        .unwrap();
    assert_eq!(scores.len(), 1, "{scores:?}");
    assert_eq!(scores[0][1]["peer"], n2.peer_id.to_string());
    // libp2p's own families: gossipsub messages, the swarm's connections, identify.
    for name in [
        "libp2p_gossipsub_messages",
        "libp2p_swarm_connections_established",
        "libp2p_identify_received",
    ] {
        assert!(families.contains_key(name), "{name} missing");
    }
    n2.shutdown().await;
    n1.shutdown().await;
}

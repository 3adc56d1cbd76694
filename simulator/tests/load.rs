//! Load mode against a real relay and gateway over loopback, and its refusal of
//! anything else.

#![allow(clippy::unwrap_used)]

use traceless_protocol::Clock;
use traceless_sim::load::{self, LoadArgs, LoadError};
use traceless_sim::nodes::Nodes;

fn args(target: &str, gateway: &str) -> LoadArgs {
    LoadArgs {
        target: vec![target.into()],
        gateway: Some(gateway.into()),
        rate: 100,
        seconds: 2,
        upload_fraction: 0.3,
        workers: 4,
        origin: traceless_sim::nodes::ORIGIN.into(),
    }
}

#[test]
fn load_drives_sealed_uploads_through_a_relay_and_downloads() {
    let tmp = tempfile::tempdir().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let nodes = Nodes::start(tmp.path(), 1, now, 1, 86_400).unwrap();
    let relay = format!("http://{}", nodes.relays[0].http_addr);
    let gateway = format!("http://{}", nodes.gateway.http_addr);
    let r = load::run(&args(&relay, &gateway)).unwrap();
    // `/metrics` moves only at period boundaries (SPEC.md §6.4).
    let next = nodes
        .gateway
        .core
        .schedule()
        .publication_of(nodes.clock.now());
    nodes.clock.set(next);
    nodes.release_due();
    let traffic = nodes.upload_traffic().unwrap();
    nodes.shutdown();
    assert!(r.uploads.requests > 10, "{r}");
    assert!(r.downloads.requests > 10, "{r}");
    assert_eq!(
        r.uploads.errors, 0,
        "sealed dummies are accepted, none a replay: {r}"
    );
    assert_eq!(traffic.relays_forwarded, r.uploads.requests, "{traffic:?}");
    assert_eq!(
        traffic.gateway_relayed_accepted, r.uploads.requests,
        "{traffic:?}"
    );
    assert_eq!(
        traffic.gateway_direct, 0,
        "no upload reached the gateway directly"
    );
    assert_eq!(r.downloads.errors, 0, "{r}");
    assert!(r.uploads.p50_ms > 0.0 && r.uploads.p99_ms >= r.uploads.p50_ms);
}

#[test]
fn load_refuses_non_loopback_targets() {
    for t in [
        "http://192.0.2.1:8080",
        "http://[2001:db8::1]:80",
        "https://127.0.0.1:1",
        "127.0.0.1:1",
    ] {
        let refused = |a: &LoadArgs| matches!(load::run(a), Err(LoadError::Target(..)));
        assert!(
            refused(&args(t, "http://127.0.0.1:9")),
            "{t} must be refused"
        );
        assert!(
            refused(&args("http://127.0.0.1:9", t)),
            "gateway {t} must be refused"
        );
    }
    // Refused before any connection is tried (nothing listens on port 9).
    let invalid = |a: &LoadArgs| matches!(load::run(a), Err(LoadError::Invalid(_)));
    let mut a = args("http://127.0.0.1:9", "http://127.0.0.1:9");
    a.gateway = None;
    assert!(invalid(&a), "a target without its gateway is refused");
    a.target.clear();
    a.gateway = Some("http://127.0.0.1:9".into());
    assert!(invalid(&a), "a gateway without targets is refused");
    let mut a = args("http://127.0.0.1:9", "http://127.0.0.1:9");
    a.seconds = 100_000;
    assert!(invalid(&a), "unbounded runs are refused");
}

#[test]
fn load_without_targets_drives_nodes_of_its_own() {
    let mut a = args("http://127.0.0.1:9", "http://127.0.0.1:9");
    a.target.clear();
    a.gateway = None;
    a.seconds = 1;
    let r = load::run(&a).unwrap();
    assert!(r.uploads.requests > 5 && r.downloads.requests > 5, "{r}");
    assert_eq!(r.uploads.errors + r.downloads.errors, 0, "{r}");
}

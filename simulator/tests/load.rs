//! Load mode against a real gateway over loopback, and its refusal of anything else.

#![allow(clippy::unwrap_used)]

use traceless_sim::load::{self, LoadArgs};
use traceless_sim::nodes::Nodes;

fn args(target: &str) -> LoadArgs {
    LoadArgs {
        target: vec![target.into()],
        rate: 100,
        seconds: 2,
        upload_fraction: 0.3,
        workers: 4,
        origin: traceless_sim::nodes::ORIGIN.into(),
    }
}

#[test]
fn load_drives_uploads_and_downloads_against_a_gateway() {
    let tmp = tempfile::tempdir().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let nodes = Nodes::start(tmp.path(), 1, now, 1, 86_400).unwrap();
    let target = format!("http://{}", nodes.gateway.http_addr);
    let r = load::run(&args(&target)).unwrap();
    nodes.shutdown();
    assert!(r.uploads.requests > 10, "{r}");
    assert!(r.downloads.requests > 10, "{r}");
    assert_eq!(r.uploads.errors, 0, "dummy uploads are accepted: {r}");
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
        assert!(load::run(&args(t)).is_err(), "{t} must be refused");
    }
    let mut a = args("http://127.0.0.1:9");
    a.seconds = 100_000;
    assert!(load::run(&a).is_err(), "unbounded runs are refused");
}

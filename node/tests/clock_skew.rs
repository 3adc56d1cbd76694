//! A node whose clock is wrong (SPEC.md §2.1): three real nodes on loopback
//! libp2p, two with the right time and one whose clock is a day behind, then
//! jumps 3 days ahead.
//! The skewed node sees at once that it is ahead of its peers: its retention
//! run deletes what the right clock deletes and nothing the right clock keeps,
//! and its `/metrics` and transparency page raise the alarm. And a gateway
//! started 3 h ahead publishes no boundary before its peers' clocks are known.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use traceless_node::clock::ClockStatus;
use traceless_node::{ManualClock, RunningNode};

fn metric(node: &RunningNode, name: &str) -> Option<f64> {
    get(node.http_addr, "/metrics")
        .text()
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_three_days_ahead_of_its_peers_deletes_nothing_the_right_clock_keeps() {
    // The skewed node starts a day behind, so that it can still store a batch
    // the right clock deletes; then its clock jumps 3 days ahead.
    let start = NOW - 86_400;
    let right = ManualClock::new(NOW);
    let skewed = ManualClock::new(start);
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let a = start_relay(dirs[0].path(), &right, &[], 1).await;
    let b = start_relay(dirs[1].path(), &right, &a.p2p_addrs, 1).await;
    let boot: Vec<_> = a.p2p_addrs.iter().chain(&b.p2p_addrs).cloned().collect();
    let mut config = relay_config(dirs[2].path());
    config.p2p.bootstrap = boot.iter().map(|x| x.to_string()).collect();
    config.publication.period_seconds = 60;
    let c = start_node(config, &skewed).await;
    assert!(
        wait_for_peers(&c, 2).await,
        "the skewed node has its two peers"
    );

    // Expired by the right clock at NOW (day TODAY-15 ended 15 days before
    // TODAY's end), and due only at NOW + 6400 s (day TODAY-14).
    let key = authority();
    let due = signed_batch(&key, 1, TODAY - 15, 3, start);
    let keep = signed_batch(&key, 2, TODAY - 14, 3, start);
    for b in [&due, &keep] {
        c.core.ingest(b).unwrap();
    }
    assert!(
        wait_until(Duration::from_secs(10), || matches!(
            c.core.clock_status(),
            ClockStatus::Behind { peers: 2, .. }
        ))
        .await,
        "both peers' clocks sampled: {:?}",
        c.core.clock_status()
    );
    assert_eq!(c.core.safe_now(), Some(c.core.now()), "behind only delays");

    skewed.set(NOW + 3 * 86_400);
    // No waiting for new samples: the old ones moved on with the monotonic clock.
    assert!(
        matches!(c.core.clock_status(), ClockStatus::Ahead { offset, .. }
            if (3 * 86_400 - 60..=3 * 86_400).contains(&offset)),
        "{:?}",
        c.core.clock_status()
    );
    c.core.run_retention().unwrap();
    let held = |seq| c.core.store.get_batch(ORIGIN, seq).unwrap().is_some();
    assert!(!held(1), "control: what the right clock deletes is deleted");
    assert!(held(2), "deleted early by a clock 3 days ahead");

    // The alarm is public from the next period boundary on.
    skewed.advance(60);
    assert!(
        wait_until(Duration::from_secs(10), || metric(
            &c,
            "traceless_clock_alarm"
        ) == Some(1.0))
        .await,
        "no alarm on /metrics"
    );
    let offset = metric(&c, "traceless_clock_offset_seconds").unwrap();
    assert!((offset - 3.0 * 86_400.0).abs() <= 60.0, "{offset}");
    let page = get(c.http_addr, "/").text();
    assert!(
        page.contains("clock is 3 days ahead of its peers; it holds back releases and deletions"),
        "{page}"
    );
    // A right-clock node raises no "ahead" alarm and keeps its own clock.
    assert_eq!(a.core.safe_now(), Some(NOW));
    for n in [c, b, a] {
        n.shutdown().await;
    }
}

/// A gateway whose clock is 3 h ahead when it starts, with two right-clock
/// relays to bootstrap from: its period job runs from the first second, but it
/// marks or publishes no boundary until both peers' clocks are sampled, and
/// then none beyond their time plus the tolerance. (With
/// `startup_wait_secs = 0` its first period mark is 3 h ahead: it published a
/// boundary its peers had not reached, and would hold every period after it.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_gateway_started_ahead_publishes_no_boundary_its_peers_have_not_reached() {
    let right = ManualClock::new(NOW);
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let a = start_relay(dirs[0].path(), &right, &[], 1).await;
    let b = start_relay(dirs[1].path(), &right, &a.p2p_addrs, 1).await;
    let mut config = gateway_config(dirs[2].path());
    config.p2p.bootstrap = a
        .p2p_addrs
        .iter()
        .chain(&b.p2p_addrs)
        .map(|x| x.to_string())
        .collect();
    config.p2p.catchup_interval_secs = 1;
    config.publication.period_seconds = 60;
    let g = start_node(config, &ManualClock::new(NOW + 3 * 3600)).await;
    assert!(
        wait_until(Duration::from_secs(20), || matches!(
            g.core.clock_status(),
            ClockStatus::Ahead { peers: 2, .. }
        ))
        .await,
        "both peers' clocks sampled: {:?}",
        g.core.clock_status()
    );
    let marked = || g.core.store.published_period().unwrap().map(|p| p.boundary);
    assert!(
        wait_until(Duration::from_secs(10), || marked().is_some()).await,
        "the gateway marks its first period once its peers' clocks are known"
    );
    let boundary = marked().unwrap();
    // The peers' time (plus the seconds this test took) plus the tolerance.
    assert!(
        boundary <= NOW + 600 + 60,
        "first boundary {} s past the peers' time",
        boundary - NOW
    );
    for n in [g, b, a] {
        n.shutdown().await;
    }
}

//! Clock skew: three real nodes — a gateway and a relay whose wall clocks are
//! off by the same offset, and a relay with the right time — and three
//! uploads chosen against the true time:
//!
//! - a key valid two days ago (publishable now on any sane clock, at any hour);
//! - a key whose embargo ends in about an hour (validity ended ~70 min ago):
//!   a clock more than that ahead would release it early;
//! - a key whose retention ends in about an hour (validity ended 14 days less
//!   an hour ago): a clock more than that ahead would delete it early.
//!
//! and a marker key valid four days ago, uploaded last: the gateway publishes
//! every pooled key its clock lets it at each period boundary (one second
//! here), so once the marker is listed, so is every key it would publish.
//!
//! The outcome records, per skew, what the gateway answered, which node lists
//! which batch, and the clock alarm the skewed nodes raise on `/metrics`
//! (SPEC.md §2.1: each node compares its clock with its peers' median and
//! releases, publishes and deletes by `min(own, peers + tolerance)`, so a
//! gateway hours ahead holds everything back instead of releasing early).

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use traceless_node::config::StorageConfig;
use traceless_protocol::{
    day_of_interval, day_of_unix, day_start_interval, interval_number, RETENTION_DAYS,
};

use super::cluster::{Cluster, ClusterPlan};
use super::link::LinkParams;
use super::netns::Host;
use super::run::{now_unix, upload_body, upload_of_key, visible_day, NetOptions};
use super::scenario::NetScenario;
use super::NetError;
use crate::http;

/// What one skew did.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct SkewOutcome {
    /// Clock offset of the gateway and relay 2, seconds.
    pub skew_secs: i64,
    /// Gateway's status for the key valid two days ago.
    pub visible_upload_status: u16,
    /// Relay 1 (right clock) / relay 2 (skewed) list that batch.
    pub visible_listed: (bool, bool),
    /// Gateway's status for the embargoed key, and whether it published it by
    /// the marker's boundary (an early release: its embargo ends in about an
    /// hour).
    pub embargoed_upload_status: u16,
    /// The gateway published the embargoed key at once.
    pub embargo_released_early_by_gateway: bool,
    /// Relay 1 / relay 2 serve the early batch (relays hold batches back by
    /// their own clock).
    pub embargoed_listed: (bool, bool),
    /// Gateway's status for the key whose retention ends in about an hour.
    pub expiring_upload_status: u16,
    /// Relay 1 / relay 2 hold that batch (relay 2 missing it: deleted, or
    /// refused as expired, early).
    pub expiring_listed: (bool, bool),
    /// Clock lines of the skewed relay's `/metrics` (names containing "skew"
    /// or "clock").
    pub skew_metrics: Vec<String>,
    /// Clock lines of the skewed gateway's `/metrics`.
    pub gateway_clock_metrics: Vec<String>,
    /// The gateway's `traceless_clock_alarm` (1: its clock is off its peers'
    /// by more than the tolerance).
    pub gateway_clock_alarm: bool,
    /// The gateway's `traceless_clock_offset_seconds`.
    pub gateway_clock_offset_secs: f64,
}

fn post(addr: SocketAddr, body: &[u8]) -> u16 {
    http::request(addr, "POST", "/v1/upload", body).map_or(0, |r| r.status)
}

fn lists(addr: Option<SocketAddr>, origin: &str, seq: Option<u64>) -> bool {
    let (Some(addr), Some(seq)) = (addr, seq) else {
        return false;
    };
    http::request(addr, "GET", &format!("/v1/batches/{origin}/{seq}"), b"")
        .is_ok_and(|r| r.status == 200)
}

/// (sequence, days held) of every batch `addr` lists for `origin`.
fn listing(addr: SocketAddr, origin: &str) -> Vec<(u64, Vec<u32>)> {
    http::request(
        addr,
        "GET",
        &format!("/v1/batches?origin={origin}&after=0"),
        b"",
    )
    .ok()
    .and_then(|r| r.try_json())
    .map(|j| {
        j["batches"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|b| {
                let days = b["days"].as_array()?;
                let days = days.iter().filter_map(|d| Some(d.as_u64()? as u32));
                Some((b["sequence"].as_u64()?, days.collect()))
            })
            .collect()
    })
    .unwrap_or_default()
}

/// The sequence of a batch holding `day` the gateway lists beyond `known`, once it
/// does (bounded wait).
fn published(addr: SocketAddr, origin: &str, day: u32, known: &[u64]) -> Option<u64> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let found = listing(addr, origin)
            .into_iter()
            .find(|(seq, days)| days.contains(&day) && !known.contains(seq))
            .map(|b| b.0);
        if found.is_some() || Instant::now() > deadline {
            return found;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The catch-up rounds `addr`'s `/metrics` counts.
fn catchup_rounds(addr: Option<SocketAddr>) -> u64 {
    addr.and_then(|a| http::request(a, "GET", "/metrics", b"").ok())
        .map_or(0, |r| {
            super::run::metric(
                &String::from_utf8_lossy(&r.body),
                "traceless_catchup_rounds_total",
            )
        })
}

/// The clock lines (names containing "skew" or "clock") of `addr`'s `/metrics`.
fn clock_metrics(addr: Option<SocketAddr>) -> Vec<String> {
    addr.and_then(|a| http::request(a, "GET", "/metrics", b"").ok())
        .map(|r| {
            String::from_utf8_lossy(&r.body)
                .lines()
                .filter(|l| !l.starts_with('#') && (l.contains("skew") || l.contains("clock")))
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// The value of the unlabelled metric `name` on `addr`'s `/metrics`.
fn metric_value(addr: Option<SocketAddr>, name: &str) -> Option<f64> {
    clock_metrics(addr)
        .iter()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

/// Runs one skew.
pub fn run_one(opts: &NetOptions, dir: &Path, skew_secs: i64) -> Result<SkewOutcome, NetError> {
    let host = Host::new(3, opts.force_loopback)?;
    let origin = NetScenario::origin(0);
    let plan = ClusterPlan {
        nodes: 3,
        gateways: vec![(0, origin.clone())],
        links: vec![
            (0, 1, LinkParams::default()),
            (1, 2, LinkParams::default()),
            (0, 2, LinkParams::default()),
        ],
        catchup_interval_secs: 1,
        heartbeat_ms: 200,
        codes_per_gateway: 4,
        skew_secs: vec![(0, skew_secs), (2, skew_secs)],
        storage: StorageConfig::default(),
    };
    let cluster = Cluster::start(&plan, host, opts.program.clone(), dir, 1)?;
    let gw = cluster.nodes[0]
        .http
        .ok_or_else(|| NetError::Setup("gateway down".into()))?;
    let codes = &cluster.codes[&origin];
    let now = now_unix();
    let mut out = SkewOutcome {
        skew_secs,
        ..Default::default()
    };
    // A running node knows its peers' clocks: wait (bounded) until the
    // gateway has sampled both before the first upload.
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline && metric_value(Some(gw), "traceless_clock_peers") < Some(2.0) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let known: Vec<u64> = listing(gw, &origin).into_iter().map(|b| b.0).collect();
    out.visible_upload_status = post(gw, &upload_body(&codes[0]));
    let visible = visible_day(now);
    let visible_seq = (out.visible_upload_status == 200)
        .then(|| published(gw, &origin, visible, &known))
        .flatten();
    // Validity 80..70 minutes ago: released 2 h after its end, ~50-60 min from now.
    let i_now = interval_number(now);
    out.embargoed_upload_status = post(gw, &upload_of_key(&codes[1], i_now - 8, 1));
    // Validity ended 14 days less an hour ago: past retention in about an hour.
    let end = interval_number(now + 3600 - u64::from(RETENTION_DAYS) * 86_400);
    out.expiring_upload_status = post(gw, &upload_of_key(&codes[2], end - 1, 1));
    let marker_day = day_of_unix(now) - 4;
    let marker = post(
        gw,
        &upload_of_key(&codes[3], day_start_interval(marker_day), 144),
    );
    // The marker's period batch holds the other uploads' keys too (one batch
    // a period, SPEC.md §5.9): it is waited for, not set aside.
    let known: Vec<u64> = known.into_iter().chain(visible_seq).collect();
    if marker == 200 {
        let _ = published(gw, &origin, marker_day, &known);
    }
    // What the gateway published by the marker's boundary (its own list hides
    // what its clock still embargoes; relays are asked for these directly).
    let new = |day: u32| {
        listing(gw, &origin)
            .into_iter()
            .find(|(seq, days)| days.contains(&day) && !known.contains(seq))
            .map(|b| b.0)
    };
    let embargoed_seq = new(day_of_interval(i_now - 8));
    out.embargo_released_early_by_gateway = embargoed_seq.is_some();
    let expiring_seq = new(day_of_interval(end - 1));
    // Wait (bounded) for the right-clock relay to hold what it will hold, then
    // for two more catch-up rounds of the skewed one.
    let deadline = Instant::now() + Duration::from_secs(15);
    let r1 = cluster.nodes[1].http;
    let r2 = cluster.nodes[2].http;
    while Instant::now() < deadline && !(lists(r1, &origin, visible_seq) || visible_seq.is_none()) {
        std::thread::sleep(Duration::from_millis(50));
    }
    while Instant::now() < deadline && expiring_seq.is_some() && !lists(r1, &origin, expiring_seq) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let rounds = catchup_rounds(r2);
    while Instant::now() < deadline && catchup_rounds(r2) < rounds + 2 {
        std::thread::sleep(Duration::from_millis(50));
    }
    out.visible_listed = (
        lists(r1, &origin, visible_seq),
        lists(r2, &origin, visible_seq),
    );
    out.embargoed_listed = (
        lists(r1, &origin, embargoed_seq),
        lists(r2, &origin, embargoed_seq),
    );
    out.expiring_listed = (
        lists(r1, &origin, expiring_seq),
        lists(r2, &origin, expiring_seq),
    );
    out.skew_metrics = clock_metrics(r2);
    out.gateway_clock_metrics = clock_metrics(Some(gw));
    out.gateway_clock_alarm = metric_value(Some(gw), "traceless_clock_alarm") == Some(1.0);
    out.gateway_clock_offset_secs =
        metric_value(Some(gw), "traceless_clock_offset_seconds").unwrap_or(0.0);
    drop(cluster);
    Ok(out)
}

/// Runs every skew in `skews`.
pub fn run(opts: &NetOptions, dir: &Path, skews: &[i64]) -> Result<Vec<SkewOutcome>, NetError> {
    skews
        .iter()
        .enumerate()
        .map(|(k, &s)| run_one(opts, &dir.join(format!("skew-{k}")), s))
        .collect()
}

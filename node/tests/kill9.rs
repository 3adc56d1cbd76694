//! Durability with real processes: `kill -9` right after an acknowledged upload
//! loses nothing. Also exercises the CLI (`init`, `authority keygen`,
//! `codes issue`, `run --config`).
//!
//! The node runs on an injected clock (`run --start-time`), at fixed times of
//! day and at the system's: the keys are chosen relative to it, so the test
//! holds at any time. (It used to upload yesterday's keys as "visible", which
//! they are not until 02:00 UTC: it failed every night between 00:00 and 02:00.)
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::process::*;
use common::*;
use traceless_protocol::*;

/// 00:30 UTC on the test day: yesterday's keys are still embargoed.
const AT_00_30: u64 = TODAY as u64 * 86_400 + 1800;

#[test]
fn kill_9_right_after_an_acknowledged_upload_loses_nothing_at_00_30_utc() {
    kill_9_right_after_an_acknowledged_upload_at(AT_00_30);
}

#[test]
fn kill_9_right_after_an_acknowledged_upload_loses_nothing_at_23_50_utc() {
    kill_9_right_after_an_acknowledged_upload_at(AT_00_30 + 83_400);
}

#[test]
fn kill_9_right_after_an_acknowledged_upload_loses_nothing_now() {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    kill_9_right_after_an_acknowledged_upload_at(now);
}

/// Spawns the gateway with its clock starting at `now`.
fn spawn_at(config: &std::path::Path, now: u64) -> (Node, std::net::SocketAddr) {
    let start = now.to_string();
    Spawn {
        run_args: &["--start-time", &start],
        ..Spawn::new(config)
    }
    .start()
}

fn kill_9_right_after_an_acknowledged_upload_at(now: u64) {
    let dir = tempfile::tempdir().unwrap();
    let config = gateway_via_cli(dir.path());
    let codes = cli(&[
        "codes",
        "issue",
        "--config",
        config.to_str().unwrap(),
        "--count",
        "3",
    ]);
    let codes: Vec<&str> = codes.lines().collect();
    assert_eq!(codes.len(), 3);

    let today = day_of_unix(now);
    let (child, addr) = spawn_at(&config, now);
    let mut uploaded = Vec::new();
    for (i, code) in codes.iter().enumerate() {
        // Ended at least 24 h ago: past its embargo (2 h after the end of its
        // validity) at any time of day.
        let mut keys = keys_of_day(today - 2 - i as u32, 2);
        keys.extend(keys_of_day(today, 1)); // embargoed: must survive too
        uploaded.push(keys.clone());
        let body = Upload {
            upload_code: code.as_bytes().to_vec(),
            token: None,
            keys,
            dummy: false,
            filter_intervals: Vec::new(),
            stays: Default::default(),
        }
        .encode_padded()
        .unwrap();
        let r = http(addr, "POST", "/v1/upload", &[], &body);
        assert_eq!(r.status, 200, "{}", r.text());
    }
    // SIGKILL the moment the last 200 arrived: nothing was published yet (the
    // period is an hour; should the hour turn meanwhile, the keys are simply
    // published in the first run, and must still appear exactly once).
    kill9(child);

    // Restarted with one-second periods: the pool is published at the next
    // boundary, all uploads' keys in one period batch.
    set_publication(&config, 1, 0);
    let (child, addr) = spawn_at(&config, now);
    let published = |k: &DiagnosisKey| k.rolling_start != day_start_interval(today);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let (list, served) = loop {
        let list = wait_for_batches(addr, 1);
        let served = served_keys(addr, &list, &trust_of(&config), now);
        let all = uploaded
            .iter()
            .flatten()
            .filter(|k| published(k))
            .all(|k| served.iter().any(|(tek, _)| *tek == k.tek));
        if all || std::time::Instant::now() > deadline {
            break (list, served);
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    for keys in &uploaded {
        for k in keys.iter().filter(|k| published(k)) {
            let n = served.iter().filter(|(tek, _)| *tek == k.tek).count();
            assert_eq!(n, 1, "an acknowledged key was published {n} times");
            let created = served.iter().find(|(tek, _)| *tek == k.tek).unwrap().1;
            assert!(
                created > now,
                "published at a later boundary, not at upload"
            );
        }
    }
    assert_eq!(served.len(), 6, "exactly the past keys, no padding (k = 0)");
    // Today's keys (still embargoed) wait in the pool, on disk: one file each
    // (the published keys' files go once their batches are flushed).
    let data_dir = traceless_node::config::Config::load(&config)
        .unwrap()
        .data_dir;
    let files = traceless_node::storage::files_dir(&data_dir.join("db"));
    let pooled = || {
        std::fs::read_dir(&files)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with(traceless_node::storage::PENDING_FILE_PREFIX)
            })
            .count()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while pooled() != 3 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(pooled(), 3, "the embargoed keys left the pool");

    // Killed again after publication and restarted: nothing is published twice.
    kill9(child);
    let (child, addr) = spawn_at(&config, now);
    // Wait for the restarted node to pass a boundary of its own.
    let seen = get(addr, "/metrics").text();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while get(addr, "/metrics").text() == seen && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let again = get(addr, &format!("/v1/batches?origin={ORIGIN}&after=0")).json();
    assert_eq!(
        again["batches"], list["batches"],
        "a period was published twice"
    );
    // The codes were consumed durably too.
    let body = Upload {
        upload_code: codes[0].as_bytes().to_vec(),
        token: None,
        keys: keys_of_day(today - 2, 1),
        dummy: false,
        filter_intervals: Vec::new(),
        stays: Default::default(),
    }
    .encode_padded()
    .unwrap();
    assert_eq!(http(addr, "POST", "/v1/upload", &[], &body).status, 403);
    kill9(child);
}

/// Every (TEK, created_at) served in the listed batches.
fn served_keys(
    addr: std::net::SocketAddr,
    list: &serde_json::Value,
    trust: &TrustList,
    now: u64,
) -> Vec<(Tek, u64)> {
    let mut served = Vec::new();
    for b in list["batches"].as_array().unwrap() {
        let r = get(addr, b["url"].as_str().unwrap());
        assert_eq!(r.status, 200);
        for batch in batch_days(&r.body, trust, now + 120) {
            served.extend(batch.keys.into_iter().map(|k| (k.tek, batch.created_at)));
        }
    }
    served
}

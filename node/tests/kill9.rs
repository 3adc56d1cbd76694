//! Durability with real processes: `kill -9` right after an acknowledged upload
//! loses nothing. Also exercises the CLI (`init`, `authority keygen`,
//! `codes issue`, `run --config`).
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{SystemTime, UNIX_EPOCH};

use common::process::*;
use common::*;
use traceless_protocol::*;

#[test]
fn kill_9_right_after_an_acknowledged_upload_loses_nothing() {
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

    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let today = day_of_unix(now);
    let (child, addr) = spawn_node(&config);
    let mut uploaded = Vec::new();
    for (i, code) in codes.iter().enumerate() {
        let mut keys = keys_of_day(today - 1 - i as u32, 2);
        keys.extend(keys_of_day(today, 1)); // embargoed: must survive too
        uploaded.push(keys.clone());
        let body = Upload {
            upload_code: code.as_bytes().to_vec(),
            token: None,
            keys,
            dummy: false,
            filter_intervals: Vec::new(),
        }
        .encode_padded()
        .unwrap();
        let r = http(addr, "POST", "/v1/upload", &[], &body);
        assert_eq!(r.status, 200, "{}", r.text());
    }
    // SIGKILL the moment the last 200 arrived.
    kill9(child);

    let (child, addr) = spawn_node(&config);
    let list = get(addr, &format!("/v1/batches?origin={ORIGIN}&after=0")).json();
    let batches = list["batches"].as_array().unwrap();
    assert_eq!(batches.len(), 3, "{list}");
    let mut served = Vec::new();
    for b in batches {
        let r = get(addr, b["url"].as_str().unwrap());
        assert_eq!(r.status, 200);
        let sb = SignedBatch::decode(&r.body).unwrap();
        served.extend(
            Batch::decode_body(&sb.body, now + 60)
                .unwrap()
                .keys
                .into_iter()
                .map(|k| k.tek),
        );
    }
    for keys in &uploaded {
        for k in keys
            .iter()
            .filter(|k| k.rolling_start != day_start_interval(today))
        {
            assert!(served.contains(&k.tek), "an acknowledged key was lost");
        }
    }
    let metrics = get(addr, "/metrics").text();
    assert!(
        metrics.contains("traceless_embargoed_upload_keys 3"),
        "{metrics}"
    );
    // The codes were consumed durably too.
    let body = Upload {
        upload_code: codes[0].as_bytes().to_vec(),
        token: None,
        keys: keys_of_day(today - 1, 1),
        dummy: false,
        filter_intervals: Vec::new(),
    }
    .encode_padded()
    .unwrap();
    assert_eq!(http(addr, "POST", "/v1/upload", &[], &body).status, 403);
    kill9(child);
}

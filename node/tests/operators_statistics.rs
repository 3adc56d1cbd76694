//! Public statistics per day (SPEC.md §8.4) on an injected clock: a day is
//! published once over with at least 10 uploads, or 48 h after its end; before
//! that nothing about it is shown.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use traceless_node::operators::statistics::public_days;
use traceless_node::ManualClock;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_day_is_published_at_ten_uploads_or_after_48_hours() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(NOW);
    let node = start_node(gateway_config(dir.path()), &clock).await;
    let core = node.core.clone();
    let day_start = u64::from(TODAY) * 86_400;
    let stats = &core.upload_stats;
    // Day TODAY: 9 real uploads (one through the real HTTP path).
    let (codes, records) = traceless_node::upload_codes::issue(1, NOW + 86_400);
    core.store.insert_codes(&records).unwrap();
    let addr = node.http_addr;
    let code = codes[0].clone();
    let r = tokio::task::spawn_blocking(move || {
        http(
            addr,
            "POST",
            "/v1/upload",
            &[],
            &upload_body(&code, keys_of_day(TODAY - 1, 2)),
        )
    })
    .await
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    // A dummy is not counted.
    let r = tokio::task::spawn_blocking(move || {
        http(addr, "POST", "/v1/upload", &[], &dummy_upload_body())
    })
    .await
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    for _ in 0..8 {
        stats.count_upload(1, NOW).unwrap();
    }
    assert_eq!(stats.of_day(TODAY).unwrap(), (9, 10));
    let row = |now: u64| {
        public_days(stats, &core.log, now)
            .unwrap()
            .into_iter()
            .find(|d| d.day == TODAY)
    };
    // The running day is never listed.
    assert_eq!(row(NOW), None);
    // Over, 9 uploads: withheld, no figure at all.
    let next_day = day_start + 86_400;
    let d = row(next_day).unwrap();
    assert!(!d.published && d.uploads.is_none() && d.keys.is_none() && d.codes_issued.is_none());
    let d = row(next_day + 48 * 3600 - 1).unwrap();
    assert!(!d.published);
    // 48 h after its end: published.
    let d = row(next_day + 48 * 3600).unwrap();
    assert_eq!((d.published, d.uploads, d.keys), (true, Some(9), Some(10)));
    // The tenth upload publishes it as soon as the day is over.
    stats.count_upload(1, NOW).unwrap();
    let d = row(next_day).unwrap();
    assert_eq!((d.published, d.uploads, d.keys), (true, Some(10), Some(11)));
    // The JSON endpoint, as of the boundary: the running day is not in it.
    let addr = node.http_addr;
    let j = tokio::task::spawn_blocking(move || get(addr, "/v1/statistics").json())
        .await
        .unwrap();
    assert_eq!(j["min_uploads"], 10);
    assert_eq!(j["days"].as_array().unwrap().len(), 14);
    assert!(j["days"]
        .as_array()
        .unwrap()
        .iter()
        .all(|d| d["day"].as_u64().unwrap() < u64::from(TODAY)));
}

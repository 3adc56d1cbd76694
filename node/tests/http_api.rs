//! HTTP API, gateway uploads with single-use codes, embargo and retention, on a
//! real node (sled on disk, axum on 127.0.0.1) with an injected clock.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use traceless_node::{upload_codes, ManualClock};
use traceless_protocol::wire::UPLOAD_REQUEST_LEN;
use traceless_protocol::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn relay_serves_batches_with_etag_export_and_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(NOW);
    let node = start_node(relay_config(dir.path()), &clock).await;
    let addr = node.http_addr;
    let st = node.core.clone();
    let a = authority();

    // Two batches of two days ago: visible at once.
    let b1 = signed_batch(&a, 1, TODAY - 2, 10, NOW - 100);
    let b2 = signed_batch(&a, 2, TODAY - 3, 5, NOW - 50);
    assert_eq!(
        st.ingest(&b1).unwrap().outcome,
        traceless_node::storage::PutOutcome::New
    );
    st.ingest(&b2).unwrap();
    // Replays are idempotent.
    assert_eq!(
        st.ingest(&b1).unwrap().outcome,
        traceless_node::storage::PutOutcome::Duplicate
    );

    assert_eq!(get(addr, "/healthz").status, 200);
    let list = get(addr, &format!("/v1/batches?origin={ORIGIN}&after=0")).json();
    assert_eq!(list["batches"].as_array().unwrap().len(), 2);
    assert_eq!(list["next_after"], 2);
    let list = get(addr, &format!("/v1/batches?origin={ORIGIN}&after=1")).json();
    assert_eq!(list["batches"][0]["sequence"], 2);

    let r = get(addr, &format!("/v1/batches/{ORIGIN}/1"));
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b1);
    let etag = r.header("etag").unwrap().to_owned();
    assert!(r.header("cache-control").unwrap().contains("immutable"));
    let r = http(
        addr,
        "GET",
        &format!("/v1/batches/{ORIGIN}/1"),
        &[("If-None-Match", &etag)],
        &[],
    );
    assert_eq!(r.status, 304);
    assert!(r.body.is_empty());
    let got = SignedBatch::decode(&get(addr, &format!("/v1/batches/{ORIGIN}/2")).body).unwrap();
    assert_eq!(
        got.verify(&relay_config(dir.path()).trust_list().unwrap(), NOW)
            .unwrap()
            .keys
            .len(),
        5
    );
    let r = get(addr, &format!("/v1/batches/{ORIGIN}/9"));
    assert_eq!(r.status, 404);
    assert!(r.json()["error"].as_str().unwrap().contains("no batch"));

    // Every batch above a cursor in one request, byte for byte, revalidated by
    // an ETag over the batches it carries.
    let all = get(addr, &format!("/v1/batch-list/{ORIGIN}"));
    assert_eq!(all.status, 200);
    assert_eq!(
        BatchList::decode(&all.body).unwrap().batches,
        vec![b1.clone(), b2.clone()]
    );
    assert_eq!(all.header("cache-control"), Some("no-cache"));
    assert_eq!(all.header("link"), None, "nothing follows: no next page");
    assert_eq!(all.header("content-encoding"), None, "not asked for gzip");
    // Asked for gzip (as phones' HTTP stacks do): gzip on the wire, the same
    // bytes once decoded (the probe decodes), the same ETag.
    let gz = http(
        addr,
        "GET",
        &format!("/v1/batch-list/{ORIGIN}"),
        &[("Accept-Encoding", "gzip")],
        &[],
    );
    assert_eq!(gz.header("content-encoding"), Some("gzip"));
    assert_eq!(gz.header("vary"), Some("accept-encoding"));
    assert_eq!(gz.body, all.body);
    assert_eq!(gz.header("etag"), all.header("etag"));
    // Errors stay plain JSON, whatever the client accepts.
    for path in [
        "/v1/batch-list/Not_An_Origin",
        "/v1/batch-list/test.health?after=x",
    ] {
        let r = http(addr, "GET", path, &[("Accept-Encoding", "gzip")], &[]);
        assert_eq!((r.status, r.header("content-encoding")), (400, None));
        assert!(r.json()["error"].is_string(), "{}", r.text());
    }
    let tag = all.header("etag").unwrap().to_owned();
    let r = http(
        addr,
        "GET",
        &format!("/v1/batch-list/{ORIGIN}?after=0"),
        &[("If-None-Match", &tag)],
        &[],
    );
    assert_eq!(r.status, 304);
    let above_1 = get(addr, &format!("/v1/batch-list/{ORIGIN}?after=1"));
    assert_eq!(BatchList::decode(&above_1.body).unwrap().batches, vec![b2]);
    assert_ne!(above_1.header("etag").unwrap(), tag);
    let none = get(addr, &format!("/v1/batch-list/{ORIGIN}?after=2"));
    assert_eq!((none.status, none.body.len()), (200, 0));
    let r = get(addr, "/v1/batch-list/Not_An_Origin");
    assert_eq!(r.status, 400);
    assert!(r.text().contains("origin"), "{}", r.text());
    assert_eq!(
        get(addr, &format!("/v1/batch-list/{ORIGIN}?after=x")).status,
        400
    );

    // These batches carry no export signature: no GAEN export is served.
    let r = get(addr, &format!("/v1/exports/{ORIGIN}/1"));
    assert_eq!(r.status, 404);
    assert!(r.text().contains("no export signature"), "{}", r.text());
    assert_eq!(get(addr, &format!("/v1/exports/{ORIGIN}/9")).status, 404);

    // Relays refuse uploads; bodies of the wrong size get a clear error.
    let r = http(addr, "POST", "/v1/upload", &[], &[0u8; UPLOAD_REQUEST_LEN]);
    assert_eq!(r.status, 404);
    assert!(r.text().contains("relay"), "{}", r.text());
    let r = http(addr, "POST", "/v1/upload", &[], &[1u8; 2000]);
    assert_eq!(r.status, 413);
    assert!(r.text().contains("exactly 1024"), "{}", r.text());
    let r = http(addr, "POST", "/v1/upload", &[], &vec![0u8; 1 << 20]);
    assert_eq!(r.status, 413);

    // /metrics is as of the period's boundary: it shows them from the next one.
    assert!(!get(addr, "/metrics").text().contains("traceless_keys 15"));
    next_period(&st, &clock);
    let metrics = get(addr, "/metrics").text();
    assert!(metrics.contains("traceless_keys 15"), "{metrics}");
    assert!(metrics.contains("traceless_batches_duplicate_total 1"));
    assert!(metrics.contains("route=\"/v1/batches/{origin}/{sequence}\",status=\"304\""));
    drop(st);
    node.shutdown().await;
}

/// A list cut at 1,000 batches names where it goes on (`Link: <…>;
/// rel="next"`, SPEC.md §6.1), so phones ask again only then; the last page,
/// a page of exactly what is left, and a page an embargo stops name none.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn batch_list_names_a_next_page_only_when_cut_short() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(NOW);
    let node = start_node(relay_config(dir.path()), &clock).await;
    let (addr, st, a) = (node.http_addr, node.core.clone(), authority());
    for sequence in 1..=1_001 {
        st.ingest(&signed_batch(&a, sequence, TODAY - 2, 1, NOW - 100))
            .unwrap();
    }
    let page = |after: u64| {
        let r = get(addr, &format!("/v1/batch-list/{ORIGIN}?after={after}"));
        assert_eq!(r.status, 200);
        let n = BatchList::decode(&r.body).unwrap().batches.len();
        (n, r.header("link").map(str::to_owned))
    };
    let (n, link) = page(0);
    assert_eq!(n, 1_000);
    let link = link.expect("a cut list names its next page");
    assert_eq!(
        link,
        format!("</v1/batch-list/{ORIGIN}?after=1000>; rel=\"next\"")
    );
    assert!(wire::names_next(&link));
    assert_eq!(page(1_000), (1, None));
    assert_eq!(page(1), (1_000, None), "exactly what is left");
    // Today's batch is under embargo: the list stops before it, and so would
    // the next request, so it names no next page though a visible one follows.
    st.ingest(&signed_batch(&a, 1_002, TODAY, 1, NOW)).unwrap();
    st.ingest(&signed_batch(&a, 1_003, TODAY - 2, 1, NOW))
        .unwrap();
    assert_eq!(page(1), (1_000, None));
    assert_eq!(page(1_000), (1, None));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn gateway_upload_codes_embargo_and_retention() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(NOW);
    let config = gateway_config(dir.path());
    let (codes, records) = upload_codes::issue(3, NOW + 86_400);
    upload_codes::write_incoming(dir.path(), &records).unwrap();
    let node = start_node(config.clone(), &clock).await;
    let addr = node.http_addr;
    let st = node.core.clone();

    // Malformed bodies and bad codes are refused with reasons.
    let r = http(
        addr,
        "POST",
        "/v1/upload",
        &[],
        &[0xffu8; UPLOAD_REQUEST_LEN],
    );
    assert_eq!(r.status, 400);
    assert!(r.text().contains("invalid upload request"), "{}", r.text());
    let r = http(
        addr,
        "POST",
        "/v1/upload",
        &[],
        &upload_body("00-11", keys_of_day(TODAY - 1, 1)),
    );
    assert_eq!(r.status, 400);
    let wrong = format!("{}-{}", &codes[0][..16], "0".repeat(32));
    let r = http(
        addr,
        "POST",
        "/v1/upload",
        &[],
        &upload_body(&wrong, keys_of_day(TODAY - 1, 1)),
    );
    assert_eq!(r.status, 403);

    // A real upload: two past days and today's still-valid key.
    let mut keys = keys_of_day(TODAY - 1, 1);
    keys.extend(keys_of_day(TODAY - 4, 1));
    let today_key = keys_of_day(TODAY, 1);
    keys.extend(today_key.clone());
    let r = http(
        addr,
        "POST",
        "/v1/upload",
        &[],
        &upload_body(&codes[0], keys.clone()),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let receipt = r.json();
    assert_eq!(receipt["pooled_keys"], 3);
    assert_eq!(receipt["embargoed_keys"], 1);
    // The code is single-use.
    let r = http(
        addr,
        "POST",
        "/v1/upload",
        &[],
        &upload_body(&codes[0], keys_of_day(TODAY - 1, 1)),
    );
    assert_eq!(r.status, 403);
    assert!(r.text().contains("unknown or already used"));

    // Embargo: today's key is neither listed nor served until 2 h after midnight.
    let served_teks = |st: &traceless_node::Core| -> Vec<Tek> {
        let mut teks = Vec::new();
        for m in st.store.all_batches().unwrap() {
            let r = get(addr, &format!("/v1/batches/{}/{}", m.origin, m.sequence));
            if r.status == 200 {
                teks.extend(
                    batch_keys(&r.body, &trust(), st.now())
                        .into_iter()
                        .map(|k| k.tek),
                );
            }
        }
        teks.sort();
        // The batch list serves exactly the batches served one by one.
        let list = get(addr, &format!("/v1/batch-list/{ORIGIN}"));
        let mut listed: Vec<Tek> = BatchList::decode(&list.body)
            .unwrap()
            .batches
            .iter()
            .flat_map(|b| batch_keys(b, &trust(), st.now()))
            .map(|k| k.tek)
            .collect();
        listed.sort();
        assert_eq!(listed, teks);
        teks
    };
    // Pooled until the period's boundary (SPEC.md §6.4).
    assert_eq!(served_teks(&st).len(), 0);
    next_period(&st, &clock);
    assert_eq!(served_teks(&st).len(), 2);
    assert!(!served_teks(&st).contains(&today_key[0].tek));
    // The embargo ends 2 h after midnight; the key joins the pool of the period
    // that starts then, published at its end.
    let midnight = u64::from(TODAY + 1) * 86_400;
    clock.set(midnight + 3 * 3600 - 1);
    st.run_period().unwrap();
    assert!(!served_teks(&st).contains(&today_key[0].tek));
    clock.set(midnight + 3 * 3600);
    st.run_period().unwrap();
    assert!(served_teks(&st).contains(&today_key[0].tek));
    // One period batch a period, listed with the days it holds.
    let list = get(addr, &format!("/v1/batches?origin={ORIGIN}&after=0")).json();
    assert_eq!(list["batches"][0]["version"], 2);
    assert_eq!(
        list["batches"][0]["days"],
        serde_json::json!([TODAY - 4, TODAY - 1])
    );
    assert_eq!(list["batches"][1]["days"], serde_json::json!([TODAY]));

    // Retention: the day TODAY-4 key expires first; exactly that day goes,
    // pruned from the first period batch, which is still served.
    let old = st.store.all_batches().unwrap()[0].clone();
    assert_eq!(old.days[0].day, TODAY - 4);
    clock.set(old.expires_at());
    assert!(
        st.run_retention().unwrap().is_none(),
        "not due at the expiry second itself"
    );
    clock.set(old.expires_at() + 1);
    let record = st.run_retention().unwrap().expect("deleted");
    assert_eq!(record.deleted.len(), 1);
    assert_eq!(record.deleted[0].day, TODAY - 4);
    assert_eq!(record.deleted[0].key_count, 1);
    assert_eq!(
        (
            record.deleted[0].first_sequence,
            record.deleted[0].last_sequence
        ),
        (old.sequence, old.sequence)
    );
    assert_eq!(st.store.all_batches().unwrap().len(), 2);
    let pruned = get(addr, &format!("/v1/batches/{ORIGIN}/{}", old.sequence));
    assert_eq!(pruned.status, 200);
    let left: Vec<u32> = match PublishedBatch::decode(&pruned.body).unwrap() {
        PublishedBatch::Period(b) => b.pruned.iter().map(|p| p.day).collect(),
        other => panic!("{other:?}"),
    };
    assert_eq!(left, [TODAY - 4], "the day's digest stands in for its keys");
    assert_eq!(batch_keys(&pruned.body, &trust(), st.now()).len(), 1);
    // A replay of the deleted batch is refused as expired, so it cannot come back.
    // Everything else goes once its time is up, in a second chained entry.
    clock.set(u64::from(TODAY + 1) * 86_400 + 15 * 86_400);
    st.run_retention().unwrap().expect("deleted the rest");
    assert!(st.store.all_batches().unwrap().is_empty());

    let records = verified_deletion_log(addr);
    assert_eq!(records.len(), 2);
    assert_eq!(
        records
            .iter()
            .flat_map(|r| &r.deleted)
            .map(|d| d.key_count)
            .sum::<u64>(),
        3
    );
    drop(st);
    node.shutdown().await;

    // Restart: the log and the consumed code survive.
    let node = start_node(config, &clock).await;
    assert_eq!(node.core.store.deletion_log().unwrap().len(), 2);
    let r = http(
        node.http_addr,
        "POST",
        "/v1/upload",
        &[],
        &upload_body(&codes[0], keys_of_day(TODAY, 1)),
    );
    assert_eq!(r.status, 403);
    node.shutdown().await;
}

/// The framework's own refusals answer the documented JSON `{error}` too, and
/// `limit` outside 1..=1000 is refused rather than clamped.
#[tokio::test]
async fn parse_errors_unknown_routes_and_bad_limits_answer_json_errors() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(NOW);
    let node = start_node(relay_config(dir.path()), &clock).await;
    let addr = node.http_addr;
    for (path, status) in [
        ("/v1/batches/test.health/-1", 400),
        ("/v1/batches/test.health/x", 400),
        ("/v1/exports/test.health/-1", 400),
        ("/v1/filters/test.health/-3", 400),
        ("/v1/filter-parts/test.health?held=20000.1,x", 400),
        ("/v1/filter-parts/Not%20An%20Origin", 400),
        ("/v1/batches?origin=test.health&limit=0", 400),
        ("/v1/batches?origin=test.health&limit=1001", 400),
        ("/v1/batches?limit=5", 400),
        ("/no/such/route", 404),
    ] {
        let r = tokio::task::spawn_blocking(move || get(addr, path))
            .await
            .unwrap();
        assert_eq!(r.status, status, "{path}: {}", r.text());
        assert_eq!(r.header("content-type"), Some("application/json"), "{path}");
        assert!(
            r.json()["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{path}"
        );
    }
    let ok =
        tokio::task::spawn_blocking(move || get(addr, "/v1/batches?origin=test.health&limit=1000"))
            .await
            .unwrap();
    assert_eq!(ok.status, 200);
    node.shutdown().await;
}

//! The filter form (SPEC.md §5.8) on real nodes: sled on disk, axum and libp2p on
//! 127.0.0.1, an injected clock. A filter-form upload becomes hashed entries, the
//! entries become a signed part of a day filter once their embargo passed (each
//! part holds only entries no earlier part holds), parts travel by gossip (and
//! catch-up) bit for bit and are all kept, a phone downloads only the parts after
//! those it holds, and retention deletes parts and entries with a deletion-log
//! record. No TEK or RPI of an upload reaches the disk or the log.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use libp2p::gossipsub::IdentTopic;
use prost::Message;
use sha2::Digest;
use traceless_node::config::TokenKeyFile;
use traceless_node::core::IngestError;
use traceless_node::federation::behaviour::FILTER_TOPIC;
use traceless_node::storage::PutOutcome;
use traceless_node::{upload_codes, Config, Core, ManualClock, RunningNode};
use traceless_protocol::ed25519_dalek::Signer;
use traceless_protocol::filter::{FILTER_HASHES, FILTER_SEED_LEN};
use traceless_protocol::wire::{filter_expires_at, pb, FILTER_VERSION, MAX_UPLOAD_KEYS};
use traceless_protocol::*;

/// The interval `NOW` falls in (offset 133 of `TODAY`).
fn now_interval() -> u32 {
    interval_number(NOW)
}

/// A key of `day`, valid the whole day.
fn key_of(day: u32) -> DiagnosisKey {
    DiagnosisKey {
        tek: Tek::generate(),
        rolling_start: day_start_interval(day),
        rolling_period: 144,
        transmission_risk: 4,
        days_since_onset: 0,
    }
}

fn mask(offsets: impl IntoIterator<Item = u32>) -> IntervalMask {
    let mut m = IntervalMask::default();
    for j in offsets {
        m.set(j, true);
    }
    m
}

fn filter_upload(
    code: &str,
    token: Option<UploadToken>,
    keys: &[DiagnosisKey],
    masks: &[IntervalMask],
) -> Vec<u8> {
    Upload {
        upload_code: code.as_bytes().to_vec(),
        token,
        keys: keys.to_vec(),
        dummy: false,
        filter_intervals: masks.to_vec(),
        stays: Default::default(),
    }
    .encode_padded()
    .unwrap()
}

/// The entry a phone that heard `key` in `interval` probes with.
fn entry(key: &DiagnosisKey, interval: u32) -> FilterEntry {
    FilterEntry::new(&key.tek.rpik().rpi(interval), interval)
}

/// A gateway config with a token key (for sealed uploads) and `codes` upload
/// codes ready for import. The rebuild job runs once at start and then only
/// after a day of clock time: tests call `rebuild_filters` themselves.
fn filter_gateway(dir: &Path, codes: usize) -> (Config, Vec<String>, TokenKey) {
    let mut c = gateway_config(dir);
    let token_key = TokenKey::generate(1);
    let file = dir.join("tokens-1.key");
    traceless_node::keys::write_token_key(&file, &token_key).unwrap();
    let g = c.gateway.as_mut().unwrap();
    g.token_keys = vec![TokenKeyFile { epoch: 1, file }];
    c.filters.rebuild_seconds = 86_400;
    let (codes, records) = upload_codes::issue(codes, NOW + 30 * 86_400);
    upload_codes::write_incoming(dir, &records).unwrap();
    (c, codes, token_key)
}

/// `n` valid upload tokens of `key`.
fn tokens(key: &TokenKey, n: usize) -> Vec<UploadToken> {
    let request = TokenRequest::new(key.epoch, n).unwrap();
    let response = key.issue(&request.blinded).unwrap();
    request.finalize(&response, &key.public_key()).unwrap()
}

fn trust() -> TrustList {
    relay_config(Path::new("/nonexistent"))
        .trust_list()
        .unwrap()
}

/// The parts a node serves for (ORIGIN, day) above revision `after`: each
/// part's exact bytes and the verified part, ascending; empty on 404.
fn served_after(node: &RunningNode, day: u32, after: u64) -> Vec<(Vec<u8>, DayFilter)> {
    let r = get(
        node.http_addr,
        &format!("/v1/filters/{ORIGIN}/{day}?after={after}"),
    );
    if r.status == 404 {
        return Vec::new();
    }
    assert_eq!(r.status, 200, "{}", r.text());
    FilterParts::decode(&r.body)
        .unwrap()
        .parts
        .into_iter()
        .map(|p| {
            let f = SignedFilter::decode(&p)
                .unwrap()
                .verify(&trust(), node.core.now())
                .unwrap();
            (p, f)
        })
        .collect()
}

/// Every part a node serves for (ORIGIN, day).
fn served(node: &RunningNode, day: u32) -> Vec<(Vec<u8>, DayFilter)> {
    served_after(node, day, 0)
}

/// The newest part a node serves for (ORIGIN, day), if any.
fn newest(node: &RunningNode, day: u32) -> Option<(Vec<u8>, DayFilter)> {
    served(node, day).pop()
}

/// The highest part revision a node holds for (ORIGIN, day) (0 if none).
fn revision_at(node: &RunningNode, day: u32) -> u64 {
    node.core
        .store
        .filter_parts(ORIGIN, day)
        .unwrap()
        .last()
        .map_or(0, |m| m.revision)
}

/// Every file under `dir`, concatenated (sled's log and snapshots included).
fn disk_bytes(dir: &Path) -> Vec<u8> {
    files_under(dir)
        .iter()
        .flat_map(|p| std::fs::read(p).unwrap_or_default())
        .collect()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// (a) A filter-form upload (code path, over HTTP) publishes exactly the chosen
/// intervals, each only once 13 intervals have ended after it; its keys are
/// neither published nor held. Fails if entries skip the embargo, if a removed
/// interval is folded in, or if the keys go the key-form way.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn filter_upload_is_published_after_the_embargo_with_the_chosen_intervals_only() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(NOW);
    let (config, codes, _) = filter_gateway(dir.path(), 1);
    let node = start_node(config, &clock).await;
    let st = node.core.clone();
    let addr = node.http_addr;

    // Yesterday's key: offsets 0, 50, 143 chosen, 51 removed. Today's key: 125 and
    // 130 chosen (ended, but within 13 intervals of now), 100 removed.
    let yesterday = key_of(TODAY - 1);
    let today = key_of(TODAY);
    let y0 = yesterday.rolling_start;
    let t0 = today.rolling_start;
    assert_eq!(now_interval(), t0 + 133);
    let r = http(
        addr,
        "POST",
        "/v1/upload",
        &[],
        &filter_upload(
            &codes[0],
            None,
            &[yesterday.clone(), today.clone()],
            &[mask([0, 50, 143]), mask([125, 130])],
        ),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let receipt = r.json();
    assert_eq!(receipt["filter_entries"], 5);
    assert_eq!(receipt["pooled_keys"], 0);
    assert_eq!(receipt["embargoed_keys"], 0);
    assert!(st.store.all_batches().unwrap().is_empty(), "no key batch");
    assert_eq!(st.store.pending_count().unwrap(), 0, "no key held");
    assert_eq!(
        st.store.filter_entry_days().unwrap(),
        vec![(TODAY - 1, 3), (TODAY, 2)]
    );

    // Now: yesterday's entries are publishable, today's are not yet.
    st.rebuild_filters().unwrap();
    let (_, y) = newest(&node, TODAY - 1).expect("yesterday's filter");
    assert_eq!((y.revision, y.filter.entries()), (1, 3));
    for i in [0, 50, 143] {
        assert!(y.filter.contains(&entry(&yesterday, y0 + i)), "offset {i}");
    }
    assert!(!y.filter.contains(&entry(&yesterday, y0 + 51)), "removed");
    assert!(
        served(&node, TODAY).is_empty(),
        "today's entries are embargoed"
    );

    // One second before offset 125's embargo ends: still nothing for today.
    clock.set(interval_start_seconds(t0 + 125 + 13) - 1);
    st.rebuild_filters().unwrap();
    assert!(served(&node, TODAY).is_empty());
    // At its end: offset 125 only.
    clock.set(interval_start_seconds(t0 + 125 + 13));
    st.rebuild_filters().unwrap();
    let (bytes1, f) = newest(&node, TODAY).expect("today's filter");
    assert_eq!((f.revision, f.filter.entries()), (1, 1));
    assert_eq!(f.created_at, clock.now());
    assert!(f.filter.contains(&entry(&today, t0 + 125)));
    assert!(!f.filter.contains(&entry(&today, t0 + 130)), "embargoed");
    assert!(!f.filter.contains(&entry(&today, t0 + 100)), "removed");
    // Offset 130's embargo ends: part 2 with it alone (part 1 holds 125),
    // under a fresh seed; part 1 is still served, unchanged.
    clock.set(interval_start_seconds(t0 + 130 + 13));
    st.rebuild_filters().unwrap();
    let parts = served(&node, TODAY);
    assert_eq!(parts.len(), 2);
    assert_eq!(parts[0].0, bytes1, "part 1 is kept as it was");
    let (bytes2, f2) = parts[1].clone();
    assert_eq!((f2.revision, f2.filter.entries()), (2, 1));
    assert!(f2.filter.contains(&entry(&today, t0 + 130)));
    assert!(
        !f2.filter.contains(&entry(&today, t0 + 125)),
        "in part 1 only"
    );
    assert!(!f2.filter.contains(&entry(&today, t0 + 100)));
    assert_ne!(f2.filter.seed(), f.filter.seed());
    assert_eq!(f2.created_at, clock.now());
    // A phone holding part 1 downloads part 2 only; holding both, nothing.
    let after1 = served_after(&node, TODAY, 1);
    assert_eq!(after1.len(), 1);
    assert_eq!(after1[0].0, bytes2);
    assert!(served_after(&node, TODAY, 2).is_empty());
    // One request for every day: the parts above what `held` names, by day
    // and revision; nothing above: an empty body.
    let parts_above = |held: &str| {
        let r = get(addr, &format!("/v1/filter-parts/{ORIGIN}?held={held}"));
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.header("link"), None, "nothing was cut");
        FilterParts::decode(&r.body).unwrap().parts
    };
    let yesterday = served(&node, TODAY - 1);
    assert_eq!(yesterday.len(), 1);
    assert_eq!(
        parts_above(""),
        vec![yesterday[0].0.clone(), bytes1.clone(), bytes2.clone()]
    );
    assert_eq!(
        parts_above(&format!("{}.1,{TODAY}.1", TODAY - 1)),
        vec![bytes2.clone()]
    );
    assert_eq!(
        parts_above(&format!("{TODAY}.2")),
        vec![yesterday[0].0.clone()]
    );
    assert!(parts_above(&format!("{}.1,{TODAY}.2", TODAY - 1)).is_empty());
    // Any order, a day twice, r = 0: what the phone holds all the same.
    assert_eq!(
        parts_above(&format!(
            "{TODAY}.1,{}.0,{TODAY}.0,{}.1",
            TODAY - 1,
            TODAY - 1
        )),
        vec![bytes2.clone()]
    );
    for bad in [
        format!("{TODAY}"),
        format!("{TODAY}.1,"),
        format!("{TODAY}.x"),
    ] {
        let r = get(addr, &format!("/v1/filter-parts/{ORIGIN}?held={bad}"));
        assert_eq!(r.status, 400, "{bad}");
        assert!(
            r.json()["error"].as_str().unwrap().contains("held"),
            "{bad}"
        );
    }
    // Nothing new: no new part.
    st.rebuild_filters().unwrap();
    assert_eq!(revision_at(&node, TODAY), 2);
    assert_eq!(revision_at(&node, TODAY - 1), 1);

    // The listing, ETag and metrics.
    let list = get(addr, "/v1/filters").json();
    let filters = list["filters"].as_array().unwrap();
    assert_eq!(filters.len(), 2);
    let t = filters.iter().find(|f| f["day"] == TODAY).unwrap();
    assert_eq!(t["origin"], ORIGIN);
    assert_eq!(t["revision"], 2);
    assert_eq!(t["parts"], 2);
    assert_eq!(t["entries"], 2);
    assert_eq!(t["bytes"], bytes1.len() + bytes2.len());
    assert_eq!(t["url"], format!("/v1/filters/{ORIGIN}/{TODAY}"));
    // The ETag of every part: SHA-256 over their content ids, in order.
    let ids = [&bytes1, &bytes2].map(|b| traceless_node::storage::content_id(b));
    let etag = hex::encode(sha2::Sha256::digest(ids.concat()));
    assert_eq!(t["etag"], etag);
    assert_eq!(
        get(addr, "/v1/filters?origin=other.health").json()["filters"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    let r = get(addr, &format!("/v1/filters/{ORIGIN}/{TODAY}"));
    assert_eq!(r.header("etag"), Some(format!("\"{etag}\"").as_str()));
    assert_eq!(r.header("content-type"), Some("application/x-protobuf"));
    let r = http(
        addr,
        "GET",
        &format!("/v1/filters/{ORIGIN}/{TODAY}"),
        &[("If-None-Match", &format!("\"{etag}\""))],
        &[],
    );
    assert_eq!(r.status, 304);
    let r = get(addr, &format!("/v1/filters/{ORIGIN}/{}", TODAY - 5));
    assert_eq!(r.status, 404);
    assert!(r.json()["error"].as_str().unwrap().contains("no filter"));
    // /metrics is as of the period's boundary.
    next_period(&st, &clock);
    let metrics = get(addr, "/metrics").text();
    let built = st.metrics.filters_built.get();
    assert!(built >= 3, "{built}");
    assert!(metrics.contains(&format!("traceless_filters_built_total {built}")));
    assert!(metrics.contains("\ntraceless_filters 3\n"), "{metrics}");
    assert!(metrics.contains("\ntraceless_filter_entries 5\n"));
    assert!(metrics.contains("\ntraceless_gateway_filter_entries 5\n"));
    let page = get(addr, "/").text();
    assert!(
        page.contains(&format!(
            "data-day=\"{TODAY}\" data-keys=\"0\" data-embargoed=\"0\" data-filters=\"2\" data-filter-entries=\"2\""
        )),
        "{page}"
    );
    drop(st);
    node.shutdown().await;
}

/// (b) Two relays receive the gateway's parts by gossip (their periodic
/// catch-up is off) and serve them bit for bit; a second part joins the first
/// (both kept); a replayed part is a duplicate and a different part under a held
/// revision a conflict (the first kept); a relay that joins later gets every
/// part by catch-up.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn relays_get_filters_by_gossip_and_serve_identical_bytes() {
    let clock = ManualClock::new(NOW);
    let dirs: Vec<_> = (0..4).map(|_| tempfile::tempdir().unwrap()).collect();
    let (config, codes, _) = filter_gateway(dirs[0].path(), 2);
    let gateway = start_node(config, &clock).await;
    let r1 = start_relay(dirs[1].path(), &clock, &gateway.p2p_addrs, 3600).await;
    let r2 = start_relay(dirs[2].path(), &clock, &r1.p2p_addrs, 3600).await;
    assert!(
        wait_until(Duration::from_secs(15), || peer_count(&r1) >= 2
            && peer_count(&r2) >= 1)
        .await
    );
    // Wait for the filter topic's mesh: the gateway and r2 each mesh with r1.
    let meshed = |n: &RunningNode, k| n.core.metrics.mesh_peers(FILTER_TOPIC) >= k;
    assert!(
        wait_until(Duration::from_secs(15), || meshed(&gateway, 1)
            && meshed(&r1, 2)
            && meshed(&r2, 1))
        .await,
        "no gossipsub mesh on the filter topic"
    );

    let day = TODAY - 1;
    let first = key_of(day);
    let r = http(
        gateway.http_addr,
        "POST",
        "/v1/upload",
        &[],
        &filter_upload(
            &codes[0],
            None,
            std::slice::from_ref(&first),
            &[mask(0..144)],
        ),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    gateway.core.rebuild_filters().unwrap();
    let (g1, _) = newest(&gateway, day).unwrap();
    for n in [&r1, &r2] {
        assert!(
            wait_until(Duration::from_secs(15), || revision_at(n, day) == 1).await,
            "relay has revision {}",
            revision_at(n, day)
        );
        assert_eq!(newest(n, day).unwrap().0, g1, "bit-identical");
    }
    // The store is written before the gossip verdict is counted: wait for it.
    assert!(
        wait_until(Duration::from_secs(5), || r2
            .core
            .metrics
            .gossip_accepted
            .get()
            >= 1)
        .await,
        "r2 got the filter by gossip"
    );

    // A second upload: part 2, with its entries only, joins part 1 everywhere.
    let second = key_of(day);
    let r = http(
        gateway.http_addr,
        "POST",
        "/v1/upload",
        &[],
        &filter_upload(
            &codes[1],
            None,
            std::slice::from_ref(&second),
            &[mask([7, 8])],
        ),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    gateway.core.rebuild_filters().unwrap();
    let (g2, f2) = newest(&gateway, day).unwrap();
    assert_eq!((f2.revision, f2.filter.entries()), (2, 2));
    for n in [&r1, &r2] {
        assert!(wait_until(Duration::from_secs(15), || revision_at(n, day) == 2).await);
        let parts = served(n, day);
        let bytes: Vec<_> = parts.iter().map(|p| p.0.clone()).collect();
        assert_eq!(bytes, vec![g1.clone(), g2.clone()]);
        assert!(parts[1]
            .1
            .filter
            .contains(&entry(&second, second.rolling_start + 7)));
        assert!(parts[0]
            .1
            .filter
            .contains(&entry(&first, first.rolling_start + 100)));
        assert!(!parts[1]
            .1
            .filter
            .contains(&entry(&first, first.rolling_start + 100)));
    }
    // A part again (a replay): a duplicate, nothing changes.
    for g in [&g1, &g2] {
        assert_eq!(
            r1.core.ingest_filter(g).unwrap().outcome,
            PutOutcome::Duplicate
        );
    }
    // A different part 2 signed by the authority: a conflict, the first is kept.
    let other = DayFilter {
        filter: EntryFilter::build(
            &[entry(&second, second.rolling_start)],
            [3; FILTER_SEED_LEN],
        )
        .unwrap(),
        ..f2.clone()
    };
    let before = r1.core.metrics.filters_conflicting.get();
    assert_eq!(
        r1.core
            .ingest_filter(&other.sign(&authority()).unwrap().encode())
            .unwrap()
            .outcome,
        PutOutcome::Conflict
    );
    assert_eq!(r1.core.metrics.filters_conflicting.get(), before + 1);
    assert_eq!(newest(&r1, day).unwrap().0, g2);

    // A relay that starts now catches up on connect: every part.
    let late = start_relay(dirs[3].path(), &clock, &r2.p2p_addrs, 3600).await;
    assert!(wait_until(Duration::from_secs(15), || revision_at(&late, day) == 2).await);
    assert!(
        wait_until(Duration::from_secs(15), || served(&late, day).len() == 2).await,
        "part 1 caught up too"
    );
    let bytes: Vec<_> = served(&late, day).into_iter().map(|p| p.0).collect();
    assert_eq!(bytes, vec![g1, g2]);

    for n in [gateway, r1, r2, late] {
        n.shutdown().await;
    }
}

/// (c) An attacker who sniffed a victim's RPIs uploads them as TEKs (anonymous
/// path, with valid tokens): with the day's validity, with validity starting at
/// the sniffed interval, as a one-interval key. The filter holds the attacker's
/// own derived entries but none of the victim's `(rpi, interval)` entries for
/// any interval a phone would probe. Fails if the gateway ever folds in
/// `(TEK field, interval)` as if the TEK were a token.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sniffed_rpis_uploaded_as_teks_publish_none_of_the_victims_entries() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(NOW);
    let (config, _, token_key) = filter_gateway(dir.path(), 0);
    let node = start_node(config, &clock).await;
    let st = node.core.clone();
    let gateway = st.gateway.as_ref().unwrap();
    let day = TODAY - 1;
    let victim = key_of(day);
    let v0 = victim.rolling_start;
    let sniffed: Vec<(u32, Rpi)> = (40..46)
        .map(|i| (v0 + i, victim.tek.rpik().rpi(v0 + i)))
        .collect();

    let mut forged = Vec::new();
    for &(interval, rpi) in &sniffed {
        let as_tek = Tek(rpi.0);
        // The RPI as the day's key, all intervals chosen.
        forged.push((
            DiagnosisKey {
                tek: as_tek.clone(),
                ..victim
            },
            IntervalMask::all(144),
        ));
        // The RPI as a key starting at the sniffed interval, one interval long.
        forged.push((
            DiagnosisKey {
                tek: as_tek.clone(),
                rolling_start: interval,
                rolling_period: 1,
                ..victim
            },
            mask([0]),
        ));
        // ...and as a key starting one interval before it.
        forged.push((
            DiagnosisKey {
                tek: as_tek,
                rolling_start: interval - 1,
                rolling_period: 2,
                ..victim
            },
            mask([0, 1]),
        ));
    }
    let seal = gateway.seal_public_key();
    let toks = tokens(
        &token_key,
        forged.len().div_ceil(MAX_UPLOAD_KEYS).max(1) + 1,
    );
    let mut uploaded = Vec::new();
    for (chunk, token) in forged.chunks(MAX_UPLOAD_KEYS).zip(toks) {
        let keys: Vec<_> = chunk.iter().map(|c| c.0.clone()).collect();
        let masks: Vec<_> = chunk.iter().map(|c| c.1).collect();
        let body = filter_upload("", Some(token), &keys, &masks);
        let sealed = seal_upload(&seal, &body).unwrap();
        let receipt = gateway
            .accept_sealed(st.store.as_ref(), &st.warning_files(), &sealed, NOW)
            .unwrap();
        assert!(receipt.filter_entries > 0);
        uploaded.extend(chunk.iter().cloned());
    }
    assert_eq!(uploaded.len(), forged.len());
    st.rebuild_filters().unwrap();
    let (_, f) = newest(&node, day).expect("the attacker's filter");

    // The attacker's own entries are there (the filter is built from the upload)...
    for (k, m) in &uploaded {
        for j in m.offsets() {
            assert!(f.filter.contains(&entry(k, k.rolling_start + j)));
        }
    }
    // ...but no observation of the victim's tokens hits, at any drift.
    let observations: Vec<Observation> = (0..144)
        .map(|i| Observation {
            rpi: victim.tek.rpik().rpi(v0 + i),
            interval: v0 + i,
            attenuation_db: 40,
            duration_s: 300,
        })
        .collect();
    let hits =
        traceless_protocol::filter::probe_filter(&f.filter, day, f.created_at, &observations);
    assert!(hits.is_empty(), "victim's tokens hit at {hits:?}");
    for &(interval, rpi) in &sniffed {
        for j in interval - 12..=interval + 12 {
            assert!(!f.filter.contains(&FilterEntry::new(&rpi, j)));
        }
    }
    drop(st);
    node.shutdown().await;
}

/// (d) After filter-form uploads on both paths, a rebuild and the flushes, no
/// file under the gateway's data dir and no log line (TRACE, everything) holds a
/// TEK or any RPI of the uploaded keys. Controls: the scan finds the filter's
/// bitmap on disk, and the log holds the rebuild's line, so neither check is
/// vacuous. Fails if the keys are stored (e.g. held like key-form keys of today)
/// or logged (an RPI's `Debug`, a hex dump).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_tek_or_rpi_reaches_the_disk_or_the_log() {
    captured_log("trace");
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(NOW);
    let (config, codes, token_key) = filter_gateway(dir.path(), 1);
    let node = start_node(config, &clock).await;
    let st = node.core.clone();
    let today = key_of(TODAY);
    let past = key_of(TODAY - 2);
    let sealed_key = key_of(TODAY - 1);
    let r = http(
        node.http_addr,
        "POST",
        "/v1/upload",
        &[],
        &filter_upload(
            &codes[0],
            None,
            &[today.clone(), past.clone()],
            &[mask([3, 60, 120]), mask(0..144)],
        ),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let g = st.gateway.as_ref().unwrap();
    let body = filter_upload(
        "",
        Some(tokens(&token_key, 1)[0]),
        std::slice::from_ref(&sealed_key),
        &[mask(10..90)],
    );
    let sealed = seal_upload(&g.seal_public_key(), &body).unwrap();
    g.accept_sealed(st.store.as_ref(), &st.warning_files(), &sealed, NOW)
        .unwrap();
    clock.set(NOW + 3600);
    st.rebuild_filters().unwrap();
    let (signed, f) = newest(&node, TODAY - 2).unwrap();
    assert!(newest(&node, TODAY).is_some() && newest(&node, TODAY - 1).is_some());
    drop(st);
    node.shutdown().await;

    let disk = disk_bytes(dir.path());
    let bitmap = f.filter.bitmap();
    assert!(
        contains(&disk, &bitmap[..32.min(bitmap.len())]),
        "control: the stored filter is visible to the scan"
    );
    assert!(contains(&disk, &signed[signed.len() - 64..]));
    let log = captured_log("trace");
    assert!(
        log.contains("built a part of a day filter"),
        "control: the log is captured"
    );
    let as_decimal = |b: &[u8]| {
        b.iter()
            .map(|x| x.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    for k in [today, past, sealed_key] {
        let mut secrets = vec![k.tek.0];
        secrets.extend((0..144).map(|i| k.tek.rpik().rpi(k.rolling_start + i).0));
        for s in secrets {
            assert!(!contains(&disk, &s), "a TEK or RPI is on disk");
            for text in [hex::encode(s), hex::encode_upper(s), as_decimal(&s)] {
                assert!(!log.contains(&text), "a TEK or RPI is in the log: {text}");
            }
        }
    }
}

/// A filter body with any field values, signed by `key` (so only the field under
/// test is wrong).
#[allow(clippy::too_many_arguments)]
fn crafted_filter(
    key: &AuthorityKey,
    day: u32,
    entry_count: u64,
    hashes: u32,
    seed_len: usize,
    bitmap_len: usize,
) -> Vec<u8> {
    let body = pb::FilterBody {
        version: FILTER_VERSION,
        origin: key.origin.clone(),
        day,
        revision: 1,
        created_at: NOW - 60,
        entry_count,
        hashes,
        seed: vec![9; seed_len],
        bitmap: vec![0x11; bitmap_len],
    }
    .encode_to_vec();
    let mut msg = FILTER_CONTEXT.to_vec();
    msg.push(0);
    msg.extend_from_slice(&body);
    SignedFilter {
        body,
        key_id: key.key_id,
        signature: key.signing_key.sign(&msg).to_bytes(),
    }
    .encode()
}

/// (e) Bad input. Uploads with a mask per key missing, an offset past the key's
/// rolling period, or an interval that has not ended get 400 with the reason, and
/// nothing is stored (the code still works afterwards). Gossiped filters with a
/// bad signature, an untrusted origin or key, a wrong-size bitmap, a wrong hash
/// count or a wrong seed length are rejected (the sender penalised), not stored
/// and not forwarded.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_uploads_are_refused_and_bad_filters_rejected_not_forwarded() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let clock = ManualClock::new(NOW);
    let (config, codes, _) = filter_gateway(dirs[0].path(), 1);
    let gw = start_node(config, &clock).await;
    let post = |body: Vec<u8>| http(gw.http_addr, "POST", "/v1/upload", &[], &body);
    let (a, b) = (key_of(TODAY - 1), key_of(TODAY - 2));
    let cases = [
        (
            filter_upload(&codes[0], None, &[a.clone(), b], &[mask([1])]),
            "1 masks for 2 keys",
        ),
        (
            filter_upload(
                &codes[0],
                None,
                &[DiagnosisKey {
                    rolling_period: 100,
                    ..a.clone()
                }],
                &[mask([100])],
            ),
            "outside the key's rolling period 100",
        ),
        (
            filter_upload(&codes[0], None, &[key_of(TODAY)], &[mask([133])]),
            "has not ended",
        ),
        (
            filter_upload(&codes[0], None, std::slice::from_ref(&a), &[mask([])]),
            "chooses no interval",
        ),
    ];
    for (body, why) in cases {
        let r = post(body);
        assert_eq!(r.status, 400, "{}", r.text());
        assert!(r.text().contains(why), "{} lacks {why:?}", r.text());
    }
    assert!(gw.core.store.filter_entry_days().unwrap().is_empty());
    gw.core.rebuild_filters().unwrap();
    assert!(gw.core.store.all_filters().unwrap().is_empty());
    let r = post(filter_upload(
        &codes[0],
        None,
        std::slice::from_ref(&a),
        &[mask([1])],
    ));
    assert_eq!(r.status, 200, "the code was not consumed: {}", r.text());
    gw.shutdown().await;

    // Gossip: a victim relay with a relay behind it.
    let victim = start_relay(dirs[1].path(), &clock, &[], 3600).await;
    let behind = start_relay(dirs[2].path(), &clock, &victim.p2p_addrs, 3600).await;
    assert!(wait_for_peers(&behind, 1).await);
    let auth = authority();
    let day = TODAY - 1;
    let good = DayFilter {
        origin: ORIGIN.into(),
        day,
        revision: 1,
        created_at: NOW - 60,
        filter: EntryFilter::build(&[entry(&a, a.rolling_start)], [4; FILTER_SEED_LEN]).unwrap(),
    };
    let mut bad_signature = good.sign(&auth).unwrap();
    bad_signature.signature[5] ^= 1;
    let untrusted_origin = AuthorityKey::generate("evil.health", 1);
    let untrusted_key = AuthorityKey::generate(ORIGIN, 2);
    let n = 1000u64;
    let bitmap = filter::filter_bitmap_len(n) as usize;
    // Each bad filter with the error it must be refused with.
    type Expect = fn(&WireError) -> bool;
    let bad: Vec<(&str, Vec<u8>, Expect)> = vec![
        ("signature", bad_signature.encode(), |e| {
            matches!(e, WireError::BadSignature("filter"))
        }),
        (
            "untrusted origin",
            DayFilter {
                origin: "evil.health".into(),
                ..good.clone()
            }
            .sign(&untrusted_origin)
            .unwrap()
            .encode(),
            |e| matches!(e, WireError::UntrustedSigner { origin, key_id: 1 } if origin == "evil.health"),
        ),
        (
            "untrusted key",
            good.sign(&untrusted_key).unwrap().encode(),
            |e| matches!(e, WireError::UntrustedSigner { origin, key_id: 2 } if origin == ORIGIN),
        ),
        (
            "bitmap",
            crafted_filter(&auth, day, n, FILTER_HASHES, FILTER_SEED_LEN, bitmap + 1),
            |e| {
                matches!(
                    e,
                    WireError::InvalidField {
                        field: "bitmap",
                        ..
                    }
                )
            },
        ),
        (
            "hash",
            crafted_filter(&auth, day, n, FILTER_HASHES - 1, FILTER_SEED_LEN, bitmap),
            |e| {
                matches!(
                    e,
                    WireError::InvalidField {
                        field: "hashes",
                        ..
                    }
                )
            },
        ),
        (
            "seed",
            crafted_filter(&auth, day, n, FILTER_HASHES, FILTER_SEED_LEN + 1, bitmap),
            |e| matches!(e, WireError::InvalidField { field: "seed", .. }),
        ),
    ];
    // Each is refused by validation itself, for its own reason...
    for (what, bytes, expect) in &bad {
        match victim.core.ingest_filter(bytes) {
            Err(IngestError::Invalid(e)) => assert!(expect(&e), "{what}: refused as {e:?}"),
            Err(e) => panic!("{what}: {e}"),
            Ok(_) => panic!("{what} accepted"),
        }
    }
    // ...and over gossip, each from a fresh attacker (one invalid message already
    // graylists its sender, after which its messages are dropped unread).
    let rejected = |n: &RunningNode| n.core.metrics.filters_rejected.get();
    let graylist = libp2p::gossipsub::PeerScoreThresholds::default().graylist_threshold;
    let topic = IdentTopic::new(FILTER_TOPIC);
    for (i, (what, bytes, _)) in bad.into_iter().enumerate() {
        let before = rejected(&victim);
        let mut evil = attacker(&victim.p2p_addrs[0], FILTER_TOPIC).await;
        let evil_id = *evil.local_peer_id();
        evil.behaviour_mut().publish(topic.clone(), bytes).unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while rejected(&victim) == before && tokio::time::Instant::now() < deadline {
            pump(&mut evil, Duration::from_millis(100)).await;
        }
        assert_eq!(rejected(&victim), before + 1, "{what} (#{i}) not rejected");
        pump(&mut evil, Duration::from_millis(200)).await;
        let score = victim
            .peer_score(evil_id)
            .await
            .expect("peer scoring is on");
        assert!(score <= graylist, "{what}: sender's score {score}");
    }
    assert!(victim.core.store.all_filters().unwrap().is_empty());
    assert!(behind.core.store.all_filters().unwrap().is_empty());

    // The valid filter still flows through the victim to the node behind.
    let mut honest = attacker(&victim.p2p_addrs[0], FILTER_TOPIC).await;
    honest
        .behaviour_mut()
        .publish(topic, good.sign(&auth).unwrap().encode())
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while revision_at(&behind, day) == 0 && tokio::time::Instant::now() < deadline {
        pump(&mut honest, Duration::from_millis(100)).await;
    }
    assert_eq!(revision_at(&behind, day), 1, "a valid filter is forwarded");
    // Gossip from the victim reaches the node behind in order: had any invalid
    // filter been forwarded, it would have arrived before this valid one.
    assert_eq!(rejected(&behind), 0, "nothing invalid was forwarded");
    victim.shutdown().await;
    behind.shutdown().await;
}

/// (f) Retention: at the end of the day's retention the gateway deletes the day's
/// parts and its stored entries, a relay its copies, and each logs them in a
/// verifiable deletion-log record (origin, day, part range, entry count).
/// Neither the filter's bitmap nor an entry is left in the database files.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn expired_filters_and_entries_are_deleted_and_logged() {
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let clock = ManualClock::new(NOW);
    let (config, codes, _) = filter_gateway(dirs[0].path(), 2);
    let gw = start_node(config.clone(), &clock).await;
    let rl = start_relay(dirs[1].path(), &clock, &gw.p2p_addrs, 1).await;
    let day = TODAY - 3;
    let (k1, k2) = (key_of(day), key_of(day));
    for (code, k, m) in [
        (&codes[0], k1.clone(), mask(0..144)),
        (&codes[1], k2, mask([5])),
    ] {
        let r = http(
            gw.http_addr,
            "POST",
            "/v1/upload",
            &[],
            &filter_upload(code, None, &[k], &[m]),
        );
        assert_eq!(r.status, 200, "{}", r.text());
        gw.core.rebuild_filters().unwrap();
    }
    let parts = served(&gw, day);
    assert_eq!(parts.len(), 2);
    assert_eq!(parts[1].1.filter.entries(), 1);
    let (signed, f) = parts[0].clone();
    assert_eq!((f.revision, f.filter.entries()), (1, 144));
    assert!(wait_until(Duration::from_secs(20), || served(&rl, day).len() == 2).await);
    let sample_entry = entry(&k1, k1.rolling_start + 77).0;
    let bitmap = f.filter.bitmap().to_vec();
    // Controls: before retention the filter is on both disks, and the gateway
    // holds the day's entry key (its entries are stored only encrypted under it).
    for d in &dirs {
        assert!(contains(&disk_bytes(d.path()), &bitmap[..32]));
    }
    let entry_keys = |dir: &Path| -> Vec<Vec<u8>> {
        let files = traceless_node::storage::files_dir(&dir.join("db"));
        std::fs::read_dir(files)
            .map(|d| {
                d.map(|e| e.unwrap().path())
                    .filter(|p| {
                        p.file_name()
                            .unwrap()
                            .to_string_lossy()
                            .starts_with(traceless_node::storage::ENTRY_KEY_FILE_PREFIX)
                    })
                    .map(|p| std::fs::read(p).unwrap())
                    .collect()
            })
            .unwrap_or_default()
    };
    let day_keys = entry_keys(dirs[0].path());
    assert_eq!(day_keys.len(), 1, "one entry key, for the day");
    assert!(
        !contains(&disk_bytes(dirs[0].path()), &sample_entry),
        "entries are encrypted at rest"
    );

    let expires = filter_expires_at(day);
    clock.set(expires);
    for n in [&gw, &rl] {
        if let Some(r) = n.core.run_retention().unwrap() {
            assert!(r.deleted.iter().all(|d| d.day != day), "not due yet");
        }
        assert_eq!(served(n, day).len(), 2, "served up to its expiry second");
    }
    assert_eq!(revision_at(&gw, day), 2);
    clock.set(expires + 1);
    let check_log = |n: &RunningNode, expect_entries: u64| {
        // The job may have run retention first; the log says what happened.
        let _ = n.core.run_retention().unwrap();
        assert!(n.core.store.all_filters().unwrap().is_empty());
        assert!(n.core.store.filter_entry_days().unwrap().is_empty());
        assert!(served(n, day).is_empty());
        let records = verified_deletion_log(n.http_addr);
        let ranges: Vec<_> = records
            .iter()
            .flat_map(|r| r.deleted.iter())
            .filter(|d| d.day == day && d.origin == ORIGIN)
            .collect();
        assert_eq!(ranges.len(), 1, "{ranges:?}");
        assert_eq!(
            (ranges[0].first_sequence, ranges[0].last_sequence),
            (1, 2),
            "both parts"
        );
        assert_eq!(ranges[0].key_count, expect_entries);
    };
    check_log(&gw, 145);
    check_log(&rl, 145);
    assert_eq!(
        get(gw.http_addr, "/v1/filters").json()["filters"],
        serde_json::json!([])
    );
    // A replay of the deleted filter is refused as expired, so it cannot come back.
    let replay = rl.core.ingest_filter(&signed);
    assert!(
        matches!(replay, Err(IngestError::Invalid(WireError::Expired { .. }))),
        "replay of a deleted filter: {replay:?}"
    );
    let check_state = |s: &Core| s.store.all_filters().unwrap().is_empty();
    assert!(check_state(&rl.core));
    gw.shutdown().await;
    rl.shutdown().await;

    for d in &dirs {
        let disk = disk_bytes(d.path());
        assert!(
            !contains(&disk, &bitmap[..32]),
            "the filter's bitmap is on disk"
        );
        assert!(
            !contains(&disk, &signed[signed.len() - 64..]),
            "its signature is on disk"
        );
    }
    // The entries' key is gone, so sled's (encrypted) copies of them are unreadable.
    assert!(entry_keys(dirs[0].path()).is_empty());
    let disk = disk_bytes(dirs[0].path());
    assert!(
        !contains(&disk, &day_keys[0]),
        "the day's entry key is on disk"
    );
    assert!(!contains(&disk, &sample_entry), "an entry is on disk");
}

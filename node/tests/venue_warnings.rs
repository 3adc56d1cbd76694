//! Venue warnings on a real gateway (SPEC.md §12.10), real files and real HTTP
//! on a `ManualClock`: the authority traces an owner's pre-trace, the warnings
//! appear only at the next period boundary as a signed batch that a visitor's
//! records match (a visitor at another hour's do not), served with an ETag;
//! forged, future and expired batches are refused by kind and not stored;
//! retention deletes a batch 14 days after its boundary, file and all.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use traceless_node::core::warnings::WarningIngestError;
use traceless_node::storage::warnings::WarningPut;
use traceless_node::{Clock, ManualClock};
use traceless_protocol::venue::{
    create_venue, match_records, seal_visit, SignedWarningBatch, VenueDescription, VenueError,
    WarningBatch,
};
use traceless_protocol::{AuthorityKey, TrustList};

fn trust() -> TrustList {
    let mut t = TrustList::new();
    let a = authority();
    t.insert(a.origin.clone(), a.key_id, a.signing_key.verifying_key());
    t
}

/// The node's transparency-log entries about venue warnings: publications as
/// `(sequence, day, warnings, content id, at)` and deletion ranges as
/// `(first, last, warnings, day)`.
type Published = Vec<(u64, u32, u64, [u8; 32], u64)>;
fn warning_entries(core: &traceless_node::Core) -> (Published, Vec<(u64, u64, u64, u32)>) {
    use traceless_protocol::log::{DeletionKind, Event, PublicationForm};
    let (mut published, mut deleted) = (Vec::new(), Vec::new());
    for e in core.log.all_entries().unwrap() {
        match Event::decode(&e).unwrap() {
            Event::Published {
                form: PublicationForm::Warning,
                origin,
                sequence,
                day,
                key_count,
                content_id,
                at,
            } => {
                assert_eq!(origin, ORIGIN);
                published.push((sequence, day, key_count, content_id, at));
            }
            Event::Deleted { kinds, record } => {
                let record = record.verify().unwrap();
                for (kind, r) in kinds.iter().zip(&record.deleted) {
                    if *kind == DeletionKind::Warnings {
                        deleted.push((r.first_sequence, r.last_sequence, r.key_count, r.day));
                    }
                }
            }
            _ => {}
        }
    }
    (published, deleted)
}

fn warnings_listed(addr: std::net::SocketAddr) -> Vec<serde_json::Value> {
    get(addr, "/v1/warnings").json()["warnings"]
        .as_array()
        .unwrap()
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn traced_warnings_appear_at_the_boundary_match_the_visitor_and_expire() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(NOW);
    let node = start_node(gateway_config(dir.path()), &clock).await;
    let addr = node.http_addr;
    let core = node.core.clone();
    let seal = traceless_node::keys::gateway_seal_key(dir.path()).unwrap();

    // The owner creates a venue for this gateway's authority key.
    let venue = create_venue(
        &VenueDescription::new("Apotheke am Markt", "Marktplatz 3", 3, 15, 90),
        &seal.public_bytes(),
    )
    .unwrap();
    let h0 = (NOW / 3600 - 2) * 3600;
    let visitor = seal_visit(&venue.entry, h0 + 600, h0 + 2400);
    let other_hour = seal_visit(&venue.entry, h0 - 7200, h0 - 5400);

    // The owner pre-traces one hour; the gateway completes it.
    let pre = venue.trace_secret.pre_trace(h0, h0 + 3600, NOW).unwrap();
    let (view, slots) = core.trace_venue(&pre, "Please get tested", 8).unwrap();
    assert_eq!(view.description, "Apotheke am Markt");
    assert_eq!(
        (view.window_start, view.window_end, slots),
        (h0, h0 + 3600, 1)
    );

    // Nothing public moves before the boundary, even with the period job run.
    core.run_period().unwrap();
    assert!(warnings_listed(addr).is_empty());
    assert_eq!(get(addr, &format!("/v1/warnings/{ORIGIN}/1")).status, 404);

    let boundary = core.schedule().publication_of(NOW);
    next_period(&core, &clock);
    let listed = warnings_listed(addr);
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["created_at"], boundary);
    assert_eq!(listed[0]["warning_count"], 1);
    let r = get(addr, listed[0]["url"].as_str().unwrap());
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/x-protobuf"));
    let etag = r.header("etag").unwrap().to_owned();
    assert_eq!(
        etag,
        format!("\"{}\"", listed[0]["content_id"].as_str().unwrap())
    );
    let batch = SignedWarningBatch::decode(&r.body)
        .unwrap()
        .verify(&trust())
        .unwrap();
    assert_eq!((batch.sequence, batch.created_at), (1, boundary));
    assert_eq!(match_records(&visitor, &batch.warnings).len(), 1);
    assert!(match_records(&other_hour, &batch.warnings).is_empty());
    let again = http(
        addr,
        "GET",
        listed[0]["url"].as_str().unwrap(),
        &[("If-None-Match", &etag)],
        &[],
    );
    assert_eq!(again.status, 304);

    // The queue was emptied: the next boundary publishes nothing more.
    next_period(&core, &clock);
    assert_eq!(warnings_listed(addr).len(), 1);
    // The publication is in the transparency log, at the boundary, by content id.
    let day = u32::try_from(boundary / 86_400).unwrap();
    let content: [u8; 32] = hex::decode(listed[0]["content_id"].as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    assert_eq!(
        warning_entries(&core).0,
        vec![(1, day, 1, content, boundary)]
    );
    // The transparency page has its row, and nothing that names the venue.
    let page = get(addr, "/").text();
    let row = format!(
        "data-origin=\"{ORIGIN}\" data-sequence=\"1\" data-warnings=\"1\" data-created-at=\"{boundary}\" data-deleted-by=\"{}\"",
        boundary + 14 * 86_400
    );
    assert!(page.contains(&row), "{page}");
    assert!(!page.contains("Apotheke") && !page.contains("Marktplatz"));

    // Bad routes: typed 400 and 404.
    assert_eq!(get(addr, &format!("/v1/warnings/{ORIGIN}/x")).status, 400);
    assert_eq!(get(addr, &format!("/v1/warnings/{ORIGIN}/9")).status, 404);
    assert_eq!(
        get(addr, "/v1/warnings?origin=other.health").json()["warnings"],
        serde_json::json!([])
    );
    // The cursor: only what lies above it is listed.
    let above = |after: &str| {
        get(addr, &format!("/v1/warnings?origin={ORIGIN}&after={after}")).json()["warnings"]
            .as_array()
            .unwrap()
            .len()
    };
    assert_eq!((above("0"), above("1")), (1, 0));
    assert_eq!(
        get(addr, &format!("/v1/warnings?origin={ORIGIN}&after=x")).status,
        400
    );

    // A rogue's batch: signed by an untrusted key, not stored.
    let rogue = AuthorityKey {
        origin: ORIGIN.into(),
        key_id: 1,
        signing_key: traceless_protocol::ed25519_dalek::SigningKey::from_bytes(&[9; 32]),
    };
    let forged = WarningBatch {
        origin: ORIGIN.into(),
        sequence: 5,
        created_at: clock.now(),
        warnings: batch.warnings.clone(),
    };
    let bytes = forged.sign(&rogue).unwrap().encode();
    assert!(matches!(
        core.ingest_warnings(&bytes),
        Err(WarningIngestError::Invalid(VenueError::Signature(_)))
    ));
    // Unsigned (signature cut off).
    let mut unsigned = forged.sign(&authority()).unwrap();
    unsigned.signature.clear();
    assert!(matches!(
        core.ingest_warnings(&unsigned.encode()),
        Err(WarningIngestError::Invalid(VenueError::Signature(_)))
    ));
    // Trusted but from the future, or already past retention.
    let future = WarningBatch {
        created_at: clock.now() + 86_400,
        ..forged.clone()
    };
    assert!(matches!(
        core.ingest_warnings(&future.sign(&authority()).unwrap().encode()),
        Err(WarningIngestError::Future { .. })
    ));
    let old = WarningBatch {
        created_at: clock.now() - 15 * 86_400,
        ..forged.clone()
    };
    assert!(matches!(
        core.ingest_warnings(&old.sign(&authority()).unwrap().encode()),
        Err(WarningIngestError::Expired { .. })
    ));
    assert!(matches!(
        core.ingest_warnings(b"\x0a\x01"),
        Err(WarningIngestError::Invalid(_))
    ));
    assert_eq!(warnings_listed(addr).len(), 1, "nothing refused was stored");
    assert_eq!(
        warning_entries(&core).0.len(),
        1,
        "nothing refused was logged"
    );
    // A valid one from a peer is stored once.
    let good = forged.sign(&authority()).unwrap().encode();
    assert_eq!(core.ingest_warnings(&good).unwrap().0, WarningPut::New);
    assert_eq!(
        core.ingest_warnings(&good).unwrap().0,
        WarningPut::Duplicate
    );
    let logged = warning_entries(&core).0;
    assert_eq!(logged.len(), 2, "a duplicate is not logged again");
    assert_eq!((logged[1].0, logged[1].4), (5, forged.created_at));

    // Retention: 14 days after the boundary, both are gone, files and all.
    clock.set(boundary + 14 * 86_400 - 1);
    core.run_retention().unwrap();
    next_period(&core, &clock);
    assert_eq!(warnings_listed(addr).len(), 2);
    assert!(warning_entries(&core).1.is_empty(), "nothing deleted yet");
    clock.set(clock.now() + 14 * 86_400);
    core.run_retention().unwrap();
    next_period(&core, &clock);
    assert!(warnings_listed(addr).is_empty());
    assert!(get(addr, "/").text().contains("id=\"no-warnings\""));
    // The deletion is in the signed record and the log, one range per run of
    // sequences and day, of kind `warnings`.
    let forged_day = u32::try_from(forged.created_at / 86_400).unwrap();
    let mut ranges = warning_entries(&core).1;
    ranges.sort_unstable();
    let mut expected = vec![(1, 1, 1, day), (5, 5, 1, forged_day)];
    expected.sort_unstable();
    assert_eq!(ranges, expected);
    // Run again: nothing more to delete, nothing logged twice.
    core.run_retention().unwrap();
    assert_eq!(warning_entries(&core).1.len(), 2);
    let left: Vec<_> = files_under(&dir.path().join("warnings"))
        .into_iter()
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("w-"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    node.shutdown().await;
}

/// A pre-trace for another gateway's key, or for a window not yet ended, is
/// refused with its kind and queues nothing.
/// Publications at one boundary from several threads at once (the period job
/// and direct callers, as the simulator's) publish each queued trace once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_publications_publish_each_trace_once() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(NOW);
    let node = start_node(gateway_config(dir.path()), &clock).await;
    let core = node.core.clone();
    let seal = traceless_node::keys::gateway_seal_key(dir.path()).unwrap();
    let h0 = (NOW / 3600 - 2) * 3600;
    for name in ["Apotheke am Markt", "Bäckerei Sonnenschein", "Hoftor Nord"] {
        let venue = create_venue(
            &VenueDescription::new(name, "Marktplatz 3", 3, 15, 90),
            &seal.public_bytes(),
        )
        .unwrap();
        let pre = venue.trace_secret.pre_trace(h0, h0 + 3600, NOW).unwrap();
        core.trace_venue(&pre, "Please get tested", 8).unwrap();
    }
    let boundary = core.schedule().publication_of(NOW);
    let published: Vec<usize> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8)
            .map(|_| scope.spawn(|| core.publish_warnings(boundary).unwrap()))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap().iter().map(|m| m.warnings).sum())
            .collect()
    });
    assert_eq!(published.iter().sum::<usize>(), 3, "{published:?}");
    let stored = core.warning_files().list(None, 0).unwrap();
    assert_eq!(
        stored.iter().map(|m| m.warnings).sum::<usize>(),
        3,
        "{stored:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trace_the_gateway_cannot_complete_queues_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(NOW);
    let node = start_node(gateway_config(dir.path()), &clock).await;
    let core = node.core.clone();
    let other = traceless_protocol::GatewaySealKey::generate();
    let venue = create_venue(
        &VenueDescription::new("Kiosk", "Ring 1", 0, 15, 90),
        &other.public_bytes(),
    )
    .unwrap();
    let h0 = (NOW / 3600 - 2) * 3600;
    let pre = venue.trace_secret.pre_trace(h0, h0 + 3600, NOW).unwrap();
    assert!(matches!(
        core.trace_venue(&pre, "x", 5),
        Err(traceless_node::core::warnings::TraceError::Venue(_))
    ));
    next_period(&core, &clock);
    assert!(warnings_listed(node.http_addr).is_empty());
    node.shutdown().await;
}

/// Over real libp2p: a gateway's warning batch, published at its boundary,
/// reaches a relay by gossip and is served there byte for byte; a rogue's
/// forged batch on the warning topic is rejected (its sender penalised), not
/// stored and not forwarded.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn warnings_reach_a_relay_by_gossip_and_forged_ones_do_not() {
    use libp2p::gossipsub::IdentTopic;
    use std::time::Duration;
    use traceless_node::federation::behaviour::WARNING_TOPIC;

    let clock = ManualClock::new(NOW);
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let gateway = start_node(gateway_config(d1.path()), &clock).await;
    let relay = start_relay(d2.path(), &clock, &gateway.p2p_addrs, 1).await;
    assert!(wait_for_peers(&relay, 1).await);
    let seal = traceless_node::keys::gateway_seal_key(d1.path()).unwrap();
    let venue = create_venue(
        &VenueDescription::new("Café Nord", "Nordstraße 5", 9, 30, 120),
        &seal.public_bytes(),
    )
    .unwrap();
    let h0 = (NOW / 3600 - 2) * 3600;
    let visitor = seal_visit(&venue.entry, h0 + 60, h0 + 3000);
    let pre = venue.trace_secret.pre_trace(h0, h0 + 3600, NOW).unwrap();
    gateway
        .core
        .trace_venue(&pre, "Please get tested", 6)
        .unwrap();

    // Gossipsub needs a mesh before a publish reaches the relay.
    let meshed = wait_until(Duration::from_secs(20), || {
        gateway.core.metrics.mesh_peers(WARNING_TOPIC) >= 1
            && relay.core.metrics.mesh_peers(WARNING_TOPIC) >= 1
    })
    .await;
    assert!(meshed, "no gossipsub mesh on the warning topic");
    next_period(&gateway.core, &clock);
    let on_gateway = get(gateway.http_addr, &format!("/v1/warnings/{ORIGIN}/1")).body;
    // Stored, then logged: wait for both (the file is written first).
    let arrived = wait_until(Duration::from_secs(20), || {
        relay.core.warning_files().get(ORIGIN, 1).unwrap().is_some()
            && !warning_entries(&relay.core).0.is_empty()
    })
    .await;
    assert!(
        arrived,
        "the warning batch did not reach the relay's store and log"
    );
    // The relay logs what it stored, at the batch's own `createdAt`.
    let on_relay = warning_entries(&relay.core).0;
    assert_eq!(on_relay.len(), 1);
    assert_eq!(on_relay, warning_entries(&gateway.core).0);
    // Served by the relay from its boundary on, the same bytes.
    next_period(&relay.core, &clock);
    let r = get(relay.http_addr, &format!("/v1/warnings/{ORIGIN}/1"));
    assert_eq!(r.status, 200);
    assert_eq!(r.body, on_gateway);
    let batch = SignedWarningBatch::decode(&r.body)
        .unwrap()
        .verify(&trust())
        .unwrap();
    assert_eq!(match_records(&visitor, &batch.warnings).len(), 1);

    // A rogue gossips a batch signed by an untrusted key.
    let mut evil = attacker(&relay.p2p_addrs[0], WARNING_TOPIC).await;
    let evil_id = *evil.local_peer_id();
    let rogue = AuthorityKey::generate(ORIGIN, 2);
    let forged = WarningBatch {
        origin: ORIGIN.into(),
        sequence: 7,
        created_at: clock.now(),
        warnings: batch.warnings.clone(),
    }
    .sign(&rogue)
    .unwrap()
    .encode();
    let before = relay.core.metrics.gossip_rejected.get();
    evil.behaviour_mut()
        .publish(IdentTopic::new(WARNING_TOPIC), forged)
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while relay.core.metrics.gossip_rejected.get() == before
        && tokio::time::Instant::now() < deadline
    {
        pump(&mut evil, Duration::from_millis(100)).await;
    }
    assert_eq!(relay.core.metrics.gossip_rejected.get(), before + 1);
    assert!(relay.core.warning_files().get(ORIGIN, 7).unwrap().is_none());
    assert!(gateway
        .core
        .warning_files()
        .get(ORIGIN, 7)
        .unwrap()
        .is_none());
    assert!(relay.peer_score(evil_id).await.unwrap_or(0.0) < 0.0);
    relay.shutdown().await;
    gateway.shutdown().await;
}

/// Over real libp2p: a relay that was not there when the gateway gossiped its
/// warning batch fetches it by catch-up (by origin and warning sequence), byte
/// for byte, and logs it; a batch queued but not yet published is not offered.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_relay_started_after_the_gossip_catches_up_on_warnings() {
    use std::time::Duration;

    let clock = ManualClock::new(NOW);
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let gateway = start_node(gateway_config(d1.path()), &clock).await;
    let seal = traceless_node::keys::gateway_seal_key(d1.path()).unwrap();
    let venue = create_venue(
        &VenueDescription::new("Bäckerei Süd", "Südring 2", 9, 30, 120),
        &seal.public_bytes(),
    )
    .unwrap();
    let h0 = (NOW / 3600 - 2) * 3600;
    let pre = venue.trace_secret.pre_trace(h0, h0 + 3600, NOW).unwrap();
    gateway
        .core
        .trace_venue(&pre, "Please get tested", 5)
        .unwrap();
    next_period(&gateway.core, &clock);
    let published = get(gateway.http_addr, &format!("/v1/warnings/{ORIGIN}/1")).body;
    assert!(!published.is_empty());
    // A second trace, queued and not yet at its boundary.
    let pre = venue
        .trace_secret
        .pre_trace(h0 - 3600, h0, clock.now())
        .unwrap();
    gateway
        .core
        .trace_venue(&pre, "Please get tested", 5)
        .unwrap();

    let relay = start_relay(d2.path(), &clock, &gateway.p2p_addrs, 1).await;
    assert!(wait_for_peers(&relay, 1).await);
    // Stored, then logged: wait for both (the file is written first).
    let arrived = wait_until(Duration::from_secs(20), || {
        relay.core.warning_files().get(ORIGIN, 1).unwrap().is_some()
            && !warning_entries(&relay.core).0.is_empty()
    })
    .await;
    assert!(arrived, "catch-up did not bring and log the warning batch");
    assert_eq!(
        relay.core.warning_files().get(ORIGIN, 1).unwrap().unwrap(),
        published
    );
    assert_eq!(warning_entries(&relay.core).0.len(), 1);
    // Another round (catch-up runs every second here) brings nothing unpublished.
    let rounds = relay.core.metrics.catchup_rounds.get();
    let more = wait_until(Duration::from_secs(10), || {
        relay.core.metrics.catchup_rounds.get() >= rounds + 8
    })
    .await;
    assert!(more, "catch-up rounds stopped");
    assert_eq!(relay.core.warning_files().list(None, 0).unwrap().len(), 1);
    relay.shutdown().await;

    // A batch the relay stored and was killed before logging (written into its
    // data dir while it is down): logged at the next start, at its `createdAt`,
    // before the node serves anything; catch-up then finds it held.
    next_period(&gateway.core, &clock);
    let second = get(gateway.http_addr, &format!("/v1/warnings/{ORIGIN}/2")).body;
    let meta = traceless_node::storage::warnings::read_meta(&second).unwrap();
    let files = traceless_node::storage::warnings::WarningFiles::at(d2.path());
    assert_eq!(files.put(&meta, &second).unwrap(), WarningPut::New);
    let relay = start_relay(d2.path(), &clock, &gateway.p2p_addrs, 1).await;
    let logged = warning_entries(&relay.core).0;
    assert_eq!(logged.len(), 2, "{logged:?}");
    assert_eq!((logged[1].0, logged[1].4), (2, meta.created_at));
    relay.shutdown().await;
    gateway.shutdown().await;
}

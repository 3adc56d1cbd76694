//! The demo scenario in the test suite: it runs against real nodes over loopback,
//! finds truly close contacts, notifies nobody when nobody is infected, gives the
//! same results for the same seed, and the contacts shortcut used at scale gives
//! the same notifications as running an SDK on every phone. Every upload, real
//! or dummy, goes sealed through a relay, never straight to the gateway. Venue
//! check-ins warn exactly the phones that overlapped a traced stay (and some in
//! its aerosol window), never one at the venue at another time, and no node,
//! network observer or seized phone holds a byte run that names a venue, while
//! the scanners find one planted in clear.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::{Duration, Instant};

use traceless_protocol::SEALED_UPLOAD_LEN;
use traceless_sim::nodes::Nodes;
use traceless_sim::scenario::{Network, Publication, SdkPhones};
use traceless_sim::{run, Report, RunOptions, Scenario};

/// The checked-in demo scenario, shrunk so the unoptimised test build stays fast.
fn small_demo() -> Scenario {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/demo.toml");
    let mut s = Scenario::load(&path).unwrap();
    s.population = 260;
    s.days = 6;
    s.epidemic.initial_infected = 20;
    s.epidemic.test_adherence = 1.0;
    s.epidemic.upload_adherence = 1.0;
    s.epidemic.test_delay_days = [1, 1];
    s.app.adoption = 0.8;
    s
}

fn go(s: &Scenario) -> Report {
    let tmp = tempfile::tempdir().unwrap();
    run(s, &RunOptions::default(), tmp.path()).unwrap()
}

/// Every upload went sealed through a relay, as the nodes' own metrics count
/// them: the gateway took none from a phone, and the relays forwarded each real
/// and dummy upload, which the gateway accepted; each uploader bought one token.
fn assert_uploads_went_through_relays(r: &Report) {
    let t = &r.network.upload_traffic;
    let (uploads, c) = (r.outcome.uploads as u64, &r.cost);
    assert_eq!(t.gateway_direct, 0, "an upload bypassed the relays: {t:?}");
    assert_eq!(r.network.uploads_refused, 0, "{}", r.headline());
    assert_eq!(c.dummy_uploads_refused, 0, "{}", r.headline());
    assert!(
        c.dummy_uploads > 0,
        "cover traffic was sent: {}",
        r.headline()
    );
    assert_eq!(t.relays_forwarded, uploads + c.dummy_uploads, "{t:?}");
    assert_eq!(t.gateway_relayed_accepted, t.relays_forwarded, "{t:?}");
    assert_eq!(t.gateway_relayed_refused, 0, "{t:?}");
    assert_eq!(t.tokens_issued, uploads, "one token per uploader: {t:?}");
    assert_eq!(
        (c.upload_bytes, c.upload_sizes_seen),
        (SEALED_UPLOAD_LEN, 1)
    );
}

/// Everything but the time, CPU, memory and disk-size figures, which the
/// machine decides; the rest follows from the seed.
fn deterministic(r: &Report) -> String {
    let mut r = r.clone();
    r.run = Default::default();
    // Bytes on the wire: gzip's length varies with the random bytes it carries.
    r.cost.download_bytes_per_phone_per_day = 0.0;
    r.cost.download_over_floor = 0.0;
    for d in &mut r.daily {
        d.download_bytes_per_phone = 0.0;
    }
    r.cost.matching_ms_per_phone_per_day = 0.0;
    r.network.propagation_ms_p50 = 0.0;
    r.network.propagation_ms_p99 = 0.0;
    for n in &mut r.network.storage {
        n.disk_bytes = 0;
    }
    r.checkins.matching_ms_per_phone_per_day = 0.0;
    for p in &mut r.checkins.privacy.parties {
        p.scanned_bytes = 0;
    }
    serde_json::to_string(&r).unwrap()
}

#[test]
fn demo_notifies_close_contacts_reproducibly_and_the_shortcut_is_exact() {
    let s = small_demo();
    let all = go(&s);
    let o = &all.outcome;
    assert!(o.uploads >= 3, "{}", all.headline());
    assert!(o.truly_close >= 5, "{}", all.headline());
    assert!(o.recall >= 0.6, "recall too low: {}", all.headline());
    assert!(o.precision >= 0.2, "precision too low: {}", all.headline());
    assert_eq!(all.cost.sync_errors, 0);
    assert!(all.network.batches >= 3 && all.cost.download_bytes_per_phone_per_day > 0.0);
    // The floor counts the published keys: never more than the bytes that
    // carried them, and exactly 16 B per key the network stored.
    let c = &all.cost;
    assert!(
        c.payload_floor_bytes_per_phone_per_day > 0.0,
        "{}",
        all.headline()
    );
    assert!(c.download_over_floor >= 1.0, "{}", all.headline());
    let floor_days: f64 = all.daily.iter().map(|d| d.payload_floor_bytes).sum();
    assert_eq!(floor_days, 16.0 * all.network.keys as f64);
    assert_eq!(all.sdk_phones, all.app_users);
    assert_uploads_went_through_relays(&all);
    // Rescoring the stored windows segment by segment under the default
    // parameters gives exactly the phones' own notifications.
    let d = all.calibration.default.as_ref().unwrap();
    assert_eq!(
        (d.figures.precision, d.figures.recall),
        (o.precision, o.recall),
        "{}",
        all.headline()
    );
    assert!(!all.calibration.frontier.is_empty());

    // The report is written with its plots.
    let out = tempfile::tempdir().unwrap();
    let plots = all.write(out.path()).unwrap();
    assert!(plots.contains(&"recall.svg".to_owned()));
    let svg = std::fs::read_to_string(out.path().join("recall.svg")).unwrap();
    assert!(svg.starts_with("<svg") || svg.contains("<svg"));
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.path().join("report.json")).unwrap()).unwrap();
    assert_eq!(json["outcome"]["uploads"], o.uploads);

    // Only phones that heard an uploader run an SDK: same notifications.
    let a = go(&contacts(&s));
    assert!(a.sdk_phones < all.sdk_phones);
    assert_eq!(a.outcome.notified, o.notified);
    assert_eq!(a.outcome.true_positives, o.true_positives);
    assert_eq!(a.outcome.sample_windows_outside_contacts, 0);
}

/// `s` with an SDK only on phones that heard an uploader and a small sample.
fn contacts(s: &Scenario) -> Scenario {
    let mut c = s.clone();
    c.app.sdk_phones = SdkPhones::Contacts;
    c.app.full_sync_sample = 10;
    c
}

/// Two runs of one seed download the same bodies in the same batches, send
/// the same dummies, and agree on every other figure but time, CPU, memory and
/// disk size. On the wire they differ by a few bytes, no more: batch lists
/// travel gzip-encoded, and the compressed length of the keys and signatures,
/// random bytes that differ run to run, varies by chance matches.
#[test]
fn one_seed_gives_the_same_downloads_batches_and_figures() {
    let s = contacts(&small_demo());
    let (a, b) = (go(&s), go(&s));
    assert!(a.network.batches >= 3, "{}", a.headline());
    let per_day = |r: &Report| -> Vec<(f64, u64)> {
        r.daily
            .iter()
            .map(|d| (d.download_body_bytes_per_phone, d.batches))
            .collect()
    };
    assert_eq!(
        per_day(&a),
        per_day(&b),
        "downloaded bodies and batches by day"
    );
    let bodies: f64 = a
        .daily
        .iter()
        .map(|d| d.download_body_bytes_per_phone)
        .sum();
    assert!(bodies > 0.0, "no body downloaded: {}", a.headline());
    for (x, y) in a.daily.iter().zip(&b.daily) {
        let (x, y) = (x.download_bytes_per_phone, y.download_bytes_per_phone);
        assert!((x - y).abs() <= 0.01 * x.max(y), "wire bytes {x} vs {y}");
    }
    assert_eq!(a.network.batches, b.network.batches);
    assert!(a.cost.dummy_uploads > 0, "{}", a.headline());
    assert_eq!(a.cost.dummy_uploads, b.cost.dummy_uploads, "dummies");
    assert_eq!(
        deterministic(&a),
        deterministic(&b),
        "same seed, same results"
    );
}

/// The gateway's default padding (`[network] min_keys`, SPEC.md §6.4) changes
/// what phones download, not whom they notify: padding keys are fresh random
/// TEKs that match nobody. Phones download them too, so the floor grows by
/// them, and the period form's overhead is spread over every period's `k`
/// keys at least.
#[test]
fn padding_adds_keys_that_notify_nobody_and_cut_the_overhead() {
    let plain = contacts(&small_demo());
    let padded = Scenario {
        network: Network {
            min_keys: 140,
            ..plain.network.clone()
        },
        ..plain.clone()
    };
    let (a, b) = (go(&plain), go(&padded));
    assert!(a.outcome.uploads >= 3, "{}", a.headline());
    assert_eq!(
        (a.outcome.notified, a.outcome.true_positives),
        (b.outcome.notified, b.outcome.true_positives),
        "padding notified somebody: {}{}",
        a.headline(),
        b.headline()
    );
    // Keys downloaded (the floor counts 16 B each): padding's rolling starts
    // are drawn from the real keys' ages, so some expire, and are deleted,
    // before the run ends; the network's final count is no measure of them.
    let downloaded =
        |r: &Report| -> f64 { r.daily.iter().map(|d| d.payload_floor_bytes).sum::<f64>() / 16.0 };
    assert!(
        downloaded(&b) >= downloaded(&a) + 140.0,
        "{} vs {} keys downloaded",
        downloaded(&b),
        downloaded(&a)
    );
    // One signature a period batch, whatever it carries: padded batches are
    // fuller, so nearer the floor.
    assert!(
        b.cost.download_over_floor < a.cost.download_over_floor && b.cost.download_over_floor > 1.0,
        "{} vs {}",
        b.cost.download_over_floor,
        a.cost.download_over_floor
    );
}

/// Every node reads the one simulated clock, so a move of it takes effect at
/// once for publication, release and deletion even after the nodes have
/// sampled each other's clocks (SPEC.md §2.1): those samples age on wall
/// time, and would hold a move of hours back until the next one arrived.
#[test]
fn nodes_act_on_the_simulated_clock_as_soon_as_it_moves() {
    let tmp = tempfile::tempdir().unwrap();
    let t0 = 20_000 * 86_400;
    let nodes = Nodes::start(tmp.path(), 2, t0, 1, 86_400).unwrap();
    let all: Vec<_> = std::iter::once(&nodes.gateway)
        .chain(&nodes.relays)
        .collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !all.iter().all(|n| n.core.clock_status().peers() >= 2) {
        assert!(Instant::now() < deadline, "no peer clock samples in 30 s");
        std::thread::sleep(Duration::from_millis(20));
    }
    let later = t0 + 3 * 3600;
    nodes.clock.set(later);
    for n in &all {
        assert_eq!(
            n.core.safe_now(),
            Some(later),
            "{:?}",
            n.core.clock_status()
        );
    }
    nodes.shutdown();
}

#[test]
fn nobody_infected_nobody_notified() {
    let mut s = small_demo();
    s.epidemic.initial_infected = 0;
    let r = go(&s);
    assert_eq!(r.outcome.infected, 0);
    assert_eq!(r.outcome.uploads, 0);
    assert_eq!(r.outcome.notified, 0);
    assert_eq!(r.network.batches, 0);
    assert!(r.cost.sightings > 0, "phones still hear each other");
}

/// The key-form vs filter-form comparison on the small demo: the filter form
/// notifies the close contacts too, finds no window without a contact (no Bloom
/// false alarm), costs more download, and links no uploader's path that the key
/// form did not.
#[test]
fn filter_form_notifies_contacts_and_links_no_paths() {
    let mut s = small_demo();
    s.privacy.sniffers = 40;
    s.app.sdk_phones = SdkPhones::Contacts;
    s.app.full_sync_sample = 30;
    let keys = go(&s);
    s.app.publication = Publication::Filter;
    let filter = go(&s);
    let (k, f) = (&keys.outcome, &filter.outcome);
    assert_eq!(filter.cost.sync_errors, 0, "{}", filter.headline());
    assert_uploads_went_through_relays(&filter);
    assert_eq!(f.uploads, k.uploads, "the same uploads in both forms");
    assert!(
        filter.network.batches > 0,
        "filter revisions were published"
    );
    assert!(
        f.recall >= 0.6,
        "filter-form recall too low: {}",
        filter.headline()
    );
    assert_eq!(f.sample_windows_outside_contacts, 0);
    assert!(
        filter.cost.download_bytes_per_phone_per_day > keys.cost.download_bytes_per_phone_per_day,
        "filters cost more bytes than keys"
    );
    assert!(
        filter.cost.download_over_floor >= 1.0
            && filter.cost.payload_floor_bytes_per_phone_per_day > 0.0,
        "{}",
        filter.headline()
    );
    assert_eq!(filter.privacy.form, "filter");
    assert!(
        keys.privacy.linked > 0,
        "the key form links someone: {}",
        keys.headline()
    );
    assert!(
        filter.privacy.linked < keys.privacy.linked,
        "{}",
        filter.headline()
    );
}

/// Venue check-ins on the small demo: the authority traces the cases' own
/// check-ins through the gateway, relays carry the warnings, and phones match
/// them. Every phone that checked in and overlapped a traced stay of someone
/// else gets a venue row (recall 1: case stays are 20 minutes or more, so the
/// presence rule drops none); every other warned phone was in a stay's aerosol
/// window; no phone at the same venue and day at another time is warned. The
/// paper register would hold every visit; no party under Traceless holds a
/// byte run naming a venue, while each scanner finds a payload planted in clear.
#[test]
fn venue_check_ins_warn_the_overlapping_visitors_only_and_no_party_holds_a_visit() {
    let s = small_demo();
    assert!(s.app.checkin_adoption > 0.0, "the demo scenario checks in");
    let r = go(&s);
    let c = &r.checkins;
    let head = r.headline();
    assert!(c.checkin_phones > 0 && c.check_ins > 0, "{head}");
    assert_eq!(c.check_in_errors, 0, "{head}");
    assert!(c.traced_stays > 0, "cases had checked in: {head}");
    assert_eq!(c.trace_errors, 0, "{head}");
    assert!(c.traced_hours >= c.traced_stays as u64, "{head}");
    assert!(c.warning_batches > 0, "{head}");
    assert_eq!(
        (c.warning_sync_errors, c.propagation_timeouts),
        (0, 0),
        "{head}"
    );
    assert!(c.warning_batches_synced > 0, "{head}");
    // Recall against the ground truth, exactly.
    assert!(c.exposed_checked_in > 0, "{head}");
    assert_eq!(c.true_positives, c.exposed_checked_in, "{head}");
    assert_eq!(c.recall, 1.0, "{head}");
    assert!(c.exposed_all_people >= c.exposed_checked_in, "{head}");
    assert!(c.population_coverage > 0.0 && c.population_coverage <= 1.0);
    // Every warning explained: overlap, the rule's aerosol window, or a
    // case's own traced stay (the SDK does not know which visits were reported).
    assert_eq!(
        c.warned,
        c.true_positives + c.aerosol_window_warned + c.cases_warned_of_own_stay,
        "{head}"
    );
    assert!(c.cases_warned_of_own_stay <= c.traced_stays);
    assert!(c.aerosol_window_warned <= c.aerosol_window_only);
    // Same venue, other time: there are such phones, and none is warned.
    assert!(c.same_venue_other_time > 0, "{head}");
    assert_eq!(c.false_alarms_same_venue_other_time, 0, "{head}");
    assert_eq!(c.false_alarms_elsewhere, 0, "{head}");
    let last = r.daily.last().unwrap();
    assert_eq!(last.venue_true_positives as usize, c.true_positives);
    assert_eq!(last.venue_warned as usize, c.warned);
    // Bytes: every phone lists warnings; batches came over HTTP.
    assert!(c.warning_bytes_per_phone_per_day > 0.0, "{head}");
    assert!(
        c.warning_list_bytes_per_phone_per_day > 0.0
            && c.warning_list_bytes_per_phone_per_day < c.warning_bytes_per_phone_per_day,
        "{head}"
    );
    let days: f64 = r.daily.iter().map(|d| d.warning_bytes_per_phone).sum();
    assert!((days / f64::from(r.days) - c.warning_bytes_per_phone_per_day).abs() < 1e-6);

    // Privacy: the register holds every visit; nobody under Traceless a single one.
    let p = &c.privacy;
    assert!(p.paper_register_records > 0 && p.paper_register_people > 0);
    assert_eq!(
        p.paper_register_records,
        p.paper_register_app_user_records + p.paper_register_other_records
    );
    assert!(p.paper_register_records >= c.check_ins);
    let parties: Vec<&str> = p.parties.iter().map(|x| x.party.as_str()).collect();
    for want in [
        "gateway",
        "relay 1",
        "relay 2",
        "network observer",
        "seized phone (files)",
    ] {
        let x = p.parties.iter().find(|x| x.party == want);
        let x = x.unwrap_or_else(|| panic!("{want} missing from {parties:?}"));
        assert!(x.scanned_bytes > 0, "{want} scanned nothing");
        assert_eq!(
            x.control_found,
            Some(true),
            "{want}: the control was missed"
        );
    }
    for x in &p.parties {
        assert_eq!(x.records_naming_a_visit, 0, "{}: {x:?}", x.party);
    }

    // The report shows it.
    let out = tempfile::tempdir().unwrap();
    let plots = r.write(out.path()).unwrap();
    assert!(plots.contains(&"venue-recall.svg".to_owned()));
    let html = std::fs::read_to_string(out.path().join("report.html")).unwrap();
    assert!(html.contains("Venue check-ins") && html.contains("paper register"));
}

/// Without check-in adoption nothing of it runs: no venue code, no trace, no
/// warning download, and the report's check-in figures stay empty.
#[test]
fn no_check_in_adoption_no_codes_traces_or_warning_bytes() {
    let mut s = contacts(&small_demo());
    s.app.checkin_adoption = 0.0;
    let r = go(&s);
    assert_eq!(r.checkins, Default::default());
    assert!(r.daily.iter().all(|d| d.warning_bytes_per_phone == 0.0));
    assert!(r.outcome.uploads >= 3, "{}", r.headline());
}

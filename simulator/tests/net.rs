//! `traceless-sim net` with real node processes: in network namespaces when
//! this runs as root (CI does), else on loopback with the same checks (the
//! run says "namespaces unavailable: loopback fallback").
//!
//! Smoke sizes; the full runs are `traceless-sim net run scenarios/net-*.toml`
//! and `--ignored` here.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use traceless_sim::net::netns::Isolation;
use traceless_sim::net::scenario::Fault;
use traceless_sim::net::{run, NetOptions, NetReport, NetScenario, NodeProgram};

/// One cluster at a time: on two cores, parallel clusters would measure each other.
static SERIAL: Mutex<()> = Mutex::new(());

const SIM: &str = env!("CARGO_BIN_EXE_traceless-sim");

fn opts() -> NetOptions {
    NetOptions {
        force_loopback: false,
        program: NodeProgram::find(Path::new(SIM)),
    }
}

fn scenario(name: &str) -> NetScenario {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios")
        .join(name);
    NetScenario::load(&path).unwrap()
}

fn run_it(s: &NetScenario, o: &NetOptions) -> NetReport {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = tempfile::tempdir().unwrap();
    let r = run(s, o, tmp.path()).unwrap();
    // Torn down: the run's namespaces (and veths) are gone.
    assert_eq!(our_namespaces(std::process::id()), Vec::<String>::new());
    if r.isolation == Isolation::Loopback {
        eprintln!(
            "namespaces unavailable: loopback fallback ({})",
            r.fallback_reason.as_deref().unwrap_or("?")
        );
    }
    eprintln!("{}", r.headline());
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join(&s.name);
    r.write(&out).unwrap();
    r
}

/// Every upload (one key each) was published and reached every node.
fn assert_converged(r: &NetReport, uploads: u64) {
    assert_eq!(r.upload_errors, Vec::<String>::new());
    assert_eq!(r.published_keys, uploads);
    let published = r.published;
    assert!(r.converged, "{}", r.headline());
    assert!(r.identical_everywhere, "{}", r.headline());
    for n in &r.per_node {
        assert_eq!((n.missing, n.duplicates), (0, 0), "node {n:?}");
        assert_eq!(n.batches, published, "node {n:?}");
    }
}

fn our_namespaces(pid: u32) -> Vec<String> {
    let out = Command::new("ip").args(["netns", "list"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(&format!("tlsim{pid}r")))
        .map(str::to_owned)
        .collect()
}

#[test]
fn a_partition_2_3_with_uploads_on_both_sides_converges_after_heal() {
    let s = scenario("net-partition.toml");
    let r = run_it(&s, &opts());
    assert_converged(&r, 24);
    // The partition held: no node listed the other side's batches before the heal.
    if r.isolation == Isolation::Namespaces {
        assert!(
            r.per_node.iter().all(|n| n.partition_leaks == 0),
            "{:?}",
            r.per_node
        );
        // Both sides' batches crossed after the heal: catch-up or gossip did it.
        assert!(r.catch_up_after_heal_s.is_some());
    }
}

#[test]
fn churn_of_30_percent_of_relays_during_publication_loses_nothing() {
    let mut s = scenario("net-churn.toml");
    s.nodes = 6;
    s.uploads.per_gateway = 10;
    let r = run_it(&s, &opts());
    assert!(
        r.events.iter().any(|e| e.contains("churn: killed")),
        "{:?}",
        r.events
    );
    assert_converged(&r, 10);
}

#[test]
fn slow_lossy_inter_region_links_delay_the_far_region() {
    let mut s = scenario("net-regions.toml");
    s.nodes = 6;
    s.regions = 2;
    s.uploads.per_gateway = 6;
    s.uploads.interval_ms = 500;
    let r = run_it(&s, &opts());
    assert_converged(&r, 6);
    // The emulator is in the path: the far region (nodes 3..6) sees each batch
    // no sooner than one inter-region latency (100 ms ± 10) after the gateway.
    let far: Vec<_> = r.per_node.iter().filter(|n| n.region == 1).collect();
    assert!(!far.is_empty());
    for n in far {
        assert!(n.propagation_p50_ms >= 90.0, "node {n:?}");
    }
}

#[test]
fn loopback_fallback_runs_the_same_checks_and_says_so() {
    let mut s = scenario("net-partition.toml");
    s.faults.clear();
    s.uploads.per_gateway = 4;
    let o = NetOptions {
        force_loopback: true,
        ..opts()
    };
    let r = run_it(&s, &o);
    assert_eq!(r.isolation, Isolation::Loopback);
    assert!(
        r.headline().contains("namespaces unavailable"),
        "{}",
        r.headline()
    );
    assert_converged(&r, 8);
}

#[test]
fn a_killed_simulator_leaves_no_namespace_and_no_node_behind() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let out = tempfile::tempdir().unwrap();
    let scen = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/net-partition.toml");
    for signal in ["-TERM", "-KILL"] {
        let mut child = Command::new(SIM)
            .args(["net", "run"])
            .arg(&scen)
            .arg("--out")
            .arg(out.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let pid = child.id();
        // Wait (bounded) until the run has made its namespaces and started nodes.
        let deadline = Instant::now() + Duration::from_secs(30);
        let names = loop {
            let names = our_namespaces(pid);
            let nodes_up = names.len() == 5
                && names.iter().all(|n| {
                    let o = Command::new("ip")
                        .args(["netns", "pids", n])
                        .output()
                        .unwrap();
                    !o.stdout.is_empty()
                });
            if nodes_up || Instant::now() > deadline {
                break names;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        if names.is_empty() {
            // No namespaces here (not root): nothing to tear down.
            let _ = child.kill();
            let _ = child.wait();
            return;
        }
        let node_pids: Vec<String> = names
            .iter()
            .flat_map(|n| {
                let o = Command::new("ip")
                    .args(["netns", "pids", n])
                    .output()
                    .unwrap();
                String::from_utf8_lossy(&o.stdout)
                    .split_whitespace()
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
            })
            .collect();
        assert_eq!(node_pids.len(), 5, "{names:?}");
        Command::new("kill")
            .args([signal, &pid.to_string()])
            .status()
            .unwrap();
        let _ = child.wait();
        if signal == "-KILL" {
            // Nothing ran teardown: the nodes are still there until the next run sweeps.
            assert_eq!(our_namespaces(pid).len(), 5);
            traceless_sim::net::netns::sweep_stale();
        }
        assert_eq!(our_namespaces(pid), Vec::<String>::new(), "after {signal}");
        let deadline = Instant::now() + Duration::from_secs(10);
        while node_pids
            .iter()
            .any(|p| Path::new(&format!("/proc/{p}")).exists())
        {
            assert!(
                Instant::now() < deadline,
                "nodes {node_pids:?} survived {signal}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// The full regional run: 50 nodes, 200 ms RTT and 5 % loss between regions.
#[test]
#[ignore = "full size: minutes on two cores"]
fn full_regions_50_nodes() {
    let r = run_it(&scenario("net-regions.toml"), &opts());
    assert_converged(&r, 20);
}

/// Keeps the partition scenario's fault names in the scenario file honest.
#[test]
fn scenario_files_parse_and_validate() {
    for f in [
        "net-partition.toml",
        "net-churn.toml",
        "net-regions.toml",
        "net-flood.toml",
    ] {
        let s = scenario(f);
        assert!(s.links().len() >= s.nodes - 1, "{f}");
    }
    let s = scenario("net-partition.toml");
    assert!(matches!(s.faults[0], Fault::Partition { .. }));
}

#[test]
fn a_full_disk_refuses_uploads_with_503_keeps_reads_and_recovers_without_loss() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = tempfile::tempdir().unwrap();
    let Some(r) = traceless_sim::net::disk::run(&opts(), tmp.path(), 8 << 20).unwrap() else {
        eprintln!("disk full: cannot mount a tmpfs here (not root): skipped");
        return;
    };
    eprintln!("{r:?}");
    assert_eq!(r.accepted_before, 5);
    assert!(!r.refused_while_full.is_empty(), "{r:?}");
    assert!(
        r.refused_while_full
            .iter()
            .all(|&(status, _)| status == 503),
        "{r:?}"
    );
    assert!(r.reads_ok_while_full, "{r:?}");
    assert!(r.accepted_after_free > 0, "no recovery: {r:?}");
    assert_eq!(r.lost_after_kill9, 0, "{r:?}");
}

/// Skews of the gateway and one relay: ±5 min, ±3 h, ±2 days (libfaketime).
/// What must hold whatever the skew: the relay with the right clock never
/// serves a key before its embargo ends by the true time, and never loses a key
/// before its retention ends. What small skews must keep: everything flows,
/// no alarm. What large skews (±3 h, ±2 days) must do: the gateway raises the
/// clock alarm on `/metrics`, and (ahead) does not publish the embargoed key
/// early — its peers' clock holds it back (SPEC.md §2.1).
#[test]
fn clock_skew_small_is_tolerated_and_a_large_one_holds_back_and_raises_the_alarm() {
    if !Path::new(traceless_sim::net::cluster::FAKETIME_LIB).exists() {
        eprintln!("clock skew: libfaketime not installed (.ci/install-sim-net.sh): skipped");
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = tempfile::tempdir().unwrap();
    let skews = [300, -300, 3 * 3600, -3 * 3600, 2 * 86_400, -2 * 86_400];
    let outcomes = traceless_sim::net::skew::run(&opts(), tmp.path(), &skews).unwrap();
    let json = serde_json::to_string_pretty(&outcomes).unwrap();
    std::fs::write(
        Path::new(env!("CARGO_TARGET_TMPDIR")).join("net-skew.json"),
        &json,
    )
    .unwrap();
    eprintln!("{json}");
    for o in &outcomes {
        assert!(
            !o.embargoed_listed.0,
            "right-clock relay served early: {o:?}"
        );
        assert!(
            o.expiring_listed.0 || o.expiring_upload_status != 200,
            "lost: {o:?}"
        );
        assert!(
            !o.embargo_released_early_by_gateway,
            "gateway released early: {o:?}"
        );
        if o.skew_secs.abs() <= 300 {
            assert_eq!(o.visible_upload_status, 200, "{o:?}");
            assert_eq!(o.visible_listed, (true, true), "{o:?}");
            assert_eq!(o.expiring_listed, (true, true), "{o:?}");
            assert!(!o.gateway_clock_alarm, "{o:?}");
        } else {
            assert!(o.gateway_clock_alarm, "no alarm: {o:?}");
            assert_eq!(
                o.gateway_clock_offset_secs.signum(),
                (o.skew_secs as f64).signum(),
                "{o:?}"
            );
        }
    }
}

/// Sybils flood the relays with malformed batches (10,000/s in all) while the
/// gateway publishes: nothing forged is stored, the Sybils are graylisted after
/// their first messages (the nodes read only a handful of what was sent), and
/// every honest batch reaches every node. (The p99 ratio against the same
/// run's baseline is asserted by the ignored full run below.)
#[test]
fn a_sybil_flood_is_rejected_and_graylisted_while_honest_batches_flow() {
    let mut s = scenario("net-flood.toml");
    s.nodes = 5;
    s.uploads.per_gateway = 16;
    if let Fault::Flood {
        at_s,
        duration_s,
        sybils,
        ..
    } = &mut s.faults[0]
    {
        *at_s = 3.0;
        *duration_s = 4.0;
        *sybils = 4;
    }
    let r = run_it(&s, &opts());
    assert_converged(&r, 16);
    let f = r.flood.as_ref().unwrap();
    assert_eq!(f.connected, 4, "{f:?}");
    assert!(f.sent > 1000, "{f:?}");
    assert!(f.rejected_by_nodes >= 1, "{f:?}");
    assert!(f.rejected_by_nodes * 20 < f.sent, "not graylisted: {f:?}");
}

/// The full flood (`net-flood.toml`: 8 nodes, 7 Sybils, 10,000 malformed
/// messages/s for 7 s): honest propagation p99 during the flood stays within 2x
/// of the unflooded p99 measured before it in the same run (issue 19's bound; a
/// ratio of two figures of one run, so machine speed cancels out). Ignored: a
/// minute of CPU on both cores (`cargo test -p traceless-sim --test net --
/// --ignored --nocapture full_flood`).
#[test]
#[ignore]
fn full_flood_keeps_honest_p99_within_twice_the_same_runs_baseline() {
    let r = run_it(&scenario("net-flood.toml"), &opts());
    assert_converged(&r, scenario("net-flood.toml").uploads.per_gateway as u64);
    let f = r.flood.as_ref().unwrap();
    let ratio = f.flood_p99_ms / f.baseline_p99_ms;
    eprintln!(
        "flood p99 {:.0} ms / baseline p99 {:.0} ms = {ratio:.2} ({} sent)",
        f.flood_p99_ms, f.baseline_p99_ms, f.sent
    );
    assert!(f.baseline_p99_ms > 0.0, "{f:?}");
    assert!(ratio <= 2.0, "{f:?}");
}

/// A peer that advertises a thousand sequences and serves none is the only
/// peer of a cut-off node while the gateway publishes; after the heal the node
/// fetches every batch from its honest peers, within the catch-up request
/// timeout (30 s), though the withholder was asked first.
#[test]
fn a_withholding_peer_during_catch_up_does_not_stop_the_node_fetching_elsewhere() {
    let r = run_it(&scenario("net-withhold.toml"), &opts());
    assert_converged(&r, 8);
    let w = r.withholding.as_ref().unwrap();
    assert!(w.connected, "{w:?}");
    assert!(
        w.fetches >= 1,
        "control: the node asked the withholder: {w:?}"
    );
    assert_eq!(w.target_missing, 0);
    let after_heal = r.catch_up_after_heal_s.unwrap();
    assert!(after_heal < 30.0, "took {after_heal} s after the heal");
}

//! Runs a network scenario: start the cluster, post uploads to the gateways on
//! schedule, apply the fault timeline, watch every node's batch list, wait for
//! convergence, and gather the figures.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use traceless_protocol::{day_of_unix, day_start_interval, DiagnosisKey, Tek, Upload};

use super::cluster::{proc_usage, Cluster, ClusterPlan, NodeProgram};
use super::netns::{netem_available, Host};
use super::report::{FloodFigures, NetReport, NodeFigures, Sample, WithholdFigures};
use super::scenario::{Fault, NetScenario};
use super::NetError;
use crate::http;
use crate::report::quantile;

/// How to run.
#[derive(Clone, Debug)]
pub struct NetOptions {
    /// Use loopback even when namespaces would work.
    pub force_loopback: bool,
    /// The node program.
    pub program: NodeProgram,
}

/// (origin, sequence) of a batch.
type BatchId = (String, u64);

/// What the watchers saw: per node, each batch's first sighting and content id.
#[derive(Default)]
struct Seen {
    batches: BTreeMap<BatchId, (Instant, String)>,
    /// Keys in each listed batch.
    keys: BTreeMap<BatchId, u64>,
    /// A batch listed twice, or with two content ids.
    duplicates: u64,
}

pub(crate) fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The day of [`upload_body`]'s key at `now`: two days back, so that its
/// embargo (two hours after its validity ends) is over at any hour. A key of
/// yesterday would be held until 02:00 UTC.
pub(crate) fn visible_day(now: u64) -> u32 {
    day_of_unix(now).saturating_sub(2)
}

/// One upload of one fresh key of [`visible_day`] (published at the next
/// boundary, no embargo).
pub(crate) fn upload_body(code: &str) -> Vec<u8> {
    upload_of_key(code, day_start_interval(visible_day(now_unix())), 144)
}

/// One upload of one fresh key valid for `rolling_period` intervals from
/// `rolling_start`.
pub(crate) fn upload_of_key(code: &str, rolling_start: u32, rolling_period: u32) -> Vec<u8> {
    Upload {
        upload_code: code.as_bytes().to_vec(),
        keys: vec![fresh_key(rolling_start, rolling_period)],
        ..Default::default()
    }
    .encode_padded()
    .unwrap_or_default()
}

/// A key with a fresh random TEK, valid `rolling_period` intervals from
/// `rolling_start`.
fn fresh_key(rolling_start: u32, rolling_period: u32) -> DiagnosisKey {
    DiagnosisKey {
        tek: Tek::generate(),
        rolling_start,
        rolling_period,
        transmission_risk: 3,
        days_since_onset: 0,
    }
}

/// Polls `nodes`' batch lists until `stop`.
fn watch(
    addrs: Arc<Mutex<Vec<Option<SocketAddr>>>>,
    mine: Vec<usize>,
    origins: Vec<String>,
    seen: Arc<Vec<Mutex<Seen>>>,
    stop: Arc<AtomicBool>,
) {
    while !stop.load(Ordering::Relaxed) {
        for &i in &mine {
            let Some(addr) = addrs.lock().ok().and_then(|a| a[i]) else {
                continue;
            };
            for o in &origins {
                // The highest sequence with every sequence below it seen
                // (sequences start at 1): a batch that arrives out of order
                // is listed again until the gap fills.
                let after = seen[i]
                    .lock()
                    .map(|s| {
                        s.batches
                            .range((o.clone(), 1)..(o.clone(), u64::MAX))
                            .zip(1..)
                            .take_while(|(((_, seq), _), want)| seq == want)
                            .count() as u64
                    })
                    .unwrap_or(0);
                let path = format!("/v1/batches?origin={o}&after={after}&limit=1000");
                let Ok(r) = http::request(addr, "GET", &path, b"") else {
                    continue;
                };
                let Some(list) = r.try_json() else { continue };
                let t = Instant::now();
                let Ok(mut s) = seen[i].lock() else { continue };
                for b in list["batches"].as_array().into_iter().flatten() {
                    let (Some(seq), Some(cid)) = (b["sequence"].as_u64(), b["content_id"].as_str())
                    else {
                        continue;
                    };
                    match s.batches.get(&(o.clone(), seq)) {
                        Some((_, c)) if c != cid => s.duplicates += 1,
                        Some(_) => {}
                        None => {
                            s.batches.insert((o.clone(), seq), (t, cid.to_owned()));
                            let keys = b["key_count"].as_u64().unwrap_or(0);
                            s.keys.insert((o.clone(), seq), keys);
                        }
                    }
                }
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

pub(crate) fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .filter_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .filter_map(|v| v.trim().parse::<f64>().ok())
        .map(|v| v as u64)
        .sum()
}

/// Runs `s` with working files under `dir`.
pub fn run(s: &NetScenario, opts: &NetOptions, dir: &Path) -> Result<NetReport, NetError> {
    s.validate()?;
    let host = Host::new(s.nodes, opts.force_loopback)?;
    let netem = netem_available(&host);
    let origins: Vec<String> = (0..s.gateways.len()).map(NetScenario::origin).collect();
    let plan = ClusterPlan {
        nodes: s.nodes,
        gateways: s
            .gateways
            .iter()
            .copied()
            .zip(origins.iter().cloned())
            .collect(),
        links: s.links(),
        catchup_interval_secs: s.catchup_interval_secs,
        heartbeat_ms: s.heartbeat_ms,
        codes_per_gateway: s.uploads.per_gateway,
        skew_secs: Vec::new(),
        storage: s.storage.clone(),
    };
    let started_setup = Instant::now();
    let mut cluster = Cluster::start(&plan, host, opts.program.clone(), dir, s.seed)?;
    let setup_s = started_setup.elapsed().as_secs_f64();
    // Federation formed: every node has a peer (bounded wait).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let connected = cluster.nodes.iter().all(|n| {
            n.http
                .and_then(|a| http::request(a, "GET", "/metrics", b"").ok())
                .is_some_and(|r| {
                    metric(
                        &String::from_utf8_lossy(&r.body),
                        "traceless_peers_connected",
                    ) > 0
                })
        });
        if connected {
            break;
        }
        if Instant::now() > deadline {
            return Err(NetError::NotConnected);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let addrs = Arc::new(Mutex::new(
        cluster.nodes.iter().map(|n| n.http).collect::<Vec<_>>(),
    ));
    let seen: Arc<Vec<Mutex<Seen>>> = Arc::new((0..s.nodes).map(|_| Mutex::default()).collect());
    let stop = Arc::new(AtomicBool::new(false));
    let watchers = s.nodes.clamp(1, 6);
    let handles: Vec<_> = (0..watchers)
        .map(|w| {
            let mine: Vec<usize> = (0..s.nodes).filter(|i| i % watchers == w).collect();
            let (a, o, sn, st) = (addrs.clone(), origins.clone(), seen.clone(), stop.clone());
            std::thread::spawn(move || watch(a, mine, o, sn, st))
        })
        .collect();

    let mut rng = ChaCha8Rng::seed_from_u64(s.seed);
    let t0 = Instant::now();
    let mut faults: Vec<Fault> = s.faults.clone();
    faults.sort_by(|a, b| a.at_s().total_cmp(&b.at_s()));
    let mut next_fault = 0;
    // (node, restart at) for churned nodes.
    let mut down: Vec<(usize, f64)> = Vec::new();
    // Batches the gateways published, each when its own gateway first listed
    // it (publication happens at the gateway's period boundaries, not in the
    // upload's answer), and the keys the gateways acknowledged per origin.
    let mut published: BTreeMap<BatchId, (Instant, usize)> = BTreeMap::new();
    let mut acked_keys = vec![0u64; s.gateways.len()];
    let mut published_keys = vec![0u64; s.gateways.len()];
    // (start, end, sides) of each partition.
    let mut partitions: Vec<(Instant, Option<Instant>, Vec<Vec<usize>>)> = Vec::new();
    let mut upload_errors: Vec<String> = Vec::new();
    let mut next_upload = vec![0usize; s.gateways.len()];
    let mut samples: Vec<Sample> = Vec::new();
    let mut next_sample = 0.0;
    let mut heal_at: Option<f64> = None;
    let flood_counters = Arc::new(super::flood::FloodCounters::default());
    // The Sybils get a runtime of their own, so that their load does not delay
    // the link emulators' timers (cluster.rt).
    let flood_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let mut flood_window: Option<(Instant, Instant, usize)> = None;
    let withhold_counters = Arc::new(super::withhold::WithholdCounters::default());
    let mut withheld: Option<usize> = None;
    let mut events: Vec<String> = Vec::new();
    let relays: Vec<usize> = (0..s.nodes).filter(|i| !s.gateways.contains(i)).collect();
    let last_upload_s = s.uploads.start_s
        + s.uploads.interval_ms as f64 / 1000.0 * s.uploads.per_gateway.saturating_sub(1) as f64;
    let last_fault_s = faults
        .iter()
        .map(|f| match f {
            Fault::Churn { at_s, down_s, .. } => at_s + down_s,
            Fault::Flood {
                at_s, duration_s, ..
            } => at_s + duration_s,
            f => f.at_s(),
        })
        .fold(0.0, f64::max);
    let active_until = last_upload_s.max(last_fault_s);
    let mut converged_at: Option<f64> = None;
    loop {
        let t = t0.elapsed().as_secs_f64();
        while next_fault < faults.len() && faults[next_fault].at_s() <= t {
            match &faults[next_fault] {
                Fault::Partition { groups, .. } => {
                    cluster.partition(Some(groups));
                    partitions.push((Instant::now(), None, groups.clone()));
                    events.push(format!("{t:.1}s partition {groups:?}"));
                }
                Fault::Heal { .. } => {
                    cluster.partition(None);
                    if let Some(p) = partitions.last_mut().filter(|p| p.1.is_none()) {
                        p.1 = Some(Instant::now());
                    }
                    heal_at = Some(t);
                    events.push(format!("{t:.1}s heal"));
                }
                Fault::Flood {
                    duration_s,
                    rate_per_s,
                    sybils,
                    ..
                } => {
                    let d = Duration::from_secs_f64(*duration_s);
                    for k in 0..*sybils {
                        let Some(&v) = relays.get(k % relays.len().max(1)) else {
                            break;
                        };
                        let n = &cluster.nodes[v];
                        let Ok(target) =
                            format!("/ip4/{}/tcp/{}/p2p/{}", n.p2p.ip(), n.p2p.port(), n.peer_id)
                                .parse()
                        else {
                            continue;
                        };
                        let rate = rate_per_s / *sybils as u64;
                        flood_rt.spawn(super::flood::sybil(
                            target,
                            rate,
                            d,
                            flood_counters.clone(),
                        ));
                    }
                    flood_window = Some((Instant::now(), Instant::now() + d, *sybils));
                    events.push(format!(
                        "{t:.1}s flood: {sybils} Sybils, {rate_per_s}/s for {duration_s} s"
                    ));
                }
                Fault::Withhold {
                    duration_s,
                    target,
                    up_to,
                    ..
                } => {
                    let n = &cluster.nodes[*target];
                    if let Ok(addr) =
                        format!("/ip4/{}/tcp/{}/p2p/{}", n.p2p.ip(), n.p2p.port(), n.peer_id)
                            .parse()
                    {
                        flood_rt.spawn(super::withhold::withholder(
                            addr,
                            origins[0].clone(),
                            *up_to,
                            Duration::from_secs_f64(*duration_s),
                            withhold_counters.clone(),
                        ));
                    }
                    withheld = Some(*target);
                    events.push(format!(
                        "{t:.1}s withholding peer on node {target} (advertises 1..={up_to})"
                    ));
                }
                Fault::Churn {
                    fraction, down_s, ..
                } => {
                    let k = (relays.len() as f64 * fraction).round() as usize;
                    let victims: Vec<usize> =
                        relays.choose_multiple(&mut rng, k).copied().collect();
                    for &v in &victims {
                        cluster.kill(v);
                        if let Ok(mut a) = addrs.lock() {
                            a[v] = None;
                        }
                        down.push((v, t + down_s));
                    }
                    events.push(format!("{t:.1}s churn: killed {victims:?}"));
                }
            }
            next_fault += 1;
        }
        let (due, rest): (Vec<_>, Vec<_>) = down.iter().partition(|(_, at)| *at <= t);
        down = rest;
        for (v, _) in due {
            cluster.spawn(v)?;
            if let Ok(mut a) = addrs.lock() {
                a[v] = cluster.nodes[v].http;
            }
            events.push(format!("{:.1}s restarted {v}", t0.elapsed().as_secs_f64()));
        }
        for (k, &g) in s.gateways.iter().enumerate() {
            let due_at =
                s.uploads.start_s + next_upload[k] as f64 * s.uploads.interval_ms as f64 / 1000.0;
            if next_upload[k] >= s.uploads.per_gateway || due_at > t {
                continue;
            }
            let origin = &origins[k];
            let code = cluster.codes[origin][next_upload[k]].clone();
            next_upload[k] += 1;
            let Some(addr) = cluster.nodes[g].http else {
                continue;
            };
            match http::request(addr, "POST", "/v1/upload", &upload_body(&code)) {
                Ok(r) if r.status == 200 => {
                    acked_keys[k] += r
                        .try_json()
                        .and_then(|j| j["pooled_keys"].as_u64())
                        .unwrap_or(0);
                }
                Ok(r) => upload_errors.push(format!(
                    "{origin}: {} {}",
                    r.status,
                    String::from_utf8_lossy(&r.body)
                )),
                Err(e) => upload_errors.push(format!("{origin}: {e}")),
            }
        }
        if t >= next_sample {
            next_sample = t + s.sample_ms as f64 / 1000.0;
            for n in &cluster.nodes {
                if let Some((rss, fds)) = n.pid().and_then(proc_usage) {
                    samples.push(Sample {
                        node: n.index,
                        t_s: t,
                        rss_kib: rss,
                        fds,
                    });
                }
            }
        }
        published_keys.iter_mut().for_each(|n| *n = 0);
        for (k, &g) in s.gateways.iter().enumerate() {
            if let Ok(sn) = seen[g].lock() {
                for (b, (at, _)) in sn.batches.iter().filter(|(b, _)| b.0 == origins[k]) {
                    published.entry(b.clone()).or_insert((*at, g));
                    published_keys[k] += sn.keys.get(b).copied().unwrap_or(0);
                }
            }
        }
        let uploads_done = next_upload.iter().all(|&u| u >= s.uploads.per_gateway)
            && published_keys.iter().zip(&acked_keys).all(|(p, a)| p >= a);
        if uploads_done && t >= active_until && down.is_empty() {
            let all = seen.iter().all(|sn| {
                sn.lock()
                    .map(|sn| published.keys().all(|b| sn.batches.contains_key(b)))
                    .unwrap_or(false)
            });
            if all {
                converged_at = Some(t);
                break;
            }
        }
        // Bounded whatever happens: a gateway that never publishes ends the
        // run unconverged, with its report, instead of hanging.
        if t > active_until + s.settle_s {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        let _ = h.join();
    }
    let bytes = cluster.bytes_per_node();
    let mut nodes = Vec::new();
    let mut all_delays = Vec::new();
    let reference: BTreeMap<BatchId, String> = seen
        .iter()
        .find_map(|sn| {
            let sn = sn.lock().ok()?;
            Some(
                sn.batches
                    .iter()
                    .map(|(k, v)| (k.clone(), v.1.clone()))
                    .collect(),
            )
        })
        .unwrap_or_default();
    let mut identical = true;
    for (i, n) in cluster.nodes.iter().enumerate() {
        let sn = seen[i]
            .lock()
            .map_err(|_| NetError::Setup("watcher panicked".into()))?;
        let mut delays: Vec<f64> = published
            .iter()
            .filter_map(|(b, (at, _))| {
                sn.batches.get(b).map(|(seen_at, _)| {
                    seen_at.saturating_duration_since(*at).as_secs_f64() * 1000.0
                })
            })
            .collect();
        all_delays.extend(delays.iter().copied());
        let mine: BTreeMap<BatchId, String> = sn
            .batches
            .iter()
            .map(|(k, v)| (k.clone(), v.1.clone()))
            .collect();
        identical &= mine == reference;
        let metrics = n
            .http
            .and_then(|a| http::request(a, "GET", "/metrics", b"").ok())
            .map(|r| String::from_utf8_lossy(&r.body).into_owned())
            .unwrap_or_default();
        // Batches from the other side of a partition listed before its heal.
        let side = |groups: &[Vec<usize>], x: usize| groups.iter().position(|m| m.contains(&x));
        let leaks = published
            .iter()
            .filter(|(b, (at, g))| {
                partitions.iter().any(|(start, end, groups)| {
                    at >= start
                        && end.is_none_or(|e| *at < e)
                        && side(groups, *g) != side(groups, i)
                        && sn
                            .batches
                            .get(*b)
                            .is_some_and(|(seen_at, _)| end.is_none_or(|e| *seen_at < e))
                })
            })
            .count() as u64;
        nodes.push(NodeFigures {
            partition_leaks: leaks,
            node: i,
            region: s.region_of(i),
            gateway: n.origin.clone(),
            batches: sn.batches.len() as u64,
            missing: published
                .keys()
                .filter(|b| !sn.batches.contains_key(*b))
                .count() as u64,
            duplicates: sn.duplicates + metric(&metrics, "traceless_batches_conflicting_total"),
            propagation_p50_ms: quantile(&mut delays, 0.5),
            propagation_p99_ms: quantile(&mut delays, 0.99),
            bytes: bytes[i],
            gossip_rejected: metric(&metrics, "traceless_gossip_rejected_total"),
            catchup_rejected: metric(&metrics, "traceless_catchup_rejected_total"),
            catchup_batches: metric(&metrics, "traceless_catchup_batches_total"),
        });
    }
    // Catch-up after heal: when the last node got the last batch, from the heal.
    let catch_up_after_heal_s = heal_at.map(|h| {
        let last = seen
            .iter()
            .filter_map(|sn| {
                sn.lock()
                    .ok()
                    .and_then(|sn| sn.batches.values().map(|v| v.0).max())
            })
            .max()
            .map_or(0.0, |m| m.saturating_duration_since(t0).as_secs_f64());
        (last - h).max(0.0)
    });
    let flood = flood_window.map(|(start, end, sybils)| {
        let delays = |inside: bool| -> Vec<f64> {
            published
                .iter()
                .filter(|(_, (at, _))| {
                    if inside {
                        *at >= start && *at < end
                    } else {
                        *at < start
                    }
                })
                .flat_map(|(b, (at, _))| {
                    seen.iter()
                        .filter_map(|sn| {
                            sn.lock().ok().and_then(|sn| {
                                sn.batches.get(b).map(|(s, _)| {
                                    s.saturating_duration_since(*at).as_secs_f64() * 1000.0
                                })
                            })
                        })
                        .collect::<Vec<_>>()
                })
                .collect()
        };
        let (mut base, mut during) = (delays(false), delays(true));
        let sent = flood_counters.sent.load(Ordering::Relaxed);
        FloodFigures {
            sybils,
            connected: flood_counters.connected.load(Ordering::Relaxed),
            sent,
            sent_per_s: sent as f64 / end.saturating_duration_since(start).as_secs_f64().max(1e-9),
            refused: flood_counters.refused.load(Ordering::Relaxed),
            rejected_by_nodes: nodes.iter().map(|n| n.gossip_rejected).sum(),
            baseline_p50_ms: quantile(&mut base.clone(), 0.5),
            baseline_p99_ms: quantile(&mut base, 0.99),
            flood_p50_ms: quantile(&mut during.clone(), 0.5),
            flood_p99_ms: quantile(&mut during, 0.99),
        }
    });
    let withholding = withheld.map(|target| WithholdFigures {
        target,
        connected: withhold_counters.connected.load(Ordering::Relaxed) > 0,
        summaries: withhold_counters.summaries.load(Ordering::Relaxed),
        fetches: withhold_counters.fetches.load(Ordering::Relaxed),
        target_missing: nodes[target].missing,
    });
    let report = NetReport {
        flood,
        withholding,
        scenario: s.name.clone(),
        isolation: cluster.isolation(),
        fallback_reason: cluster.fallback_reason().map(str::to_owned),
        netem_available: netem,
        link_emulator: "userspace TCP forwarder per link (latency ± jitter, loss as a retransmission delay, bandwidth cap)".into(),
        node_program: opts.program.program.display().to_string()
            + if opts.program.args.is_empty() { "" } else { " node" },
        nodes: s.nodes,
        links: cluster.links.len(),
        setup_s,
        published: published.len() as u64,
        published_keys: published_keys.iter().sum(),
        upload_errors,
        converged: converged_at.is_some(),
        identical_everywhere: identical && converged_at.is_some(),
        converged_at_s: converged_at,
        catch_up_after_heal_s,
        propagation_p50_ms: quantile(&mut all_delays.clone(), 0.5),
        propagation_p99_ms: quantile(&mut all_delays, 0.99),
        events,
        per_node: nodes,
        samples,
    };
    drop(cluster);
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use traceless_node::embargo;

    /// Whatever the hour a test runs at, [`upload_body`]'s key is published at
    /// the next boundary: past its embargo and not expired.
    #[test]
    fn the_visible_key_is_publishable_at_every_hour_of_the_day() {
        let midnight = 20_000 * 86_400;
        for minute in (0..24 * 60).step_by(5) {
            let now = midnight + minute * 60;
            let key = fresh_key(day_start_interval(visible_day(now)), 144);
            assert!(
                !embargo::is_embargoed(&key, now),
                "embargoed at minute {minute}"
            );
            assert!(key.expires_at() > now, "expired at minute {minute}");
        }
    }
}

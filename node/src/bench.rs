//! `traceless-node bench`: durable ingest (keys/s), cached batch downloads over
//! loopback HTTP (req/s), propagation latency across local nodes (p50/p99), and
//! filter-form entry storage and day-filter rebuild time.
//! Speed is measured here, never asserted in tests.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use traceless_protocol::ed25519_dalek::SigningKey;
use traceless_protocol::{
    day_of_unix, day_start_interval, AuthorityKey, DiagnosisKey, PeriodBatch, Tek,
};

use crate::clock::ManualClock;
use crate::config::{Config, TrustEntry};
use crate::storage::{BatchStore, CodeStore, SledStore, StoredBatch};

/// Benchmark options.
#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// Batches ingested.
    #[arg(long, default_value_t = 200)]
    pub ingest_batches: u64,
    /// Keys per ingested batch.
    #[arg(long, default_value_t = 1000)]
    pub keys_per_batch: usize,
    /// Seconds of download load.
    #[arg(long, default_value_t = 5)]
    pub download_secs: u64,
    /// Concurrent keep-alive connections of the load generator.
    #[arg(long, default_value_t = 32)]
    pub connections: usize,
    /// Nodes in the propagation test.
    #[arg(long, default_value_t = 20)]
    pub nodes: usize,
    /// Batches timed in the propagation test.
    #[arg(long, default_value_t = 50)]
    pub propagation_batches: u64,
    /// Filter entries stored (as uploads of 2,304 entries) and folded into one
    /// day filter by the gateway's rebuild.
    #[arg(long, default_value_t = 500_000)]
    pub filter_entries: u64,
    /// Run only the filter benchmark.
    #[arg(long)]
    pub filters_only: bool,
}

const NOW: u64 = 1_700_000_000;

fn authority() -> AuthorityKey {
    AuthorityKey {
        origin: "bench.health".into(),
        key_id: 1,
        signing_key: SigningKey::from_bytes(&[9; 32]),
    }
}

/// A period batch of `n` keys spread over 13 days ending two before
/// [`NOW`]'s (past any embargo), as a gateway publishes them (SPEC.md §5.9).
fn batch(seq: u64, n: usize) -> Vec<u8> {
    let today = day_of_unix(NOW);
    let keys = (0..n)
        .map(|i| DiagnosisKey {
            tek: Tek::generate(),
            rolling_start: day_start_interval(today - 2 - (i % 13) as u32),
            rolling_period: 144,
            transmission_risk: 4,
            days_since_onset: 0,
        })
        .collect();
    PeriodBatch::from_keys("bench.health", seq, NOW - 10, keys)
        .sign_with(&authority(), Default::default())
        .map(|s| s.encode())
        .unwrap_or_default()
}

fn temp_dir(tag: &str) -> PathBuf {
    std::env::temp_dir().join(format!(
        "traceless-bench-{tag}-{}",
        hex::encode(rand::random::<[u8; 6]>())
    ))
}

fn config(dir: PathBuf) -> Config {
    let mut c = Config {
        data_dir: dir,
        ..Config::default()
    };
    c.p2p.listen = crate::config::P2pConfig::ephemeral_listen();
    c.http.listen = ([127, 0, 0, 1], 0).into();
    c.p2p.heartbeat_ms = 100;
    c.p2p.catchup_interval_secs = 5;
    c.trust.push(TrustEntry {
        origin: "bench.health".into(),
        key_id: 1,
        public_key: hex::encode(authority().verifying_key().to_bytes()),
    });
    c
}

fn ingest(args: &BenchArgs) -> Result<f64, String> {
    let dir = temp_dir("ingest");
    let store = SledStore::open(&dir).map_err(|e| e.to_string())?;
    let trust = config(dir.clone())
        .trust_list()
        .map_err(|e| e.to_string())?;
    let wire: Vec<Vec<u8>> = (1..=args.ingest_batches)
        .map(|s| batch(s, args.keys_per_batch))
        .collect();
    let start = Instant::now();
    let mut keys = 0u64;
    for bytes in &wire {
        // What a node does per received batch: decode, verify, store, flush.
        let b = StoredBatch::verified(bytes, &trust, NOW).map_err(|e| e.to_string())?;
        keys += b.meta.key_count();
        store.put_batch(&b).map_err(|e| e.to_string())?;
    }
    let rate = keys as f64 / start.elapsed().as_secs_f64();
    drop(store);
    let _ = std::fs::remove_dir_all(crate::storage::files_dir(&dir));
    let _ = std::fs::remove_dir_all(dir);
    Ok(rate)
}

/// Whether an HTTP/1.1 response head is a success (2xx).
fn is_success(head: &str) -> bool {
    head.split_whitespace()
        .nth(1)
        .is_some_and(|code| code.len() == 3 && code.starts_with('2'))
}

/// Answers counted by the download bench: successes and everything else.
#[derive(Default)]
struct Answers {
    ok: AtomicU64,
    other: AtomicU64,
}

async fn one_connection(
    addr: std::net::SocketAddr,
    path: String,
    until: Instant,
    count: Arc<Answers>,
) {
    let Ok(mut s) = tokio::net::TcpStream::connect(addr).await else {
        return;
    };
    let _ = s.set_nodelay(true);
    let req = format!("GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n");
    let mut buf = vec![0u8; 64 << 10];
    while Instant::now() < until {
        if s.write_all(req.as_bytes()).await.is_err() {
            return;
        }
        // Read one response: headers, then Content-Length bytes.
        let mut have = 0;
        let (head_end, body_len, ok) = loop {
            let Ok(n) = s.read(&mut buf[have..]).await else {
                return;
            };
            if n == 0 {
                return;
            }
            have += n;
            if let Some(p) = buf[..have].windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..p]).to_ascii_lowercase();
                let len = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse::<usize>().ok())
                    .unwrap_or(0);
                break (p + 4, len, is_success(&head));
            }
        };
        let mut remaining = (head_end + body_len).saturating_sub(have);
        while remaining > 0 {
            let Ok(n) = s.read(&mut buf).await else {
                return;
            };
            if n == 0 {
                return;
            }
            remaining = remaining.saturating_sub(n);
        }
        let counter = if ok { &count.ok } else { &count.other };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

async fn download(args: &BenchArgs) -> Result<f64, String> {
    let dir = temp_dir("download");
    let node = crate::start(config(dir.clone()), Arc::new(ManualClock::new(NOW)))
        .await
        .map_err(|e| e.to_string())?;
    node.core
        .ingest(&batch(1, 500))
        .map_err(|e| e.to_string())?;
    let count = Arc::new(Answers::default());
    let start = Instant::now();
    let until = start + Duration::from_secs(args.download_secs);
    let tasks: Vec<_> = (0..args.connections)
        .map(|_| {
            tokio::spawn(one_connection(
                node.http_addr,
                "/v1/batches/bench.health/1".into(),
                until,
                count.clone(),
            ))
        })
        .collect();
    for t in tasks {
        let _ = t.await;
    }
    let rate = count.ok.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64();
    node.shutdown().await;
    let _ = std::fs::remove_dir_all(dir);
    // Only 2xx answers are throughput; any other answer means the bench
    // measured something else (a 404 is cheaper than a batch).
    match count.other.load(Ordering::Relaxed) {
        0 => Ok(rate),
        n => Err(format!("download bench: {n} answers were not 2xx")),
    }
}

/// Propagation latencies: only batches that reached every node within the
/// deadline are timed; the others are counted as timeouts, not as samples.
#[derive(Debug, Default)]
pub struct Propagation {
    /// Seconds until every node stored the batch, ascending.
    pub latencies: Vec<f64>,
    /// Batches that had not reached every node when the deadline passed.
    pub timeouts: u64,
}

impl Propagation {
    /// The `q` quantile (nearest rank) of the completed samples, if any.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let n = self.latencies.len();
        (n > 0).then(|| self.latencies[((n as f64 * q).ceil() as usize).clamp(1, n) - 1])
    }
}

/// How long one propagation sample may take before it counts as a timeout.
const PROPAGATION_DEADLINE: Duration = Duration::from_secs(10);

async fn propagation(args: &BenchArgs) -> Result<Propagation, String> {
    let clock = ManualClock::new(NOW);
    let mut nodes: Vec<crate::RunningNode> = Vec::new();
    let mut dirs = Vec::new();
    for _ in 0..args.nodes {
        let dir = temp_dir("prop");
        let mut c = config(dir.clone());
        // Each node bootstraps from up to three earlier ones; Kademlia does the rest.
        c.p2p.bootstrap = nodes
            .iter()
            .rev()
            .take(3)
            .flat_map(|n| n.p2p_addrs.iter().map(|a| a.to_string()))
            .collect();
        nodes.push(
            crate::start(c, Arc::new(clock.clone()))
                .await
                .map_err(|e| e.to_string())?,
        );
        dirs.push(dir);
    }
    // Let the meshes form.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let mut result = Propagation::default();
    for seq in 1..=args.propagation_batches {
        let bytes = batch(seq, 100);
        let start = Instant::now();
        let origin = &nodes[(seq as usize) % nodes.len()];
        origin.core.ingest(&bytes).map_err(|e| e.to_string())?;
        origin.core.release_due().map_err(|e| e.to_string())?;
        let deadline = start + PROPAGATION_DEADLINE;
        loop {
            let all = nodes
                .iter()
                .all(|n| matches!(n.core.store.get_batch("bench.health", seq), Ok(Some(_))));
            if all {
                result.latencies.push(start.elapsed().as_secs_f64());
                break;
            }
            if Instant::now() > deadline {
                let missing = nodes
                    .iter()
                    .filter(|n| !matches!(n.core.store.get_batch("bench.health", seq), Ok(Some(_))))
                    .count();
                eprintln!(
                    "propagation: batch {seq} timed out after {} s, missing on {missing} of {} nodes",
                    PROPAGATION_DEADLINE.as_secs(),
                    nodes.len()
                );
                result.timeouts += 1;
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    for n in nodes {
        n.shutdown().await;
    }
    for d in dirs {
        let _ = std::fs::remove_dir_all(d);
    }
    result.latencies.sort_by(f64::total_cmp);
    Ok(result)
}

/// Stores `args.filter_entries` entries of one day the way uploads do (one
/// commit and flush per 2,304 entries, the most one upload carries), then times
/// the rebuild that reads, decrypts, folds, signs and stores them as one filter.
fn filters(args: &BenchArgs) -> Result<(f64, f64, u64), String> {
    use crate::gateway::Gateway;
    use crate::storage::{GatewayCommit, StoredEntry};
    use traceless_protocol::{FilterEntry, GatewaySealKey};
    let dir = temp_dir("filters");
    let store = SledStore::open(&dir).map_err(|e| e.to_string())?;
    let gateway = Gateway::new(
        authority(),
        60,
        NOW,
        crate::config::PublicationConfig::default(),
        GatewaySealKey::generate(),
        Vec::new(),
    );
    let day = day_of_unix(NOW) - 2;
    let n = args
        .filter_entries
        .min(traceless_protocol::filter::MAX_FILTER_ENTRIES);
    let entries: Vec<StoredEntry> = (0..n)
        .map(|i| StoredEntry {
            day,
            interval: day_start_interval(day) + (i % 144) as u32,
            entry: FilterEntry(rand::random()),
        })
        .collect();
    let start = Instant::now();
    for chunk in entries.chunks(16 * 144) {
        store
            .commit_gateway(&GatewayCommit {
                filter_entries: chunk.to_vec(),
                ..Default::default()
            })
            .map_err(|e| e.to_string())?;
    }
    let stored = n as f64 / start.elapsed().as_secs_f64();
    let start = Instant::now();
    let built = gateway
        .rebuild_filters(&store, NOW)
        .map_err(|e| e.to_string())?;
    let rebuild = start.elapsed().as_secs_f64();
    let bytes = built.first().map_or(0, |f| f.bytes.len() as u64);
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(crate::storage::files_dir(&dir));
    Ok((stored, rebuild, bytes))
}

/// Runs the benchmarks and prints one line per figure.
pub async fn run(args: BenchArgs) -> Result<(), String> {
    let (stored, rebuild, bytes) = filters(&args)?;
    println!("filter entries: {stored:.0} entries/s stored (2,304 per commit + flush); rebuild of one day filter of {} entries: {:.0} ms ({bytes} signed bytes)", args.filter_entries.min(traceless_protocol::filter::MAX_FILTER_ENTRIES), rebuild * 1000.0);
    if args.filters_only {
        return Ok(());
    }
    let rate = ingest(&args)?;
    println!("durable ingest: {rate:.0} keys/s ({} batches of {} keys; verify + batch file write + fsync + sled write + flush per batch; target >= 100000)", args.ingest_batches, args.keys_per_batch);
    let rate = download(&args).await?;
    println!("cached batch download: {rate:.0} req/s ({} keep-alive connections on loopback, {} s; target >= 8500 on 2 cores)", args.connections, args.download_secs);
    let p = propagation(&args).await?;
    let done = p.latencies.len();
    let timeouts = format!(
        "{} of {} batches timed out after {} s (failures, not in the percentiles)",
        p.timeouts,
        args.propagation_batches,
        PROPAGATION_DEADLINE.as_secs()
    );
    match (p.quantile(0.5), p.quantile(0.99)) {
        (Some(p50), Some(p99)) => println!(
            "propagation across {} nodes: p50 {:.0} ms, p99 {:.0} ms over {done} completed samples{}; {timeouts} (target p99 <= 1000 ms)",
            args.nodes,
            p50 * 1000.0,
            p99 * 1000.0,
            if done < 100 { " (fewer than 100, so p99 is the maximum)" } else { "" },
        ),
        _ => println!(
            "propagation across {} nodes: no batch reached every node; {timeouts}",
            args.nodes
        ),
    }
    if p.timeouts > 0 {
        return Err(format!("propagation: {timeouts}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The download bench counted every answer as throughput, 404s included.
    #[test]
    fn only_2xx_answers_count() {
        assert!(is_success("http/1.1 200 ok"));
        assert!(is_success("http/1.1 204 no content"));
        assert!(!is_success("http/1.1 404 not found"));
        assert!(!is_success("http/1.1 304 not modified"));
        assert!(!is_success("http/1.1 2000 x"));
        assert!(!is_success("garbage"));
    }
}

//! Shared helpers of the node's integration tests: configs on temp dirs with port
//! 0, batches signed by a test authority, a minimal HTTP/1.1 client, bounded waits.
#![allow(dead_code, clippy::unwrap_used)]

pub mod chromium;
pub mod process;
mod rogue_peer;
#[allow(unused_imports)] // only the gossip tests use them
pub use rogue_peer::{attacker, pump};

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use traceless_node::config::{GatewayConfig, TrustEntry};
use traceless_node::{Config, ManualClock, Role, RunningNode};
use traceless_protocol::*;

/// Fixed test time: 2023-11-14 22:13 UTC (day 19675).
pub const NOW: u64 = 1_700_000_000;
/// The day of [`NOW`].
pub const TODAY: u32 = 19_675;
/// Test authority id.
pub const ORIGIN: &str = "test.health";

/// The test authority (deterministic so every node trusts the same key).
pub fn authority() -> AuthorityKey {
    AuthorityKey {
        origin: ORIGIN.into(),
        key_id: 1,
        signing_key: ed25519_dalek::SigningKey::from_bytes(&[7; 32]),
    }
}

/// A relay config in `dir` trusting [`authority`], HTTP and libp2p on port 0.
pub fn relay_config(dir: &Path) -> Config {
    let mut c = Config {
        data_dir: dir.to_owned(),
        ..Config::default()
    };
    c.p2p.listen = traceless_node::config::P2pConfig::ephemeral_listen();
    c.http.listen = "127.0.0.1:0".parse().unwrap();
    c.p2p.heartbeat_ms = 100;
    c.p2p.catchup_interval_secs = 1;
    c.trust.push(TrustEntry {
        origin: ORIGIN.into(),
        key_id: 1,
        public_key: hex::encode(authority().verifying_key().to_bytes()),
    });
    c
}

/// A gateway config for [`authority`]; writes its key file into `dir`.
pub fn gateway_config(dir: &Path) -> Config {
    let mut c = relay_config(dir);
    std::fs::create_dir_all(dir).unwrap();
    let key_file = dir.join("authority.key");
    if !key_file.exists() {
        traceless_node::keys::write_authority_key(&key_file, &authority()).unwrap();
    }
    c.role = Role::Gateway;
    c.gateway = Some(GatewayConfig {
        origin: ORIGIN.into(),
        authority_key_file: key_file,
        uploads_per_minute: 1000,
        token_keys: Vec::new(),
        response_delay_ms: 0,
        export_key_file: None,
        risk_config_file: None,
    });
    // No padding: these tests count the keys they uploaded. The publication
    // tests set k themselves.
    c.publication.min_keys = 0;
    c
}

/// The batch list of [`ORIGIN`] once it holds at least `n` batches (bounded wait
/// for a node on the real clock to reach its period boundary).
pub fn wait_for_batches(addr: SocketAddr, n: usize) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let list = get(addr, &format!("/v1/batches?origin={ORIGIN}&after=0")).json();
        if list["batches"].as_array().is_some_and(|b| b.len() >= n) || Instant::now() > deadline {
            return list;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Moves `clock` to the next publication boundary and runs the period job
/// there (SPEC.md §6.4): what was pooled before is published, `/metrics` and the
/// transparency page move on.
pub fn next_period(
    core: &traceless_node::Core,
    clock: &ManualClock,
) -> Option<traceless_node::gateway::PeriodReport> {
    let next = core.schedule().publication_of(clock.now());
    clock.set(next);
    core.run_period().unwrap()
}

/// `n` random keys of `day`, valid the whole day.
pub fn keys_of_day(day: u32, n: usize) -> Vec<DiagnosisKey> {
    (0..n)
        .map(|_| DiagnosisKey {
            tek: Tek::generate(),
            rolling_start: day_start_interval(day),
            rolling_period: 144,
            transmission_risk: 4,
            days_since_onset: 1,
        })
        .collect()
}

/// The trust list of [`authority`].
pub fn trust() -> TrustList {
    let mut t = TrustList::new();
    t.insert(ORIGIN, 1, authority().verifying_key());
    t
}

/// The keys of a served batch of either version (SPEC.md §5.9), verified
/// against `trust` at `now`.
pub fn batch_keys(bytes: &[u8], trust: &TrustList, now: u64) -> Vec<DiagnosisKey> {
    PublishedBatch::decode(bytes)
        .and_then(|b| b.verify(trust, now))
        .unwrap()
        .keys
}

/// The days of a served batch of either version, each as a one-day batch
/// with the batch's origin, sequence and `created_at`, verified against
/// `trust` at `now`.
pub fn batch_days(bytes: &[u8], trust: &TrustList, now: u64) -> Vec<Batch> {
    let b = PublishedBatch::decode(bytes)
        .and_then(|b| b.verify(trust, now))
        .unwrap();
    let period = PeriodBatch::from_keys(b.origin, b.sequence, b.created_at, b.keys);
    period.days.iter().map(|d| d.as_batch(&period)).collect()
}

/// The identifier a node's log names a served batch by (SPEC.md §5.9).
pub fn batch_id(bytes: &[u8]) -> [u8; 32] {
    PublishedBatch::decode(bytes).unwrap().id()
}

/// The trust list of the node configured in `config` (a file).
pub fn trust_of(config: &Path) -> TrustList {
    Config::load(config).unwrap().trust_list().unwrap()
}

/// A signed batch of `n` keys of `day`, encoded.
pub fn signed_batch(
    key: &AuthorityKey,
    sequence: u64,
    day: u32,
    n: usize,
    created_at: u64,
) -> Vec<u8> {
    Batch {
        origin: key.origin.clone(),
        sequence,
        created_at,
        day,
        keys: keys_of_day(day, n),
    }
    .sign(key)
    .unwrap()
    .encode()
}

pub use traceless_http_probe::Response;

/// One HTTP/1.1 request over a fresh connection (`Connection: close`).
pub fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    traceless_http_probe::request(addr, method, path, headers, body, Duration::from_secs(10))
        .unwrap()
}

/// GET.
pub fn get(addr: SocketAddr, path: &str) -> Response {
    http(addr, "GET", path, &[], &[])
}

/// Polls `cond` every 50 ms until it holds or `timeout` passes; returns whether it held.
pub async fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    while Instant::now() < end {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    cond()
}

/// A node's deletion log fetched over HTTP (`GET /v1/deletion-log`), its chain
/// and signatures verified under the node id it states.
pub fn verified_deletion_log(addr: SocketAddr) -> Vec<traceless_protocol::wire::DeletionRecord> {
    let log = get(addr, "/v1/deletion-log").json();
    let node_id: [u8; 32] = hex::decode(log["node_id"].as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    let entries: Vec<traceless_protocol::wire::SignedDeletionRecord> = log["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            traceless_protocol::wire::SignedDeletionRecord::decode(
                &hex::decode(e["signed_record"].as_str().unwrap()).unwrap(),
            )
            .unwrap()
        })
        .collect();
    traceless_protocol::wire::verify_deletion_log(&entries, &node_id).unwrap()
}

/// Everything this test binary logs under `filter` (an `EnvFilter` directive),
/// captured from the first call on; later calls return what was captured (one
/// subscriber per binary, so the first call's filter wins).
pub fn captured_log(filter: &str) -> String {
    use std::sync::{Mutex, OnceLock};
    static LOG: OnceLock<Mutex<Vec<u8>>> = OnceLock::new();
    struct Sink;
    impl std::io::Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if let Some(log) = LOG.get() {
                log.lock().unwrap().extend_from_slice(buf);
            }
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let log = LOG.get_or_init(|| {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_ansi(false)
            .with_writer(|| Sink)
            .try_init();
        Mutex::new(Vec::new())
    });
    String::from_utf8_lossy(&log.lock().unwrap()).into_owned()
}

/// Starts a node with `config` on the manual `clock`.
pub async fn start_node(config: Config, clock: &ManualClock) -> RunningNode {
    traceless_node::start(config, std::sync::Arc::new(clock.clone()))
        .await
        .unwrap()
}

/// Starts a relay in `dir` that bootstraps from `bootstrap` and runs catch-up
/// every `catchup_secs`.
pub async fn start_relay(
    dir: &Path,
    clock: &ManualClock,
    bootstrap: &[libp2p::Multiaddr],
    catchup_secs: u64,
) -> RunningNode {
    let mut c = relay_config(dir);
    c.p2p.bootstrap = bootstrap.iter().map(|a| a.to_string()).collect();
    c.p2p.catchup_interval_secs = catchup_secs;
    start_node(c, clock).await
}

/// Peers `node` is connected to.
pub fn peer_count(node: &RunningNode) -> usize {
    node.federation.peers().connected.len()
}

/// Waits (at most 10 s) until `node` is connected to at least `k` peers.
pub async fn wait_for_peers(node: &RunningNode, k: usize) -> bool {
    wait_until(Duration::from_secs(10), || peer_count(node) >= k).await
}

/// Every file under `dir`, recursively (sled's log and snapshots included).
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_owned()];
    while let Some(d) = todo.pop() {
        for item in std::fs::read_dir(&d).unwrap() {
            let path = item.unwrap().path();
            if path.is_dir() {
                todo.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out
}

/// The content id of batch bytes as served (SHA-256): what the log records.
pub fn content_id(bytes: &[u8]) -> [u8; 32] {
    sha2::Digest::finalize(sha2::Digest::chain_update(sha2::Sha256::default(), bytes)).into()
}

/// A key-form upload body with `code` (padded to the fixed length).
pub fn upload_body(code: &str, keys: Vec<DiagnosisKey>) -> Vec<u8> {
    Upload {
        upload_code: code.as_bytes().to_vec(),
        keys,
        ..Default::default()
    }
    .encode_padded()
    .unwrap()
}

/// A dummy upload body (cover traffic: no code, no keys).
pub fn dummy_upload_body() -> Vec<u8> {
    Upload {
        dummy: true,
        ..Default::default()
    }
    .encode_padded()
    .unwrap()
}

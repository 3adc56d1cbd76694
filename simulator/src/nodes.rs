//! The relay network: one gateway for the health authority and several relays,
//! started in-process on loopback and federated over libp2p, all on one manual
//! clock that the simulator moves forward. Phones reach them only over HTTP.
//!
//! Uploads take the anonymous path (SPEC.md §5.6–5.7): the gateway holds a VOPRF
//! token key and runs the authority's token issuer, which holds the upload codes;
//! every relay forwards sealed uploads for the simulated origin to the gateway.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use traceless_node::config::{GatewayConfig, TrustEntry, UploadGateway};
use traceless_node::{upload_codes, Config, Core, Role, RunningNode};
use traceless_protocol::{
    AuthorityKey, ManualClock, RiskConfig, RiskParameters, SignedRiskConfig, TokenKey,
};

use crate::http;
use crate::scenario::Network;

/// The authority the simulated city's gateway signs for.
pub const ORIGIN: &str = "sim.health";

/// Why the network could not start.
#[derive(Debug, thiserror::Error)]
pub enum NodesError {
    /// Preparing files failed.
    #[error("preparing node directories: {0}")]
    Io(#[from] std::io::Error),
    /// A node refused to start.
    #[error("starting a node: {0}")]
    Start(String),
    /// Relays did not connect to the federation in time.
    #[error("relays did not join the federation within 20 s")]
    NotConnected,
}

/// A running federation.
pub struct Nodes {
    rt: tokio::runtime::Runtime,
    /// The gateway (accepts uploads, signs batches).
    pub gateway: RunningNode,
    /// Relays (phones download from these).
    pub relays: Vec<RunningNode>,
    /// The nodes' clock.
    pub clock: ManualClock,
    /// The authority key (public part goes into every trust list).
    pub authority: AuthorityKey,
    /// Single-use upload codes issued to the authority's token issuer (on the
    /// gateway), one per planned upload: each buys one upload token.
    pub codes: Vec<String>,
    /// The authority's GAEN export key (certified by [`Nodes::authority`]),
    /// which the gateway signs every batch's export file with.
    pub export_key: traceless_node::export_keys::ExportKey,
    /// The signed risk configuration (revision 1, the SDK's defaults) the
    /// gateway publishes with every batch.
    pub risk_config: SignedRiskConfig,
    /// The gateway's next sequence when [`Nodes::release_due`] last looked.
    reported: std::sync::atomic::AtomicU64,
}

/// The epoch of the gateway's one token key.
const TOKEN_EPOCH: u32 = 1;

fn base_config(dir: &Path, authority: &AuthorityKey, bootstrap: Vec<String>) -> Config {
    let mut c = Config {
        data_dir: dir.to_owned(),
        ..Config::default()
    };
    c.p2p.listen = traceless_node::config::P2pConfig::ephemeral_listen();
    c.http.listen = SocketAddr::from(([127, 0, 0, 1], 0));
    c.p2p.heartbeat_ms = 100;
    c.p2p.catchup_interval_secs = 1;
    c.p2p.kademlia = false;
    c.p2p.bootstrap = bootstrap;
    // Filters are rebuilt when the simulator calls for it (at the sync hour),
    // never by the wall-time job in the middle of a simulated day.
    c.filters.rebuild_seconds = 86_400;
    // Relays publish nothing: their k is moot. The gateway's is the scenario's.
    c.publication.min_keys = 0;
    // Every node reads the one simulated clock, so the peers' clock (SPEC.md
    // §2.1) can only be wrong here: its samples age on wall time while the
    // simulator moves the clock hours at a time, so after a move the gateway
    // would publish, release and delete at a boundary the samples had reached,
    // and catch up whenever the next sample (every second of wall time)
    // arrived: batches would split and merge differently from run to run.
    // Irreversible acts go by the simulated clock itself.
    c.clock.tolerance_secs = u64::MAX;
    c.clock.startup_wait_secs = 0;
    c.trust.push(TrustEntry {
        origin: ORIGIN.into(),
        key_id: authority.key_id,
        public_key: hex::encode(authority.verifying_key().to_bytes()),
    });
    c
}

/// The gateway section, built through serde so that fields the node adds later
/// take their defaults.
fn gateway_config(
    key_file: &Path,
    token_file: &Path,
    export_key_file: &Path,
    risk_config_file: &Path,
) -> Result<GatewayConfig, NodesError> {
    let v = serde_json::json!({
        "export_key_file": export_key_file,
        "risk_config_file": risk_config_file,
        "origin": ORIGIN,
        "authority_key_file": key_file,
        // Every upload of a day, real or dummy, arrives at one clock value or a
        // few: the rate limit must never be what refuses them.
        "uploads_per_minute": 1_000_000,
        "token_keys": [{ "epoch": TOKEN_EPOCH, "file": token_file }],
        // By default the node answers each relayed upload 50 ms after it
        // arrived, so that response timing does not tell real from dummy. The
        // simulator posts its thousands of uploads one after another: the floor
        // would only add minutes of waiting, and the simulator measures timing
        // rather than hides it.
        "response_delay_ms": 0,
    });
    serde_json::from_value(v).map_err(|e| NodesError::Start(format!("gateway config: {e}")))
}

impl Nodes {
    /// Starts a gateway and `relays` relays under `dir` at unix time `now`, with
    /// `codes` upload codes (for the token issuer) valid for `code_validity_s`,
    /// the gateway's periods unpadded.
    pub fn start(
        dir: &Path,
        relays: u32,
        now: u64,
        codes: usize,
        code_validity_s: u64,
    ) -> Result<Nodes, NodesError> {
        let network = Network {
            relays,
            min_keys: 0,
        };
        Self::start_network(dir, &network, now, codes, code_validity_s)
    }

    /// [`Nodes::start`] for a scenario's network: its relays, and its gateway
    /// padding each period to `network.min_keys`.
    pub fn start_network(
        dir: &Path,
        network: &Network,
        now: u64,
        codes: usize,
        code_validity_s: u64,
    ) -> Result<Nodes, NodesError> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        let authority = AuthorityKey::generate(ORIGIN, 1);
        let clock = ManualClock::new(now);
        let gw_dir = dir.join("gateway");
        std::fs::create_dir_all(&gw_dir)?;
        // Codes buy tokens at the issuer; the gateway itself takes no code.
        let (codes, records) = upload_codes::issue(codes, now + code_validity_s);
        upload_codes::write_incoming(&gw_dir.join("issuer"), &records)?;
        let key_file = gw_dir.join("authority.key");
        traceless_node::keys::write_authority_key(&key_file, &authority)
            .map_err(|e| NodesError::Start(e.to_string()))?;
        let token_file = gw_dir.join(format!("tokens-{TOKEN_EPOCH}.key"));
        traceless_node::keys::write_token_key(&token_file, &TokenKey::generate(TOKEN_EPOCH))
            .map_err(|e| NodesError::Start(e.to_string()))?;
        let start_err = |e: &dyn std::fmt::Display| NodesError::Start(e.to_string());
        // A fixed export signing key: ECDSA signatures' DER length depends on
        // the key, and a random one would make download bytes differ between
        // two runs of one seed. Simulation only.
        let sim_export_key = traceless_protocol::p256::ecdsa::SigningKey::from_slice(&[0x5e; 32])
            .map_err(|e| start_err(&e))?;
        let export_key = traceless_node::export_keys::certify(
            sim_export_key,
            &authority,
            traceless_protocol::ExportSigner {
                key_id: "999".into(),
                key_version: "v1".into(),
            },
            "XX",
            now.saturating_sub(30 * 86_400),
            now + 365 * 86_400,
        )
        .map_err(|e| start_err(&e))?;
        let export_file = gw_dir.join("export.key");
        traceless_node::export_keys::write(&export_file, &export_key).map_err(|e| start_err(&e))?;
        let risk_config = RiskConfig {
            origin: ORIGIN.into(),
            revision: 1,
            created_at: now.saturating_sub(86_400),
            parameters: RiskParameters::default(),
        }
        .sign(&authority)
        .map_err(|e| start_err(&e))?;
        let risk_file = gw_dir.join("risk-config");
        std::fs::write(&risk_file, risk_config.encode())?;
        // Every node collects its peers' cosignatures on its checkpoints, so
        // that phones can require witnessed publication proofs (SPEC.md §8.3).
        let relay_dirs: Vec<_> = (0..network.relays)
            .map(|i| dir.join(format!("relay-{i}")))
            .collect();
        let node_keys = std::iter::once(&gw_dir)
            .chain(&relay_dirs)
            .map(|d| {
                std::fs::create_dir_all(d)?;
                traceless_node::keys::deletion_log_key(d)
                    .map(|k| hex::encode(k.verifying_key().to_bytes()))
                    .map_err(|e| start_err(&e))
            })
            .collect::<Result<Vec<_>, NodesError>>()?;
        let known_but = |own: usize| {
            let mut k = node_keys.clone();
            k.remove(own);
            k
        };
        let mut gc = base_config(&gw_dir, &authority, Vec::new());
        gc.witness.known = known_but(0);
        gc.role = Role::Gateway;
        gc.publication.min_keys = network.min_keys;
        gc.gateway = Some(gateway_config(
            &key_file,
            &token_file,
            &export_file,
            &risk_file,
        )?);
        let start = |c: Config| {
            rt.block_on(traceless_node::start(c, Arc::new(clock.clone())))
                .map_err(|e| NodesError::Start(e.to_string()))
        };
        let gateway = start(gc)?;
        let gateway_addr = gateway
            .p2p_addrs
            .first()
            .ok_or_else(|| NodesError::Start("the gateway listens on no libp2p address".into()))?
            .to_string();
        let mut nodes: Vec<RunningNode> = Vec::new();
        for i in 0..network.relays {
            // Each relay dials the previous relay and its upload gateway (a
            // relay dials the gateways it forwards to): a connected mesh.
            let boot = nodes
                .last()
                .map(|prev| prev.p2p_addrs.iter().map(|a| a.to_string()).collect())
                .unwrap_or_default();
            let mut c = base_config(&relay_dirs[i as usize], &authority, boot);
            c.witness.known = known_but(i as usize + 1);
            c.p2p.upload_gateways = vec![UploadGateway {
                origin: ORIGIN.into(),
                address: gateway_addr.clone(),
            }];
            nodes.push(start(c)?);
        }
        let net = Nodes {
            rt,
            gateway,
            relays: nodes,
            clock,
            authority,
            codes,
            export_key,
            risk_config,
            reported: std::sync::atomic::AtomicU64::new(1),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !net
            .relays
            .iter()
            .all(|r| !r.federation.peers().connected.is_empty())
        {
            if Instant::now() > deadline {
                return Err(NodesError::NotConnected);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(net)
    }

    /// Runs the period job (the gateway publishes at boundaries, SPEC.md §6.4)
    /// and releases due batches on every node (the nodes' own job does this
    /// every second of wall time; the simulator calls it right after moving the
    /// clock). Returns the sequences the gateway published since the last call,
    /// whichever of the two got there first.
    pub fn release_due(&self) -> Vec<u64> {
        for core in std::iter::once(&self.gateway)
            .chain(&self.relays)
            .map(|n| &n.core)
        {
            let _ = core.run_period();
            let _ = core.release_due();
        }
        let next = self.gateway_next_sequence();
        let from = self
            .reported
            .swap(next, std::sync::atomic::Ordering::SeqCst);
        (from..next).collect()
    }

    /// The sequence number the gateway gives its next batch: the batches an
    /// upload published are those from this number before it up to this number
    /// after it (a sealed upload's answer is a fixed status that names none).
    pub fn gateway_next_sequence(&self) -> u64 {
        self.gateway
            .core
            .store
            .next_sequence(ORIGIN)
            .unwrap_or_default()
    }

    /// What the nodes' `/metrics` (over HTTP, as of the last period boundary)
    /// say about uploads: whether they
    /// came through the relays or straight to the gateway.
    pub fn upload_traffic(&self) -> Result<UploadTraffic, http::HttpError> {
        let metrics = |addr| -> Result<String, http::HttpError> {
            let r = http::request(addr, "GET", "/metrics", b"")?;
            Ok(String::from_utf8_lossy(&r.body).into_owned())
        };
        let gateway = metrics(self.gateway.http_addr)?;
        let mut relayed = 0;
        for r in &self.relays {
            relayed += requests(&metrics(r.http_addr)?, "/v1/relay/{origin}", Some(200));
        }
        Ok(UploadTraffic {
            relays_forwarded: relayed,
            gateway_relayed_accepted: counter(&gateway, "traceless_relayed_uploads_accepted_total"),
            gateway_relayed_refused: counter(&gateway, "traceless_relayed_uploads_refused_total"),
            gateway_direct: requests(&gateway, "/v1/upload", None)
                + requests(&gateway, "/v1/relay/{origin}", None),
            tokens_issued: counter(&gateway, "traceless_tokens_issued_total"),
        })
    }

    /// Folds the gateway's newly publishable filter entries into new parts of
    /// their day filters at the clock's time and gossips them (the gateway's own
    /// job does this on its period; the simulator calls it at the sync hour).
    pub fn rebuild_filters(&self) {
        let _ = self.gateway.core.rebuild_filters();
    }

    /// Waits until every relay stores every part of every day filter the
    /// gateway holds; returns the milliseconds that took, or `None` after 15 s.
    pub fn wait_for_filters(&self) -> Option<f64> {
        let want = self.gateway.core.store.all_filters().unwrap_or_default();
        let started = Instant::now();
        let deadline = started + Duration::from_secs(15);
        loop {
            let done = self.relays.iter().all(|r| {
                want.iter().all(|f| {
                    r.core
                        .store
                        .get_filter(&f.origin, f.day, f.revision)
                        .ok()
                        .flatten()
                        .is_some()
                })
            });
            if done {
                return Some(started.elapsed().as_secs_f64() * 1000.0);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Waits until every relay stores every venue warning batch the gateway
    /// published (gossip, or catch-up); returns whether they all arrived
    /// within 15 s.
    pub fn wait_for_warnings(&self) -> bool {
        let seqs = |n: &RunningNode| -> HashSet<u64> {
            n.core
                .warning_files()
                .list(Some(ORIGIN), 0)
                .unwrap_or_default()
                .into_iter()
                .map(|m| m.sequence)
                .collect()
        };
        let want = seqs(&self.gateway);
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if self.relays.iter().all(|r| want.is_subset(&seqs(r))) {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Warning batches the gateway has published.
    pub fn warning_batches(&self) -> u64 {
        self.gateway
            .core
            .warning_files()
            .list(Some(ORIGIN), 0)
            .map_or(0, |l| l.len() as u64)
    }

    /// Every node's data directory, gateway first.
    pub fn data_dirs(&self) -> Vec<std::path::PathBuf> {
        std::iter::once(&self.gateway)
            .chain(&self.relays)
            .map(|n| n.core.config.data_dir.clone())
            .collect()
    }

    /// Runs retention on every node at the clock's time.
    pub fn run_retention(&self) {
        for n in std::iter::once(&self.gateway).chain(&self.relays) {
            let _ = n.core.run_retention();
        }
    }

    /// Starts watching relays for published batches (see [`Propagation`]).
    pub fn watch(&self) -> Propagation {
        let relays: Vec<Arc<Core>> = self.relays.iter().map(|r| r.core.clone()).collect();
        let shared = Arc::new(Mutex::new(Watch::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (s2, stop2) = (shared.clone(), stop.clone());
        let handle = std::thread::spawn(move || {
            while !stop2.load(Ordering::Relaxed) {
                {
                    let mut w = s2.lock().unwrap_or_else(|e| e.into_inner());
                    let Watch { pending, latencies } = &mut *w;
                    pending.retain(|&(r, seq, t0)| {
                        let have = relays[r]
                            .store
                            .get_batch(ORIGIN, seq)
                            .ok()
                            .flatten()
                            .is_some();
                        if have {
                            latencies.push(t0.elapsed().as_secs_f64() * 1000.0);
                        }
                        !have
                    });
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        });
        Propagation {
            relays: self.relays.len(),
            shared,
            stop,
            handle: Some(handle),
        }
    }

    /// Keys and batches each node stores, and its on-disk size in bytes.
    pub fn storage(&self) -> Vec<NodeStorage> {
        std::iter::once(&self.gateway)
            .chain(&self.relays)
            .map(|n| {
                let all = n.core.store.all_batches().unwrap_or_default();
                NodeStorage {
                    batches: all.len() as u64,
                    keys: all.iter().map(|m| m.key_count()).sum(),
                    disk_bytes: dir_size(&n.core.config.data_dir),
                }
            })
            .collect()
    }

    /// Stops every node.
    pub fn shutdown(self) {
        let Nodes {
            rt,
            gateway,
            relays,
            ..
        } = self;
        rt.block_on(async move {
            for r in relays {
                r.shutdown().await;
            }
            gateway.shutdown().await;
        });
        rt.shutdown_timeout(Duration::from_secs(2));
    }
}

#[derive(Default)]
struct Watch {
    /// (relay, sequence, published at) not yet stored by that relay.
    pending: Vec<(usize, u64, Instant)>,
    /// Milliseconds from publication to a relay storing the batch.
    latencies: Vec<f64>,
}

/// Gateway-to-relay propagation, measured by a thread that polls every relay's
/// store each millisecond for batches the gateway published.
pub struct Propagation {
    relays: usize,
    shared: Arc<Mutex<Watch>>,
    stop: Arc<AtomicBool>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl Propagation {
    /// The gateway published `sequence` just now.
    pub fn published(&self, sequence: u64) {
        let now = Instant::now();
        let mut w = self.shared.lock().unwrap_or_else(|e| e.into_inner());
        for r in 0..self.relays {
            w.pending.push((r, sequence, now));
        }
    }

    /// Waits (at most 15 s) until every relay has every published batch; returns
    /// whether they all arrived.
    pub fn wait(&self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let empty = self
                .shared
                .lock()
                .map(|w| w.pending.is_empty())
                .unwrap_or(true);
            if empty {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Stops watching; returns every latency measured, milliseconds.
    pub fn finish(mut self) -> Vec<f64> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
        let mut w = self.shared.lock().unwrap_or_else(|e| e.into_inner());
        std::mem::take(&mut w.latencies)
    }
}

/// Upload traffic as the nodes count it (their `/metrics`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct UploadTraffic {
    /// Sealed uploads the relays took from phones and answered 200 (forwarded
    /// to the gateway and accepted there), summed over relays.
    pub relays_forwarded: u64,
    /// Sealed uploads the gateway received from relays and accepted, real and
    /// dummy alike.
    pub gateway_relayed_accepted: u64,
    /// Sealed uploads the gateway received from relays and refused.
    pub gateway_relayed_refused: u64,
    /// Upload requests phones sent to the gateway itself (`/v1/upload` or
    /// `/v1/relay/…`), any answer: 0 when every upload went through a relay.
    pub gateway_direct: u64,
    /// Upload tokens the authority's issuer (on the gateway) issued.
    pub tokens_issued: u64,
}

/// The value of an unlabelled Prometheus counter, 0 if absent.
fn counter(text: &str, name: &str) -> u64 {
    text.lines()
        .filter_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .filter_map(|v| v.trim().parse::<u64>().ok())
        .sum()
}

/// HTTP requests to the route template `route`, with status `status` or any.
fn requests(text: &str, route: &str, status: Option<u16>) -> u64 {
    let prefix = format!("traceless_http_requests_total{{route=\"{route}\",status=\"");
    text.lines()
        .filter_map(|l| l.strip_prefix(&prefix))
        .filter_map(|rest| {
            let (code, value) = rest.split_once("\"} ")?;
            let code: u16 = code.parse().ok()?;
            status
                .is_none_or(|s| s == code)
                .then(|| value.trim().parse::<u64>().ok())?
        })
        .sum()
}

/// What one node holds.
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct NodeStorage {
    /// Batches stored.
    pub batches: u64,
    /// Keys stored.
    pub keys: u64,
    /// Bytes on disk (sled database and keys).
    pub disk_bytes: u64,
}

fn dir_size(p: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![p.to_owned()];
    let mut budget = 100_000;
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            budget -= 1;
            if budget == 0 {
                return total;
            }
            match e.metadata() {
                Ok(m) if m.is_dir() => stack.push(e.path()),
                Ok(m) => total += m.len(),
                Err(_) => {}
            }
        }
    }
    total
}

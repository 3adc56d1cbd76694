//! Real node processes: generated keys and configs, one `traceless-node run`
//! per node (inside its namespace), links between them, kill and restart,
//! memory and file descriptors from `/proc`.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use traceless_node::config::{Config, GatewayConfig, Role, StorageConfig, TrustEntry};
use traceless_protocol::AuthorityKey;

use super::link::{Link, LinkParams};
use super::netns::{Host, Isolation};
use super::NetError;
use crate::http;

/// The program that runs a node: the `traceless-node` binary, or this
/// simulator's `node` subcommand (the same `traceless_node::cli::main`).
#[derive(Clone, Debug)]
pub struct NodeProgram {
    /// Executable.
    pub program: PathBuf,
    /// Arguments before the node's own (`["node"]` for the simulator).
    pub args: Vec<String>,
}

impl NodeProgram {
    /// `traceless-node` next to the running executable (or one directory up,
    /// for test binaries in `deps/`), else `sim` run as `sim node …`.
    pub fn find(sim: &Path) -> NodeProgram {
        let exe = std::env::current_exe().unwrap_or_default();
        let near = exe
            .parent()
            .into_iter()
            .flat_map(|d| [d.to_owned(), d.join("..")]);
        for dir in near {
            let p = dir.join("traceless-node");
            if p.is_file() {
                return NodeProgram {
                    program: p,
                    args: Vec::new(),
                };
            }
        }
        NodeProgram {
            program: sim.to_owned(),
            args: vec!["node".into()],
        }
    }
}

/// One node of the cluster.
pub struct NetNode {
    /// Index in the cluster.
    pub index: usize,
    /// The origin this node is the gateway for, if it is one.
    pub origin: Option<String>,
    /// Config file.
    pub config_path: PathBuf,
    /// Data directory.
    pub data_dir: PathBuf,
    /// HTTP address (known once started).
    pub http: Option<SocketAddr>,
    /// libp2p TCP address the node listens on.
    pub p2p: SocketAddr,
    /// `/p2p/<peer id>` suffix.
    pub peer_id: String,
    /// Clock offset, seconds.
    pub skew_secs: i64,
    child: Option<Child>,
}

impl NetNode {
    /// The process id while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }
}

/// Resident memory (KiB) and open file descriptors of a process.
pub fn proc_usage(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as u64;
    Some((rss, fds))
}

/// A link between two nodes: `from` dials `to` through `link`.
pub struct NetLink {
    /// Dialling node.
    pub from: usize,
    /// Listening node.
    pub to: usize,
    /// The emulator.
    pub link: Link,
}

/// The running cluster.
pub struct Cluster {
    /// The namespaces (dropped after the processes).
    pub nodes: Vec<NetNode>,
    /// Every link.
    pub links: Vec<NetLink>,
    /// The authority of each gateway origin.
    pub authorities: BTreeMap<String, AuthorityKey>,
    /// Unused upload codes of each gateway origin.
    pub codes: BTreeMap<String, Vec<String>>,
    program: NodeProgram,
    host: Host,
    /// Runs the link emulators.
    pub rt: tokio::runtime::Runtime,
}

fn free_port() -> Result<u16, NetError> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// What to build: which nodes are gateways, and the links with their parameters.
pub struct ClusterPlan {
    /// Number of nodes.
    pub nodes: usize,
    /// Gateway node indices, each with its origin.
    pub gateways: Vec<(usize, String)>,
    /// (dialler, listener, parameters) per link.
    pub links: Vec<(usize, usize, LinkParams)>,
    /// Catch-up interval of every node, seconds.
    pub catchup_interval_secs: u64,
    /// Gossipsub heartbeat, milliseconds.
    pub heartbeat_ms: u64,
    /// Upload codes issued to each gateway.
    pub codes_per_gateway: usize,
    /// Clock offset of some nodes, seconds (through libfaketime; see [`FAKETIME_LIB`]).
    pub skew_secs: Vec<(usize, i64)>,
    /// Every node's database settings.
    pub storage: StorageConfig,
}

/// libfaketime (Debian `faketime`), preloaded into a node whose clock is skewed.
/// Only the wall clock moves (`FAKETIME_DONT_FAKE_MONOTONIC`): timers and
/// timeouts run at normal speed, as on a machine whose clock is just wrong.
pub const FAKETIME_LIB: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

impl Cluster {
    /// Prepares keys and configs under `dir`, starts the links, then the nodes,
    /// and waits until every node answers `/healthz`.
    pub fn start(
        plan: &ClusterPlan,
        host: Host,
        program: NodeProgram,
        dir: &Path,
        seed: u64,
    ) -> Result<Cluster, NetError> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        let mut authorities = BTreeMap::new();
        for (_, origin) in &plan.gateways {
            authorities.insert(origin.clone(), AuthorityKey::generate(origin, 1));
        }
        let trust: Vec<TrustEntry> = authorities
            .iter()
            .map(|(origin, a)| TrustEntry {
                origin: origin.clone(),
                key_id: a.key_id,
                public_key: hex::encode(a.verifying_key().to_bytes()),
            })
            .collect();
        let mut nodes = Vec::new();
        for i in 0..plan.nodes {
            let data_dir = dir.join(format!("node-{i}"));
            std::fs::create_dir_all(&data_dir)?;
            let identity = traceless_node::keys::node_identity(&data_dir)
                .map_err(|e| NetError::Setup(e.to_string()))?;
            let port = match host.isolation() {
                Isolation::Namespaces => traceless_node::config::DEFAULT_P2P_PORT,
                Isolation::Loopback => free_port()?,
            };
            nodes.push(NetNode {
                index: i,
                origin: plan.gateways.iter().find(|g| g.0 == i).map(|g| g.1.clone()),
                config_path: data_dir.join("node.toml"),
                data_dir,
                http: None,
                p2p: SocketAddr::new(host.node_ip(i), port),
                peer_id: identity.public().to_peer_id().to_string(),
                skew_secs: plan.skew_secs.iter().find(|s| s.0 == i).map_or(0, |s| s.1),
                child: None,
            });
        }
        let mut links = Vec::new();
        for (k, &(from, to, params)) in plan.links.iter().enumerate() {
            let listen = SocketAddr::new(host.root_ip(from), 0);
            let link = rt.block_on(Link::start(listen, nodes[to].p2p, params, seed ^ k as u64))?;
            links.push(NetLink { from, to, link });
        }
        let mut codes = BTreeMap::new();
        for n in &nodes {
            let mut c = Config {
                data_dir: n.data_dir.clone(),
                ..Config::default()
            };
            c.http.listen = match host.isolation() {
                Isolation::Namespaces => SocketAddr::new(n.p2p.ip(), 8080),
                Isolation::Loopback => SocketAddr::from(([127, 0, 0, 1], 0)),
            };
            c.p2p.listen = vec![format!("/ip4/{}/tcp/{}", n.p2p.ip(), n.p2p.port())];
            c.p2p.kademlia = false;
            c.p2p.heartbeat_ms = plan.heartbeat_ms;
            c.storage = plan.storage.clone();
            c.p2p.catchup_interval_secs = plan.catchup_interval_secs;
            c.p2p.bootstrap = links
                .iter()
                .filter(|l| l.from == n.index)
                .map(|l| {
                    format!(
                        "/ip4/{}/tcp/{}/p2p/{}",
                        l.link.listen.ip(),
                        l.link.listen.port(),
                        nodes[l.to].peer_id
                    )
                })
                .collect();
            c.trust = trust.clone();
            // One-second periods without padding: these runs measure how
            // batches cross a faulty network, not the publication schedule
            // (SPEC.md §6.4), and count every published key; public figures
            // (/metrics) then move every second on every node.
            c.publication = traceless_node::config::PublicationConfig {
                period_seconds: 1,
                min_keys: 0,
                ..Default::default()
            };
            if let Some(origin) = &n.origin {
                let key_file = n.data_dir.join("authority.key");
                traceless_node::keys::write_authority_key(&key_file, &authorities[origin])
                    .map_err(|e| NetError::Setup(e.to_string()))?;
                c.role = Role::Gateway;
                c.gateway = Some(gateway_config(origin, &key_file)?);
                let expires = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs())
                    + 86_400;
                let (issued, records) =
                    traceless_node::upload_codes::issue(plan.codes_per_gateway, expires);
                traceless_node::upload_codes::write_incoming(&n.data_dir, &records)?;
                codes.insert(origin.clone(), issued);
            }
            let text = toml::to_string(&c).map_err(|e| NetError::Setup(e.to_string()))?;
            std::fs::write(&n.config_path, text)?;
        }
        let mut cluster = Cluster {
            nodes,
            links,
            authorities,
            codes,
            program,
            host,
            rt,
        };
        for i in 0..cluster.nodes.len() {
            cluster.spawn(i)?;
        }
        Ok(cluster)
    }

    /// Namespaces or loopback.
    pub fn isolation(&self) -> Isolation {
        self.host.isolation()
    }

    /// Why namespaces were not used.
    pub fn fallback_reason(&self) -> Option<&str> {
        self.host.fallback_reason.as_deref()
    }

    /// The host (for netem detection).
    pub fn host(&self) -> &Host {
        &self.host
    }

    /// Starts node `i`'s process and waits for its HTTP address (printed first).
    pub fn spawn(&mut self, i: usize) -> Result<(), NetError> {
        let n = &mut self.nodes[i];
        let prefix = self.host.exec_prefix(i);
        let mut cmd = match prefix.split_first() {
            Some((p, rest)) => {
                let mut c = Command::new(p);
                c.args(rest).arg(&self.program.program);
                c
            }
            None => Command::new(&self.program.program),
        };
        if n.skew_secs != 0 {
            if !Path::new(FAKETIME_LIB).exists() {
                return Err(NetError::Setup(format!(
                    "clock skew needs {FAKETIME_LIB} (Debian faketime; .ci/install-sim-net.sh)"
                )));
            }
            cmd.env("LD_PRELOAD", FAKETIME_LIB)
                .env("FAKETIME", format!("{:+}", n.skew_secs))
                .env("FAKETIME_DONT_FAKE_MONOTONIC", "1")
                .env("FAKETIME_NO_CACHE", "1");
        }
        let log = std::fs::File::create(n.data_dir.join("node.log"))?;
        let mut child = cmd
            .args(&self.program.args)
            .arg("run")
            .arg("--config")
            .arg(&n.config_path)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| NetError::Setup("no stdout".into()))?;
        let mut lines = BufReader::new(stdout).lines();
        let first = lines.next().and_then(Result::ok).unwrap_or_default();
        let addr = first
            .strip_prefix("traceless-node: HTTP on http://")
            .map(|a| a.trim_end_matches('/'))
            .and_then(|a| a.parse::<SocketAddr>().ok());
        std::thread::spawn(move || for _ in lines {});
        n.child = Some(child);
        let Some(addr) = addr else {
            let log = std::fs::read_to_string(n.data_dir.join("node.log")).unwrap_or_default();
            return Err(NetError::Setup(format!(
                "node {i} did not start: {first:?}; log: {}",
                log.lines().rev().take(5).collect::<Vec<_>>().join(" | ")
            )));
        };
        n.http = Some(addr);
        let deadline = Instant::now() + Duration::from_secs(20);
        while http::request(addr, "GET", "/healthz", b"")
            .map(|r| r.status)
            .ok()
            != Some(200)
        {
            if Instant::now() > deadline {
                return Err(NetError::Setup(format!("node {i} never answered /healthz")));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// Kills node `i` (SIGKILL: what it acknowledged must survive).
    pub fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.nodes[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Whether node `i` runs.
    pub fn is_running(&self, i: usize) -> bool {
        self.nodes[i].child.is_some()
    }

    /// Cuts (or restores) every link between the groups: links inside a group
    /// stay up, links across groups go down. `None` heals everything.
    pub fn partition(&self, groups: Option<&[Vec<usize>]>) {
        let group_of =
            |i: usize| groups.and_then(|g| g.iter().position(|members| members.contains(&i)));
        for l in &self.links {
            let up = groups.is_none() || group_of(l.from) == group_of(l.to);
            if l.link.is_up() != up {
                l.link.set_up(up);
            }
        }
    }

    /// Bytes every node's links carried (each link counted for both ends).
    pub fn bytes_per_node(&self) -> Vec<u64> {
        let mut v = vec![0; self.nodes.len()];
        for l in &self.links {
            v[l.from] += l.link.bytes();
            v[l.to] += l.link.bytes();
        }
        v
    }

    /// The node IP addresses (for the report).
    pub fn node_ips(&self) -> Vec<IpAddr> {
        self.nodes.iter().map(|n| n.p2p.ip()).collect()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.kill(i);
        }
    }
}

fn gateway_config(origin: &str, key_file: &Path) -> Result<GatewayConfig, NetError> {
    let v = serde_json::json!({
        "origin": origin,
        "authority_key_file": key_file,
        "uploads_per_minute": 1_000_000,
        "token_keys": [],
        "response_delay_ms": 0,
    });
    serde_json::from_value(v).map_err(|e| NetError::Setup(format!("gateway config: {e}")))
}

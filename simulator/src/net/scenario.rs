//! A network scenario (`scenarios/net-*.toml`): nodes, topology, links,
//! gateways and their uploads, and a fault timeline.

use std::path::Path;

use traceless_node::config::StorageConfig;

use super::link::LinkParams;
use super::NetError;

/// How nodes are linked.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Topology {
    /// Every pair of nodes.
    #[default]
    Full,
    /// Node i to node i+1 (and the last to the first).
    Ring,
    /// `regions` contiguous groups, full inside, `inter_region_links` links
    /// (with `inter_region` parameters) between every two groups.
    Regions,
}

/// One fault on the timeline.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum Fault {
    /// Cut every link between the groups (nodes not listed form one more group).
    Partition {
        /// Seconds from the start.
        at_s: f64,
        /// Node indices per side.
        groups: Vec<Vec<usize>>,
    },
    /// Restore every link.
    Heal {
        /// Seconds from the start.
        at_s: f64,
    },
    /// Kill (SIGKILL) a fraction of the relays, chosen by the seed, and restart
    /// them `down_s` later.
    Churn {
        /// Seconds from the start.
        at_s: f64,
        /// Fraction of relays (non-gateways).
        fraction: f64,
        /// Seconds each stays down.
        down_s: f64,
    },
    /// Sybil peers (in the simulator) flood the relays' batch topic with
    /// malformed messages: `rate_per_s` in all, spread over `sybils` peers,
    /// each connected to one relay.
    Flood {
        /// Seconds from the start.
        at_s: f64,
        /// Seconds it lasts.
        duration_s: f64,
        /// Messages per second, all Sybils together.
        rate_per_s: u64,
        /// Sybil peers.
        sybils: usize,
    },
    /// A withholding peer (in the simulator) connects to node `target` and
    /// advertises sequences 1..=`up_to` of the first gateway's origin for
    /// `duration_s`, serving none.
    Withhold {
        /// Seconds from the start.
        at_s: f64,
        /// Seconds it stays.
        duration_s: f64,
        /// The node it connects to.
        target: usize,
        /// Highest sequence it advertises.
        up_to: u64,
    },
}

impl Fault {
    /// When it happens.
    pub fn at_s(&self) -> f64 {
        match self {
            Fault::Partition { at_s, .. }
            | Fault::Heal { at_s }
            | Fault::Churn { at_s, .. }
            | Fault::Flood { at_s, .. }
            | Fault::Withhold { at_s, .. } => *at_s,
        }
    }
}

fn one() -> u64 {
    1
}
fn default_gateways() -> Vec<usize> {
    vec![0]
}
fn default_inter_links() -> usize {
    2
}
fn default_catchup() -> u64 {
    2
}
fn default_heartbeat() -> u64 {
    200
}
fn default_settle() -> f64 {
    60.0
}
fn default_sample() -> u64 {
    1000
}

/// Uploads each gateway takes during the run (one key each: one batch each).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Uploads {
    /// Uploads per gateway.
    pub per_gateway: usize,
    /// Milliseconds between two uploads of one gateway.
    pub interval_ms: u64,
    /// Seconds from the start of the first upload.
    #[serde(default)]
    pub start_s: f64,
}

/// A network scenario.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetScenario {
    /// Name (report directory).
    pub name: String,
    /// Seed of every random choice (churn victims, jitter, loss).
    #[serde(default = "one")]
    pub seed: u64,
    /// Number of nodes (gateways included).
    pub nodes: usize,
    /// Topology.
    #[serde(default)]
    pub topology: Topology,
    /// Regions (topology `regions`).
    #[serde(default)]
    pub regions: usize,
    /// Links between two regions.
    #[serde(default = "default_inter_links")]
    pub inter_region_links: usize,
    /// Parameters of every link (inside a region).
    #[serde(default)]
    pub link: LinkParams,
    /// Parameters of links between regions.
    #[serde(default)]
    pub inter_region: LinkParams,
    /// Gateway node indices; each signs for its own origin `net<k>.health`.
    #[serde(default = "default_gateways")]
    pub gateways: Vec<usize>,
    /// The uploads.
    pub uploads: Uploads,
    /// The faults.
    #[serde(default, rename = "fault")]
    pub faults: Vec<Fault>,
    /// Catch-up interval of every node, seconds.
    #[serde(default = "default_catchup")]
    pub catchup_interval_secs: u64,
    /// Gossipsub heartbeat, milliseconds.
    #[serde(default = "default_heartbeat")]
    pub heartbeat_ms: u64,
    /// Longest wait, after the last upload and the last fault, for every node to
    /// hold every batch.
    #[serde(default = "default_settle")]
    pub settle_s: f64,
    /// Memory and file-descriptor sampling period, milliseconds.
    #[serde(default = "default_sample")]
    pub sample_ms: u64,
    /// Every node's database settings (`[storage]`, as in the node's config).
    #[serde(default)]
    pub storage: StorageConfig,
}

impl NetScenario {
    /// Reads and validates a scenario file.
    pub fn load(path: &Path) -> Result<NetScenario, NetError> {
        let text = std::fs::read_to_string(path)?;
        let s: NetScenario = toml::from_str(&text)
            .map_err(|e| NetError::Scenario(format!("{}: {e}", path.display())))?;
        s.validate()?;
        Ok(s)
    }

    /// Checks indices and ranges.
    pub fn validate(&self) -> Result<(), NetError> {
        let bad = |m: String| Err(NetError::Scenario(m));
        if self.nodes < 2 {
            return bad(format!("nodes = {}: at least 2", self.nodes));
        }
        if self.gateways.is_empty() || self.gateways.iter().any(|&g| g >= self.nodes) {
            return bad(format!(
                "gateways {:?} must be node indices below {}",
                self.gateways, self.nodes
            ));
        }
        if self.topology == Topology::Regions && !(2..=self.nodes).contains(&self.regions) {
            return bad(format!("regions = {}: 2..=nodes", self.regions));
        }
        for l in [&self.link, &self.inter_region] {
            if !(0.0..=1.0).contains(&l.loss) || l.latency_ms < 0.0 || l.jitter_ms < 0.0 {
                return bad(format!("link parameters out of range: {l:?}"));
            }
        }
        for f in &self.faults {
            match f {
                Fault::Partition { groups, .. }
                    if groups.iter().flatten().any(|&i| i >= self.nodes) =>
                {
                    return bad(format!(
                        "partition groups {groups:?} name a node ≥ {}",
                        self.nodes
                    ));
                }
                Fault::Withhold { target, .. } if *target >= self.nodes => {
                    return bad(format!("withholding target {target} ≥ {}", self.nodes));
                }
                Fault::Churn { fraction, .. } if !(0.0..=1.0).contains(fraction) => {
                    return bad(format!("churn fraction {fraction}: 0..=1"));
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Origin of gateway `k`.
    pub fn origin(k: usize) -> String {
        format!("net{k}.health")
    }

    /// The region of node `i` (0 without regions).
    pub fn region_of(&self, i: usize) -> usize {
        if self.topology != Topology::Regions {
            return 0;
        }
        i * self.regions / self.nodes
    }

    /// Every link: (dialler, listener, parameters), the lower index dialling.
    pub fn links(&self) -> Vec<(usize, usize, LinkParams)> {
        let n = self.nodes;
        match self.topology {
            Topology::Full => (0..n)
                .flat_map(|a| (a + 1..n).map(move |b| (a, b)))
                .map(|(a, b)| (a, b, self.link))
                .collect(),
            Topology::Ring => (0..n)
                .map(|a| {
                    let b = (a + 1) % n;
                    (a.min(b), a.max(b))
                })
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .map(|(a, b)| (a, b, self.link))
                .collect(),
            Topology::Regions => {
                let members: Vec<Vec<usize>> = (0..self.regions)
                    .map(|r| (0..n).filter(|&i| self.region_of(i) == r).collect())
                    .collect();
                let mut out = Vec::new();
                for m in &members {
                    for (x, &a) in m.iter().enumerate() {
                        for &b in &m[x + 1..] {
                            out.push((a, b, self.link));
                        }
                    }
                }
                for (r, ma) in members.iter().enumerate() {
                    for mb in &members[r + 1..] {
                        for k in 0..self.inter_region_links {
                            let (a, b) = (ma[k % ma.len()], mb[(k + r) % mb.len()]);
                            out.push((a.min(b), a.max(b), self.inter_region));
                        }
                    }
                }
                out
            }
        }
    }
}

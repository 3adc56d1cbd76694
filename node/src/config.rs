//! Node configuration (`node.toml`), with embedded defaults for a single local node.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use traceless_protocol::ed25519_dalek::VerifyingKey;
use traceless_protocol::TrustList;

/// What a node does.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Stores, serves and forwards batches.
    #[default]
    Relay,
    /// A relay that also accepts uploads for one authority and signs its batches.
    Gateway,
}

/// Why a configuration was rejected.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this schema.
    #[error("invalid configuration: {0}")]
    Parse(#[from] toml::de::Error),
    /// A value is out of range or inconsistent.
    #[error("invalid configuration: {0}")]
    Invalid(String),
    /// An authority id (in `[[trust]]`, `[gateway]` or `p2p.upload_gateways`)
    /// is not one batches could carry.
    #[error("invalid configuration: {field} = {origin:?}: {reason}")]
    Origin {
        /// Where it was.
        field: &'static str,
        /// The value.
        origin: String,
        /// What is wrong with it.
        reason: traceless_protocol::WireError,
    },
}

/// Checks one configured authority id.
fn check_origin(field: &'static str, origin: &str) -> Result<(), ConfigError> {
    traceless_protocol::wire::validate_origin(origin).map_err(|reason| ConfigError::Origin {
        field,
        origin: origin.to_owned(),
        reason,
    })
}

/// The whole configuration.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where the database and the node's keys live.
    pub data_dir: PathBuf,
    /// Relay or gateway.
    pub role: Role,
    /// HTTP API for phones.
    pub http: HttpConfig,
    /// Federation.
    pub p2p: P2pConfig,
    /// Authorities whose batches this node accepts.
    pub trust: Vec<TrustEntry>,
    /// Gateway settings (role = "gateway").
    pub gateway: Option<GatewayConfig>,
    /// Retention schedule.
    pub retention: RetentionConfig,
    /// Day filters of filter-form uploads (gateways build them).
    pub filters: FilterConfig,
    /// The publication schedule (SPEC.md §6.4).
    pub publication: PublicationConfig,
    /// The peers' clocks (SPEC.md §2.1).
    pub clock: ClockConfig,
    /// Witnessing other nodes' logs (SPEC.md §8.3).
    pub witness: WitnessConfig,
    /// The database.
    pub storage: StorageConfig,
}

/// The database (`[storage]`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    /// Most memory sled's page cache holds, MiB (see `docs/operators.md`,
    /// "Memory", for the rest of a node's memory).
    pub cache_mib: u64,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            cache_mib: crate::storage::DEFAULT_CACHE_BYTES >> 20,
        }
    }
}

impl StorageConfig {
    /// The bound in bytes.
    pub fn cache_bytes(&self) -> u64 {
        self.cache_mib << 20
    }
}

/// Witnessing (SPEC.md §8.3).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WitnessConfig {
    /// Whether this node cosigns other nodes' checkpoints (default: relays do,
    /// gateways do not).
    pub cosign: Option<bool>,
    /// Witnesses whose cosignatures this node collects on its own checkpoints
    /// and serves: their node keys (the deletion-log key, 64 hex digits).
    /// Cosignatures by any other key are ignored.
    pub known: Vec<String>,
}

impl WitnessConfig {
    /// The known witnesses' keys (invalid entries are a configuration error).
    pub fn known_keys(&self) -> Result<Vec<[u8; 32]>, ConfigError> {
        self.known
            .iter()
            .map(|k| {
                hex::decode(k)
                    .ok()
                    .and_then(|b| <[u8; 32]>::try_from(b).ok())
                    .ok_or_else(|| {
                        ConfigError::Invalid(format!("witness.known: {k:?} is not 64 hex digits"))
                    })
            })
            .collect()
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("./data"),
            role: Role::Relay,
            http: HttpConfig::default(),
            p2p: P2pConfig::default(),
            trust: Vec::new(),
            gateway: None,
            retention: RetentionConfig::default(),
            filters: FilterConfig::default(),
            publication: PublicationConfig::default(),
            witness: WitnessConfig::default(),
            clock: ClockConfig::default(),
            storage: StorageConfig::default(),
        }
    }
}

/// HTTP settings.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// Listen address.
    pub listen: SocketAddr,
    /// Open connections at most (0: half the process's open-file limit). Further
    /// clients wait in the kernel's backlog until a connection closes.
    pub max_connections: usize,
    /// Seconds a connection may take to send a request head; also how long an
    /// idle connection stays open.
    pub header_timeout_secs: u64,
    /// Seconds a whole request (head, body, answer) may take; slower ones are
    /// answered 408 and closed.
    pub request_timeout_secs: u64,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            max_connections: 0,
            header_timeout_secs: 10,
            request_timeout_secs: 30,
        }
    }
}

/// Federation settings.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct P2pConfig {
    /// libp2p listen multiaddrs: TCP (`/ip4/../tcp/..`, with Noise and Yamux)
    /// and QUIC (`/ip4/../udp/../quic-v1`).
    pub listen: Vec<String>,
    /// Peers to dial at start and whenever disconnected (`/ip4/../tcp/../p2p/<id>`
    /// or `/ip4/../udp/../quic-v1/p2p/<id>`).
    pub bootstrap: Vec<String>,
    /// Gossipsub heartbeat, milliseconds.
    pub heartbeat_ms: u64,
    /// Seconds between catch-up rounds with every connected peer.
    pub catchup_interval_secs: u64,
    /// Discover more peers through Kademlia.
    pub kademlia: bool,
    /// Whether peers on one IP address are penalised by gossipsub scoring
    /// (sensible on the internet; off for local test networks).
    pub ip_colocation_penalty: bool,
    /// Gateways this node relays sealed uploads to, by origin (oblivious relay).
    pub upload_gateways: Vec<UploadGateway>,
}

impl P2pConfig {
    /// How many distinct peers the node is configured to dial (bootstrap and
    /// upload gateways): addresses with the same `/p2p/<id>` are one peer, an
    /// address without one counts as one.
    pub fn configured_peers(&self) -> usize {
        let addrs = self
            .bootstrap
            .iter()
            .chain(self.upload_gateways.iter().map(|g| &g.address));
        let mut ids = std::collections::BTreeSet::new();
        let mut anonymous = 0;
        for a in addrs {
            match a.split_once("/p2p/") {
                Some((_, id)) => {
                    ids.insert(id.split('/').next().unwrap_or(id));
                }
                None => anonymous += 1,
            }
        }
        ids.len() + anonymous
    }
}

/// Where sealed uploads for one origin go.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UploadGateway {
    /// Authority id.
    pub origin: String,
    /// The gateway's libp2p address, ending in `/p2p/<peer id>` (also dialled).
    pub address: String,
}

/// The default p2p port (TCP and QUIC): fixed, so that the addresses other
/// nodes bootstrap from survive a restart.
pub const DEFAULT_P2P_PORT: u16 = 4001;

impl P2pConfig {
    /// Loopback listen addresses on ports the OS picks (tests, local networks of
    /// many nodes on one machine).
    pub fn ephemeral_listen() -> Vec<String> {
        vec![
            "/ip4/127.0.0.1/tcp/0".into(),
            "/ip4/127.0.0.1/udp/0/quic-v1".into(),
        ]
    }
}

impl Default for P2pConfig {
    fn default() -> Self {
        P2pConfig {
            listen: vec![
                format!("/ip4/127.0.0.1/tcp/{DEFAULT_P2P_PORT}"),
                format!("/ip4/127.0.0.1/udp/{DEFAULT_P2P_PORT}/quic-v1"),
            ],
            bootstrap: Vec::new(),
            heartbeat_ms: 1000,
            catchup_interval_secs: 60,
            kademlia: true,
            ip_colocation_penalty: false,
            upload_gateways: Vec::new(),
        }
    }
}

/// One trusted authority key.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustEntry {
    /// Authority id, e.g. `"de.rki"`.
    pub origin: String,
    /// Key id within the authority.
    pub key_id: u32,
    /// Ed25519 public key, hex.
    pub public_key: String,
}

/// Gateway settings.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    /// The authority this gateway signs for.
    pub origin: String,
    /// File with the authority's current signing key (written by `authority keygen`),
    /// relative to the config file's directory.
    pub authority_key_file: PathBuf,
    /// Uploads accepted per minute across all phones (there is no per-phone limit:
    /// the node knows no phone).
    #[serde(default = "default_upload_rate")]
    pub uploads_per_minute: u32,
    /// The authority's VOPRF token keys (written by `authority token-keygen`):
    /// the gateway redeems tokens of these epochs and issues under the highest.
    /// Empty: only single-use codes authorize uploads.
    #[serde(default)]
    pub token_keys: Vec<TokenKeyFile>,
    /// Every relayed (sealed) upload is answered this many milliseconds after it
    /// arrived, real or dummy, so that response timing tells nothing.
    #[serde(default = "default_response_delay")]
    pub response_delay_ms: u64,
    /// The authority's GAEN export key with its certificate (written by
    /// `authority export-keygen`): every batch then carries its export
    /// signature and certificate (SPEC.md §6.2). None: no export files.
    #[serde(default)]
    pub export_key_file: Option<PathBuf>,
    /// The authority's signed risk configuration (written by `authority
    /// risk-config sign`), carried in every batch (SPEC.md §7.3).
    #[serde(default)]
    pub risk_config_file: Option<PathBuf>,
}

/// One epoch's token key file.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenKeyFile {
    /// Epoch (key id) named in tokens.
    pub epoch: u32,
    /// The key file, relative to the config file's directory.
    pub file: PathBuf,
}

fn default_response_delay() -> u64 {
    50
}

fn default_upload_rate() -> u32 {
    60
}

/// Retention schedule.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionConfig {
    /// Seconds between retention runs (at most 3600: SPEC.md §8.1).
    pub interval_secs: u64,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig { interval_secs: 600 }
    }
}

/// Day-filter settings (SPEC.md §5.8).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FilterConfig {
    /// No longer used: a gateway rebuilds its day filters at each publication
    /// period boundary (SPEC.md §6.4), so that filters move only then. Kept so
    /// that existing configs still parse.
    pub rebuild_seconds: u64,
}

impl Default for FilterConfig {
    fn default() -> Self {
        FilterConfig {
            rebuild_seconds: 600,
        }
    }
}

/// The publication schedule (SPEC.md §6.4).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PublicationConfig {
    /// Length of a publication period; a divisor of 86400, so that days start on
    /// a boundary.
    pub period_seconds: u64,
    /// k: a gateway's period publishes at least this many keys, padding with
    /// random keys (plus a random 0..=k/10 more).
    pub min_keys: u64,
    /// Keys the gateway's pool may hold; uploads beyond it are refused (busy).
    pub pool_max_keys: u64,
}

impl Default for PublicationConfig {
    fn default() -> Self {
        PublicationConfig {
            period_seconds: 3600,
            min_keys: 140,
            pool_max_keys: 1_000_000,
        }
    }
}

/// The peers' clocks (SPEC.md §2.1).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClockConfig {
    /// How far ahead of its peers' median the node's clock may be before it
    /// holds back releases, publications and deletions and raises the alarm.
    pub tolerance_secs: u64,
    /// Seconds after which a peer's clock sample is dropped.
    pub sample_max_age_secs: u64,
    /// A node with peers to bootstrap from holds releases, publications and
    /// deletions at start until it has sampled two peers' clocks (one if it
    /// has one bootstrap peer), or for at most this many seconds (then its
    /// own clock decides, as for a node without peers).
    pub startup_wait_secs: u64,
}

impl Default for ClockConfig {
    fn default() -> Self {
        ClockConfig {
            tolerance_secs: 600,
            sample_max_age_secs: 600,
            startup_wait_secs: 120,
        }
    }
}

impl Config {
    /// Reads a config file; relative paths in it are resolved against its directory.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut config: Config = toml::from_str(&text)?;
        let base = path.parent().unwrap_or(Path::new("."));
        if config.data_dir.is_relative() {
            config.data_dir = base.join(&config.data_dir);
        }
        if let Some(g) = &mut config.gateway {
            if g.authority_key_file.is_relative() {
                g.authority_key_file = base.join(&g.authority_key_file);
            }
            for f in [&mut g.export_key_file, &mut g.risk_config_file]
                .into_iter()
                .flatten()
            {
                if f.is_relative() {
                    *f = base.join(&*f);
                }
            }
            for t in &mut g.token_keys {
                if t.file.is_relative() {
                    t.file = base.join(&t.file);
                }
            }
        }
        config.validate()?;
        Ok(config)
    }

    /// Checks values that serde cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for t in &self.trust {
            check_origin("trust.origin", &t.origin)?;
        }
        self.witness.known_keys()?;
        if let Some(g) = &self.gateway {
            check_origin("gateway.origin", &g.origin)?;
        }
        for u in &self.p2p.upload_gateways {
            check_origin("p2p.upload_gateways.origin", &u.origin)?;
        }
        self.trust_list()?;
        if self.retention.interval_secs == 0 || self.retention.interval_secs > 3600 {
            return Err(ConfigError::Invalid(
                "retention.interval_secs must be 1..=3600".into(),
            ));
        }
        if self.storage.cache_mib == 0 || self.storage.cache_mib > 1 << 20 {
            return Err(ConfigError::Invalid(
                "storage.cache_mib must be 1..=1048576".into(),
            ));
        }
        if self.filters.rebuild_seconds == 0 || self.filters.rebuild_seconds > 86_400 {
            return Err(ConfigError::Invalid(
                "filters.rebuild_seconds must be 1..=86400".into(),
            ));
        }
        let period = self.publication.period_seconds;
        if period == 0 || 86_400 % period != 0 {
            return Err(ConfigError::Invalid(
                "publication.period_seconds must divide 86400 (e.g. 3600)".into(),
            ));
        }
        if self.http.header_timeout_secs == 0 || self.http.request_timeout_secs == 0 {
            return Err(ConfigError::Invalid(
                "http.header_timeout_secs and http.request_timeout_secs must be positive".into(),
            ));
        }
        if self.p2p.heartbeat_ms == 0 {
            return Err(ConfigError::Invalid(
                "p2p.heartbeat_ms must be positive".into(),
            ));
        }
        match (self.role, &self.gateway) {
            (Role::Gateway, None) => Err(ConfigError::Invalid(
                "role = \"gateway\" needs a [gateway] section".into(),
            )),
            (Role::Relay, Some(_)) => Err(ConfigError::Invalid(
                "a [gateway] section needs role = \"gateway\"".into(),
            )),
            _ => Ok(()),
        }
    }

    /// The trust list built from `[[trust]]` entries.
    pub fn trust_list(&self) -> Result<TrustList, ConfigError> {
        let mut list = TrustList::new();
        for t in &self.trust {
            let bytes: [u8; 32] = hex::decode(&t.public_key)
                .ok()
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| {
                    ConfigError::Invalid(format!(
                        "trust entry {}/{}: public_key must be 64 hex digits",
                        t.origin, t.key_id
                    ))
                })?;
            let key = VerifyingKey::from_bytes(&bytes).map_err(|_| {
                ConfigError::Invalid(format!(
                    "trust entry {}/{}: not an Ed25519 public key",
                    t.origin, t.key_id
                ))
            })?;
            list.insert(t.origin.clone(), t.key_id, key);
        }
        Ok(list)
    }
}

/// The commented example written by `traceless-node init`.
pub const EXAMPLE: &str = r#"# Traceless relay node configuration.
# Every setting is optional; without this file the node runs on these defaults.

# Database, node identity key and deletion-log key live here.
data_dir = "./data"

# "relay" stores, serves and forwards signed batches.
# "gateway" additionally accepts uploads for one health authority (see [gateway]).
role = "relay"

[http]
# The HTTP API for phones and the transparency page.
listen = "127.0.0.1:8080"
# Open connections at most (0: half the open-file limit); more wait in the backlog.
max_connections = 0
# An idle connection, or one whose request head has not arrived, is closed after
# this many seconds; a request whose body has not arrived after
# request_timeout_secs is answered 408 and closed.
header_timeout_secs = 10
request_timeout_secs = 30

[p2p]
# libp2p listen addresses: TCP (Noise + Yamux) and QUIC v1.
# Fixed ports, so that the addresses other nodes bootstrap from survive restarts
# (`traceless-node id` prints them with this node's peer id).
listen = ["/ip4/127.0.0.1/tcp/4001", "/ip4/127.0.0.1/udp/4001/quic-v1"]
# Peers to dial, over TCP or QUIC: "/ip4/192.0.2.10/tcp/4001/p2p/12D3KooW..." or
# "/ip4/192.0.2.10/udp/4001/quic-v1/p2p/12D3KooW...".
bootstrap = []
heartbeat_ms = 1000
catchup_interval_secs = 60
kademlia = true
# Penalise many peers behind one IP address (turn on for public deployments).
ip_colocation_penalty = false
# Gateways this node relays sealed uploads to (POST /v1/relay/{origin}), by
# origin: the gateway's libp2p address, ending in /p2p/<its peer id>.
# upload_gateways = [{ origin = "example.health", address = "/ip4/192.0.2.20/tcp/4001/p2p/12D3KooW..." }]
upload_gateways = []

# Authorities whose batches are accepted. A batch is trusted only because its
# signature verifies under one of these keys, never because of who forwarded it.
# `traceless-node authority keygen` prints an entry to paste here.
# [[trust]]
# origin = "example.health"
# key_id = 1
# public_key = "<64 hex digits>"

# For role = "gateway":
# [gateway]
# origin = "example.health"
# authority_key_file = "example.health.key"
# Anonymous uploads: VOPRF token keys by epoch (`authority token-keygen`).
# token_keys = [{ epoch = 1, file = "tokens-1.key" }]
# GAEN export key certified by the authority (`authority export-keygen`) and
# its signed risk configuration (`authority risk-config sign`): every batch
# carries them, and every node serves them (/v1/export-keys, /v1/risk-config).
# export_key_file = "example.health.export.key"
# risk_config_file = "example.health.risk-config"
# uploads_per_minute = 60

[retention]
# How often keys past 14 days are deleted (at most hourly).
interval_secs = 600

[filters]
# Unused: a gateway folds newly publishable filter-form entries into a new
# revision of each day's filter at every publication boundary ([publication]).
rebuild_seconds = 600

[storage]
# Most memory the database's page cache holds, MiB (sled's own default is
# 1 GiB); lower it on a small machine.
cache_mib = 64

[publication]
# A gateway publishes the keys it accepted only at period boundaries, shuffled
# together, every period padded with random keys to at least min_keys (plus a
# random tenth more); period_seconds divides a day. Uploads that would push the
# pool past pool_max_keys are refused as busy.
period_seconds = 3600
min_keys = 140
pool_max_keys = 1000000

"#;

#[cfg(test)]
mod tests {
    use super::*;

    /// A peer listed with its TCP and QUIC addresses is one peer.
    #[test]
    fn configured_peers_are_counted_by_peer_id() {
        let id = "12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN";
        let p2p = P2pConfig {
            bootstrap: vec![
                format!("/ip4/127.0.0.1/tcp/4001/p2p/{id}"),
                format!("/ip4/127.0.0.1/udp/4001/quic-v1/p2p/{id}"),
                "/ip4/127.0.0.2/tcp/4001".into(),
            ],
            upload_gateways: vec![UploadGateway {
                origin: "a.health".into(),
                address: format!("/ip4/127.0.0.1/tcp/4001/p2p/{id}"),
            }],
            ..P2pConfig::default()
        };
        assert_eq!(p2p.configured_peers(), 2);
        assert_eq!(P2pConfig::default().configured_peers(), 0);
    }

    #[test]
    fn origins_are_checked() {
        let with = |extra: &str| toml::from_str::<Config>(extra).expect("parses").validate();
        assert!(matches!(
            with("[[trust]]\norigin = \"DE RKI\"\nkey_id = 1\npublic_key = \"00\"\n"),
            Err(ConfigError::Origin { field: "trust.origin", ref origin, .. }) if origin == "DE RKI"
        ));
        assert!(matches!(
            with("role = \"gateway\"\n[gateway]\norigin = \"\"\nauthority_key_file = \"k\"\n"),
            Err(ConfigError::Origin {
                field: "gateway.origin",
                ..
            })
        ));
        assert!(matches!(
            with("[p2p]\nupload_gateways = [{ origin = \"X.Y\", address = \"/ip4/127.0.0.1/tcp/1\" }]\n"),
            Err(ConfigError::Origin { field: "p2p.upload_gateways.origin", .. })
        ));
    }

    #[test]
    fn example_parses_to_defaults() {
        let c: Config = toml::from_str(EXAMPLE).expect("example parses");
        c.validate().expect("example valid");
        assert_eq!(c.http.listen, HttpConfig::default().listen);
        assert_eq!(c.role, Role::Relay);
        assert_eq!(c.p2p.listen, P2pConfig::default().listen);
        assert!(
            c.p2p.listen.iter().all(|a| a.contains("/4001")),
            "fixed ports"
        );
        assert!(EXAMPLE.contains("upload_gateways"));
        assert!(!EXAMPLE.contains(".zip"));
    }

    /// The page cache is bounded by default, well below sled's own 1 GiB, and
    /// an unbounded or empty one is refused.
    #[test]
    fn the_database_cache_is_bounded() {
        let c: Config = toml::from_str(EXAMPLE).expect("example parses");
        assert_eq!(c.storage, StorageConfig::default());
        assert_eq!(c.storage.cache_bytes(), 64 << 20);
        let with = |mib: u64| {
            toml::from_str::<Config>(&format!("[storage]\ncache_mib = {mib}\n"))
                .expect("parses")
                .validate()
        };
        assert!(with(1).is_ok());
        for bad in [0, (1 << 20) + 1] {
            assert!(matches!(
                with(bad),
                Err(ConfigError::Invalid(m)) if m.starts_with("storage.cache_mib")
            ));
        }
    }
}

//! Start-up and wiring: opens storage and keys, builds the [`Core`], binds HTTP
//! and libp2p, and runs the scheduled jobs. Nothing here is reached into by the
//! parts it wires: HTTP and federation call the core, the core announces through
//! a channel that the federation task drains.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use libp2p::{Multiaddr, PeerId};
use tokio::sync::mpsc;

use crate::clock::SharedClock;
use crate::config::{Config, ConfigError, Role};
use crate::core::metrics::Metrics;
use crate::core::{Core, CoreKeys};
use crate::export_keys::{self, GatewayPublication};
use crate::federation::{self, FederationError, FederationHandle};
use crate::gateway::Gateway;
use crate::issuer::Issuer;
use crate::keys::{self, KeyError};
use crate::log::{trust_digest, LogStoreError, TransparencyLog};
use crate::storage::{RetentionStore, SledStore, StorageError, Store};

/// Why the node could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Bad configuration.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A key file.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The database.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The transparency log could not be brought up to date.
    #[error(transparent)]
    Log(#[from] LogStoreError),
    /// The data directory could not be created.
    #[error("data dir {path}: {source}")]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The HTTP address could not be bound (in use, not ours, no permission).
    #[error("HTTP {addr}: {source}")]
    HttpBind {
        /// The configured address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// libp2p could not start (a listen address in use, a bad multiaddr).
    #[error(transparent)]
    Federation(#[from] FederationError),
}

/// A started node.
pub struct RunningNode {
    /// The node's state and operations.
    pub core: Arc<Core>,
    /// Commands to, and the view of, the federation task.
    pub federation: FederationHandle,
    /// The bound HTTP address.
    pub http_addr: SocketAddr,
    /// The libp2p peer id.
    pub peer_id: PeerId,
    /// The libp2p listen addresses, each ending in `/p2p/<peer id>`.
    pub p2p_addrs: Vec<Multiaddr>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl RunningNode {
    /// Stops every task of the node (the database is flushed on every write).
    pub async fn shutdown(self) {
        self.federation.shutdown();
        for t in &self.tasks {
            t.abort();
        }
        for t in self.tasks {
            let _ = t.await;
        }
        // Wait (bounded) for in-flight requests and jobs to let go of the core, so
        // that the database is closed when this returns.
        for _ in 0..500 {
            if Arc::strong_count(&self.core) == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Gossipsub score of a peer as this node sees it.
    pub async fn peer_score(&self, peer: PeerId) -> Option<f64> {
        self.federation.peer_score(peer).await
    }
}

/// The gateway of a gateway config (its authority key, seal key, token keys).
fn open_gateway(config: &Config, now: u64) -> Result<Option<Gateway>, StartError> {
    let (Role::Gateway, Some(g)) = (&config.role, &config.gateway) else {
        return Ok(None);
    };
    let key = keys::read_authority_key(&g.authority_key_file)?;
    if key.origin != g.origin {
        return Err(ConfigError::Invalid(format!(
            "gateway.origin is {:?} but the key file is for {:?}",
            g.origin, key.origin
        ))
        .into());
    }
    let token_keys = g
        .token_keys
        .iter()
        .map(|t| keys::read_token_key(&t.file, t.epoch))
        .collect::<Result<Vec<_>, _>>()?;
    let seal_key = keys::gateway_seal_key(&config.data_dir)?;
    let publication = GatewayPublication {
        export: g
            .export_key_file
            .as_deref()
            .map(|f| export_keys::read(f, &g.origin))
            .transpose()?,
        risk_config: g
            .risk_config_file
            .as_deref()
            .map(export_keys::read_risk_config)
            .transpose()?,
    };
    Ok(Some(
        Gateway::new(
            key,
            g.uploads_per_minute,
            now,
            config.publication.clone(),
            seal_key,
            token_keys,
        )
        .with_publication(publication),
    ))
}

/// The issuer of a gateway with token keys: it signs with the newest token key,
/// in a database of its own.
fn open_issuer(config: &Config, metrics: &Metrics) -> Result<Option<Issuer>, StartError> {
    let (Role::Gateway, Some(g)) = (&config.role, &config.gateway) else {
        return Ok(None);
    };
    let Some(t) = g.token_keys.iter().max_by_key(|t| t.epoch) else {
        return Ok(None);
    };
    Ok(Some(Issuer::open(
        &config.data_dir.join("issuer"),
        keys::read_token_key(&t.file, t.epoch)?,
        metrics.tokens_issued.clone(),
    )?))
}

/// Starts a node: opens storage, loads keys, binds HTTP and libp2p, and spawns
/// federation and the scheduled jobs.
pub async fn start(config: Config, clock: SharedClock) -> Result<RunningNode, StartError> {
    config.validate()?;
    std::fs::create_dir_all(&config.data_dir).map_err(|source| StartError::DataDir {
        path: config.data_dir.clone(),
        source,
    })?;
    let trust = config.trust_list()?;
    let sled_store =
        SledStore::open_with_cache(&config.data_dir.join("db"), config.storage.cache_bytes())?;
    let identity = keys::node_identity(&config.data_dir)?;
    let core_keys = CoreKeys {
        node_key: keys::deletion_log_key(&config.data_dir)?,
    };
    let log = TransparencyLog::open(sled_store.db(), core_keys.node_key.clone());
    log.index_existing()?;
    // A batch, filter revision or warning batch stored just before a crash and not logged yet
    // (a relay's from gossip or catch-up, a gateway's own): logged before
    // anything is served, or the node does not start (SPEC.md §8.3).
    log.log_unlogged(&sled_store)?;
    log.log_unlogged_warnings(&crate::storage::warnings::WarningFiles::at(
        &config.data_dir,
    ))?;
    log.log_deletions(&sled_store.deletion_log()?, &[])?;
    log.log_trust_list(
        trust_digest(&config.trust),
        config.trust.len() as u64,
        clock.now(),
    )?;
    let store: Arc<dyn Store> = Arc::new(sled_store);
    let gateway = open_gateway(&config, clock.now())?;
    let metrics = Metrics::new();
    let issuer = open_issuer(&config, &metrics)?;
    if let Some(g) = &gateway {
        let epochs: Vec<u32> = g.token_keys().map(|k| k.epoch).collect();
        if !epochs.is_empty() {
            store.purge_spent_tokens(&epochs)?;
        }
    }
    let (announce_tx, announce_rx) = mpsc::unbounded_channel();
    let http_listen = config.http.listen;
    let limits = crate::http::server::Limits::from_config(&config.http);
    let p2p = config.p2p.clone();
    let core = Arc::new(Core::new(
        config,
        store,
        trust,
        clock,
        core_keys,
        metrics,
        gateway,
        issuer,
        log,
        announce_tx,
    ));
    core.import_codes();
    // Marks the gateway's first period and takes the first public snapshot before
    // anything is served.
    core.run_period()
        .map_err(|e| StartError::Storage(StorageError::Io(std::io::Error::other(e.to_string()))))?;

    let listener = tokio::net::TcpListener::bind(http_listen)
        .await
        .map_err(|source| StartError::HttpBind {
            addr: http_listen,
            source,
        })?;
    let http_addr = listener
        .local_addr()
        .map_err(|source| StartError::HttpBind {
            addr: http_listen,
            source,
        })?;

    let fed = federation::start(core.clone(), &p2p, identity, announce_rx).await?;

    let mut tasks = vec![fed.task];
    let app = crate::http::router(core.clone(), fed.handle.clone());
    tasks.push(tokio::spawn(crate::http::server::serve(
        listener, app, limits,
    )));
    tasks.push(tokio::spawn(jobs(core.clone())));
    tracing::info!(%http_addr, peer_id = %fed.peer_id, "node started");
    Ok(RunningNode {
        core,
        federation: fed.handle,
        http_addr,
        peer_id: fed.peer_id,
        p2p_addrs: fed.listen_addrs,
        tasks,
    })
}

/// The schedule, every second: the period job (publication, filter rebuilds and
/// the public snapshot at each boundary), gossip of batches that became
/// visible, and code imports; retention every `retention.interval_secs` (and
/// once at start).
async fn jobs(core: Arc<Core>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let retention_every = core.config.retention.interval_secs;
    let mut last_retention: Option<u64> = None;
    loop {
        tick.tick().await;
        let s = core.clone();
        let _ = tokio::task::spawn_blocking(move || {
            if let Err(e) = s.run_period() {
                tracing::error!("publication failed: {e}");
            }
            if let Err(e) = s.release_due() {
                tracing::error!("release failed: {e}");
            }
            s.import_codes();
        })
        .await;
        let now = core.now();
        if last_retention.is_none_or(|t| now >= t + retention_every || now < t) {
            last_retention = Some(now);
            let s = core.clone();
            let _ = tokio::task::spawn_blocking(move || {
                if let Err(e) = s.run_retention() {
                    tracing::error!("retention failed: {e}");
                }
            })
            .await;
        }
    }
}

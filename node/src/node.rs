//! A running node: shared state, batch ingest, the scheduled jobs, and start-up.

use std::net::SocketAddr;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use libp2p::{Multiaddr, PeerId};
use tokio::sync::mpsc;
use traceless_protocol::ed25519_dalek::SigningKey;
use traceless_protocol::{SignedBatch, SignedFilter, TrustList, WireError};

use crate::clock::SharedClock;
use crate::config::{Config, ConfigError, Role};
use crate::federation::{self, Command};
use crate::gateway::Gateway;
use crate::gateway::RebuildError;
use crate::http::metrics::{inc, Metrics};
use crate::issuer::Issuer;
use crate::keys::{self, KeyError};
use crate::storage::{
    BatchMeta, FilterMeta, FilterPutOutcome, PutOutcome, SledStore, StorageError, Store,
    StoredBatch, StoredFilter,
};
use crate::{retention, upload_codes};

/// Why a batch from a peer was not stored; says what the peer sent wrong.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The batch failed decoding, the trust list, the signature, or freshness.
    #[error("invalid batch: {0}")]
    Invalid(#[from] WireError),
    /// Storage failed; the batch is not acknowledged.
    #[error("storage: {0}")]
    Storage(#[from] StorageError),
}

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
    /// Binding a socket or starting libp2p.
    #[error("network: {0}")]
    Network(String),
}

/// What the node knows about its federation, for the page and the tests.
#[derive(Clone, Debug, Default)]
pub struct PeerView {
    /// This node's libp2p id.
    pub local_peer_id: Option<PeerId>,
    /// Addresses this node listens on.
    pub listen_addrs: Vec<Multiaddr>,
    /// Currently connected peers.
    pub connected: Vec<PeerId>,
}

/// State shared by the HTTP API, federation and the jobs.
pub struct NodeState {
    /// The configuration.
    pub config: Config,
    /// Storage.
    pub store: Arc<dyn Store>,
    /// Trusted authority keys.
    pub trust: TrustList,
    /// Time.
    pub clock: SharedClock,
    /// Counters.
    pub metrics: Metrics,
    /// Signs deletion-log entries.
    pub node_key: SigningKey,
    /// Signs GAEN export files.
    pub export_key: p256::ecdsa::SigningKey,
    /// Present on gateways.
    pub gateway: Option<Gateway>,
    /// Present on gateways with token keys: the authority's token issuer.
    pub issuer: Option<Issuer>,
    /// Sealed uploads this node is relaying right now (bounded).
    pub relay_inflight: AtomicUsize,
    /// Federation view.
    pub peers: RwLock<PeerView>,
    /// Commands to the federation task.
    pub federation: mpsc::UnboundedSender<Command>,
    /// Serialises [`NodeState::release_due`] (the job and catch-up both call it),
    /// so that no batch is handed to gossip twice.
    release_lock: Mutex<()>,
    /// Serialises [`NodeState::run_retention`] (the job and callers).
    retention_lock: Mutex<()>,
}

/// Result of ingesting one day filter.
#[derive(Clone, Debug)]
pub struct IngestedFilter {
    /// New (a higher revision than the one held) or stale.
    pub outcome: FilterPutOutcome,
    /// The filter's metadata.
    pub meta: FilterMeta,
}

/// Result of ingesting one batch.
#[derive(Clone, Debug)]
pub struct Ingested {
    /// New, duplicate or conflicting.
    pub outcome: PutOutcome,
    /// The batch's metadata.
    pub meta: BatchMeta,
    /// Whether the batch was visible (past its embargo) when it was ingested.
    pub visible: bool,
}

impl NodeState {
    /// Now, from the node's clock.
    pub fn now(&self) -> u64 {
        self.clock.now()
    }

    /// Validates a `SignedBatch` from a peer (size, shape, trust list, signature,
    /// freshness) and stores it durably. A batch is trusted only because of its
    /// authority signature, never because of who sent it.
    ///
    /// A new batch is held for [`NodeState::release_due`], which gossips it once
    /// it is visible: use this for local batches and catch-up results, which
    /// gossip has not delivered here.
    pub fn ingest(&self, bytes: &[u8]) -> Result<Ingested, IngestError> {
        self.ingest_from(bytes, false)
    }

    /// [`NodeState::ingest`] for a batch that arrived by gossip. If it is visible
    /// it is not held for re-publication: once accepted, gossipsub forwards it
    /// itself (publishing it again would be a duplicate). An embargoed one is held
    /// like any other and gossiped when its embargo ends.
    pub fn ingest_gossiped(&self, bytes: &[u8]) -> Result<Ingested, IngestError> {
        self.ingest_from(bytes, true)
    }

    fn ingest_from(&self, bytes: &[u8], gossiped: bool) -> Result<Ingested, IngestError> {
        let now = self.now();
        let signed = SignedBatch::decode(bytes)?;
        let batch = signed.verify(&self.trust, now)?;
        let meta = BatchMeta::of(&batch, bytes);
        let visible = meta.is_visible(now);
        let stored = StoredBatch {
            meta: meta.clone(),
            bytes: bytes.to_vec(),
        };
        let outcome = if gossiped && visible {
            self.store.put_announced_batch(&stored)?
        } else {
            self.store.put_batch(&stored)?
        };
        match outcome {
            PutOutcome::New => inc(&self.metrics.batches_stored),
            PutOutcome::Duplicate => inc(&self.metrics.batches_duplicate),
            PutOutcome::Conflict => {
                inc(&self.metrics.batches_conflicting);
                tracing::warn!(origin = %meta.origin, sequence = meta.sequence,
                    "authority signed two different batches under one sequence number; keeping the first");
            }
        }
        Ok(Ingested {
            outcome,
            meta,
            visible,
        })
    }

    /// Validates a `SignedFilter` from a peer (size, shape, hash parameters, trust
    /// list, signature, freshness) and stores its exact bytes if its revision is
    /// higher than the one held for its (origin, day).
    pub fn ingest_filter(&self, bytes: &[u8]) -> Result<IngestedFilter, IngestError> {
        let now = self.now();
        let filter = SignedFilter::decode(bytes)?.verify(&self.trust, now)?;
        let meta = FilterMeta::of(&filter, bytes);
        let outcome = self.store.put_filter(&StoredFilter {
            meta: meta.clone(),
            bytes: bytes.to_vec(),
        })?;
        match outcome {
            FilterPutOutcome::New => inc(&self.metrics.filters_stored),
            FilterPutOutcome::Stale => inc(&self.metrics.filters_stale),
        }
        Ok(IngestedFilter { outcome, meta })
    }

    /// On a gateway: folds newly publishable filter entries into new revisions of
    /// their day filters (see [`Gateway::rebuild_filters`]) and gossips them.
    /// Returns the new filters. Safe to call at any time (the job calls it every
    /// `filters.rebuild_seconds`).
    pub fn rebuild_filters(&self) -> Result<Vec<FilterMeta>, RebuildError> {
        let Some(g) = &self.gateway else {
            return Ok(Vec::new());
        };
        let built = g.rebuild_filters(self.store.as_ref(), self.now())?;
        for f in &built {
            inc(&self.metrics.filters_built);
            tracing::info!(origin = %f.meta.origin, day = f.meta.day, revision = f.meta.revision,
                entries = f.meta.entries, "built day filter");
            let _ = self
                .federation
                .send(Command::PublishFilter(f.bytes.clone()));
        }
        Ok(built.into_iter().map(|f| f.meta).collect())
    }

    /// Seals embargoed gateway keys that are due, and hands every stored batch
    /// whose embargo has ended (and that was not yet announced) to gossip.
    /// Returns the batches announced.
    pub fn release_due(&self) -> Result<Vec<BatchMeta>, StorageError> {
        let _guard = self.release_lock.lock().unwrap_or_else(|e| e.into_inner());
        let now = self.now();
        if let Some(g) = &self.gateway {
            if let Err(e) = g.release_pending(self.store.as_ref(), now) {
                tracing::error!("releasing embargoed keys failed: {e}");
            }
        }
        let due = self.store.held_due(now)?;
        for m in &due {
            if let Some(b) = self.store.get_batch(&m.origin, m.sequence)? {
                let _ = self.federation.send(Command::Publish(b.bytes));
            }
        }
        self.store.mark_released(&due)?;
        Ok(due)
    }

    /// One retention run at the clock's now.
    pub fn run_retention(
        &self,
    ) -> Result<Option<traceless_protocol::wire::DeletionRecord>, retention::RetentionError> {
        // One run at a time: two concurrent runs would both find the same expired
        // batches and log their deletion twice.
        let _guard = self
            .retention_lock
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let r = retention::run(
            self.store.as_ref(),
            &self.node_key,
            self.gateway.as_ref().map(|g| g.origin()),
            self.now(),
        )?;
        if r.is_some() {
            inc(&self.metrics.retention_deletions);
        }
        Ok(r)
    }

    /// Imports upload codes dropped by the CLI and purges expired ones.
    pub fn import_codes(&self) {
        if self.config.role != Role::Gateway {
            return;
        }
        match upload_codes::import_incoming(&self.config.data_dir, self.store.as_ref()) {
            Ok(0) => {}
            Ok(n) => tracing::info!("imported {n} upload codes"),
            Err(e) => tracing::error!("importing upload codes failed: {e}"),
        }
        if let Err(e) = self.store.purge_codes(self.now()) {
            tracing::error!("purging upload codes failed: {e}");
        }
        if let Some(issuer) = &self.issuer {
            match issuer.import_codes(self.now()) {
                Ok(0) => {}
                Ok(n) => tracing::info!("imported {n} token-issuance codes"),
                Err(e) => tracing::error!("importing token-issuance codes failed: {e}"),
            }
        }
    }

    /// The node's deletion-log public key.
    pub fn node_id(&self) -> [u8; 32] {
        self.node_key.verifying_key().to_bytes()
    }
}

/// A started node.
pub struct RunningNode {
    /// Shared state.
    pub state: Arc<NodeState>,
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
        let _ = self.state.federation.send(Command::Shutdown);
        for t in &self.tasks {
            t.abort();
        }
        for t in self.tasks {
            let _ = t.await;
        }
        // Wait (bounded) for in-flight requests and jobs to let go of the state, so
        // that the database is closed when this returns.
        for _ in 0..500 {
            if Arc::strong_count(&self.state) == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Gossipsub score of a peer as this node sees it.
    pub async fn peer_score(&self, peer: PeerId) -> Option<f64> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.state
            .federation
            .send(Command::PeerScore(peer, tx))
            .ok()?;
        rx.await.ok().flatten()
    }
}

/// Starts a node: opens storage, loads keys, binds HTTP and libp2p, and spawns
/// federation and the scheduled jobs.
pub async fn start(config: Config, clock: SharedClock) -> Result<RunningNode, StartError> {
    config.validate()?;
    std::fs::create_dir_all(&config.data_dir)
        .map_err(|e| StartError::Network(format!("data dir {}: {e}", config.data_dir.display())))?;
    let trust = config.trust_list()?;
    let store: Arc<dyn Store> = Arc::new(SledStore::open(&config.data_dir.join("db"))?);
    let identity = keys::node_identity(&config.data_dir)?;
    let node_key = keys::deletion_log_key(&config.data_dir)?;
    let export_key = keys::export_key(&config.data_dir)?;
    let gateway = match (&config.role, &config.gateway) {
        (Role::Gateway, Some(g)) => {
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
            Some(Gateway::new(
                key,
                g.uploads_per_minute,
                clock.now(),
                seal_key,
                token_keys,
            ))
        }
        _ => None,
    };
    // The issuer signs with the newest token key, in a database of its own.
    let issuer = match (&config.role, &config.gateway) {
        (Role::Gateway, Some(g)) => match g.token_keys.iter().max_by_key(|t| t.epoch) {
            Some(t) => Some(Issuer::open(
                &config.data_dir.join("issuer"),
                keys::read_token_key(&t.file, t.epoch)?,
            )?),
            None => None,
        },
        _ => None,
    };
    if let Some(g) = &gateway {
        let epochs: Vec<u32> = g.token_keys().map(|k| k.epoch).collect();
        if !epochs.is_empty() {
            store.purge_spent_tokens(&epochs)?;
        }
    }
    let (fed_tx, fed_rx) = mpsc::unbounded_channel();
    let state = Arc::new(NodeState {
        trust,
        store,
        clock,
        metrics: Metrics::default(),
        node_key,
        export_key,
        gateway,
        issuer,
        relay_inflight: AtomicUsize::new(0),
        peers: RwLock::new(PeerView::default()),
        federation: fed_tx,
        release_lock: Mutex::new(()),
        retention_lock: Mutex::new(()),
        config,
    });
    state.import_codes();

    let listener = tokio::net::TcpListener::bind(state.config.http.listen)
        .await
        .map_err(|e| StartError::Network(format!("HTTP {}: {e}", state.config.http.listen)))?;
    let http_addr = listener
        .local_addr()
        .map_err(|e| StartError::Network(e.to_string()))?;

    let fed = federation::start(state.clone(), identity, fed_rx)
        .await
        .map_err(StartError::Network)?;

    let mut tasks = vec![fed.task];
    let app = crate::http::router(state.clone());
    let limits = crate::http::server::Limits::from_config(&state.config.http);
    tasks.push(tokio::spawn(crate::http::server::serve(
        listener, app, limits,
    )));
    tasks.push(tokio::spawn(jobs(state.clone())));
    tracing::info!(%http_addr, peer_id = %fed.peer_id, "node started");
    Ok(RunningNode {
        state,
        http_addr,
        peer_id: fed.peer_id,
        p2p_addrs: fed.listen_addrs,
        tasks,
    })
}

/// The schedule: embargo releases and code imports every second, retention every
/// `retention.interval_secs` (and once at start), filter rebuilds on gateways
/// every `filters.rebuild_seconds` (and once at start).
async fn jobs(state: Arc<NodeState>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let retention_every = state.config.retention.interval_secs;
    let rebuild_every = state.config.filters.rebuild_seconds;
    let mut last_retention: Option<u64> = None;
    let mut last_rebuild: Option<u64> = None;
    loop {
        tick.tick().await;
        let s = state.clone();
        let _ = tokio::task::spawn_blocking(move || {
            if let Err(e) = s.release_due() {
                tracing::error!("embargo release failed: {e}");
            }
            s.import_codes();
        })
        .await;
        let now = state.now();
        if last_retention.is_none_or(|t| now >= t + retention_every || now < t) {
            last_retention = Some(now);
            let s = state.clone();
            let _ = tokio::task::spawn_blocking(move || {
                if let Err(e) = s.run_retention() {
                    tracing::error!("retention failed: {e}");
                }
            })
            .await;
        }
        if state.gateway.is_some()
            && last_rebuild.is_none_or(|t| now >= t + rebuild_every || now < t)
        {
            last_rebuild = Some(now);
            let s = state.clone();
            let _ = tokio::task::spawn_blocking(move || {
                if let Err(e) = s.rebuild_filters() {
                    tracing::error!("filter rebuild failed: {e}");
                }
            })
            .await;
        }
    }
}

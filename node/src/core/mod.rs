//! The node's core: it owns the store, the trust list, the clock, the metrics,
//! the gateway and the issuer, and exposes what the rest of the node does with
//! them: ingest (batches and filters from peers), uploads, release (embargo ends
//! and gossip hand-off), retention and code imports.
//!
//! Imports run one way: `app` wires `http` and `federation`, both of which call
//! into the core; the core knows neither. What the core wants gossiped leaves
//! through an [`Announcement`] channel that the federation task drains.

pub mod answer;
pub mod metrics;
pub mod publication;
pub mod warnings;

use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;
use traceless_protocol::ed25519_dalek::SigningKey;
use traceless_protocol::log::Event;
use traceless_protocol::{SignedFilter, TrustList, WireError};

use self::answer::RelayResponse;
use self::metrics::Metrics;
use self::publication::Schedule;
use crate::clock::{
    ClockStatus, Monotonic, PeerClockConfig, PeerClocks, SharedClock, MIN_CLOCK_PEERS,
};
use crate::config::{Config, Role};
use crate::gateway::{Gateway, PeriodReport, RebuildError, UploadError, UploadReceipt};
use crate::issuer::Issuer;
use crate::log::{batch_event, filter_event, TransparencyLog};
use crate::storage::{
    BatchMeta, FilterMeta, PutOutcome, StorageError, Store, StoreSummary, StoredBatch, StoredFilter,
};
use crate::{retention, upload_codes};

/// The actor of codes dropped into the data directory by `traceless-node codes`.
pub const CODES_CLI_ACTOR: &str = "operator-cli";
/// The actor of codes the token issuer imported.
pub const CODES_ISSUER_ACTOR: &str = "token-issuer";

/// What the core hands to gossip (the federation task drains these).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Announcement {
    /// A stored batch that just became visible.
    Batch(Vec<u8>),
    /// A new revision of a stored day filter.
    Filter(Vec<u8>),
    /// A venue warning batch this gateway just published.
    Warnings(Vec<u8>),
}

/// Logs what a code import did (rejected lines are logged where they are kept);
/// returns how many codes were imported.
fn log_import(
    what: &str,
    result: Result<upload_codes::ImportReport, upload_codes::CodeError>,
) -> usize {
    match result {
        Ok(r) if r.imported == 0 => 0,
        Ok(r) => {
            tracing::info!(
                imported = r.imported,
                rejected = r.rejected,
                "imported {what}"
            );
            r.imported
        }
        Err(e) => {
            tracing::error!("importing {what} failed: {e}");
            0
        }
    }
}

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

/// The state of a node and the operations on it; shared (in an `Arc`) by the HTTP
/// API, federation and the jobs.
pub struct Core {
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
    /// Present on gateways.
    pub gateway: Option<Gateway>,
    /// Present on gateways with token keys: the authority's token issuer.
    pub issuer: Option<Issuer>,
    /// The transparency log of what this node published, deleted and issued.
    pub log: TransparencyLog,
    /// Real uploads per day, for the public statistics (SPEC.md §8.4).
    pub upload_stats: crate::operators::statistics::UploadStats,
    /// Where announcements for gossip go.
    announce: mpsc::UnboundedSender<Announcement>,
    /// Serialises [`Core::release_due`] (the job and catch-up both call it),
    /// so that no batch is handed to gossip twice.
    release_lock: Mutex<()>,
    /// Serialises [`Core::run_retention`] (the job and callers).
    retention_lock: Mutex<()>,
    /// What public pages show until the next period boundary.
    public: Mutex<Option<Arc<PublicSnapshot>>>,
    /// The peers' clocks, sampled by catch-up (SPEC.md §2.1).
    pub peer_clocks: PeerClocks,
}

/// The public figures of one period: `/metrics` and the transparency page.
#[derive(Debug)]
pub struct PublicSnapshot {
    /// The period boundary they are as of.
    pub boundary: u64,
    /// What the store held then.
    pub summary: StoreSummary,
    /// The `/metrics` body (OpenMetrics text).
    pub metrics: String,
    /// This node's clock against its peers'.
    pub clock: ClockStatus,
}

/// The node's own signing keys.
pub struct CoreKeys {
    /// Signs deletion-log entries.
    pub node_key: SigningKey,
}

/// Result of ingesting one part of a day filter.
#[derive(Clone, Debug)]
pub struct IngestedFilter {
    /// New, duplicate or conflicting.
    pub outcome: PutOutcome,
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

impl Core {
    /// A core over opened parts; what it announces goes to `announce`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        config: Config,
        store: Arc<dyn Store>,
        trust: TrustList,
        clock: SharedClock,
        keys: CoreKeys,
        metrics: Metrics,
        gateway: Option<Gateway>,
        issuer: Option<Issuer>,
        log: TransparencyLog,
        announce: mpsc::UnboundedSender<Announcement>,
    ) -> Self {
        let peer_clocks = PeerClocks::new(
            PeerClockConfig {
                tolerance_secs: config.clock.tolerance_secs,
                max_age_secs: config.clock.sample_max_age_secs,
                startup_wait_secs: config.clock.startup_wait_secs,
                startup_samples: config.p2p.configured_peers().min(MIN_CLOCK_PEERS),
            },
            Arc::new(Monotonic::new()),
        );
        Core {
            peer_clocks,
            config,
            store,
            trust,
            clock,
            metrics,
            node_key: keys.node_key,
            gateway,
            issuer,
            upload_stats: crate::operators::statistics::UploadStats::open(log.db()),
            log,
            announce,
            release_lock: Mutex::new(()),
            retention_lock: Mutex::new(()),
            public: Mutex::new(None),
        }
    }

    /// The publication schedule (SPEC.md §6.4).
    pub fn schedule(&self) -> Schedule {
        Schedule::new(self.config.publication.period_seconds)
    }

    /// The current period's boundary: what public pages are "as of", so that
    /// they move only at boundaries.
    pub fn public_now(&self) -> u64 {
        self.schedule().boundary_at(self.now())
    }

    /// The period job (every second): once per boundary, a gateway publishes the
    /// period that just ended (see [`Gateway::publish_period`]), logs and gossips
    /// its batches and rebuilds its day filters as of the boundary; then every
    /// node takes the snapshot public pages show until the next boundary. A
    /// clock that went back publishes nothing until it passes the last published
    /// boundary.
    pub fn run_period(&self) -> Result<Option<PeriodReport>, UploadError> {
        let boundary = self.public_now();
        self.peer_clocks.log_change(&self.clock_status());
        // A boundary the peers' clock has not reached is not published yet
        // (SPEC.md §2.1); nothing is while the peers' clock is awaited.
        let publishing = self.safe_now().map(|t| self.schedule().boundary_at(t));
        let report = match (&self.gateway, publishing) {
            (Some(g), Some(publishing)) => g.publish_period(self.store.as_ref(), publishing)?,
            _ => None,
        };
        // Traced venue warnings, queued before this boundary (SPEC.md §12.10).
        if let (Some(_), Some(publishing)) = (&self.gateway, publishing) {
            if let Err(e) = self.publish_warnings(publishing) {
                tracing::error!("publishing venue warnings failed: {e}");
            }
        }
        if let (Some(g), Some(r), Some(publishing)) = (&self.gateway, &report, publishing) {
            if r.periods > 1 {
                tracing::warn!(
                    periods = r.periods,
                    boundary,
                    "clock jumped or node was down: publishing the missed periods as one"
                );
            }
            tracing::info!(
                boundary,
                batches = r.batches.len(),
                real = r.real_keys,
                padding = r.padding_keys,
                "published period"
            );
            self.record_own_batches();
            if let Err(e) = self.release_due() {
                tracing::error!("release failed: {e}");
            }
            match g.rebuild_filters(self.store.as_ref(), publishing) {
                Ok(built) => {
                    self.announce_filters(built);
                }
                Err(e) => tracing::error!("filter rebuild failed: {e}"),
            }
        }
        let stale = self
            .public
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .is_none_or(|p| p.boundary < boundary);
        if stale {
            let snapshot = Arc::new(self.snapshot(boundary));
            *self.public.lock().unwrap_or_else(|e| e.into_inner()) = Some(snapshot);
        }
        Ok(report)
    }

    /// What `/metrics` and the transparency page show: taken at the current
    /// period's boundary (at start, then by [`Core::run_period`]), so that
    /// nothing public moves between boundaries, when an upload arrives.
    pub fn public_snapshot(&self) -> Arc<PublicSnapshot> {
        let mut p = self.public.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(snapshot) = p.as_ref() {
            return snapshot.clone();
        }
        let snapshot = Arc::new(self.snapshot(self.public_now()));
        *p = Some(snapshot.clone());
        snapshot
    }

    /// `/metrics` as of the current period's boundary.
    pub fn public_metrics(&self) -> String {
        self.public_snapshot().metrics.clone()
    }

    fn snapshot(&self, boundary: u64) -> PublicSnapshot {
        let summary = self.store.summary(boundary);
        let clock = self.clock_status();
        self.metrics.set_clock(&clock);
        PublicSnapshot {
            boundary,
            metrics: self.metrics.render(&summary),
            summary,
            clock,
        }
    }

    /// Now, from the node's clock.
    pub fn now(&self) -> u64 {
        self.clock.now()
    }

    /// Now for irreversible acts (releasing embargoed batches, publishing a
    /// period, deleting): `min(own clock, peers' median + tolerance)`, or none
    /// while a starting node waits for its peers' clocks (SPEC.md §2.1).
    pub fn safe_now(&self) -> Option<u64> {
        self.peer_clocks.conservative_now(self.now())
    }

    /// This node's clock against its peers' now.
    pub fn clock_status(&self) -> ClockStatus {
        self.peer_clocks.status(self.now())
    }

    /// Validates a batch of either version from a peer (size, shape, trust list, signature,
    /// freshness) and stores it durably. A batch is trusted only because of its
    /// authority signature, never because of who sent it.
    ///
    /// A new batch is held for [`Core::release_due`], which gossips it once
    /// it is visible: use this for local batches and catch-up results, which
    /// gossip has not delivered here.
    pub fn ingest(&self, bytes: &[u8]) -> Result<Ingested, IngestError> {
        self.ingest_from(bytes, false)
    }

    /// [`Core::ingest`] for a batch that arrived by gossip. If it is visible
    /// it is not held for re-publication: once accepted, gossipsub forwards it
    /// itself (publishing it again would be a duplicate). An embargoed one is held
    /// like any other and gossiped when its embargo ends.
    pub fn ingest_gossiped(&self, bytes: &[u8]) -> Result<Ingested, IngestError> {
        self.ingest_from(bytes, true)
    }

    fn ingest_from(&self, bytes: &[u8], gossiped: bool) -> Result<Ingested, IngestError> {
        let now = self.now();
        // The attachments too (export signatures, risk configuration): a node
        // serves them from the batches it holds (SPEC.md §6.2, §7.3).
        let stored = StoredBatch::verified(bytes, &self.trust, now)?;
        let meta = stored.meta.clone();
        let visible = meta.is_visible(now);
        let outcome = if gossiped && visible {
            self.store.put_announced_batch(&stored)?
        } else {
            self.store.put_batch(&stored)?
        };
        match outcome {
            PutOutcome::New => {
                self.metrics.batches_stored.inc();
                self.record(&batch_event(&meta, now));
            }
            PutOutcome::Duplicate => {
                self.metrics.batches_duplicate.inc();
            }
            PutOutcome::Conflict => {
                self.metrics.batches_conflicting.inc();
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

    /// Validates a `SignedFilter` part from a peer (size, shape, hash parameters,
    /// trust list, signature, freshness) and stores its exact bytes unless a part
    /// with its origin, day and revision is held.
    pub fn ingest_filter(&self, bytes: &[u8]) -> Result<IngestedFilter, IngestError> {
        let now = self.now();
        let filter = SignedFilter::decode(bytes)?.verify(&self.trust, now)?;
        let meta = FilterMeta::of(&filter, bytes);
        let outcome = self.store.put_filter(&StoredFilter {
            meta: meta.clone(),
            bytes: bytes.to_vec(),
        })?;
        match outcome {
            PutOutcome::New => {
                self.metrics.filters_stored.inc();
                self.record(&filter_event(&meta, now));
            }
            PutOutcome::Duplicate => {
                self.metrics.filters_duplicate.inc();
            }
            PutOutcome::Conflict => {
                self.metrics.filters_conflicting.inc();
                tracing::warn!(origin = %meta.origin, day = meta.day, revision = meta.revision,
                    "a different part under a held part's origin, day and revision; the first is kept");
            }
        }
        Ok(IngestedFilter { outcome, meta })
    }

    /// On a gateway: folds filter entries publishable now into new parts of
    /// their day filters (see [`Gateway::rebuild_filters`]) and gossips them.
    /// Returns the new filters. Safe to call at any time; the period job does
    /// the same at each boundary.
    pub fn rebuild_filters(&self) -> Result<Vec<FilterMeta>, RebuildError> {
        let Some(g) = &self.gateway else {
            return Ok(Vec::new());
        };
        let built = g.rebuild_filters(self.store.as_ref(), self.now())?;
        Ok(self.announce_filters(built))
    }

    /// Counts and gossips newly built filters.
    fn announce_filters(&self, built: Vec<StoredFilter>) -> Vec<FilterMeta> {
        for f in &built {
            self.metrics.filters_built.inc();
            self.record(&filter_event(&f.meta, self.now()));
            tracing::info!(origin = %f.meta.origin, day = f.meta.day, revision = f.meta.revision,
                entries = f.meta.entries, "built a part of a day filter");
            let _ = self.announce.send(Announcement::Filter(f.bytes.clone()));
        }
        built.into_iter().map(|f| f.meta).collect()
    }

    /// Hands every stored batch whose embargo has ended (and that was not yet
    /// announced) to gossip. Returns the batches announced.
    pub fn release_due(&self) -> Result<Vec<BatchMeta>, StorageError> {
        let _guard = self.release_lock.lock().unwrap_or_else(|e| e.into_inner());
        let Some(now) = self.safe_now() else {
            return Ok(Vec::new());
        };
        let due = self.store.held_due(now)?;
        for m in &due {
            if let Some(b) = self.store.get_batch(&m.origin, m.sequence)? {
                let _ = self.announce.send(Announcement::Batch(b.bytes));
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
        let Some(now) = self.safe_now() else {
            return Ok(None);
        };
        let r = retention::run(
            self.store.as_ref(),
            &self.warning_files(),
            &self.log,
            &self.node_key,
            self.gateway.as_ref().map(|g| g.origin()),
            now,
        )?;
        if r.is_some() {
            self.metrics.retention_deletions.inc();
        }
        Ok(r)
    }

    /// Imports upload codes dropped by the CLI and purges expired ones.
    pub fn import_codes(&self) {
        if self.config.role != Role::Gateway {
            return;
        }
        let now = self.now();
        let issued = |actor: &str, count: usize| Event::CodesIssued {
            actor: actor.into(),
            count: count as u64,
            at: now,
        };
        let n = log_import(
            "upload codes",
            upload_codes::import_incoming(&self.config.data_dir, self.store.as_ref()),
        );
        if n > 0 {
            self.record(&issued(CODES_CLI_ACTOR, n));
        }
        match self.store.purge_codes(now) {
            Ok(0) => {}
            Ok(n) => self.record(&Event::CodesDeleted {
                count: n as u64,
                at: now,
            }),
            Err(e) => tracing::error!("purging upload codes failed: {e}"),
        }
        if let Some(issuer) = &self.issuer {
            let n = log_import("token-issuance codes", issuer.import_codes(now));
            if n > 0 {
                self.record(&issued(CODES_ISSUER_ACTOR, n));
            }
        }
    }

    /// A phone's upload (`POST /v1/upload`, gateways only), durably pooled
    /// before this returns; it is published at a later period boundary.
    pub fn accept_upload(&self, body: &[u8]) -> Result<UploadReceipt, UploadError> {
        let gateway = self.gateway.as_ref().ok_or(UploadError::NotAGateway)?;
        let result = gateway.accept(self.store.as_ref(), &self.warning_files(), body, self.now());
        let m = &self.metrics;
        // Real and dummy uploads are counted together: a public counter that
        // split them would tell each period's real uploads from the cover.
        match &result {
            Ok(r) => {
                m.uploads_accepted.inc();
                self.count_upload(r);
            }
            Err(_) => {
                m.uploads_refused.inc();
            }
        }
        result
    }

    /// A sealed upload a relay forwarded for `origin` (gateway side). Only the
    /// status leaves: never what was stored.
    pub fn accept_relayed(&self, origin: &str, sealed: &[u8]) -> RelayResponse {
        let Some(gateway) = self.gateway.as_ref().filter(|g| g.origin() == origin) else {
            return RelayResponse::WrongGateway;
        };
        let result = gateway.accept_sealed(
            self.store.as_ref(),
            &self.warning_files(),
            sealed,
            self.now(),
        );
        let m = &self.metrics;
        // Relayed uploads are counted only as relayed: the public counters never
        // split them into real and dummy.
        match &result {
            Ok(r) => {
                m.relayed_accepted.inc();
                self.count_upload(r);
            }
            Err(e) => {
                m.relayed_refused.inc();
                tracing::info!("relayed upload refused: {e}");
            }
        }
        answer::relay_response(&result)
    }

    /// Counts a real upload in the day's statistics (dummies are not counted).
    fn count_upload(&self, r: &UploadReceipt) {
        if r.is_dummy() {
            return;
        }
        if let Err(e) = self.upload_stats.count_upload(r.pooled as u64, self.now()) {
            tracing::error!("counting an upload in the statistics failed: {e}");
        }
    }

    /// Appends an event to the transparency log. A failed append is logged and
    /// left for the operator: what it records is stored already (a batch's or
    /// a filter revision's entry is appended at the next start, see
    /// [`TransparencyLog::log_unlogged`]).
    pub fn record(&self, event: &Event) {
        if let Err(e) = self.log.append(event) {
            tracing::error!("transparency log append failed: {e}");
        }
    }

    /// Logs the batches this gateway published and has not logged yet (see
    /// [`TransparencyLog::log_batches_of`]). A failed append is logged and
    /// retried at the next boundary.
    pub fn record_own_batches(&self) {
        if let Some(g) = &self.gateway {
            if let Err(e) = self.log.log_batches_of(self.store.as_ref(), g.origin()) {
                tracing::error!("transparency log append failed: {e}");
            }
        }
    }

    /// What the store holds, in figures, now (maintained by the store: no scan).
    pub fn summary(&self) -> StoreSummary {
        self.store.summary(self.now())
    }

    /// The node's deletion-log public key.
    pub fn node_id(&self) -> [u8; 32] {
        self.node_key.verifying_key().to_bytes()
    }
}

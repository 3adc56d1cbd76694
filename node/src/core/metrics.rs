//! Prometheus metrics through the `prometheus-client` crate, in one registry:
//! the node's own under `traceless_`, libp2p's (gossipsub mesh and peer scores,
//! identify, Kademlia, connections) under `libp2p_`, registered by the federation
//! task. Aggregate counts only: nothing here (or anywhere in the node) records a
//! client address, a user agent or any other phone identifier; HTTP requests are
//! counted by route template and status.
//!
//! [`Metrics::new`] is the one list of exported names: each field is registered
//! there, and the crate adds `_total` to counters, so a field and its name
//! cannot drift apart. What each family means for an operator is in
//! `docs/operators.md`.

use std::sync::atomic::AtomicU64;
use std::sync::{Mutex, MutexGuard};

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::storage::StoreSummary;

/// A gauge of a count.
pub type CountGauge = Gauge<u64, AtomicU64>;

/// A gauge of a score (may be negative).
pub type ScoreGauge = Gauge<f64, AtomicU64>;

/// A metric's labels.
type Labels = Vec<(&'static str, String)>;

/// Counters and gauges shared by the HTTP API, federation and the core.
pub struct Metrics {
    /// Batches stored for the first time.
    pub batches_stored: Counter,
    /// Batches received again (idempotent).
    pub batches_duplicate: Counter,
    /// Batches with a known origin and sequence but other content.
    pub batches_conflicting: Counter,
    /// Gossip messages accepted and forwarded.
    pub gossip_accepted: Counter,
    /// Gossip messages rejected (sender penalised).
    pub gossip_rejected: Counter,
    /// Gossip messages ignored (duplicates, embargoed).
    pub gossip_ignored: Counter,
    /// Batches this node published on gossip (its own releases and catch-up
    /// results; batches received by gossip are forwarded, not published).
    pub gossip_published: Counter,
    /// Publications gossipsub refused as already seen (wasted work).
    pub gossip_publish_duplicate: Counter,
    /// Batches received through catch-up and stored.
    pub catchup_batches: Counter,
    /// Invalid batches received through catch-up.
    pub catchup_rejected: Counter,
    /// Catch-up fetches a peer answered with fewer batches than it advertised.
    pub catchup_unserved: Counter,
    /// Catch-up rounds whose summary a peer answered.
    pub catchup_rounds: Counter,
    /// Accepted uploads (real).
    pub uploads_accepted: Counter,
    /// Refused uploads.
    pub uploads_refused: Counter,
    /// Sealed uploads forwarded here by relays and answered `Accepted` (real and dummy alike).
    pub relayed_accepted: Counter,
    /// Sealed uploads refused (malformed, unauthorized, replayed, busy).
    pub relayed_refused: Counter,
    /// Upload tokens issued.
    pub tokens_issued: Counter,
    /// Retention runs that deleted something.
    pub retention_deletions: Counter,
    /// Day-filter parts received (gossip or catch-up) and stored: new here.
    pub filters_stored: Counter,
    /// Day-filter parts received that were held already.
    pub filters_duplicate: Counter,
    /// Day-filter parts received that differ from the part held under their
    /// origin, day and revision (the authority signed two; the first is kept).
    pub filters_conflicting: Counter,
    /// Day-filter parts received and rejected as invalid (sender penalised).
    pub filters_rejected: Counter,
    /// Day-filter parts this gateway built and signed.
    pub filters_built: Counter,
    /// Logs caught equivocating (SPEC.md §8.3).
    pub log_equivocations: Counter,
    /// Bytes of witness gossip (checkpoints, evidence) this node published or
    /// received (each message once).
    pub witness_gossip_bytes: Counter,
    /// Cosignatures this node made on other nodes' checkpoints.
    pub cosignatures_made: Counter,
    /// Bytes of `add-checkpoint` requests and answers this node sent.
    pub witness_request_bytes: Counter,
    /// Connected peers.
    pub peers_connected: CountGauge,
    /// 1 for each log caught equivocating, by log origin.
    log_equivocating: Family<Labels, CountGauge>,
    /// Own clock minus the peers' median, seconds (SPEC.md §2.1).
    clock_offset: ScoreGauge,
    /// 1 while the clock is off its peers' by more than the tolerance.
    clock_alarm: CountGauge,
    /// Peers whose clock samples are fresh.
    clock_peers: CountGauge,
    /// Gossipsub mesh peers per topic.
    gossip_mesh_peers: Family<Labels, CountGauge>,
    /// Gossipsub score of each connected peer (libp2p peer ids of relay nodes,
    /// never anything of a phone).
    gossip_peer_scores: Family<Labels, ScoreGauge>,
    /// What the store holds, set from its summary before each exposition.
    stored: StoredGauges,
    /// HTTP requests by route template and status (never who asked).
    http_requests: Family<Labels, Counter>,
    registry: Mutex<Registry>,
}

/// Gauges of what the store holds.
#[derive(Default)]
struct StoredGauges {
    batches: CountGauge,
    keys: CountGauge,
    deletion_log_entries: CountGauge,
    embargoed_keys: CountGauge,
    filters: CountGauge,
    filter_entries: CountGauge,
    gateway_filter_entries: CountGauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Every metric at zero, registered under its exported name.
    pub fn new() -> Self {
        let m = Metrics {
            batches_stored: Counter::default(),
            batches_duplicate: Counter::default(),
            batches_conflicting: Counter::default(),
            gossip_accepted: Counter::default(),
            gossip_rejected: Counter::default(),
            gossip_ignored: Counter::default(),
            gossip_published: Counter::default(),
            gossip_publish_duplicate: Counter::default(),
            catchup_batches: Counter::default(),
            catchup_rejected: Counter::default(),
            catchup_unserved: Counter::default(),
            catchup_rounds: Counter::default(),
            uploads_accepted: Counter::default(),
            uploads_refused: Counter::default(),
            relayed_accepted: Counter::default(),
            relayed_refused: Counter::default(),
            tokens_issued: Counter::default(),
            retention_deletions: Counter::default(),
            filters_stored: Counter::default(),
            filters_duplicate: Counter::default(),
            filters_conflicting: Counter::default(),
            filters_rejected: Counter::default(),
            filters_built: Counter::default(),
            log_equivocations: Counter::default(),
            witness_gossip_bytes: Counter::default(),
            cosignatures_made: Counter::default(),
            witness_request_bytes: Counter::default(),
            peers_connected: CountGauge::default(),
            log_equivocating: Family::default(),
            clock_offset: ScoreGauge::default(),
            clock_alarm: CountGauge::default(),
            clock_peers: CountGauge::default(),
            stored: StoredGauges::default(),
            http_requests: Family::default(),
            gossip_mesh_peers: Family::default(),
            gossip_peer_scores: Family::default(),
            registry: Mutex::new(Registry::default()),
        };
        {
            let mut root = m.registry();
            let r = root.sub_registry_with_prefix("traceless");
            let counters: [(&str, &str, &Counter); 27] = [
                (
                    "witness_request_bytes",
                    "Bytes of add-checkpoint requests and answers this node sent (note and proof).",
                    &m.witness_request_bytes,
                ),
                (
                    "log_equivocations",
                    "Logs caught signing two checkpoints of one size with different roots.",
                    &m.log_equivocations,
                ),
                (
                    "witness_gossip_bytes",
                    "Bytes of checkpoint and evidence gossip published or received (each message once).",
                    &m.witness_gossip_bytes,
                ),
                (
                    "cosignatures_made",
                    "Other nodes' checkpoints this witness cosigned.",
                    &m.cosignatures_made,
                ),
                (
                    "batches_stored",
                    "Batches stored for the first time.",
                    &m.batches_stored,
                ),
                (
                    "batches_duplicate",
                    "Batches received again.",
                    &m.batches_duplicate,
                ),
                (
                    "batches_conflicting",
                    "Batches reusing a stored origin and sequence with other content.",
                    &m.batches_conflicting,
                ),
                (
                    "gossip_accepted",
                    "Gossip messages accepted and forwarded.",
                    &m.gossip_accepted,
                ),
                (
                    "gossip_rejected",
                    "Gossip messages rejected; the sender is penalised.",
                    &m.gossip_rejected,
                ),
                (
                    "gossip_ignored",
                    "Gossip messages ignored (duplicate or embargoed).",
                    &m.gossip_ignored,
                ),
                (
                    "gossip_published",
                    "Batches this node published on gossip (not counting forwarding).",
                    &m.gossip_published,
                ),
                (
                    "gossip_publish_duplicate",
                    "Publications refused by gossipsub as already seen.",
                    &m.gossip_publish_duplicate,
                ),
                (
                    "catchup_batches",
                    "Batches stored through catch-up.",
                    &m.catchup_batches,
                ),
                (
                    "catchup_rejected",
                    "Invalid batches received through catch-up.",
                    &m.catchup_rejected,
                ),
                (
                    "catchup_unserved",
                    "Catch-up fetches a peer answered with fewer batches than it advertised.",
                    &m.catchup_unserved,
                ),
                (
                    "catchup_rounds",
                    "Catch-up rounds whose summary a peer answered (each followed by its fetches).",
                    &m.catchup_rounds,
                ),
                (
                    "uploads_accepted",
                    "Accepted uploads, real and dummy alike.",
                    &m.uploads_accepted,
                ),
                ("uploads_refused", "Refused uploads.", &m.uploads_refused),
                (
                    "relayed_uploads_accepted",
                    "Sealed uploads from relays answered Accepted (real and dummy alike).",
                    &m.relayed_accepted,
                ),
                (
                    "relayed_uploads_refused",
                    "Sealed uploads refused.",
                    &m.relayed_refused,
                ),
                (
                    "tokens_issued",
                    "Anonymous upload tokens issued.",
                    &m.tokens_issued,
                ),
                (
                    "retention_deletions",
                    "Retention runs that deleted something.",
                    &m.retention_deletions,
                ),
                (
                    "filters_stored",
                    "Day-filter parts received and stored (new here).",
                    &m.filters_stored,
                ),
                (
                    "filters_duplicate",
                    "Day-filter parts received that were held already.",
                    &m.filters_duplicate,
                ),
                (
                    "filters_conflicting",
                    "Day-filter parts received that differ from the part held under their origin, day and revision (the first is kept).",
                    &m.filters_conflicting,
                ),
                (
                    "filters_rejected",
                    "Day-filter parts received and rejected as invalid.",
                    &m.filters_rejected,
                ),
                (
                    "filters_built",
                    "Day-filter parts this gateway built and signed.",
                    &m.filters_built,
                ),
            ];
            for (name, help, c) in counters {
                r.register(name, help, c.clone());
            }
            let s = &m.stored;
            let gauges: [(&str, &str, &CountGauge); 8] = [
                ("peers_connected", "Connected federation peers.", &m.peers_connected),
                ("batches", "Batches stored (served or embargoed).", &s.batches),
                ("keys", "Keys stored in batches (served or embargoed).", &s.keys),
                (
                    "deletion_log_entries",
                    "Entries in the deletion log.",
                    &s.deletion_log_entries,
                ),
                (
                    "embargoed_keys",
                    "Keys held back by the embargo: in stored batches or not yet in one (the transparency page's figure).",
                    &s.embargoed_keys,
                ),
                (
                    "filters",
                    "Parts of day filters stored (every part of every origin and day).",
                    &s.filters,
                ),
                ("filter_entries", "Entries in the stored parts of day filters.", &s.filter_entries),
                (
                    "gateway_filter_entries",
                    "Filter-form entries this gateway holds (published or still embargoed).",
                    &s.gateway_filter_entries,
                ),
            ];
            for (name, help, g) in gauges {
                r.register(name, help, g.clone());
            }
            r.register(
                "clock_offset_seconds",
                "This node's clock minus its peers' median (positive: ahead; 0 while fewer than 2 peers answered).",
                m.clock_offset.clone(),
            );
            r.register(
                "clock_alarm",
                "1 while this node's clock is off its peers' by more than the tolerance (releases and deletions held back when ahead).",
                m.clock_alarm.clone(),
            );
            r.register(
                "clock_peers",
                "Peers whose clock samples are fresh (the offset is known from 2 on).",
                m.clock_peers.clone(),
            );
            r.register(
                "gossipsub_mesh_peers",
                "Gossipsub mesh peers per topic.",
                m.gossip_mesh_peers.clone(),
            );
            r.register(
                "gossipsub_peer_score",
                "Gossipsub score of each connected peer (negative: penalised).",
                m.gossip_peer_scores.clone(),
            );
            r.register(
                "log_equivocating",
                "1 for each log caught equivocating, by log origin.",
                m.log_equivocating.clone(),
            );
            r.register(
                "http_requests",
                "HTTP requests by route template and status (aggregate only).",
                m.http_requests.clone(),
            );
        }
        m
    }

    /// The registry, for the federation task to register libp2p's metrics in.
    pub fn registry(&self) -> MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts one HTTP request to a route template with a status.
    pub fn count_request(&self, route: &str, status: u16) {
        self.request_counter(route, status).inc();
    }

    /// Requests counted so far to a route template with a status.
    pub fn requests(&self, route: &str, status: u16) -> u64 {
        self.request_counter(route, status).get()
    }

    fn request_counter(&self, route: &str, status: u16) -> Counter {
        self.http_requests
            .get_or_create(&vec![
                ("route", route.to_owned()),
                ("status", status.to_string()),
            ])
            .clone()
    }

    /// Sets the mesh peer count of a gossipsub topic.
    pub fn set_mesh_peers(&self, topic: &str, n: u64) {
        self.gossip_mesh_peers
            .get_or_create(&vec![("topic", topic.to_owned())])
            .set(n);
    }

    /// The mesh peer count of a gossipsub topic, as last set (every 2 s).
    pub fn mesh_peers(&self, topic: &str) -> u64 {
        self.gossip_mesh_peers
            .get_or_create(&vec![("topic", topic.to_owned())])
            .get()
    }

    /// Marks the log `origin` as caught equivocating.
    pub fn set_equivocating(&self, origin: &str) {
        self.log_equivocating
            .get_or_create(&vec![("origin", origin.to_owned())])
            .set(1);
    }

    /// Replaces the peer scores with those of the connected peers.
    pub fn set_peer_scores(&self, scores: impl Iterator<Item = (String, f64)>) {
        self.gossip_peer_scores.clear();
        for (peer, score) in scores {
            self.gossip_peer_scores
                .get_or_create(&vec![("peer", peer)])
                .set(score);
        }
    }

    /// Sets the clock gauges from the clock's status.
    pub fn set_clock(&self, status: &crate::clock::ClockStatus) {
        self.clock_offset.set(status.offset() as f64);
        self.clock_alarm.set(u64::from(status.alarm()));
        self.clock_peers.set(status.peers() as u64);
    }

    /// The OpenMetrics text exposition of every metric, with the store gauges
    /// set from `stored`.
    pub fn render(&self, stored: &StoreSummary) -> String {
        let g = &self.stored;
        g.batches.set(stored.batches);
        g.keys.set(stored.keys);
        g.deletion_log_entries.set(stored.deletion_log_entries);
        g.embargoed_keys.set(stored.embargoed_keys());
        g.filters.set(stored.filters);
        g.filter_entries.set(stored.filter_entries);
        g.gateway_filter_entries.set(stored.gateway_filter_entries);
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry());
        out
    }
}

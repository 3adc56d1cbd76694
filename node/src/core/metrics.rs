//! Prometheus metrics: aggregate counters only. Nothing here (or anywhere in the
//! node) records a client address, a user agent or any other phone identifier.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Counters shared by the HTTP API and federation.
#[derive(Default)]
pub struct Metrics {
    /// Batches stored for the first time.
    pub batches_stored: AtomicU64,
    /// Batches received again (idempotent).
    pub batches_duplicate: AtomicU64,
    /// Batches with a known origin and sequence but other content.
    pub batches_conflicting: AtomicU64,
    /// Gossip messages accepted and forwarded.
    pub gossip_accepted: AtomicU64,
    /// Gossip messages rejected (sender penalised).
    pub gossip_rejected: AtomicU64,
    /// Gossip messages ignored (duplicates, embargoed).
    pub gossip_ignored: AtomicU64,
    /// Batches this node published on gossip (its own releases and catch-up
    /// results; batches received by gossip are forwarded, not published).
    pub gossip_published: AtomicU64,
    /// Publications gossipsub refused as already seen (wasted work).
    pub gossip_publish_duplicate: AtomicU64,
    /// Batches received through catch-up and stored.
    pub catchup_batches: AtomicU64,
    /// Invalid batches received through catch-up.
    pub catchup_rejected: AtomicU64,
    /// Catch-up fetches a peer answered with fewer batches than it advertised.
    pub catchup_unserved: AtomicU64,
    /// Accepted uploads (real).
    pub uploads_accepted: AtomicU64,
    /// Refused uploads.
    pub uploads_refused: AtomicU64,
    /// Dummy uploads (cover traffic).
    pub uploads_dummy: AtomicU64,
    /// Sealed uploads forwarded here by relays and answered `Accepted` (real and dummy alike).
    pub relayed_accepted: AtomicU64,
    /// Sealed uploads refused (malformed, unauthorized, replayed, busy).
    pub relayed_refused: AtomicU64,
    /// Upload tokens issued.
    pub tokens_issued: AtomicU64,
    /// Retention runs that deleted something.
    pub retention_deletions: AtomicU64,
    /// Connected peers.
    pub peers_connected: AtomicU64,
    /// Day filters received (gossip or catch-up) and stored: a higher revision.
    pub filters_stored: AtomicU64,
    /// Day filters received whose revision was not higher than the one held.
    pub filters_stale: AtomicU64,
    /// Day filters received and rejected as invalid (sender penalised).
    pub filters_rejected: AtomicU64,
    /// Day-filter revisions this gateway built and signed.
    pub filters_built: AtomicU64,
    /// HTTP requests by (route, status class).
    http: Mutex<BTreeMap<(String, u16), u64>>,
}

/// Increments a counter.
pub fn inc(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

impl Metrics {
    /// Counts one HTTP request to a route template with a status.
    pub fn count_request(&self, route: &str, status: u16) {
        let mut m = self.http.lock().unwrap_or_else(|e| e.into_inner());
        *m.entry((route.to_owned(), status)).or_default() += 1;
    }

    /// Prometheus text exposition; `gauges` are added as they are.
    pub fn render(&self, gauges: &[(&str, &str, u64)]) -> String {
        let mut out = String::new();
        let counters: [(&str, &str, &AtomicU64); 22] = [
            (
                "traceless_batches_stored_total",
                "Batches stored for the first time.",
                &self.batches_stored,
            ),
            (
                "traceless_batches_duplicate_total",
                "Batches received again.",
                &self.batches_duplicate,
            ),
            (
                "traceless_batches_conflicting_total",
                "Batches reusing a stored origin and sequence with other content.",
                &self.batches_conflicting,
            ),
            (
                "traceless_gossip_accepted_total",
                "Gossip messages accepted and forwarded.",
                &self.gossip_accepted,
            ),
            (
                "traceless_gossip_rejected_total",
                "Gossip messages rejected; the sender is penalised.",
                &self.gossip_rejected,
            ),
            (
                "traceless_gossip_ignored_total",
                "Gossip messages ignored (duplicate or embargoed).",
                &self.gossip_ignored,
            ),
            (
                "traceless_gossip_published_total",
                "Batches this node published on gossip (not counting forwarding).",
                &self.gossip_published,
            ),
            (
                "traceless_gossip_publish_duplicate_total",
                "Publications refused by gossipsub as already seen.",
                &self.gossip_publish_duplicate,
            ),
            (
                "traceless_catchup_batches_total",
                "Batches stored through catch-up.",
                &self.catchup_batches,
            ),
            (
                "traceless_catchup_rejected_total",
                "Invalid batches received through catch-up.",
                &self.catchup_rejected,
            ),
            (
                "traceless_uploads_accepted_total",
                "Accepted uploads.",
                &self.uploads_accepted,
            ),
            (
                "traceless_uploads_refused_total",
                "Refused uploads.",
                &self.uploads_refused,
            ),
            (
                "traceless_uploads_dummy_total",
                "Dummy uploads (cover traffic).",
                &self.uploads_dummy,
            ),
            (
                "traceless_relayed_uploads_accepted_total",
                "Sealed uploads from relays answered Accepted (real and dummy alike).",
                &self.relayed_accepted,
            ),
            (
                "traceless_relayed_uploads_refused_total",
                "Sealed uploads refused.",
                &self.relayed_refused,
            ),
            (
                "traceless_tokens_issued_total",
                "Anonymous upload tokens issued.",
                &self.tokens_issued,
            ),
            (
                "traceless_retention_deletions_total",
                "Retention runs that deleted batches.",
                &self.retention_deletions,
            ),
            (
                "traceless_filters_received_total",
                "Day filters received with a higher revision and stored.",
                &self.filters_stored,
            ),
            (
                "traceless_filters_stale_total",
                "Day filters received whose revision was not higher than the one held.",
                &self.filters_stale,
            ),
            (
                "traceless_filters_rejected_total",
                "Day filters received and rejected as invalid.",
                &self.filters_rejected,
            ),
            (
                "traceless_filters_built_total",
                "Day-filter revisions this gateway built and signed.",
                &self.filters_built,
            ),
            (
                "traceless_peers_connected",
                "Connected federation peers.",
                &self.peers_connected,
            ),
        ];
        for (name, help, c) in counters {
            let kind = if name.ends_with("_total") {
                "counter"
            } else {
                "gauge"
            };
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {}",
                c.load(Ordering::Relaxed)
            );
        }
        for (name, help, v) in gauges {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
        }
        let _ = writeln!(
            out,
            "# HELP traceless_http_requests_total HTTP requests by route and status (aggregate only).\n# TYPE traceless_http_requests_total counter"
        );
        let m = self.http.lock().unwrap_or_else(|e| e.into_inner());
        for ((route, status), n) in m.iter() {
            let _ = writeln!(
                out,
                "traceless_http_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}"
            );
        }
        out
    }
}

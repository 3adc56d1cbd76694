//! Catch-up after downtime or a partition: a peer tells which sequence numbers it
//! serves per origin, and we fetch the ones we lack. Fetched batches go through
//! exactly the checks gossip does. Day filters likewise: a peer lists the parts
//! it holds per (origin, day), and we fetch the parts we lack; venue warning
//! batches by origin and warning sequence, as batches.
//!
//! A summary is attacker-chosen (up to 33 MiB from one peer). Without limits it
//! became about a million outbound requests. Here: origins outside the trust list
//! are dropped, one round per peer is in flight at a time and asks for at most
//! [`Config::max_fetches_per_round`] fetches, and a peer that advertises batches
//! and then does not serve them gets a strike (a gossipsub penalty) and, after
//! [`Config::strikes_before_backoff`], no catch-up for [`Config::backoff`].
//!
//! The state machine is [`Catchup`]; `federation/mod.rs` wires it to the swarm.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use libp2p::request_response::OutboundRequestId;
use libp2p::PeerId;
use serde::{Deserialize, Serialize};
use traceless_protocol::filter::MAX_FILTER_PARTS;
use traceless_protocol::TrustList;

use crate::storage::warnings::{read_meta, WarningFiles};
use crate::storage::{StorageError, Store};

/// Most sequence numbers asked for in one fetch.
pub const MAX_FETCH: usize = 64;
/// Most batch bytes in one response (the rest is fetched next round).
pub const MAX_RESPONSE_BYTES: usize = 32 << 20;
/// Most sequence numbers enumerated per origin and round.
pub const MAX_MISSING_PER_ROUND: usize = 4096;
/// Most day-filter parts asked for in one fetch (each up to 5 MiB).
pub const MAX_FILTER_FETCH: usize = 8;

/// A catch-up request.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub enum CatchupRequest {
    /// Which batches do you serve?
    Summary,
    /// Send these batches of one origin.
    Fetch {
        /// Authority id.
        origin: String,
        /// Sequence numbers (at most [`MAX_FETCH`]).
        sequences: Vec<u64>,
    },
    /// Which parts of day filters do you hold?
    FilterSummary,
    /// Send these (origin, day, revision) parts (at most [`MAX_FILTER_FETCH`]).
    FetchFilters(Vec<(String, u32, u64)>),
    /// What time is it on your clock (SPEC.md §2.1)?
    Time,
    /// Which venue warning batches do you serve (SPEC.md §12.10)?
    WarningSummary,
    /// Send these warning batches of one origin.
    FetchWarnings {
        /// Authority id.
        origin: String,
        /// Warning sequence numbers (at most [`MAX_FETCH`]).
        sequences: Vec<u64>,
    },
}

/// Per origin, the sequence numbers a node serves, as inclusive runs.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct OriginSummary {
    /// Authority id.
    pub origin: String,
    /// Inclusive `(first, last)` runs.
    pub runs: Vec<(u64, u64)>,
}

/// Per (origin, day), the parts of its day filter a node holds, as inclusive
/// runs of revisions.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct FilterDaySummary {
    /// Authority id.
    pub origin: String,
    /// UTC day.
    pub day: u32,
    /// Inclusive `(first, last)` runs of part revisions.
    pub runs: Vec<(u64, u64)>,
}

/// A catch-up response.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub enum CatchupResponse {
    /// Answer to [`CatchupRequest::Summary`].
    Summary(Vec<OriginSummary>),
    /// `SignedBatch` encodings (those found and visible, within the size cap).
    Batches(Vec<serde_bytes::ByteBuf>),
    /// Answer to [`CatchupRequest::FilterSummary`].
    FilterSummary(Vec<FilterDaySummary>),
    /// `SignedFilter` encodings (those found and unexpired, within the size cap).
    Filters(Vec<serde_bytes::ByteBuf>),
    /// The request was refused.
    Refused(String),
    /// Answer to [`CatchupRequest::Time`]: the answering node's own clock,
    /// unix seconds.
    Time(u64),
    /// Answer to [`CatchupRequest::WarningSummary`]: per origin, the warning
    /// sequences served (published by the answering node's boundary).
    WarningSummary(Vec<OriginSummary>),
    /// `SignedWarningBatch` encodings (those found and public, within the size cap).
    Warnings(Vec<serde_bytes::ByteBuf>),
}

fn runs(seqs: impl Iterator<Item = u64>) -> Vec<(u64, u64)> {
    let mut out: Vec<(u64, u64)> = Vec::new();
    for s in seqs {
        match out.last_mut() {
            Some((_, last)) if *last + 1 == s => *last = s,
            _ => out.push((s, s)),
        }
    }
    out
}

/// What this node serves: visible batches only (embargoed ones are never served).
pub fn summary(store: &dyn Store, now: u64) -> Result<Vec<OriginSummary>, StorageError> {
    let served = store
        .all_batches()?
        .into_iter()
        .filter(|m| m.is_visible(now));
    Ok(origin_summaries(served.map(|m| (m.origin, m.sequence))))
}

/// The venue warning batches this node serves: those public at `as_of`, its
/// current boundary (as `GET /v1/warnings` lists them).
pub fn warning_summary(
    files: &WarningFiles,
    as_of: u64,
) -> Result<Vec<OriginSummary>, StorageError> {
    let served = files
        .list(None, 0)?
        .into_iter()
        .filter(|m| m.created_at <= as_of);
    Ok(origin_summaries(served.map(|m| (m.origin, m.sequence))))
}

/// The sequences given, per origin.
fn held(items: impl Iterator<Item = (String, u64)>) -> BTreeMap<String, BTreeSet<u64>> {
    let mut by_origin: BTreeMap<String, BTreeSet<u64>> = BTreeMap::new();
    for (origin, sequence) in items {
        by_origin.entry(origin).or_default().insert(sequence);
    }
    by_origin
}

/// Per origin, runs of the sequences given.
fn origin_summaries(items: impl Iterator<Item = (String, u64)>) -> Vec<OriginSummary> {
    held(items)
        .into_iter()
        .map(|(origin, seqs)| OriginSummary {
            origin,
            runs: runs(seqs.into_iter()),
        })
        .collect()
}

/// The fetches needed to get what a peer serves and we lack: only for origins in
/// `trust`, and at most `max_fetches` of them (the rest is fetched in later rounds).
pub fn missing(
    store: &dyn Store,
    theirs: &[OriginSummary],
    trust: &TrustList,
    max_fetches: usize,
) -> Result<Vec<CatchupRequest>, StorageError> {
    let ours = held(
        store
            .all_batches()?
            .into_iter()
            .map(|m| (m.origin, m.sequence)),
    );
    Ok(missing_of(
        &ours,
        theirs,
        trust,
        max_fetches,
        |origin, sequences| CatchupRequest::Fetch { origin, sequences },
    ))
}

/// [`missing`] for venue warning batches: the warning sequences a peer
/// serves and `files` lacks.
pub fn missing_warnings(
    files: &WarningFiles,
    theirs: &[OriginSummary],
    trust: &TrustList,
    max_fetches: usize,
) -> Result<Vec<CatchupRequest>, StorageError> {
    let ours = held(
        files
            .list(None, 0)?
            .into_iter()
            .map(|m| (m.origin, m.sequence)),
    );
    Ok(missing_of(
        &ours,
        theirs,
        trust,
        max_fetches,
        |origin, sequences| CatchupRequest::FetchWarnings { origin, sequences },
    ))
}

/// The fetches (made by `fetch` from an origin and at most [`MAX_FETCH`]
/// sequences) for what `theirs` lists and `ours` lacks, trusted origins only,
/// at most `max_fetches`.
fn missing_of(
    ours: &BTreeMap<String, BTreeSet<u64>>,
    theirs: &[OriginSummary],
    trust: &TrustList,
    max_fetches: usize,
    fetch: impl Fn(String, Vec<u64>) -> CatchupRequest,
) -> Vec<CatchupRequest> {
    let trusted: BTreeSet<&str> = trust.entries().into_iter().map(|(o, _, _)| o).collect();
    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    for s in theirs {
        // Untrusted origins could never verify; an origin listed twice counts once.
        if !trusted.contains(s.origin.as_str()) || !seen.insert(s.origin.as_str()) {
            continue;
        }
        if out.len() >= max_fetches {
            break;
        }
        let have = ours.get(&s.origin);
        let lacking: Vec<u64> = s
            .runs
            .iter()
            .flat_map(|&(a, b)| a..=b.max(a))
            .filter(|q| have.is_none_or(|h| !h.contains(q)))
            .take(MAX_MISSING_PER_ROUND.min((max_fetches - out.len()) * MAX_FETCH))
            .collect();
        for chunk in lacking.chunks(MAX_FETCH) {
            out.push(fetch(s.origin.clone(), chunk.to_vec()));
        }
    }
    out
}

/// Catch-up limits.
#[derive(Clone, Debug)]
pub struct Config {
    /// Most fetch requests one round with one peer sends (each for up to
    /// [`MAX_FETCH`] batches).
    pub max_fetches_per_round: usize,
    /// Strikes (advertised, then not served) after which a peer is not caught
    /// up with for [`Config::backoff`].
    pub strikes_before_backoff: u32,
    /// How long a peer with too many strikes is left alone.
    pub backoff: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_fetches_per_round: 16,
            strikes_before_backoff: 2,
            backoff: Duration::from_secs(600),
        }
    }
}

/// What the catch-up state machine asks its owner to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// The peer advertised batches it then did not serve: lower its score.
    Unserved(PeerId),
}

/// One peer's catch-up state.
#[derive(Default)]
struct PeerState {
    /// Requests of the current round still unanswered.
    outstanding: usize,
    /// Strikes since the last back-off.
    strikes: u32,
    /// No rounds before this.
    backoff_until: Option<Instant>,
}

/// The catch-up state machine: which peers have a round in flight, which
/// fetches are outstanding and how many batches each asked for, and which
/// peers are backed off.
#[derive(Default)]
pub struct Catchup {
    config: Config,
    peers: HashMap<PeerId, PeerState>,
    fetches: HashMap<OutboundRequestId, (PeerId, usize)>,
}

impl Catchup {
    /// A state machine with `config`.
    pub fn new(config: Config) -> Self {
        Catchup {
            config,
            ..Default::default()
        }
    }

    /// The limits.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Whether a round with `peer` may start now (none in flight, not backed off);
    /// if so, counts the summary requests `summaries` as outstanding.
    pub fn start_round(&mut self, peer: PeerId, summaries: usize, now: Instant) -> bool {
        let p = self.peers.entry(peer).or_default();
        if p.outstanding > 0 || p.backoff_until.is_some_and(|t| now < t) {
            return false;
        }
        p.backoff_until = None;
        p.outstanding = summaries;
        true
    }

    /// A summary (or any request without batches to check) was answered.
    pub fn answered(&mut self, peer: PeerId) {
        if let Some(p) = self.peers.get_mut(&peer) {
            p.outstanding = p.outstanding.saturating_sub(1);
        }
    }

    /// A fetch for `asked` batches was sent as `id`.
    pub fn fetch_sent(&mut self, peer: PeerId, id: OutboundRequestId, asked: usize) {
        self.peers.entry(peer).or_default().outstanding += 1;
        self.fetches.insert(id, (peer, asked));
    }

    /// A fetch was answered with `served` batches of `bytes` bytes in all. Fewer
    /// than asked, well under the response size cap, is a strike.
    pub fn fetch_answered(
        &mut self,
        id: OutboundRequestId,
        served: usize,
        bytes: usize,
        now: Instant,
    ) -> Option<Event> {
        let (peer, asked) = self.fetches.remove(&id)?;
        self.answered(peer);
        let short = served < asked && bytes < MAX_RESPONSE_BYTES / 2;
        short.then(|| self.strike(peer, now))
    }

    /// A request to `peer` failed (timeout, connection closed): its round ends.
    pub fn failed(&mut self, id: Option<OutboundRequestId>, peer: PeerId) {
        if let Some(id) = id {
            self.fetches.remove(&id);
        }
        self.answered(peer);
    }

    /// Forgets a disconnected peer's round (its strikes and back-off stay).
    pub fn disconnected(&mut self, peer: PeerId) {
        self.fetches.retain(|_, (p, _)| *p != peer);
        if let Some(p) = self.peers.get_mut(&peer) {
            p.outstanding = 0;
        }
    }

    fn strike(&mut self, peer: PeerId, now: Instant) -> Event {
        let p = self.peers.entry(peer).or_default();
        p.strikes += 1;
        if p.strikes >= self.config.strikes_before_backoff {
            p.strikes = 0;
            p.backoff_until = Some(now + self.config.backoff);
        }
        Event::Unserved(peer)
    }
}

/// The parts of day filters this node holds (unexpired), per (origin, day).
pub fn filter_summary(store: &dyn Store, now: u64) -> Result<Vec<FilterDaySummary>, StorageError> {
    let mut by_day: BTreeMap<(String, u32), Vec<u64>> = BTreeMap::new();
    for f in store.all_filters()? {
        if now <= f.expires_at() {
            by_day
                .entry((f.origin, f.day))
                .or_default()
                .push(f.revision);
        }
    }
    Ok(by_day
        .into_iter()
        .map(|((origin, day), revisions)| FilterDaySummary {
            origin,
            day,
            runs: runs(revisions.into_iter()),
        })
        .collect())
}

/// The fetches needed to get the parts a peer holds and we lack: only for
/// origins in `trust`, runs clipped to the revisions a part may have, and at
/// most `max_fetches` of them (the rest is fetched in later rounds).
pub fn missing_filters(
    store: &dyn Store,
    theirs: &[FilterDaySummary],
    trust: &TrustList,
    max_fetches: usize,
) -> Result<Vec<CatchupRequest>, StorageError> {
    let trusted: BTreeSet<&str> = trust.entries().into_iter().map(|(o, _, _)| o).collect();
    let most = max_fetches.saturating_mul(MAX_FILTER_FETCH);
    let mut lacking = Vec::new();
    for t in theirs
        .iter()
        .filter(|t| trusted.contains(t.origin.as_str()))
    {
        let ours: BTreeSet<u64> = store
            .filter_parts(&t.origin, t.day)?
            .into_iter()
            .map(|m| m.revision)
            .collect();
        let wanted: BTreeSet<u64> = t
            .runs
            .iter()
            .flat_map(|&(first, last)| first.max(1)..=last.min(MAX_FILTER_PARTS))
            .filter(|r| !ours.contains(r))
            .collect();
        lacking.extend(wanted.into_iter().map(|r| (t.origin.clone(), t.day, r)));
        if lacking.len() >= most {
            lacking.truncate(most);
            break;
        }
    }
    Ok(lacking
        .chunks(MAX_FILTER_FETCH)
        .map(|c| CatchupRequest::FetchFilters(c.to_vec()))
        .collect())
}

/// The messages `found` yields in order (`None`: not held, or not to be
/// served), up to [`MAX_RESPONSE_BYTES`] (always the first one found).
fn capped(
    found: impl Iterator<Item = Result<Option<Vec<u8>>, StorageError>>,
) -> Result<Vec<serde_bytes::ByteBuf>, StorageError> {
    let mut out = Vec::new();
    let mut bytes = 0;
    for item in found {
        let Some(b) = item? else {
            continue;
        };
        bytes += b.len();
        if bytes > MAX_RESPONSE_BYTES && !out.is_empty() {
            break;
        }
        out.push(serde_bytes::ByteBuf::from(b));
    }
    Ok(out)
}

/// Answers a request from the store and the warning files; `public_now` is
/// the node's current boundary, as of which warnings are public.
pub fn answer(
    store: &dyn Store,
    warnings: &WarningFiles,
    request: &CatchupRequest,
    now: u64,
    public_now: u64,
) -> CatchupResponse {
    let result = match request {
        CatchupRequest::Time => return CatchupResponse::Time(now),
        CatchupRequest::WarningSummary => {
            warning_summary(warnings, public_now).map(CatchupResponse::WarningSummary)
        }
        CatchupRequest::FetchWarnings { sequences, .. } if sequences.len() > MAX_FETCH => {
            return CatchupResponse::Refused(format!(
                "asked for {} warning batches; at most {MAX_FETCH} per request",
                sequences.len()
            ))
        }
        CatchupRequest::FetchWarnings { origin, sequences } => {
            capped(sequences.iter().map(|&seq| {
                let Some(bytes) = warnings.get(origin, seq)? else {
                    return Ok(None);
                };
                // Public from its `createdAt` on, as `GET /v1/warnings` serves it.
                Ok((read_meta(&bytes)?.created_at <= public_now).then_some(bytes))
            }))
            .map(CatchupResponse::Warnings)
        }
        CatchupRequest::Summary => summary(store, now).map(CatchupResponse::Summary),
        CatchupRequest::Fetch { sequences, .. } if sequences.len() > MAX_FETCH => {
            return CatchupResponse::Refused(format!(
                "asked for {} batches; at most {MAX_FETCH} per request",
                sequences.len()
            ))
        }
        CatchupRequest::FilterSummary => {
            filter_summary(store, now).map(CatchupResponse::FilterSummary)
        }
        CatchupRequest::FetchFilters(wanted) if wanted.len() > MAX_FILTER_FETCH => {
            return CatchupResponse::Refused(format!(
                "asked for {} filters; at most {MAX_FILTER_FETCH} per request",
                wanted.len()
            ))
        }
        CatchupRequest::FetchFilters(wanted) => {
            capped(wanted.iter().map(|(origin, day, revision)| {
                Ok(store
                    .get_filter(origin, *day, *revision)?
                    .filter(|f| now <= f.meta.expires_at())
                    .map(|f| f.bytes))
            }))
            .map(CatchupResponse::Filters)
        }
        CatchupRequest::Fetch { origin, sequences } => capped(sequences.iter().map(|&seq| {
            Ok(store
                .get_batch(origin, seq)?
                .filter(|b| b.meta.is_visible(now))
                .map(|b| b.bytes))
        }))
        .map(CatchupResponse::Batches),
    };
    result.unwrap_or_else(|e: StorageError| CatchupResponse::Refused(format!("storage: {e}")))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// A summary of 100,000 untrusted origins and a million sequence numbers of a
    /// trusted one becomes at most one round's fetches, all for the trusted origin
    /// (without the limits: 64 fetches per origin, 6.4 million requests).
    #[test]
    fn a_hostile_summary_becomes_one_bounded_round() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::storage::SledStore::open(&dir.path().join("db")).unwrap();
        let key = traceless_protocol::AuthorityKey::generate("trusted.health", 1);
        let mut trust = TrustList::new();
        trust.insert("trusted.health", 1, key.verifying_key());
        let mut theirs: Vec<OriginSummary> = (0..100_000)
            .map(|i| OriginSummary {
                origin: format!("x{i}"),
                runs: vec![(1, u64::MAX)],
            })
            .collect();
        theirs.push(OriginSummary {
            origin: "trusted.health".into(),
            runs: vec![(1, 1_000_000)],
        });
        let max = Config::default().max_fetches_per_round;
        let reqs = missing(&store, &theirs, &trust, max).unwrap();
        assert_eq!(reqs.len(), max);
        assert!(reqs.iter().all(|r| matches!(r,
            CatchupRequest::Fetch { origin, sequences }
                if origin == "trusted.health" && sequences.len() == MAX_FETCH)));
    }

    /// A filter summary of a million days of untrusted origins and runs up to
    /// `u64::MAX` becomes at most one round of fetches, of trusted parts that
    /// can exist (revisions 1..=384), skipping the parts held.
    #[test]
    fn a_hostile_filter_summary_becomes_one_bounded_round() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::storage::SledStore::open(&dir.path().join("db")).unwrap();
        let key = traceless_protocol::AuthorityKey::generate("trusted.health", 1);
        let mut trust = TrustList::new();
        trust.insert("trusted.health", 1, key.verifying_key());
        let mut theirs: Vec<FilterDaySummary> = (0..1_000_000)
            .map(|i| FilterDaySummary {
                origin: format!("x{}", i % 1000),
                day: i / 1000,
                runs: vec![(0, u64::MAX)],
            })
            .collect();
        theirs.push(FilterDaySummary {
            origin: "trusted.health".into(),
            day: 20_000,
            runs: vec![(0, 2), (380, u64::MAX)],
        });
        let reqs = missing_filters(&store, &theirs, &trust, 100).unwrap();
        let wanted: Vec<u64> = reqs
            .iter()
            .flat_map(|r| match r {
                CatchupRequest::FetchFilters(w) => w.clone(),
                other => panic!("{other:?}"),
            })
            .map(|(origin, day, r)| {
                assert_eq!((origin.as_str(), day), ("trusted.health", 20_000));
                r
            })
            .collect();
        assert_eq!(wanted, vec![1, 2, 380, 381, 382, 383, 384]);
        assert_eq!(reqs.len(), 1);
        // At most `max_fetches` requests.
        let one = missing_filters(&store, &theirs, &trust, 0).unwrap();
        assert!(one.is_empty());
    }

    #[test]
    fn runs_compress_sequences() {
        assert_eq!(
            runs([1, 2, 3, 5, 7, 8].into_iter()),
            vec![(1, 3), (5, 5), (7, 8)]
        );
    }
}

//! Catch-up after downtime or a partition: a peer tells which sequence numbers it
//! serves per origin, and we fetch the ones we lack. Fetched batches go through
//! exactly the checks gossip does. Day filters likewise: a peer lists the newest
//! revision it holds per (origin, day), and we fetch those above ours.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::storage::{StorageError, Store};

/// Most sequence numbers asked for in one fetch.
pub const MAX_FETCH: usize = 64;
/// Most batch bytes in one response (the rest is fetched next round).
pub const MAX_RESPONSE_BYTES: usize = 32 << 20;
/// Most sequence numbers enumerated per origin and round.
pub const MAX_MISSING_PER_ROUND: usize = 4096;
/// Most day filters asked for in one fetch (each up to 4 MiB).
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
    /// Which day filters do you hold (newest revisions)?
    FilterSummary,
    /// Send the newest revisions of these (origin, day) filters (at most
    /// [`MAX_FILTER_FETCH`]).
    FetchFilters(Vec<(String, u32)>),
}

/// Per origin, the sequence numbers a node serves, as inclusive runs.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct OriginSummary {
    /// Authority id.
    pub origin: String,
    /// Inclusive `(first, last)` runs.
    pub runs: Vec<(u64, u64)>,
}

/// A catch-up response.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub enum CatchupResponse {
    /// Answer to [`CatchupRequest::Summary`].
    Summary(Vec<OriginSummary>),
    /// `SignedBatch` encodings (those found and visible, within the size cap).
    Batches(Vec<serde_bytes::ByteBuf>),
    /// Answer to [`CatchupRequest::FilterSummary`]: (origin, day, revision).
    FilterSummary(Vec<(String, u32, u64)>),
    /// `SignedFilter` encodings (those found and unexpired, within the size cap).
    Filters(Vec<serde_bytes::ByteBuf>),
    /// The request was refused.
    Refused(String),
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
    let mut by_origin: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for m in store.all_batches()? {
        if m.is_visible(now) {
            by_origin.entry(m.origin).or_default().push(m.sequence);
        }
    }
    Ok(by_origin
        .into_iter()
        .map(|(origin, seqs)| OriginSummary {
            origin,
            runs: runs(seqs.into_iter()),
        })
        .collect())
}

/// The fetches needed to get what a peer serves and we lack.
pub fn missing(
    store: &dyn Store,
    theirs: &[OriginSummary],
) -> Result<Vec<CatchupRequest>, StorageError> {
    let mut ours: BTreeMap<String, BTreeSet<u64>> = BTreeMap::new();
    for m in store.all_batches()? {
        ours.entry(m.origin).or_default().insert(m.sequence);
    }
    let mut out = Vec::new();
    for s in theirs {
        let have = ours.get(&s.origin);
        let lacking: Vec<u64> = s
            .runs
            .iter()
            .flat_map(|&(a, b)| a..=b.max(a))
            .filter(|q| have.is_none_or(|h| !h.contains(q)))
            .take(MAX_MISSING_PER_ROUND)
            .collect();
        for chunk in lacking.chunks(MAX_FETCH) {
            out.push(CatchupRequest::Fetch {
                origin: s.origin.clone(),
                sequences: chunk.to_vec(),
            });
        }
    }
    Ok(out)
}

/// What day filters this node holds: the newest unexpired revision per (origin, day).
pub fn filter_summary(
    store: &dyn Store,
    now: u64,
) -> Result<Vec<(String, u32, u64)>, StorageError> {
    Ok(store
        .all_filters()?
        .into_iter()
        .filter(|f| now <= f.expires_at())
        .map(|f| (f.origin, f.day, f.revision))
        .collect())
}

/// The fetches needed to get the filter revisions a peer holds above ours.
pub fn missing_filters(
    store: &dyn Store,
    theirs: &[(String, u32, u64)],
) -> Result<Vec<CatchupRequest>, StorageError> {
    let mut lacking = Vec::new();
    for (origin, day, revision) in theirs {
        let ours = store.filter_meta(origin, *day)?.map_or(0, |m| m.revision);
        if *revision > ours {
            lacking.push((origin.clone(), *day));
        }
    }
    Ok(lacking
        .chunks(MAX_FILTER_FETCH)
        .map(|c| CatchupRequest::FetchFilters(c.to_vec()))
        .collect())
}

/// Answers a request from the store.
pub fn answer(store: &dyn Store, request: &CatchupRequest, now: u64) -> CatchupResponse {
    let result = match request {
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
        CatchupRequest::FetchFilters(wanted) => (|| {
            let mut out = Vec::new();
            let mut bytes = 0;
            for (origin, day) in wanted {
                if let Some(f) = store.get_filter(origin, *day)? {
                    if now > f.meta.expires_at() {
                        continue;
                    }
                    bytes += f.bytes.len();
                    if bytes > MAX_RESPONSE_BYTES && !out.is_empty() {
                        break;
                    }
                    out.push(serde_bytes::ByteBuf::from(f.bytes));
                }
            }
            Ok(CatchupResponse::Filters(out))
        })(),
        CatchupRequest::Fetch { origin, sequences } => (|| {
            let mut out = Vec::new();
            let mut bytes = 0;
            for &seq in sequences {
                if let Some(b) = store.get_batch(origin, seq)? {
                    if !b.meta.is_visible(now) {
                        continue;
                    }
                    bytes += b.bytes.len();
                    if bytes > MAX_RESPONSE_BYTES && !out.is_empty() {
                        break;
                    }
                    out.push(serde_bytes::ByteBuf::from(b.bytes));
                }
            }
            Ok(CatchupResponse::Batches(out))
        })(),
    };
    result.unwrap_or_else(|e: StorageError| CatchupResponse::Refused(format!("storage: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_compress_sequences() {
        assert_eq!(
            runs([1, 2, 3, 5, 7, 8].into_iter()),
            vec![(1, 3), (5, 5), (7, 8)]
        );
    }
}

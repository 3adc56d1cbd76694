//! `/v1/log/*`: the node's transparency log (SPEC.md §8.3). Checkpoints are C2SP
//! signed notes (`text/plain`); proofs are JSON lists of hex hashes, leaf side
//! first; entries are the leaves' text; a batch's publication proof is
//! protobuf. A size or index the log cannot answer for is a 404 that says
//! which; an unparsable number or origin a 400.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;
use traceless_protocol::log::{hex_hash, leaf_hash};
use traceless_protocol::wire::validate_origin;

use super::api::ApiError;
use super::HttpState;
use crate::log::{LogStoreError, TransparencyLog, MAX_ENTRIES_PER_REQUEST};

type Shared = State<Arc<HttpState>>;

impl From<LogStoreError> for ApiError {
    fn from(e: LogStoreError) -> Self {
        match e {
            // Well-formed numbers that name no tree or proof of this log (a
            // size it has not reached, an index outside the tree, old > new):
            // not found, with the reason. Unparsable numbers are 400s.
            LogStoreError::Log(e) => ApiError::new(StatusCode::NOT_FOUND, e.to_string()),
            LogStoreError::Storage(e) => e.into(),
        }
    }
}

/// Runs a log read off the async runtime.
async fn read_log<T: Send + 'static>(
    http: &HttpState,
    f: impl FnOnce(&TransparencyLog) -> Result<T, LogStoreError> + Send + 'static,
) -> Result<T, ApiError> {
    let core = http.core.clone();
    tokio::task::spawn_blocking(move || f(&core.log))
        .await
        .map_err(|_| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "task failed"))?
        .map_err(ApiError::from)
}

fn hex_list(proof: &[[u8; 32]]) -> Vec<String> {
    proof.iter().map(hex_hash).collect()
}

/// `GET /v1/log/checkpoint`: the latest checkpoint, signed by this node, with
/// the cosignatures of known witnesses appended while the log has not grown
/// since the checkpoint it announced (SPEC.md §8.3).
pub async fn checkpoint(State(http): Shared) -> Result<Response, ApiError> {
    let (cp, note) = read_log(&http, |log| log.checkpoint()).await?;
    let note = http
        .federation
        .witnessing()
        .own_note_at(cp.size)
        .unwrap_or(note);
    Ok((
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        note,
    )
        .into_response())
}

/// Query of `/v1/log/proof/inclusion`.
#[derive(Deserialize)]
pub struct InclusionQuery {
    index: u64,
    size: u64,
}

/// `GET /v1/log/proof/inclusion?index=&size=`.
pub async fn inclusion(
    State(http): Shared,
    Query(q): Query<InclusionQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let (leaf, proof) = read_log(&http, move |log| {
        let proof = log.prove_inclusion(q.index, q.size)?;
        let leaf = log.entry(q.index)?.map(|e| leaf_hash(&e));
        Ok((leaf, proof))
    })
    .await?;
    Ok(Json(json!({
        "index": q.index,
        "size": q.size,
        "leaf_hash": leaf.as_ref().map(hex_hash),
        "proof": hex_list(&proof),
    })))
}

/// Query of `/v1/log/proof/consistency`.
#[derive(Deserialize)]
pub struct ConsistencyQuery {
    old: u64,
    new: u64,
}

/// `GET /v1/log/proof/consistency?old=&new=`.
pub async fn consistency(
    State(http): Shared,
    Query(q): Query<ConsistencyQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let proof = read_log(&http, move |log| log.prove_consistency(q.old, q.new)).await?;
    Ok(Json(json!({
        "old": q.old,
        "new": q.new,
        "proof": hex_list(&proof),
    })))
}

/// Query of `/v1/log/entries`.
#[derive(Deserialize)]
pub struct EntriesQuery {
    start: u64,
    end: u64,
}

/// `GET /v1/log/entries?start=&end=`: at most [`MAX_ENTRIES_PER_REQUEST`]
/// entries from `start`; `next` says where to continue.
pub async fn entries(
    State(http): Shared,
    Query(q): Query<EntriesQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let entries = read_log(&http, move |log| log.entries(q.start, q.end)).await?;
    let next = q.start + entries.len() as u64;
    let text: Vec<String> = entries
        .iter()
        .map(|e| String::from_utf8_lossy(e).into_owned())
        .collect();
    Ok(Json(json!({
        "start": q.start,
        "next": if next < q.end { Some(next) } else { None },
        "max_per_request": MAX_ENTRIES_PER_REQUEST,
        "entries": text,
    })))
}

/// `GET /v1/witness/equivocations`: every log this node caught signing two
/// checkpoints of one size with different roots, with both notes as evidence
/// (anyone can check them against the log's key, its origin).
pub async fn equivocations(State(http): Shared) -> Json<serde_json::Value> {
    let caught: Vec<serde_json::Value> = http
        .federation
        .witnessing()
        .equivocations()
        .into_iter()
        .map(|e| {
            json!({
                "origin": e.origin,
                "size": e.size,
                "authority": e.authority,
                "first": String::from_utf8_lossy(&e.first),
                "second": String::from_utf8_lossy(&e.second),
            })
        })
        .collect();
    Json(json!({ "equivocations": caught }))
}

/// `GET /v1/log/proof/batch/{origin}/{sequence}`: the [`PublicationProof`]
/// (`application/x-protobuf`) that this node's log holds the batch's
/// publication and, once deleted, its deletion (SPEC.md §8.3.1).
///
/// [`PublicationProof`]: traceless_protocol::log::PublicationProof
pub async fn batch_proof(
    State(http): Shared,
    Path((origin, sequence)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    validate_origin(&origin)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("origin `{origin}`: {e}")))?;
    let digits = sequence.bytes().all(|b| b.is_ascii_digit());
    let sequence: u64 = sequence.parse().ok().filter(|_| digits).ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("sequence `{sequence}` is not a decimal number from 0 to 2^64-1"),
        )
    })?;
    let witnessed = http.federation.witnessing().own_note();
    let o = origin.clone();
    let proof = read_log(&http, move |log| {
        log.publication_proof(&o, sequence, witnessed)
    })
    .await?
    .ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            format!("this node's log holds no batch {origin}/{sequence}"),
        )
    })?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/x-protobuf"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        proof.encode(),
    )
        .into_response())
}

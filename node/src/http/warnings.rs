//! `GET /v1/warnings` and `GET /v1/warnings/{origin}/{sequence}` (SPEC.md
//! §12.10): the venue warning batches this node holds, as of the current
//! period boundary, so that nothing here moves between boundaries.

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::api::{blocking, not_found, signed_bytes, ApiError, Shared};
use crate::storage::warnings::WarningMeta;

/// One warning batch in a listing.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct WarningEntry {
    /// Authority id.
    pub origin: String,
    /// Per-origin warning sequence.
    pub sequence: u64,
    /// Publication time (a period boundary).
    pub created_at: u64,
    /// Warnings in the batch.
    pub warning_count: u64,
    /// Hex SHA-256 of the signed bytes, also the ETag.
    pub content_id: String,
    /// Where to fetch it.
    pub url: String,
}

impl From<&WarningMeta> for WarningEntry {
    fn from(m: &WarningMeta) -> Self {
        WarningEntry {
            origin: m.origin.clone(),
            sequence: m.sequence,
            created_at: m.created_at,
            warning_count: m.warnings as u64,
            content_id: hex::encode(m.content_id),
            url: format!("/v1/warnings/{}/{}", m.origin, m.sequence),
        }
    }
}

/// Query of `GET /v1/warnings`.
#[derive(Deserialize)]
pub struct WarningQuery {
    origin: Option<String>,
    /// Only batches with a sequence above this: the phone's warning cursor.
    #[serde(default)]
    after: u64,
}

/// `GET /v1/warnings[?origin=..][&after=..]`: held warning batches by origin
/// and sequence, those above `after` only.
pub async fn list(
    State(http): Shared,
    Query(q): Query<WarningQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let s = http.core.clone();
    let as_of = s.public_now();
    let metas = blocking(move || Ok(s.warning_files().list(q.origin.as_deref(), q.after)?)).await?;
    let entries: Vec<WarningEntry> = metas
        .iter()
        .filter(|m| m.created_at <= as_of)
        .map(WarningEntry::from)
        .collect();
    Ok(Json(json!({ "warnings": entries })))
}

/// `GET /v1/warnings/{origin}/{sequence}`: the exact `SignedWarningBatch`
/// bytes, immutable, with their content id as ETag (304 on a match).
pub async fn get(
    State(http): Shared,
    Path((origin, sequence)): Path<(String, u64)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let s = http.core.clone();
    let as_of = s.public_now();
    let (meta, bytes) = blocking(move || {
        let missing = || {
            not_found(format!(
                "no warning batch {origin}/{sequence} is served here"
            ))
        };
        let bytes = s
            .warning_files()
            .get(&origin, sequence)?
            .ok_or_else(missing)?;
        let meta = crate::storage::warnings::read_meta(&bytes)?;
        if meta.created_at > as_of {
            return Err(missing());
        }
        Ok((meta, bytes))
    })
    .await?;
    Ok(signed_bytes(
        &headers,
        &meta.content_id,
        "public, max-age=31536000, immutable",
        bytes,
    ))
}

//! JSON and binary endpoints for phones.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::sync::atomic::{AtomicUsize, Ordering};

use traceless_protocol::wire::{
    next_link, BatchList, FilterParts, HeldRevisions, MAX_LIST_LEN, UPLOAD_REQUEST_LEN,
};
use traceless_protocol::{WireError, SEALED_UPLOAD_LEN};

use crate::core::answer;
use crate::federation::relay::MAX_RELAY_INFLIGHT;
use crate::http::HttpState;
use crate::issuer::IssueError;
use crate::storage::{content_id, BatchMeta, FilterMeta, StorageError, StoredBatch};
use crate::upload_codes::CodeError;

pub(super) type Shared = State<Arc<HttpState>>;

/// An API error: a status and a sentence saying what the client did wrong.
pub struct ApiError(StatusCode, String);

impl ApiError {
    /// An error with its status and a sentence saying what was wrong.
    pub fn new(status: StatusCode, why: impl Into<String>) -> Self {
        ApiError(status, why.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

impl From<StorageError> for ApiError {
    fn from(e: StorageError) -> Self {
        tracing::error!("storage: {e}");
        ApiError(
            StatusCode::SERVICE_UNAVAILABLE,
            "storage unavailable".into(),
        )
    }
}

pub(super) fn not_found(what: impl Into<String>) -> ApiError {
    ApiError(StatusCode::NOT_FOUND, what.into())
}

/// Unknown routes: a JSON 404 like every other error.
pub async fn no_such_route() -> ApiError {
    not_found("no such route")
}

/// Turns the framework's own error answers (path or query parse errors, a
/// wrong method, a body over the limit: plain text or empty) into the
/// documented JSON `{"error": ...}`, keeping their status.
pub async fn json_errors(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let response = next.run(req).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 4096).await.unwrap_or_default();
    let mut message = String::from_utf8_lossy(&text).trim().to_owned();
    if message.is_empty() {
        message = status.canonical_reason().unwrap_or("error").to_owned();
    }
    let mut out = ApiError(status, message).into_response();
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            out.headers_mut().insert(name.clone(), value.clone());
        }
    }
    out
}

/// `GET /healthz`.
pub async fn healthz() -> &'static str {
    "ok\n"
}

/// `GET /metrics`: OpenMetrics text (see [`crate::core::metrics`]) as of the
/// current period's boundary (SPEC.md §6.4): nothing in it moves between
/// boundaries. The store figures come from its maintained summary, not a scan.
pub async fn metrics(State(http): Shared) -> Result<Response, ApiError> {
    let s = http.core.clone();
    let body = blocking(move || Ok(s.public_metrics())).await?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        body,
    )
        .into_response())
}

/// Runs a handler's storage reads, file reads or signing on a blocking thread,
/// off the async runtime.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|_| ApiError(StatusCode::INTERNAL_SERVER_ERROR, "task failed".into()))?
}

/// One batch in a listing.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct BatchEntry {
    /// Authority id.
    pub origin: String,
    /// Sequence number.
    pub sequence: u64,
    /// 1 (a day batch) or 2 (a period batch, SPEC.md §5.9).
    pub version: u32,
    /// UTC days of the keys held, ascending (one for version 1).
    pub days: Vec<u32>,
    /// Number of keys.
    pub key_count: u64,
    /// Publication time.
    pub created_at: u64,
    /// Identifier (hex): SHA-256 of a version 1 batch's bytes (also its
    /// ETag), of a period batch's header (its ETag is the SHA-256 of the bytes
    /// served, which pruning a day changes).
    pub content_id: String,
    /// Where to fetch it.
    pub url: String,
}

impl From<&BatchMeta> for BatchEntry {
    fn from(m: &BatchMeta) -> Self {
        BatchEntry {
            origin: m.origin.clone(),
            sequence: m.sequence,
            version: m.version,
            days: m.days.iter().map(|d| d.day).collect(),
            key_count: m.key_count(),
            created_at: m.created_at,
            content_id: hex::encode(m.content_id),
            url: format!("/v1/batches/{}/{}", m.origin, m.sequence),
        }
    }
}

/// `GET /v1/origins`: every origin with its highest served sequence number.
pub async fn origins(State(http): Shared) -> Result<Json<serde_json::Value>, ApiError> {
    let s = http.core.clone();
    let summary = blocking(move || Ok(s.summary())).await?;
    let list: Vec<_> = summary
        .origins
        .into_iter()
        .map(|(origin, latest)| json!({ "origin": origin, "latest_sequence": latest }))
        .collect();
    Ok(Json(json!({ "origins": list })))
}

/// Query of `GET /v1/batches`.
#[derive(Deserialize)]
pub struct ListQuery {
    origin: String,
    #[serde(default)]
    after: u64,
    limit: Option<usize>,
}

/// `GET /v1/batches?origin=..&after=..&limit=..`: served batches of an origin with a
/// sequence above the cursor, ascending. The listing stops before the first batch
/// still under embargo, so a phone's cursor never skips one.
pub async fn list_batches(
    State(http): Shared,
    Query(q): Query<ListQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let s = http.core.clone();
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            format!("limit must be 1..=1000, not {limit}"),
        ));
    }
    let now = s.now();
    let origin = q.origin.clone();
    let metas = blocking(move || Ok(s.store.list_batches(&origin, q.after, limit)?)).await?;
    let entries: Vec<BatchEntry> = metas
        .iter()
        .take_while(|m| m.is_visible(now))
        .map(BatchEntry::from)
        .collect();
    let next_after = entries.last().map_or(q.after, |e| e.sequence);
    Ok(Json(
        json!({ "origin": q.origin, "batches": entries, "next_after": next_after }),
    ))
}

/// Query of `GET /v1/batch-list/{origin}` and `GET /v1/filters/{origin}/{day}`.
#[derive(Deserialize)]
pub struct AfterQuery {
    /// Only batches with a sequence (parts with a revision) above this: the
    /// phone's cursor (the parts `1..=after` it holds).
    #[serde(default)]
    after: u64,
}

/// How many batches one `GET /v1/batch-list/{origin}` reads at most, as a listing
/// page does; the phone asks again after the last one it got.
const LIST_BATCHES: usize = 1000;

/// `GET /v1/batch-list/{origin}[?after=s]`: a `BatchList` of the exact
/// `SignedBatch` bytes of the origin's served batches above sequence `s`,
/// ascending, stopping before the first one still under embargo (as the
/// listing does), at most 1,000 and up to `MAX_LIST_LEN` (at least one), with
/// `Link: <…?after=last>; rel="next"` if more may follow. Nothing above `s`: an
/// empty body. One request instead of a listing and a request
/// per batch (SPEC.md §6.1). Not immutable: batches are added, so caches
/// revalidate.
pub async fn get_batches(
    State(http): Shared,
    Path(origin): Path<String>,
    Query(q): Query<AfterQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    traceless_protocol::validate_origin(&origin)
        .map_err(|e| ApiError(StatusCode::BAD_REQUEST, e.to_string()))?;
    let s = http.core.clone();
    let (tag, list, next) = blocking(move || {
        let now = s.now();
        // One more than a list holds, to tell whether a servable one follows.
        let metas = s.store.list_batches(&origin, q.after, LIST_BATCHES + 1)?;
        let mut visible: Vec<_> = metas
            .into_iter()
            .take_while(|m| m.is_visible(now))
            .collect();
        let beyond = visible.len() > LIST_BATCHES;
        visible.truncate(LIST_BATCHES);
        let page = up_to_list_len(
            &visible,
            beyond,
            |m| {
                Ok(s.store
                    .get_batch(&m.origin, m.sequence)?
                    .map(|b| served(&b)))
            },
            |m| format!("/v1/batch-list/{origin}?after={}", m.sequence),
        )?;
        let list = BatchList {
            batches: page.items,
        };
        Ok((page.tag, list.encode(), page.next))
    })
    .await?;
    Ok(with_next(
        signed_bytes(&headers, &tag, "no-cache", list),
        next,
    ))
}

/// Adds the `Link: <next>; rel="next"` of a list cut short (SPEC.md §6.1).
fn with_next(mut response: Response, next: Option<String>) -> Response {
    if let Some(v) = next.and_then(|p| HeaderValue::from_str(&next_link(&p)).ok()) {
        response.headers_mut().insert(header::LINK, v);
    }
    response
}

fn etag(content_id: &[u8; 32]) -> String {
    format!("\"{}\"", hex::encode(content_id))
}

/// `GET /v1/batches/{origin}/{sequence}`: the exact `SignedBatch` bytes; immutable,
/// cacheable, with its content id as ETag.
pub async fn get_batch(
    State(http): Shared,
    Path((origin, sequence)): Path<(String, u64)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let s = http.core.clone();
    let now = s.now();
    let b = blocking(move || {
        s.store
            .get_batch(&origin, sequence)?
            .filter(|b| b.meta.is_visible(now))
            .ok_or_else(|| not_found(format!("no batch {origin}/{sequence} is served here")))
    })
    .await?;
    // A day batch never changes once served: cache it for good. A period
    // batch changes when its next day is pruned.
    let cache = match b.meta.version {
        1 => "public, max-age=31536000, immutable".to_owned(),
        _ => format!(
            "public, max-age={}",
            b.meta.expires_at().saturating_sub(now).max(1)
        ),
    };
    let (tag, bytes) = served(&b);
    Ok(signed_bytes(&headers, &tag, &cache, bytes))
}

/// The bytes a batch is served to phones as ([`StoredBatch::served`]) and
/// their SHA-256, its ETag.
fn served(b: &StoredBatch) -> ([u8; 32], Vec<u8>) {
    let bytes = b.served();
    (content_id(&bytes), bytes)
}

/// Exact signed bytes as `application/x-protobuf` with an ETag of their content
/// id and `cache_control`; `304 Not Modified` when `If-None-Match` names it.
pub(super) fn signed_bytes(
    headers: &HeaderMap,
    content_id: &[u8; 32],
    cache_control: &str,
    bytes: Vec<u8>,
) -> Response {
    let tag = etag(content_id);
    let cache = [
        (
            header::ETAG,
            HeaderValue::from_str(&tag).unwrap_or(HeaderValue::from_static("\"\"")),
        ),
        (
            header::CACHE_CONTROL,
            HeaderValue::from_str(cache_control).unwrap_or(HeaderValue::from_static("no-cache")),
        ),
    ];
    let matches = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == tag || t.trim() == "*"));
    if matches {
        return (StatusCode::NOT_MODIFIED, cache).into_response();
    }
    (
        cache,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-protobuf"),
        )],
        bytes,
    )
        .into_response()
}

/// One day filter in a listing: the parts this node holds of one origin's day.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct FilterListEntry {
    /// Authority id.
    pub origin: String,
    /// UTC day of the entries.
    pub day: u32,
    /// The highest part revision held.
    pub revision: u64,
    /// Number of parts held (fewer than `revision` while a relay lacks some).
    pub parts: u64,
    /// Publication time of the newest part held.
    pub created_at: u64,
    /// Entries in the parts held.
    pub entries: u64,
    /// Sum of the parts' `SignedFilter` encodings.
    pub bytes: u64,
    /// Where to fetch the parts (`?after=r` for those above `r`).
    pub url: String,
    /// ETag of that URL without `after` (all parts), unquoted.
    pub etag: String,
}

impl FilterListEntry {
    /// The entry of one (origin, day)'s parts, by ascending revision (not empty).
    fn of(parts: &[FilterMeta]) -> Option<Self> {
        let last = parts.last()?;
        Some(FilterListEntry {
            origin: last.origin.clone(),
            day: last.day,
            revision: last.revision,
            parts: parts.len() as u64,
            created_at: parts.iter().map(|p| p.created_at).max().unwrap_or(0),
            entries: parts.iter().map(|p| p.entries).sum(),
            bytes: parts.iter().map(|p| p.len).sum(),
            url: format!("/v1/filters/{}/{}", last.origin, last.day),
            etag: hex::encode(parts_etag(parts)),
        })
    }
}

/// The validator of a response of parts: SHA-256 over their content ids in
/// order, so the listing names it from metadata alone.
fn parts_etag(parts: &[FilterMeta]) -> [u8; 32] {
    ids_etag(parts.iter().map(|p| &p.content_id))
}

/// SHA-256 over content ids in order: the ETag of a response that carries
/// several signed messages (SPEC.md §6.1).
fn ids_etag<'a>(ids: impl IntoIterator<Item = &'a [u8; 32]>) -> [u8; 32] {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    for id in ids {
        h.update(id);
    }
    h.finalize().into()
}

/// Reads the exact bytes of `metas` in order with `read` (`None`: deleted by
/// retention since the listing, skipped) until the next would take the body
/// past [`MAX_LIST_LEN`], always at least one; returns them with their
/// [`ids_etag`] and, if the size cut the list or `beyond` (more follow
/// `metas`), the path of the next page after the last one taken (`next_path`).
fn up_to_list_len<M>(
    metas: &[M],
    beyond: bool,
    mut read: impl FnMut(&M) -> Result<Option<([u8; 32], Vec<u8>)>, StorageError>,
    next_path: impl FnOnce(&M) -> String,
) -> Result<ListPage, ApiError> {
    let mut ids = Vec::new();
    let mut out = Vec::new();
    let mut len = 0;
    let mut taken = 0usize;
    for m in metas {
        if let Some((id, bytes)) = read(m)? {
            // Each element costs its length plus at most 6 bytes of tag and length.
            len += bytes.len() + 6;
            if len > MAX_LIST_LEN && !out.is_empty() {
                break;
            }
            ids.push(id);
            out.push(bytes);
        }
        taken += 1;
    }
    let next = taken
        .checked_sub(1)
        .filter(|_| taken < metas.len() || beyond)
        .map(|i| next_path(&metas[i]));
    Ok(ListPage {
        tag: ids_etag(&ids),
        items: out,
        next,
    })
}

/// One list response's messages.
struct ListPage {
    /// [`ids_etag`] of the messages.
    tag: [u8; 32],
    /// Their exact bytes, in order.
    items: Vec<Vec<u8>>,
    /// The path of the next page, if more follow (`Link: <…>; rel="next"`).
    next: Option<String>,
}

/// Query of `GET /v1/filters`.
#[derive(Deserialize)]
pub struct FilterQuery {
    origin: Option<String>,
}

/// `GET /v1/filters[?origin=..]`: per origin and day (in that order), the parts
/// of its day filter this node holds, unexpired.
pub async fn list_filters(
    State(http): Shared,
    Query(q): Query<FilterQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let s = http.core.clone();
    let now = s.now();
    let parts: Vec<FilterMeta> = blocking(move || Ok(s.store.all_filters()?))
        .await?
        .into_iter()
        .filter(|m| q.origin.as_ref().is_none_or(|o| *o == m.origin))
        .filter(|m| now <= m.expires_at())
        .collect();
    let filters: Vec<FilterListEntry> = parts
        .chunk_by(|a, b| (&a.origin, a.day) == (&b.origin, b.day))
        .filter_map(FilterListEntry::of)
        .collect();
    Ok(Json(json!({ "filters": filters })))
}

/// `GET /v1/filters/{origin}/{day}[?after=r]`: a `FilterParts` of the exact
/// `SignedFilter` bytes of the parts held above revision `r`, ascending, up to
/// `MAX_LIST_LEN` (at least one part), with `Link: <…?after=last>;
/// rel="next"` if the size cut it. No part above `r`: an empty body. 404 if no part of the day is
/// held. Not immutable: parts are added, so caches revalidate.
pub async fn get_filter(
    State(http): Shared,
    Path((origin, day)): Path<(String, u32)>,
    Query(q): Query<AfterQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let s = http.core.clone();
    let page = blocking(move || {
        let held: Vec<FilterMeta> = s
            .store
            .filter_parts(&origin, day)?
            .into_iter()
            .filter(|f| s.now() <= f.expires_at())
            .collect();
        if held.is_empty() {
            return Err(not_found(format!(
                "no filter of {origin} for day {day} is served here"
            )));
        }
        let above: Vec<_> = held.into_iter().filter(|m| m.revision > q.after).collect();
        parts_page(&s, &above, |m| {
            format!("/v1/filters/{origin}/{day}?after={}", m.revision)
        })
    })
    .await?;
    Ok(page.response(&headers))
}

/// One response of filter parts (see [`up_to_list_len`]).
struct PartsPage {
    /// [`ids_etag`] of the parts.
    tag: [u8; 32],
    /// The `FilterParts` encoding.
    body: Vec<u8>,
    /// The path of the next page, if the size cut it.
    next: Option<String>,
}

/// Reads the parts of `metas` in order into one [`PartsPage`], naming the next
/// page after the last part taken with `next_path`.
fn parts_page(
    core: &crate::core::Core,
    metas: &[FilterMeta],
    next_path: impl FnOnce(&FilterMeta) -> String,
) -> Result<PartsPage, ApiError> {
    let page = up_to_list_len(
        metas,
        false,
        |m| {
            Ok(core
                .store
                .get_filter(&m.origin, m.day, m.revision)?
                .map(|f| (m.content_id, f.bytes)))
        },
        next_path,
    )?;
    Ok(PartsPage {
        tag: page.tag,
        body: FilterParts { parts: page.items }.encode(),
        next: page.next,
    })
}

impl PartsPage {
    /// The response: revalidated by its ETag, never cached unchecked (parts
    /// are added), with the next page's `Link`.
    fn response(self, headers: &HeaderMap) -> Response {
        with_next(
            signed_bytes(headers, &self.tag, "no-cache", self.body),
            self.next,
        )
    }
}

/// Query of `GET /v1/filter-parts/{origin}`.
#[derive(Deserialize)]
pub struct HeldQuery {
    /// [`HeldRevisions`] in its query form (`day.r,day.r,…`).
    #[serde(default)]
    held: String,
}

/// `GET /v1/filter-parts/{origin}[?held=day.r,…]`: a `FilterParts` of the exact
/// `SignedFilter` bytes of every unexpired part of the origin's day filters
/// above the revision `held` names for its day, by ascending day and revision,
/// up to `MAX_LIST_LEN` (at least one part), with `Link: <…?held=…>;
/// rel="next"` if the size cut it. Nothing new: an empty body. One request
/// for every day instead of the listing and a request per changed day
/// (SPEC.md §6.1). Not immutable: parts are added, so caches revalidate.
pub async fn get_filter_parts(
    State(http): Shared,
    Path(origin): Path<String>,
    Query(q): Query<HeldQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let bad = |e: WireError| ApiError(StatusCode::BAD_REQUEST, e.to_string());
    traceless_protocol::validate_origin(&origin).map_err(bad)?;
    let held = HeldRevisions::parse(&q.held).map_err(bad)?;
    let s = http.core.clone();
    let page = blocking(move || {
        let now = s.now();
        let mut new: Vec<FilterMeta> = s
            .store
            .all_filters()?
            .into_iter()
            .filter(|m| m.origin == origin && now <= m.expires_at())
            .filter(|m| m.revision > held.of(m.day))
            .collect();
        new.sort_unstable_by_key(|m| (m.day, m.revision));
        parts_page(&s, &new, |last| {
            let mut after = held.clone();
            for m in new
                .iter()
                .take_while(|m| (m.day, m.revision) <= (last.day, last.revision))
            {
                after.hold(m.day, m.revision);
            }
            format!("/v1/filter-parts/{origin}?held={}", after.query())
        })
    })
    .await?;
    Ok(page.response(&headers))
}

/// `GET /v1/deletion-log`: every entry, as hex `SignedDeletionRecord` encodings
/// (verify with `verify_deletion_log` and `node_id`) and decoded for reading.
pub async fn deletion_log(State(http): Shared) -> Result<Json<serde_json::Value>, ApiError> {
    let s = http.core.clone();
    let s2 = s.clone();
    let log = blocking(move || Ok(s2.store.deletion_log()?)).await?;
    let entries: Vec<_> = log
        .iter()
        .map(|e| {
            let r = e.verify().ok();
            json!({
                "signed_record": hex::encode(e.encode()),
                "index": r.as_ref().map(|r| r.index),
                "deleted_at": r.as_ref().map(|r| r.deleted_at),
                "deleted": r.as_ref().map(|r| r.deleted.iter().map(|d| json!({
                    "origin": d.origin, "first_sequence": d.first_sequence,
                    "last_sequence": d.last_sequence, "key_count": d.key_count, "day": d.day,
                })).collect::<Vec<_>>()),
            })
        })
        .collect();
    Ok(Json(
        json!({ "node_id": hex::encode(s.node_id()), "entries": entries }),
    ))
}

/// Refuses a body that is not exactly `len` bytes: 413 if longer, 400 if shorter.
fn exact_len(body: &[u8], len: usize, what: &str) -> Result<(), ApiError> {
    if body.len() == len {
        return Ok(());
    }
    let status = if body.len() > len {
        StatusCode::PAYLOAD_TOO_LARGE
    } else {
        StatusCode::BAD_REQUEST
    };
    Err(ApiError(
        status,
        format!(
            "{what} is {} bytes; every {what} is exactly {len}",
            body.len()
        ),
    ))
}

/// `POST /v1/upload` (gateways only): a 1024-byte padded upload request with a
/// single-use upload code. Answers 200 only after the keys are durably stored;
/// refusals get the status of [`answer::http_status`].
pub async fn upload(State(http): Shared, body: Bytes) -> Result<Response, ApiError> {
    let s = http.core.clone();
    if let Err(e) = exact_len(&body, UPLOAD_REQUEST_LEN, "upload") {
        s.metrics.uploads_refused.inc();
        return Err(e);
    }
    let result = blocking(move || {
        let result = s.accept_upload(&body);
        wipe(body);
        Ok(result)
    })
    .await?;
    match result {
        Ok(receipt) => Ok(Json(json!({
            "pooled_keys": receipt.pooled,
            "embargoed_keys": receipt.embargoed,
            "expired_keys": receipt.expired,
            "filter_entries": receipt.filter_entries,
        }))
        .into_response()),
        Err(e) => Err(ApiError(status(answer::http_status(&e)), e.to_string())),
    }
}

/// Overwrites a request body that held TEKs, if no one else holds it (hyper
/// hands the handler the only reference to a body it read whole).
fn wipe(body: Bytes) {
    use zeroize::Zeroize;
    if let Ok(mut b) = body.try_into_mut() {
        b.as_mut().zeroize();
    }
}

fn status(code: u16) -> StatusCode {
    StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// `POST /v1/relay/{origin}`: a phone's sealed upload (exactly `SEALED_UPLOAD_LEN`
/// bytes), forwarded over libp2p to the origin's gateway without anything about
/// the phone. The answer is a fixed JSON status, the same for real and dummy,
/// with the HTTP status of [`crate::core::answer::RelayResponse::http_status`].
pub async fn relay_upload(
    State(http): Shared,
    Path(origin): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    exact_len(&body, SEALED_UPLOAD_LEN, "sealed upload")?;
    // An origin this relay has no gateway for is the client's mistake, not a
    // gateway failure.
    if !http
        .core
        .config
        .p2p
        .upload_gateways
        .iter()
        .any(|g| g.origin == origin)
    {
        return Err(not_found(format!(
            "this node relays no uploads for origin {origin:?}"
        )));
    }
    // A bounded queue: the relay never holds more than MAX_RELAY_INFLIGHT uploads.
    let inflight = http.relay_inflight.fetch_add(1, Ordering::SeqCst);
    let _slot = InflightSlot(&http.relay_inflight);
    if inflight >= MAX_RELAY_INFLIGHT {
        return Err(ApiError(
            StatusCode::SERVICE_UNAVAILABLE,
            "relay is at its limit; retry later".into(),
        ));
    }
    let rx = http
        .federation
        .relay(origin, body.to_vec())
        .ok_or_else(|| ApiError(StatusCode::SERVICE_UNAVAILABLE, "federation stopped".into()))?;
    let answer = tokio::time::timeout(std::time::Duration::from_secs(30), rx)
        .await
        .map_err(|_| ApiError(StatusCode::GATEWAY_TIMEOUT, "gateway did not answer".into()))?
        .map_err(|_| {
            ApiError(
                StatusCode::BAD_GATEWAY,
                "federation dropped the upload".into(),
            )
        })?
        .map_err(|e| ApiError(StatusCode::BAD_GATEWAY, e))?;
    Ok((
        status(answer.http_status()),
        Json(json!({ "status": answer.name() })),
    )
        .into_response())
}

/// Decrements the relay's in-flight count when the request ends, however it ends.
struct InflightSlot<'a>(&'a AtomicUsize);

impl Drop for InflightSlot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// `POST /v1/tokens` (gateways with token keys): the authority's issuer. Body: a
/// `TokenIssueRequest` with the patient's single-use code; answer: a
/// `TokenIssueResponse`.
pub async fn issue_tokens(State(http): Shared, body: Bytes) -> Result<Response, ApiError> {
    let s = http.core.clone();
    let result = blocking(move || {
        let issuer = s
            .issuer
            .as_ref()
            .ok_or_else(|| ApiError(StatusCode::NOT_FOUND, "this node issues no tokens".into()))?;
        issuer.issue(&body, s.now()).map_err(|e| {
            let status = match &e {
                IssueError::Malformed(_) | IssueError::WrongEpoch { .. } => StatusCode::BAD_REQUEST,
                IssueError::Code(CodeError::Malformed) => StatusCode::BAD_REQUEST,
                IssueError::Code(_) => StatusCode::FORBIDDEN,
                IssueError::Storage(_) => StatusCode::SERVICE_UNAVAILABLE,
            };
            ApiError(status, e.to_string())
        })
    })
    .await?;
    Ok(([(header::CONTENT_TYPE, "application/x-protobuf")], result).into_response())
}

/// `GET /v1/gateway-keys` (gateways): the HPKE key phones seal uploads to, the
/// token public keys by epoch, and the epoch tokens are issued for.
pub async fn gateway_keys(State(http): Shared) -> Result<Json<serde_json::Value>, ApiError> {
    let s = http.core.clone();
    let g = s
        .gateway
        .as_ref()
        .ok_or_else(|| not_found("this node is not a gateway"))?;
    Ok(Json(json!({
        "origin": g.origin(),
        "seal_public_key": hex::encode(g.seal_public_key()),
        "venue_public_key": hex::encode(g.venue_public_key().to_bytes()),
        "token_keys": g.token_keys().map(|k| json!({
            "epoch": k.epoch,
            "public_key": hex::encode(k.public_key().key),
        })).collect::<Vec<_>>(),
        "issuing_epoch": s.issuer.as_ref().map(|i| i.epoch()),
    })))
}

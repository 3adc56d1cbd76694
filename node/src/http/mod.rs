//! The HTTP API for phones (described in `protocol-spec/openapi.yaml`), the
//! transparency page, `/metrics` and `/healthz`.

pub mod api;
pub mod exports;
pub mod log;
pub mod server;
pub mod staff;
pub mod transparency;
pub mod warnings;

use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;

use crate::core::Core;
use crate::federation::FederationHandle;

/// Largest request body read at all (uploads are exactly 1024 bytes).
pub const MAX_BODY_BYTES: usize = 16 << 10;

/// What the handlers share: the core, the federation handle (for relaying and
/// the peer view), and the relay's in-flight count.
pub struct HttpState {
    /// The node's state and operations.
    pub core: Arc<Core>,
    /// The federation task.
    pub federation: FederationHandle,
    /// Sealed uploads this node is relaying right now (bounded).
    pub relay_inflight: AtomicUsize,
    /// Gateways: the staff pages' accounts, sessions and login throttle.
    pub staff: Option<Arc<crate::operators::Staff>>,
}

/// gzip of `BatchList` bodies for clients that accept it (SPEC.md §6.1): each
/// batch repeats its authority's export certificate and risk configuration,
/// which the compressor sends once per body, while keys and signatures (random
/// bytes) pass through. Fastest level: on such bodies it finds those repeats as
/// well as the default level, at a fraction of a request's CPU. Only a 200
/// `BatchList` is compressed: an error's body is rewritten as JSON by the
/// layers outside this route (`api::json_errors`), which must find it plain.
fn batch_list_gzip(
) -> tower_http::compression::CompressionLayer<impl tower_http::compression::Predicate> {
    use axum::http::{header, Extensions, HeaderMap, StatusCode, Version};
    use tower_http::compression::predicate::{DefaultPredicate, Predicate};
    let batch_list = |status: StatusCode, _: Version, headers: &HeaderMap, _: &Extensions| {
        status == StatusCode::OK
            && headers
                .get(header::CONTENT_TYPE)
                .is_some_and(|v| v == "application/x-protobuf")
    };
    tower_http::compression::CompressionLayer::new()
        .quality(tower_http::CompressionLevel::Fastest)
        .compress_when(DefaultPredicate::new().and(batch_list))
}

/// The node's routes.
pub fn router(core: Arc<Core>, federation: FederationHandle) -> Router {
    let state = Arc::new(HttpState {
        federation,
        relay_inflight: AtomicUsize::new(0),
        staff: core
            .gateway
            .as_ref()
            .map(|_| Arc::new(crate::operators::Staff::open(core.log.db()))),
        core,
    });
    Router::new()
        .route("/", get(transparency::page))
        .route("/healthz", get(api::healthz))
        .route("/metrics", get(api::metrics))
        .route("/v1/origins", get(api::origins))
        .route("/v1/batches", get(api::list_batches))
        .route(
            "/v1/batch-list/{origin}",
            get(api::get_batches).layer(batch_list_gzip()),
        )
        .route("/v1/batches/{origin}/{sequence}", get(api::get_batch))
        .route("/v1/warnings", get(warnings::list))
        .route("/v1/warnings/{origin}/{sequence}", get(warnings::get))
        .route("/v1/filters", get(api::list_filters))
        .route("/v1/filters/{origin}/{day}", get(api::get_filter))
        .route("/v1/filter-parts/{origin}", get(api::get_filter_parts))
        .route(
            "/v1/exports/{origin}/{sequence}",
            get(exports::export_batch),
        )
        .route(
            "/v1/exports/{origin}/{sequence}/{day}",
            get(exports::export_day),
        )
        .route("/v1/export-keys", get(exports::export_keys))
        .route("/v1/risk-config", get(exports::risk_config))
        .route("/v1/deletion-log", get(api::deletion_log))
        .route("/v1/log/checkpoint", get(log::checkpoint))
        .route("/v1/log/proof/inclusion", get(log::inclusion))
        .route("/v1/log/proof/consistency", get(log::consistency))
        .route("/v1/log/entries", get(log::entries))
        .route(
            "/v1/log/proof/batch/{origin}/{sequence}",
            get(log::batch_proof),
        )
        .route("/v1/witness/equivocations", get(log::equivocations))
        .route("/v1/upload", post(api::upload))
        .route("/v1/relay/{origin}", post(api::relay_upload))
        .route("/v1/tokens", post(api::issue_tokens))
        .route("/v1/gateway-keys", get(api::gateway_keys))
        .route("/v1/statistics", get(transparency::statistics))
        .fallback(api::no_such_route)
        .layer(middleware::from_fn(api::json_errors))
        // HTML pages for people: their refusals stay HTML.
        .merge(staff::routes())
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            count_requests,
        ))
        .with_state(state)
}

/// Aggregate access counting: route template and status only, never who asked.
async fn count_requests(State(state): State<Arc<HttpState>>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |p| p.as_str())
        .to_owned();
    let response = next.run(req).await;
    state
        .core
        .metrics
        .count_request(&route, response.status().as_u16());
    response
}

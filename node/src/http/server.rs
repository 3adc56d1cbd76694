//! The HTTP accept loop, with the limits `axum::serve` does not have: a cap on
//! open connections (kept below the open-file limit, so that an idle flood can
//! neither exhaust file descriptors nor starve sled and libp2p), a deadline for
//! each request head (which also closes idle connections, fresh or kept alive),
//! and a deadline for each whole request including its body.
//!
//! The loop never logs the peer's address and hands it to no route but the
//! staff login (a client address next to an upload code's id could link a
//! patient to an address), whose throttle keeps it in memory as a key.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, HeaderValue, Request, Response, StatusCode};
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tower::ServiceExt;

use crate::config::HttpConfig;

/// Connection limits of the HTTP server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Open connections at most; further clients wait in the kernel's backlog.
    pub max_connections: usize,
    /// Time a connection may take to send a request head, counted from when the
    /// server starts waiting for one (so also the idle time allowed between
    /// requests on a kept-alive connection).
    pub header_timeout: Duration,
    /// Time a whole request (head read, body read, answer computed) may take.
    pub request_timeout: Duration,
}

impl Limits {
    /// The limits `config` asks for; `max_connections = 0` there means half the
    /// process's open-file limit (see [`open_file_limit`]).
    pub fn from_config(config: &HttpConfig) -> Limits {
        let max_connections = match config.max_connections {
            0 => (open_file_limit() / 2).max(1),
            n => n,
        };
        Limits {
            max_connections,
            header_timeout: Duration::from_secs(config.header_timeout_secs),
            request_timeout: Duration::from_secs(config.request_timeout_secs),
        }
    }
}

/// The soft open-file limit of this process (`RLIMIT_NOFILE`), read from
/// `/proc/self/limits` (no crate offers it without `unsafe` or a new dependency;
/// where that file is missing, 1024, the common default).
pub fn open_file_limit() -> usize {
    std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3)?.parse().ok())
        })
        .unwrap_or(1024)
}

/// Serves `app` on `listener` under `limits` until the future is dropped;
/// dropping it closes every connection it opened.
pub async fn serve(listener: TcpListener, app: Router, limits: Limits) {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let mut connections = JoinSet::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true);
    let builder = Arc::new(builder);
    loop {
        // Reap finished connections so the set does not grow.
        while connections.try_join_next().is_some() {}
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return;
        };
        let (stream, client) = match listener.accept().await {
            // The peer address is never logged; only the staff login throttle
            // sees it (in memory, as a throttle key).
            Ok((stream, peer)) => (stream, peer.ip()),
            Err(e) => {
                // EMFILE and friends: wait instead of spinning.
                tracing::warn!("HTTP accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let app = app.clone();
        let builder = builder.clone();
        let timeout = limits.request_timeout;
        connections.spawn(async move {
            let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
                let app = app.clone();
                if req.uri().path() == crate::http::staff::LOGIN_PATH {
                    req.extensions_mut()
                        .insert(crate::http::staff::ClientAddr(client));
                }
                async move { Ok::<_, Infallible>(answer(app, req, timeout).await) }
            });
            let _ = builder
                .serve_connection(TokioIo::new(stream), service)
                .await;
            drop(permit);
        });
    }
}

/// Runs one request through the router under the whole-request deadline; a
/// request that takes longer (a body trickling in) is answered 408 and its
/// connection closed.
async fn answer(app: Router, req: Request<Incoming>, timeout: Duration) -> Response<Body> {
    match tokio::time::timeout(timeout, app.oneshot(req.map(Body::new))).await {
        Ok(Ok(r)) => r,
        Ok(Err(never)) => match never {},
        Err(_) => {
            tracing::info!("request timed out after {timeout:?}; closing its connection");
            let mut r = Response::new(Body::from(r#"{"error":"request not received in time"}"#));
            *r.status_mut() = StatusCode::REQUEST_TIMEOUT;
            let h = r.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            h.insert(header::CONNECTION, HeaderValue::from_static("close"));
            r
        }
    }
}

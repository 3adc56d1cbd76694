//! HTTP to relay nodes: the shared probe client (`traceless-http-probe`), with
//! one rule of the simulator's own: it refuses any address that is neither
//! loopback nor one `net` gave a node of its own in a network namespace.

use std::net::SocketAddr;
use std::time::Duration;

pub use traceless_http_probe::Response;

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The target is not a loopback address.
    #[error("refusing non-loopback target {0}: the simulator only talks to 127.0.0.1")]
    NotLoopback(SocketAddr),
    /// The request itself failed.
    #[error(transparent)]
    Probe(#[from] traceless_http_probe::Error),
}

/// One request over a fresh connection, accepting gzip as phones' HTTP stacks
/// do (OkHttp, `URLSession`, the SDK's client); the body comes decoded and
/// `wire_bytes` counts what crossed the wire.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: &[u8],
) -> Result<Response, HttpError> {
    if !(addr.ip().is_loopback() || crate::net::is_sim_address(addr.ip())) {
        return Err(HttpError::NotLoopback(addr));
    }
    Ok(traceless_http_probe::request(
        addr,
        method,
        path,
        &[("Accept-Encoding", "gzip")],
        body,
        Duration::from_secs(30),
    )?)
}

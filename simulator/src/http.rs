//! A minimal blocking HTTP/1.1 client for talking to relay nodes over loopback
//! (one request per connection, `Content-Length` or chunked bodies). The
//! simulator and the load generator refuse any address that is neither loopback
//! nor one `net` gave a node of its own in a network namespace.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The target is not a loopback address.
    #[error("refusing non-loopback target {0}: the simulator only talks to 127.0.0.1")]
    NotLoopback(SocketAddr),
    /// Connecting, writing or reading failed.
    #[error("I/O with {0}: {1}")]
    Io(SocketAddr, std::io::Error),
    /// The response could not be parsed.
    #[error("malformed HTTP response from {0}")]
    Malformed(SocketAddr),
}

/// A response.
#[derive(Clone, Debug)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Body (de-chunked).
    pub body: Vec<u8>,
    /// Bytes received on the wire (head and body).
    pub wire_bytes: usize,
}

impl Response {
    /// The body as JSON.
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }
}

/// One request over a fresh connection.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: &[u8],
) -> Result<Response, HttpError> {
    if !(addr.ip().is_loopback() || crate::net::is_sim_address(addr.ip())) {
        return Err(HttpError::NotLoopback(addr));
    }
    let io = |e| HttpError::Io(addr, e);
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).map_err(io)?;
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(io)?;
    s.set_nodelay(true).map_err(io)?;
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let mut req = head.into_bytes();
    req.extend_from_slice(body);
    s.write_all(&req).map_err(io)?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).map_err(io)?;
    parse(addr, raw)
}

fn parse(addr: SocketAddr, raw: Vec<u8>) -> Result<Response, HttpError> {
    let bad = || HttpError::Malformed(addr);
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(bad)?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or_else(bad)?;
    let chunked = lines.any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    let body = raw[split + 4..].to_vec();
    let body = if chunked {
        dechunk(&body).ok_or_else(bad)?
    } else {
        body
    };
    Ok(Response {
        status,
        body,
        wire_bytes: raw.len(),
    })
}

fn dechunk(mut b: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    for _ in 0..1_000_000 {
        let p = b.windows(2).position(|w| w == b"\r\n")?;
        let n = usize::from_str_radix(std::str::from_utf8(&b[..p]).ok()?.trim(), 16).ok()?;
        if n == 0 {
            return Some(out);
        }
        out.extend_from_slice(b.get(p + 2..p + 2 + n)?);
        b = b.get(p + 2 + n + 2..)?;
    }
    None
}

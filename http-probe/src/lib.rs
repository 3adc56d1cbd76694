//! A minimal blocking HTTP/1.1 client for talking to Traceless nodes over
//! loopback or the simulator's namespaces: one request per connection
//! (`Connection: close`), `Content-Length` or chunked answers, gzip bodies
//! decoded (`wire_bytes` counts them as received).
//!
//! Written by hand rather than taken from a client crate because its users need
//! what such crates hide on purpose: the exact bytes on the wire (the
//! simulator's download figures), requests the server answers before reading
//! their body (413 on an oversized upload), and any method, header or body the
//! negative tests send. The node tests, the end-to-end tests and the simulator
//! share it.
#![forbid(unsafe_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Connecting, writing the head, or reading failed.
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
    /// Header names (lower case) and values, in order.
    pub headers: Vec<(String, String)>,
    /// Body (de-chunked).
    pub body: Vec<u8>,
    /// Bytes received on the wire (head and body).
    pub wire_bytes: usize,
}

impl Response {
    /// The first value of header `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON, if it is.
    pub fn try_json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }

    /// The body as JSON; `Null` if it is not (for tests that index into it).
    pub fn json(&self) -> serde_json::Value {
        self.try_json().unwrap_or_default()
    }
}

/// One request over a fresh connection, reading the answer for at most
/// `read_timeout`. The body is written after the head and a failure to write it
/// is ignored: the server may answer (413) and close before reading it.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    read_timeout: Duration,
) -> Result<Response, Error> {
    let io = |e| Error::Io(addr, e);
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).map_err(io)?;
    s.set_read_timeout(Some(read_timeout)).map_err(io)?;
    s.set_nodelay(true).map_err(io)?;
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).map_err(io)?;
    let _ = s.write_all(body);
    let mut raw = Vec::new();
    if let Err(e) = s.read_to_end(&mut raw) {
        // A server that answered and reset (it did not read the whole body)
        // still gave its answer.
        if raw.is_empty() {
            return Err(io(e));
        }
    }
    parse(addr, raw)
}

fn parse(addr: SocketAddr, raw: Vec<u8>) -> Result<Response, Error> {
    let bad = || Error::Malformed(addr);
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
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.to_ascii_lowercase().contains("chunked"));
    let body = raw[split + 4..].to_vec();
    let body = if chunked {
        dechunk(&body).ok_or_else(bad)?
    } else {
        body
    };
    let gzip = headers
        .iter()
        .any(|(k, v)| k == "content-encoding" && v.eq_ignore_ascii_case("gzip"));
    let body = if gzip {
        gunzip(&body).ok_or_else(bad)?
    } else {
        body
    };
    Ok(Response {
        status,
        headers,
        body,
        wire_bytes: raw.len(),
    })
}

/// A gzip body's data, as an HTTP client that sent `Accept-Encoding: gzip`
/// reads it; `None` if it is not gzip.
fn gunzip(b: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(b).read_to_end(&mut out).ok()?;
    Some(out)
}

/// A chunked body's data; `None` if it is cut or malformed.
fn dechunk(mut b: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let p = b.windows(2).position(|w| w == b"\r\n")?;
        let n = usize::from_str_radix(std::str::from_utf8(&b[..p]).ok()?.trim(), 16).ok()?;
        if n == 0 {
            return Some(out);
        }
        out.extend_from_slice(b.get(p + 2..p + 2 + n)?);
        b = b.get(p + 2 + n + 2..)?;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn addr() -> SocketAddr {
        "127.0.0.1:1".parse().unwrap()
    }

    #[test]
    fn a_chunked_answer_is_joined_and_counted_on_the_wire() {
        let raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nETag: \"x\"\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n".to_vec();
        let n = raw.len();
        let r = parse(addr(), raw).unwrap();
        assert_eq!(
            (r.status, r.body.as_slice(), r.wire_bytes),
            (200, &b"abcde"[..], n)
        );
        assert_eq!(r.header("etag"), Some("\"x\""));
    }

    #[test]
    fn a_cut_chunk_or_a_missing_head_is_malformed() {
        let cut = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n9\r\nabc".to_vec();
        assert!(matches!(parse(addr(), cut), Err(Error::Malformed(_))));
        assert!(matches!(
            parse(addr(), b"HTTP/1.1 200".to_vec()),
            Err(Error::Malformed(_))
        ));
    }
}

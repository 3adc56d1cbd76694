//! Blocking HTTP(S) with bounded retries: `ureq` (no async runtime, builds for
//! Android and iOS) over rustls with the `ring` provider, optionally trusting
//! only pinned certificates instead of the Web PKI roots.

use std::sync::Arc;
use std::time::Duration;

use ureq::tls::{Certificate, RootCerts, TlsConfig};
use ureq::Agent;

use super::ClientError;

/// Largest body the client reads (a batch, a filter, a list).
const MAX_BODY: u64 = 16 << 20;

/// How the client talks HTTP.
#[derive(Clone, Debug)]
pub struct HttpOptions {
    /// Per request, connect to last byte.
    pub timeout: Duration,
    /// Attempts after the first, for transport errors, 429 and 5xx.
    pub retries: u32,
    /// Wait before the first retry; doubled before each further one.
    pub backoff: Duration,
    /// DER certificates to trust instead of the Web PKI roots (pinning): a
    /// server must present one of them or a chain ending in one.
    pub pinned_certificates: Vec<Vec<u8>>,
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            timeout: Duration::from_secs(30),
            retries: 3,
            backoff: Duration::from_millis(500),
            pinned_certificates: Vec::new(),
        }
    }
}

/// An answer: status, ETag and body.
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// The `ETag` header, if any.
    pub etag: Option<String>,
    /// Whether a `Link` header names a next page (SPEC.md §6.1: a list the
    /// node cut short).
    pub next_page: bool,
    /// The body (empty for 304).
    pub body: Vec<u8>,
}

/// One agent (connection pool) with its retry policy.
pub struct Http {
    agent: Agent,
    retries: u32,
    backoff: Duration,
}

impl Http {
    /// An agent for `options`.
    pub fn new(options: &HttpOptions) -> Http {
        let mut tls = TlsConfig::builder();
        if !options.pinned_certificates.is_empty() {
            let pinned: Vec<Certificate<'static>> = options
                .pinned_certificates
                .iter()
                .map(|der| Certificate::from_der(der).to_owned())
                .collect();
            tls = tls.root_certs(RootCerts::Specific(Arc::new(pinned)));
        }
        let agent = Agent::config_builder()
            .timeout_global(Some(options.timeout))
            .http_status_as_error(false)
            .tls_config(tls.build())
            .build()
            .into();
        Http {
            agent,
            retries: options.retries,
            backoff: options.backoff,
        }
    }

    /// GET `url`, with `If-None-Match: etag` when given.
    pub fn get(&self, url: &str, etag: Option<&str>) -> Result<Answer, ClientError> {
        self.retrying(url, || {
            let mut request = self.agent.get(url);
            if let Some(tag) = etag {
                request = request.header("If-None-Match", tag);
            }
            request.call()
        })
    }

    /// POST `body` to `url`.
    pub fn post(&self, url: &str, body: &[u8]) -> Result<Answer, ClientError> {
        self.retrying(url, || {
            self.agent
                .post(url)
                .header("Content-Type", "application/octet-stream")
                .send(body)
        })
    }

    /// Runs `send` until it gives an answer that is not worth retrying, or the
    /// retries are spent: transport errors, 429 and 5xx are retried after
    /// `backoff`, doubled each time.
    fn retrying(
        &self,
        url: &str,
        mut send: impl FnMut() -> Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<Answer, ClientError> {
        let mut wait = self.backoff;
        let mut attempt = 0;
        loop {
            let outcome = send().and_then(|mut response| {
                let status = response.status().as_u16();
                let etag = response
                    .headers()
                    .get("etag")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                let next_page = response
                    .headers()
                    .get_all("link")
                    .iter()
                    .filter_map(|v| v.to_str().ok())
                    .any(traceless_protocol::wire::names_next);
                let body = response
                    .body_mut()
                    .with_config()
                    .limit(MAX_BODY)
                    .read_to_vec()?;
                Ok(Answer {
                    status,
                    etag,
                    next_page,
                    body,
                })
            });
            let retry = match &outcome {
                Ok(answer) => answer.status == 429 || answer.status >= 500,
                Err(_) => true,
            };
            if !retry || attempt >= self.retries {
                return outcome.map_err(|e| ClientError::Network {
                    url: url.to_owned(),
                    reason: e.to_string(),
                });
            }
            attempt += 1;
            std::thread::sleep(wait);
            wait = wait.saturating_mul(2);
        }
    }
}

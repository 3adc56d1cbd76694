//! Load mode: drives uploads and downloads (batch lists and batches) against
//! running nodes at a set rate for a bounded time, and reports throughput and
//! latency percentiles. Uploads take the phones' path: a fresh dummy, sealed by
//! the real SDK to the gateway's key (the same 1073 bytes as a real upload, so
//! the gateway does a real upload's work), posted to a target's
//! `/v1/relay/{origin}`. Without `--target`, load mode starts a gateway and a
//! relay of its own in a temporary directory and drives those. Only loopback
//! targets are accepted.

use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};

use traceless_protocol::{Clock, SystemClock};
use traceless_sdk::{Sdk, SdkConfig};

use crate::http;
use crate::nodes::{Nodes, NodesError};
use crate::phones::{GatewayKeys, UploadFailure};
use crate::report::quantile;

/// Command-line arguments of `traceless-sim load`.
#[derive(Clone, Debug, clap::Args)]
pub struct LoadArgs {
    /// Relay to drive, `http://127.0.0.1:PORT` (repeat for several; loopback
    /// only). Without it, load mode starts a gateway and a relay of its own.
    #[arg(long, requires = "gateway")]
    pub target: Vec<String>,
    /// With `--target`: the gateway whose seal key uploads are sealed to,
    /// `http://127.0.0.1:PORT`.
    #[arg(long)]
    pub gateway: Option<String>,
    /// Requests per second, all workers together.
    #[arg(long, default_value_t = 200)]
    pub rate: u32,
    /// How long to run, seconds (at most 600).
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// Fraction of requests that are uploads (the rest are downloads).
    #[arg(long, default_value_t = 0.1)]
    pub upload_fraction: f64,
    /// Concurrent workers.
    #[arg(long, default_value_t = 8)]
    pub workers: u32,
    /// Authority origin whose batches are downloaded.
    #[arg(long, default_value = crate::nodes::ORIGIN)]
    pub origin: String,
}

/// Why load mode refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// A target is not `http://host:port` or not loopback.
    #[error("target {0:?}: {1}")]
    Target(String, String),
    /// An argument is out of range.
    #[error("{0}")]
    Invalid(String),
    /// Building a dummy upload failed.
    #[error("SDK: {0}")]
    Sdk(#[from] traceless_sdk::SdkError),
    /// The gateway's keys could not be fetched.
    #[error("gateway: {0}")]
    Gateway(#[from] UploadFailure),
    /// Load mode's own nodes did not start.
    #[error(transparent)]
    Nodes(#[from] NodesError),
}

/// Parses `http://host:port` into a loopback address, refusing anything else.
pub fn parse_target(t: &str) -> Result<SocketAddr, LoadError> {
    let err = |m: &str| LoadError::Target(t.to_owned(), m.to_owned());
    let rest = t
        .strip_prefix("http://")
        .ok_or_else(|| err("must start with http://"))?;
    let hostport = rest.trim_end_matches('/');
    let addrs: Vec<SocketAddr> = hostport
        .to_socket_addrs()
        .map_err(|e| err(&e.to_string()))?
        .collect();
    let addr = addrs.first().copied().ok_or_else(|| err("no address"))?;
    if !addrs.iter().all(|a| a.ip().is_loopback()) {
        return Err(err("only loopback targets (127.0.0.1, ::1) are allowed"));
    }
    Ok(addr)
}

/// Latencies and counts of one request kind.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct KindResult {
    /// Requests sent.
    pub requests: u64,
    /// Non-2xx answers or I/O errors.
    pub errors: u64,
    /// Requests per second achieved.
    pub per_second: f64,
    /// Latency p50, ms.
    pub p50_ms: f64,
    /// Latency p90, ms.
    pub p90_ms: f64,
    /// Latency p99, ms.
    pub p99_ms: f64,
}

/// What a load run measured.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct LoadResult {
    /// Seconds run.
    pub seconds: f64,
    /// Uploads.
    pub uploads: KindResult,
    /// Downloads (batch lists and batches).
    pub downloads: KindResult,
    /// Bytes received.
    pub bytes_received: u64,
}

impl fmt::Display for LoadResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (name, k) in [("uploads", &self.uploads), ("downloads", &self.downloads)] {
            writeln!(
                f,
                "{name:9} {:8} req  {:8.1} req/s  errors {:6}  p50 {:7.2} ms  p90 {:7.2} ms  p99 {:7.2} ms",
                k.requests, k.per_second, k.errors, k.p50_ms, k.p90_ms, k.p99_ms
            )?;
        }
        write!(
            f,
            "{:.1} s, {} bytes received",
            self.seconds, self.bytes_received
        )
    }
}

struct Sample {
    upload: bool,
    ok: bool,
    ms: f64,
    bytes: u64,
}

/// Runs load as described by `args`.
pub fn run(args: &LoadArgs) -> Result<LoadResult, LoadError> {
    let targets: Vec<SocketAddr> = args
        .target
        .iter()
        .map(|t| parse_target(t))
        .collect::<Result<_, _>>()?;
    let gateway = args.gateway.as_deref().map(parse_target).transpose()?;
    if args.seconds == 0 || args.seconds > 600 {
        return Err(LoadError::Invalid("--seconds must be 1..=600".into()));
    }
    if args.rate == 0 || args.rate > 100_000 || args.workers == 0 || args.workers > 256 {
        return Err(LoadError::Invalid(
            "--rate must be 1..=100000 and --workers 1..=256".into(),
        ));
    }
    if !(0.0..=1.0).contains(&args.upload_fraction) {
        return Err(LoadError::Invalid("--upload-fraction must be 0..=1".into()));
    }
    match gateway {
        Some(gateway) if !targets.is_empty() => drive(args, &targets, gateway),
        Some(_) => Err(LoadError::Invalid("--gateway goes with --target".into())),
        None if !targets.is_empty() => Err(LoadError::Invalid(
            "--target needs --gateway (the key uploads are sealed to)".into(),
        )),
        None => {
            let tmp = tempfile::tempdir().map_err(NodesError::from)?;
            let now = SystemClock.now();
            let nodes = Nodes::start(tmp.path(), 1, now, 1, 86_400)?;
            let r = drive(args, &[nodes.relays[0].http_addr], nodes.gateway.http_addr);
            nodes.shutdown();
            r
        }
    }
}

/// Drives `targets` (relays) for the run's duration; uploads are sealed to
/// `gateway`'s key.
fn drive(
    args: &LoadArgs,
    targets: &[SocketAddr],
    gateway: SocketAddr,
) -> Result<LoadResult, LoadError> {
    let seal = GatewayKeys::fetch(gateway)?.seal;
    let relay_path = format!("/v1/relay/{}", args.origin);
    // One SDK per worker seals a fresh dummy per upload (a resent one is a replay).
    let sdks: Vec<Sdk> = (0..args.workers)
        .map(|_| Sdk::in_memory(SdkConfig::default(), Arc::new(SystemClock)))
        .collect::<Result<_, _>>()?;
    let start = Instant::now();
    let end = start + Duration::from_secs(args.seconds);
    let per_worker = Duration::from_secs_f64(f64::from(args.workers) / f64::from(args.rate));
    let per_worker_samples: Vec<Result<Vec<Sample>, LoadError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = sdks
            .into_iter()
            .zip(0..args.workers)
            .map(|(mut sdk, w)| {
                let relay_path = &relay_path;
                scope.spawn(move || {
                    let mut out = Vec::new();
                    let mut urls: Vec<String> = Vec::new();
                    let mut next =
                        start + per_worker.mul_f64(f64::from(w) / f64::from(args.workers));
                    let mut n: u64 = 0;
                    // Bounded: at most rate * seconds requests per worker.
                    let max = u64::from(args.rate) * args.seconds + 1;
                    while n < max {
                        let now = Instant::now();
                        if now >= end {
                            break;
                        }
                        if next > now {
                            std::thread::sleep(next - now);
                        }
                        next += per_worker;
                        n += 1;
                        let target = targets[(n as usize + w as usize) % targets.len()];
                        let draw = (n.wrapping_mul(0x9e37_79b9) % 1000) as f64;
                        let upload = draw < args.upload_fraction * 1000.0;
                        // Sealing happens before the clock starts: it is the phone's work.
                        let sealed = if upload {
                            sdk.sealed_dummy_upload(&seal)?
                        } else {
                            Vec::new()
                        };
                        let t = Instant::now();
                        let (path, method) = if upload {
                            (relay_path.clone(), "POST")
                        } else if urls.is_empty() || n.is_multiple_of(10) {
                            (format!("/v1/batches?origin={}", args.origin), "GET")
                        } else {
                            (urls[n as usize % urls.len()].clone(), "GET")
                        };
                        let r = http::request(target, method, &path, &sealed);
                        let ms = t.elapsed().as_secs_f64() * 1000.0;
                        let (ok, bytes) = match &r {
                            Ok(r) => ((200..300).contains(&r.status), r.wire_bytes as u64),
                            Err(_) => (false, 0),
                        };
                        if let Ok(r) = &r {
                            if path.starts_with("/v1/batches?") {
                                if let Some(a) =
                                    r.try_json().and_then(|j| j["batches"].as_array().cloned())
                                {
                                    urls = a
                                        .iter()
                                        .filter_map(|e| e["url"].as_str().map(str::to_owned))
                                        .collect();
                                }
                            }
                        }
                        out.push(Sample {
                            upload,
                            ok,
                            ms,
                            bytes,
                        });
                    }
                    Ok(out)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Ok(Vec::new())))
            .collect()
    });
    let samples: Vec<Sample> = per_worker_samples
        .into_iter()
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .flatten()
        .collect();
    let seconds = start.elapsed().as_secs_f64();
    let kind = |upload: bool| {
        let mut ms: Vec<f64> = samples
            .iter()
            .filter(|s| s.upload == upload)
            .map(|s| s.ms)
            .collect();
        let requests = ms.len() as u64;
        KindResult {
            requests,
            errors: samples
                .iter()
                .filter(|s| s.upload == upload && !s.ok)
                .count() as u64,
            per_second: requests as f64 / seconds.max(1e-9),
            p50_ms: quantile(&mut ms, 0.5),
            p90_ms: quantile(&mut ms, 0.9),
            p99_ms: quantile(&mut ms, 0.99),
        }
    };
    Ok(LoadResult {
        seconds,
        uploads: kind(true),
        downloads: kind(false),
        bytes_received: samples.iter().map(|s| s.bytes).sum(),
    })
}

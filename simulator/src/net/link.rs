//! The link emulator: one TCP forwarder per link between two nodes, in the
//! simulator process, that delays each chunk by latency ± jitter, caps the
//! bandwidth, and models loss, and that a partition cuts.
//!
//! Why by hand: the kernel here has no `netem` qdisc (`tc qdisc … netem` is
//! "unknown"; see `netns::netem_available`), and a per-link delay between two
//! particular nodes needs per-destination shaping anyway. A forwarder sees TCP
//! payload, not packets, so loss is modelled as what TCP makes of a lost
//! segment: a chunk that is "lost" (probability `loss`) arrives one
//! retransmission timeout late (Linux's minimum RTO, 200 ms, or two one-way
//! latencies if larger) and holds back everything behind it, as in-order
//! delivery does. Bytes are never dropped: libp2p sees a slow link, not a
//! corrupt one.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

/// One direction's behaviour.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LinkParams {
    /// One-way latency, milliseconds (RTT is twice this).
    pub latency_ms: f64,
    /// Uniform jitter, ± milliseconds.
    pub jitter_ms: f64,
    /// Probability that a chunk is lost and retransmitted (0..1).
    pub loss: f64,
    /// Bandwidth cap, kbit/s (0: none).
    pub bandwidth_kbps: f64,
}

/// Linux's minimum TCP retransmission timeout.
const MIN_RTO: Duration = Duration::from_millis(200);
/// Largest chunk forwarded at once.
const CHUNK: usize = 16 * 1024;

struct State {
    params: Mutex<LinkParams>,
    up: AtomicBool,
    /// Bumped to cut every open connection.
    cut: watch::Sender<u64>,
    bytes: AtomicU64,
    seed: AtomicU64,
}

/// A running link: connections to `listen` are forwarded to the target.
#[derive(Clone)]
pub struct Link {
    state: Arc<State>,
    /// Where the dialling node connects.
    pub listen: SocketAddr,
}

impl Link {
    /// Listens on `listen` (port 0: any) and forwards every connection to `target`.
    /// Must be called inside a tokio runtime.
    pub async fn start(
        listen: SocketAddr,
        target: SocketAddr,
        params: LinkParams,
        seed: u64,
    ) -> std::io::Result<Link> {
        let listener = TcpListener::bind(listen).await?;
        let listen = listener.local_addr()?;
        let state = Arc::new(State {
            params: Mutex::new(params),
            up: AtomicBool::new(true),
            cut: watch::channel(0).0,
            bytes: AtomicU64::new(0),
            seed: AtomicU64::new(seed),
        });
        let s = state.clone();
        tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                if !s.up.load(Ordering::Relaxed) {
                    continue; // refused: dropped at once
                }
                let s = s.clone();
                tokio::spawn(async move {
                    let Ok(Ok(outbound)) =
                        tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(target))
                            .await
                    else {
                        return;
                    };
                    let _ = inbound.set_nodelay(true);
                    let _ = outbound.set_nodelay(true);
                    let mut cut = s.cut.subscribe();
                    let (ai, ao) = inbound.into_split();
                    let (bi, bo) = outbound.into_split();
                    tokio::select! {
                        _ = pump(ai, bo, s.clone()) => {}
                        _ = pump(bi, ao, s.clone()) => {}
                        _ = cut.changed() => {}
                    }
                });
            }
        });
        Ok(Link { state, listen })
    }

    /// Brings the link up, or down: down cuts every open connection and
    /// refuses new ones (a partition).
    pub fn set_up(&self, up: bool) {
        self.state.up.store(up, Ordering::Relaxed);
        if !up {
            self.state.cut.send_modify(|g| *g += 1);
        }
    }

    /// Whether the link is up.
    pub fn is_up(&self) -> bool {
        self.state.up.load(Ordering::Relaxed)
    }

    /// Changes latency, jitter, loss and bandwidth (for new chunks).
    pub fn set_params(&self, p: LinkParams) {
        if let Ok(mut g) = self.state.params.lock() {
            *g = p;
        }
    }

    /// Bytes forwarded, both directions.
    pub fn bytes(&self) -> u64 {
        self.state.bytes.load(Ordering::Relaxed)
    }
}

/// Copies `from` to `to`, each chunk delivered at its emulated arrival time.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    s: Arc<State>,
) {
    let (tx, mut rx) = mpsc::channel::<(Instant, Vec<u8>)>(256);
    let seed = s.seed.fetch_add(1, Ordering::Relaxed);
    let reader = {
        let s = s.clone();
        async move {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let mut last_arrival = Instant::now();
            let mut wire_free = Instant::now();
            let mut buf = vec![0u8; CHUNK];
            loop {
                let n = match from.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                let p = s.params.lock().map(|g| *g).unwrap_or_default();
                let now = Instant::now();
                // Bandwidth: the chunk leaves when the wire is free.
                let start = if p.bandwidth_kbps > 0.0 {
                    let tx_time =
                        Duration::from_secs_f64(n as f64 * 8.0 / (p.bandwidth_kbps * 1000.0));
                    wire_free = wire_free.max(now) + tx_time;
                    wire_free
                } else {
                    now
                };
                let jitter = if p.jitter_ms > 0.0 {
                    rng.gen_range(-p.jitter_ms..=p.jitter_ms)
                } else {
                    0.0
                };
                let mut delay = Duration::from_secs_f64((p.latency_ms + jitter).max(0.0) / 1000.0);
                if p.loss > 0.0 && rng.gen_bool(p.loss.clamp(0.0, 1.0)) {
                    delay += MIN_RTO.max(Duration::from_secs_f64(2.0 * p.latency_ms / 1000.0));
                }
                // In-order delivery: never before the chunk ahead of it.
                last_arrival = last_arrival.max(start + delay);
                s.bytes.fetch_add(n as u64, Ordering::Relaxed);
                if tx.send((last_arrival, buf[..n].to_vec())).await.is_err() {
                    return;
                }
            }
        }
    };
    let writer = async move {
        while let Some((at, bytes)) = rx.recv().await {
            tokio::time::sleep_until(at).await;
            if to.write_all(&bytes).await.is_err() {
                return;
            }
        }
    };
    tokio::join!(reader, writer);
}

//! A withholding peer: it speaks the node's catch-up protocol, advertises every
//! sequence number of an origin up to a bound, and serves none of them. The
//! node it connects to must still get every batch from its honest peers within
//! the catch-up request timeout (30 s), and stop asking the withholder.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::SwarmEvent;
use libp2p::{noise, tcp, yamux, Multiaddr, StreamProtocol};
use traceless_node::federation::behaviour::CATCHUP_PROTOCOL;
use traceless_node::federation::catchup::{CatchupRequest, CatchupResponse, OriginSummary};

type Rr = request_response::cbor::Behaviour<CatchupRequest, CatchupResponse>;

/// What the withholder was asked.
#[derive(Debug, Default)]
pub struct WithholdCounters {
    /// Summary requests answered (with the false advertisement).
    pub summaries: AtomicU64,
    /// Fetch requests answered with nothing.
    pub fetches: AtomicU64,
    /// Whether it connected.
    pub connected: AtomicU64,
}

/// Connects to `target` and withholds `origin`'s sequences 1..=`up_to` for `duration`.
pub async fn withholder(
    target: Multiaddr,
    origin: String,
    up_to: u64,
    duration: Duration,
    counters: Arc<WithholdCounters>,
) {
    let codec = request_response::cbor::codec::Codec::default()
        .set_request_size_maximum(64 << 10)
        .set_response_size_maximum(64 << 20);
    let behaviour = Rr::with_codec(
        codec,
        [(StreamProtocol::new(CATCHUP_PROTOCOL), ProtocolSupport::Full)],
        request_response::Config::default(),
    );
    let Ok(builder) = libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(
            tcp::Config::default(),
            noise::Config::new,
            yamux::Config::default,
        )
    else {
        return;
    };
    let Ok(builder) = builder.with_behaviour(move |_| behaviour);
    let mut swarm = builder
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(120)))
        .build();
    if swarm.dial(target).is_err() {
        return;
    }
    let summary = vec![OriginSummary {
        origin: origin.clone(),
        runs: vec![(1, up_to)],
    }];
    let end = tokio::time::Instant::now() + duration;
    while let Ok(event) = tokio::time::timeout_at(end, swarm.select_next_some()).await {
        match event {
            SwarmEvent::ConnectionEstablished { .. } => {
                counters.connected.store(1, Ordering::Relaxed);
            }
            SwarmEvent::Behaviour(request_response::Event::Message {
                message:
                    request_response::Message::Request {
                        request, channel, ..
                    },
                ..
            }) => {
                let response = match request {
                    CatchupRequest::Summary => {
                        counters.summaries.fetch_add(1, Ordering::Relaxed);
                        CatchupResponse::Summary(summary.clone())
                    }
                    CatchupRequest::Fetch { .. } => {
                        counters.fetches.fetch_add(1, Ordering::Relaxed);
                        CatchupResponse::Batches(Vec::new())
                    }
                    CatchupRequest::FilterSummary => CatchupResponse::FilterSummary(Vec::new()),
                    CatchupRequest::FetchFilters(_) => CatchupResponse::Filters(Vec::new()),
                    CatchupRequest::Time => CatchupResponse::Time(super::run::now_unix()),
                    CatchupRequest::WarningSummary => CatchupResponse::WarningSummary(Vec::new()),
                    CatchupRequest::FetchWarnings { .. } => CatchupResponse::Warnings(Vec::new()),
                };
                let _ = swarm.behaviour_mut().send_response(channel, response);
            }
            _ => {}
        }
    }
}

//! A hostile catch-up peer: its summary advertises a thousand origins
//! (none trusted) and a million sequence numbers of a trusted one, and then it
//! serves nothing. The node must send a bounded number of requests, ignore the
//! untrusted origins, and stop asking a peer that does not serve what it
//! advertised. Real libp2p on loopback, a real node.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use futures::StreamExt;
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::SwarmEvent;
use libp2p::{noise, tcp, yamux, StreamProtocol};
use traceless_node::federation::behaviour::CATCHUP_PROTOCOL;
use traceless_node::federation::catchup::{
    CatchupRequest, CatchupResponse, OriginSummary, MAX_FETCH,
};
use traceless_node::ManualClock;

type Rr = request_response::cbor::Behaviour<CatchupRequest, CatchupResponse>;

fn hostile_summary(untrusted: usize) -> Vec<OriginSummary> {
    let mut s: Vec<OriginSummary> = (0..untrusted)
        .map(|i| OriginSummary {
            origin: format!("x{i}"),
            runs: vec![(1, u64::MAX)],
        })
        .collect();
    s.push(OriginSummary {
        origin: ORIGIN.into(),
        runs: vec![(1, 1_000_000)],
    });
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_summary_causes_a_bounded_number_of_requests_and_a_penalty() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(NOW);
    let node = start_relay(dir.path(), &clock, &[], 1).await;
    let target = node.p2p_addrs[0].clone();

    let codec = request_response::cbor::codec::Codec::default()
        .set_request_size_maximum(64 << 10)
        .set_response_size_maximum(64 << 20);
    let mut attacker = libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(
            tcp::Config::default(),
            noise::Config::new,
            yamux::Config::default,
        )
        .unwrap()
        .with_behaviour(|_| {
            Rr::with_codec(
                codec,
                [(StreamProtocol::new(CATCHUP_PROTOCOL), ProtocolSupport::Full)],
                request_response::Config::default(),
            )
        })
        .unwrap()
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
        .build();
    attacker.dial(target).unwrap();

    let summaries = Arc::new(AtomicUsize::new(0));
    let fetches = Arc::new(AtomicUsize::new(0));
    let untrusted_asked = Arc::new(AtomicUsize::new(0));
    let summary = hostile_summary(1_000);
    let (s2, f2, u2) = (summaries.clone(), fetches.clone(), untrusted_asked.clone());
    let pump = tokio::spawn(async move {
        loop {
            if let SwarmEvent::Behaviour(request_response::Event::Message {
                message:
                    request_response::Message::Request {
                        request, channel, ..
                    },
                ..
            }) = attacker.select_next_some().await
            {
                let response = match request {
                    CatchupRequest::Summary => {
                        s2.fetch_add(1, Ordering::SeqCst);
                        CatchupResponse::Summary(summary.clone())
                    }
                    CatchupRequest::FilterSummary => CatchupResponse::FilterSummary(Vec::new()),
                    CatchupRequest::Fetch { origin, sequences } => {
                        f2.fetch_add(1, Ordering::SeqCst);
                        if origin != ORIGIN {
                            u2.fetch_add(1, Ordering::SeqCst);
                        }
                        assert!(sequences.len() <= MAX_FETCH);
                        // Advertised, not served.
                        CatchupResponse::Batches(Vec::new())
                    }
                    CatchupRequest::FetchFilters(_) => CatchupResponse::Filters(Vec::new()),
                    CatchupRequest::Time => CatchupResponse::Time(NOW),
                    CatchupRequest::WarningSummary => CatchupResponse::WarningSummary(Vec::new()),
                    CatchupRequest::FetchWarnings { .. } => CatchupResponse::Warnings(Vec::new()),
                };
                let _ = attacker.behaviour_mut().send_response(channel, response);
            }
        }
    });

    let unserved = || node.core.metrics.catchup_unserved.get();
    assert!(
        wait_until(Duration::from_secs(20), || unserved() >= 2).await,
        "the node noticed that the peer did not serve what it advertised"
    );
    // Let several more catch-up rounds (one a second) pass: the backed-off peer
    // is not asked again.
    let at_backoff = (
        summaries.load(Ordering::SeqCst),
        fetches.load(Ordering::SeqCst),
    );
    let rounds_later = tokio::time::Instant::now() + Duration::from_secs(4);
    while tokio::time::Instant::now() < rounds_later {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let total = fetches.load(Ordering::SeqCst);
    println!(
        "hostile summary (1,001 origins, 1,000 untrusted): {} summary requests, {total} fetch requests in all",
        summaries.load(Ordering::SeqCst)
    );
    assert_eq!(
        untrusted_asked.load(Ordering::SeqCst),
        0,
        "untrusted origins are never fetched"
    );
    assert!(
        total <= 16,
        "one round asks at most 16 fetches, got {total}"
    );
    assert!(total >= 2, "control: the trusted origin was asked for");
    assert_eq!(
        (
            summaries.load(Ordering::SeqCst),
            fetches.load(Ordering::SeqCst)
        ),
        at_backoff,
        "a peer that advertised and did not serve is left alone"
    );
    pump.abort();
    node.shutdown().await;
}

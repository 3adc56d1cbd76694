//! Measurement, not a check (`#[ignore]`; run with
//! `cargo test --release -p traceless-node --test witness_measure -- --ignored --nocapture`):
//! checkpoint witnessing among 20 real nodes on loopback (a gateway and 19
//! relays, each relay a witness), over several announcement rounds, then the
//! time and the rounds every relay needs to catch an equivocating gateway.
//!
//! One announcement round happens per publication period (default one hour),
//! so the bytes of one round per node are its bytes per hour. Counted: the
//! witness messages each node published or received on the checkpoint topic
//! (each once, `traceless_witness_gossip_bytes_total`) and the `add-checkpoint`
//! requests and answers it sent (`traceless_witness_request_bytes_total`).
//! gossipsub sends each message to every mesh peer of a node and a node also
//! receives duplicates, so the wire estimate multiplies the gossip bytes by the
//! node's mesh size on the topic (libp2p's framing and control messages are
//! not included).
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use libp2p::gossipsub::IdentTopic;
use traceless_node::federation::behaviour::checkpoint_topic;
use traceless_node::federation::witnessing::{Binding, Gossip, CHECKPOINT_TOPIC};
use traceless_node::{ManualClock, RunningNode};
use traceless_protocol::log::{log_origin, Checkpoint};

const NODES: usize = 20;
const ROUNDS: u64 = 4;

fn bytes(n: &RunningNode) -> (u64, u64) {
    let m = &n.core.metrics;
    (m.witness_gossip_bytes.get(), m.witness_request_bytes.get())
}

/// Waits (at most 30 s) until no node's witness byte counters have moved for
/// a second: the round's cosignatures and their gossip are done.
async fn quiet(nodes: &[&RunningNode]) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last: Vec<(u64, u64)> = nodes.iter().map(|n| bytes(n)).collect();
    let mut still_since = Instant::now();
    while Instant::now() < deadline && still_since.elapsed() < Duration::from_secs(1) {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let now: Vec<(u64, u64)> = nodes.iter().map(|n| bytes(n)).collect();
        if now != last {
            last = now;
            still_since = Instant::now();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "measurement: 20 nodes; prints figures"]
async fn checkpoint_gossip_cost_and_time_to_catch_an_equivocating_gateway() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(NOW);
    let gw = start_node(gateway_config(&dir.path().join("gw")), &clock).await;
    let mut relays: Vec<RunningNode> = Vec::new();
    for i in 0..NODES - 1 {
        let mut boot = gw.p2p_addrs.clone();
        // Each relay also bootstraps from up to three earlier relays.
        for r in relays.iter().rev().take(3) {
            boot.extend(r.p2p_addrs.iter().cloned());
        }
        relays.push(start_relay(&dir.path().join(format!("r{i}")), &clock, &boot, 5).await);
    }
    for r in &relays {
        assert!(wait_for_peers(r, 2).await);
    }
    let origin = gw.core.log.origin().to_owned();
    // Settle the start-up round (every node announced at start).
    let cosigned_by_all = |size: u64| {
        relays.iter().all(|r| {
            r.federation
                .witnessing()
                .latest(&origin)
                .is_some_and(|l| l.0 >= size)
        })
    };
    let settled = wait_until(Duration::from_secs(30), || cosigned_by_all(0)).await;
    let n = relays
        .iter()
        .filter(|r| r.federation.witnessing().latest(&origin).is_some())
        .count();
    assert!(
        settled,
        "{n} relays cosigned; gateway has {} peers",
        peer_count(&gw)
    );
    let all: Vec<&RunningNode> = std::iter::once(&gw).chain(relays.iter()).collect();
    quiet(&all).await;
    let before: Vec<(u64, u64)> = all.iter().map(|n| bytes(n)).collect();
    let mut sizes = Vec::new();
    for round in 0..ROUNDS {
        // A batch per period, so every log grows (the gateway's by its
        // publication, each relay's by storing it).
        let batch = signed_batch(&authority(), round + 1, TODAY - 1, 3, NOW);
        gw.core.ingest(&batch).unwrap();
        next_period(&gw.core, &clock);
        let size = gw.core.log.size().unwrap();
        sizes.push(size);
        assert!(
            wait_until(Duration::from_secs(60), || cosigned_by_all(size)).await,
            "round {round}: not every relay cosigned size {size}"
        );
        // Let the relays' own rounds and the gossip finish.
        quiet(&all).await;
    }
    let after: Vec<(u64, u64)> = all.iter().map(|n| bytes(n)).collect();
    let mesh: Vec<u64> = all
        .iter()
        .map(|n| {
            n.core
                .metrics
                .mesh_peers(checkpoint_topic().hash().as_str())
        })
        .collect();
    let per_round: Vec<(f64, f64, f64)> = before
        .iter()
        .zip(&after)
        .zip(&mesh)
        .map(|((b, a), d)| {
            let g = (a.0 - b.0) as f64 / ROUNDS as f64;
            let r = (a.1 - b.1) as f64 / ROUNDS as f64;
            (g, r, g * (*d).max(1) as f64 + r)
        })
        .collect();
    let mean = |f: fn(&(f64, f64, f64)) -> f64| per_round.iter().map(f).sum::<f64>() / NODES as f64;
    let max_wire = per_round.iter().map(|p| p.2).fold(0.0, f64::max);
    let mean_mesh = mesh.iter().sum::<u64>() as f64 / NODES as f64;
    println!("witnessing, {NODES} nodes (1 gateway, {} relays, all relays witnesses), {ROUNDS} rounds, log sizes {sizes:?}", NODES - 1);
    println!(
        "per node per round (= per hour at the default 3600 s period): gossip {:.0} B (each message once), add-checkpoint {:.0} B sent, mesh size {mean_mesh:.1}",
        mean(|p| p.0),
        mean(|p| p.1)
    );
    println!(
        "estimated wire bytes per node per hour: mean {:.0} B ({:.1} KiB), max {:.0} B; per day {:.0} KiB",
        mean(|p| p.2),
        mean(|p| p.2) / 1024.0,
        max_wire,
        mean(|p| p.2) * 24.0 / 1024.0
    );

    // Time to catch an equivocating gateway: two notes of one size, different
    // roots, to two relays far apart in the bootstrap order.
    let key = traceless_node::keys::deletion_log_key(&dir.path().join("gw")).unwrap();
    let size = gw.core.log.size().unwrap() + 3;
    let binding = Binding::sign(&authority(), &origin);
    let note = |salt: u8| {
        Gossip::Checkpoint {
            note: Checkpoint {
                origin: log_origin(&key.verifying_key().to_bytes()),
                size,
                root: [salt; 32],
            }
            .sign(&key),
            binding: Some(binding.clone()),
        }
        .encode()
    };
    let mut a = attacker(&relays[0].p2p_addrs[0], CHECKPOINT_TOPIC).await;
    let mut b = attacker(&relays[NODES - 2].p2p_addrs[0], CHECKPOINT_TOPIC).await;
    pump(&mut a, Duration::from_millis(500)).await;
    pump(&mut b, Duration::from_millis(500)).await;
    let topic = IdentTopic::new(CHECKPOINT_TOPIC);
    let round_before = gw.core.public_snapshot().boundary;
    let started = Instant::now();
    a.behaviour_mut().publish(topic.clone(), note(1)).unwrap();
    b.behaviour_mut().publish(topic, note(2)).unwrap();
    let mut first = None;
    let caught = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            let n = relays
                .iter()
                .filter(|r| r.core.metrics.log_equivocations.get() > 0)
                .count();
            if n > 0 && first.is_none() {
                first = Some(started.elapsed());
            }
            if n == relays.len() {
                return started.elapsed();
            }
            tokio::select! {
                _ = pump(&mut a, Duration::from_millis(10)) => {}
                _ = pump(&mut b, Duration::from_millis(10)) => {}
            }
        }
    })
    .await
    .expect("not every relay caught the gateway");
    let rounds = (gw.core.public_snapshot().boundary - round_before) / gw.core.schedule().period();
    println!(
        "equivocating gateway: first relay caught it after {:.0} ms, all {} relays after {:.0} ms, {} new announcement rounds needed (detected within the round it happened in)",
        first.unwrap_or_default().as_secs_f64() * 1e3,
        relays.len(),
        caught.as_secs_f64() * 1e3,
        rounds
    );
}

//! Federation over real libp2p swarms on 127.0.0.1 (TCP, and QUIC): convergence,
//! catch-up after downtime, an attacker flooding forged batches, oversized gossip,
//! and a QUIC-only federation.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use libp2p::gossipsub::IdentTopic;
use libp2p::multiaddr::Protocol;
use libp2p::Multiaddr;
use traceless_node::federation::behaviour::{
    BATCH_TOPIC, MAX_GOSSIP_MESSAGE_LEN, MAX_GOSSIP_RPC_LEN,
};
use traceless_node::{ManualClock, RunningNode};
use traceless_protocol::wire::{MAX_BATCH_KEYS, MAX_SIGNED_BATCH_LEN};
use traceless_protocol::AuthorityKey;

fn stored(n: &RunningNode) -> usize {
    n.core.store.all_batches().unwrap().len()
}

/// Stores a batch at `node` as a gateway would, and announces it.
fn publish_at(node: &RunningNode, bytes: &[u8]) {
    node.core.ingest(bytes).unwrap();
    node.core.release_due().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn five_nodes_converge_and_a_restarted_node_catches_up() {
    let clock = ManualClock::new(NOW);
    let dirs: Vec<_> = (0..5).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut nodes: Vec<RunningNode> = Vec::new();
    for (i, d) in dirs.iter().enumerate() {
        // A line: each node knows only the previous one; Kademlia finds the rest.
        let boot: Vec<Multiaddr> = nodes
            .last()
            .map(|n: &RunningNode| n.p2p_addrs.clone())
            .unwrap_or_default();
        let n = start_relay(d.path(), &clock, &boot, 1).await;
        if i > 0 {
            assert!(!boot.is_empty());
        }
        nodes.push(n);
    }
    let a = authority();
    for (i, n) in nodes.iter().enumerate() {
        publish_at(n, &signed_batch(&a, i as u64 + 1, TODAY - 2, 20, NOW - 60));
    }
    let converged = wait_until(Duration::from_secs(30), || {
        nodes.iter().all(|n| stored(n) == 5)
    })
    .await;
    assert!(
        converged,
        "stored per node: {:?}",
        nodes.iter().map(stored).collect::<Vec<_>>()
    );
    // Every node holds the same bytes.
    for seq in 1..=5 {
        let first = nodes[0]
            .core
            .store
            .get_batch(ORIGIN, seq)
            .unwrap()
            .unwrap()
            .bytes;
        for n in &nodes[1..] {
            assert_eq!(
                n.core.store.get_batch(ORIGIN, seq).unwrap().unwrap().bytes,
                first
            );
        }
    }

    // Node 4 goes down; batches 6..=8 are published meanwhile.
    let down = nodes.pop().unwrap();
    down.shutdown().await;
    for seq in 6..=8 {
        publish_at(
            &nodes[(seq % 4) as usize],
            &signed_batch(&a, seq, TODAY - 1, 10, NOW - 30),
        );
    }
    assert!(
        wait_until(Duration::from_secs(30), || nodes
            .iter()
            .all(|n| stored(n) == 8))
        .await
    );
    // It restarts on the same data and catches up by sequence numbers.
    let back = start_relay(dirs[4].path(), &clock, &nodes[0].p2p_addrs, 1).await;
    assert_eq!(
        stored(&back),
        5,
        "what was acknowledged before the restart is still there"
    );
    assert!(
        wait_until(Duration::from_secs(30), || stored(&back) == 8).await,
        "caught up {}",
        stored(&back)
    );
    // The three it missed came by catch-up, or (when gossipsub's message
    // cache still held them at reconnect) by gossip: counted either way, once
    // the counter follows the store (it is bumped just after).
    let m = &back.core.metrics;
    assert!(
        wait_until(Duration::from_secs(10), || m.catchup_batches.get()
            + m.gossip_accepted.get()
            >= 3)
        .await,
        "catch-up {} gossip {}",
        m.catchup_batches.get(),
        m.gossip_accepted.get()
    );
    // Re-delivering everything changes nothing (idempotent).
    for seq in 1..=8 {
        let b = nodes[0]
            .core
            .store
            .get_batch(ORIGIN, seq)
            .unwrap()
            .unwrap()
            .bytes;
        assert_eq!(
            back.core.ingest(&b).unwrap().outcome,
            traceless_node::storage::PutOutcome::Duplicate
        );
    }
    back.shutdown().await;
    for n in nodes {
        n.shutdown().await;
    }
}

/// Two nodes that listen on QUIC only federate over it and converge on batches
/// published at either of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_nodes_federate_over_quic_only() {
    let clock = ManualClock::new(NOW);
    let quic_only = |dir: &std::path::Path, boot: &[Multiaddr]| {
        let mut c = relay_config(dir);
        c.p2p.listen = vec!["/ip4/127.0.0.1/udp/0/quic-v1".into()];
        c.p2p.bootstrap = boot.iter().map(|a| a.to_string()).collect();
        traceless_node::start(c, Arc::new(clock.clone()))
    };
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let first = quic_only(d1.path(), &[]).await.unwrap();
    let second = quic_only(d2.path(), &first.p2p_addrs).await.unwrap();
    for n in [&first, &second] {
        assert!(!n.p2p_addrs.is_empty());
        for a in &n.p2p_addrs {
            assert!(a.iter().any(|p| matches!(p, Protocol::QuicV1)), "{a}");
            assert!(!a.iter().any(|p| matches!(p, Protocol::Tcp(_))), "{a}");
        }
    }
    assert!(
        wait_until(Duration::from_secs(10), || {
            let connected = |n: &RunningNode, p| n.federation.peers().connected.contains(&p);
            connected(&first, second.peer_id) && connected(&second, first.peer_id)
        })
        .await,
        "no QUIC connection"
    );
    let a = authority();
    publish_at(&first, &signed_batch(&a, 1, TODAY - 2, 20, NOW - 60));
    publish_at(&second, &signed_batch(&a, 2, TODAY - 2, 20, NOW - 60));
    assert!(
        wait_until(Duration::from_secs(15), || stored(&first) == 2
            && stored(&second) == 2)
        .await,
        "stored {} and {}",
        stored(&first),
        stored(&second)
    );
    for seq in 1..=2 {
        assert_eq!(
            first
                .core
                .store
                .get_batch(ORIGIN, seq)
                .unwrap()
                .unwrap()
                .bytes,
            second
                .core
                .store
                .get_batch(ORIGIN, seq)
                .unwrap()
                .unwrap()
                .bytes
        );
    }
    first.shutdown().await;
    second.shutdown().await;
}

/// The flood test: forged, untrusted and malformed batches are rejected by the
/// first honest node, never stored, never forwarded, and cost the sender its
/// score; honest batches still flow. It fails if validation before forwarding,
/// content-based message ids, peer scoring or the topic's score parameters are
/// removed from the node's gossipsub setup.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn forged_batches_are_rejected_not_forwarded_and_penalised() {
    let clock = ManualClock::new(NOW);
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let victim = start_relay(d1.path(), &clock, &[], 1).await;
    let behind = start_relay(d2.path(), &clock, &victim.p2p_addrs, 1).await;
    assert!(wait_for_peers(&behind, 1).await);

    let mut evil = attacker(&victim.p2p_addrs[0], BATCH_TOPIC).await;
    let evil_id = *evil.local_peer_id();
    let topic = IdentTopic::new(BATCH_TOPIC);
    let a = authority();
    let untrusted = AuthorityKey::generate(ORIGIN, 2);
    let mut forged = Vec::new();
    for i in 0..10u64 {
        // Signed by a key that is not in the trust list.
        forged.push(signed_batch(&untrusted, 100 + i, TODAY - 2, 5, NOW - 10));
    }
    // A trusted authority's batch with one flipped byte in the body.
    let mut tampered = signed_batch(&a, 200, TODAY - 2, 5, NOW - 10);
    tampered[10] ^= 1;
    forged.push(tampered);
    // An expired batch, correctly signed.
    forged.push(signed_batch(&a, 201, TODAY - 30, 5, NOW - 10));
    // Garbage.
    forged.push(vec![0xAB; 300]);
    let n_forged = forged.len() as u64;
    for f in forged {
        evil.behaviour_mut().publish(topic.clone(), f).unwrap();
        pump(&mut evil, Duration::from_millis(20)).await;
    }
    pump(&mut evil, Duration::from_millis(500)).await;
    let rejected = |n: &RunningNode| n.core.metrics.gossip_rejected.get();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while rejected(&victim) == 0 && tokio::time::Instant::now() < deadline {
        pump(&mut evil, Duration::from_millis(100)).await;
    }
    pump(&mut evil, Duration::from_millis(300)).await;
    // The first invalid message already pushes the attacker below the graylist
    // threshold, after which gossipsub drops its messages unread.
    let r = rejected(&victim);
    assert!((1..=n_forged).contains(&r), "rejected {r}");
    assert_eq!(stored(&victim), 0, "nothing forged is stored");
    assert_eq!(rejected(&behind), 0, "nothing forged was forwarded");
    assert_eq!(stored(&behind), 0);
    let score = victim
        .peer_score(evil_id)
        .await
        .expect("peer scoring is on");
    let graylist = libp2p::gossipsub::PeerScoreThresholds::default().graylist_threshold;
    assert!(
        score <= graylist,
        "attacker's score {score} is above the graylist threshold"
    );

    // Honest batches still flow through the victim to the node behind it.
    for seq in 1..=4 {
        publish_at(&victim, &signed_batch(&a, seq, TODAY - 2, 3, NOW - 5));
    }
    let ok = wait_until(Duration::from_secs(15), || stored(&behind) == 4).await;
    assert!(ok, "behind stored {}", stored(&behind));
    // All four arrived by gossip (with author+sequence ids, anonymous messages would
    // all share one id and only catch-up would deliver them).
    assert!(
        wait_until(Duration::from_secs(5), || behind
            .core
            .metrics
            .gossip_accepted
            .get()
            == 4)
        .await
    );
    // ...and, having received them by gossip (which forwards them), it does not
    // publish them again: a release run now (what the once-a-second job does)
    // finds none of them held for publication.
    let released = behind.core.release_due().unwrap();
    assert!(released.is_empty(), "held for re-publication: {released:?}");
    let m = &behind.core.metrics;
    assert_eq!(
        m.gossip_publish_duplicate.get(),
        0,
        "a batch received by gossip was published again"
    );
    victim.shutdown().await;
    behind.shutdown().await;
}

/// Debug lines of gossipsub's connection handler (where it says why it closed an
/// inbound stream), captured for this test binary.
const GOSSIP_HANDLER_LOG: &str = "libp2p_gossipsub::handler=debug";

fn logged(needle: &str) -> bool {
    captured_log(GOSSIP_HANDLER_LOG).contains(needle)
}

// The three size limits nest.
const _: () = assert!(MAX_SIGNED_BATCH_LEN < MAX_GOSSIP_MESSAGE_LEN);
const _: () = assert!(MAX_GOSSIP_MESSAGE_LEN < MAX_GOSSIP_RPC_LEN);

/// Oversized gossip at each of the three limits is dropped, never stored and
/// never forwarded: a frame above `MAX_GOSSIP_RPC_LEN` is not read (the inbound
/// stream is closed, with a log line saying why); a message above the topic's
/// `MAX_GOSSIP_MESSAGE_LEN` is dropped by gossipsub and costs its sender its
/// score; one just above `MAX_SIGNED_BATCH_LEN` reaches the node, which rejects
/// it and penalises the sender. An honest batch near the limit still flows. It
/// fails if either gossipsub limit is removed (the message would reach the
/// application and be counted there) or set below the batch size.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn oversized_gossip_is_dropped_not_stored_not_forwarded() {
    captured_log(GOSSIP_HANDLER_LOG);
    let clock = ManualClock::new(NOW);
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let victim = start_relay(d1.path(), &clock, &[], 1).await;
    let behind = start_relay(d2.path(), &clock, &victim.p2p_addrs, 1).await;
    assert!(wait_for_peers(&behind, 1).await);
    let topic = IdentTopic::new(BATCH_TOPIC);
    let rejected = |n: &RunningNode| n.core.metrics.gossip_rejected.get();
    let graylist = libp2p::gossipsub::PeerScoreThresholds::default().graylist_threshold;

    // 1. Above the RPC frame limit: gossipsub stops reading and closes the stream.
    let mut evil = attacker(&victim.p2p_addrs[0], BATCH_TOPIC).await;
    evil.behaviour_mut()
        .publish(topic.clone(), vec![0xAB; MAX_GOSSIP_RPC_LEN + 1])
        .unwrap();
    let why = format!("exceeds maximum of {MAX_GOSSIP_RPC_LEN}b");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while !logged(&why) && tokio::time::Instant::now() < deadline {
        pump(&mut evil, Duration::from_millis(100)).await;
    }
    assert!(logged(&why), "no log line explains the dropped frame");
    pump(&mut evil, Duration::from_millis(300)).await;
    assert_eq!(rejected(&victim), 0, "the oversized frame reached the node");

    // 2. Above the topic's message limit, inside the frame limit: gossipsub drops
    // it as invalid before the node sees it, and the sender's score falls.
    let mut evil = attacker(&victim.p2p_addrs[0], BATCH_TOPIC).await;
    let evil_id = *evil.local_peer_id();
    evil.behaviour_mut()
        .publish(topic.clone(), vec![0xAB; MAX_GOSSIP_MESSAGE_LEN + 1])
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let mut score = 0.0;
    while tokio::time::Instant::now() < deadline {
        pump(&mut evil, Duration::from_millis(100)).await;
        score = victim.peer_score(evil_id).await.unwrap_or(0.0);
        if score <= graylist {
            break;
        }
    }
    assert!(score <= graylist, "oversized sender's score {score}");
    assert_eq!(
        rejected(&victim),
        0,
        "the oversized message reached the node"
    );

    // 3. Inside both gossipsub limits but above MAX_SIGNED_BATCH_LEN: the node
    // rejects it as oversized and penalises the sender.
    let mut evil = attacker(&victim.p2p_addrs[0], BATCH_TOPIC).await;
    let evil_id = *evil.local_peer_id();
    evil.behaviour_mut()
        .publish(topic.clone(), vec![0xAB; MAX_SIGNED_BATCH_LEN + 1])
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while rejected(&victim) == 0 && tokio::time::Instant::now() < deadline {
        pump(&mut evil, Duration::from_millis(100)).await;
    }
    assert_eq!(rejected(&victim), 1, "rejected by the node");
    let score = victim.peer_score(evil_id).await.unwrap_or(0.0);
    assert!(score <= graylist, "oversized sender's score {score}");

    // Nothing was stored or forwarded.
    pump(&mut evil, Duration::from_millis(300)).await;
    assert_eq!(stored(&victim), 0);
    assert_eq!(stored(&behind), 0);
    assert_eq!(rejected(&behind), 0, "nothing oversized was forwarded");

    // An honest batch close to the size limit still travels by gossip.
    let a = authority();
    let big = signed_batch(&a, 1, TODAY - 2, MAX_BATCH_KEYS, NOW - 5);
    assert!(
        big.len() > MAX_SIGNED_BATCH_LEN / 2 && big.len() <= MAX_SIGNED_BATCH_LEN,
        "{}",
        big.len()
    );
    publish_at(&victim, &big);
    assert!(wait_until(Duration::from_secs(15), || stored(&behind) == 1).await);
    assert!(
        wait_until(Duration::from_secs(5), || behind
            .core
            .metrics
            .gossip_accepted
            .get()
            == 1)
        .await
    );
    victim.shutdown().await;
    behind.shutdown().await;
}

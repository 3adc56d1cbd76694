//! Sybil peers: gossipsub speakers with none of the node's defences, in the
//! simulator process, each connected to one node and publishing malformed and
//! forged batches (random bytes, a fresh message each) at a fixed rate on the
//! batch topic. The nodes must reject them, score the senders down and keep
//! honest batches flowing.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use libp2p::gossipsub::{self, IdentTopic, MessageAuthenticity, MessageId, ValidationMode};
use libp2p::swarm::SwarmEvent;
use libp2p::{noise, tcp, yamux, Multiaddr};
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use traceless_node::federation::behaviour::BATCH_TOPIC;

/// What the Sybils did.
#[derive(Debug, Default)]
pub struct FloodCounters {
    /// Messages handed to gossipsub for sending.
    pub sent: AtomicU64,
    /// Publications gossipsub refused locally (no peer left in the topic: the
    /// victim dropped or pruned the Sybil).
    pub refused: AtomicU64,
    /// Sybils that connected to their victim.
    pub connected: AtomicU64,
}

/// Runs one Sybil against `target` for `duration`, publishing `rate` messages
/// per second (malformed: random bytes of a batch's typical size).
pub async fn sybil(target: Multiaddr, rate: u64, duration: Duration, counters: Arc<FloodCounters>) {
    let Ok(config) = gossipsub::ConfigBuilder::default()
        .heartbeat_interval(Duration::from_millis(200))
        .validation_mode(ValidationMode::Anonymous)
        .message_id_fn(|m: &gossipsub::Message| {
            MessageId::from(traceless_node::storage::content_id(&m.data).to_vec())
        })
        .build()
    else {
        return;
    };
    let Ok(behaviour) = gossipsub::Behaviour::<
        gossipsub::IdentityTransform,
        gossipsub::AllowAllSubscriptionFilter,
    >::new(MessageAuthenticity::Anonymous, config) else {
        return;
    };
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
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
        .build();
    let topic = IdentTopic::new(BATCH_TOPIC);
    if swarm.behaviour_mut().subscribe(&topic).is_err() || swarm.dial(target).is_err() {
        return;
    }
    // Wait (bounded) for the victim's subscription.
    let until = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match tokio::time::timeout_at(until, swarm.select_next_some()).await {
            Ok(SwarmEvent::Behaviour(gossipsub::Event::Subscribed { .. })) => break,
            Ok(_) => {}
            Err(_) => return,
        }
    }
    counters.connected.fetch_add(1, Ordering::Relaxed);
    let end = tokio::time::Instant::now() + duration;
    // Bursts every 10 ms keep the rate without a timer per message.
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    let per_tick = (rate / 100).max(1);
    let mut rng = ChaCha8Rng::from_entropy();
    loop {
        tokio::select! {
            _ = tick.tick() => {
                if tokio::time::Instant::now() >= end {
                    return;
                }
                for _ in 0..per_tick {
                    let mut junk = vec![0u8; 300];
                    rng.fill_bytes(&mut junk);
                    match swarm.behaviour_mut().publish(topic.clone(), junk) {
                        Ok(_) => counters.sent.fetch_add(1, Ordering::Relaxed),
                        Err(_) => counters.refused.fetch_add(1, Ordering::Relaxed),
                    };
                }
            }
            _ = swarm.select_next_some() => {}
        }
    }
}

//! A gossipsub peer with none of the node's defences, for the flood and
//! bad-input tests: it publishes whatever a test hands it.

use std::time::Duration;

use futures::StreamExt;
use libp2p::gossipsub::{self, IdentTopic, MessageAuthenticity, MessageId, ValidationMode};
use libp2p::swarm::SwarmEvent;
use libp2p::{noise, tcp, yamux, Multiaddr};

/// An attacker that speaks gossipsub without validation, scoring or limits,
/// subscribed to `topic` and connected to `target` (waits, bounded, until the
/// target's subscription is known).
pub async fn attacker(target: &Multiaddr, topic: &str) -> libp2p::Swarm<gossipsub::Behaviour> {
    let config = gossipsub::ConfigBuilder::default()
        .heartbeat_interval(Duration::from_millis(100))
        .validation_mode(ValidationMode::Anonymous)
        .message_id_fn(|m: &gossipsub::Message| {
            MessageId::from(traceless_node::storage::content_id(&m.data).to_vec())
        })
        .max_transmit_size(8 << 20)
        .build()
        .unwrap();
    let mut swarm = libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(
            tcp::Config::default(),
            noise::Config::new,
            yamux::Config::default,
        )
        .unwrap()
        .with_behaviour(|_| {
            gossipsub::Behaviour::new(MessageAuthenticity::Anonymous, config).unwrap()
        })
        .unwrap()
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
        .build();
    swarm
        .behaviour_mut()
        .subscribe(&IdentTopic::new(topic))
        .unwrap();
    swarm.dial(target.clone()).unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match tokio::time::timeout_at(deadline, swarm.select_next_some()).await {
            Ok(SwarmEvent::Behaviour(gossipsub::Event::Subscribed { .. })) => break,
            Ok(_) => {}
            Err(_) => panic!("victim never subscribed"),
        }
    }
    swarm
}

/// Drives the attacker's swarm for `d`.
pub async fn pump(swarm: &mut libp2p::Swarm<gossipsub::Behaviour>, d: Duration) {
    let _ = tokio::time::timeout(d, async {
        loop {
            swarm.select_next_some().await;
        }
    })
    .await;
}

//! The libp2p behaviour: gossipsub with its defences switched on, catch-up
//! request-response, identify, and Kademlia.
//!
//! rust-libp2p's gossipsub ships with its defences off. Here:
//! - **validation before forwarding** (`validate_messages`): a message is held
//!   until the application has checked the batch signature, trust list, freshness
//!   and size, and reports Accept, Reject (penalise) or Ignore;
//! - **content-based message ids**: SHA-256 of the `SignedBatch` bytes (SPEC.md
//!   §6.1), so a batch is one message however many nodes publish it, and anonymous
//!   messages (no author, no sequence number) don't all collide on one id;
//! - **peer scoring with per-topic parameters**: without a `TopicScoreParams`
//!   entry for the topic, invalid messages on it are silently not penalised.
//!
//! Messages are anonymous: batches already carry their authority's signature, so
//! per-message gossipsub signatures would only cost throughput.
//!
//! Day filters (SPEC.md §5.8) travel on a topic of their own with the same
//! defences: validation before forwarding, a size limit, and score parameters.

// `#[derive(NetworkBehaviour)]` generates `BehaviourEvent` without docs.
#![allow(missing_docs)]

use std::time::Duration;

use libp2p::gossipsub::{
    self, IdentTopic, MessageAuthenticity, MessageId, PeerScoreParams, PeerScoreThresholds,
    TopicScoreParams, ValidationMode,
};
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::swarm::NetworkBehaviour;
use libp2p::{identify, identity, kad, StreamProtocol};
use traceless_protocol::wire::{MAX_SIGNED_BATCH_LEN, MAX_SIGNED_FILTER_LEN};

use super::catchup::{CatchupRequest, CatchupResponse, MAX_RESPONSE_BYTES};
use super::relay::{RelayRequest, RelayResponse, MAX_RELAY_REQUEST_LEN, RELAY_PROTOCOL};
use super::witnessing::{
    AddCheckpoint, AddCheckpointResponse, CHECKPOINT_TOPIC, MAX_ADD_CHECKPOINT_LEN,
    MAX_WITNESS_MESSAGE_LEN, WITNESS_PROTOCOL,
};
use crate::storage::content_id;

/// The gossip topic of signed batches.
pub const BATCH_TOPIC: &str = "traceless/v1/batches";
/// The gossip topic of signed parts of day filters (version 2, SPEC.md §5.8).
pub const FILTER_TOPIC: &str = "traceless/v2/filters";
/// The gossip topic of signed venue warning batches (SPEC.md §12.10).
pub const WARNING_TOPIC: &str = "traceless/v1/venue-warnings";
/// Catch-up protocol name (2: day filters are fetched by part, SPEC.md §5.8).
pub const CATCHUP_PROTOCOL: &str = "/traceless/catchup/2.1.0";
/// Identify protocol version.
pub const IDENTIFY_PROTOCOL: &str = "/traceless/1.0.0";
/// Kademlia protocol name (a private DHT, not the public IPFS one).
pub const KAD_PROTOCOL: &str = "/traceless/kad/1.0.0";

/// Largest message accepted on the batch topic, protobuf-encoded (the batch plus
/// the topic name and field framing). A larger message inside an RPC frame of at
/// most [`MAX_GOSSIP_RPC_LEN`] is dropped by gossipsub before the application
/// sees it, and counts as an invalid message against the sender's score.
/// Between [`MAX_SIGNED_BATCH_LEN`] and this, a message reaches the application,
/// which rejects it as oversized (penalising the sender too).
pub const MAX_GOSSIP_MESSAGE_LEN: usize = MAX_SIGNED_BATCH_LEN + 1024;
/// Largest message accepted on the filter topic, like [`MAX_GOSSIP_MESSAGE_LEN`]
/// for [`MAX_SIGNED_FILTER_LEN`].
pub const MAX_GOSSIP_FILTER_MESSAGE_LEN: usize = MAX_SIGNED_FILTER_LEN + 1024;
/// Largest gossipsub RPC frame read from a peer (one batch message plus headroom
/// for control messages). A larger frame is not buffered: the inbound stream is
/// closed unread and its message is neither delivered nor forwarded.
pub const MAX_GOSSIP_RPC_LEN: usize = if MAX_GOSSIP_MESSAGE_LEN > MAX_GOSSIP_FILTER_MESSAGE_LEN {
    MAX_GOSSIP_MESSAGE_LEN
} else {
    MAX_GOSSIP_FILTER_MESSAGE_LEN
} + (64 << 10);

/// Penalty weight of one invalid message on the batch topic (squared per count).
pub const INVALID_MESSAGE_WEIGHT: f64 = -100.0;

/// The node's composed behaviour.
#[derive(NetworkBehaviour)]
pub struct Behaviour {
    /// Push of new batches.
    pub gossipsub: gossipsub::Behaviour,
    /// Catch-up by per-origin sequence numbers.
    pub catchup: request_response::cbor::Behaviour<CatchupRequest, CatchupResponse>,
    /// Relayed sealed uploads, relay to gateway.
    pub relay: request_response::cbor::Behaviour<RelayRequest, RelayResponse>,
    /// C2SP `add-checkpoint`: a node pushes its checkpoint to witnesses.
    pub witness: request_response::cbor::Behaviour<AddCheckpoint, AddCheckpointResponse>,
    /// Exchange of listen addresses and protocols.
    pub identify: identify::Behaviour,
    /// Peer discovery.
    pub kad: Toggle<kad::Behaviour<kad::store::MemoryStore>>,
}

/// The batch gossip topic.
pub fn batch_topic() -> IdentTopic {
    IdentTopic::new(BATCH_TOPIC)
}

/// The venue-warning gossip topic.
pub fn warning_topic() -> IdentTopic {
    IdentTopic::new(WARNING_TOPIC)
}

/// The day-filter gossip topic.
pub fn filter_topic() -> IdentTopic {
    IdentTopic::new(FILTER_TOPIC)
}

/// The checkpoint gossip topic (SPEC.md §8.3).
pub fn checkpoint_topic() -> IdentTopic {
    IdentTopic::new(CHECKPOINT_TOPIC)
}

/// Gossipsub configuration: validation on, content ids, batch-sized messages
/// (see [`MAX_GOSSIP_MESSAGE_LEN`] and [`MAX_GOSSIP_RPC_LEN`]).
pub fn gossipsub_config(heartbeat: Duration) -> Result<gossipsub::Config, String> {
    gossipsub::ConfigBuilder::default()
        .heartbeat_interval(heartbeat)
        .validation_mode(ValidationMode::Anonymous)
        .validate_messages()
        .message_id_fn(|m: &gossipsub::Message| MessageId::from(content_id(&m.data).to_vec()))
        .max_transmit_size(MAX_GOSSIP_RPC_LEN)
        .max_transmit_size_for_topic(MAX_GOSSIP_MESSAGE_LEN, batch_topic().hash())
        .max_transmit_size_for_topic(MAX_GOSSIP_FILTER_MESSAGE_LEN, filter_topic().hash())
        .max_transmit_size_for_topic(MAX_GOSSIP_RPC_LEN, warning_topic().hash())
        .max_transmit_size_for_topic(MAX_WITNESS_MESSAGE_LEN + 1024, checkpoint_topic().hash())
        .duplicate_cache_time(Duration::from_secs(120))
        .build()
        .map_err(|e| e.to_string())
}

/// Score parameters: invalid messages on the batch topic cost heavily; mesh
/// delivery-rate penalties are off (a quiet network must not penalise honest
/// peers), and so, unless configured, is the same-IP penalty.
pub fn score_params(ip_colocation_penalty: bool) -> (PeerScoreParams, PeerScoreThresholds) {
    let mut params = PeerScoreParams::default();
    if !ip_colocation_penalty {
        params.ip_colocation_factor_weight = 0.0;
    }
    let topic = TopicScoreParams {
        topic_weight: 1.0,
        time_in_mesh_weight: 0.01,
        time_in_mesh_quantum: Duration::from_secs(1),
        time_in_mesh_cap: 100.0,
        first_message_deliveries_weight: 1.0,
        first_message_deliveries_decay: 0.9,
        first_message_deliveries_cap: 50.0,
        mesh_message_deliveries_weight: 0.0,
        mesh_failure_penalty_weight: 0.0,
        invalid_message_deliveries_weight: INVALID_MESSAGE_WEIGHT,
        invalid_message_deliveries_decay: 0.99,
        ..TopicScoreParams::default()
    };
    params.topics.insert(batch_topic().hash(), topic.clone());
    params.topics.insert(filter_topic().hash(), topic.clone());
    params.topics.insert(warning_topic().hash(), topic.clone());
    params.topics.insert(checkpoint_topic().hash(), topic);
    (params, PeerScoreThresholds::default())
}

impl Behaviour {
    /// Builds the behaviour for `key`.
    pub fn new(
        key: &identity::Keypair,
        heartbeat: Duration,
        kademlia: bool,
        ip_colocation_penalty: bool,
    ) -> Result<Self, String> {
        let mut gossipsub =
            gossipsub::Behaviour::new(MessageAuthenticity::Anonymous, gossipsub_config(heartbeat)?)
                .map_err(str::to_owned)?;
        let (params, thresholds) = score_params(ip_colocation_penalty);
        gossipsub.with_peer_score(params, thresholds)?;
        for topic in [
            batch_topic(),
            filter_topic(),
            warning_topic(),
            checkpoint_topic(),
        ] {
            gossipsub.subscribe(&topic).map_err(|e| e.to_string())?;
        }

        let codec = request_response::cbor::codec::Codec::default()
            .set_request_size_maximum(64 << 10)
            .set_response_size_maximum(MAX_RESPONSE_BYTES as u64 + (1 << 20));
        let catchup = request_response::Behaviour::with_codec(
            codec,
            [(StreamProtocol::new(CATCHUP_PROTOCOL), ProtocolSupport::Full)],
            request_response::Config::default().with_request_timeout(Duration::from_secs(30)),
        );
        let relay = request_response::Behaviour::with_codec(
            request_response::cbor::codec::Codec::default()
                .set_request_size_maximum(MAX_RELAY_REQUEST_LEN)
                .set_response_size_maximum(1024),
            [(StreamProtocol::new(RELAY_PROTOCOL), ProtocolSupport::Full)],
            request_response::Config::default().with_request_timeout(Duration::from_secs(20)),
        );
        let witness = request_response::Behaviour::with_codec(
            request_response::cbor::codec::Codec::default()
                .set_request_size_maximum(MAX_ADD_CHECKPOINT_LEN)
                .set_response_size_maximum(MAX_WITNESS_MESSAGE_LEN as u64),
            [(StreamProtocol::new(WITNESS_PROTOCOL), ProtocolSupport::Full)],
            request_response::Config::default().with_request_timeout(Duration::from_secs(20)),
        );
        let identify = identify::Behaviour::new(identify::Config::new(
            IDENTIFY_PROTOCOL.to_owned(),
            key.public(),
        ));
        let kad = kademlia.then(|| {
            let peer_id = key.public().to_peer_id();
            let mut k = kad::Behaviour::with_config(
                peer_id,
                kad::store::MemoryStore::new(peer_id),
                kad::Config::new(StreamProtocol::new(KAD_PROTOCOL)),
            );
            k.set_mode(Some(kad::Mode::Server));
            k
        });
        Ok(Behaviour {
            gossipsub,
            catchup,
            relay,
            witness,
            identify,
            kad: kad.into(),
        })
    }
}

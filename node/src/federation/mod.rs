//! Federation over libp2p (TCP with Noise and Yamux, and QUIC v1): gossipsub push
//! of new batches with
//! application-level validation, catch-up by per-origin sequence numbers,
//! identify, and discovery by a static bootstrap list plus Kademlia.

pub mod behaviour;
pub mod catchup;
mod checkpoints;
pub mod relay;
pub mod witness;
pub mod witnessing;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures::StreamExt;
use libp2p::gossipsub::{self, MessageAcceptance, MessageId};
use libp2p::multiaddr::Protocol;
use libp2p::request_response::{self, ResponseChannel};
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::SwarmEvent;
use libp2p::{identify, identity, kad, noise, tcp, yamux, Multiaddr, PeerId, Swarm};
use tokio::sync::{mpsc, oneshot};

use self::behaviour::{
    batch_topic, checkpoint_topic, filter_topic, warning_topic, Behaviour, BehaviourEvent,
};
use self::catchup::{Catchup, CatchupRequest, CatchupResponse};
use self::relay::{Relay, RelayRequest, RelayResponse};
use self::witness::WitnessError;
use self::witnessing::{Book, BookConfig, Verdict};
use crate::config::P2pConfig;
use crate::core::warnings::WarningIngestError;
use crate::core::{Announcement, Core, IngestError, Ingested, IngestedFilter};
use crate::storage::PutOutcome;

/// Application penalty per invalid batch received through catch-up.
const CATCHUP_PENALTY: f64 = -10.0;

/// Why federation could not start.
#[derive(Debug, thiserror::Error)]
pub enum FederationError {
    /// A configured multiaddr does not parse or lacks its peer id.
    #[error("p2p address {addr}: {why}")]
    Address {
        /// The address as configured.
        addr: String,
        /// What is wrong with it.
        why: String,
    },
    /// A listen address could not be bound (say, the port is in use).
    #[error("p2p listen {addr}: {why}")]
    Listen {
        /// The address as configured.
        addr: String,
        /// Why (from the transport).
        why: String,
    },
    /// The transports or the behaviour could not be built.
    #[error("libp2p: {0}")]
    Setup(String),
}

/// What the node knows about its federation, for the page and the tests.
#[derive(Clone, Debug, Default)]
pub struct PeerView {
    /// This node's libp2p id.
    pub local_peer_id: Option<PeerId>,
    /// Addresses this node listens on.
    pub listen_addrs: Vec<Multiaddr>,
    /// Currently connected peers.
    pub connected: Vec<PeerId>,
}

/// The typed handle through which the rest of the node talks to the federation
/// task: commands in, the peer view out.
#[derive(Clone)]
pub struct FederationHandle {
    commands: mpsc::UnboundedSender<Command>,
    peers: Arc<RwLock<PeerView>>,
    witnessing: Arc<Book>,
}

impl FederationHandle {
    /// A copy of the current peer view.
    pub fn peers(&self) -> PeerView {
        self.peers.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Forwards a sealed upload to the gateway of `origin`; the answer (or why the
    /// gateway was not reached) arrives on the returned channel. `None` when the
    /// federation task has stopped.
    pub fn relay(
        &self,
        origin: String,
        sealed: Vec<u8>,
    ) -> Option<oneshot::Receiver<Result<RelayResponse, String>>> {
        let (reply, rx) = oneshot::channel();
        self.commands
            .send(Command::Relay {
                origin,
                sealed,
                reply,
            })
            .ok()?;
        Some(rx)
    }

    /// Gossipsub score of a peer as this node sees it.
    pub async fn peer_score(&self, peer: PeerId) -> Option<f64> {
        let (tx, rx) = oneshot::channel();
        self.commands.send(Command::PeerScore(peer, tx)).ok()?;
        rx.await.ok().flatten()
    }

    /// The witness book: cosignatures on this node's checkpoint, equivocations
    /// caught (SPEC.md §8.3).
    pub fn witnessing(&self) -> &Book {
        &self.witnessing
    }

    /// Starts a catch-up round with every connected peer now.
    pub fn catchup_now(&self) {
        let _ = self.commands.send(Command::CatchupNow);
    }

    /// Stops the federation task.
    pub fn shutdown(&self) {
        let _ = self.commands.send(Command::Shutdown);
    }
}

/// Commands to the federation task.
#[derive(Debug)]
enum Command {
    /// Report a peer's gossipsub score.
    PeerScore(PeerId, oneshot::Sender<Option<f64>>),
    /// Start a catch-up round with every connected peer now.
    CatchupNow,
    /// Forward a sealed upload to the gateway of `origin` and hand back its answer.
    Relay {
        /// Authority id.
        origin: String,
        /// The sealed upload.
        sealed: Vec<u8>,
        /// Where the answer goes (an error says why the gateway was not reached).
        reply: oneshot::Sender<Result<RelayResponse, String>>,
    },
    /// Stop.
    Shutdown,
}

/// A started federation task.
pub struct Started {
    /// The handle to it.
    pub handle: FederationHandle,
    /// The task.
    pub task: tokio::task::JoinHandle<()>,
    /// Local peer id.
    pub peer_id: PeerId,
    /// Listen addresses with `/p2p/<id>`.
    pub listen_addrs: Vec<Multiaddr>,
}

enum Done {
    Gossip(MessageId, PeerId, Result<Ingested, IngestError>),
    FilterGossip(MessageId, PeerId, Result<IngestedFilter, IngestError>),
    WarningGossip(
        MessageId,
        PeerId,
        Result<crate::storage::warnings::WarningPut, WarningIngestError>,
    ),
    Catchup(PeerId, Vec<Result<Ingested, IngestError>>),
    CatchupFilters(PeerId, Vec<Result<IngestedFilter, IngestError>>),
    CatchupWarnings(
        PeerId,
        Vec<Result<crate::storage::warnings::WarningPut, WarningIngestError>>,
    ),
    Answer(ResponseChannel<CatchupResponse>, CatchupResponse),
    Missing(PeerId, Vec<CatchupRequest>),
    RelayAnswer(PeerId, ResponseChannel<RelayResponse>, RelayResponse),
    Announce(u64, Vec<u8>),
    WitnessAnswer(Box<checkpoints::Answer>),
    CheckpointGossip(MessageId, PeerId, Result<Verdict, WitnessError>),
}

fn peer_of(addr: &Multiaddr) -> Option<PeerId> {
    addr.iter().find_map(|p| match p {
        Protocol::P2p(id) => Some(id),
        _ => None,
    })
}

/// Builds the swarm, binds its listeners and spawns the event loop.
pub async fn start(
    core: Arc<Core>,
    p2p: &P2pConfig,
    identity: identity::Keypair,
    announcements: mpsc::UnboundedReceiver<Announcement>,
) -> Result<Started, FederationError> {
    let heartbeat = Duration::from_millis(p2p.heartbeat_ms);
    let mut swarm = libp2p::SwarmBuilder::with_existing_identity(identity)
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )
        .map_err(|e| FederationError::Setup(e.to_string()))?
        .with_quic()
        .with_behaviour(|key| {
            Behaviour::new(key, heartbeat, p2p.kademlia, p2p.ip_colocation_penalty)
                .map_err(|e| e.into())
        })
        .map_err(|e| FederationError::Setup(e.to_string()))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(3600)))
        .build();
    // libp2p's swarm, identify, Kademlia and gossipsub event counts, in the
    // node's one registry.
    let p2p_metrics = libp2p::metrics::Metrics::new(&mut core.metrics.registry());
    let peer_id = *swarm.local_peer_id();
    let mut listeners = Vec::new();
    for text in &p2p.listen {
        let addr: Multiaddr = text.parse().map_err(|e| FederationError::Address {
            addr: text.clone(),
            why: format!("{e}"),
        })?;
        ensure_port_free(&addr).map_err(|e| FederationError::Listen {
            addr: text.clone(),
            why: e.to_string(),
        })?;
        let id = swarm.listen_on(addr).map_err(|e| FederationError::Listen {
            addr: text.clone(),
            why: e.to_string(),
        })?;
        listeners.push((id, text));
    }
    // Wait for the listeners to report their bound addresses (bounded), and list
    // them in the configured order (TCP first by default). A listener that fails
    // fails start-up.
    let mut bound = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while bound.len() < p2p.listen.len() {
        let rank_of = |id| listeners.iter().position(|(l, _)| *l == id);
        let named = |id| rank_of(id).map_or_else(String::new, |r| listeners[r].1.clone());
        match tokio::time::timeout_at(deadline, swarm.select_next_some()).await {
            Ok(SwarmEvent::NewListenAddr {
                listener_id,
                address,
            }) => {
                bound.push((rank_of(listener_id), address.with(Protocol::P2p(peer_id))));
            }
            Ok(SwarmEvent::ListenerError { listener_id, error }) => {
                return Err(FederationError::Listen {
                    addr: named(listener_id),
                    why: error.to_string(),
                })
            }
            Ok(SwarmEvent::ListenerClosed {
                listener_id,
                reason,
                ..
            }) => {
                return Err(FederationError::Listen {
                    addr: named(listener_id),
                    why: match reason {
                        Err(e) => e.to_string(),
                        Ok(()) => "listener closed".into(),
                    },
                })
            }
            Ok(_) => {}
            Err(_) => {
                return Err(FederationError::Setup(
                    "libp2p listeners did not come up within 5 s".into(),
                ))
            }
        }
    }
    bound.sort_by_key(|(rank, _)| *rank);
    let listen_addrs: Vec<Multiaddr> = bound.into_iter().map(|(_, a)| a).collect();
    let address_error = |addr: &str, why: String| FederationError::Address {
        addr: addr.to_owned(),
        why,
    };
    let mut bootstrap: Vec<Multiaddr> = p2p
        .bootstrap
        .iter()
        .map(|a| a.parse().map_err(|e| address_error(a, format!("{e}"))))
        .collect::<Result<_, _>>()?;
    let mut upload_gateways = HashMap::new();
    for g in &p2p.upload_gateways {
        let addr: Multiaddr = g
            .address
            .parse()
            .map_err(|e| address_error(&g.address, format!("{e}")))?;
        let peer = peer_of(&addr)
            .ok_or_else(|| address_error(&g.address, "lacks /p2p/<peer id>".into()))?;
        upload_gateways.insert(g.origin.clone(), (peer, addr.clone()));
        bootstrap.push(addr);
    }
    let peers = Arc::new(RwLock::new(PeerView {
        local_peer_id: Some(peer_id),
        listen_addrs: listen_addrs.clone(),
        connected: Vec::new(),
    }));
    let witness = &core.config.witness;
    let book = Arc::new(Book::open(
        core.log.db(),
        BookConfig {
            node_key: core.node_key.clone(),
            cosign: witness
                .cosign
                .unwrap_or(core.config.role == crate::config::Role::Relay),
            known: witness
                .known_keys()
                .map_err(|e| FederationError::Setup(e.to_string()))?,
            binding: core.gateway.as_ref().map(|g| g.bind_log(core.log.origin())),
            trust: core.trust.clone(),
        },
    ));
    let (commands_tx, commands) = mpsc::unbounded_channel();
    let task = tokio::spawn(
        Federation {
            core,
            p2p_metrics,
            peers: peers.clone(),
            catchup_every: Duration::from_secs(p2p.catchup_interval_secs.max(1)),
            swarm,
            bootstrap,
            connected: HashSet::new(),
            app_penalty: HashMap::new(),
            catchup: Catchup::new(catchup::Config::default()),
            relay: Relay::new(relay::Config {
                gateways: upload_gateways,
            }),
            book: book.clone(),
            pushes: checkpoints::Pushes::default(),
        }
        .run(commands, announcements),
    );
    Ok(Started {
        handle: FederationHandle {
            commands: commands_tx,
            peers,
            witnessing: book,
        },
        task,
        peer_id,
        listen_addrs,
    })
}

/// libp2p's TCP transport binds its listeners with `SO_REUSEPORT`, so a port
/// another process already listens on is silently shared. Binding it first
/// without that option finds the conflict (`AddrInUse`); the probe is closed
/// again before libp2p binds. Port 0 (any free port) needs no probe.
fn ensure_port_free(addr: &Multiaddr) -> std::io::Result<()> {
    let mut ip = None;
    for p in addr.iter() {
        match p {
            Protocol::Ip4(a) => ip = Some(std::net::IpAddr::V4(a)),
            Protocol::Ip6(a) => ip = Some(std::net::IpAddr::V6(a)),
            Protocol::Tcp(port) if port != 0 => {
                if let Some(ip) = ip {
                    drop(std::net::TcpListener::bind((ip, port))?);
                }
            }
            Protocol::Udp(port) if port != 0 => {
                if let Some(ip) = ip {
                    drop(std::net::UdpSocket::bind((ip, port))?);
                }
            }
            _ => {}
        }
    }
    Ok(())
}

struct Federation {
    core: Arc<Core>,
    /// libp2p's own metrics, fed every swarm and protocol event.
    p2p_metrics: libp2p::metrics::Metrics,
    peers: Arc<RwLock<PeerView>>,
    catchup_every: Duration,
    swarm: Swarm<Behaviour>,
    bootstrap: Vec<Multiaddr>,
    connected: HashSet<PeerId>,
    app_penalty: HashMap<PeerId, f64>,
    /// Catch-up rounds, outstanding fetches, strikes and back-offs.
    catchup: Catchup,
    /// Relayed uploads: waiting, sent, and in flight per relay.
    relay: Relay,
    /// Witnessing: what this node cosigned and caught (shared with HTTP).
    book: Arc<Book>,
    /// Pushes of this node's own checkpoints.
    pushes: checkpoints::Pushes,
}

impl Federation {
    async fn run(
        mut self,
        mut commands: mpsc::UnboundedReceiver<Command>,
        mut announcements: mpsc::UnboundedReceiver<Announcement>,
    ) {
        let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Done>();
        let mut catchup_tick = tokio::time::interval(self.catchup_every);
        let mut dial_tick = tokio::time::interval(Duration::from_secs(2));
        let mut kad_tick = tokio::time::interval(Duration::from_secs(30));
        let mut checkpoint_tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                cmd = commands.recv() => match cmd {
                    None | Some(Command::Shutdown) => return,
                    Some(Command::PeerScore(peer, reply)) => {
                        let _ = reply.send(self.swarm.behaviour().gossipsub.peer_score(&peer));
                    }
                    Some(Command::CatchupNow) => self.catchup_round(),
                    Some(Command::Relay { origin, sealed, reply }) => {
                        self.relay(origin, sealed, reply)
                    }
                },
                Some(a) = announcements.recv() => match a {
                    Announcement::Batch(bytes) => self.publish(bytes),
                    Announcement::Filter(bytes) => self.publish_filter(bytes),
                    Announcement::Warnings(bytes) => self.publish_to(warning_topic(), bytes),
                },
                Some(done) = done_rx.recv() => self.finish(done),
                event = self.swarm.select_next_some() => self.on_event(event, &done_tx),
                _ = catchup_tick.tick() => self.catchup_round(),
                _ = checkpoint_tick.tick() => self.checkpoint_tick(&done_tx),
                _ = dial_tick.tick() => {
                    self.dial_bootstrap();
                    self.record_mesh();
                }
                _ = kad_tick.tick() => {
                    if let Some(k) = self.swarm.behaviour_mut().kad.as_mut() {
                        let _ = k.bootstrap();
                    }
                }
            }
        }
    }

    fn publish(&mut self, bytes: Vec<u8>) {
        match self
            .swarm
            .behaviour_mut()
            .gossipsub
            .publish(batch_topic(), bytes)
        {
            Ok(_) => {
                self.core.metrics.gossip_published.inc();
            }
            Err(gossipsub::PublishError::Duplicate) => {
                self.core.metrics.gossip_publish_duplicate.inc();
            }
            // With no peers yet, catch-up delivers the batch when they connect.
            Err(e) => tracing::debug!("gossip publish: {e}"),
        }
    }

    /// Reports a validated gossip message to gossipsub: forward it (accept),
    /// drop it quietly (ignore), or reject it, which penalises the sender.
    fn report_gossip(
        &mut self,
        id: MessageId,
        source: PeerId,
        forward: Result<bool, &IngestError>,
        what: &str,
    ) {
        let m = &self.core.metrics;
        let acceptance = match forward {
            Ok(true) => {
                m.gossip_accepted.inc();
                MessageAcceptance::Accept
            }
            Ok(false) => {
                m.gossip_ignored.inc();
                MessageAcceptance::Ignore
            }
            Err(IngestError::Invalid(e)) => {
                m.gossip_rejected.inc();
                tracing::info!(peer = %source, "rejected gossiped {what}: {e}");
                MessageAcceptance::Reject
            }
            Err(IngestError::Storage(e)) => {
                tracing::error!("storing gossiped {what} failed: {e}");
                MessageAcceptance::Ignore
            }
        };
        self.swarm
            .behaviour_mut()
            .gossipsub
            .report_message_validation_result(&id, &source, acceptance);
    }

    fn publish_to(&mut self, topic: gossipsub::IdentTopic, bytes: Vec<u8>) {
        match self.swarm.behaviour_mut().gossipsub.publish(topic, bytes) {
            Ok(_) => {
                self.core.metrics.gossip_published.inc();
            }
            Err(gossipsub::PublishError::Duplicate) => {
                self.core.metrics.gossip_publish_duplicate.inc();
            }
            Err(e) => tracing::debug!("gossip publish warnings: {e}"),
        }
    }

    fn publish_filter(&mut self, bytes: Vec<u8>) {
        match self
            .swarm
            .behaviour_mut()
            .gossipsub
            .publish(filter_topic(), bytes)
        {
            Ok(_) => {
                self.core.metrics.gossip_published.inc();
            }
            Err(gossipsub::PublishError::Duplicate) => {
                self.core.metrics.gossip_publish_duplicate.inc();
            }
            Err(e) => tracing::debug!("gossip publish filter: {e}"),
        }
    }

    /// Dials bootstrap peers that are not connected. A peer listed with several
    /// addresses (say TCP and QUIC) is dialled once, on all of them concurrently;
    /// the first connection that succeeds is kept.
    fn dial_bootstrap(&mut self) {
        let local = *self.swarm.local_peer_id();
        let mut by_peer: Vec<(PeerId, Vec<Multiaddr>)> = Vec::new();
        for addr in &self.bootstrap {
            match peer_of(addr) {
                Some(p) if self.connected.contains(&p) || p == local => {}
                Some(p) => match by_peer.iter_mut().find(|(q, _)| *q == p) {
                    Some((_, addrs)) => addrs.push(addr.clone()),
                    None => by_peer.push((p, vec![addr.clone()])),
                },
                None => {
                    if let Err(e) = self.swarm.dial(addr.clone()) {
                        tracing::debug!("dial {addr}: {e}");
                    }
                }
            }
        }
        for (peer, addrs) in by_peer {
            let opts = DialOpts::peer_id(peer)
                .addresses(addrs)
                .condition(PeerCondition::DisconnectedAndNotDialing)
                .build();
            if let Err(e) = self.swarm.dial(opts) {
                tracing::debug!(%peer, "dial: {e}");
            }
        }
    }

    fn relay(&mut self, origin: String, sealed: Vec<u8>, reply: relay::Reply) {
        let connected = &self.connected;
        let event = self
            .relay
            .forward(origin, sealed, reply, |p| connected.contains(p));
        if let Some(e) = event {
            self.on_relay_event(e);
        }
    }

    /// Does what the relay state machine asks.
    fn on_relay_event(&mut self, event: relay::Event) {
        match event {
            relay::Event::Send(gateway, request, reply) => {
                let id = self
                    .swarm
                    .behaviour_mut()
                    .relay
                    .send_request(&gateway, request);
                self.relay.sent(id, reply);
            }
            relay::Event::Dial(gateway, addr) => {
                let opts = DialOpts::peer_id(gateway)
                    .addresses(vec![addr])
                    .condition(PeerCondition::DisconnectedAndNotDialing)
                    .build();
                if let Err(e) = self.swarm.dial(opts) {
                    tracing::debug!(%gateway, "dial gateway: {e}");
                }
            }
        }
    }

    /// Gateway side: processes a relayed sealed upload off the event loop and
    /// answers `response_delay_ms` after it arrived, whatever happened — unless
    /// the relay already has [`MAX_INFLIGHT_PER_PEER`] in flight, which is
    /// answered `Busy` at once (before anything is opened, so for real and dummy
    /// alike).
    fn on_relay_request(
        &mut self,
        peer: PeerId,
        request: RelayRequest,
        channel: ResponseChannel<RelayResponse>,
        done: &mpsc::UnboundedSender<Done>,
    ) {
        if !self.relay.admit(peer) {
            self.core.metrics.relayed_refused.inc();
            let _ = self
                .swarm
                .behaviour_mut()
                .relay
                .send_response(channel, RelayResponse::Busy);
            return;
        }
        let s = self.core.clone();
        let done = done.clone();
        tokio::spawn(async move {
            let started = tokio::time::Instant::now();
            let delay = s.config.gateway.as_ref().map_or(0, |g| g.response_delay_ms);
            let s2 = s.clone();
            let response = tokio::task::spawn_blocking(move || {
                s2.accept_relayed(&request.origin, &request.sealed)
            })
            .await
            .unwrap_or(RelayResponse::Busy);
            tokio::time::sleep_until(started + Duration::from_millis(delay)).await;
            let _ = done.send(Done::RelayAnswer(peer, channel, response));
        });
    }

    fn catchup_round(&mut self) {
        let peers: Vec<PeerId> = self.connected.iter().copied().collect();
        for p in peers {
            self.catchup_with(p);
        }
    }

    /// Asks a peer what batches and day filters it holds, unless a round with it
    /// is still in flight or it is backed off.
    fn catchup_with(&mut self, peer: PeerId) {
        if !self.catchup.start_round(peer, 4, std::time::Instant::now()) {
            return;
        }
        let c = &mut self.swarm.behaviour_mut().catchup;
        c.send_request(&peer, CatchupRequest::Summary);
        c.send_request(&peer, CatchupRequest::FilterSummary);
        c.send_request(&peer, CatchupRequest::WarningSummary);
        // The peer's clock, for the conservative clock (SPEC.md §2.1).
        c.send_request(&peer, CatchupRequest::Time);
    }

    fn penalise(&mut self, peer: PeerId) {
        let p = self.app_penalty.entry(peer).or_default();
        *p += CATCHUP_PENALTY;
        let score = *p;
        self.swarm
            .behaviour_mut()
            .gossipsub
            .set_application_score(&peer, score);
    }

    fn update_peer_view(&self) {
        let mut view = self.peers.write().unwrap_or_else(|e| e.into_inner());
        view.connected = self.connected.iter().copied().collect();
        view.connected.sort();
        self.core
            .metrics
            .peers_connected
            .set(self.connected.len() as u64);
    }

    fn finish(&mut self, done: Done) {
        match done {
            Done::Gossip(id, source, result) => {
                // Visibility as of ingest: a visible new batch was stored as
                // announced, so forwarding it here is its only gossip (it is not
                // published again; an embargoed one is held and released by the
                // scheduled job). Conflicts are the authority's fault, not the
                // forwarder's: ignored, like embargoed batches.
                let forward = result.as_ref().map(|i| {
                    i.outcome != PutOutcome::Conflict
                        && i.visible
                        && !self.book.is_blocked(&i.meta.origin)
                });
                self.report_gossip(id, source, forward, "batch");
            }
            Done::WarningGossip(id, source, result) => {
                use crate::storage::warnings::WarningPut;
                let m = &self.core.metrics;
                // Only a new batch is forwarded; a bad signature, bad bytes or
                // an expired batch penalises the sender; one from the future
                // (a skewed clock) is dropped quietly.
                let acceptance = match &result {
                    Ok(WarningPut::New) => {
                        m.gossip_accepted.inc();
                        MessageAcceptance::Accept
                    }
                    Ok(_) | Err(WarningIngestError::Future { .. }) => {
                        m.gossip_ignored.inc();
                        MessageAcceptance::Ignore
                    }
                    Err(WarningIngestError::Storage(e)) => {
                        tracing::error!("storing gossiped warnings failed: {e}");
                        MessageAcceptance::Ignore
                    }
                    Err(e) => {
                        m.gossip_rejected.inc();
                        tracing::info!(peer = %source, "rejected gossiped warnings: {e}");
                        MessageAcceptance::Reject
                    }
                };
                self.swarm
                    .behaviour_mut()
                    .gossipsub
                    .report_message_validation_result(&id, &source, acceptance);
            }
            Done::FilterGossip(id, source, result) => {
                // A part held already (or a conflicting one) is not forwarded.
                let forward = result.as_ref().map(|f| f.outcome == PutOutcome::New);
                if matches!(forward, Err(IngestError::Invalid(_))) {
                    self.core.metrics.filters_rejected.inc();
                }
                self.report_gossip(id, source, forward, "filter");
            }
            Done::Catchup(peer, results) => {
                let mut new = 0;
                for r in results {
                    match r {
                        Ok(i) => {
                            if i.outcome == PutOutcome::New {
                                new += 1;
                                self.core.metrics.catchup_batches.inc();
                            }
                        }
                        Err(IngestError::Invalid(e)) => {
                            self.core.metrics.catchup_rejected.inc();
                            tracing::info!(%peer, "rejected batch from catch-up: {e}");
                            self.penalise(peer);
                        }
                        Err(IngestError::Storage(e)) => {
                            tracing::error!("storing caught-up batch failed: {e}")
                        }
                    }
                }
                if new > 0 {
                    tracing::info!(%peer, batches = new, "catch-up stored batches");
                    self.release();
                }
            }
            Done::CatchupFilters(peer, results) => {
                for r in results {
                    match r {
                        // Counted in `filters_stored` / `filters_duplicate` by ingest.
                        Ok(_) => {}
                        Err(IngestError::Invalid(e)) => {
                            self.core.metrics.catchup_rejected.inc();
                            self.core.metrics.filters_rejected.inc();
                            tracing::info!(%peer, "rejected filter from catch-up: {e}");
                            self.penalise(peer);
                        }
                        Err(IngestError::Storage(e)) => {
                            tracing::error!("storing caught-up filter failed: {e}")
                        }
                    }
                }
            }
            Done::CatchupWarnings(peer, results) => {
                for r in results {
                    match r {
                        // A skewed clock, ours or theirs, is no fault of the peer's.
                        Ok(_)
                        | Err(WarningIngestError::Future { .. })
                        | Err(WarningIngestError::Expired { .. }) => {}
                        Err(WarningIngestError::Invalid(e)) => {
                            self.core.metrics.catchup_rejected.inc();
                            tracing::info!(%peer, "rejected warnings from catch-up: {e}");
                            self.penalise(peer);
                        }
                        Err(WarningIngestError::Storage(e)) => {
                            tracing::error!("storing caught-up warnings failed: {e}")
                        }
                    }
                }
            }
            Done::Answer(channel, response) => {
                let _ = self
                    .swarm
                    .behaviour_mut()
                    .catchup
                    .send_response(channel, response);
            }
            Done::RelayAnswer(peer, channel, response) => {
                self.relay.finished(peer);
                let _ = self
                    .swarm
                    .behaviour_mut()
                    .relay
                    .send_response(channel, response);
            }
            Done::Announce(size, note) => self.announce_checkpoint(size, note),
            Done::WitnessAnswer(answer) => self.witness_answer_ready(*answer),
            Done::CheckpointGossip(id, source, result) => {
                self.checkpoint_gossip_checked(id, source, result)
            }
            Done::Missing(peer, requests) => {
                let book = self.book.clone();
                for r in requests
                    .into_iter()
                    .filter(|r| checkpoints::may_fetch(&book, r))
                {
                    let asked = match &r {
                        CatchupRequest::Fetch { sequences, .. } => sequences.len(),
                        CatchupRequest::FetchFilters(wanted) => wanted.len(),
                        CatchupRequest::FetchWarnings { sequences, .. } => sequences.len(),
                        _ => 0,
                    };
                    let id = self.swarm.behaviour_mut().catchup.send_request(&peer, r);
                    self.catchup.fetch_sent(peer, id, asked);
                }
                // The summary these came from is done with.
                self.catchup.answered(peer);
                self.core.metrics.catchup_rounds.inc();
            }
        }
    }

    /// Sets the gossipsub mesh and peer-score gauges (every 2 s). gossipsub's
    /// own metrics are not turned on: its score histogram has negative buckets
    /// and a `_sum`, which OpenMetrics forbids (strict parsers reject the
    /// whole exposition), so scores are exported as one gauge per peer.
    fn record_mesh(&self) {
        let g = &self.swarm.behaviour().gossipsub;
        let m = &self.core.metrics;
        for topic in [
            batch_topic(),
            filter_topic(),
            warning_topic(),
            checkpoint_topic(),
        ] {
            let hash = topic.hash();
            m.set_mesh_peers(hash.as_str(), g.mesh_peers(&hash).count() as u64);
        }
        let scores = self
            .connected
            .iter()
            .filter_map(|p| Some((p.to_string(), g.peer_score(p)?)));
        m.set_peer_scores(scores);
    }

    /// Feeds an event to libp2p's metrics.
    fn record(&self, event: &SwarmEvent<BehaviourEvent>) {
        use libp2p::metrics::Recorder;
        match event {
            SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(e)) => self.p2p_metrics.record(e),
            SwarmEvent::Behaviour(BehaviourEvent::Identify(e)) => self.p2p_metrics.record(e),
            SwarmEvent::Behaviour(BehaviourEvent::Kad(e)) => self.p2p_metrics.record(e),
            _ => {}
        }
        self.p2p_metrics.record(event);
    }

    /// Announces newly stored, visible batches (re-gossip happens only after the
    /// flush in `ingest`).
    fn release(&self) {
        let s = self.core.clone();
        tokio::task::spawn_blocking(move || {
            if let Err(e) = s.release_due() {
                tracing::error!("release failed: {e}");
            }
        });
    }

    fn on_event(&mut self, event: SwarmEvent<BehaviourEvent>, done: &mpsc::UnboundedSender<Done>) {
        self.record(&event);
        match event {
            SwarmEvent::ConnectionEstablished { peer_id, .. }
                if !self.connected.contains(&peer_id) =>
            {
                self.connected.insert(peer_id);
                tracing::info!(peer = %peer_id, "peer connected");
                self.update_peer_view();
                for e in self.relay.connected(peer_id) {
                    self.on_relay_event(e);
                }
                self.catchup_with(peer_id);
                self.push_checkpoint(peer_id, false);
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established: 0,
                ..
            } => {
                self.connected.remove(&peer_id);
                tracing::info!(peer = %peer_id, "peer disconnected");
                self.catchup.disconnected(peer_id);
                self.update_peer_view();
            }
            SwarmEvent::NewListenAddr { address, .. } => {
                let mut view = self.peers.write().unwrap_or_else(|e| e.into_inner());
                let full = address.with(Protocol::P2p(*self.swarm.local_peer_id()));
                if !view.listen_addrs.contains(&full) {
                    view.listen_addrs.push(full);
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            })) => {
                if message.topic == checkpoint_topic().hash() {
                    return self.on_checkpoint_gossip(
                        message_id,
                        propagation_source,
                        message.data,
                        done,
                    );
                }
                let s = self.core.clone();
                let done = done.clone();
                if message.topic == warning_topic().hash() {
                    tokio::task::spawn_blocking(move || {
                        let r = s.ingest_warnings(&message.data).map(|(put, _)| put);
                        let _ = done.send(Done::WarningGossip(message_id, propagation_source, r));
                    });
                } else if message.topic == filter_topic().hash() {
                    tokio::task::spawn_blocking(move || {
                        let r = s.ingest_filter(&message.data);
                        let _ = done.send(Done::FilterGossip(message_id, propagation_source, r));
                    });
                } else {
                    tokio::task::spawn_blocking(move || {
                        let r = s.ingest_gossiped(&message.data);
                        let _ = done.send(Done::Gossip(message_id, propagation_source, r));
                    });
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Catchup(request_response::Event::Message {
                peer,
                message,
                ..
            })) => match message {
                request_response::Message::Request {
                    request, channel, ..
                } => {
                    let s = self.core.clone();
                    let book = self.book.clone();
                    let done = done.clone();
                    tokio::task::spawn_blocking(move || {
                        let response = catchup::answer(
                            s.store.as_ref(),
                            &s.warning_files(),
                            &request,
                            s.now(),
                            s.public_now(),
                        );
                        let response = checkpoints::withhold(&book, &request, response);
                        let _ = done.send(Done::Answer(channel, response));
                    });
                }
                request_response::Message::Response {
                    request_id,
                    response,
                } => {
                    let s = self.core.clone();
                    let done = done.clone();
                    if let CatchupResponse::Batches(items)
                    | CatchupResponse::Filters(items)
                    | CatchupResponse::Warnings(items) = &response
                    {
                        let bytes = items.iter().map(|b| b.len()).sum();
                        let served = items.len();
                        let now = std::time::Instant::now();
                        if let Some(catchup::Event::Unserved(p)) =
                            self.catchup.fetch_answered(request_id, served, bytes, now)
                        {
                            self.core.metrics.catchup_unserved.inc();
                            tracing::info!(peer = %p, "peer advertised batches it did not serve");
                            self.penalise(p);
                        }
                    }
                    let max_fetches = self.catchup.config().max_fetches_per_round;
                    match response {
                        CatchupResponse::Summary(theirs) => {
                            tokio::task::spawn_blocking(move || {
                                let reqs = catchup::missing(
                                    s.store.as_ref(),
                                    &theirs,
                                    &s.trust,
                                    max_fetches,
                                )
                                .unwrap_or_else(|e| {
                                    tracing::error!("catch-up: {e}");
                                    Vec::new()
                                });
                                let _ = done.send(Done::Missing(peer, reqs));
                            });
                        }
                        CatchupResponse::Batches(batches) => {
                            tokio::task::spawn_blocking(move || {
                                let results = batches.iter().map(|b| s.ingest(b)).collect();
                                let _ = done.send(Done::Catchup(peer, results));
                            });
                        }
                        CatchupResponse::FilterSummary(theirs) => {
                            tokio::task::spawn_blocking(move || {
                                let reqs = catchup::missing_filters(
                                    s.store.as_ref(),
                                    &theirs,
                                    &s.trust,
                                    max_fetches,
                                )
                                .unwrap_or_else(|e| {
                                    tracing::error!("filter catch-up: {e}");
                                    Vec::new()
                                });
                                let _ = done.send(Done::Missing(peer, reqs));
                            });
                        }
                        CatchupResponse::Filters(filters) => {
                            tokio::task::spawn_blocking(move || {
                                let results = filters.iter().map(|f| s.ingest_filter(f)).collect();
                                let _ = done.send(Done::CatchupFilters(peer, results));
                            });
                        }
                        CatchupResponse::WarningSummary(theirs) => {
                            tokio::task::spawn_blocking(move || {
                                let reqs = catchup::missing_warnings(
                                    &s.warning_files(),
                                    &theirs,
                                    &s.trust,
                                    max_fetches,
                                )
                                .unwrap_or_else(|e| {
                                    tracing::error!("warning catch-up: {e}");
                                    Vec::new()
                                });
                                let _ = done.send(Done::Missing(peer, reqs));
                            });
                        }
                        CatchupResponse::Warnings(batches) => {
                            tokio::task::spawn_blocking(move || {
                                let results = batches
                                    .iter()
                                    .map(|b| s.ingest_warnings(b).map(|(put, _)| put))
                                    .collect();
                                let _ = done.send(Done::CatchupWarnings(peer, results));
                            });
                        }
                        CatchupResponse::Time(theirs) => {
                            // `peer` is the Noise-authenticated identity.
                            self.core.peer_clocks.record(peer, theirs);
                            self.catchup.answered(peer);
                        }
                        CatchupResponse::Refused(why) => {
                            self.catchup.failed(Some(request_id), peer);
                            tracing::debug!(%peer, "catch-up refused: {why}")
                        }
                    }
                }
            },
            SwarmEvent::Behaviour(BehaviourEvent::Relay(request_response::Event::Message {
                peer,
                message,
                ..
            })) => match message {
                request_response::Message::Request {
                    request, channel, ..
                } => self.on_relay_request(peer, request, channel, done),
                request_response::Message::Response {
                    request_id,
                    response,
                } => self.relay.answered(request_id, Ok(response)),
            },
            SwarmEvent::Behaviour(BehaviourEvent::Witness(e)) => self.on_witness_event(e, done),
            SwarmEvent::Behaviour(BehaviourEvent::Catchup(
                request_response::Event::OutboundFailure {
                    peer, request_id, ..
                },
            )) => self.catchup.failed(Some(request_id), peer),
            SwarmEvent::Behaviour(BehaviourEvent::Relay(
                request_response::Event::OutboundFailure {
                    request_id, error, ..
                },
            )) => self
                .relay
                .answered(request_id, Err(format!("gateway unreachable: {error}"))),
            SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received {
                peer_id,
                info,
                ..
            })) => {
                if let Some(k) = self.swarm.behaviour_mut().kad.as_mut() {
                    for a in info.listen_addrs {
                        k.add_address(&peer_id, a);
                    }
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Kad(kad::Event::RoutingUpdated {
                peer, ..
            })) if !self.connected.contains(&peer) && peer != *self.swarm.local_peer_id() => {
                let _ = self.swarm.dial(peer);
            }
            _ => {}
        }
    }
}

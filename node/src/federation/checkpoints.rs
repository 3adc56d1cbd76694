//! The swarm side of witnessing (SPEC.md §8.3): at each period boundary this
//! node signs its checkpoint and pushes it to every connected peer with
//! `add-checkpoint` (retrying once from the size a witness says it holds);
//! it answers other nodes' pushes as a witness, gossips what it cosigned and
//! the evidence of equivocations, feeds checkpoint gossip to the
//! [`Book`](super::witnessing::Book), and keeps an equivocating gateway's
//! batches out of gossip and catch-up. The decisions are the book's; this
//! file only carries them out.

use std::collections::{HashMap, HashSet};

use libp2p::gossipsub::{MessageAcceptance, MessageId};
use libp2p::request_response::{self, OutboundRequestId};
use libp2p::PeerId;
use tokio::sync::mpsc::UnboundedSender;

use super::behaviour::checkpoint_topic;
use super::catchup::{CatchupRequest, CatchupResponse};
use super::witness::WitnessError;
use super::witnessing::{AddCheckpoint, AddCheckpointResponse, Book, Verdict};
use super::{Done, Federation};

/// The push state of this node's own checkpoints.
#[derive(Default)]
pub(super) struct Pushes {
    /// The public boundary of the last announcement.
    boundary: u64,
    /// The size and note announced last.
    own: Option<(u64, Vec<u8>)>,
    /// The size of this log each witness holds, as it last said.
    held: HashMap<PeerId, u64>,
    /// Peers that answered they do not cosign.
    not_witnesses: HashSet<PeerId>,
    /// Peers that refused the latest announcement (not retried this round).
    refused: HashSet<PeerId>,
    /// Requests in flight: to whom, and whether a retry after a conflict.
    pending: HashMap<OutboundRequestId, (PeerId, bool)>,
    /// Equivocations already counted in metrics.
    counted: usize,
}

/// What a witness's `add-checkpoint` answer and its gossip are, for the loop.
pub(super) type Answer = (
    request_response::ResponseChannel<AddCheckpointResponse>,
    AddCheckpointResponse,
    Option<Vec<u8>>,
);

/// Withholds an equivocating gateway's batches from a catch-up answer.
pub(super) fn withhold(
    book: &Book,
    request: &CatchupRequest,
    response: CatchupResponse,
) -> CatchupResponse {
    match (request, response) {
        (CatchupRequest::Fetch { origin, .. }, _) if book.is_blocked(origin) => {
            CatchupResponse::Refused(format!("{origin}'s gateway equivocated"))
        }
        (_, CatchupResponse::Summary(mut s)) => {
            s.retain(|o| !book.is_blocked(&o.origin));
            CatchupResponse::Summary(s)
        }
        (_, r) => r,
    }
}

/// Whether a catch-up fetch may go out (not for a blocked origin).
pub(super) fn may_fetch(book: &Book, request: &CatchupRequest) -> bool {
    !matches!(request, CatchupRequest::Fetch { origin, .. } if book.is_blocked(origin))
}

impl Federation {
    /// At a new public boundary: signs the checkpoint (off the loop) for
    /// [`Federation::announce_checkpoint`].
    pub(super) fn checkpoint_tick(&mut self, done: &UnboundedSender<Done>) {
        let boundary = self.core.public_snapshot().boundary;
        if boundary <= self.pushes.boundary {
            self.repush();
            return;
        }
        self.pushes.boundary = boundary;
        let core = self.core.clone();
        let done = done.clone();
        tokio::task::spawn_blocking(move || match core.log.checkpoint() {
            Ok((cp, note)) => {
                let _ = done.send(Done::Announce(cp.size, note));
            }
            Err(e) => tracing::error!("signing the checkpoint failed: {e}"),
        });
    }

    /// Pushes the latest checkpoint again to connected peers whose push was
    /// lost (a failed request, a connection that came up mid-round), until
    /// they cosign or refuse.
    fn repush(&mut self) {
        let Some((size, _)) = self.pushes.own else {
            return;
        };
        let busy: HashSet<PeerId> = self.pushes.pending.values().map(|(p, _)| *p).collect();
        let lagging: Vec<PeerId> = self
            .connected
            .iter()
            .filter(|p| {
                !busy.contains(p)
                    && !self.pushes.refused.contains(p)
                    && self.pushes.held.get(p).is_none_or(|h| *h < size)
            })
            .copied()
            .collect();
        for p in lagging {
            self.push_checkpoint(p, false);
        }
    }

    /// Starts the round of a newly signed checkpoint: pushes it to every peer.
    pub(super) fn announce_checkpoint(&mut self, size: u64, note: Vec<u8>) {
        self.book.announce(&note);
        self.pushes.own = Some((size, note));
        self.pushes.refused.clear();
        let peers: Vec<PeerId> = self.connected.iter().copied().collect();
        for p in peers {
            self.push_checkpoint(p, false);
        }
    }

    /// Pushes the latest checkpoint to `peer`, with the consistency proof from
    /// the size it holds (none if it holds nothing or already this size).
    pub(super) fn push_checkpoint(&mut self, peer: PeerId, retry: bool) {
        let Some((size, note)) = self.pushes.own.clone() else {
            return;
        };
        if self.pushes.not_witnesses.contains(&peer) {
            return;
        }
        let mut old = self.pushes.held.get(&peer).copied().unwrap_or(0);
        if old == size && !retry && size > 0 {
            return;
        }
        if old > size {
            old = 0;
        }
        let proof = if old > 0 && old < size {
            match self.core.log.prove_consistency(old, size) {
                Ok(p) => p,
                Err(e) => {
                    tracing::error!("consistency proof {old}..{size}: {e}");
                    return;
                }
            }
        } else {
            Vec::new()
        };
        let request: AddCheckpoint = self.book.request(old, proof, note);
        self.core
            .metrics
            .witness_request_bytes
            .inc_by(request.wire_len() as u64);
        let id = self
            .swarm
            .behaviour_mut()
            .witness
            .send_request(&peer, request);
        self.pushes.pending.insert(id, (peer, retry));
    }

    /// Events of the `add-checkpoint` protocol, both sides.
    pub(super) fn on_witness_event(
        &mut self,
        event: request_response::Event<AddCheckpoint, AddCheckpointResponse>,
        done: &UnboundedSender<Done>,
    ) {
        match event {
            request_response::Event::Message {
                message:
                    request_response::Message::Request {
                        request, channel, ..
                    },
                ..
            } => {
                let book = self.book.clone();
                let now = self.core.now();
                let done = done.clone();
                tokio::task::spawn_blocking(move || {
                    let (response, gossip) = book.add_checkpoint(&request, now);
                    let _ = done.send(Done::WitnessAnswer(Box::new((channel, response, gossip))));
                });
            }
            request_response::Event::Message {
                message:
                    request_response::Message::Response {
                        request_id,
                        response,
                    },
                ..
            } => self.witness_answered(request_id, response),
            request_response::Event::OutboundFailure { request_id, .. } => {
                self.pushes.pending.remove(&request_id);
            }
            _ => {}
        }
    }

    fn witness_answered(&mut self, id: OutboundRequestId, response: AddCheckpointResponse) {
        let Some((peer, retry)) = self.pushes.pending.remove(&id) else {
            return;
        };
        let size = self.pushes.own.as_ref().map_or(0, |(s, _)| *s);
        match response {
            AddCheckpointResponse::Cosigned(note) => match self.book.collect(&note) {
                Ok(_) => {
                    if let Some(s) = self.book.own_size(&note) {
                        self.pushes.held.insert(peer, s);
                    }
                }
                Err(e) => {
                    self.pushes.refused.insert(peer);
                    tracing::info!(%peer, "witness answered a bad cosigned note: {e}")
                }
            },
            AddCheckpointResponse::Conflict(latest) if !retry && latest < size => {
                self.pushes.held.insert(peer, latest);
                self.push_checkpoint(peer, true);
            }
            AddCheckpointResponse::Conflict(latest) => {
                self.pushes.refused.insert(peer);
                tracing::warn!(%peer, latest, size, "witness holds a size this log cannot prove")
            }
            AddCheckpointResponse::NotAWitness => {
                self.pushes.not_witnesses.insert(peer);
            }
            AddCheckpointResponse::Refused(why) => {
                self.pushes.refused.insert(peer);
                tracing::info!(%peer, "witness refused the checkpoint: {why}")
            }
        }
    }

    /// A witness's answer is ready: send it, gossip what it cosigned or caught.
    pub(super) fn witness_answer_ready(&mut self, answer: Answer) {
        let (channel, response, gossip) = answer;
        if let AddCheckpointResponse::Cosigned(note) = &response {
            self.core.metrics.cosignatures_made.inc();
            self.core
                .metrics
                .witness_request_bytes
                .inc_by(note.len() as u64);
        }
        let _ = self
            .swarm
            .behaviour_mut()
            .witness
            .send_response(channel, response);
        if let Some(g) = gossip {
            self.publish_witness(g);
        }
        self.count_equivocations();
    }

    /// A message on the checkpoint topic: checked off the loop by the book.
    pub(super) fn on_checkpoint_gossip(
        &mut self,
        id: MessageId,
        source: PeerId,
        data: Vec<u8>,
        done: &UnboundedSender<Done>,
    ) {
        self.core
            .metrics
            .witness_gossip_bytes
            .inc_by(data.len() as u64);
        let book = self.book.clone();
        let done = done.clone();
        tokio::task::spawn_blocking(move || {
            let r = book.on_gossip(&data);
            let _ = done.send(Done::CheckpointGossip(id, source, r));
        });
    }

    /// Reports the book's verdict on a checkpoint message to gossipsub
    /// (reject: the sender is penalised) and gossips new evidence.
    pub(super) fn checkpoint_gossip_checked(
        &mut self,
        id: MessageId,
        source: PeerId,
        result: Result<Verdict, WitnessError>,
    ) {
        let acceptance = match result {
            Ok(Verdict::Accept(evidence)) => {
                if let Some(e) = evidence {
                    self.publish_witness(e);
                }
                MessageAcceptance::Accept
            }
            Ok(Verdict::Ignore) => MessageAcceptance::Ignore,
            Err(e) => {
                self.core.metrics.gossip_rejected.inc();
                tracing::info!(peer = %source, "rejected checkpoint gossip: {e}");
                MessageAcceptance::Reject
            }
        };
        self.swarm
            .behaviour_mut()
            .gossipsub
            .report_message_validation_result(&id, &source, acceptance);
        self.count_equivocations();
    }

    fn publish_witness(&mut self, bytes: Vec<u8>) {
        self.core
            .metrics
            .witness_gossip_bytes
            .inc_by(bytes.len() as u64);
        if let Err(e) = self
            .swarm
            .behaviour_mut()
            .gossipsub
            .publish(checkpoint_topic(), bytes)
        {
            tracing::debug!("gossip publish checkpoint: {e}");
        }
    }

    fn count_equivocations(&mut self) {
        let all = self.book.equivocations();
        if all.len() > self.pushes.counted {
            let m = &self.core.metrics;
            m.log_equivocations
                .inc_by((all.len() - self.pushes.counted) as u64);
            for e in &all {
                m.set_equivocating(&e.origin);
            }
            self.pushes.counted = all.len();
        }
    }
}

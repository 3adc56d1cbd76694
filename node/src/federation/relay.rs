//! The oblivious relay protocol (SPEC.md §5.7): a relay node forwards a phone's
//! sealed upload to its origin's gateway over libp2p. The request carries the
//! origin and the sealed bytes, nothing about the phone; the answer is one of a
//! few fixed statuses, the same for real uploads and dummies.
//!
//! The protocol is a libp2p request-response behaviour (CBOR, in
//! [`super::behaviour`]); [`Relay`] is its state machine and [`Config`] its
//! settings; the swarm loop does what each [`Event`] asks.

use std::collections::hash_map::Entry;
use std::collections::HashMap;

use libp2p::request_response::OutboundRequestId;
use libp2p::{Multiaddr, PeerId};
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

/// Protocol name.
pub const RELAY_PROTOCOL: &str = "/traceless/upload-relay/1.0.0";
/// Largest request read (a sealed upload plus the origin and framing).
pub const MAX_RELAY_REQUEST_LEN: u64 = 4096;
/// Sealed uploads a gateway processes at once for one relay peer; more are
/// answered `Busy` at once (a relay cannot make the gateway queue without bound).
pub const MAX_INFLIGHT_PER_PEER: usize = 32;
/// Sealed uploads one relay forwards at once, over all phones (HTTP 503 beyond).
pub const MAX_RELAY_INFLIGHT: usize = 64;

/// A relayed sealed upload.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RelayRequest {
    /// Authority id the upload is for.
    pub origin: String,
    /// The sealed upload, exactly `SEALED_UPLOAD_LEN` bytes.
    #[serde(with = "serde_bytes")]
    pub sealed: Vec<u8>,
}

pub use crate::core::answer::RelayResponse;

/// Where a relayed upload's answer goes (to the phone's waiting HTTP request).
pub type Reply = oneshot::Sender<Result<RelayResponse, String>>;

/// The relay protocol's settings.
#[derive(Clone, Debug, Default)]
pub struct Config {
    /// Origin → its gateway's peer id and address (relay side).
    pub gateways: HashMap<String, (PeerId, Multiaddr)>,
}

/// What the swarm must do for a forwarded upload.
#[derive(Debug)]
pub enum Event {
    /// Send the request to the gateway now; hand the request id to
    /// [`Relay::sent`].
    Send(PeerId, RelayRequest, Reply),
    /// Dial the gateway; the request waits for [`Relay::connected`].
    Dial(PeerId, Multiaddr),
}

/// The relay protocol's state on both sides: on a relay, the uploads waiting
/// for their gateway's connection or answer; on a gateway, how many sealed
/// uploads each relay has in flight. No state holds anything about a phone.
#[derive(Default)]
pub struct Relay {
    config: Config,
    /// Waiting for the connection to their gateway (bounded by the HTTP side's
    /// in-flight limit; requests whose phone gave up are dropped).
    parked: Vec<(PeerId, RelayRequest, Reply)>,
    /// Sent, waiting for the gateway's answer.
    pending: HashMap<OutboundRequestId, Reply>,
    /// Gateway side: sealed uploads being processed per relay peer.
    inflight: HashMap<PeerId, usize>,
}

impl Relay {
    /// A relay state machine with `config`.
    pub fn new(config: Config) -> Self {
        Relay {
            config,
            ..Default::default()
        }
    }

    /// Relay side: forwards `sealed` for `origin`; `is_connected` says whether
    /// a peer is connected. An origin without a configured gateway is answered
    /// at once and asks nothing of the swarm.
    pub fn forward(
        &mut self,
        origin: String,
        sealed: Vec<u8>,
        reply: Reply,
        is_connected: impl Fn(&PeerId) -> bool,
    ) -> Option<Event> {
        let Some((gateway, addr)) = self.config.gateways.get(&origin).cloned() else {
            let _ = reply.send(Err(format!("this node relays no uploads for {origin:?}")));
            return None;
        };
        let request = RelayRequest { origin, sealed };
        if is_connected(&gateway) {
            return Some(Event::Send(gateway, request, reply));
        }
        self.parked.retain(|(_, _, r)| !r.is_closed());
        self.parked.push((gateway, request, reply));
        Some(Event::Dial(gateway, addr))
    }

    /// Relay side: `peer` connected; returns the uploads parked for it.
    pub fn connected(&mut self, peer: PeerId) -> Vec<Event> {
        let (ready, waiting) = std::mem::take(&mut self.parked)
            .into_iter()
            .partition(|(p, _, _)| *p == peer);
        self.parked = waiting;
        ready
            .into_iter()
            .map(|(p, request, reply)| Event::Send(p, request, reply))
            .collect()
    }

    /// Relay side: the request went out as `id`.
    pub fn sent(&mut self, id: OutboundRequestId, reply: Reply) {
        self.pending.insert(id, reply);
    }

    /// Relay side: the gateway answered `id`, or the request failed.
    pub fn answered(&mut self, id: OutboundRequestId, result: Result<RelayResponse, String>) {
        if let Some(reply) = self.pending.remove(&id) {
            let _ = reply.send(result);
        }
    }

    /// Gateway side: whether `peer` may have one more sealed upload processed
    /// (at most [`MAX_INFLIGHT_PER_PEER`] at once; beyond, it is answered busy).
    pub fn admit(&mut self, peer: PeerId) -> bool {
        let n = self.inflight.entry(peer).or_insert(0);
        if *n >= MAX_INFLIGHT_PER_PEER {
            return false;
        }
        *n += 1;
        true
    }

    /// Gateway side: one of `peer`'s uploads was answered. A relay with nothing
    /// in flight is forgotten, so the map stays as small as the relays busy now.
    pub fn finished(&mut self, peer: PeerId) {
        if let Entry::Occupied(mut n) = self.inflight.entry(peer) {
            *n.get_mut() = n.get().saturating_sub(1);
            if *n.get() == 0 {
                n.remove();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn relay_to(origin: &str, gateway: PeerId) -> Relay {
        let addr: Multiaddr = "/ip4/127.0.0.1/tcp/4001".parse().unwrap();
        Relay::new(Config {
            gateways: [(origin.to_owned(), (gateway, addr))].into(),
        })
    }

    #[test]
    fn an_upload_for_a_disconnected_gateway_waits_for_its_connection() {
        let gw = PeerId::random();
        let mut r = relay_to("a.health", gw);
        let (reply, _rx) = oneshot::channel();
        let e = r.forward("a.health".into(), vec![1], reply, |_| false);
        assert!(matches!(e, Some(Event::Dial(p, _)) if p == gw));
        assert!(r.connected(PeerId::random()).is_empty());
        let ready = r.connected(gw);
        assert!(
            matches!(ready.as_slice(), [Event::Send(p, req, _)] if *p == gw && req.sealed == [1])
        );
        assert!(r.connected(gw).is_empty(), "sent once");
    }

    #[test]
    fn an_unknown_origin_is_answered_at_once() {
        let mut r = relay_to("a.health", PeerId::random());
        let (reply, mut rx) = oneshot::channel();
        assert!(r
            .forward("b.health".into(), vec![1], reply, |_| true)
            .is_none());
        let answer = rx.try_recv().unwrap();
        assert!(matches!(answer, Err(e) if e.contains("b.health")));
    }

    #[test]
    fn a_relay_gets_at_most_its_inflight_share_and_is_forgotten_when_idle() {
        let mut r = Relay::default();
        let peer = PeerId::random();
        for _ in 0..MAX_INFLIGHT_PER_PEER {
            assert!(r.admit(peer));
        }
        assert!(!r.admit(peer), "one past the limit is busy");
        assert!(r.admit(PeerId::random()), "another relay is not affected");
        for _ in 0..MAX_INFLIGHT_PER_PEER {
            r.finished(peer);
        }
        assert!(!r.inflight.contains_key(&peer));
    }
}

//! Witnessing over the federation (SPEC.md §8.3), real nodes on loopback: relays
//! cosign the gateway's checkpoint at a boundary and the gateway serves their
//! cosignatures; a gateway that shows two relays two different checkpoints of
//! one size is caught by every honest relay before the next announcement
//! round, counted in metrics, shown on the page, and its new batches are no
//! longer forwarded; a forged checkpoint from a peer is rejected, penalises
//! the peer and leaves the witness state unchanged.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use libp2p::gossipsub::IdentTopic;
use traceless_node::federation::witnessing::{Binding, Gossip, CHECKPOINT_TOPIC};
use traceless_node::{ManualClock, RunningNode};
use traceless_protocol::ed25519_dalek::SigningKey;
use traceless_protocol::log::{log_origin, verify_checkpoint, Checkpoint, NoteKey};
use traceless_protocol::Clock as _;

/// A gateway whose known witnesses are `relays`, and relays that bootstrap from
/// the gateway and from each other.
async fn network(
    dir: &Path,
    clock: &ManualClock,
    relays: usize,
) -> (RunningNode, Vec<RunningNode>, Vec<NoteKey>) {
    let relay_dirs: Vec<_> = (0..relays).map(|i| dir.join(format!("r{i}"))).collect();
    let mut witnesses = Vec::new();
    for d in &relay_dirs {
        std::fs::create_dir_all(d).unwrap();
        let k = traceless_node::keys::deletion_log_key(d).unwrap();
        witnesses.push(NoteKey::witness_of_node(k.verifying_key()));
    }
    let mut g = gateway_config(&dir.join("gw"));
    g.witness.known = witnesses
        .iter()
        .map(|w| hex::encode(w.key.to_bytes()))
        .collect();
    let gw = start_node(g, clock).await;
    let mut nodes: Vec<RunningNode> = Vec::new();
    for d in &relay_dirs {
        let mut boot = gw.p2p_addrs.clone();
        for n in &nodes {
            boot.extend(n.p2p_addrs.iter().cloned());
        }
        nodes.push(start_relay(d, clock, &boot, 1).await);
    }
    for n in &nodes {
        assert!(
            wait_for_peers(n, relays).await,
            "relay not connected to all"
        );
    }
    (gw, nodes, witnesses)
}

fn gateway_log(gw: &RunningNode) -> NoteKey {
    gw.core.log.note_key()
}

/// The gateway's served checkpoint verifies with this many known witnesses.
fn served_witnesses(gw: &RunningNode, witnesses: &[NoteKey]) -> usize {
    let note = get(gw.http_addr, "/v1/log/checkpoint").body;
    verify_checkpoint(&note, &gateway_log(gw), witnesses)
        .map(|v| v.cosignatures.len())
        .unwrap_or(0)
}

/// A checkpoint of the gateway's log signed with its key (read from its data
/// dir) at `size` with a made-up root.
fn forged_by_gateway(dir: &Path, size: u64, salt: u8) -> Vec<u8> {
    let key = traceless_node::keys::deletion_log_key(&dir.join("gw")).unwrap();
    Checkpoint {
        origin: log_origin(&key.verifying_key().to_bytes()),
        size,
        root: [salt; 32],
    }
    .sign(&key)
}

fn gossip(note: Vec<u8>, binding: Option<Binding>) -> Vec<u8> {
    Gossip::Checkpoint { note, binding }.encode()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn relays_cosign_and_catch_a_gateway_that_shows_two_relays_two_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(NOW);
    let (gw, relays, witnesses) = network(dir.path(), &clock, 3).await;

    // The good case: after a boundary, the gateway serves its checkpoint with
    // the cosignatures of its relays (at least two; here all three).
    next_period(&gw.core, &clock);
    assert!(
        wait_until(Duration::from_secs(15), || served_witnesses(
            &gw, &witnesses
        ) >= 3)
        .await,
        "gateway checkpoint not cosigned by 2 relays: {}",
        String::from_utf8_lossy(&get(gw.http_addr, "/v1/log/checkpoint").body)
    );
    let page = get(gw.http_addr, "/").text();
    assert!(!page.contains("data-witnesses=\"0\""), "{page}");
    let origin = gw.core.log.origin().to_owned();
    for r in &relays {
        assert!(r.federation.witnessing().latest(&origin).is_some());
        assert_eq!(r.core.metrics.log_equivocations.get(), 0);
    }

    // The gateway equivocates: two notes of one size, different roots, one to
    // relay 0 and the other to relay 2 (each through a peer of its own).
    let size = gw.core.log.size().unwrap() + 5;
    let binding = Binding::sign(&authority(), &origin);
    let x = gossip(
        forged_by_gateway(dir.path(), size, 1),
        Some(binding.clone()),
    );
    let y = gossip(forged_by_gateway(dir.path(), size, 2), Some(binding));
    let mut to_0 = attacker(&relays[0].p2p_addrs[0], CHECKPOINT_TOPIC).await;
    let mut to_2 = attacker(&relays[2].p2p_addrs[0], CHECKPOINT_TOPIC).await;
    pump(&mut to_0, Duration::from_millis(500)).await;
    pump(&mut to_2, Duration::from_millis(500)).await;
    let topic = IdentTopic::new(CHECKPOINT_TOPIC);
    let announced_before = clock.now();
    to_0.behaviour_mut().publish(topic.clone(), x).unwrap();
    to_2.behaviour_mut().publish(topic, y).unwrap();
    // Rounds are announcement rounds: the clock stays put, so no node signs or
    // pushes a new checkpoint; each relay must catch the gateway from the
    // gossip of this one round (the other relay's note, or the evidence).
    let caught = |r: &RunningNode| r.core.metrics.log_equivocations.get() == 1;
    let all_caught = tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            if relays.iter().all(caught) {
                return;
            }
            tokio::select! {
                _ = pump(&mut to_0, Duration::from_millis(50)) => {}
                _ = pump(&mut to_2, Duration::from_millis(50)) => {}
            }
        }
    })
    .await;
    assert!(all_caught.is_ok(), "not every relay caught the gateway");
    assert_eq!(clock.now(), announced_before, "no new round was needed");
    for r in &relays {
        let list = get(r.http_addr, "/v1/witness/equivocations").json();
        let e = &list["equivocations"][0];
        assert_eq!(e["origin"], origin.as_str());
        assert_eq!(e["size"], size);
        assert_eq!(e["authority"], ORIGIN);
        // The evidence checks out: both notes verify under the gateway's key.
        let log = gateway_log(&gw);
        let a = verify_checkpoint(e["first"].as_str().unwrap().as_bytes(), &log, &[]).unwrap();
        let b = verify_checkpoint(e["second"].as_str().unwrap().as_bytes(), &log, &[]).unwrap();
        assert_eq!(a.checkpoint.size, b.checkpoint.size);
        assert_ne!(a.checkpoint.root, b.checkpoint.root);
        let page = get(r.http_addr, "/").text();
        assert!(page.contains("id=\"equivocation\""), "no alert on the page");
        assert!(page.contains("showed different people different versions"));
        assert!(r
            .core
            .metrics
            .render(&Default::default())
            .contains(&format!(
                "traceless_log_equivocating{{origin=\"{origin}\"}} 1"
            )));
        assert!(r.federation.witnessing().is_blocked(ORIGIN));
    }

    // The gateway's next batch reaches each relay but none forwards it.
    let accepted: Vec<u64> = relays
        .iter()
        .map(|r| r.core.metrics.gossip_accepted.get())
        .collect();
    let batch = signed_batch(&authority(), 1, TODAY - 1, 3, NOW);
    gw.core.ingest(&batch).unwrap();
    gw.core.release_due().unwrap();
    assert!(
        wait_until(Duration::from_secs(10), || relays.iter().all(|r| r
            .core
            .metrics
            .batches_stored
            .get()
            >= 1))
        .await,
        "the batch did not arrive"
    );
    for (r, before) in relays.iter().zip(accepted) {
        assert_eq!(
            r.core.metrics.gossip_accepted.get(),
            before,
            "a relay forwarded a batch of an equivocating gateway"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_forged_checkpoint_from_a_peer_is_rejected_and_leaves_the_witness_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(NOW);
    let (gw, relays, witnesses) = network(dir.path(), &clock, 1).await;
    next_period(&gw.core, &clock);
    assert!(
        wait_until(Duration::from_secs(15), || served_witnesses(
            &gw, &witnesses
        ) >= 1)
        .await
    );
    let origin = gw.core.log.origin().to_owned();
    let relay = &relays[0];
    let before = relay.federation.witnessing().latest(&origin);
    assert!(before.is_some());

    // Under the gateway's origin, signed by another key. (One is enough: the
    // rejection puts the peer past gossipsub's graylist threshold, so further
    // messages from it are dropped unread; the other error kinds are unit
    // tests in witnessing.rs and tests/witness.rs.)
    let (size, _) = before.unwrap();
    let forged = Checkpoint {
        origin: origin.clone(),
        size: size + 1,
        root: [9; 32],
    }
    .sign(&SigningKey::from_bytes(&[99; 32]));
    let mut rogue = attacker(&relay.p2p_addrs[0], CHECKPOINT_TOPIC).await;
    pump(&mut rogue, Duration::from_millis(500)).await;
    let rejected = relay.core.metrics.gossip_rejected.get();
    let topic = IdentTopic::new(CHECKPOINT_TOPIC);
    rogue
        .behaviour_mut()
        .publish(topic, gossip(forged, None))
        .unwrap();
    let rogue_id = *rogue.local_peer_id();
    let penalised = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            pump(&mut rogue, Duration::from_millis(100)).await;
            let score = relay.federation.peer_score(rogue_id).await.unwrap_or(0.0);
            if relay.core.metrics.gossip_rejected.get() > rejected && score < 0.0 {
                return;
            }
        }
    })
    .await;
    assert!(
        penalised.is_ok(),
        "the forged checkpoints were not rejected: {} rejected, score {:?}",
        relay.core.metrics.gossip_rejected.get() - rejected,
        relay.federation.peer_score(rogue_id).await
    );
    assert_eq!(relay.federation.witnessing().latest(&origin), before);
    assert!(relay.federation.witnessing().equivocations().is_empty());
    assert_eq!(relay.core.metrics.log_equivocations.get(), 0);
}

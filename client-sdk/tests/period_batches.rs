//! Phones accept period batches (SPEC.md §5.9) beside day batches, before any
//! gateway publishes them: the same uploads give the same exposures in either
//! form, a period batch is synced once, and a batch of the other version under
//! a synced sequence is refused as already synced.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use traceless_protocol::{
    Clock, ManualClock, PublishedBatch, SignedPeriodBatch, TrustList, WireError,
};
use traceless_sdk::{SdkError, UPLOAD_CODE_LEN};

const CODE: &[u8; UPLOAD_CODE_LEN] = b"0123456789abcdef-0123456789abcdef0123456789abcdef";

#[test]
fn the_same_uploads_give_the_same_exposures_in_period_and_day_batches() {
    let clock = ManualClock::new(at(DAY0, 600));
    let (mut alice, mut dave) = (phone(&clock), phone(&clock));
    let (mut by_day, mut by_period, mut stranger) = (phone(&clock), phone(&clock), phone(&clock));
    meet(&clock, &mut alice, &mut by_day, 30, -60);
    clock.set(at(DAY0, 600));
    meet(&clock, &mut alice, &mut by_period, 30, -60);
    clock.set(at(DAY0 + 1, 700));
    meet(&clock, &mut dave, &mut by_day, 20, -65);
    clock.set(at(DAY0 + 1, 700));
    meet(&clock, &mut dave, &mut by_period, 20, -65);

    clock.set(at(DAY0 + 2, 600));
    let alice_bundle = alice.diagnosis_upload(CODE, DAY0, &[]).unwrap();
    let dave_bundle = dave.diagnosis_upload(CODE, DAY0 + 1, &[]).unwrap();
    let mut days = Authority::new("test.health");
    let mut periods = Authority::new("test.health");
    let day_batches: Vec<Vec<u8>> = [&alice_bundle, &dave_bundle]
        .iter()
        .flat_map(|b| days.publish_upload(b, clock.now()))
        .collect();
    let period = periods.publish_period(&[&alice_bundle, &dave_bundle], clock.now());
    assert!(day_batches.len() >= 2, "keys of two days in day batches");

    days.trusted_by(&mut by_day);
    for b in &day_batches {
        by_day.sync_batch(b).unwrap();
    }
    periods.trusted_by(&mut by_period);
    periods.trusted_by(&mut stranger);
    let report = by_period.sync_batch(&period).unwrap();
    assert_eq!(report.new_windows, 2, "one window with each contact");
    assert_eq!(stranger.sync_batch(&period).unwrap().new_windows, 0);

    let summary = by_period.exposure_summary().unwrap();
    assert_eq!(summary, by_day.exposure_summary().unwrap());
    assert_eq!(
        summary.iter().map(|d| d.day).collect::<Vec<_>>(),
        vec![DAY0, DAY0 + 1]
    );
    assert!(stranger.exposure_summary().unwrap().is_empty());
    assert_eq!(by_period.cursor("test.health").unwrap(), Some(1));
}

#[test]
fn a_period_batch_is_synced_once_and_its_sequence_once_in_either_version() {
    let clock = ManualClock::new(at(DAY0, 600));
    let (mut alice, mut bob) = (phone(&clock), phone(&clock));
    meet(&clock, &mut alice, &mut bob, 20, -60);
    clock.set(at(DAY0 + 1, 600));
    let bundle = alice.diagnosis_upload(CODE, DAY0, &[]).unwrap();
    let mut authority = Authority::new("test.health");
    authority.trusted_by(&mut bob);
    let period = authority.publish_period(&[&bundle], clock.now());

    let mut tampered = period.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    match bob.sync_batch(&tampered) {
        Err(SdkError::Rejected(WireError::DigestMismatch(_))) => {}
        other => panic!("expected the days digest to fail, got {other:?}"),
    }
    assert!(bob.exposure_summary().unwrap().is_empty(), "nothing stored");

    assert_eq!(bob.sync_batch(&period).unwrap().new_windows, 1);
    let once = bob.exposure_summary().unwrap();
    assert!(matches!(
        bob.sync_batch(&period),
        Err(SdkError::AlreadySynced(_))
    ));
    // A day batch under the sequence the period batch had: an equivocation
    // the phone refuses as already synced, the first one counted.
    authority.next_sequence = 1;
    let day_batch = authority.publish_upload(&bundle, clock.now()).remove(0);
    assert!(matches!(
        bob.sync_batch(&day_batch),
        Err(SdkError::AlreadySynced(_))
    ));
    assert_eq!(bob.exposure_summary().unwrap(), once);
}

#[test]
fn a_period_batch_pruned_by_a_relay_still_syncs_its_remaining_days() {
    let clock = ManualClock::new(at(DAY0, 600));
    let (mut alice, mut bob) = (phone(&clock), phone(&clock));
    alice.advertisement().unwrap();
    clock.set(at(DAY0 + 3, 600));
    meet(&clock, &mut alice, &mut bob, 20, -60);
    clock.set(at(DAY0 + 4, 600));
    let bundle = alice.diagnosis_upload(CODE, DAY0 + 2, &[]).unwrap();
    let mut authority = Authority::new("test.health");
    authority.trusted_by(&mut bob);
    let full =
        SignedPeriodBatch::decode(&authority.publish_period(&[&bundle], clock.now())).unwrap();
    let mut trust = TrustList::new();
    trust.insert("test.health", 1, authority.key.verifying_key());
    let days = full.verify(&trust, clock.now()).unwrap().days;
    assert_eq!(
        days.iter().map(|d| d.day).collect::<Vec<_>>(),
        vec![DAY0, DAY0 + 3],
        "the days Alice's phone had a key for"
    );

    // Two weeks on, DAY0's keys expired; a relay serves the batch with
    // DAY0 replaced by its digest.
    let later = days[0].expires_at() + 1;
    clock.set(later);
    let pruned = full.pruned_at(later).unwrap().unwrap();
    assert_eq!(pruned.pruned.len(), 1);
    assert_eq!(
        PublishedBatch::decode(&pruned.encode()).unwrap().id(),
        full.id()
    );
    assert_eq!(bob.sync_batch(&pruned.encode()).unwrap().new_windows, 1);
    assert_eq!(bob.exposure_summary().unwrap()[0].day, DAY0 + 3);
}

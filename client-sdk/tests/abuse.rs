//! Advertisements are attacker-chosen: caps bound what they can make a phone store.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use traceless_protocol::{Clock, ManualClock};
use traceless_sdk::{Caps, SdkError};

#[test]
fn a_flood_of_tokens_in_one_interval_is_capped_and_later_tokens_still_count() {
    let clock = ManualClock::new(at(DAY0, 600));
    let mut p = phone(&clock);
    let caps = Caps::default();
    let mut dropped = 0;
    for i in 0..(caps.tokens_per_interval + 200) {
        let mut payload = [0u8; 20];
        payload[..4].copy_from_slice(&i.to_le_bytes());
        match p.record_sighting(&payload, -40, None, clock.now()) {
            Ok(()) => {}
            Err(SdkError::OverCapacity(why)) => {
                assert!(why.contains("interval"), "{why}");
                dropped += 1;
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(dropped, 200);
    assert_eq!(
        p.status().unwrap().scan_instances,
        caps.tokens_per_interval as usize
    );
    // A token already stored is still updated; a new interval accepts new tokens.
    p.record_sighting(&[0u8; 20], -40, None, clock.now() + 5)
        .unwrap();
    clock.advance(600);
    p.record_sighting(&[0xAAu8; 20], -40, None, clock.now())
        .unwrap();
}

#[test]
fn one_token_cannot_grow_its_record_without_bound() {
    let clock = ManualClock::new(at(DAY0, 0));
    let mut p = phone(&clock);
    let caps = Caps::default();
    let mut dropped = 0;
    // Heard again and again, each time after more than the bridged gap: each
    // sighting starts a run of its own (90 of them within the day).
    let step = traceless_protocol::MAX_SIGHTING_GAP_SECONDS + 1;
    for _ in 0..90 {
        match p.record_sighting(&[9u8; 20], -40, None, clock.now()) {
            Ok(()) => {}
            Err(SdkError::OverCapacity(_)) => dropped += 1,
            Err(e) => panic!("{e}"),
        }
        clock.advance(step);
    }
    assert_eq!(p.status().unwrap().scan_instances, caps.scans_per_token);
    assert_eq!(dropped, 90 - caps.scans_per_token);
    // Heard every two minutes instead, a token is one run however long it is
    // replayed.
    let start = at(DAY0 + 1, 0);
    for i in 0..300 {
        clock.set(start + i * 120);
        p.record_sighting(&[8u8; 20], -40, None, clock.now())
            .unwrap();
    }
}

#[test]
fn the_daily_cap_holds_across_intervals() {
    let clock = ManualClock::new(at(DAY0, 0));
    let caps = Caps {
        tokens_per_interval: 100,
        tokens_per_day: 250,
        scans_per_token: 4,
    };
    let config = traceless_sdk::SdkConfig {
        caps,
        ..Default::default()
    };
    let mut p = traceless_sdk::Sdk::in_memory(config, std::sync::Arc::new(clock.clone())).unwrap();
    let mut stored = 0;
    for i in 0..600u32 {
        if i % 100 == 0 && i > 0 {
            clock.advance(600);
        }
        let mut payload = [1u8; 20];
        payload[..4].copy_from_slice(&i.to_le_bytes());
        if p.record_sighting(&payload, -40, None, clock.now()).is_ok() {
            stored += 1;
        }
    }
    assert_eq!(stored, 250);
}

//! The phone's life: rotate, advertise, hear, sync, learn the exposure, upload.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use traceless_protocol::wire::UPLOAD_REQUEST_LEN;
use traceless_protocol::{
    day_of_unix, interval_number, Clock, DiagnosisKey, ExportFile, ExportSigner, ManualClock,
    Upload, WireError, INTERVALS_PER_DAY,
};
use traceless_sdk::{SdkError, UPLOAD_CODE_LEN};

const CODE: &[u8; UPLOAD_CODE_LEN] = b"0123456789abcdef-0123456789abcdef0123456789abcdef";

#[test]
fn advertisement_is_stable_within_an_interval_and_changes_across_intervals_and_days() {
    let clock = ManualClock::new(at(DAY0, 60));
    let mut p = phone(&clock);
    let a = p.advertisement().unwrap();
    clock.advance(300);
    assert_eq!(p.advertisement().unwrap(), a, "same interval, same token");
    clock.advance(600);
    let b = p.advertisement().unwrap();
    assert_ne!(b.rpi, a.rpi, "next interval, next token");

    // The TEK is the day's: the upload of that day carries the key that derives both.
    clock.set(at(DAY0 + 1, 10));
    let c = p.advertisement().unwrap();
    assert_ne!(c.rpi, b.rpi);
    let bundle = p.diagnosis_upload(CODE, DAY0, &[]).unwrap();
    let upload = Upload::decode(&bundle, clock.now()).unwrap();
    let day0: Vec<&DiagnosisKey> = upload
        .keys
        .iter()
        .filter(|k| k.rolling_start == DAY0 * INTERVALS_PER_DAY)
        .collect();
    assert_eq!(day0.len(), 1, "one key for day 0");
    assert_eq!(day0[0].rolling_period, INTERVALS_PER_DAY);
    assert_eq!(day0[0].tek.rpik().rpi(interval_number(at(DAY0, 60))), a.rpi);
    assert_eq!(day0[0].tek.rpik().rpi(interval_number(at(DAY0, 70))), b.rpi);
}

#[test]
fn a_close_contact_learns_day_and_minutes_and_a_stranger_learns_nothing() {
    let clock = ManualClock::new(at(DAY0, 600));
    let (mut alice, mut bob, mut carol) = (phone(&clock), phone(&clock), phone(&clock));
    meet(&clock, &mut alice, &mut bob, 30, -60);
    // Carol hears someone else entirely.
    let mut dave = phone(&clock);
    meet(&clock, &mut dave, &mut carol, 30, -60);

    clock.set(at(DAY0 + 1, 600));
    let mut authority = Authority::new("test.health");
    let bundle = alice.diagnosis_upload(CODE, DAY0, &[]).unwrap();
    let batches = authority.publish_upload(&bundle, clock.now());

    for p in [&mut bob, &mut carol] {
        authority.trusted_by(p);
        for b in &batches {
            p.sync_batch(b).unwrap();
        }
    }
    let bob_days = bob.exposure_summary().unwrap();
    assert_eq!(bob_days.len(), 1);
    assert_eq!(bob_days[0].day, DAY0);
    // 30 minutes of scans 4 minutes apart (8 scans, the last at 28 min) hear
    // 3 tokens of one key: one run of 28 minutes plus one 4-minute cadence.
    assert_eq!(bob_days[0].minutes, 28.0 + 4.0);
    assert!(
        bob_days[0].high_risk,
        "32 min at -60 dBm (52 dB) crosses 15 min"
    );
    assert!(carol.exposure_summary().unwrap().is_empty());
}

#[test]
fn attenuation_comes_from_the_senders_metadata_when_the_host_does_not_know_it() {
    let clock = ManualClock::new(at(DAY0, 600));
    let (mut alice, mut near, mut far) = (phone(&clock), phone(&clock), phone(&clock));
    for _ in 0..6 {
        let ad = alice.advertisement().unwrap().to_bytes();
        // Alice advertises TX power -8 dBm: -55 dBm is 47 dB, -80 dBm is 72 dB.
        near.record_sighting(&ad, -55, None, clock.now()).unwrap();
        far.record_sighting(&ad, -80, None, clock.now()).unwrap();
        clock.advance(300);
    }
    clock.set(at(DAY0 + 1, 0));
    let mut authority = Authority::new("test.health");
    let bundle = alice.diagnosis_upload(CODE, DAY0, &[]).unwrap();
    let batches = authority.publish_upload(&bundle, clock.now());
    for p in [&mut near, &mut far] {
        authority.trusted_by(p);
        for b in &batches {
            p.sync_batch(b).unwrap();
        }
    }
    let near = near.exposure_summary().unwrap();
    let far = far.exposure_summary().unwrap();
    assert_eq!(near[0].minutes, far[0].minutes);
    assert_eq!(
        near[0].weighted_minutes, near[0].minutes,
        "47 dB is the near bucket"
    );
    assert_eq!(far[0].weighted_minutes, 0.0, "72 dB is the far bucket");
}

#[test]
fn an_authority_with_a_malformed_origin_is_not_trusted() {
    let clock = ManualClock::new(at(DAY0, 600));
    let mut p = phone(&clock);
    let key = traceless_protocol::AuthorityKey::generate("de.rki", 1).verifying_key();
    for bad in ["Bad Origin", "", "DE.RKI"] {
        assert!(
            matches!(
                p.trust_authority(bad, 1, key),
                Err(SdkError::Rejected(WireError::InvalidField {
                    field: "origin",
                    ..
                }))
            ),
            "{bad:?}"
        );
    }
    assert!(p.trust_authority("de.rki", 1, key).is_ok());
}

#[test]
fn sightings_above_the_maximum_attenuation_make_no_window_and_no_minutes() {
    let clock = ManualClock::new(at(DAY0, 600));
    let (mut alice, mut bob) = (phone(&clock), phone(&clock));
    for _ in 0..6 {
        let ad = alice.advertisement().unwrap().to_bytes();
        // TX power -8 dBm heard at -82 dBm: 74 dB, above the 73-dB maximum.
        bob.record_sighting(&ad, -82, None, clock.now()).unwrap();
        clock.advance(300);
    }
    clock.set(at(DAY0 + 1, 0));
    let mut authority = Authority::new("test.health");
    authority.trusted_by(&mut bob);
    let bundle = alice.diagnosis_upload(CODE, DAY0, &[]).unwrap();
    let mut new_windows = 0;
    for b in authority.publish_upload(&bundle, clock.now()) {
        new_windows += bob.sync_batch(&b).unwrap().new_windows;
    }
    assert_eq!(new_windows, 0, "the key matched, but every scan is ignored");
    assert!(bob.exposure_summary().unwrap().is_empty());
}

#[test]
fn a_batch_is_rejected_when_unsigned_untrusted_forged_or_synced_twice() {
    let clock = ManualClock::new(at(DAY0, 600));
    let (mut alice, mut bob) = (phone(&clock), phone(&clock));
    meet(&clock, &mut alice, &mut bob, 20, -60);
    clock.set(at(DAY0 + 1, 600));
    let mut authority = Authority::new("test.health");
    let mut stranger = Authority::new("test.health");
    let bundle = alice.diagnosis_upload(CODE, DAY0, &[]).unwrap();
    let batch = authority.publish_upload(&bundle, clock.now()).remove(0);
    let forged_by_stranger = stranger.publish_upload(&bundle, clock.now()).remove(0);
    authority.trusted_by(&mut bob);

    let mut tampered = batch.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    for (bad, what) in [
        (&forged_by_stranger, "signature"),
        (&tampered, "signature"),
        (&b"not a batch".to_vec(), "protobuf"),
    ] {
        match bob.sync_batch(bad) {
            Err(SdkError::Rejected(e)) => assert!(e.to_string().contains(what), "{e}"),
            other => panic!("expected a rejection naming {what}, got {other:?}"),
        }
    }
    assert!(bob.exposure_summary().unwrap().is_empty(), "nothing stored");
    assert_eq!(bob.cursor("test.health").unwrap(), None);

    bob.sync_batch(&batch).unwrap();
    assert_eq!(bob.cursor("test.health").unwrap(), Some(1));
    let once = bob.exposure_summary().unwrap();
    assert!(matches!(
        bob.sync_batch(&batch),
        Err(SdkError::AlreadySynced(_))
    ));
    assert_eq!(
        bob.exposure_summary().unwrap(),
        once,
        "a replay adds nothing"
    );

    // The same key from another origin is counted once.
    let mut other = Authority::new("other.health");
    other.next_sequence = 7;
    other.trusted_by(&mut bob);
    let again = other.publish_upload(&bundle, clock.now()).remove(0);
    let r = bob.sync_batch(&again).unwrap();
    assert_eq!(r.new_windows, 0);
    assert_eq!(bob.exposure_summary().unwrap(), once);
    assert_eq!(bob.cursor("other.health").unwrap(), Some(7));
}

#[test]
fn an_expired_batch_is_rejected() {
    let clock = ManualClock::new(at(DAY0, 600));
    let mut alice = phone(&clock);
    alice.advertisement().unwrap();
    clock.set(at(DAY0 + 1, 0));
    let bundle = alice.diagnosis_upload(CODE, DAY0, &[]).unwrap();
    let mut authority = Authority::new("test.health");
    let batch = authority.publish_upload(&bundle, clock.now()).remove(0);
    clock.set(at(DAY0 + 16, 0));
    let mut bob = phone(&clock);
    authority.trusted_by(&mut bob);
    match bob.sync_batch(&batch) {
        Err(SdkError::Rejected(WireError::Expired { .. })) => {}
        other => panic!("expected expiry, got {other:?}"),
    }
}

#[test]
fn sightings_recorded_after_publication_do_not_match() {
    let clock = ManualClock::new(at(DAY0, 600));
    let (mut alice, mut bob) = (phone(&clock), phone(&clock));
    // Bob records Alice's token of 10:00 only at 10:40, after the key was published
    // at 10:30 (a replayed token).
    let ad = alice.advertisement().unwrap().to_bytes();
    clock.set(at(DAY0, 630));
    let bundle = alice.diagnosis_upload(CODE, DAY0, &[]).unwrap();
    let mut authority = Authority::new("test.health");
    let batch = authority.publish_upload(&bundle, clock.now()).remove(0);
    clock.set(at(DAY0, 640));
    bob.record_sighting(&ad, -50, None, clock.now()).unwrap();
    authority.trusted_by(&mut bob);
    bob.sync_batch(&batch).unwrap();
    assert!(bob.exposure_summary().unwrap().is_empty());
}

#[test]
fn after_an_upload_the_phone_broadcasts_a_fresh_key() {
    let clock = ManualClock::new(at(DAY0, 600));
    let mut alice = phone(&clock);
    let before = alice.advertisement().unwrap();
    let bundle = alice.diagnosis_upload(CODE, DAY0, &[]).unwrap();
    let after = alice.advertisement().unwrap();
    assert_ne!(before.rpi, after.rpi, "switched within the same interval");
    let upload = Upload::decode(&bundle, clock.now()).unwrap();
    assert_eq!(upload.keys.len(), 1);
    let published = upload.keys[0].clone();
    let now = interval_number(clock.now());
    assert_eq!(
        published.rolling_start + published.rolling_period,
        now + 1,
        "ends now"
    );
    for i in now..DAY0 * INTERVALS_PER_DAY + INTERVALS_PER_DAY {
        assert_ne!(published.tek.rpik().rpi(i), after.rpi);
    }
    clock.advance(600);
    let later = alice.advertisement().unwrap();
    assert_ne!(
        published.tek.rpik().rpi(interval_number(clock.now())),
        later.rpi
    );
}

#[test]
fn upload_bundles_have_one_length_honour_exclusions_and_the_infectious_window() {
    let clock = ManualClock::new(at(DAY0, 0));
    let mut p = phone(&clock);
    for d in 0..10 {
        clock.set(at(DAY0 + d, 600));
        p.advertisement().unwrap();
    }
    let today = DAY0 + 9;
    let onset = DAY0 + 5;
    let bundle = p.diagnosis_upload(CODE, onset, &[DAY0 + 6]).unwrap();
    let dummy = p.dummy_upload().unwrap();
    assert_eq!(bundle.len(), UPLOAD_REQUEST_LEN);
    assert_eq!(dummy.len(), UPLOAD_REQUEST_LEN);
    let real = Upload::decode(&bundle, clock.now()).unwrap();
    let days: Vec<u32> = real.keys.iter().map(|k| k.rolling_start / 144).collect();
    // Two days before onset through today, without the excluded day.
    assert_eq!(
        days,
        vec![DAY0 + 3, DAY0 + 4, DAY0 + 5, DAY0 + 7, DAY0 + 8, today]
    );
    let dso: Vec<i8> = real.keys.iter().map(|k| k.days_since_onset).collect();
    assert_eq!(dso, vec![-2, -1, 0, 2, 3, 4]);
    assert!(!real.dummy);
    let dummy = Upload::decode(&dummy, clock.now()).unwrap();
    assert!(dummy.dummy && dummy.keys.is_empty());
    assert_eq!(dummy.upload_code.len(), CODE.len());

    let all_excluded: Vec<u32> = (DAY0..=today).collect();
    assert!(matches!(
        p.diagnosis_upload(CODE, onset, &all_excluded),
        Err(SdkError::InvalidArgument(_))
    ));
    assert!(matches!(
        p.diagnosis_upload(CODE, today + 1, &[]),
        Err(SdkError::InFuture { .. })
    ));
}

#[test]
fn dummy_uploads_follow_a_poisson_schedule_of_the_configured_rate() {
    let n = 20_000;
    let mean_days = (0..n)
        .map(|_| traceless_sdk::poisson_gap_seconds(&mut rand::rngs::OsRng, 0.2) as f64 / 86_400.0)
        .sum::<f64>()
        / n as f64;
    // Mean gap 5 days; the standard error of the mean of 20,000 draws is 0.035 days.
    assert!((mean_days - 5.0).abs() < 0.2, "mean gap {mean_days} days");

    let clock = ManualClock::new(at(DAY0, 0));
    let mut p = phone(&clock);
    let first = p.next_dummy_upload_at().unwrap();
    assert!(first > clock.now());
    assert_eq!(
        p.next_dummy_upload_at().unwrap(),
        first,
        "stable until used"
    );
    clock.set(first);
    p.dummy_upload().unwrap();
    assert!(
        p.next_dummy_upload_at().unwrap() > first,
        "drawn anew after use"
    );
}

#[test]
fn gaen_export_files_sync_like_batches() {
    use traceless_protocol::p256::ecdsa::SigningKey;
    let clock = ManualClock::new(at(DAY0, 600));
    let (mut alice, mut bob) = (phone(&clock), phone(&clock));
    meet(&clock, &mut alice, &mut bob, 20, -60);
    clock.set(at(DAY0 + 1, 600));
    let bundle = alice.diagnosis_upload(CODE, DAY0, &[]).unwrap();
    let keys = Upload::decode(&bundle, clock.now()).unwrap().keys;
    let signer = SigningKey::random(&mut rand::rngs::OsRng);
    let other = SigningKey::random(&mut rand::rngs::OsRng);
    let export = ExportFile {
        start_timestamp: at(DAY0, 0),
        end_timestamp: clock.now(),
        region: "DE".into(),
        batch_num: 1,
        batch_size: 1,
        signer: ExportSigner {
            key_id: "262".into(),
            key_version: "v1".into(),
        },
        keys,
    };
    let zip = export.to_zip(&signer);
    bob.trust_export_key(*other.verifying_key());
    assert!(matches!(bob.sync_export(&zip), Err(SdkError::Rejected(_))));
    bob.trust_export_key(*signer.verifying_key());
    let r = bob.sync_export(&zip).unwrap();
    assert_eq!(r.new_windows, 1);
    assert!(matches!(
        bob.sync_export(&zip),
        Err(SdkError::AlreadySynced(_))
    ));
    assert_eq!(bob.exposure_summary().unwrap()[0].day, DAY0);
}

#[test]
fn malformed_and_mistimed_sightings_get_clear_errors_and_store_nothing() {
    let clock = ManualClock::new(at(DAY0 + 20, 600));
    let mut p = phone(&clock);
    let now = clock.now();
    assert!(matches!(
        p.record_sighting(&[0u8; 19], -60, None, now),
        Err(SdkError::Advertisement(19))
    ));
    assert!(matches!(
        p.record_sighting(&[0u8; 21], -60, None, now),
        Err(SdkError::Advertisement(21))
    ));
    assert!(matches!(
        p.record_sighting(&[1u8; 20], -60, None, now + 3600),
        Err(SdkError::InFuture { .. })
    ));
    assert!(matches!(
        p.record_sighting(&[1u8; 20], -60, None, now - 15 * 86_400),
        Err(SdkError::TooOld { .. })
    ));
    assert_eq!(p.status().unwrap().scan_instances, 0);
    p.record_sighting(&[1u8; 20], -60, None, now - 14 * 86_400)
        .unwrap();
    assert_eq!(p.status().unwrap().scan_instances, 1);
    assert_eq!(day_of_unix(now), DAY0 + 20);
}

/// The SDK keeps the decrypted, indexed sightings between syncs: a sighting
/// recorded after a sync must be in what the next sync matches.
#[test]
fn a_sighting_recorded_after_a_sync_is_matched_by_the_next_sync() {
    let clock = ManualClock::new(at(DAY0, 8 * 60));
    let (mut alice, mut bob, mut carol, mut dave) =
        (phone(&clock), phone(&clock), phone(&clock), phone(&clock));
    dave.advertisement().unwrap();
    clock.set(at(DAY0, 9 * 60));
    meet(&clock, &mut carol, &mut bob, 20, -60);

    // A first sync (Dave's keys, not heard) loads Bob's sightings.
    clock.set(at(DAY0, 10 * 60));
    let mut authority = Authority::new("test.health");
    authority.trusted_by(&mut bob);
    let bundle = dave.diagnosis_upload(CODE, DAY0, &[]).unwrap();
    for batch in authority.publish_upload(&bundle, clock.now()) {
        assert_eq!(bob.sync_batch(&batch).unwrap().new_windows, 0);
    }

    // Then Bob hears Alice, and Alice's key is published the same day.
    clock.set(at(DAY0, 10 * 60 + 10));
    meet(&clock, &mut alice, &mut bob, 20, -60);
    clock.set(at(DAY0, 11 * 60));
    let bundle = alice.diagnosis_upload(CODE, DAY0, &[]).unwrap();
    let batches = authority.publish_upload(&bundle, clock.now());
    assert_eq!(batches.len(), 1, "Alice has keys of today only");
    assert_eq!(bob.sync_batch(&batches[0]).unwrap().new_windows, 1);
    let days = bob.exposure_summary().unwrap();
    assert_eq!(days.len(), 1);
    assert_eq!(days[0].day, DAY0);
    assert!(days[0].minutes >= 20.0, "{days:?}");
}

/// A day shredded after the sightings were loaded is gone from what later
/// syncs match, even for a batch that still verifies in its last second.
#[test]
fn a_day_shredded_after_a_sync_is_not_matched_by_the_next_sync() {
    let clock = ManualClock::new(at(DAY0, 10 * 60));
    let (mut alice, mut bob) = (phone(&clock), phone(&clock));
    meet(&clock, &mut alice, &mut bob, 30, -60);
    let day0_scans = bob.status().unwrap().scan_instances;
    clock.set(at(DAY0 + 1, 10 * 60));
    meet(&clock, &mut alice, &mut bob, 30, -60);
    let day1_scans = bob.status().unwrap().scan_instances - day0_scans;
    assert!(day0_scans > 0 && day1_scans > 0);

    clock.set(at(DAY0 + 2, 10 * 60));
    let bundle = alice.diagnosis_upload(CODE, DAY0, &[]).unwrap();
    let mut authority = Authority::new("test.health");
    authority.trusted_by(&mut bob);
    let keys = Upload::decode(&bundle, clock.now()).unwrap().keys;
    let mut batch_of = |day: u32| {
        let of_day: Vec<DiagnosisKey> = keys
            .iter()
            .filter(|k| k.rolling_start / INTERVALS_PER_DAY == day)
            .cloned()
            .collect();
        authority.batch(of_day, clock.now())
    };
    let (day0_batch, day1_batch) = (batch_of(DAY0), batch_of(DAY0 + 1));

    // The last day on which day 0 is kept: a sync loads both days' sightings.
    clock.set(at(DAY0 + 14, 12 * 60));
    assert_eq!(
        bob.status().unwrap().scan_instances,
        day0_scans + day1_scans
    );
    assert_eq!(bob.sync_batch(&day1_batch).unwrap().new_windows, 1);

    // Midnight: day 0 is shredded. Its batch still verifies for this one second,
    // and must find nothing: the sightings of day 0 are gone, also from memory.
    clock.set(at(DAY0 + 15, 0));
    let report = bob.sync_batch(&day0_batch).unwrap();
    assert_eq!(report.new_windows, 0);
    let status = bob.status().unwrap();
    assert!(!status.days_kept.contains(&DAY0));
    assert_eq!(status.scan_instances, day1_scans);
    let days: Vec<u32> = bob
        .exposure_summary()
        .unwrap()
        .iter()
        .map(|d| d.day)
        .collect();
    assert_eq!(days, [DAY0 + 1]);
}

//! The filter form (SPEC.md §5.8) on the phone: a patient uploads chosen
//! intervals, a gateway (here, the test) folds their entries into a signed day
//! filter, and a phone that heard the patient probes its sightings against it.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use common::*;
use rand::RngCore;
use traceless_protocol::ed25519_dalek::Signer;
use traceless_protocol::filter::{
    entry_publishable, filter_entries, FILTER_HASHES, FILTER_SEED_LEN, INTERVAL_MASK_LEN,
};
use traceless_protocol::token::TokenIssueRequest;
use traceless_protocol::wire::UPLOAD_REQUEST_LEN;
use traceless_protocol::{
    day_of_interval, day_start_interval, interval_number, interval_start_seconds, AuthorityKey,
    Clock, DayFilter, DiagnosisKey, EntryFilter, FilterEntry, FilterParts, GatewaySealKey,
    IntervalMask, ManualClock, SignedFilter, Tek, TokenKey, Upload, UploadToken, WireError,
    FILTER_CONTEXT, SEALED_UPLOAD_LEN,
};
use traceless_sdk::{Sdk, SdkConfig, SdkError};

const ORIGIN: &str = "filter.health";
const CODE: &[u8] = b"0123456789abcdef-0123456789abcdef0123456789abcdef";

/// 09:00-09:30 of DAY0 (visit A) and 14:00-14:30 (visit B), in minutes of the day.
const VISIT_A: (u64, u64) = (540, 570);
const VISIT_B: (u64, u64) = (840, 870);

/// Every listener hears `speaker` every 4 minutes for `minutes` from now.
fn hear(clock: &ManualClock, speaker: &mut Sdk, listeners: &mut [&mut Sdk], minutes: u64) {
    let end = clock.now() + minutes * 60;
    while clock.now() < end {
        let ad = speaker.advertisement().unwrap();
        for l in listeners.iter_mut() {
            l.record_sighting(&ad.to_bytes(), -60, None, clock.now())
                .unwrap();
        }
        clock.advance(240);
    }
}

/// What a gateway does with a filter-form upload: the entries of `day` that
/// `keep` lets through, folded into a filter under a fresh seed and signed.
fn day_filter(
    authority: &AuthorityKey,
    upload: &Upload,
    day: u32,
    revision: u64,
    created_at: u64,
    keep: impl Fn(u32) -> bool,
) -> Vec<u8> {
    assert_eq!(upload.filter_intervals.len(), upload.keys.len());
    let mut entries: Vec<FilterEntry> = upload
        .keys
        .iter()
        .zip(&upload.filter_intervals)
        .flat_map(|(k, m)| filter_entries(k, m))
        .filter(|&(i, _)| day_of_interval(i) == day && keep(i))
        .map(|(_, e)| e)
        .collect();
    entries.sort_unstable();
    entries.dedup();
    let mut seed = [0u8; FILTER_SEED_LEN];
    rand::thread_rng().fill_bytes(&mut seed);
    DayFilter {
        origin: authority.origin.clone(),
        day,
        revision,
        created_at,
        filter: EntryFilter::build(&entries, seed).unwrap(),
    }
    .sign(authority)
    .unwrap()
    .encode()
}

/// What a node serves for one part: a `FilterParts` of that part alone.
fn one(part: &[u8]) -> Vec<u8> {
    FilterParts {
        parts: vec![part.to_vec()],
    }
    .encode()
}

/// A filter of every DAY0 entry of `upload` that a gateway may publish at `now`.
fn publish(authority: &AuthorityKey, upload: &Upload, revision: u64, now: u64) -> Vec<u8> {
    day_filter(authority, upload, DAY0, revision, now, |i| {
        entry_publishable(i, now)
    })
}

fn trusting(clock: &ManualClock, authority: &AuthorityKey) -> Sdk {
    let mut p = phone(clock);
    p.trust_authority(
        &authority.origin,
        authority.key_id,
        authority.verifying_key(),
    )
    .expect("valid origin");
    p
}

fn minutes(p: &mut Sdk) -> f64 {
    p.exposure_summary()
        .unwrap()
        .iter()
        .map(|d| d.minutes)
        .sum()
}

#[test]
fn a_phone_matches_the_chosen_intervals_and_not_the_excluded_ones() {
    let clock = ManualClock::new(at(DAY0, VISIT_A.0));
    let authority = AuthorityKey::generate(ORIGIN, 1);
    let mut alice = phone(&clock);
    let mut bob = trusting(&clock, &authority); // visits A and B
    let mut erin = trusting(&clock, &authority); // visit A only
    let mut carol = trusting(&clock, &authority); // visit B only
    hear(&clock, &mut alice, &mut [&mut bob, &mut erin], 30);
    clock.set(at(DAY0, VISIT_B.0));
    hear(&clock, &mut alice, &mut [&mut bob, &mut carol], 30);

    // The next morning Alice uploads, leaving visit B out.
    let now = at(DAY0 + 1, 8 * 60);
    clock.set(now);
    let excluded = (at(DAY0, VISIT_B.0), at(DAY0, VISIT_B.1));
    let without_b = alice
        .filter_diagnosis_upload(CODE, DAY0, &[excluded])
        .unwrap();
    let without_b = Upload::decode(&without_b, now).unwrap();
    let everything = alice.filter_diagnosis_upload(CODE, DAY0, &[]).unwrap();
    let everything = Upload::decode(&everything, now).unwrap();
    let filter_without_b = publish(&authority, &without_b, 1, now);
    let filter_everything = publish(&authority, &everything, 2, now);

    let report = bob.sync_filter(&one(&filter_without_b)).unwrap();
    assert!(report.keys > 100, "{report:?}");
    assert_eq!(report.new_windows, 1);
    assert_eq!(bob.filter_revision(ORIGIN, DAY0).unwrap(), Some(1));
    let summary = bob.exposure_summary().unwrap();
    assert_eq!(summary.len(), 1);
    assert_eq!(summary[0].day, DAY0);
    assert!(summary[0].minutes >= 25.0, "{summary:?}");

    // Bob's minutes are visit A's alone: Erin, who heard only A, gets the same
    // from the filter of everything.
    erin.sync_filter(&one(&filter_everything)).unwrap();
    assert_eq!(minutes(&mut erin), summary[0].minutes);

    // Carol heard only visit B: nothing from the filter that leaves it out,
    // exposure from the one that does not.
    assert_eq!(
        carol
            .sync_filter(&one(&filter_without_b))
            .unwrap()
            .new_windows,
        0
    );
    assert!(carol.exposure_summary().unwrap().is_empty());
    carol.sync_filter(&one(&filter_everything)).unwrap();
    assert!(minutes(&mut carol) >= 25.0);
}

#[test]
fn a_sighting_recorded_after_the_filter_was_created_does_not_match() {
    let clock = ManualClock::new(at(DAY0, 9 * 60));
    let authority = AuthorityKey::generate(ORIGIN, 1);
    let mut alice = phone(&clock);
    let mut eve = trusting(&clock, &authority);
    let mut frank = trusting(&clock, &authority);
    let ad = alice.advertisement().unwrap().to_bytes();
    clock.set(at(DAY0, 9 * 60 + 5));
    eve.record_sighting(&ad, -60, None, clock.now()).unwrap();
    // The same token replayed to Frank at 09:15, after the filter's creation
    // at 09:12 but within the drift tolerance of its interval.
    clock.set(at(DAY0, 9 * 60 + 15));
    frank.record_sighting(&ad, -60, None, clock.now()).unwrap();

    clock.set(at(DAY0, 9 * 60 + 20));
    let upload = alice.filter_diagnosis_upload(CODE, DAY0, &[]).unwrap();
    let upload = Upload::decode(&upload, clock.now()).unwrap();
    // A gateway that ignored the embargo, so that the token is still within drift.
    let filter = day_filter(&authority, &upload, DAY0, 1, at(DAY0, 9 * 60 + 12), |_| {
        true
    });
    assert_eq!(eve.sync_filter(&one(&filter)).unwrap().new_windows, 1);
    assert_eq!(minutes(&mut eve), 5.0);
    assert_eq!(frank.sync_filter(&one(&filter)).unwrap().new_windows, 0);
    assert!(frank.exposure_summary().unwrap().is_empty());
    assert_eq!(frank.filter_revision(ORIGIN, DAY0).unwrap(), Some(1));
}

#[test]
fn parts_add_up_in_any_order_to_one_filter_of_all_entries() {
    let clock = ManualClock::new(at(DAY0, VISIT_A.0));
    let authority = AuthorityKey::generate(ORIGIN, 1);
    let mut alice = phone(&clock);
    let mut bob = trusting(&clock, &authority);
    let mut carol = trusting(&clock, &authority);
    let mut dave = trusting(&clock, &authority);
    hear(
        &clock,
        &mut alice,
        &mut [&mut bob, &mut carol, &mut dave],
        30,
    );
    clock.set(at(DAY0, VISIT_B.0));
    hear(
        &clock,
        &mut alice,
        &mut [&mut bob, &mut carol, &mut dave],
        30,
    );
    let now = at(DAY0 + 1, 8 * 60);
    clock.set(now);
    let upload = alice.filter_diagnosis_upload(CODE, DAY0, &[]).unwrap();
    let upload = Upload::decode(&upload, now).unwrap();
    // Part 1 holds the morning's entries, part 2 (an hour later) only the rest:
    // disjoint, as a gateway builds them.
    let noon = day_start_interval(DAY0) + 72;
    let part1 = day_filter(&authority, &upload, DAY0, 1, now - 3600, |i| i < noon);
    let part2 = day_filter(&authority, &upload, DAY0, 2, now, |i| i >= noon);
    // One filter of every entry, the version-1 shape, for comparison.
    let whole = publish(&authority, &upload, 1, now);
    dave.sync_filter(&one(&whole)).unwrap();
    let want = dave.exposure_summary().unwrap();
    let one_visit = minutes(&mut dave) / 2.0;
    assert!(one_visit >= 25.0, "{want:?}");

    // Carol in order: part 2 adds visit B to part 1's visit A.
    let r = carol.sync_filter(&one(&part1)).unwrap();
    assert_eq!(r.new_windows, 1);
    assert_eq!(minutes(&mut carol), one_visit);
    assert_eq!(carol.filter_revision(ORIGIN, DAY0).unwrap(), Some(1));
    let r = carol.sync_filter(&one(&part2)).unwrap();
    assert!(r.keys > 0 && r.new_windows == 1, "{r:?}");
    assert_eq!(carol.filter_revision(ORIGIN, DAY0).unwrap(), Some(2));
    assert_eq!(carol.exposure_summary().unwrap(), want);

    // Bob gets part 2 first: he holds no prefix until part 1 arrives, and then
    // the same as Carol. A part held already is ignored.
    bob.sync_filter(&one(&part2)).unwrap();
    assert_eq!(bob.filter_revision(ORIGIN, DAY0).unwrap(), None);
    assert_eq!(minutes(&mut bob), one_visit);
    bob.sync_filter(&one(&part1)).unwrap();
    assert_eq!(bob.filter_revision(ORIGIN, DAY0).unwrap(), Some(2));
    assert_eq!(bob.exposure_summary().unwrap(), want);
    for again in [&part1, &part2] {
        let r = bob.sync_filter(&one(again)).unwrap();
        assert_eq!((r.keys, r.new_windows), (0, 0));
        assert_eq!(bob.filter_revision(ORIGIN, DAY0).unwrap(), Some(2));
        assert_eq!(bob.exposure_summary().unwrap(), want);
    }
}

#[test]
fn each_part_is_probed_only_with_sightings_recorded_before_it() {
    let clock = ManualClock::new(at(DAY0, 9 * 60));
    let authority = AuthorityKey::generate(ORIGIN, 1);
    let mut alice = phone(&clock);
    let mut eve = trusting(&clock, &authority);
    let mut frank = trusting(&clock, &authority);
    // Eve hears Alice's token of 09:00-09:10, Frank her token of 09:10-09:20.
    clock.set(at(DAY0, 9 * 60 + 5));
    let ad = alice.advertisement().unwrap().to_bytes();
    eve.record_sighting(&ad, -60, None, clock.now()).unwrap();
    clock.set(at(DAY0, 9 * 60 + 15));
    let ad = alice.advertisement().unwrap().to_bytes();
    frank.record_sighting(&ad, -60, None, clock.now()).unwrap();
    clock.set(at(DAY0, 9 * 60 + 20));
    let upload = alice.filter_diagnosis_upload(CODE, DAY0, &[]).unwrap();
    let upload = Upload::decode(&upload, clock.now()).unwrap();
    // Gateways that ignored the embargo: part 1 at 09:12 holds 09:00-09:10,
    // part 2 at 09:40 holds 09:10-09:20.
    let split = day_start_interval(DAY0) + 55;
    let part1 = day_filter(&authority, &upload, DAY0, 1, at(DAY0, 9 * 60 + 12), |i| {
        i < split
    });
    let part2 = day_filter(&authority, &upload, DAY0, 2, at(DAY0, 9 * 60 + 40), |i| {
        i >= split
    });
    // Frank's sighting (09:15) is after part 1 and before part 2, and its token
    // is in part 2; Eve's (09:05) is before both, and its token in part 1.
    assert_eq!(frank.sync_filter(&one(&part1)).unwrap().new_windows, 0);
    assert!(frank.exposure_summary().unwrap().is_empty());
    assert_eq!(frank.sync_filter(&one(&part2)).unwrap().new_windows, 1);
    assert_eq!(minutes(&mut frank), 5.0);
    assert_eq!(eve.sync_filter(&one(&part1)).unwrap().new_windows, 1);
    assert_eq!(minutes(&mut eve), 5.0);
}

#[test]
fn a_key_and_a_filter_of_the_same_sightings_count_once_in_either_order() {
    let clock = ManualClock::new(at(DAY0, VISIT_A.0));
    let authority = AuthorityKey::generate(ORIGIN, 1);
    let mut batches = Authority::new("keys.health");
    let mut alice = phone(&clock);
    let mut dave = trusting(&clock, &authority);
    let mut erin = trusting(&clock, &authority);
    batches.trusted_by(&mut dave);
    batches.trusted_by(&mut erin);
    hear(&clock, &mut alice, &mut [&mut dave, &mut erin], 30);
    let now = at(DAY0 + 1, 8 * 60);
    clock.set(now);
    let key_form = alice.diagnosis_upload(CODE, DAY0, &[]).unwrap();
    let batch = batches.publish_upload(&key_form, now).remove(0);
    let upload = alice.filter_diagnosis_upload(CODE, DAY0, &[]).unwrap();
    let filter = publish(&authority, &Upload::decode(&upload, now).unwrap(), 1, now);

    dave.sync_batch(&batch).unwrap();
    let key_only = dave.exposure_summary().unwrap();
    assert!(key_only[0].minutes >= 25.0);
    assert_eq!(dave.sync_filter(&one(&filter)).unwrap().new_windows, 1);
    assert_eq!(dave.exposure_summary().unwrap(), key_only);

    erin.sync_filter(&one(&filter)).unwrap();
    assert_eq!(minutes(&mut erin), key_only[0].minutes);
    erin.sync_batch(&batch).unwrap();
    // The key form's window wins: it knows the sender's TX power and risk level.
    assert_eq!(erin.exposure_summary().unwrap(), key_only);
}

/// Hand-encoded `FilterBody` (protobuf, fields 1-9), to build bodies the
/// protocol crate refuses to produce.
struct RawBody {
    day: u32,
    revision: u64,
    created_at: u64,
    entry_count: u64,
    hashes: u32,
    seed: Vec<u8>,
    bitmap: Vec<u8>,
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

impl RawBody {
    fn encode(&self, origin: &str) -> Vec<u8> {
        let mut out = Vec::new();
        let num = |out: &mut Vec<u8>, field: u64, v: u64| {
            if v != 0 {
                varint(out, field << 3);
                varint(out, v);
            }
        };
        num(&mut out, 1, 2);
        let bytes = |out: &mut Vec<u8>, field: u64, b: &[u8]| {
            varint(out, (field << 3) | 2);
            varint(out, b.len() as u64);
            out.extend_from_slice(b);
        };
        bytes(&mut out, 2, origin.as_bytes());
        num(&mut out, 3, u64::from(self.day));
        num(&mut out, 4, self.revision);
        num(&mut out, 5, self.created_at);
        num(&mut out, 6, self.entry_count);
        num(&mut out, 7, u64::from(self.hashes));
        bytes(&mut out, 8, &self.seed);
        bytes(&mut out, 9, &self.bitmap);
        out
    }

    fn signed(&self, key: &AuthorityKey) -> Vec<u8> {
        let body = self.encode(&key.origin);
        let message = [FILTER_CONTEXT, &[0], &body].concat();
        SignedFilter {
            body,
            key_id: key.key_id,
            signature: key.signing_key.sign(&message).to_bytes(),
        }
        .encode()
    }
}

#[test]
fn bad_filters_are_rejected_with_a_reason_and_change_nothing() {
    let clock = ManualClock::new(at(DAY0, VISIT_A.0));
    let authority = AuthorityKey::generate(ORIGIN, 1);
    let mut alice = phone(&clock);
    let mut bob = trusting(&clock, &authority);
    hear(&clock, &mut alice, &mut [&mut bob], 30);
    let now = at(DAY0 + 1, 8 * 60);
    clock.set(now);
    let upload = alice.filter_diagnosis_upload(CODE, DAY0, &[]).unwrap();
    let upload = Upload::decode(&upload, now).unwrap();
    let good = publish(&authority, &upload, 1, now);
    let signed = SignedFilter::decode(&good).unwrap();
    let parsed = signed.verify(&authority_trust(&authority), now).unwrap();

    let mut forged = signed.clone();
    forged.signature[10] ^= 1;
    let unsigned = SignedFilter {
        signature: [0; 64],
        ..signed.clone()
    };
    let rogue = AuthorityKey::generate("rogue.health", 1);
    let untrusted = publish(&rogue, &upload, 1, now);
    let body = |revision: u64, hashes: u32, bitmap: &[u8]| RawBody {
        day: DAY0,
        revision,
        created_at: now,
        entry_count: parsed.filter.entries(),
        hashes,
        seed: parsed.filter.seed().to_vec(),
        bitmap: bitmap.to_vec(),
    };
    let bitmap = parsed.filter.bitmap();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("junk", b"junk".to_vec(), "protobuf"),
        ("forged signature", forged.encode(), "signature"),
        ("unsigned", unsigned.encode(), "signature"),
        ("untrusted origin", untrusted, "not in the trust list"),
        (
            "wrong-size bitmap",
            body(5, FILTER_HASHES, &bitmap[1..]).signed(&authority),
            "bitmap",
        ),
        (
            "wrong hash count",
            body(5, FILTER_HASHES - 1, bitmap).signed(&authority),
            "hash",
        ),
    ];
    for (what, bytes, reason) in cases {
        match bob.sync_filter(&one(&bytes)) {
            Err(e @ SdkError::Rejected(_)) => {
                assert!(e.to_string().contains(reason), "{what}: {e}")
            }
            other => panic!("{what}: {other:?}"),
        }
        assert!(
            bob.filter_revision(ORIGIN, DAY0).unwrap().is_none(),
            "{what}"
        );
        assert!(bob.exposure_summary().unwrap().is_empty(), "{what}");
    }
    // A response with a good part and a forged one is rejected whole, and one
    // that is no `FilterParts` at all likewise.
    let mixed = FilterParts {
        parts: vec![good.clone(), forged.encode()],
    }
    .encode();
    for (what, bytes, reason) in [
        ("a forged part beside a good one", mixed, "signature"),
        ("no envelope", vec![0xff, 0xff], "filter parts"),
    ] {
        match bob.sync_filter(&bytes) {
            Err(e @ SdkError::Rejected(_)) => {
                assert!(e.to_string().contains(reason), "{what}: {e}")
            }
            other => panic!("{what}: {other:?}"),
        }
        assert!(bob.exposure_summary().unwrap().is_empty(), "{what}");
    }
    // A version-1 filter (the whole-day form) is refused by version.
    let mut v1 = body(5, FILTER_HASHES, bitmap).encode(ORIGIN);
    v1[1] = 1;
    let message = [FILTER_CONTEXT, &[0], &v1].concat();
    let v1 = SignedFilter {
        body: v1,
        key_id: authority.key_id,
        signature: authority.signing_key.sign(&message).to_bytes(),
    };
    match bob.sync_filter(&one(&v1.encode())) {
        Err(SdkError::Rejected(WireError::UnsupportedVersion { found: 1, .. })) => {}
        other => panic!("version 1: {other:?}"),
    }
    // After all that, the well-formed control of the hand-encoded bodies is
    // accepted.
    bob.sync_filter(&one(&body(5, FILTER_HASHES, bitmap).signed(&authority)))
        .unwrap();
    // Part 5 alone: no complete run from part 1, so the host asks for all.
    assert_eq!(bob.filter_revision(ORIGIN, DAY0).unwrap(), None);
    assert!(minutes(&mut bob) >= 25.0);

    // Past retention: the filter is refused.
    clock.set(at(DAY0 + 16, 0));
    match bob.sync_filter(&one(&good)) {
        Err(SdkError::Rejected(WireError::Expired { .. })) => {}
        other => panic!("expired: {other:?}"),
    }
    assert!(bob.exposure_summary().unwrap().is_empty());
    assert!(bob.filter_revision(ORIGIN, DAY0).unwrap().is_none());
}

fn authority_trust(a: &AuthorityKey) -> traceless_protocol::TrustList {
    let mut t = traceless_protocol::TrustList::new();
    t.insert(&a.origin, a.key_id, a.verifying_key());
    t
}

#[test]
fn filter_uploads_choose_ended_intervals_minus_the_excluded_ranges() {
    let clock = ManualClock::new(at(DAY0, 8 * 60));
    let mut alice = phone(&clock);
    hear(&clock, &mut alice, &mut [], 60);
    clock.set(at(DAY0 + 1, 10 * 60 + 5));
    let ad = alice.advertisement().unwrap();
    let now = clock.now();

    // Everything excluded, or a range backwards: refused, and the key in use is
    // not retired.
    let all = [(0, u64::MAX)];
    match alice.filter_diagnosis_upload(CODE, DAY0, &all) {
        Err(e @ SdkError::InvalidArgument(_)) => {
            assert!(e.to_string().contains("no interval left"), "{e}")
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        alice.filter_diagnosis_upload(CODE, DAY0, &[(now, now - 1)]),
        Err(SdkError::InvalidArgument(_))
    ));
    assert_eq!(alice.advertisement().unwrap(), ad);

    // 14:05-14:25 of DAY0 overlaps the intervals of 14:00, 14:10 and 14:20.
    let visit = (at(DAY0, 14 * 60 + 5), at(DAY0, 14 * 60 + 25));
    let bundle = alice.filter_diagnosis_upload(CODE, DAY0, &[visit]).unwrap();
    assert_eq!(bundle.len(), UPLOAD_REQUEST_LEN);
    let upload = Upload::decode(&bundle, now).unwrap();
    assert_eq!(upload.keys.len(), 2, "DAY0's key and today's");
    assert_eq!(upload.filter_intervals.len(), 2);
    let current = interval_number(now);
    for (k, m) in upload.keys.iter().zip(&upload.filter_intervals) {
        for j in 0..144 {
            let i = k.rolling_start + j;
            let (s, e) = (interval_start_seconds(i), interval_start_seconds(i + 1));
            let ended = i < current && j < k.rolling_period;
            let excluded = s < visit.1 && visit.0 < e;
            assert_eq!(m.get(j), ended && !excluded, "interval {i}");
        }
    }
    let day0 = &upload.filter_intervals[0];
    assert_eq!(upload.keys[0].rolling_start, day_start_interval(DAY0));
    assert!(day0.get(83) && !day0.get(84) && !day0.get(86) && day0.get(87));
    let today = &upload.filter_intervals[1];
    let start = upload.keys[1].rolling_start;
    assert_eq!(
        upload.keys[1].rolling_period,
        current + 1 - start,
        "retired"
    );
    assert!(today.get(current - 1 - start) && !today.get(current - start));

    // A whole day left out drops its key.
    let bundle = alice
        .filter_diagnosis_upload(CODE, DAY0, &[(at(DAY0, 0), at(DAY0 + 1, 0))])
        .unwrap();
    let upload = Upload::decode(&bundle, now).unwrap();
    assert!(!upload.keys.is_empty());
    assert!(upload
        .keys
        .iter()
        .all(|k| day_of_interval(k.rolling_start) == DAY0 + 1));
}

#[test]
fn a_sealed_filter_upload_spends_a_token_and_is_as_long_as_every_other_upload() {
    let clock = ManualClock::new(at(DAY0, 12 * 60));
    let mut alice = phone(&clock);
    for _ in 0..15 {
        alice.advertisement().unwrap();
        clock.advance(86_400);
    }
    clock.set(at(DAY0 + 14, 12 * 60));
    let gateway = GatewaySealKey::generate();
    let issuer = TokenKey::generate(1);
    assert!(matches!(
        alice.sealed_filter_upload(&gateway.public_bytes(), DAY0 + 2, &[]),
        Err(SdkError::InvalidArgument(_))
    ));
    let request = alice.token_request(1, 2, CODE).unwrap();
    let blinded = TokenIssueRequest::decode(&request).unwrap().blinded;
    let response = issuer.issue(&blinded).unwrap().encode();
    alice
        .token_finalize(&response, &issuer.public_key())
        .unwrap();

    let sealed = alice
        .sealed_filter_upload(&gateway.public_bytes(), DAY0 + 2, &[])
        .unwrap();
    assert_eq!(alice.tokens_available().unwrap(), 1);
    assert_eq!(sealed.len(), SEALED_UPLOAD_LEN);
    let dummy = alice.sealed_dummy_upload(&gateway.public_bytes()).unwrap();
    assert_eq!(dummy.len(), sealed.len());
    let plain = gateway.open(&sealed).unwrap();
    assert_eq!(plain.len(), UPLOAD_REQUEST_LEN);
    assert_eq!(plain.len(), gateway.open(&dummy).unwrap().len());
    let upload = Upload::decode(&plain, clock.now()).unwrap();
    assert!(issuer.verify(upload.token.as_ref().unwrap()));
    assert_eq!(upload.keys.len(), 15);
    let full = upload
        .filter_intervals
        .iter()
        .filter(|m| m.0 == [0xff; INTERVAL_MASK_LEN])
        .count();
    assert_eq!(full, 14, "every day but today is chosen whole");

    // The worst case the padding must hold: 15 keys with full masks and a token.
    let token = UploadToken {
        epoch: 1,
        input: [7; 32],
        output: [9; 64],
    };
    let worst = Upload {
        upload_code: Vec::new(),
        token: Some(token),
        keys: (0..15)
            .map(|d| DiagnosisKey {
                tek: Tek([d as u8; 16]),
                rolling_start: day_start_interval(DAY0 + d),
                rolling_period: 144,
                transmission_risk: 6,
                days_since_onset: 0,
            })
            .collect(),
        dummy: false,
        filter_intervals: vec![IntervalMask::all(144); 15],
        stays: Default::default(),
    };
    assert_eq!(worst.encode_padded().unwrap().len(), UPLOAD_REQUEST_LEN);
}

#[test]
fn filter_hits_and_revisions_expire_with_retention() {
    let clock = ManualClock::new(at(DAY0, VISIT_A.0));
    let authority = AuthorityKey::generate(ORIGIN, 1);
    let mut alice = phone(&clock);
    let mut bob = Sdk::in_memory(SdkConfig::default(), Arc::new(clock.clone())).unwrap();
    bob.trust_authority(ORIGIN, 1, authority.verifying_key())
        .expect("valid origin");
    hear(&clock, &mut alice, &mut [&mut bob], 30);
    let now = at(DAY0 + 1, 8 * 60);
    clock.set(now);
    let upload = alice.filter_diagnosis_upload(CODE, DAY0, &[]).unwrap();
    let filter = publish(&authority, &Upload::decode(&upload, now).unwrap(), 1, now);
    bob.sync_filter(&one(&filter)).unwrap();
    assert!(!bob.exposure_summary().unwrap().is_empty());
    clock.set(at(DAY0 + 15, 60));
    assert!(bob.expire().unwrap().contains(&DAY0));
    assert!(bob.exposure_summary().unwrap().is_empty());
    assert!(bob.filter_revision(ORIGIN, DAY0).unwrap().is_none());
    assert_eq!(bob.status().unwrap().unreadable_records, 0);
}

fn files_bytes(dir: &std::path::Path) -> Vec<u8> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(files_bytes(&p));
        } else {
            out.extend(std::fs::read(&p).unwrap());
        }
    }
    out
}

#[test]
fn filter_hits_and_revisions_are_sealed_on_disk_and_survive_reopening() {
    let tmp = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(at(DAY0, VISIT_A.0));
    let authority = AuthorityKey::generate(ORIGIN, 1);
    let master = traceless_sdk::MasterKey([4; 32]);
    let open = || {
        let mut p = Sdk::open(
            tmp.path(),
            &master,
            SdkConfig::default(),
            Arc::new(clock.clone()),
        )
        .unwrap();
        p.trust_authority(ORIGIN, 1, authority.verifying_key())
            .expect("valid origin");
        p
    };
    let mut alice = phone(&clock);
    let mut bob = open();
    let heard = alice.advertisement().unwrap();
    hear(&clock, &mut alice, &mut [&mut bob], 30);
    let now = at(DAY0 + 1, 8 * 60);
    clock.set(now);
    let upload = alice.filter_diagnosis_upload(CODE, DAY0, &[]).unwrap();
    let filter = publish(&authority, &Upload::decode(&upload, now).unwrap(), 1, now);
    bob.sync_filter(&one(&filter)).unwrap();
    let summary = bob.exposure_summary().unwrap();
    assert!(!summary.is_empty());
    drop(bob);

    let disk = files_bytes(tmp.path());
    let has = |needle: &[u8]| disk.windows(needle.len()).any(|w| w == needle);
    assert!(!has(&heard.rpi.0), "a hit token is on disk in clear");
    assert!(
        !has(ORIGIN.as_bytes()),
        "the filter's origin is on disk in clear"
    );
    let mut bob = open();
    assert_eq!(bob.filter_revision(ORIGIN, DAY0).unwrap(), Some(1));
    assert_eq!(bob.exposure_summary().unwrap(), summary);
}

//! Filter form (SPEC.md §5.8): uploads, signed day filters, probing, sizing.

#![allow(clippy::unwrap_used)]

use rand::{Rng, SeedableRng};
use traceless_protocol::filter::*;
use traceless_protocol::wire::*;
use traceless_protocol::*;

/// Noon, day 20,300.
const NOW: u64 = 20_300 * 86_400 + 12 * 3600;
const DAY: u32 = 20_299;

fn key(tek: u8, day: u32) -> DiagnosisKey {
    DiagnosisKey {
        tek: Tek([tek; 16]),
        rolling_start: day_start_interval(day),
        rolling_period: 144,
        transmission_risk: 5,
        days_since_onset: 0,
    }
}

fn day_filter(entries: &[FilterEntry], revision: u64, created_at: u64) -> DayFilter {
    DayFilter {
        origin: "example.health".into(),
        day: DAY,
        revision,
        created_at,
        filter: EntryFilter::build(entries, [revision as u8; 16]).unwrap(),
    }
}

fn trust(authority: &AuthorityKey) -> TrustList {
    let mut t = TrustList::new();
    t.insert("example.health", 1, authority.verifying_key());
    t
}

#[test]
fn a_full_filter_form_upload_with_a_token_fits_the_fixed_length() {
    let keys: Vec<DiagnosisKey> = (0..MAX_UPLOAD_KEYS as u32)
        .map(|d| key(d as u8, DAY - d))
        .collect();
    let upload = Upload {
        token: Some(UploadToken {
            epoch: u32::MAX,
            input: [0xff; 32],
            output: [0xff; 64],
        }),
        filter_intervals: keys.iter().map(|_| IntervalMask::all(144)).collect(),
        stays: Default::default(),
        keys,
        ..Default::default()
    };
    let bytes = upload.encode_padded().unwrap();
    assert_eq!(bytes.len(), UPLOAD_REQUEST_LEN);
    assert_eq!(Upload::decode(&bytes, NOW).unwrap(), upload);
}

#[test]
fn uploads_with_masks_outside_their_keys_are_rejected_whole() {
    let keys = vec![key(1, DAY), key(2, DAY - 1)];
    let mut half = IntervalMask::default();
    half.set(5, true);
    let encode = |masks: Vec<IntervalMask>, keys: Vec<DiagnosisKey>| {
        Upload {
            upload_code: b"code".to_vec(),
            keys,
            filter_intervals: masks,
            stays: Default::default(),
            ..Default::default()
        }
        .encode_padded()
        .unwrap()
    };
    let err = |bytes: Vec<u8>| Upload::decode(&bytes, NOW).unwrap_err().to_string();
    assert!(err(encode(vec![half], keys.clone())).contains("1 masks for 2 keys"));
    assert!(err(encode(vec![half, IntervalMask::default()], keys.clone())).contains("no interval"));
    let short = DiagnosisKey {
        rolling_period: 10,
        ..keys[0].clone()
    };
    let mut late = IntervalMask::default();
    late.set(10, true);
    assert!(err(encode(vec![late], vec![short])).contains("outside the key's rolling period"));
    // Today's key: interval 72 (noon) has not ended.
    let today = key(3, DAY + 1);
    let mut noon = IntervalMask::default();
    noon.set(71, true);
    assert!(Upload::decode(&encode(vec![noon], vec![today.clone()]), NOW).is_ok());
    noon.set(72, true);
    assert!(err(encode(vec![noon], vec![today])).contains("has not ended"));
    // The key form is unchanged.
    assert!(Upload::decode(&encode(vec![], keys), NOW).is_ok());
}

#[test]
fn signed_filters_verify_and_every_tampering_is_rejected() {
    let authority = AuthorityKey::generate("example.health", 1);
    let entries: Vec<FilterEntry> = filter_entries(&key(1, DAY), &IntervalMask::all(144))
        .into_iter()
        .map(|(_, e)| e)
        .collect();
    let created = NOW - 3600;
    let signed = day_filter(&entries, 2, created).sign(&authority).unwrap();
    let wire = signed.encode();
    let got = SignedFilter::decode(&wire)
        .unwrap()
        .verify(&trust(&authority), NOW)
        .unwrap();
    assert_eq!((got.day, got.revision, got.created_at), (DAY, 2, created));
    assert!(entries.iter().all(|e| got.filter.contains(e)));

    let verify = |s: &SignedFilter, now: u64| s.verify(&trust(&authority), now);
    let mut forged = signed.clone();
    forged.signature[0] ^= 1;
    assert_eq!(
        verify(&forged, NOW).unwrap_err(),
        WireError::BadSignature("filter")
    );
    let mut flipped = signed.clone();
    let last = flipped.body.len() - 1;
    flipped.body[last] ^= 0x80;
    assert!(verify(&flipped, NOW).is_err());
    let other = AuthorityKey::generate("example.health", 1);
    assert!(verify(&day_filter(&entries, 2, created).sign(&other).unwrap(), NOW).is_err());
    let stranger = AuthorityKey::generate("other.health", 1);
    let mut foreign = day_filter(&entries, 2, created);
    foreign.origin = "other.health".into();
    assert!(matches!(
        verify(&foreign.sign(&stranger).unwrap(), NOW),
        Err(WireError::UntrustedSigner { .. })
    ));
    // Past retention, too early for the day's embargo, from the future.
    assert!(matches!(
        verify(&signed, filter_expires_at(DAY) + 1),
        Err(WireError::Expired { .. })
    ));
    let early = interval_start_seconds(day_start_interval(DAY) + 12);
    assert!(verify(
        &day_filter(&entries, 1, early).sign(&authority).unwrap(),
        NOW
    )
    .unwrap_err()
    .to_string()
    .contains("created_at"));
    assert!(matches!(
        verify(
            &day_filter(&entries, 1, NOW + 3 * 3600)
                .sign(&authority)
                .unwrap(),
            NOW
        ),
        Err(WireError::TimeInFuture { .. })
    ));
    // Bodies whose parameters do not fit their bitmap: a different entry count,
    // hash count or seed length.
    let body = day_filter(&entries, 3, created).encode_body();
    let mutated = |f: &dyn Fn(&mut pb::FilterBody)| {
        let mut m = <pb::FilterBody as prost::Message>::decode(body.as_slice()).unwrap();
        f(&mut m);
        DayFilter::decode_body(&prost::Message::encode_to_vec(&m), NOW)
            .unwrap_err()
            .to_string()
    };
    assert!(mutated(&|m| m.entry_count = 100).contains("bitmap"));
    assert!(mutated(&|m| m.hashes = 20).contains("hash functions"));
    assert!(mutated(&|m| m.seed.push(0)).contains("seed"));
    assert!(mutated(&|m| m.bitmap.clear()).contains("bitmap"));
    assert!(mutated(&|m| m.version = 3).contains("version"));
    // Typed: a version-1 body (one whole-day filter of 40 hashes) is not a part,
    // and a part number past the most a day can have is refused.
    let decoded = |f: &dyn Fn(&mut pb::FilterBody)| {
        let mut m = <pb::FilterBody as prost::Message>::decode(body.as_slice()).unwrap();
        f(&mut m);
        DayFilter::decode_body(&prost::Message::encode_to_vec(&m), NOW)
    };
    assert!(matches!(
        decoded(&|m| m.version = 1),
        Err(WireError::UnsupportedVersion {
            found: 1,
            supported: 2,
            ..
        })
    ));
    assert!(matches!(
        decoded(&|m| m.revision = MAX_FILTER_PARTS + 1),
        Err(WireError::InvalidField {
            field: "revision",
            ..
        })
    ));
    assert!(matches!(
        decoded(&|m| m.revision = 0),
        Err(WireError::InvalidField {
            field: "revision",
            ..
        })
    ));
    assert!(decoded(&|m| m.revision = MAX_FILTER_PARTS).is_ok());
    assert!(matches!(
        decoded(&|m| m.hashes = 40),
        Err(WireError::InvalidField {
            field: "hashes",
            ..
        })
    ));
    assert!(matches!(
        SignedFilter::decode(&vec![0; MAX_SIGNED_FILTER_LEN + 1]),
        Err(WireError::Oversized { .. })
    ));
}

/// The envelope of several parts keeps each part's bytes exactly, in order;
/// an empty one is the empty body; anything not canonical or oversized is
/// refused by kind.
#[test]
fn filter_parts_carry_parts_byte_for_byte() {
    let authority = AuthorityKey::generate("example.health", 1);
    let entries: Vec<FilterEntry> = (0..5u8).map(|i| FilterEntry([i; 16])).collect();
    let signed: Vec<Vec<u8>> = (1..=3)
        .map(|r| {
            day_filter(&entries[..r as usize], r, 1_728_000_000 + r)
                .sign(&authority)
                .unwrap()
                .encode()
        })
        .collect();
    let parts = FilterParts {
        parts: signed.clone(),
    };
    let bytes = parts.encode();
    assert_eq!(FilterParts::decode(&bytes).unwrap().parts, signed);
    assert!(FilterParts::default().encode().is_empty());
    assert_eq!(FilterParts::decode(&[]).unwrap(), FilterParts::default());
    // An unknown field after the parts: not canonical.
    let mut odd = bytes.clone();
    odd.extend_from_slice(&[0x12, 0x01, 0x00]);
    assert!(matches!(
        FilterParts::decode(&odd),
        Err(WireError::NonCanonical("filter parts"))
    ));
    assert!(matches!(
        FilterParts::decode(&[0xff]),
        Err(WireError::Malformed { .. })
    ));
    assert!(matches!(
        FilterParts::decode(&vec![0; MAX_LIST_LEN + 1]),
        Err(WireError::Oversized { .. })
    ));
}

#[test]
fn probing_honours_drift_the_day_and_the_publication_time() {
    let patient = key(9, DAY);
    let mut mask = IntervalMask::default();
    mask.set(100, true);
    let i = patient.rolling_start + 100;
    let entries: Vec<FilterEntry> = filter_entries(&patient, &mask)
        .into_iter()
        .map(|(_, e)| e)
        .collect();
    let created = NOW - 60;
    let filter = day_filter(&entries, 1, created);
    let rpi = patient.tek.rpik().rpi(i);
    let heard = |rpi: Rpi, interval: u32| Observation {
        rpi,
        interval,
        attenuation_db: 50,
        duration_s: 300,
    };
    let observations = [
        heard(rpi, i),                               // 0: on time
        heard(rpi, i - 12),                          // 1: drift -12
        heard(rpi, i + 12),                          // 2: drift +12
        heard(rpi, i + 13),                          // 3: outside drift
        heard(patient.tek.rpik().rpi(i + 1), i + 1), // 4: an interval not chosen
        heard(Rpi([9; 16]), i),                      // 5: someone else
    ];
    let matched = probe_filter(&filter.filter, DAY, created, &observations);
    assert_eq!(matched, vec![0, 1, 2]);
    // Heard after publication: a replay, never a match.
    let replay = [heard(rpi, interval_number(created) + 1)];
    let late_entry_filter = day_filter(&entries, 1, created);
    assert!(probe_filter(&late_entry_filter.filter, DAY, created, &replay).is_empty());
    // A filter of another day does not cover the interval.
    assert!(probe_filter(&filter.filter, DAY - 1, created, &observations).is_empty());
    let windows = filter_windows(&observations, &matched);
    assert_eq!(windows.len(), 1);
    assert_eq!(windows[0].transmission_risk, FILTER_TRANSMISSION_RISK);
    let summary = RiskParameters::default().daily_summaries(&windows);
    assert_eq!(summary[0].minutes, 15.0);
    assert!(summary[0].high_risk);
}

/// The sizing of SPEC.md §5.8 holds on real filters: half the bits set, and no
/// false positive in 2,000,000 probes (expected 1.6 · 10^-6).
#[test]
fn filters_fill_half_their_bits_and_show_no_false_positives() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let entries: Vec<FilterEntry> = (0..20_000).map(|_| FilterEntry(rng.gen())).collect();
    let filter = EntryFilter::build(&entries, rng.gen()).unwrap();
    let ones: u32 = filter.bitmap().iter().map(|b| b.count_ones()).sum();
    let fill = f64::from(ones) / (filter.bitmap().len() * 8) as f64;
    assert!((0.49..0.515).contains(&fill), "fill {fill}");
    let false_positives = (0..2_000_000)
        .filter(|_| filter.contains(&FilterEntry(rng.gen())))
        .count();
    assert_eq!(false_positives, 0);
}

proptest::proptest! {
    /// `probe_filter` (one hash per token and interval) equals the definition of
    /// SPEC.md §5.8 applied observation by observation, for tokens heard several
    /// times around the day's edges and after publication.
    #[test]
    fn probing_equals_the_definition_observation_by_observation(
        heard in proptest::collection::vec((0u8..6, 0u32..200), 1..40),
        published in proptest::collection::vec((0u8..6, 0u32..200), 0..30),
        cutoff in 0u32..200,
    ) {
        let base = day_start_interval(DAY) - 30;
        let rpi = |t: u8| Rpi([t; 16]);
        let entries: Vec<FilterEntry> = published
            .iter()
            .map(|&(t, j)| FilterEntry::new(&rpi(t), base + j))
            .chain([FilterEntry([0xee; 16])])
            .collect();
        let filter = EntryFilter::build(&entries, [4; 16]).unwrap();
        let observations: Vec<Observation> = heard
            .iter()
            .map(|&(t, i)| Observation { rpi: rpi(t), interval: base + i, attenuation_db: 50, duration_s: 60 })
            .collect();
        let published_at = interval_start_seconds(base + cutoff);
        let day = day_start_interval(DAY)..day_start_interval(DAY) + 144;
        let expected: Vec<u32> = observations
            .iter()
            .enumerate()
            .filter(|(_, o)| o.interval < base + cutoff)
            .filter(|(_, o)| {
                day.clone().any(|j| {
                    o.interval.abs_diff(j) <= DRIFT_TOLERANCE_INTERVALS
                        && filter.contains(&FilterEntry::new(&o.rpi, j))
                })
            })
            .map(|(i, _)| i as u32)
            .collect();
        proptest::prop_assert_eq!(probe_filter(&filter, DAY, published_at, &observations), expected);
    }
}

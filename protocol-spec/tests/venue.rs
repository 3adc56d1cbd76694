//! Venue check-in (SPEC.md §12): QR validation, the trace with owner and
//! authority, trace security and entry binding, the managed variant, signed
//! warnings and the presence risk. Negative tests assert the error kind.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use prost::Message;
use traceless_protocol::venue::pb;
use traceless_protocol::venue::*;
use traceless_protocol::{AuthorityKey, GatewaySealKey, TrustList, WireError};

const BASE: &str = "https://traceless.example/c";
const DAY: u64 = 20_000 * 86_400;
const NOW: u64 = DAY + 86_400;

fn bakery() -> VenueDescription {
    VenueDescription::new(
        "Bäckerei Sonnenschein",
        "Hauptstr. 1, 10115 Berlin",
        1,
        30,
        180,
    )
}

struct World {
    authority: GatewaySealKey,
    venue: CreatedVenue,
}

fn world() -> World {
    let authority = GatewaySealKey::generate();
    let venue = create_venue(&bakery(), &authority.public_bytes()).expect("venue");
    World { authority, venue }
}

fn h(hour: u64, minute: u64) -> u64 {
    DAY + hour * 3600 + minute * 60
}

#[test]
fn entry_url_round_trips_and_carries_the_payload_after_the_fragment() {
    let w = world();
    let url = w.venue.entry.to_url(BASE);
    let (before, after) = url.split_once('#').expect("fragment");
    assert_eq!(before, "https://traceless.example/c?v=3");
    assert_eq!(
        URL_SAFE_NO_PAD.decode(after).expect("b64"),
        w.venue.entry.payload()
    );
    let parsed = EntryCode::from_url(&url).expect("parse");
    assert_eq!(parsed, w.venue.entry);
    assert_eq!(parsed.venue.description, "Bäckerei Sonnenschein");
    assert_eq!(parsed.kind, VenueKind::Basic);
}

fn payload_with(edit: impl FnOnce(&mut pb::QrCodePayload)) -> Vec<u8> {
    let w = world();
    let mut p = pb::QrCodePayload::decode(w.venue.entry.payload()).expect("decode");
    edit(&mut p);
    p.encode_to_vec()
}

fn country_with(edit: impl FnOnce(&mut pb::TracelessLocationData)) -> Vec<u8> {
    payload_with(|p| {
        let mut c = pb::TracelessLocationData::decode(p.country_data.as_slice()).expect("decode");
        edit(&mut c);
        p.country_data = c.encode_to_vec();
    })
}

#[test]
fn malformed_urls_are_refused_with_their_reason() {
    let url = world().venue.entry.to_url(BASE);
    let long = format!("{url}{}", "A".repeat(MAX_URL_LEN));
    assert!(matches!(
        EntryCode::from_url(&long),
        Err(VenueError::UrlTooLong { .. })
    ));
    let http = url.replacen("https://", "http://", 1);
    assert_eq!(
        EntryCode::from_url(&http),
        Err(VenueError::NotEntryUrl("not https"))
    );
    let no_frag = url.split('#').next().expect("head").to_string();
    assert_eq!(
        EntryCode::from_url(&no_frag),
        Err(VenueError::NotEntryUrl("no # fragment"))
    );
    let v9 = url.replacen("?v=3", "?v=9", 1);
    assert!(matches!(
        EntryCode::from_url(&v9),
        Err(VenueError::UnsupportedVersion {
            what: "entry URL",
            found: 9,
            supported: 3
        })
    ));
    assert_eq!(
        EntryCode::from_url(&format!("{BASE}?v=3#not*base64")),
        Err(VenueError::Base64)
    );
    assert!(matches!(
        EntryCode::from_url(&format!(
            "{BASE}?v=3#{}",
            URL_SAFE_NO_PAD.encode([0xff; 10])
        )),
        Err(VenueError::Malformed {
            what: "QRCodePayload",
            ..
        })
    ));
    assert!(matches!(
        EntryCode::from_payload(&vec![0u8; MAX_PAYLOAD_LEN + 1]),
        Err(VenueError::PayloadTooLong { .. })
    ));
}

#[test]
fn payload_fields_are_validated_like_cwa() {
    let text = |field: &'static str, fault| Err(VenueError::Text { field, fault });
    let mut cases: Vec<(Vec<u8>, Result<EntryCode, VenueError>)> = vec![
        (
            payload_with(|p| p.version = 2),
            Err(VenueError::UnsupportedVersion {
                what: "QRCodePayload",
                found: 2,
                supported: 3,
            }),
        ),
        (
            payload_with(|p| p.location_data.as_mut().expect("loc").version = 7),
            Err(VenueError::UnsupportedVersion {
                what: "TraceLocation",
                found: 7,
                supported: 1,
            }),
        ),
        (
            payload_with(|p| p.location_data = None),
            Err(VenueError::Missing("locationData")),
        ),
        (
            payload_with(|p| p.location_data.as_mut().expect("loc").description.clear()),
            text("description", TextFault::Empty),
        ),
        (
            payload_with(|p| p.location_data.as_mut().expect("loc").description = "x".repeat(101)),
            text("description", TextFault::TooLong(101)),
        ),
        (
            payload_with(|p| p.location_data.as_mut().expect("loc").address = "a\nb".into()),
            text("address", TextFault::NotOneLine),
        ),
        (
            payload_with(|p| {
                p.crowd_notifier_data
                    .as_mut()
                    .expect("cn")
                    .cryptographic_seed = vec![1; 16]
            }),
            Err(VenueError::Length {
                what: "cryptographicSeed",
                len: 16,
                expected: 32,
            }),
        ),
        (
            payload_with(|p| p.crowd_notifier_data.as_mut().expect("cn").public_key = vec![1; 95]),
            Err(VenueError::Length {
                what: "publicKey",
                len: 95,
                expected: 96,
            }),
        ),
        (
            payload_with(|p| {
                p.crowd_notifier_data.as_mut().expect("cn").public_key = vec![0x11; 96]
            }),
            Err(VenueError::BadPoint("master public key")),
        ),
        (
            payload_with(|p| p.crowd_notifier_data.as_mut().expect("cn").r#type = 5),
            Err(VenueError::BadType {
                what: "crowdNotifierData.type",
                found: 5,
            }),
        ),
        (
            payload_with(|p| {
                let l = p.location_data.as_mut().expect("loc");
                (l.start_timestamp, l.end_timestamp) = (200, 100);
            }),
            Err(VenueError::BadPeriod {
                start: 200,
                end: 100,
            }),
        ),
        (
            country_with(|c| c.r#type = 13),
            Err(VenueError::BadType {
                what: "venue type",
                found: 13,
            }),
        ),
        (
            country_with(|c| c.default_stay_minutes = 0),
            Err(VenueError::BadStay {
                default_minutes: 0,
                max_minutes: 180,
            }),
        ),
        (
            country_with(|c| c.max_stay_minutes = 10),
            Err(VenueError::BadStay {
                default_minutes: 30,
                max_minutes: 10,
            }),
        ),
        (
            country_with(|c| c.room = "r".repeat(101)),
            text("room", TextFault::TooLong(101)),
        ),
    ];
    // A 100-character description in 4-byte characters is still fine.
    cases.push((
        payload_with(|p| p.location_data.as_mut().expect("loc").description = "😀".repeat(100)),
        Ok(world().venue.entry),
    ));
    for (i, (payload, want)) in cases.into_iter().enumerate() {
        let got = EntryCode::from_payload(&payload);
        match want {
            Ok(_) => assert!(got.is_ok(), "case {i}: {got:?}"),
            Err(e) => assert_eq!(got, Err(e), "case {i}"),
        }
    }
}

#[test]
fn owner_and_authority_together_notify_visitors_who_overlap() {
    let w = world();
    let url = w.venue.entry.to_url(BASE);
    let visitor = seal_visit(
        &EntryCode::from_url(&url).expect("scan"),
        h(10, 5),
        h(10, 50),
    );
    let later = seal_visit(&w.venue.entry, h(14, 0), h(15, 0));
    assert_eq!(visitor.len(), 1);
    assert!(visitor
        .iter()
        .all(|r| r.ciphertext.len() == RECORD_LEN && r.day == 20_000));

    let pre = w
        .venue
        .trace_secret
        .pre_trace(h(10, 0), h(11, 0), NOW)
        .expect("pre-trace");
    let pre = PreTrace::decode(&pre.encode()).expect("round trip");
    let traced = complete_trace(&pre, &w.authority, "Get tested", 8, NOW).expect("trace");
    assert_eq!(
        traced.view,
        TraceView {
            description: "Bäckerei Sonnenschein".into(),
            address: "Hauptstr. 1, 10115 Berlin".into(),
            room: String::new(),
            window_start: h(10, 0),
            window_end: h(11, 0),
        }
    );
    let hits = match_records(&visitor, &traced.warnings);
    assert_eq!(hits.len(), 1);
    assert_eq!(
        (hits[0].arrival, hits[0].departure, hits[0].message.as_str()),
        (h(10, 5), h(10, 50), "Get tested")
    );
    let days = PresenceRisk::default().score(&hits);
    assert_eq!(days.len(), 1);
    assert!((days[0].minutes - 45.0 * 1.6).abs() < 1e-9, "{days:?}");
    assert!(days[0].high_risk);
    // Same venue, different time: the hour 14 records never open with hour-10 keys.
    assert!(match_records(&later, &traced.warnings).is_empty());
}

#[test]
fn neither_the_owner_alone_nor_the_authority_alone_can_make_a_warning_that_opens_a_record() {
    let w = world();
    let records = seal_visit(&w.venue.entry, h(10, 5), h(10, 50));
    let pre = w
        .venue
        .trace_secret
        .pre_trace(h(10, 0), h(11, 0), NOW)
        .expect("pre");
    let traced = complete_trace(&pre, &w.authority, "m", 5, NOW).expect("trace");
    let honest = &traced.warnings[0];
    // Owner alone: publishes its pre-trace key as if it were sk_id.
    let owner_only = TraceWarning {
        key: pre.keys[0].1,
        ..honest.clone()
    };
    assert!(match_records(&records, &[owner_only]).is_empty());
    // Authority alone: its share is sk_id minus the owner's pre-key; it never
    // holds the pre-key without the owner, so it can only publish its own share.
    // Here we reconstruct that share only to show it does not open the record.
    let ha_share_only = TraceWarning {
        key: ha_share(&pre.keys[0].1, &honest.key),
        ..honest.clone()
    };
    assert!(match_records(&records, &[ha_share_only]).is_empty());
    // And the record itself refuses the wrong key with the typed error.
    assert_eq!(
        pre.keys[0]
            .1
            .decrypt(&honest.identity, &records[0].ciphertext),
        Err(VenueError::NotForThisKey)
    );
    assert!(match_records(&records, &traced.warnings).len() == 1);
}

/// The authority's share `H1(id)^msk_HA = sk_id − pre_owner` (the test derives it
/// from both halves only to show that the share alone opens nothing).
fn ha_share(pre_owner: &IdentityKey, sk_id: &IdentityKey) -> IdentityKey {
    let neg = IdentityKey::from_bytes(&negate_g1(&pre_owner.to_bytes())).expect("point");
    sk_id.combine(&neg)
}

fn negate_g1(bytes: &[u8; 48]) -> Vec<u8> {
    use ark_serialize::{CanonicalDeserialize, CanonicalSerialize};
    let p = ark_bls12_381::G1Affine::deserialize_compressed(&bytes[..]).expect("point");
    let mut out = Vec::new();
    (-p).serialize_compressed(&mut out).expect("48");
    out
}

#[test]
fn a_photo_of_the_qr_and_an_upload_token_cannot_notify_an_honest_venue() {
    // The attacker photographs a basic poster, computes what a phone would
    // report on the self-reported path, and the gateway makes keys with its own
    // venue key: they open no record of the honest venue.
    let w = world();
    let records = seal_visit(&w.venue.entry, h(10, 5), h(10, 50));
    let payload = w.venue.entry.payload();
    let slot = Slot::new(h(10, 0), 3600).expect("slot");
    let forged = StayReport {
        arrival: h(10, 0),
        departure: h(11, 0),
        notification_key: VenueNonces::derive(payload).notification_key,
        identities: vec![identity(payload, slot)],
    };
    let sealed = forged.seal(&w.authority.public_bytes()).expect("seals");
    let opened = StayReport::open(&sealed, &w.authority).expect("the gateway opens it");
    let master = self_reported_master(&w.authority);
    let warnings = trace_stays(&master, &[opened], 20_000, "forged", NOW).expect("traced");
    assert_eq!(warnings.len(), 1);
    assert_eq!(warnings[0].identity, identity(payload, slot));
    assert!(match_records(&records, &warnings).is_empty());
}

struct SelfReported {
    gateway: GatewaySealKey,
    code: EntryCode,
}

fn self_reported() -> SelfReported {
    let gateway = GatewaySealKey::generate();
    let venue = VenueDescription::new("Hoftor Nord", "Gartenweg 2", 0, 30, 180);
    let code = create_self_reported(
        &venue,
        &self_reported_master(&gateway).public(),
        &gateway.public_bytes(),
    )
    .expect("code");
    SelfReported { gateway, code }
}

fn stay(s: &SelfReported, arrival: u64, departure: u64) -> StayReport {
    let sealed = seal_stay(&s.code, arrival, departure)
        .expect("seals")
        .expect("a self-reported code has a report");
    assert_eq!(
        sealed.len(),
        sealed_stay_len(Slot::hours_of(arrival, departure).len())
    );
    StayReport::open(&sealed, &s.gateway).expect("opens")
}

#[test]
fn self_reported_stays_become_warnings_only_for_visitors_of_that_hour() {
    let s = self_reported();
    let url = s.code.to_url(BASE);
    let scanned = EntryCode::from_url(&url).expect("parses");
    assert_eq!(
        scanned.kind,
        VenueKind::SelfReported {
            report_key: s.gateway.public_bytes()
        }
    );
    // The case stayed 10:20-11:40 (two hour slots); onset the next day.
    let case = stay(&s, h(10, 20), h(11, 40));
    assert_eq!(case.identities.len(), 2);
    let warnings = trace_stays(
        &self_reported_master(&s.gateway),
        &[case],
        20_001,
        "self-reported",
        NOW,
    )
    .expect("traced");
    assert_eq!(warnings.len(), 2);
    let overlapping = seal_visit(&scanned, h(11, 0), h(11, 30));
    let hits = match_records(&overlapping, &warnings);
    assert_eq!(hits.len(), 1, "one match per visit and window");
    assert_eq!(
        (hits[0].window_start, hits[0].window_end),
        (h(10, 20), h(11, 40))
    );
    assert_eq!(hits[0].risk_level, 6, "one day before onset");
    assert!(PresenceRisk::default().score(&hits)[0].high_risk);
    // Same venue, another hour; another self-reported venue, same hour.
    assert!(match_records(&seal_visit(&scanned, h(14, 0), h(15, 0)), &warnings).is_empty());
    let other = self_reported();
    assert!(match_records(&seal_visit(&other.code, h(11, 0), h(11, 30)), &warnings).is_empty());
    // A basic venue has no report; a report opens only with its gateway's key.
    assert_eq!(
        seal_stay(&world().venue.entry, h(10, 0), h(11, 0)),
        Ok(None)
    );
    let sealed = seal_stay(&s.code, h(10, 0), h(11, 0))
        .expect("seals")
        .expect("report");
    assert_eq!(
        StayReport::open(&sealed, &other.gateway),
        Err(VenueError::NotForThisKey)
    );
}

#[test]
fn bad_self_reported_stays_are_refused_with_their_reason() {
    let s = self_reported();
    let master = self_reported_master(&s.gateway);
    let trace = |stays: Vec<StayReport>, onset: u32| {
        trace_stays(&master, &stays, onset, "m", NOW).map(|w| w.len())
    };
    let window = |r: Result<usize, VenueError>| match r {
        Err(VenueError::BadWindow { reason, .. }) => reason,
        other => panic!("expected BadWindow, got {other:?}"),
    };
    assert_eq!(
        window(trace(vec![stay(&s, NOW - 600, NOW + 600)], 20_000)),
        "ends in the future"
    );
    assert_eq!(
        window(trace(vec![stay(&s, h(10, 0), h(11, 0))], 20_001 + 2)),
        "symptom onset is in the future"
    );
    // Onset three days after the stay: it began before the infectious window.
    let onset = 20_000 + STAY_DAYS_BEFORE_ONSET + 1;
    let later = u64::from(onset) * 86_400 + 3600;
    assert_eq!(
        window(
            trace_stays(&master, &[stay(&s, h(10, 0), h(11, 0))], onset, "m", later)
                .map(|w| w.len())
        ),
        "begins before the infectious window or past retention"
    );
    assert_eq!(
        trace(
            vec![stay(&s, h(10, 0), h(11, 0)), stay(&s, h(10, 30), h(12, 0))],
            20_000
        ),
        Err(VenueError::StayOverlap {
            first_end: h(11, 0),
            second_start: h(10, 30)
        })
    );
    let day: Vec<StayReport> = (0..21).map(|i| stay(&s, h(i, 0), h(i, 30))).collect();
    assert_eq!(
        trace(day, 20_000),
        Err(VenueError::TooManyStays {
            day: 20_000,
            max: MAX_STAYS_PER_DAY
        })
    );
    let twenty: Vec<StayReport> = (0..20).map(|i| stay(&s, h(i, 0), h(i, 30))).collect();
    assert_eq!(trace(twenty, 20_000), Ok(20), "twenty a day are fine");
    assert!(matches!(
        seal_stay(&s.code, h(11, 0), h(10, 0)),
        Err(VenueError::BadWindow { .. })
    ));
}

#[test]
fn a_code_carries_a_report_key_exactly_when_it_is_self_reported() {
    let with_key = country_with(|c| c.report_key = vec![7; 32]);
    assert_eq!(
        EntryCode::from_payload(&with_key),
        Err(VenueError::Length {
            what: "reportKey",
            len: 32,
            expected: 0
        })
    );
    let s = self_reported();
    let mut p = pb::QrCodePayload::decode(s.code.payload()).expect("decode");
    let mut c = pb::TracelessLocationData::decode(p.country_data.as_slice()).expect("decode");
    c.report_key = vec![7; 31];
    p.country_data = c.encode_to_vec();
    assert_eq!(
        EntryCode::from_payload(&p.encode_to_vec()),
        Err(VenueError::Length {
            what: "reportKey",
            len: 31,
            expected: 32
        })
    );
}

#[test]
fn a_modified_qr_taped_over_the_real_one_never_notifies() {
    let w = world();
    // Same key and seed, another description: a forged poster.
    let mut p = pb::QrCodePayload::decode(w.venue.entry.payload()).expect("decode");
    p.location_data.as_mut().expect("loc").description = "Bäckerei Sonnenschein!".into();
    let forged = EntryCode::from_payload(&p.encode_to_vec()).expect("valid-looking code");
    let fooled = seal_visit(&forged, h(10, 5), h(10, 50));
    // The real venue is traced for that hour: the forged poster's visitors are not warned.
    let pre = w
        .venue
        .trace_secret
        .pre_trace(h(10, 0), h(11, 0), NOW)
        .expect("pre");
    let traced = complete_trace(&pre, &w.authority, "m", 5, NOW).expect("trace");
    assert!(match_records(&fooled, &traced.warnings).is_empty());
    // Nor can the forger get the forged payload traced with the owner's keys.
    let mut forged_pre = pre.clone();
    forged_pre.payload = forged.payload().to_vec();
    assert_eq!(
        complete_trace(&forged_pre, &w.authority, "m", 5, NOW).map(|t| t.warnings.len()),
        Err(VenueError::TraceKeyInvalid {
            slot_start: h(10, 0)
        })
    );
}

#[test]
fn bad_traces_are_refused_with_their_reason() {
    let w = world();
    let other = world();
    let pre = w
        .venue
        .trace_secret
        .pre_trace(h(10, 0), h(11, 0), NOW)
        .expect("pre");
    assert!(matches!(
        w.venue.trace_secret.pre_trace(h(10, 0), NOW + 1, NOW),
        Err(VenueError::BadWindow {
            reason: "ends in the future",
            ..
        })
    ));
    assert!(matches!(
        w.venue
            .trace_secret
            .pre_trace(h(0, 0), h(0, 0) + 25 * 3600, NOW + 86_400),
        Err(VenueError::BadWindow {
            reason: "covers more than 24 hours",
            ..
        })
    ));
    // Another authority's key does not open the sealed share.
    assert!(matches!(
        complete_trace(&pre, &other.authority, "m", 5, NOW),
        Err(VenueError::SealedKey)
    ));
    // Another venue's pre-keys with this venue's payload.
    let mut mixed = other
        .venue
        .trace_secret
        .pre_trace(h(10, 0), h(11, 0), NOW)
        .expect("pre");
    mixed.payload = pre.payload.clone();
    mixed.sealed_ha = pre.sealed_ha.clone();
    assert_eq!(
        complete_trace(&mixed, &w.authority, "m", 5, NOW).err(),
        Some(VenueError::TraceKeyInvalid {
            slot_start: h(10, 0)
        })
    );
    // A key for a slot outside the window.
    let mut outside = pre.clone();
    outside.keys[0].0 = Slot::new(h(12, 0), 3600).expect("slot");
    assert_eq!(
        complete_trace(&outside, &w.authority, "m", 5, NOW).err(),
        Some(VenueError::SlotOutsideWindow {
            slot_start: h(12, 0)
        })
    );
    assert!(matches!(
        complete_trace(&pre, &w.authority, "m", 9, NOW),
        Err(VenueError::BadType { .. })
    ));
}

#[test]
fn a_room_set_from_one_passphrase_traces_each_room_alone() {
    let authority = GatewaySealKey::generate();
    let passphrase = generate_passphrase();
    assert!(passphrase.len() >= 52);
    let org = Organisation::create(&passphrase, &authority.public_bytes()).expect("org");
    let room = |r: &str| {
        let mut v = bakery();
        v.room = r.into();
        create_room(&org, &v).expect("room")
    };
    let (a, b) = (room("Room A"), room("Room B"));
    assert_eq!(a.master_public, b.master_public);
    let in_a = seal_visit(&a, h(10, 5), h(10, 50));
    let in_b = seal_visit(&b, h(10, 5), h(10, 50));
    let secret = org.trace_secret(&passphrase, &a).expect("secret");
    let pre = secret.pre_trace(h(10, 0), h(11, 0), NOW).expect("pre");
    let traced = complete_trace(&pre, &authority, "m", 5, NOW).expect("trace");
    assert_eq!(traced.view.room, "Room A");
    assert_eq!(match_records(&in_a, &traced.warnings).len(), 1);
    assert!(match_records(&in_b, &traced.warnings).is_empty());
    // A wrong passphrase yields keys the authority refuses.
    let wrong = org
        .trace_secret(&generate_passphrase(), &a)
        .expect("shape ok");
    let pre = wrong.pre_trace(h(10, 0), h(11, 0), NOW).expect("pre");
    assert!(matches!(
        complete_trace(&pre, &authority, "m", 5, NOW),
        Err(VenueError::TraceKeyInvalid { .. })
    ));
    assert_eq!(
        Organisation::create("short", &authority.public_bytes()),
        Err(VenueError::WeakPassphrase(5))
    );
}

#[test]
fn trace_secret_round_trips_through_its_text() {
    let w = world();
    let text = w.venue.trace_secret.to_text();
    assert!(text.starts_with("traceless-trace:1:"));
    let back = TraceSecret::from_text(&text).expect("parse");
    assert_eq!(back.entry(), w.venue.entry);
    assert!(matches!(
        TraceSecret::from_text("traceless-trace:1:AAAA"),
        Err(VenueError::Malformed { .. } | VenueError::UnsupportedVersion { .. })
    ));
}

#[test]
fn warning_batches_verify_only_under_a_trusted_authority() {
    let w = world();
    let pre = w
        .venue
        .trace_secret
        .pre_trace(h(10, 0), h(12, 0), NOW)
        .expect("pre");
    let traced = complete_trace(&pre, &w.authority, "m", 5, NOW).expect("trace");
    let key = AuthorityKey::generate("de.rki", 1);
    let batch = WarningBatch {
        origin: "de.rki".into(),
        sequence: 1,
        created_at: NOW,
        warnings: traced.warnings.clone(),
    };
    let wire = batch.sign(&key).expect("sign").encode();
    let mut trust = TrustList::new();
    assert!(matches!(
        SignedWarningBatch::decode(&wire)
            .expect("decode")
            .verify(&trust),
        Err(VenueError::Signature(WireError::UntrustedSigner { .. }))
    ));
    trust.insert("de.rki", 1, key.verifying_key());
    let back = SignedWarningBatch::decode(&wire)
        .expect("decode")
        .verify(&trust)
        .expect("verify");
    assert_eq!(back, batch);
    // One flipped bit in the body.
    let mut signed = SignedWarningBatch::decode(&wire).expect("decode");
    let last = signed.body.len() - 1;
    signed.body[last] ^= 1;
    assert!(matches!(
        signed.verify(&trust),
        Err(VenueError::Signature(WireError::BadSignature(_)))
    ));
    // Trailing garbage is not canonical.
    let mut padded = wire.clone();
    padded.extend_from_slice(&[0x28, 0x00]);
    assert!(matches!(
        SignedWarningBatch::decode(&padded),
        Err(VenueError::NonCanonical(_))
    ));
    // A venue owner's own key, not in the trust list, signs nothing phones accept.
    let owner_key = AuthorityKey::generate("de.rki", 2);
    let wire = batch.sign(&owner_key).expect("sign").encode();
    assert!(matches!(
        SignedWarningBatch::decode(&wire)
            .expect("decode")
            .verify(&trust),
        Err(VenueError::Signature(WireError::UntrustedSigner { .. }))
    ));
}

#[test]
fn records_are_key_private_and_of_one_size() {
    let w = world();
    let a = seal_visit(&w.venue.entry, h(10, 5), h(10, 50));
    let b = seal_visit(&w.venue.entry, h(10, 5), h(10, 50));
    assert_ne!(
        a[0].ciphertext, b[0].ciphertext,
        "fresh randomness per record"
    );
    let long = seal_visit(&w.venue.entry, h(9, 30), h(12, 10));
    assert_eq!(long.len(), 4);
    assert!(long.iter().all(|r| r.ciphertext.len() == RECORD_LEN));
    let mpk = w.venue.entry.master_public.to_bytes();
    let id = identity(
        w.venue.entry.payload(),
        Slot::new(h(10, 0), 3600).expect("slot"),
    );
    for r in a.iter().chain(&long) {
        assert!(!r
            .ciphertext
            .windows(16)
            .any(|win| mpk.windows(16).any(|m| m == win)));
        assert!(!r
            .ciphertext
            .windows(16)
            .any(|win| id.windows(16).any(|m| m == win)));
    }
}

#[test]
fn presence_risk_follows_cwa() {
    let risk = PresenceRisk::default();
    let m = |ws: u64, we: u64, a: u64, d: u64, trl: u32| VisitMatch {
        day: 20_000,
        arrival: a,
        departure: d,
        window_start: ws,
        window_end: we,
        message: String::new(),
        risk_level: trl,
    };
    // A case's 9-minute stay is dropped.
    assert_eq!(
        risk.minutes(&m(h(10, 0), h(10, 9), h(10, 0), h(11, 0), 5)),
        0.0
    );
    // 20-minute case stay extended by 20 minutes: phone 10:30-11:00 overlaps 10 minutes.
    assert_eq!(
        risk.minutes(&m(h(10, 0), h(10, 20), h(10, 30), h(11, 0), 5)),
        10.0
    );
    // 2-hour case stay extended by 30 minutes at most.
    assert_eq!(
        risk.minutes(&m(h(10, 0), h(12, 0), h(12, 0), h(13, 0), 5)),
        30.0
    );
    // Transmission risk weights: TRL 3 → 0.6, TRL 1 → 0.
    assert!((risk.minutes(&m(h(10, 0), h(11, 0), h(10, 0), h(11, 0), 3)) - 36.0).abs() < 1e-9);
    assert_eq!(
        risk.minutes(&m(h(10, 0), h(11, 0), h(10, 0), h(11, 0), 1)),
        0.0
    );
    // 9 weighted minutes is low, 10 is high.
    let low = risk.score(&[m(h(10, 0), h(11, 0), h(11, 21), h(12, 0), 5)]);
    assert_eq!((low[0].minutes, low[0].high_risk), (9.0, false));
    let high = risk.score(&[m(h(10, 0), h(11, 0), h(11, 20), h(12, 0), 5)]);
    assert_eq!((high[0].minutes, high[0].high_risk), (10.0, true));
    // Disjoint: nothing.
    assert!(risk
        .score(&[m(h(10, 0), h(11, 0), h(14, 0), h(15, 0), 5)])
        .is_empty());
}

/// Warnings with large sealed details (the authority's longest message) are
/// split into batches by bytes, not only by count: each signed batch is within
/// the limit every node accepts, in order, none lost; signing them all as one
/// is refused by kind.
#[test]
fn warning_batches_are_split_by_bytes_not_only_by_count() {
    let w = world();
    let pre = w
        .venue
        .trace_secret
        .pre_trace(h(10, 0), h(11, 0), NOW)
        .expect("pre");
    let long = "x".repeat(MAX_MESSAGE_CHARS);
    let one = complete_trace(&pre, &w.authority, &long, 5, NOW)
        .expect("trace")
        .warnings
        .remove(0);
    let per_warning = one.sealed_details.len() + 32 + 48 + 12;
    let n = MAX_BODY_LEN / per_warning + 100;
    assert!(
        n < MAX_WARNINGS,
        "control: the count alone allows one batch"
    );
    let warnings = vec![one; n];
    let key = AuthorityKey::generate("de.rki", 1);
    let whole = WarningBatch {
        origin: "de.rki".into(),
        sequence: 1,
        created_at: NOW,
        warnings: warnings.clone(),
    };
    assert!(matches!(
        whole.sign(&key),
        Err(VenueError::PayloadTooLong {
            max: MAX_BODY_LEN,
            ..
        })
    ));
    let runs = batch_runs(&warnings);
    assert!(runs.len() >= 2, "{} runs", runs.len());
    assert_eq!(runs.iter().map(|r| r.len()).sum::<usize>(), n);
    let mut trust = TrustList::new();
    trust.insert("de.rki", 1, key.verifying_key());
    for (i, run) in runs.iter().enumerate() {
        let batch = WarningBatch {
            origin: "de.rki".into(),
            sequence: i as u64 + 1,
            created_at: NOW,
            warnings: run.to_vec(),
        };
        let wire = batch.sign(&key).expect("within the limit").encode();
        assert!(wire.len() <= MAX_BATCH_LEN);
        let back = SignedWarningBatch::decode(&wire)
            .expect("decode")
            .verify(&trust)
            .expect("verify");
        assert_eq!(back.warnings.len(), run.len());
    }
    assert!(batch_runs(&[]).is_empty());
}

//! Venue check-ins on the phone (SPEC.md §12.6): check in from a scanned URL,
//! check out by hand and by itself at the venue's maximum stay, edit times,
//! list; warnings from the owner's pre-trace and the authority's completion
//! match into the exposure summary as venue exposure; what a seized phone's
//! files hold; survival across reopening; shredding with the day.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::sync::Arc;

use common::*;
use traceless_protocol::venue::*;
use traceless_protocol::{
    AuthorityKey, Clock, DaySummary, ExposureKind, GatewaySealKey, ManualClock, WireError,
};
use traceless_sdk::{CheckInState, MasterKey, Sdk, SdkConfig, SdkError};

const NAME: &str = "Apotheke am Markt";
const ADDRESS: &str = "Marktplatz 3, 04109 Leipzig";
const BASE: &str = "https://traceless.example/c";

/// A venue set up for one health authority: its poster URL and its secrets.
struct Venue {
    created: CreatedVenue,
    url: String,
}

/// The health authority: its venue key (HPKE) and its signing key.
struct Health {
    seal: GatewaySealKey,
    sign: AuthorityKey,
}

impl Health {
    fn new() -> Self {
        Health {
            seal: GatewaySealKey::generate(),
            sign: AuthorityKey::generate("de.rki", 1),
        }
    }

    fn venue(&self, name: &str) -> Venue {
        let v = VenueDescription::new(name, ADDRESS, 3, 15, 120);
        let created = create_venue(&v, &self.seal.public_bytes()).unwrap();
        let url = created.entry.to_url(BASE);
        Venue { created, url }
    }

    /// Owner pre-trace for `[start, end)`, authority completion, signed batch.
    fn warn(&self, v: &Venue, start: u64, end: u64, risk_level: u32, now: u64) -> Vec<u8> {
        let pre = v.created.trace_secret.pre_trace(start, end, now).unwrap();
        // The owner's half travels as bytes to the authority.
        let pre = PreTrace::decode(&pre.encode()).unwrap();
        let traced =
            complete_trace(&pre, &self.seal, "Bitte testen lassen", risk_level, now).unwrap();
        assert_eq!(traced.view.description, v.created.entry.venue.description);
        WarningBatch {
            origin: self.sign.origin.clone(),
            sequence: 1,
            created_at: now,
            warnings: traced.warnings,
        }
        .sign(&self.sign)
        .unwrap()
        .encode()
    }

    fn trusted_by(&self, sdk: &mut Sdk) {
        sdk.trust_authority(&self.sign.origin, 1, self.sign.verifying_key())
            .unwrap();
    }
}

fn venue_days(sdk: &mut Sdk) -> Vec<DaySummary> {
    sdk.exposure_summary()
        .unwrap()
        .into_iter()
        .filter(|d| d.kind == ExposureKind::Venue)
        .collect()
}

#[test]
fn a_visit_at_a_traced_venue_and_hour_becomes_venue_exposure_with_presence_risk() {
    let health = Health::new();
    let v = health.venue(NAME);
    let clock = ManualClock::new(at(DAY0, 10 * 60 + 5));
    let mut sdk = phone(&clock);
    health.trusted_by(&mut sdk);

    let open = sdk.check_in(&v.url).unwrap();
    match &open.state {
        CheckInState::Open {
            description,
            address,
            suggested_departure,
            ..
        } => {
            assert_eq!((description.as_str(), address.as_str()), (NAME, ADDRESS));
            assert_eq!(*suggested_departure, at(DAY0, 10 * 60 + 20));
        }
        CheckInState::Closed => panic!("a fresh check-in is open"),
    }
    assert_eq!(open.departure, at(DAY0, 12 * 60 + 5), "auto at max stay");
    clock.advance(45 * 60);
    let closed = sdk.check_out().unwrap();
    assert_eq!(
        (closed.arrival, closed.departure, &closed.state),
        (at(DAY0, 605), at(DAY0, 650), &CheckInState::Closed)
    );
    assert_eq!(sdk.check_ins().unwrap(), vec![closed]);

    // A case was there 10:30-11:00 (risk level 8: weight 1.6). The case's
    // 30 minutes are extended by 30 for aerosols: the phone's overlap is
    // 10:30-10:50 = 20 minutes, weighted 32.
    clock.set(at(DAY0 + 1, 8 * 60));
    let batch = health.warn(&v, at(DAY0, 630), at(DAY0, 660), 8, clock.now());
    assert_eq!(sdk.sync_venue_warnings(&batch).unwrap(), 1);
    assert_eq!(sdk.sync_venue_warnings(&batch).unwrap(), 0, "stored once");
    let days = venue_days(&mut sdk);
    assert_eq!(days.len(), 1, "{days:?}");
    assert_eq!(days[0].day, DAY0);
    assert!((days[0].minutes - 20.0).abs() < 1e-9, "{days:?}");
    assert!((days[0].score - 32.0).abs() < 1e-9, "{days:?}");
    assert!(days[0].high_risk);
}

#[test]
fn a_warning_for_another_venue_or_another_time_matches_nothing() {
    let health = Health::new();
    let here = health.venue(NAME);
    let elsewhere = health.venue("Bäckerei Sonnenschein");
    let clock = ManualClock::new(at(DAY0, 10 * 60));
    let mut sdk = phone(&clock);
    health.trusted_by(&mut sdk);
    sdk.check_in(&here.url).unwrap();
    clock.advance(50 * 60);
    sdk.check_out().unwrap();
    clock.set(at(DAY0 + 1, 0));

    // The other venue, same hour.
    let other_venue = health.warn(&elsewhere, at(DAY0, 600), at(DAY0, 660), 8, clock.now());
    assert_eq!(sdk.sync_venue_warnings(&other_venue).unwrap(), 0);
    // This venue, two hours later (its slot is not the visit's).
    let later = health.warn(&here, at(DAY0, 720), at(DAY0, 780), 8, clock.now());
    assert_eq!(sdk.sync_venue_warnings(&later).unwrap(), 0);
    // This venue, the hour before, ending before the visit began: the slot
    // differs too.
    let before = health.warn(&here, at(DAY0, 540), at(DAY0, 600), 8, clock.now());
    assert_eq!(sdk.sync_venue_warnings(&before).unwrap(), 0);
    assert!(venue_days(&mut sdk).is_empty());

    // Control: this venue and hour matches.
    let same = health.warn(&here, at(DAY0, 600), at(DAY0, 660), 8, clock.now());
    assert_eq!(sdk.sync_venue_warnings(&same).unwrap(), 1);
    assert_eq!(venue_days(&mut sdk).len(), 1);
}

#[test]
fn a_warning_of_the_same_hour_without_overlap_or_under_ten_minutes_scores_nothing() {
    let health = Health::new();
    let v = health.venue(NAME);
    let clock = ManualClock::new(at(DAY0, 10 * 60));
    let mut sdk = phone(&clock);
    health.trusted_by(&mut sdk);
    sdk.check_in(&v.url).unwrap();
    clock.advance(10 * 60);
    sdk.check_out().unwrap();
    clock.set(at(DAY0 + 1, 0));
    // The case stayed 10:40-10:45: under CWA's 10-minute minimum.
    let short = health.warn(&v, at(DAY0, 640), at(DAY0, 645), 8, clock.now());
    assert_eq!(sdk.sync_venue_warnings(&short).unwrap(), 1, "it decrypts");
    // The case stayed 10:30-10:45 (extended to 11:00): after the phone left at 10:10.
    let after = health.warn(&v, at(DAY0, 630), at(DAY0, 645), 8, clock.now());
    assert_eq!(sdk.sync_venue_warnings(&after).unwrap(), 1, "it decrypts");
    assert!(venue_days(&mut sdk).is_empty(), "but neither overlaps");
    // Control: the case stayed 09:55-10:05 (extended to 10:15), overlapping.
    let overlap = health.warn(&v, at(DAY0, 595), at(DAY0, 605), 8, clock.now());
    assert_eq!(sdk.sync_venue_warnings(&overlap).unwrap(), 1);
    let days = venue_days(&mut sdk);
    assert_eq!(days.len(), 1);
    assert!((days[0].minutes - 10.0).abs() < 1e-9, "{days:?}");
}

#[test]
fn the_phone_checks_out_by_itself_at_the_maximum_stay_and_at_an_edited_departure() {
    let clock = ManualClock::new(at(DAY0, 600));
    let mut sdk = phone(&clock);
    let health = Health::new();
    let v = health.venue(NAME);
    sdk.check_in(&v.url).unwrap();
    clock.advance(5 * 3600);
    let list = sdk.check_ins().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(
        (list[0].departure, &list[0].state),
        (at(DAY0, 600 + 120), &CheckInState::Closed),
        "closed at arrival + 120 minutes"
    );
    assert!(matches!(sdk.check_out(), Err(SdkError::InvalidArgument(_))));

    // Edited: arrived 10 minutes before scanning, leaving at 16:40.
    clock.set(at(DAY0, 16 * 60));
    sdk.check_in(&v.url).unwrap();
    let edited = sdk
        .edit_check_in(at(DAY0, 950), Some(at(DAY0, 1000)))
        .unwrap();
    assert_eq!(
        (edited.arrival, edited.departure),
        (at(DAY0, 950), at(DAY0, 1000))
    );
    assert!(matches!(edited.state, CheckInState::Open { .. }));
    clock.set(at(DAY0, 1001));
    let list = sdk.check_ins().unwrap();
    assert_eq!(
        (list[0].arrival, list[0].departure, &list[0].state),
        (at(DAY0, 950), at(DAY0, 1000), &CheckInState::Closed)
    );
    // An edited departure already past closes at once.
    sdk.check_in(&v.url).unwrap();
    clock.advance(30 * 60);
    let done = sdk
        .edit_check_in(at(DAY0, 1001), Some(at(DAY0, 1011)))
        .unwrap();
    assert_eq!(done.state, CheckInState::Closed);
    assert_eq!(sdk.check_ins().unwrap().len(), 3);
}

#[test]
fn bad_urls_bad_times_and_untrusted_warnings_are_refused_by_kind_and_store_nothing() {
    let clock = ManualClock::new(at(DAY0, 600));
    let mut sdk = phone(&clock);
    let health = Health::new();
    let v = health.venue(NAME);
    let (head, fragment) = v.url.split_once('#').unwrap();
    let mut long_text = v.created.entry.venue.clone();
    long_text.description = "x".repeat(101);
    let cases: Vec<(String, IsKind)> = vec![
        (format!("http://{}", &v.url[8..]), |e| {
            matches!(e, VenueError::NotEntryUrl("not https"))
        }),
        (head.to_string(), |e| {
            matches!(e, VenueError::NotEntryUrl("no # fragment"))
        }),
        (v.url.replacen("?v=3", "?v=4", 1), |e| {
            matches!(e, VenueError::UnsupportedVersion { found: 4, .. })
        }),
        (format!("{head}#{fragment}!"), |e| {
            matches!(e, VenueError::Base64)
        }),
        (format!("{head}#AAAA"), |e| {
            matches!(
                e,
                VenueError::UnsupportedVersion { found: 0, .. } | VenueError::Malformed { .. }
            )
        }),
        (format!("{head}#{}", "A".repeat(3000)), |e| {
            matches!(e, VenueError::UrlTooLong { .. })
        }),
        (format!("{head}#{}", &fragment[..fragment.len() - 8]), |e| {
            matches!(e, VenueError::Malformed { .. } | VenueError::Length { .. })
        }),
    ];
    for (url, kind) in &cases {
        let e = venue_err(sdk.check_in(url));
        assert!(kind(&e), "{url}: {e:?}");
    }
    // Texts over the limit never make a code (the builder refuses them too).
    assert!(matches!(
        long_text.validate(),
        Err(VenueError::Text {
            field: "description",
            fault: TextFault::TooLong(101)
        })
    ));
    // A code outside its validity period.
    let mut expired = v.created.entry.venue.clone();
    expired.valid_from = at(DAY0 - 3, 0);
    expired.valid_to = at(DAY0 - 2, 0);
    let old = create_venue(&expired, &health.seal.public_bytes()).unwrap();
    assert!(matches!(
        venue_err(sdk.check_in(&old.entry.to_url(BASE))),
        VenueError::BadWindow { .. }
    ));
    assert!(sdk.check_ins().unwrap().is_empty(), "nothing stored");

    sdk.check_in(&v.url).unwrap();
    assert!(matches!(
        venue_err(sdk.edit_check_in(at(DAY0, 600), Some(at(DAY0, 600 + 121)))),
        VenueError::BadWindow { .. }
    ));
    assert!(matches!(
        venue_err(sdk.edit_check_in(at(DAY0, 700), None)),
        VenueError::BadWindow { .. }
    ));
    clock.advance(3600);
    sdk.check_out().unwrap();

    // Signed by an authority the phone does not trust: refused, nothing matched.
    clock.set(at(DAY0 + 1, 0));
    let batch = health.warn(&v, at(DAY0, 600), at(DAY0, 660), 8, clock.now());
    assert!(matches!(
        venue_err(sdk.sync_venue_warnings(&batch)),
        VenueError::Signature(WireError::UntrustedSigner { .. })
    ));
    health.trusted_by(&mut sdk);
    let mut forged = batch.clone();
    let last = forged.len() - 1;
    forged[last] ^= 1;
    assert!(matches!(
        venue_err(sdk.sync_venue_warnings(&forged)),
        VenueError::Signature(_)
    ));
    assert!(venue_days(&mut sdk).is_empty());
    // Control: the genuine batch matches.
    assert_eq!(sdk.sync_venue_warnings(&batch).unwrap(), 1);
}

/// Whether an error is of the expected kind.
type IsKind = fn(&VenueError) -> bool;

fn venue_err<T: std::fmt::Debug>(r: Result<T, SdkError>) -> VenueError {
    match r {
        Err(SdkError::Venue(e)) => e,
        other => panic!("expected a venue error, got {other:?}"),
    }
}

const MASTER: MasterKey = MasterKey([7; 32]);

fn open(dir: &Path, clock: &ManualClock) -> Sdk {
    Sdk::open(dir, &MASTER, SdkConfig::default(), Arc::new(clock.clone())).unwrap()
}

/// What a thief who copies the phone's files (without the keystore's master
/// key) finds: no venue name, no byte run of the QR payload, no venue identity,
/// while a visit is open and after it is closed and matched.
#[test]
fn a_seized_phone_holds_no_venue_name_qr_bytes_or_identity_and_check_ins_survive_reopen() {
    let health = Health::new();
    let v = health.venue(NAME);
    let payload = v.created.entry.payload().to_vec();
    let mpk = v.created.entry.master_public.to_bytes();
    let nonces = VenueNonces::derive(&payload);
    let pid = preid(&payload, &nonces);
    let ids: Vec<[u8; 32]> = (9..12)
        .map(|h| identity(&payload, Slot::new(at(DAY0, h * 60), 3600).unwrap()))
        .collect();
    let fragment = v.url.split_once('#').unwrap().1.as_bytes().to_vec();
    // Every 16-byte run of the payload (its seed, key, texts, all of it).
    let mut needles: Vec<Vec<u8>> = payload.chunks(16).map(<[u8]>::to_vec).collect();
    needles.extend([
        NAME.as_bytes().to_vec(),
        ADDRESS.as_bytes().to_vec(),
        mpk[..16].to_vec(),
        pid[..16].to_vec(),
        fragment[..24].to_vec(),
    ]);
    needles.extend(ids.iter().map(|id| id[..16].to_vec()));
    let scan = |dir: &Path, when: &str| {
        let raw = all_bytes(dir);
        for n in &needles {
            assert!(
                !contains(&raw, n),
                "{when}: the files hold a venue byte run"
            );
        }
    };

    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("phone");
    let clock = ManualClock::new(at(DAY0, 10 * 60));
    let mut sdk = open(&dir, &clock);
    sdk.check_in(&v.url).unwrap();
    sdk.flush().unwrap();
    scan(&dir, "open");
    // Control: the same scan finds the payload in a file written in clear.
    std::fs::write(dir.join("control"), &payload).unwrap();
    assert!(contains(&all_bytes(&dir), &needles[0]), "control scan");
    std::fs::remove_file(dir.join("control")).unwrap();

    // The open check-in survives reopening...
    drop(sdk);
    let mut sdk = open(&dir, &clock);
    let list = sdk.check_ins().unwrap();
    assert!(
        matches!(&list[0].state, CheckInState::Open { description, .. } if description == NAME)
    );
    clock.advance(80 * 60);
    sdk.check_out().unwrap();
    let checkin = std::fs::read(dir.join("checkin")).unwrap();
    assert!(
        !checkin.is_empty() && checkin.iter().all(|&b| b == 0),
        "destroyed"
    );
    // ...and so does the closed one, which now matches a warning.
    drop(sdk);
    let mut sdk = open(&dir, &clock);
    health.trusted_by(&mut sdk);
    let list = sdk.check_ins().unwrap();
    assert_eq!(
        (list.len(), list[0].arrival, &list[0].state),
        (1, at(DAY0, 600), &CheckInState::Closed)
    );
    clock.set(at(DAY0 + 1, 0));
    let batch = health.warn(&v, at(DAY0, 600), at(DAY0, 690), 8, clock.now());
    assert_eq!(sdk.sync_venue_warnings(&batch).unwrap(), 1);
    sdk.flush().unwrap();
    drop(sdk);
    scan(&dir, "closed and matched");
    let mut sdk = open(&dir, &clock);
    assert_eq!(
        venue_days(&mut sdk).len(),
        1,
        "the match survives reopening"
    );
}

/// The warning cursor: none before any batch, untouched by a refused batch,
/// raised by a synced one and never lowered by an older one, kept across
/// reopening.
#[test]
fn the_warning_cursor_follows_synced_batches_only_and_survives_reopen() {
    let health = Health::new();
    let v = health.venue(NAME);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("phone");
    let clock = ManualClock::new(at(DAY0, 10 * 60));
    let mut sdk = open(&dir, &clock);
    health.trusted_by(&mut sdk);
    sdk.check_in(&v.url).unwrap();
    clock.advance(30 * 60);
    sdk.check_out().unwrap();
    clock.set(at(DAY0 + 1, 0));
    let origin = health.sign.origin.clone();
    assert_eq!(sdk.warning_cursor(&origin).unwrap(), None);

    let batch = health.warn(&v, at(DAY0, 600), at(DAY0, 660), 8, clock.now());
    let mut forged = batch.clone();
    *forged.last_mut().unwrap() ^= 1;
    assert!(matches!(
        venue_err(sdk.sync_venue_warnings(&forged)),
        VenueError::Signature(WireError::BadSignature(_))
    ));
    assert_eq!(sdk.warning_cursor(&origin).unwrap(), None, "refused");
    assert!(venue_days(&mut sdk).is_empty());

    assert_eq!(sdk.sync_venue_warnings(&batch).unwrap(), 1);
    assert_eq!(sdk.warning_cursor(&origin).unwrap(), Some(1));
    let body = SignedWarningBatch::decode(&batch)
        .unwrap()
        .verify(&trust_of(&health))
        .unwrap();
    let older = WarningBatch {
        sequence: 0,
        warnings: Vec::new(),
        ..body
    }
    .sign(&health.sign)
    .unwrap()
    .encode();
    assert_eq!(sdk.sync_venue_warnings(&older).unwrap(), 0);
    assert_eq!(sdk.warning_cursor(&origin).unwrap(), Some(1), "not lowered");
    assert_eq!(sdk.warning_cursor("other.health").unwrap(), None);
    drop(sdk);
    let sdk = open(&dir, &clock);
    assert_eq!(sdk.warning_cursor(&origin).unwrap(), Some(1), "kept");
}

fn trust_of(health: &Health) -> traceless_protocol::TrustList {
    let mut trust = traceless_protocol::TrustList::new();
    trust.insert(&health.sign.origin, 1, health.sign.verifying_key());
    trust
}

#[test]
fn check_ins_and_their_matches_are_shredded_with_their_day() {
    let health = Health::new();
    let v = health.venue(NAME);
    let clock = ManualClock::new(at(DAY0, 600));
    let mut sdk = phone(&clock);
    health.trusted_by(&mut sdk);
    sdk.check_in(&v.url).unwrap();
    clock.advance(1800);
    sdk.check_out().unwrap();
    clock.set(at(DAY0 + 1, 0));
    let batch = health.warn(&v, at(DAY0, 600), at(DAY0, 660), 8, clock.now());
    assert_eq!(sdk.sync_venue_warnings(&batch).unwrap(), 1);
    clock.set(at(DAY0 + 14, 0));
    assert_eq!(sdk.check_ins().unwrap().len(), 1);
    assert_eq!(venue_days(&mut sdk).len(), 1);
    clock.set(at(DAY0 + 15, 0));
    assert!(sdk.check_ins().unwrap().is_empty());
    assert!(venue_days(&mut sdk).is_empty());
}

/// The poster URL, the warnings of this venue and of another for 10:00-11:00,
/// the authority's trust entry and the times, for the C program.
fn write_venue_inputs(dir: &Path) {
    let health = Health::new();
    let v = health.venue(NAME);
    let other = health.venue("Bäckerei Sonnenschein");
    let published_at = at(DAY0 + 1, 8 * 60);
    let (start, end) = (at(DAY0, 600), at(DAY0, 660));
    std::fs::write(dir.join("url.txt"), &v.url).unwrap();
    let warn = health.warn(&v, start, end, 8, published_at);
    std::fs::write(dir.join("warnings.bin"), warn).unwrap();
    let warn = health.warn(&other, start, end, 8, published_at);
    std::fs::write(dir.join("other.bin"), warn).unwrap();
    let mut trust = b"de.rki\0".to_vec();
    trust.extend_from_slice(&1u32.to_le_bytes());
    trust.extend_from_slice(health.sign.verifying_key().as_bytes());
    std::fs::write(dir.join("authority.bin"), trust).unwrap();
    let mut times = at(DAY0, 0).to_le_bytes().to_vec();
    times.extend_from_slice(&published_at.to_le_bytes());
    std::fs::write(dir.join("times.bin"), times).unwrap();
    let gateway = GatewaySealKey::generate();
    let place = VenueDescription::new("Hoftor Nord", "Gartenweg 2", 0, 15, 120);
    let self_url = create_self_reported(
        &place,
        &self_reported_master(&gateway).public(),
        &gateway.public_bytes(),
    )
    .unwrap()
    .to_url("https://traceless.example/c");
    std::fs::write(dir.join("self_url.txt"), self_url).unwrap();
    std::fs::write(dir.join("gateway.bin"), gateway.public_bytes()).unwrap();
}

fn run_venue_visit(prefix: &[&str]) -> String {
    let tmp = tempfile::tempdir().unwrap();
    let exe = tmp.path().join("venue_visit");
    compile_c("venue_visit", &exe);
    write_venue_inputs(tmp.path());
    run_c(
        prefix,
        &exe,
        &[tmp.path().join("phone").as_os_str(), tmp.path().as_os_str()],
    )
}

#[test]
fn a_c_program_checks_in_checks_out_and_matches_a_venue_warning() {
    let out = run_venue_visit(&[]);
    assert!(
        out.contains(&format!(
            "checked in: {NAME}, {ADDRESS}; auto check-out after 120 min"
        )),
        "{out}"
    );
    // 10:05-10:50 against a case's 10:00-11:00 at risk level 8 (weight 1.6).
    assert!(
        out.contains(&format!(
            "day={DAY0} kind=venue minutes=45.0 score=72.0 high_risk=1"
        )),
        "{out}"
    );
    assert!(out.contains("listed: 1 check-in, 45 min"), "{out}");
    assert!(
        out.contains(
            "stays: invalid argument: the stays need 1 uploads, each with a token; 0 are stored"
        ),
        "{out}"
    );
}

#[test]
fn the_venue_c_program_runs_clean_under_valgrind() {
    run_venue_visit(&VALGRIND);
}

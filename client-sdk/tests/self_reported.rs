//! Self-reported venue stays on the phone (SPEC.md §12.11): a check-out at a
//! self-reported venue keeps a stay report sealed to the gateway; a diagnosis
//! packs the reports into padded sealed uploads, one token each, and spends no
//! token when it cannot send them all; Corona-Warn-App's 20 check-ins a day and
//! no two stays at once are enforced before anything is stored.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use traceless_protocol::token::TokenIssueRequest;
use traceless_protocol::venue::*;
use traceless_protocol::wire::Upload;
use traceless_protocol::{GatewaySealKey, ManualClock, TokenKey, SEALED_UPLOAD_LEN};
use traceless_sdk::{Sdk, SdkError};

const BASE: &str = "https://traceless.example/c";

fn code(gateway: &GatewaySealKey) -> String {
    let v = VenueDescription::new("Hoftor Nord", "Gartenweg 2", 0, 15, 120);
    create_self_reported(
        &v,
        &self_reported_master(gateway).public(),
        &gateway.public_bytes(),
    )
    .unwrap()
    .to_url(BASE)
}

fn buy(phone: &mut Sdk, issuer: &TokenKey, count: usize) {
    let request = phone.token_request(1, count, b"code").unwrap();
    let blinded = TokenIssueRequest::decode(&request).unwrap().blinded;
    let response = issuer.issue(&blinded).unwrap().encode();
    phone
        .token_finalize(&response, &issuer.public_key())
        .unwrap();
}

#[test]
fn twenty_stays_a_day_travel_in_padded_sealed_uploads_that_only_the_gateway_opens() {
    let gateway = GatewaySealKey::generate();
    let url = code(&gateway);
    let clock = ManualClock::new(at(DAY0, 0));
    let mut phone = phone(&clock);
    for i in 0..20 {
        clock.set(at(DAY0, i * 60));
        phone.check_in(&url).unwrap();
        clock.set(at(DAY0, i * 60 + 30));
        phone.check_out().unwrap();
    }
    clock.set(at(DAY0, 20 * 60));
    assert!(
        matches!(
            phone.check_in(&url),
            Err(SdkError::Venue(VenueError::TooManyStays { day, max: MAX_STAYS_PER_DAY }))
                if day == DAY0
        ),
        "a 21st self-reported check-in in a day"
    );
    clock.set(at(DAY0 + 1, 9 * 60));
    let onset = DAY0 + 1;
    match phone.sealed_stay_uploads(&gateway.public_bytes(), onset) {
        Err(SdkError::InvalidArgument(m)) => assert!(m.contains("need 4 uploads"), "{m}"),
        other => panic!("expected InvalidArgument, got {other:?}"),
    }
    let issuer = TokenKey::generate(1);
    buy(&mut phone, &issuer, 3);
    assert!(matches!(
        phone.sealed_stay_uploads(&gateway.public_bytes(), onset),
        Err(SdkError::InvalidArgument(_))
    ));
    assert_eq!(phone.tokens_available().unwrap(), 3, "no token spent");
    buy(&mut phone, &issuer, 2);
    let uploads = phone
        .sealed_stay_uploads(&gateway.public_bytes(), onset)
        .unwrap();
    assert_eq!(uploads.len(), 4, "six one-hour stays to an upload");
    assert_eq!(phone.tokens_available().unwrap(), 1);
    let mut reports = Vec::new();
    for sealed in &uploads {
        assert_eq!(sealed.len(), SEALED_UPLOAD_LEN);
        let upload = Upload::decode(&gateway.open(sealed).unwrap(), at(DAY0 + 1, 9 * 60)).unwrap();
        assert!(upload.keys.is_empty() && upload.token.is_some());
        assert_eq!(upload.stays.onset_day, onset);
        for r in &upload.stays.reports {
            reports.push(StayReport::open(r, &gateway).unwrap());
        }
    }
    let arrivals: Vec<u64> = reports.iter().map(|r| r.arrival).collect();
    assert_eq!(
        arrivals,
        (0..20).map(|i| at(DAY0, i * 60)).collect::<Vec<_>>()
    );
    let warnings = trace_stays(
        &self_reported_master(&gateway),
        &reports,
        onset,
        "m",
        at(DAY0 + 1, 9 * 60),
    )
    .unwrap();
    assert_eq!(warnings.len(), 20);
    // Another gateway opens none of them.
    assert!(matches!(
        GatewaySealKey::generate().open(&uploads[0]),
        Err(traceless_protocol::WireError::BadSignature(_))
    ));
}

#[test]
fn an_edited_arrival_may_not_overlap_an_earlier_check_in() {
    let gateway = GatewaySealKey::generate();
    let url = code(&gateway);
    let clock = ManualClock::new(at(DAY0, 600));
    let mut phone = phone(&clock);
    phone.check_in(&url).unwrap();
    clock.set(at(DAY0, 630));
    phone.check_out().unwrap();
    clock.set(at(DAY0, 700));
    phone.check_in(&url).unwrap();
    match phone.edit_check_in(at(DAY0, 620), None) {
        Err(SdkError::Venue(VenueError::BadWindow { reason, .. })) => {
            assert_eq!(reason, "arrival overlaps an earlier check-in")
        }
        other => panic!("expected BadWindow, got {other:?}"),
    }
    assert!(
        phone.edit_check_in(at(DAY0, 630), None).is_ok(),
        "touching is fine"
    );
}

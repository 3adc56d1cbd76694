//! The default upload path: anonymous VOPRF tokens from the authority's issuer,
//! kept sealed on the phone, spent once by an upload sealed to the gateway; and
//! dummies of the same length whose token verifies under no key.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::*;
use traceless_protocol::token::TokenIssueRequest;
use traceless_protocol::{
    interval_number, Clock, GatewaySealKey, ManualClock, TokenKey, Upload, SEALED_UPLOAD_LEN,
};
use traceless_sdk::{MasterKey, Sdk, SdkConfig, SdkError};

const CODE: &[u8] = b"0123456789abcdef-0123456789abcdef0123456789abcdef";
const MASTER: MasterKey = MasterKey([9; 32]);
const EPOCH: u32 = 3;

fn open(dir: &Path, clock: &ManualClock) -> Sdk {
    Sdk::open(dir, &MASTER, SdkConfig::default(), Arc::new(clock.clone())).unwrap()
}

/// The issuer's side of one issuance: checks the code, evaluates the blinded
/// elements. Returns the response bytes.
fn issue(issuer: &TokenKey, request: &[u8]) -> Vec<u8> {
    let request = TokenIssueRequest::decode(request).unwrap();
    assert_eq!(request.authorization, CODE);
    assert_eq!(request.epoch, issuer.epoch);
    issuer.issue(&request.blinded).unwrap().encode()
}

/// Request, issue and finalize `count` tokens.
fn obtain(sdk: &mut Sdk, issuer: &TokenKey, count: usize) -> usize {
    let request = sdk.token_request(issuer.epoch, count, CODE).unwrap();
    sdk.token_finalize(&issue(issuer, &request), &issuer.public_key())
        .unwrap()
}

/// What the gateway does with a sealed upload: open and decode it.
fn open_at_gateway(gateway: &GatewaySealKey, sealed: &[u8], now: u64) -> Upload {
    assert_eq!(sealed.len(), SEALED_UPLOAD_LEN);
    Upload::decode(&gateway.open(sealed).unwrap(), now).unwrap()
}

fn all_bytes(dir: &Path) -> Vec<u8> {
    fn walk(dir: &Path, files: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, files);
            } else {
                files.push(p);
            }
        }
    }
    let mut files = Vec::new();
    walk(dir, &mut files);
    files
        .iter()
        .flat_map(|f| std::fs::read(f).unwrap())
        .collect()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn tokens_are_stored_sealed_survive_reopening_and_are_spent_once() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("phone");
    let clock = ManualClock::new(at(DAY0, 600));
    let issuer = TokenKey::generate(EPOCH);
    let gateway = GatewaySealKey::generate();
    let mut p = open(&dir, &clock);
    p.advertisement().unwrap();
    assert_eq!(p.tokens_available().unwrap(), 0);

    let request = p.token_request(EPOCH, 3, CODE).unwrap();
    assert_eq!(
        p.token_finalize(&issue(&issuer, &request), &issuer.public_key())
            .unwrap(),
        3
    );
    assert_eq!(p.tokens_available().unwrap(), 3);
    drop(p);
    let on_disk = all_bytes(&dir);

    // A fresh process with the same master key finds them.
    clock.advance(3600);
    let mut p = open(&dir, &clock);
    assert_eq!(p.tokens_available().unwrap(), 3);

    let mut inputs = Vec::new();
    for left in (0..3).rev() {
        let sealed = p
            .sealed_diagnosis_upload(&gateway.public_bytes(), DAY0, &[])
            .unwrap();
        let upload = open_at_gateway(&gateway, &sealed, clock.now());
        let token = upload.token.unwrap();
        assert!(issuer.verify(&token), "the token verifies at the gateway");
        assert!(upload.upload_code.is_empty());
        assert!(!upload.dummy);
        assert!(!inputs.contains(&token.input), "each token is spent once");
        inputs.push(token.input);
        assert_eq!(p.tokens_available().unwrap(), left);
    }
    match p.sealed_diagnosis_upload(&gateway.public_bytes(), DAY0, &[]) {
        Err(SdkError::InvalidArgument(m)) => assert!(m.contains("no upload token"), "{m}"),
        other => panic!("expected InvalidArgument, got {other:?}"),
    }
    drop(p);
    // Spent durably: still gone after reopening.
    let mut p = open(&dir, &clock);
    assert_eq!(p.tokens_available().unwrap(), 0);
    drop(p);

    // The issuer only ever saw blinded elements, and the disk only sealed tokens.
    let after = all_bytes(&dir);
    for input in &inputs {
        assert!(!contains(&request, input), "an input went to the issuer");
        assert!(
            !contains(&on_disk, input),
            "a token input is on disk in clear"
        );
        assert!(
            !contains(&after, input),
            "a token input is on disk in clear"
        );
    }
}

#[test]
fn a_sealed_upload_carries_the_diagnosis_keys_and_retires_the_key_in_use() {
    let clock = ManualClock::new(at(DAY0, 600));
    let issuer = TokenKey::generate(EPOCH);
    let gateway = GatewaySealKey::generate();
    let mut p = phone(&clock);
    // One broadcast on each of three days.
    let mut heard = Vec::new();
    for day in DAY0..DAY0 + 3 {
        clock.set(at(day, 600));
        heard.push((day, clock.now(), p.advertisement().unwrap()));
    }
    assert_eq!(obtain(&mut p, &issuer, 2), 2);

    // Without tokens nothing happens to the keys; with one, the upload excludes
    // what the user left out and carries the rest.
    let before = p.advertisement().unwrap();
    let sealed = p
        .sealed_diagnosis_upload(&gateway.public_bytes(), DAY0 + 1, &[DAY0 + 1])
        .unwrap();
    let upload = open_at_gateway(&gateway, &sealed, clock.now());
    assert!(issuer.verify(&upload.token.unwrap()));
    assert!(upload.upload_code.is_empty());
    assert_eq!(upload.keys.len(), 2, "days 0 and 2; day 1 excluded");
    for (day, at, ad) in &heard {
        let derives = upload
            .keys
            .iter()
            .any(|k| k.tek.rpik().rpi(interval_number(*at)) == ad.rpi);
        assert_eq!(derives, *day != DAY0 + 1, "day {day}");
    }
    let after = p.advertisement().unwrap();
    assert_ne!(after.rpi, before.rpi, "the key in use was retired");
    assert!(upload
        .keys
        .iter()
        .all(|k| k.tek.rpik().rpi(interval_number(clock.now())) != after.rpi));

    // The same key selection as the code-authorized bundle.
    let bundle = p.diagnosis_upload(CODE, DAY0 + 1, &[DAY0 + 1]).unwrap();
    let plain = Upload::decode(&bundle, clock.now()).unwrap();
    assert_eq!(plain.upload_code, CODE);
    assert!(plain.token.is_none());
    assert_eq!(
        plain.keys.len(),
        3,
        "a second key of today after the retirement"
    );
    assert_eq!(plain.keys[..2], upload.keys[..]);

    // Spending the last token; then a refusal leaves the key in use alone.
    p.sealed_diagnosis_upload(&gateway.public_bytes(), DAY0, &[])
        .unwrap();
    let current = p.advertisement().unwrap();
    assert!(matches!(
        p.sealed_diagnosis_upload(&gateway.public_bytes(), DAY0, &[]),
        Err(SdkError::InvalidArgument(_))
    ));
    assert_eq!(p.advertisement().unwrap(), current);
}

#[test]
fn a_sealed_dummy_looks_like_a_real_upload_but_its_token_verifies_nowhere() {
    let clock = ManualClock::new(at(DAY0, 600));
    let issuer = TokenKey::generate(EPOCH);
    let gateway = GatewaySealKey::generate();
    let mut p = phone(&clock);
    p.advertisement().unwrap();

    // Without tokens: epoch 0.
    let first_due = p.next_dummy_upload_at().unwrap();
    let dummy = p.sealed_dummy_upload(&gateway.public_bytes()).unwrap();
    assert_eq!(dummy.len(), SEALED_UPLOAD_LEN);
    let upload = open_at_gateway(&gateway, &dummy, clock.now());
    assert!(upload.dummy);
    assert!(upload.keys.is_empty() && upload.upload_code.is_empty());
    assert_eq!(upload.token.unwrap().epoch, 0);
    assert_ne!(
        p.next_dummy_upload_at().unwrap(),
        first_due,
        "next one drawn"
    );

    obtain(&mut p, &issuer, 1);
    let dummy = p.sealed_dummy_upload(&gateway.public_bytes()).unwrap();
    let upload = open_at_gateway(&gateway, &dummy, clock.now());
    let token = upload.token.unwrap();
    assert_eq!(token.epoch, EPOCH, "the epoch real uploads use");
    assert!(!issuer.verify(&token));
    assert_eq!(p.tokens_available().unwrap(), 1, "dummies spend nothing");

    let real = p
        .sealed_diagnosis_upload(&gateway.public_bytes(), DAY0, &[])
        .unwrap();
    assert_eq!(real.len(), dummy.len());
    assert_ne!(real[..33], dummy[..33], "fresh encapsulation each time");
    // Another gateway cannot open either.
    let other = GatewaySealKey::generate();
    assert!(other.open(&real).is_err() && other.open(&dummy).is_err());
}

#[test]
fn bad_issuances_are_rejected_and_store_nothing() {
    let clock = ManualClock::new(at(DAY0, 600));
    let issuer = TokenKey::generate(EPOCH);
    let impostor = TokenKey::generate(EPOCH);
    let mut p = phone(&clock);

    // No pending request.
    let request =
        TokenIssueRequest::decode(&phone(&clock).token_request(EPOCH, 1, CODE).unwrap()).unwrap();
    let stray = issuer.issue(&request.blinded).unwrap().encode();
    assert!(matches!(
        p.token_finalize(&stray, &issuer.public_key()),
        Err(SdkError::InvalidArgument(_))
    ));
    // Counts out of range.
    for count in [0, 17] {
        assert!(matches!(
            p.token_request(EPOCH, count, CODE),
            Err(SdkError::InvalidArgument(_))
        ));
    }

    let request = p.token_request(EPOCH, 2, CODE).unwrap();
    // Evaluated under another key (a per-user key that would tag the tokens).
    let tagged = issue(&impostor, &request);
    assert!(matches!(
        p.token_finalize(&tagged, &issuer.public_key()),
        Err(SdkError::Rejected(_))
    ));
    // Honest response checked against the wrong public key, or another epoch.
    let honest = issue(&issuer, &request);
    assert!(matches!(
        p.token_finalize(&honest, &impostor.public_key()),
        Err(SdkError::Rejected(_))
    ));
    let mut wrong_epoch = issuer.public_key();
    wrong_epoch.epoch += 1;
    assert!(matches!(
        p.token_finalize(&honest, &wrong_epoch),
        Err(SdkError::Rejected(_))
    ));
    // Malformed bytes, a response for someone else's request.
    let junk: [&[u8]; 4] = [b"junk", &[], &stray, &honest[..honest.len() - 1]];
    for junk in junk {
        assert!(
            matches!(
                p.token_finalize(junk, &issuer.public_key()),
                Err(SdkError::Rejected(_))
            ),
            "{junk:?}"
        );
    }
    assert_eq!(p.tokens_available().unwrap(), 0, "nothing stored");

    // The request is still pending: the honest answer is taken once.
    assert_eq!(p.token_finalize(&honest, &issuer.public_key()).unwrap(), 2);
    assert!(matches!(
        p.token_finalize(&honest, &issuer.public_key()),
        Err(SdkError::InvalidArgument(_))
    ));
    // A new request replaces a pending one.
    let first = p.token_request(EPOCH, 1, CODE).unwrap();
    let second = p.token_request(EPOCH, 1, CODE).unwrap();
    assert!(matches!(
        p.token_finalize(&issue(&issuer, &first), &issuer.public_key()),
        Err(SdkError::Rejected(_))
    ));
    assert_eq!(
        p.token_finalize(&issue(&issuer, &second), &issuer.public_key())
            .unwrap(),
        1
    );
    assert_eq!(p.tokens_available().unwrap(), 3);
}

#[test]
fn tokens_are_crypto_shredded_with_their_day() {
    let clock = ManualClock::new(at(DAY0, 600));
    let issuer = TokenKey::generate(EPOCH);
    let newer = TokenKey::generate(EPOCH + 1);
    let gateway = GatewaySealKey::generate();
    let mut p = phone(&clock);
    obtain(&mut p, &issuer, 2);
    clock.set(at(DAY0 + 2, 600));
    obtain(&mut p, &newer, 1);
    assert_eq!(p.tokens_available().unwrap(), 3);

    // An upload that fails (no own keys yet) spends nothing.
    assert!(matches!(
        p.sealed_diagnosis_upload(&gateway.public_bytes(), DAY0, &[]),
        Err(SdkError::InvalidArgument(_))
    ));
    assert_eq!(p.tokens_available().unwrap(), 3);

    // The newest epoch is spent first.
    p.advertisement().unwrap();
    let sealed = p
        .sealed_diagnosis_upload(&gateway.public_bytes(), DAY0, &[])
        .unwrap();
    let token = open_at_gateway(&gateway, &sealed, clock.now())
        .token
        .unwrap();
    assert!(newer.verify(&token));
    assert_eq!(p.tokens_available().unwrap(), 2);

    // Day 0 ends its retention: its tokens go with its key.
    clock.set(at(DAY0 + 15, 0));
    assert_eq!(p.tokens_available().unwrap(), 0);
}

//! A configurable SDK: settings checked at open and when replaced, and an
//! authority's signed risk configuration applied only when genuine and newer.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use common::*;
use traceless_protocol::{AuthorityKey, Clock, ManualClock, RiskConfig, RiskParameters, WireError};
use traceless_sdk::{Sdk, SdkConfig, SdkError};

const CODE: &[u8] = b"0123456789abcdef-0123456789abcdef0123456789abcdef";

fn risk_config(origin: &str, revision: u64, threshold: f64, now: u64) -> RiskConfig {
    RiskConfig {
        origin: origin.into(),
        revision,
        created_at: now,
        parameters: RiskParameters {
            threshold,
            ..RiskParameters::default()
        },
    }
}

#[test]
fn out_of_range_settings_are_refused_at_open_and_when_replaced() {
    let clock = ManualClock::new(at(DAY0, 600));
    for bad in [
        SdkConfig {
            scan_period_s: 0,
            ..SdkConfig::default()
        },
        SdkConfig {
            scan_period_s: 301,
            ..SdkConfig::default()
        },
        SdkConfig {
            matcher_threads: 0,
            ..SdkConfig::default()
        },
        SdkConfig {
            risk: RiskParameters {
                attenuation_thresholds_db: [63, 55],
                ..RiskParameters::default()
            },
            ..SdkConfig::default()
        },
        SdkConfig {
            risk: RiskParameters {
                threshold: f64::NAN,
                ..RiskParameters::default()
            },
            ..SdkConfig::default()
        },
    ] {
        let opened = Sdk::in_memory(bad.clone(), Arc::new(clock.clone()));
        assert!(
            matches!(opened, Err(SdkError::InvalidArgument(_))),
            "{bad:?}"
        );
        let mut p = phone(&clock);
        assert!(matches!(
            p.set_config(bad),
            Err(SdkError::InvalidArgument(_))
        ));
        assert_eq!(p.config(), &SdkConfig::default(), "nothing changed");
    }
}

#[test]
fn a_new_threshold_rescored_the_summary_and_a_new_tx_power_is_advertised() {
    let clock = ManualClock::new(at(DAY0, 600));
    let (mut alice, mut bob) = (phone(&clock), phone(&clock));
    meet(&clock, &mut alice, &mut bob, 30, -60);
    clock.set(at(DAY0 + 1, 600));
    let mut authority = Authority::new("test.health");
    authority.trusted_by(&mut bob);
    let bundle = alice.diagnosis_upload(CODE, DAY0, &[]).unwrap();
    for b in authority.publish_upload(&bundle, clock.now()) {
        bob.sync_batch(&b).unwrap();
    }
    assert!(bob.exposure_summary().unwrap()[0].high_risk);
    let mut next = bob.config().clone();
    next.risk.threshold = 100.0;
    bob.set_config(next).unwrap();
    assert!(!bob.exposure_summary().unwrap()[0].high_risk);
}

#[test]
fn a_signed_risk_config_applies_once_per_revision_and_only_from_a_trusted_authority() {
    let clock = ManualClock::new(at(DAY0, 600));
    let mut p = phone(&clock);
    let authority = Authority::new("test.health");
    authority.trusted_by(&mut p);
    let now = clock.now();
    let sign = |c: RiskConfig, k: &AuthorityKey| c.sign(k).unwrap().encode();

    let stranger = AuthorityKey::generate("test.health", 1);
    let forged = sign(risk_config("test.health", 1, 40.0, now), &stranger);
    assert!(matches!(
        p.apply_risk_config(&forged),
        Err(SdkError::Rejected(WireError::BadSignature(_)))
    ));
    let other = AuthorityKey::generate("other.health", 1);
    let untrusted = sign(risk_config("other.health", 1, 40.0, now), &other);
    assert!(matches!(
        p.apply_risk_config(&untrusted),
        Err(SdkError::Rejected(WireError::UntrustedSigner { .. }))
    ));
    assert_eq!(p.config().risk.threshold, 15.0, "nothing applied");

    let second = sign(risk_config("test.health", 2, 20.0, now), &authority.key);
    assert_eq!(p.apply_risk_config(&second).unwrap(), 2);
    assert_eq!(p.config().risk.threshold, 20.0);
    let first = sign(risk_config("test.health", 1, 40.0, now), &authority.key);
    for stale in [&first, &second] {
        assert!(matches!(
            p.apply_risk_config(stale),
            Err(SdkError::AlreadySynced(_))
        ));
    }
    assert_eq!(
        p.config().risk.threshold,
        20.0,
        "an older revision never wins"
    );
}

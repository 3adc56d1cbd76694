//! Upload tokens (VOPRF) and sealed uploads (HPKE) as a phone, an issuer and a
//! gateway use them; bad input gets typed errors.

#![allow(clippy::unwrap_used)]

use traceless_protocol::sealed::SEAL_KEY_LEN;
use traceless_protocol::token::TokenIssueRequest;
use traceless_protocol::wire::UPLOAD_REQUEST_LEN;
use traceless_protocol::*;

const NOW: u64 = 1_700_000_000;

fn tokens(key: &TokenKey, n: usize) -> Vec<UploadToken> {
    let request = TokenRequest::new(key.epoch, n).unwrap();
    let at_issuer = TokenIssueRequest::decode(&request.encode(b"code")).unwrap();
    assert_eq!(at_issuer.authorization, b"code");
    let response = TokenResponse::decode(&key.issue(&at_issuer.blinded).unwrap().encode()).unwrap();
    request.finalize(&response, &key.public_key()).unwrap()
}

#[test]
fn issued_tokens_verify_at_the_gateway_and_nowhere_else() {
    let key = TokenKey::generate(3);
    let issued = tokens(&key, 4);
    assert_eq!(issued.len(), 4);
    for t in &issued {
        assert!(key.verify(t));
    }
    let restored = TokenKey::from_bytes(3, &key.to_bytes()).unwrap();
    assert!(
        restored.verify(&issued[0]),
        "the gateway's copy of the key verifies"
    );
    assert!(
        !TokenKey::generate(3).verify(&issued[0]),
        "another key does not"
    );
    let mut forged = issued[0];
    forged.output[0] ^= 1;
    assert!(!key.verify(&forged));
    let mut other_epoch = issued[0];
    other_epoch.epoch = 4;
    assert!(!key.verify(&other_epoch));
}

#[test]
fn the_phone_rejects_an_issuance_under_another_key_or_tampered() {
    let key = TokenKey::generate(1);
    let tagging = TokenKey::generate(1); // a per-user key would let the issuer tag tokens
    let request = TokenRequest::new(1, 2).unwrap();
    let response = tagging.issue(&request.blinded).unwrap();
    assert_eq!(
        request.finalize(&response, &key.public_key()).unwrap_err(),
        WireError::BadSignature("token issuance proof")
    );
    let mut tampered = key.issue(&request.blinded).unwrap();
    tampered.evaluated.swap(0, 1);
    assert!(request.finalize(&tampered, &key.public_key()).is_err());
    let mut short = key.issue(&request.blinded).unwrap();
    short.evaluated.pop();
    assert!(request.finalize(&short, &key.public_key()).is_err());
}

#[test]
fn token_requests_are_bounded_and_checked() {
    assert!(TokenRequest::new(1, 0).is_err());
    assert!(TokenRequest::new(1, 17).is_err());
    let key = TokenKey::generate(1);
    assert!(
        key.issue(&[[0xFF; 32]]).is_err(),
        "not a ristretto255 element"
    );
    assert!(key.issue(&[]).is_err());
    assert!(matches!(
        TokenIssueRequest::decode(&[0xFF; 10]),
        Err(WireError::Malformed { .. })
    ));
    assert!(matches!(
        TokenIssueRequest::decode(&vec![0u8; 5000]),
        Err(WireError::Oversized { .. })
    ));
}

#[test]
fn sealed_uploads_open_only_at_their_gateway_and_all_have_one_length() {
    let gateway = GatewaySealKey::generate();
    let key = TokenKey::generate(1);
    let token = tokens(&key, 1)[0];
    let real = Upload {
        upload_code: Vec::new(),
        token: Some(token),
        keys: vec![DiagnosisKey {
            tek: Tek([9; 16]),
            rolling_start: interval_number(NOW) / 144 * 144 - 144,
            rolling_period: 144,
            transmission_risk: 6,
            days_since_onset: 1,
        }],
        dummy: false,
        filter_intervals: Vec::new(),
        stays: Default::default(),
    }
    .encode_padded()
    .unwrap();
    let dummy = Upload {
        token: Some(UploadToken {
            epoch: 1,
            input: [1; 32],
            output: [2; 64],
        }),
        dummy: true,
        ..Default::default()
    }
    .encode_padded()
    .unwrap();
    let sealed_real = seal_upload(&gateway.public_bytes(), &real).unwrap();
    let sealed_dummy = seal_upload(&gateway.public_bytes(), &dummy).unwrap();
    assert_eq!(sealed_real.len(), SEALED_UPLOAD_LEN);
    assert_eq!(sealed_dummy.len(), SEALED_UPLOAD_LEN);
    assert!(
        !sealed_real.windows(16).any(|w| w == [9; 16]),
        "the TEK is not in clear"
    );

    let restored = GatewaySealKey::from_secret(&gateway.secret_bytes()).unwrap();
    let opened = restored.open(&sealed_real).unwrap();
    assert_eq!(opened, real);
    let upload = Upload::decode(&opened, NOW).unwrap();
    assert_eq!(upload.token, Some(token));
    assert!(key.verify(&upload.token.unwrap()));

    let other = GatewaySealKey::generate();
    assert!(matches!(
        other.open(&sealed_real),
        Err(WireError::BadSignature(_))
    ));
    let mut tampered = sealed_real.clone();
    tampered[100] ^= 1;
    assert!(gateway.open(&tampered).is_err());
    let mut version = sealed_real.clone();
    version[0] = 2;
    assert!(matches!(
        gateway.open(&version),
        Err(WireError::UnsupportedVersion { .. })
    ));
    assert!(gateway.open(&sealed_real[1..]).is_err());
    assert!(seal_upload(&gateway.public_bytes(), &real[1..]).is_err());
    assert_eq!(real.len(), UPLOAD_REQUEST_LEN);
    assert_eq!(gateway.public_bytes().len(), SEAL_KEY_LEN);
}

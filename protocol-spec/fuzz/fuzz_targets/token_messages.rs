#![no_main]
//! `TokenIssueRequest::decode` and `TokenResponse::decode`: no panic, and an
//! issuer never panics on what a request decodes to.
use libfuzzer_sys::fuzz_target;
use traceless_protocol::token::TokenIssueRequest;
use traceless_protocol::{TokenKey, TokenResponse};

fuzz_target!(|data: &[u8]| {
    if let Ok(request) = TokenIssueRequest::decode(data) {
        let _ = TokenKey::generate(1).issue(&request.blinded);
    }
    let _ = TokenResponse::decode(data);
});

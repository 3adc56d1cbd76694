#![no_main]
//! `EntryCode::from_url` / `from_payload`: every accepted code re-validates and
//! its URL parses back to the same code.
use libfuzzer_sys::fuzz_target;
use traceless_protocol::venue::EntryCode;

fuzz_target!(|data: &[u8]| {
    if let Ok(code) = EntryCode::from_payload(data) {
        assert!(code.venue.validate().is_ok());
        assert_eq!(EntryCode::from_url(&code.to_url("https://x.example/c")), Ok(code));
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = EntryCode::from_url(text);
    }
});

#![no_main]
//! `log::Event::decode`: a decoded entry re-encodes to the same bytes.
use libfuzzer_sys::fuzz_target;
use traceless_protocol::log::Event;

fuzz_target!(|data: &[u8]| {
    if let Ok(e) = Event::decode(data) {
        assert_eq!(e.encode(), data);
    }
});

#![no_main]
//! A received advertisement as a phone handles it: `Advertisement::from_bytes`
//! on the first 20 bytes (round trip), then, with a TEK (next 16 bytes) and an
//! interval (next 4), the match test a published key runs against it and the
//! metadata decryption of a match (its inverse re-encrypts to the same AEM).
//! Inputs shorter than 20 bytes must be refused.
use libfuzzer_sys::fuzz_target;
use traceless_protocol::{Advertisement, Tek, ADVERTISEMENT_LEN};

fuzz_target!(|data: &[u8]| {
    let Some(ad_bytes) = data.get(..ADVERTISEMENT_LEN) else {
        assert!(Advertisement::from_bytes(data).is_none());
        return;
    };
    let ad = Advertisement::from_bytes(ad_bytes).expect("20 bytes parse");
    assert_eq!(ad.to_bytes().as_slice(), ad_bytes);
    let rest = &data[ADVERTISEMENT_LEN..];
    let (Some(tek), Some(interval)) = (rest.get(..16), rest.get(16..20)) else {
        return;
    };
    let tek = Tek(tek.try_into().expect("16 bytes"));
    let interval = u32::from_le_bytes(interval.try_into().expect("4 bytes"));
    let metadata = tek.aemk().decrypt_metadata(&ad.rpi, &ad.aem);
    assert_eq!(tek.aemk().encrypt_metadata(&ad.rpi, metadata), ad.aem);
    if tek.rpik().rpi(interval) == ad.rpi {
        // A match: the key broadcasts exactly this advertisement.
        assert_eq!(tek.advertisement(interval, metadata), ad);
    }
});

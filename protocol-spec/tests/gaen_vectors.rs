//! The published Exposure Notification v1.2 test vectors (`vectors/gaen-v1.2.json`,
//! SPEC.md §11): one TEK, its RPIK and AEMK, the metadata, and the RPI and AEM of
//! all 144 intervals of its day. Every value is checked byte for byte, the RPIs with
//! both the plain key schedule (`keys.rs`) and the batched one (`derive.rs`).

#![allow(clippy::unwrap_used)]

use serde::Deserialize;
use traceless_protocol::*;

const PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/vectors/gaen-v1.2.json");

#[derive(Deserialize)]
struct Vectors {
    source: String,
    key_generation_unix_seconds: u64,
    tek: String,
    rpik: String,
    aemk: String,
    metadata: String,
    rolling_start_interval_number: u32,
    rolling_period: u32,
    rpis: Vec<String>,
    aems: Vec<String>,
}

fn load() -> Vectors {
    serde_json::from_str(&std::fs::read_to_string(PATH).expect("vectors file exists"))
        .expect("vectors file parses")
}

fn bytes<const N: usize>(hex_str: &str) -> [u8; N] {
    hex::decode(hex_str)
        .unwrap()
        .try_into()
        .unwrap_or_else(|v: Vec<u8>| panic!("{hex_str}: {} bytes, expected {N}", v.len()))
}

#[test]
fn file_is_complete() {
    let v = load();
    assert!(v.source.contains("exposure-notifications-internals"));
    assert_eq!(v.rolling_period, 144);
    assert_eq!(v.rpis.len(), 144);
    assert_eq!(v.aems.len(), 144);
    assert_eq!(
        interval_number(v.key_generation_unix_seconds),
        v.rolling_start_interval_number
    );
}

#[test]
fn rpik_and_aemk_from_tek() {
    let v = load();
    let tek = Tek(bytes(&v.tek));
    assert_eq!(tek.rpik().0, bytes::<16>(&v.rpik), "RPIK");
    assert_eq!(tek.aemk().0, bytes::<16>(&v.aemk), "AEMK");
    assert_eq!(
        TokenDeriver::new().rpik(&tek).0,
        bytes::<16>(&v.rpik),
        "batched RPIK"
    );
}

#[test]
fn every_rpi_plain() {
    let v = load();
    let rpik = Tek(bytes(&v.tek)).rpik();
    for (i, expected) in v.rpis.iter().enumerate() {
        let interval = v.rolling_start_interval_number + i as u32;
        assert_eq!(rpik.rpi(interval).0, bytes::<16>(expected), "RPI {i}");
    }
}

#[test]
fn every_rpi_batched() {
    let v = load();
    let tek = Tek(bytes(&v.tek));
    let mut deriver = TokenDeriver::new();
    let rpis = deriver.rpis(&tek, v.rolling_start_interval_number, v.rolling_period);
    assert_eq!(rpis.len(), v.rpis.len());
    for (i, (got, expected)) in rpis.iter().zip(&v.rpis).enumerate() {
        assert_eq!(got.as_slice(), bytes::<16>(expected), "batched RPI {i}");
    }
}

#[test]
fn every_aem_from_metadata() {
    let v = load();
    let tek = Tek(bytes(&v.tek));
    let aemk = tek.aemk();
    let metadata = Metadata(bytes(&v.metadata));
    for (i, (rpi, expected)) in v.rpis.iter().zip(&v.aems).enumerate() {
        let rpi = Rpi(bytes(rpi));
        let aem = aemk.encrypt_metadata(&rpi, metadata);
        assert_eq!(aem.0, bytes::<4>(expected), "AEM {i}");
        assert_eq!(aemk.decrypt_metadata(&rpi, &aem), metadata, "metadata {i}");
        let interval = v.rolling_start_interval_number + i as u32;
        let adv = tek.advertisement(interval, metadata);
        assert_eq!((adv.rpi, adv.aem), (rpi, aem), "advertisement {i}");
    }
}

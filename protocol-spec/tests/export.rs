//! GAEN export files: round trip, signature checks, bad files.

use p256::ecdsa::SigningKey;
use traceless_protocol::*;

const NOW: u64 = 1_750_000_000;

fn export() -> ExportFile {
    let day = day_of_unix(NOW) - 2;
    ExportFile {
        start_timestamp: u64::from(day) * 86_400,
        end_timestamp: u64::from(day + 1) * 86_400,
        region: "DE".into(),
        batch_num: 1,
        batch_size: 1,
        signer: ExportSigner {
            key_id: "262".into(),
            key_version: "v1".into(),
        },
        keys: (0..20u8)
            .map(|i| DiagnosisKey {
                tek: Tek([i; 16]),
                rolling_start: day_start_interval(day),
                rolling_period: 144,
                transmission_risk: i % 9,
                days_since_onset: (i % 10) as i8 - 2,
            })
            .collect(),
    }
}

fn signing_key(seed: u8) -> SigningKey {
    SigningKey::from_slice(&[seed; 32]).expect("valid scalar")
}

#[test]
fn export_zip_round_trips() {
    let key = signing_key(1);
    let zip = export().to_zip(&key);
    let read = ExportFile::from_zip(&zip, key.verifying_key(), NOW).unwrap();
    assert_eq!(read, export());
}

#[test]
fn export_bin_starts_with_the_gaen_header() {
    let bin = export().export_bin();
    assert_eq!(&bin[..16], b"EK Export v1    ");
}

#[test]
fn a_file_signed_with_one_key_fails_with_another() {
    let zip = export().to_zip(&signing_key(1));
    let err = ExportFile::from_zip(&zip, signing_key(2).verifying_key(), NOW).unwrap_err();
    assert_eq!(err, WireError::BadSignature("export.bin"));
}

#[test]
fn corrupt_and_incomplete_zips_are_rejected() {
    let key = signing_key(1);
    let zip = export().to_zip(&key);
    let truncated = &zip[..zip.len() / 2];
    assert!(matches!(
        ExportFile::from_zip(truncated, key.verifying_key(), NOW),
        Err(WireError::Malformed {
            what: "export zip",
            ..
        })
    ));
    assert!(ExportFile::from_zip(b"not a zip", key.verifying_key(), NOW).is_err());
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(32))]

    #[test]
    fn any_valid_export_round_trips(
        keys in proptest::collection::vec((proptest::prelude::any::<[u8; 16]>(), 1u32..=144, 0u8..=8, -14i8..=14), 0..40),
        region in "[A-Z]{2}",
        batch_num in 1i32..5,
    ) {
        let day = day_of_unix(NOW) - 3;
        let mut file = export();
        file.region = region;
        file.batch_num = batch_num;
        file.batch_size = batch_num;
        file.keys = keys.into_iter().map(|(tek, period, tr, dso)| DiagnosisKey {
            tek: Tek(tek),
            rolling_start: day_start_interval(day),
            rolling_period: period,
            transmission_risk: tr,
            days_since_onset: dso,
        }).collect();
        let key = signing_key(3);
        let read = ExportFile::from_zip(&file.to_zip(&key), key.verifying_key(), NOW).unwrap();
        proptest::prop_assert_eq!(read, file);
    }
}

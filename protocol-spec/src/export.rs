//! Google/Apple Exposure Notification key export files (SPEC.md §6.2): a zip with
//! `export.bin` (16-byte header `"EK Export v1    "` then a
//! `TemporaryExposureKeyExport`) and `export.sig` (a `TEKSignatureList` whose
//! signature is ECDSA P-256 over SHA-256 of the whole `export.bin`, DER-encoded).

use std::io::{Cursor, Read, Write};

use p256::ecdsa::signature::{Signer, Verifier};
use p256::ecdsa::{Signature, SigningKey, VerifyingKey};
use prost::Message;

use crate::diagnosis::{key_from_wire, DiagnosisKey};
use crate::error::WireError;
use crate::interval::{day_start_interval, interval_start_seconds};
use crate::wire::{gaen_pb, Batch, ExportKeyCertificate};

/// Header that starts every `export.bin`.
pub const EXPORT_HEADER: &[u8; 16] = b"EK Export v1    ";
/// `signature_algorithm` of ECDSA P-256 with SHA-256.
pub const ECDSA_P256_SHA256_OID: &str = "1.2.840.10045.4.3.2";
/// Largest zip accepted.
pub const MAX_EXPORT_ZIP_LEN: usize = 16 << 20;
/// Largest uncompressed entry accepted (bounds zip bombs).
pub const MAX_EXPORT_ENTRY_LEN: u64 = 32 << 20;

const BIN_NAME: &str = "export.bin";
const SIG_NAME: &str = "export.sig";

/// Who signed an export, as named in its `SignatureInfo`.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ExportSigner {
    /// `verification_key_id`, e.g. the mobile country code.
    pub key_id: String,
    /// `verification_key_version`, e.g. `"v1"`.
    pub key_version: String,
}

/// The content of one export file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExportFile {
    /// Start of the time window covered, unix seconds.
    pub start_timestamp: u64,
    /// End of the time window covered, unix seconds.
    pub end_timestamp: u64,
    /// Region code, e.g. `"DE"`.
    pub region: String,
    /// Number of this file within its batch, from 1.
    pub batch_num: i32,
    /// Number of files in the batch.
    pub batch_size: i32,
    /// Signature metadata.
    pub signer: ExportSigner,
    /// The keys.
    pub keys: Vec<DiagnosisKey>,
}

fn zip_error(e: impl std::fmt::Display) -> WireError {
    WireError::Malformed {
        what: "export zip",
        reason: e.to_string(),
    }
}

fn non_negative(field: &'static str, v: i32) -> Result<u32, WireError> {
    u32::try_from(v).map_err(|_| WireError::invalid(field, format!("{v} is negative")))
}

impl ExportFile {
    fn signature_info(&self) -> gaen_pb::SignatureInfo {
        gaen_pb::SignatureInfo {
            verification_key_version: Some(self.signer.key_version.clone()),
            verification_key_id: Some(self.signer.key_id.clone()),
            signature_algorithm: Some(ECDSA_P256_SHA256_OID.to_owned()),
        }
    }

    /// The bytes of `export.bin`: header, then the protobuf export.
    // GAEN deprecated `transmission_risk_level`, but deployed apps still read it.
    #[allow(deprecated)]
    pub fn export_bin(&self) -> Vec<u8> {
        let export = gaen_pb::TemporaryExposureKeyExport {
            start_timestamp: Some(self.start_timestamp),
            end_timestamp: Some(self.end_timestamp),
            region: Some(self.region.clone()),
            batch_num: Some(self.batch_num),
            batch_size: Some(self.batch_size),
            signature_infos: vec![self.signature_info()],
            keys: self
                .keys
                .iter()
                .map(|k| gaen_pb::TemporaryExposureKey {
                    key_data: Some(k.tek.0.to_vec()),
                    transmission_risk_level: Some(i32::from(k.transmission_risk)),
                    rolling_start_interval_number: Some(k.rolling_start as i32),
                    rolling_period: Some(k.rolling_period as i32),
                    report_type: Some(
                        gaen_pb::temporary_exposure_key::ReportType::ConfirmedTest as i32,
                    ),
                    days_since_onset_of_symptoms: Some(i32::from(k.days_since_onset)),
                })
                .collect(),
            revised_keys: Vec::new(),
        };
        let mut bin = EXPORT_HEADER.to_vec();
        export.encode(&mut bin).expect("Vec grows as needed");
        bin
    }

    /// The export of one batch under an export key certificate (SPEC.md §6.2):
    /// the batch's keys in canonical order, the region and signer of the
    /// certificate, the batch's day as the time window, file 1 of 1. Every node
    /// builds the same `export.bin` from the same batch, so the authority's
    /// signature carried in the batch serves on every relay.
    pub fn of_batch(batch: &Batch, cert: &ExportKeyCertificate) -> ExportFile {
        let start = interval_start_seconds(day_start_interval(batch.day));
        ExportFile {
            start_timestamp: start,
            end_timestamp: start + 86_400,
            region: cert.region.clone(),
            batch_num: 1,
            batch_size: 1,
            signer: cert.signer.clone(),
            keys: batch.keys.clone(),
        }
    }

    /// Writes the zip with `export.bin` and `export.sig` signed by `key`.
    pub fn to_zip(&self, key: &SigningKey) -> Vec<u8> {
        let signature: Signature = key.sign(&self.export_bin());
        self.to_zip_signed(signature.to_der().as_bytes())
    }

    /// Writes the zip with `export.bin` and an `export.sig` carrying
    /// `signature_der` (made over this `export.bin` beforehand).
    pub fn to_zip_signed(&self, signature_der: &[u8]) -> Vec<u8> {
        let bin = self.export_bin();
        let sig = gaen_pb::TekSignatureList {
            signatures: vec![gaen_pb::TekSignature {
                signature_info: Some(self.signature_info()),
                batch_num: Some(self.batch_num),
                batch_size: Some(self.batch_size),
                signature: Some(signature_der.to_vec()),
            }],
        }
        .encode_to_vec();
        let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        for (name, data) in [(BIN_NAME, &bin), (SIG_NAME, &sig)] {
            zip.start_file(name, options).expect("writing to memory");
            zip.write_all(data).expect("writing to memory");
        }
        zip.finish().expect("writing to memory").into_inner()
    }

    /// Reads a zip, checks that one of its signatures verifies under `key`, and
    /// validates every key as of `now_unix`.
    pub fn from_zip(
        bytes: &[u8],
        key: &VerifyingKey,
        now_unix: u64,
    ) -> Result<ExportFile, WireError> {
        if bytes.len() > MAX_EXPORT_ZIP_LEN {
            return Err(WireError::Oversized {
                what: "export zip",
                len: bytes.len(),
                max: MAX_EXPORT_ZIP_LEN,
            });
        }
        let mut archive = zip::ZipArchive::new(Cursor::new(bytes)).map_err(zip_error)?;
        let mut read_entry = |name: &str| -> Result<Vec<u8>, WireError> {
            let entry = archive
                .by_name(name)
                .map_err(|e| zip_error(format!("{name}: {e}")))?;
            let mut data = Vec::new();
            entry
                .take(MAX_EXPORT_ENTRY_LEN + 1)
                .read_to_end(&mut data)
                .map_err(zip_error)?;
            if data.len() as u64 > MAX_EXPORT_ENTRY_LEN {
                return Err(WireError::Oversized {
                    what: "export zip entry",
                    len: data.len(),
                    max: MAX_EXPORT_ENTRY_LEN as usize,
                });
            }
            Ok(data)
        };
        let bin = read_entry(BIN_NAME)?;
        let sig = read_entry(SIG_NAME)?;

        let list = gaen_pb::TekSignatureList::decode(sig.as_slice())
            .map_err(|e| WireError::malformed("export.sig", e))?;
        let verified = list.signatures.iter().any(|s| {
            Signature::from_der(s.signature())
                .is_ok_and(|signature| key.verify(&bin, &signature).is_ok())
        });
        if !verified {
            return Err(WireError::BadSignature("export.bin"));
        }

        let payload = bin.strip_prefix(EXPORT_HEADER.as_slice()).ok_or_else(|| {
            WireError::invalid(
                "header",
                "export.bin does not start with \"EK Export v1    \"",
            )
        })?;
        let export = gaen_pb::TemporaryExposureKeyExport::decode(payload)
            .map_err(|e| WireError::malformed("export.bin", e))?;
        let keys = export
            .keys
            .iter()
            .map(|k| {
                let start = non_negative(
                    "rolling_start_interval_number",
                    k.rolling_start_interval_number(),
                )?;
                let period = non_negative("rolling_period", k.rolling_period())?;
                let tr = non_negative("transmission_risk_level", k.transmission_risk_level())?;
                key_from_wire(
                    k.key_data(),
                    start,
                    period,
                    tr,
                    k.days_since_onset_of_symptoms(),
                    now_unix,
                )
            })
            .collect::<Result<_, _>>()?;
        let info = export.signature_infos.first();
        Ok(ExportFile {
            start_timestamp: export.start_timestamp(),
            end_timestamp: export.end_timestamp(),
            region: export.region().to_owned(),
            batch_num: export.batch_num(),
            batch_size: export.batch_size(),
            signer: ExportSigner {
                key_id: info
                    .map(|i| i.verification_key_id().to_owned())
                    .unwrap_or_default(),
                key_version: info
                    .map(|i| i.verification_key_version().to_owned())
                    .unwrap_or_default(),
            },
            keys,
        })
    }
}

//! Export key certificates (SPEC.md §6.2): an authority's Ed25519 signature
//! over its P-256 GAEN export key with the export metadata and a validity, so
//! that a phone or a GAEN client that trusts the authority can trust the export
//! files the authority signed, whichever relay serves them.

use prost::Message;

use super::PROTOCOL_VERSION;
use super::{check_reencodes, check_version, decode_limited, pb, signature_bytes, validate_origin};
use crate::error::WireError;
use crate::export::ExportSigner;
use crate::signing::{self, AuthorityKey, TrustList, EXPORT_KEY_CONTEXT, SIGNATURE_LEN};
use p256::ecdsa::VerifyingKey;

/// Largest encoded [`SignedExportKey`] accepted.
pub const MAX_SIGNED_EXPORT_KEY_LEN: usize = 512;
/// Length of a SEC1 compressed P-256 public key.
pub const SEC1_COMPRESSED_LEN: usize = 33;

/// An authority's export key with the metadata its export files carry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExportKeyCertificate {
    /// Authority id of the signer.
    pub origin: String,
    /// `verification_key_id` and `verification_key_version` of the files.
    pub signer: ExportSigner,
    /// The files' region.
    pub region: String,
    /// The P-256 public key.
    pub public_key: VerifyingKey,
    /// Valid from, unix seconds.
    pub not_before: u64,
    /// Valid until (exclusive), unix seconds.
    pub not_after: u64,
}

fn check_label(field: &'static str, v: &str, max: usize, extra: &[u8]) -> Result<(), WireError> {
    let ok = (1..=max).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || extra.contains(&b));
    if ok {
        Ok(())
    } else {
        Err(WireError::invalid(
            field,
            format!(
                "{v:?} must be 1..={max} characters of [A-Za-z0-9{}]",
                String::from_utf8_lossy(extra)
            ),
        ))
    }
}

/// Checks an export region: 1..=16 characters of `[A-Za-z0-9-]` (e.g. `"DE"`).
pub fn validate_region(region: &str) -> Result<(), WireError> {
    check_label("region", region, 16, b"-")
}

impl ExportKeyCertificate {
    /// The canonical encoding of the body.
    pub fn encode_body(&self) -> Vec<u8> {
        pb::ExportKeyBody {
            version: PROTOCOL_VERSION,
            origin: self.origin.clone(),
            key_id: self.signer.key_id.clone(),
            key_version: self.signer.key_version.clone(),
            region: self.region.clone(),
            public_key: self.public_key.to_encoded_point(true).as_bytes().to_vec(),
            not_before: self.not_before,
            not_after: self.not_after,
        }
        .encode_to_vec()
    }

    /// Decodes and validates a body: version, origin, labels, a compressed
    /// P-256 point, `not_before < not_after`, canonical form.
    pub fn decode_body(bytes: &[u8]) -> Result<ExportKeyCertificate, WireError> {
        const WHAT: &str = "export key body";
        let m: pb::ExportKeyBody = decode_limited(WHAT, bytes, MAX_SIGNED_EXPORT_KEY_LEN)?;
        check_version(WHAT, m.version)?;
        validate_origin(&m.origin)?;
        check_label("key_id", &m.key_id, 32, b"._-")?;
        check_label("key_version", &m.key_version, 32, b"._-")?;
        validate_region(&m.region)?;
        if m.public_key.len() != SEC1_COMPRESSED_LEN {
            return Err(WireError::invalid(
                "public_key",
                format!(
                    "is {} bytes, not a {SEC1_COMPRESSED_LEN}-byte compressed point",
                    m.public_key.len()
                ),
            ));
        }
        let public_key = VerifyingKey::from_sec1_bytes(&m.public_key)
            .map_err(|_| WireError::invalid("public_key", "is not a P-256 point"))?;
        if m.not_before >= m.not_after {
            return Err(WireError::invalid("not_after", "is not after not_before"));
        }
        let cert = ExportKeyCertificate {
            origin: m.origin,
            signer: ExportSigner {
                key_id: m.key_id,
                key_version: m.key_version,
            },
            region: m.region,
            public_key,
            not_before: m.not_before,
            not_after: m.not_after,
        };
        check_reencodes(WHAT, &cert.encode_body(), bytes)?;
        Ok(cert)
    }

    /// Fails with [`WireError::OutsideValidity`] unless `not_before <= at < not_after`.
    pub fn check_valid_at(&self, at: u64) -> Result<(), WireError> {
        if (self.not_before..self.not_after).contains(&at) {
            Ok(())
        } else {
            Err(WireError::OutsideValidity {
                what: "export key certificate",
                not_before: self.not_before,
                not_after: self.not_after,
                now: at,
            })
        }
    }

    /// Signs the certificate with the authority's key.
    pub fn sign(&self, key: &AuthorityKey) -> Result<SignedExportKey, WireError> {
        if self.origin != key.origin {
            return Err(WireError::invalid(
                "origin",
                "differs from the signing authority's",
            ));
        }
        let body = self.encode_body();
        let signature = signing::sign(&key.signing_key, EXPORT_KEY_CONTEXT, &body);
        Ok(SignedExportKey {
            body,
            key_id: key.key_id,
            signature,
        })
    }
}

/// An export key certificate as it travels: signed body bytes, key id, signature.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedExportKey {
    /// Canonical encoding of the body.
    pub body: Vec<u8>,
    /// Trust-list key id of the signer.
    pub key_id: u32,
    /// Ed25519 signature over `"traceless/v1/export-key" || 0x00 || body`.
    pub signature: [u8; SIGNATURE_LEN],
}

impl SignedExportKey {
    /// Protobuf encoding of the envelope.
    pub fn encode(&self) -> Vec<u8> {
        pb::SignedExportKey {
            body: self.body.clone(),
            key_id: self.key_id,
            signature: self.signature.to_vec(),
        }
        .encode_to_vec()
    }

    /// Decodes the envelope (size, shape, canonical encoding).
    pub fn decode(bytes: &[u8]) -> Result<SignedExportKey, WireError> {
        const WHAT: &str = "signed export key";
        let m: pb::SignedExportKey = decode_limited(WHAT, bytes, MAX_SIGNED_EXPORT_KEY_LEN)?;
        let signed = SignedExportKey {
            body: m.body,
            key_id: m.key_id,
            signature: signature_bytes(&m.signature)?,
        };
        check_reencodes(WHAT, &signed.encode(), bytes)?;
        Ok(signed)
    }

    /// Validates the body, checks the signer against `trust`, the signature and
    /// that the certificate is valid at `at` (unix seconds).
    pub fn verify(&self, trust: &TrustList, at: u64) -> Result<ExportKeyCertificate, WireError> {
        let cert = ExportKeyCertificate::decode_body(&self.body)?;
        let key = trust.get(&cert.origin, self.key_id)?;
        signing::verify(
            key,
            EXPORT_KEY_CONTEXT,
            &self.body,
            &self.signature,
            "export key certificate",
        )?;
        cert.check_valid_at(at)?;
        Ok(cert)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::wire::{Batch, Publication};
    use crate::{day_start_interval, DiagnosisKey, ExportFile, Tek};
    use p256::ecdsa::SigningKey;

    const NOW: u64 = 1_700_000_000;
    const DAY: u32 = 19_674;

    fn authority() -> AuthorityKey {
        AuthorityKey {
            origin: "test.health".into(),
            key_id: 1,
            signing_key: ed25519_dalek::SigningKey::from_bytes(&[7; 32]),
        }
    }

    fn trust() -> TrustList {
        let mut t = TrustList::new();
        t.insert("test.health", 1, authority().verifying_key());
        t
    }

    fn cert(key: &SigningKey) -> ExportKeyCertificate {
        ExportKeyCertificate {
            origin: "test.health".into(),
            signer: ExportSigner {
                key_id: "262".into(),
                key_version: "v1".into(),
            },
            region: "DE".into(),
            public_key: *key.verifying_key(),
            not_before: NOW - 86_400,
            not_after: NOW + 86_400,
        }
    }

    fn batch() -> Batch {
        Batch {
            origin: "test.health".into(),
            sequence: 1,
            created_at: NOW,
            day: DAY,
            keys: (0..3u8)
                .map(|i| DiagnosisKey {
                    tek: Tek([i; 16]),
                    rolling_start: day_start_interval(DAY),
                    rolling_period: 144,
                    transmission_risk: 4,
                    days_since_onset: 1,
                })
                .collect(),
        }
    }

    #[test]
    fn a_certificate_verifies_only_under_its_authority_and_validity() {
        let key = SigningKey::from_slice(&[3; 32]).unwrap();
        let signed = cert(&key).sign(&authority()).unwrap();
        let back = SignedExportKey::decode(&signed.encode()).unwrap();
        assert_eq!(back.verify(&trust(), NOW).unwrap(), cert(&key));
        assert!(matches!(
            back.verify(&TrustList::new(), NOW),
            Err(WireError::UntrustedSigner { .. })
        ));
        assert!(matches!(
            back.verify(&trust(), NOW + 86_400),
            Err(WireError::OutsideValidity { now, .. }) if now == NOW + 86_400
        ));
        let rogue = AuthorityKey::generate("test.health", 1);
        assert!(matches!(
            cert(&key).sign(&rogue).unwrap().verify(&trust(), NOW),
            Err(WireError::BadSignature("export key certificate"))
        ));
        let mut padded = signed.encode();
        padded.extend_from_slice(&[0x20, 0x01]);
        assert!(matches!(
            SignedExportKey::decode(&padded),
            Err(WireError::NonCanonical("signed export key"))
        ));
        let mut body = pb::ExportKeyBody::decode(signed.body.as_slice()).unwrap();
        body.public_key = key
            .verifying_key()
            .to_encoded_point(false)
            .as_bytes()
            .to_vec();
        assert!(matches!(
            ExportKeyCertificate::decode_body(&body.encode_to_vec()),
            Err(WireError::InvalidField {
                field: "public_key",
                ..
            })
        ));
    }

    #[test]
    fn a_batch_carries_its_authority_signed_export_and_risk_config() {
        let key = SigningKey::from_slice(&[3; 32]).unwrap();
        let certificate = cert(&key).sign(&authority()).unwrap();
        let risk = crate::RiskConfig {
            origin: "test.health".into(),
            revision: 2,
            created_at: NOW,
            parameters: crate::RiskParameters::default(),
        }
        .sign(&authority())
        .unwrap();
        let plain = batch().sign(&authority()).unwrap();
        let signed = batch()
            .sign_with(
                &authority(),
                Publication {
                    export: Some((&certificate, &key)),
                    risk_config: Some(&risk),
                },
            )
            .unwrap();
        // Without attachments the body is what it always was.
        assert_eq!(plain.body, batch().encode_body());
        let (b, a) = signed.verify_with_attachments(&trust(), NOW).unwrap();
        assert_eq!(b, batch());
        assert_eq!(a.risk_config, Some(risk));
        let export = a.export.unwrap();
        // Any node rebuilds the same export.bin, and the authority's signature
        // carried in the batch verifies under the certified key.
        let zip =
            ExportFile::of_batch(&b, &cert(&key)).to_zip_signed(&export.der_signature().unwrap());
        let file = ExportFile::from_zip(&zip, key.verifying_key(), NOW).unwrap();
        assert_eq!(file.keys, b.keys);
        assert_eq!(file.region, "DE");
        let other = SigningKey::from_slice(&[4; 32]).unwrap();
        assert!(matches!(
            ExportFile::from_zip(&zip, other.verifying_key(), NOW),
            Err(WireError::BadSignature("export.bin"))
        ));
        // Phones that ignore attachments read the same batch.
        assert_eq!(signed.verify(&trust(), NOW).unwrap(), batch());
    }

    #[test]
    fn a_gateway_cannot_attach_an_uncertified_export_key() {
        let key = SigningKey::from_slice(&[3; 32]).unwrap();
        let other = SigningKey::from_slice(&[4; 32]).unwrap();
        let certificate = cert(&key).sign(&authority()).unwrap();
        assert!(matches!(
            batch().sign_with(
                &authority(),
                Publication {
                    export: Some((&certificate, &other)),
                    risk_config: None,
                },
            ),
            Err(WireError::InvalidField {
                field: "export_key",
                ..
            })
        ));
        // A certificate by another key under the same origin: the batch signs,
        // but no node stores it.
        let rogue = cert(&key)
            .sign(&AuthorityKey::generate("test.health", 1))
            .unwrap();
        let signed = batch()
            .sign_with(
                &authority(),
                Publication {
                    export: Some((&rogue, &key)),
                    risk_config: None,
                },
            )
            .unwrap();
        assert!(matches!(
            signed.verify_with_attachments(&trust(), NOW),
            Err(WireError::BadSignature("export key certificate"))
        ));
    }
}

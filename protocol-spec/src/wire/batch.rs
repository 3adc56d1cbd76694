//! Signed batches of published keys (SPEC.md §5.3).

use prost::Message;

use super::export_key::{ExportKeyCertificate, SignedExportKey};
use super::risk_config::SignedRiskConfig;
use super::{
    check_reencodes, check_version, decode_limited, decode_list, pb, signature_bytes,
    validate_origin, PROTOCOL_VERSION,
};
use crate::diagnosis::{keys_from_wire_group, DiagnosisKey};
use crate::error::{KeyOrderFault, WireError};
use crate::export::ExportFile;
use crate::interval::day_of_interval;
use crate::risk::RiskParameters;
use crate::signing::{self, AuthorityKey, TrustList, BATCH_CONTEXT, SIGNATURE_LEN};
use p256::ecdsa::signature::{Signer, Verifier};
use p256::ecdsa::{Signature, SigningKey};

/// Largest encoded [`SignedBatch`] accepted (4 MiB: ~250,000 keys).
pub const MAX_SIGNED_BATCH_LEN: usize = 4 << 20;
/// Most keys one batch may hold.
pub const MAX_BATCH_KEYS: usize = 200_000;
/// How far in the future a `created_at` may lie (clock skew between gateway and receiver).
pub const MAX_CLOCK_SKEW_SECONDS: u64 = 2 * 3600;

/// A batch of published keys of one origin, all starting on one UTC day.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Batch {
    /// Authority id of the gateway that sealed the batch.
    pub origin: String,
    /// Per-origin sequence number, from 1 without gaps.
    pub sequence: u64,
    /// Publication time, unix seconds.
    pub created_at: u64,
    /// UTC day every key starts on.
    pub day: u32,
    /// The keys, in canonical order (see [`Batch::canonicalize`]).
    pub keys: Vec<DiagnosisKey>,
}

/// What an authority publishes in a batch body besides its keys (SPEC.md §6.2,
/// §7.3), so that every node that holds the batch can serve them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BatchAttachments {
    /// The authority's export key certificate and its signature over this
    /// batch's `export.bin` ([`ExportFile::of_batch`]).
    pub export: Option<ExportAttestation>,
    /// The authority's current risk configuration.
    pub risk_config: Option<SignedRiskConfig>,
}

/// An export key certificate with that key's signature over one batch's export.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExportAttestation {
    /// The certificate.
    pub certificate: SignedExportKey,
    /// ECDSA P-256 / SHA-256 signature over the batch's `export.bin`, as the
    /// fixed 64 bytes `r ‖ s` (DER's length varies with the signature, which
    /// would make a batch's size depend on its keys).
    pub signature: Vec<u8>,
}

impl ExportAttestation {
    /// The signature DER-encoded, as GAEN's `export.sig` carries it.
    pub fn der_signature(&self) -> Result<Vec<u8>, WireError> {
        der_signature(&self.signature)
    }
}

/// An export signature carried as `r ‖ s`, DER-encoded as GAEN's `export.sig`
/// carries it.
pub(super) fn der_signature(r_s: &[u8]) -> Result<Vec<u8>, WireError> {
    let s = Signature::from_slice(r_s).map_err(|_| WireError::BadSignature("export.bin"))?;
    Ok(s.to_der().as_bytes().to_vec())
}

/// What a gateway signs into its batches besides the keys.
#[derive(Clone, Copy, Debug, Default)]
pub struct Publication<'a> {
    /// The authority's export signing key and its certificate.
    pub export: Option<(&'a SignedExportKey, &'a SigningKey)>,
    /// The authority's current risk configuration.
    pub risk_config: Option<&'a SignedRiskConfig>,
}

/// The tuple keys are grouped by on the wire.
fn group_of(k: &DiagnosisKey) -> (u32, u32, u8, i8) {
    (
        k.rolling_start,
        k.rolling_period,
        k.transmission_risk,
        k.days_since_onset,
    )
}

impl Batch {
    /// Sorts the keys into canonical order (group tuple, then TEK) and drops duplicates.
    pub fn canonicalize(&mut self) {
        self.keys
            .sort_unstable_by(|a, b| (group_of(a), &a.tek).cmp(&(group_of(b), &b.tek)));
        self.keys.dedup();
    }

    /// Unix seconds after which no key of the batch may be stored or served.
    pub fn expires_at(&self) -> u64 {
        self.keys
            .iter()
            .map(DiagnosisKey::expires_at)
            .max()
            .unwrap_or(0)
    }

    /// The canonical encoding of the body: keys grouped by metadata, groups and
    /// keys in ascending order. Call [`Batch::canonicalize`] first if the keys
    /// may be unsorted; decoding rejects a body that is not canonical.
    pub fn encode_body(&self) -> Vec<u8> {
        self.encode_body_with(&BatchAttachments::default())
    }

    /// [`Batch::encode_body`] with attachments.
    fn encode_body_with(&self, attachments: &BatchAttachments) -> Vec<u8> {
        let mut groups: Vec<pb::KeyGroup> = Vec::new();
        for chunk in self.keys.chunk_by(|a, b| group_of(a) == group_of(b)) {
            let (rolling_start, rolling_period, tr, dso) = group_of(&chunk[0]);
            groups.push(pb::KeyGroup {
                rolling_start_interval_number: rolling_start,
                rolling_period,
                transmission_risk_level: u32::from(tr),
                days_since_onset_of_symptoms: i32::from(dso),
                key_data: chunk.iter().flat_map(|k| k.tek.0).collect(),
            });
        }
        pb::BatchBody {
            version: PROTOCOL_VERSION,
            origin: self.origin.clone(),
            sequence: self.sequence,
            created_at: self.created_at,
            day: self.day,
            groups,
            export_key: attachments
                .export
                .as_ref()
                .map(|e| e.certificate.encode())
                .unwrap_or_default(),
            export_signature: attachments
                .export
                .as_ref()
                .map(|e| e.signature.clone())
                .unwrap_or_default(),
            risk_config: attachments
                .risk_config
                .as_ref()
                .map(SignedRiskConfig::encode)
                .unwrap_or_default(),
        }
        .encode_to_vec()
    }

    /// Decodes and validates a body: version, origin, sequence, every key's ranges,
    /// every key on `day`, `created_at` not in the future, and canonical form.
    pub fn decode_body(bytes: &[u8], now_unix: u64) -> Result<Batch, WireError> {
        Ok(Batch::decode_parts(bytes, now_unix)?.0)
    }

    /// [`Batch::decode_body`] with the attachments (decoded, not verified).
    fn decode_parts(bytes: &[u8], now_unix: u64) -> Result<(Batch, BatchAttachments), WireError> {
        const WHAT: &str = "batch body";
        let body: pb::BatchBody = decode_limited(WHAT, bytes, MAX_SIGNED_BATCH_LEN)?;
        check_version(WHAT, body.version)?;
        validate_origin(&body.origin)?;
        if body.sequence == 0 {
            return Err(WireError::invalid("sequence", "starts at 1"));
        }
        if body.created_at > now_unix.saturating_add(MAX_CLOCK_SKEW_SECONDS) {
            return Err(WireError::TimeInFuture {
                what: "batch created_at",
                at: body.created_at,
                now: now_unix,
            });
        }
        if let Some(g) = body
            .groups
            .iter()
            .find(|g| g.key_data.is_empty() || g.key_data.len() % 16 != 0)
        {
            return Err(WireError::KeyLength(g.key_data.len()));
        }
        let count: usize = body.groups.iter().map(|g| g.key_data.len() / 16).sum();
        if count == 0 {
            return Err(WireError::Empty("batch"));
        }
        if count > MAX_BATCH_KEYS {
            return Err(WireError::TooManyKeys {
                what: "batch",
                count,
                max: MAX_BATCH_KEYS,
            });
        }
        check_key_order(&body.groups)?;
        let mut keys = Vec::with_capacity(count);
        for g in &body.groups {
            let key_day = day_of_interval(g.rolling_start_interval_number);
            if key_day != body.day {
                return Err(WireError::WrongDay {
                    key_day,
                    batch_day: body.day,
                });
            }
            keys_from_wire_group(
                &mut keys,
                &g.key_data,
                g.rolling_start_interval_number,
                g.rolling_period,
                g.transmission_risk_level,
                g.days_since_onset_of_symptoms,
                now_unix,
            )?;
        }
        let attachments = decode_attachments(&body)?;
        // Canonical form: with the order checked above, the groups are exactly
        // those `encode_body_with` makes of `keys`, and the attachments' own
        // decoders checked their canonical form, so re-encoding the decoded
        // message equals re-encoding the batch, without regrouping its keys.
        if body.encode_to_vec() != bytes {
            return Err(WireError::NonCanonical(WHAT));
        }
        let batch = Batch {
            origin: body.origin,
            sequence: body.sequence,
            created_at: body.created_at,
            day: body.day,
            keys,
        };
        Ok((batch, attachments))
    }

    /// Canonicalizes and signs the batch with the authority's key.
    pub fn sign(self, key: &AuthorityKey) -> Result<SignedBatch, WireError> {
        self.sign_with(key, Publication::default())
    }

    /// Canonicalizes the batch, signs its export with the export key (whose
    /// certificate must be the authority's, for this key, valid at
    /// `created_at`), and signs the body with the attachments.
    pub fn sign_with(
        mut self,
        key: &AuthorityKey,
        publication: Publication<'_>,
    ) -> Result<SignedBatch, WireError> {
        if self.origin != key.origin {
            return Err(WireError::invalid(
                "origin",
                "differs from the signing authority's",
            ));
        }
        self.canonicalize();
        let mut attachments = BatchAttachments {
            export: None,
            risk_config: publication.risk_config.cloned(),
        };
        if let Some((certificate, export_key)) = publication.export {
            let cert = ExportKeyCertificate::decode_body(&certificate.body)?;
            if cert.origin != self.origin || &cert.public_key != export_key.verifying_key() {
                return Err(WireError::invalid(
                    "export_key",
                    "certifies another origin or another key",
                ));
            }
            cert.check_valid_at(self.created_at)?;
            let signature: Signature =
                export_key.sign(&ExportFile::of_batch(&self, &cert).export_bin());
            attachments.export = Some(ExportAttestation {
                certificate: certificate.clone(),
                signature: signature.to_bytes().to_vec(),
            });
        }
        let body = self.encode_body_with(&attachments);
        let signature = signing::sign(&key.signing_key, BATCH_CONTEXT, &body);
        Ok(SignedBatch {
            body,
            key_id: key.key_id,
            signature,
        })
    }
}

/// Verifies an export key certificate against `trust`, for `batch`'s origin
/// and valid at its `created_at` (SPEC.md §6.2).
pub(super) fn verify_export_certificate(
    certificate: &SignedExportKey,
    trust: &TrustList,
    batch: &Batch,
) -> Result<ExportKeyCertificate, WireError> {
    let cert = certificate.verify(trust, batch.created_at)?;
    if cert.origin != batch.origin {
        return Err(WireError::invalid("export_key", "certifies another origin"));
    }
    Ok(cert)
}

/// Verifies an export signature (`r ‖ s`) over `batch`'s `export.bin`.
pub(super) fn verify_export_signature(
    batch: &Batch,
    cert: &ExportKeyCertificate,
    signature: &[u8],
) -> Result<(), WireError> {
    let signature =
        Signature::from_slice(signature).map_err(|_| WireError::BadSignature("export.bin"))?;
    cert.public_key
        .verify(&ExportFile::of_batch(batch, cert).export_bin(), &signature)
        .map_err(|_| WireError::BadSignature("export.bin"))
}

/// Verifies a risk configuration against `trust` and that it is `origin`'s.
pub(super) fn verify_risk_config(
    risk: &SignedRiskConfig,
    trust: &TrustList,
    origin: &str,
    now_unix: u64,
) -> Result<(), WireError> {
    let config = risk.verify(trust, now_unix, &RiskParameters::default())?;
    if config.origin != origin {
        return Err(WireError::invalid("risk_config", "is another origin's"));
    }
    Ok(())
}

/// The attachments of a body, decoded: export key and signature both or neither.
fn decode_attachments(body: &pb::BatchBody) -> Result<BatchAttachments, WireError> {
    let export = match (body.export_key.is_empty(), body.export_signature.is_empty()) {
        (true, true) => None,
        (false, false) => {
            Signature::from_slice(&body.export_signature).map_err(|_| {
                WireError::invalid(
                    "export_signature",
                    "is not a 64-byte r || s ECDSA signature",
                )
            })?;
            Some(ExportAttestation {
                certificate: SignedExportKey::decode(&body.export_key)?,
                signature: body.export_signature.clone(),
            })
        }
        _ => {
            return Err(WireError::invalid(
                "export_signature",
                "export_key and export_signature come together",
            ))
        }
    };
    let risk_config = if body.risk_config.is_empty() {
        None
    } else {
        Some(SignedRiskConfig::decode(&body.risk_config)?)
    };
    Ok(BatchAttachments {
        export,
        risk_config,
    })
}

/// Checks §5.3's order: within a group TEKs strictly ascending, groups strictly
/// ascending by tuple (so no duplicate key, and no tuple split over groups).
fn check_key_order(groups: &[pb::KeyGroup]) -> Result<(), WireError> {
    let tuple = |g: &pb::KeyGroup| {
        (
            g.rolling_start_interval_number,
            g.rolling_period,
            g.transmission_risk_level,
            g.days_since_onset_of_symptoms,
        )
    };
    for (i, g) in groups.iter().enumerate() {
        let fault = |fault| WireError::KeyOrder { group: i, fault };
        if let Some(previous) = i.checked_sub(1).map(|p| tuple(&groups[p])) {
            match previous.cmp(&tuple(g)) {
                std::cmp::Ordering::Less => {}
                std::cmp::Ordering::Equal => return Err(fault(KeyOrderFault::SplitGroup)),
                std::cmp::Ordering::Greater => return Err(fault(KeyOrderFault::GroupsUnsorted)),
            }
        }
        // Big-endian u128s order as the byte strings do.
        let teks = g
            .key_data
            .chunks_exact(16)
            .map(|t| u128::from_be_bytes(t.try_into().expect("chunks of 16 bytes")));
        for (a, b) in teks.clone().zip(teks.skip(1)) {
            match a.cmp(&b) {
                std::cmp::Ordering::Less => {}
                std::cmp::Ordering::Equal => return Err(fault(KeyOrderFault::DuplicateKey)),
                std::cmp::Ordering::Greater => return Err(fault(KeyOrderFault::KeysUnsorted)),
            }
        }
    }
    Ok(())
}

/// A batch as it travels: the exact signed body bytes, the key id and the signature.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedBatch {
    /// Canonical encoding of the batch body.
    pub body: Vec<u8>,
    /// Trust-list key id of the signer.
    pub key_id: u32,
    /// Ed25519 signature over `"traceless/v1/batch" || 0x00 || body`.
    pub signature: [u8; SIGNATURE_LEN],
}

/// Batches of one origin in one download (SPEC.md §6.1): the exact
/// `SignedBatch` encodings, by ascending sequence, at most
/// [`MAX_LIST_LEN`](super::MAX_LIST_LEN). Each batch is verified on its own
/// ([`SignedBatch::decode`], [`SignedBatch::verify`]); the envelope carries no
/// signature of its own.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BatchList {
    /// `SignedBatch` encodings.
    pub batches: Vec<Vec<u8>>,
}

impl BatchList {
    /// Protobuf encoding.
    pub fn encode(&self) -> Vec<u8> {
        pb::BatchList {
            batches: self.batches.clone(),
        }
        .encode_to_vec()
    }

    /// Decodes the envelope (size, shape and canonical encoding); the batches
    /// themselves are checked by [`SignedBatch::decode`] one by one.
    pub fn decode(bytes: &[u8]) -> Result<BatchList, WireError> {
        let batches = decode_list("batch list", bytes, |m: pb::BatchList| m.batches)?;
        Ok(BatchList { batches })
    }
}

impl SignedBatch {
    /// Protobuf encoding of the envelope.
    pub fn encode(&self) -> Vec<u8> {
        pb::SignedBatch {
            body: self.body.clone(),
            key_id: self.key_id,
            signature: self.signature.to_vec(),
        }
        .encode_to_vec()
    }

    /// Decodes the envelope (size, shape and canonical encoding: an envelope
    /// with unknown fields is rejected; see [`SignedBatch::verify`] for the rest).
    pub fn decode(bytes: &[u8]) -> Result<SignedBatch, WireError> {
        let m: pb::SignedBatch = decode_limited("signed batch", bytes, MAX_SIGNED_BATCH_LEN)?;
        let signature = signature_bytes(&m.signature)?;
        let batch = SignedBatch {
            body: m.body,
            key_id: m.key_id,
            signature,
        };
        check_reencodes("signed batch", &batch.encode(), bytes)?;
        Ok(batch)
    }

    /// The sequence number the body claims, read without validating or
    /// verifying anything (`None` if the body is no `BatchBody`): for moving a
    /// download cursor past a batch, whatever its verification says.
    pub fn claimed_sequence(&self) -> Option<u64> {
        pb::BatchBody::decode(self.body.as_slice())
            .ok()
            .map(|b| b.sequence)
    }

    /// Validates the body, checks the signer against `trust` and the signature, and
    /// rejects a batch whose keys are all past retention at `now_unix`.
    pub fn verify(&self, trust: &TrustList, now_unix: u64) -> Result<Batch, WireError> {
        Ok(self.verify_parts(trust, now_unix)?.0)
    }

    /// [`SignedBatch::verify`], and verifies the attachments: the export key
    /// certificate against `trust` at the batch's `created_at` and for the
    /// batch's origin, its signature over the batch's `export.bin`, and the
    /// risk configuration against `trust` (SPEC.md §6.2, §7.3). Phones need
    /// not call it; nodes do, before they store and serve a batch.
    pub fn verify_with_attachments(
        &self,
        trust: &TrustList,
        now_unix: u64,
    ) -> Result<(Batch, BatchAttachments), WireError> {
        let (batch, attachments) = self.verify_parts(trust, now_unix)?;
        if let Some(export) = &attachments.export {
            let cert = verify_export_certificate(&export.certificate, trust, &batch)?;
            verify_export_signature(&batch, &cert, &export.signature)?;
        }
        if let Some(risk) = &attachments.risk_config {
            verify_risk_config(risk, trust, &batch.origin, now_unix)?;
        }
        Ok((batch, attachments))
    }

    fn verify_parts(
        &self,
        trust: &TrustList,
        now_unix: u64,
    ) -> Result<(Batch, BatchAttachments), WireError> {
        let (batch, attachments) = Batch::decode_parts(&self.body, now_unix)?;
        let key = trust.get(&batch.origin, self.key_id)?;
        signing::verify(key, BATCH_CONTEXT, &self.body, &self.signature, "batch")?;
        let expired_at = batch.expires_at();
        if now_unix > expired_at {
            return Err(WireError::Expired {
                expired_at,
                now: now_unix,
            });
        }
        Ok((batch, attachments))
    }
}

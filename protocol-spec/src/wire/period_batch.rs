//! Period batches (SPEC.md §5.9): one signed batch per publication period, its
//! keys in one section per day. The signature covers a digest of the days, so
//! retention removes an expired day's section and keeps its 32-byte digest
//! instead, without the authority signing again.

use prost::Message;
use sha2::{Digest, Sha256};

use super::batch::{
    verify_export_certificate, verify_export_signature, verify_risk_config, Batch, Publication,
    MAX_BATCH_KEYS, MAX_CLOCK_SKEW_SECONDS, MAX_SIGNED_BATCH_LEN,
};
use super::export_key::{ExportKeyCertificate, SignedExportKey};
use super::risk_config::SignedRiskConfig;
use super::{check_reencodes, decode_limited, pb, signature_bytes, validate_origin};
use crate::diagnosis::{key_from_wire, transmission_risk, DiagnosisKey};
use crate::error::WireError;
use crate::export::ExportFile;
use crate::interval::{day_of_interval, day_start_interval, INTERVALS_PER_DAY};
use crate::keys::KEY_LEN;
use crate::signing::{self, AuthorityKey, TrustList, BATCH_V2_CONTEXT, SIGNATURE_LEN};
use p256::ecdsa::signature::Signer;
use p256::ecdsa::Signature;

/// The `version` of a [`pb::PeriodBatchHeader`].
pub const PERIOD_BATCH_VERSION: u32 = 2;
/// Length of a day digest and of the days digest.
pub const DIGEST_LEN: usize = 32;
/// Domain separation of the days digest.
const DAYS_CONTEXT: &[u8] = b"traceless/v2/days";

/// The keys of one publication period of one origin, by day.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeriodBatch {
    /// Authority id of the gateway that sealed the batch.
    pub origin: String,
    /// Per-origin sequence number, from 1 without gaps.
    pub sequence: u64,
    /// The period boundary it was published at, unix seconds.
    pub created_at: u64,
    /// The days, strictly ascending by day.
    pub days: Vec<DayPart>,
}

/// One day's keys of a period batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DayPart {
    /// UTC day every key starts on.
    pub day: u32,
    /// The keys, by ascending TEK, no TEK twice.
    pub keys: Vec<DiagnosisKey>,
    /// The export signature the section carried, if any (checked only by
    /// [`SignedPeriodBatch::verify_with_attachments`]).
    pub export_signature: Option<[u8; SIGNATURE_LEN]>,
}

/// The attachments of a period batch's header (SPEC.md §6.2, §7.3).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PeriodAttachments {
    /// The authority's export key certificate.
    pub export_key: Option<SignedExportKey>,
    /// The authority's current risk configuration.
    pub risk_config: Option<SignedRiskConfig>,
}

/// A period batch as it travels: the signed header and the days.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedPeriodBatch {
    /// Canonical encoding of the header, the signed bytes.
    pub header: Vec<u8>,
    /// Trust-list key id of the signer.
    pub key_id: u32,
    /// Ed25519 signature over `"traceless/v2/batch" || 0x00 || header`.
    pub signature: [u8; SIGNATURE_LEN],
    /// The days still held, strictly ascending by day.
    pub days: Vec<DaySection>,
    /// The days retention removed, strictly ascending by day.
    pub pruned: Vec<PrunedDay>,
}

/// A day of a [`SignedPeriodBatch`] as it travels.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DaySection {
    /// Canonical encoding of the day's `DayKeys`.
    pub keys: Vec<u8>,
    /// ECDSA P-256 signature over the day's `export.bin`, `r ‖ s`.
    pub export_signature: Option<[u8; SIGNATURE_LEN]>,
}

/// A day removed by retention: its digest stands in for its keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PrunedDay {
    /// The day.
    pub day: u32,
    /// SHA-256 of the removed `DayKeys` encoding.
    pub digest: [u8; DIGEST_LEN],
}

impl DayPart {
    /// Unix seconds after which the day's keys may no longer be stored or
    /// served: when its last key expires.
    pub fn expires_at(&self) -> u64 {
        self.keys
            .iter()
            .map(DiagnosisKey::expires_at)
            .max()
            .unwrap_or(0)
    }

    /// The canonical `DayKeys` encoding.
    fn encode(&self) -> Vec<u8> {
        let first = day_start_interval(self.day);
        let partial = self
            .keys
            .iter()
            .enumerate()
            .filter(|(_, k)| k.rolling_start != first || k.rolling_period != INTERVALS_PER_DAY)
            .map(|(i, k)| pb::PartialKey {
                index: i as u32,
                start_offset: k.rolling_start - first,
                rolling_period: k.rolling_period,
            })
            .collect();
        pb::DayKeys {
            day: self.day,
            key_data: self.keys.iter().flat_map(|k| k.tek.0).collect(),
            days_since_onset: self.keys.iter().map(|k| k.days_since_onset as u8).collect(),
            transmission_risk: if self.keys.iter().all(default_risk) {
                Vec::new()
            } else {
                self.keys.iter().map(|k| k.transmission_risk).collect()
            },
            partial,
        }
        .encode_to_vec()
    }

    /// Decodes and validates a `DayKeys` encoding: column lengths, TEK order,
    /// partial keys, every key's §4 ranges at `now_unix`, canonical form.
    fn decode(bytes: &[u8], now_unix: u64) -> Result<DayPart, WireError> {
        const WHAT: &str = "day keys";
        let m: pb::DayKeys = decode_limited(WHAT, bytes, MAX_SIGNED_BATCH_LEN)?;
        if m.key_data.is_empty() || !m.key_data.len().is_multiple_of(KEY_LEN) {
            return Err(WireError::KeyLength(m.key_data.len()));
        }
        let n = m.key_data.len() / KEY_LEN;
        if n > MAX_BATCH_KEYS {
            return Err(WireError::TooManyKeys {
                what: "period batch",
                count: n,
                max: MAX_BATCH_KEYS,
            });
        }
        // The risk column is empty when §4's table gives every level.
        let risk_column = !m.transmission_risk.is_empty();
        let columns = [
            ("days_since_onset", m.days_since_onset.len()),
            (
                "transmission_risk",
                if risk_column {
                    m.transmission_risk.len()
                } else {
                    n
                },
            ),
        ];
        if let Some((field, len)) = columns.into_iter().find(|(_, len)| *len != n) {
            return Err(WireError::invalid(
                field,
                format!("has {len} bytes for {n} keys"),
            ));
        }
        let teks: Vec<&[u8]> = m.key_data.chunks_exact(KEY_LEN).collect();
        if teks.windows(2).any(|w| w[0] >= w[1]) {
            return Err(WireError::invalid(
                "key_data",
                "TEKs are not strictly ascending",
            ));
        }
        let first = day_start_interval(m.day);
        if first.checked_add(2 * INTERVALS_PER_DAY).is_none() {
            return Err(WireError::invalid(
                "day",
                "is past the last interval number",
            ));
        }
        let mut shape = vec![(0u32, INTERVALS_PER_DAY); n];
        let mut previous = None;
        for p in &m.partial {
            let i = p.index as usize;
            let whole_day = p.start_offset == 0 && p.rolling_period == INTERVALS_PER_DAY;
            if i >= n || previous.is_some_and(|q| q >= i) || whole_day {
                return Err(WireError::invalid(
                    "partial",
                    "indices must ascend below the key count, and name keys not valid for the whole day",
                ));
            }
            if p.start_offset >= INTERVALS_PER_DAY {
                return Err(WireError::invalid(
                    "partial",
                    "start_offset is past the day",
                ));
            }
            shape[i] = (p.start_offset, p.rolling_period);
            previous = Some(i);
        }
        let mut keys = Vec::with_capacity(n);
        for (i, tek) in teks.iter().enumerate() {
            let (offset, period) = shape[i];
            let dso = i32::from(m.days_since_onset[i] as i8);
            let risk = match risk_column {
                true => u32::from(m.transmission_risk[i]),
                false => u32::from(transmission_risk(dso)),
            };
            keys.push(key_from_wire(
                tek,
                first + offset,
                period,
                risk,
                dso,
                now_unix,
            )?);
        }
        let part = DayPart {
            day: m.day,
            keys,
            export_signature: None,
        };
        check_reencodes(WHAT, &part.encode(), bytes)?;
        Ok(part)
    }

    /// The day as a one-day batch, for its `export.bin` (SPEC.md §6.2).
    pub fn as_batch(&self, batch: &PeriodBatch) -> Batch {
        let mut b = Batch {
            origin: batch.origin.clone(),
            sequence: batch.sequence,
            created_at: batch.created_at,
            day: self.day,
            keys: self.keys.clone(),
        };
        b.canonicalize();
        b
    }
}

/// Whether a key's transmission risk is the one §4's table gives for its days
/// since onset (which the `transmission_risk` column then leaves out).
fn default_risk(k: &DiagnosisKey) -> bool {
    k.transmission_risk == transmission_risk(i32::from(k.days_since_onset))
}

/// The days digest over `(day, SHA-256(DayKeys))` pairs in ascending day order.
fn days_digest<'a>(days: impl Iterator<Item = (u32, &'a [u8; DIGEST_LEN])>) -> [u8; DIGEST_LEN] {
    let mut h = Sha256::new();
    h.update(DAYS_CONTEXT);
    h.update([0]);
    for (day, digest) in days {
        h.update(day.to_be_bytes());
        h.update(digest);
    }
    h.finalize().into()
}

impl PeriodBatch {
    /// Splits `keys` by the day they start on, each day by ascending TEK; of
    /// keys with one TEK on one day only the lowest (by [`DiagnosisKey`]'s
    /// order) is kept.
    pub fn from_keys(
        origin: impl Into<String>,
        sequence: u64,
        created_at: u64,
        mut keys: Vec<DiagnosisKey>,
    ) -> PeriodBatch {
        keys.sort_unstable_by(|a, b| {
            (day_of_interval(a.rolling_start), a).cmp(&(day_of_interval(b.rolling_start), b))
        });
        keys.dedup_by(|b, a| {
            a.tek == b.tek && day_of_interval(a.rolling_start) == day_of_interval(b.rolling_start)
        });
        let days = keys
            .chunk_by(|a, b| day_of_interval(a.rolling_start) == day_of_interval(b.rolling_start))
            .map(|chunk| DayPart {
                day: day_of_interval(chunk[0].rolling_start),
                keys: chunk.to_vec(),
                export_signature: None,
            })
            .collect();
        PeriodBatch {
            origin: origin.into(),
            sequence,
            created_at,
            days,
        }
    }

    /// Every key of every day.
    pub fn keys(&self) -> impl Iterator<Item = &DiagnosisKey> {
        self.days.iter().flat_map(|d| d.keys.iter())
    }

    /// Signs the batch: each day's `export.bin` with the export key (whose
    /// certificate must be the authority's, for this key, valid at
    /// `created_at`), and the header with the authority's key.
    pub fn sign_with(
        &self,
        key: &AuthorityKey,
        publication: Publication<'_>,
    ) -> Result<SignedPeriodBatch, WireError> {
        if self.origin != key.origin {
            return Err(WireError::invalid(
                "origin",
                "differs from the signing authority's",
            ));
        }
        if self.days.is_empty() {
            return Err(WireError::Empty("period batch"));
        }
        // What `from_keys` makes; a batch built by hand must be as canonical.
        for d in &self.days {
            if let Some(k) = d
                .keys
                .iter()
                .find(|k| day_of_interval(k.rolling_start) != d.day)
            {
                return Err(WireError::WrongDay {
                    key_day: day_of_interval(k.rolling_start),
                    batch_day: d.day,
                });
            }
            if d.keys.is_empty() || d.keys.windows(2).any(|w| w[0].tek >= w[1].tek) {
                return Err(WireError::invalid(
                    "key_data",
                    "a day's TEKs must be one or more, strictly ascending",
                ));
            }
        }
        if self.days.windows(2).any(|w| w[0].day >= w[1].day) {
            return Err(WireError::invalid("days", "must be strictly ascending"));
        }
        let export = match publication.export {
            None => None,
            Some((certificate, export_key)) => {
                let cert = ExportKeyCertificate::decode_body(&certificate.body)?;
                if cert.origin != self.origin || &cert.public_key != export_key.verifying_key() {
                    return Err(WireError::invalid(
                        "export_key",
                        "certifies another origin or another key",
                    ));
                }
                cert.check_valid_at(self.created_at)?;
                Some((certificate, export_key, cert))
            }
        };
        let days: Vec<DaySection> = self
            .days
            .iter()
            .map(|d| DaySection {
                keys: d.encode(),
                export_signature: export.as_ref().map(|(_, export_key, cert)| {
                    let s: Signature = export_key
                        .sign(&ExportFile::of_batch(&d.as_batch(self), cert).export_bin());
                    s.to_bytes().into()
                }),
            })
            .collect();
        let digests: Vec<(u32, [u8; DIGEST_LEN])> = self
            .days
            .iter()
            .zip(&days)
            .map(|(d, s)| (d.day, Sha256::digest(&s.keys).into()))
            .collect();
        let header = pb::PeriodBatchHeader {
            version: PERIOD_BATCH_VERSION,
            origin: self.origin.clone(),
            sequence: self.sequence,
            created_at: self.created_at,
            days_digest: days_digest(digests.iter().map(|(d, h)| (*d, h))).to_vec(),
            export_key: export
                .map(|(certificate, _, _)| certificate.encode())
                .unwrap_or_default(),
            risk_config: publication
                .risk_config
                .map(SignedRiskConfig::encode)
                .unwrap_or_default(),
        }
        .encode_to_vec();
        let signature = signing::sign(&key.signing_key, BATCH_V2_CONTEXT, &header);
        Ok(SignedPeriodBatch {
            header,
            key_id: key.key_id,
            signature,
            days,
            pruned: Vec::new(),
        })
    }
}

/// The header, decoded and validated (not verified).
struct Header {
    origin: String,
    sequence: u64,
    created_at: u64,
    days_digest: [u8; DIGEST_LEN],
    attachments: PeriodAttachments,
}

impl Header {
    fn decode(bytes: &[u8], now_unix: u64) -> Result<Header, WireError> {
        const WHAT: &str = "period batch header";
        let m: pb::PeriodBatchHeader = decode_limited(WHAT, bytes, MAX_SIGNED_BATCH_LEN)?;
        if m.version != PERIOD_BATCH_VERSION {
            return Err(WireError::UnsupportedVersion {
                what: WHAT,
                found: m.version,
                supported: PERIOD_BATCH_VERSION,
            });
        }
        validate_origin(&m.origin)?;
        if m.sequence == 0 {
            return Err(WireError::invalid("sequence", "starts at 1"));
        }
        if m.created_at > now_unix.saturating_add(MAX_CLOCK_SKEW_SECONDS) {
            return Err(WireError::TimeInFuture {
                what: "batch created_at",
                at: m.created_at,
                now: now_unix,
            });
        }
        let days_digest = digest_bytes("days_digest", &m.days_digest)?;
        let attachments = PeriodAttachments {
            export_key: (!m.export_key.is_empty())
                .then(|| SignedExportKey::decode(&m.export_key))
                .transpose()?,
            risk_config: (!m.risk_config.is_empty())
                .then(|| SignedRiskConfig::decode(&m.risk_config))
                .transpose()?,
        };
        check_reencodes(WHAT, &m.encode_to_vec(), bytes)?;
        Ok(Header {
            origin: m.origin,
            sequence: m.sequence,
            created_at: m.created_at,
            days_digest,
            attachments,
        })
    }
}

fn digest_bytes(field: &'static str, bytes: &[u8]) -> Result<[u8; DIGEST_LEN], WireError> {
    bytes
        .try_into()
        .map_err(|_| WireError::invalid(field, format!("is {} bytes, not 32", bytes.len())))
}

impl SignedPeriodBatch {
    /// Protobuf encoding of the envelope.
    pub fn encode(&self) -> Vec<u8> {
        pb::SignedPeriodBatch {
            header: self.header.clone(),
            key_id: self.key_id,
            signature: self.signature.to_vec(),
            days: self
                .days
                .iter()
                .map(|d| pb::DaySection {
                    keys: d.keys.clone(),
                    export_signature: d.export_signature.map(|s| s.to_vec()).unwrap_or_default(),
                })
                .collect(),
            pruned: self
                .pruned
                .iter()
                .map(|p| pb::PrunedDay {
                    day: p.day,
                    digest: p.digest.to_vec(),
                })
                .collect(),
        }
        .encode_to_vec()
    }

    /// Decodes the envelope (size, field lengths, canonical encoding); see
    /// [`SignedPeriodBatch::verify`] for the rest.
    pub fn decode(bytes: &[u8]) -> Result<SignedPeriodBatch, WireError> {
        let m: pb::SignedPeriodBatch =
            decode_limited("signed period batch", bytes, MAX_SIGNED_BATCH_LEN)?;
        let days = m
            .days
            .into_iter()
            .map(|d| {
                let export_signature = match d.export_signature.len() {
                    0 => None,
                    _ => Some(d.export_signature.as_slice().try_into().map_err(|_| {
                        WireError::invalid(
                            "export_signature",
                            "is not a 64-byte r || s ECDSA signature",
                        )
                    })?),
                };
                Ok(DaySection {
                    keys: d.keys,
                    export_signature,
                })
            })
            .collect::<Result<_, WireError>>()?;
        let pruned = m
            .pruned
            .iter()
            .map(|p| {
                Ok(PrunedDay {
                    day: p.day,
                    digest: digest_bytes("pruned digest", &p.digest)?,
                })
            })
            .collect::<Result<_, WireError>>()?;
        let batch = SignedPeriodBatch {
            header: m.header,
            key_id: m.key_id,
            signature: signature_bytes(&m.signature)?,
            days,
            pruned,
        };
        check_reencodes("signed period batch", &batch.encode(), bytes)?;
        Ok(batch)
    }

    /// The batch's identifier: SHA-256 of its header. It does not change when
    /// retention prunes a day or a node serves the batch without its export
    /// signatures; two batches of one `(origin, sequence)` with different
    /// identifiers are an equivocation.
    pub fn id(&self) -> [u8; DIGEST_LEN] {
        Sha256::digest(&self.header).into()
    }

    /// The sequence number the header claims, read without validating or
    /// verifying anything (`None` if it is no header).
    pub fn claimed_sequence(&self) -> Option<u64> {
        pb::PeriodBatchHeader::decode(self.header.as_slice())
            .ok()
            .map(|h| h.sequence)
    }

    /// The batch as phones are served it: without export signatures, which
    /// only GAEN export files need (SPEC.md §5.9).
    pub fn without_export_signatures(&self) -> SignedPeriodBatch {
        SignedPeriodBatch {
            days: self
                .days
                .iter()
                .map(|d| DaySection {
                    keys: d.keys.clone(),
                    export_signature: None,
                })
                .collect(),
            ..self.clone()
        }
    }

    /// The batch with every day expired at `now_unix` replaced by its digest,
    /// or `None` when no day is left (the batch is then deleted whole). The
    /// signature still verifies. Call on a verified batch.
    pub fn pruned_at(&self, now_unix: u64) -> Result<Option<SignedPeriodBatch>, WireError> {
        let mut kept = Vec::new();
        let mut pruned = self.pruned.clone();
        for section in &self.days {
            let part = DayPart::decode(&section.keys, now_unix)?;
            if now_unix > part.expires_at() {
                pruned.push(PrunedDay {
                    day: part.day,
                    digest: Sha256::digest(&section.keys).into(),
                });
            } else {
                kept.push(section.clone());
            }
        }
        if kept.is_empty() {
            return Ok(None);
        }
        pruned.sort_unstable_by_key(|p| p.day);
        Ok(Some(SignedPeriodBatch {
            days: kept,
            pruned,
            ..self.clone()
        }))
    }

    /// Validates header and days, checks the days against the signed digest,
    /// the signer against `trust` and the signature, and returns the days not
    /// expired at `now_unix` (a batch with none is [`WireError::Expired`]).
    pub fn verify(&self, trust: &TrustList, now_unix: u64) -> Result<PeriodBatch, WireError> {
        Ok(self.verify_parts(trust, now_unix)?.0)
    }

    /// [`SignedPeriodBatch::verify`], and verifies the attachments: the export
    /// key certificate against `trust` for the batch's origin at `created_at`,
    /// an export signature on every day over its `export.bin`, and the risk
    /// configuration. Nodes call it before they store and forward a batch
    /// (they hold and pass on the full form); phones need not.
    pub fn verify_with_attachments(
        &self,
        trust: &TrustList,
        now_unix: u64,
    ) -> Result<(PeriodBatch, PeriodAttachments), WireError> {
        let (batch, attachments) = self.verify_parts(trust, now_unix)?;
        if let Some(certificate) = &attachments.export_key {
            let days: Vec<Batch> = batch.days.iter().map(|d| d.as_batch(&batch)).collect();
            let cert = verify_export_certificate(certificate, trust, &days[0])?;
            for (day, as_batch) in batch.days.iter().zip(&days) {
                let signature = day
                    .export_signature
                    .ok_or(WireError::BadSignature("export.bin"))?;
                verify_export_signature(as_batch, &cert, &signature)?;
            }
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
    ) -> Result<(PeriodBatch, PeriodAttachments), WireError> {
        let header = Header::decode(&self.header, now_unix)?;
        if self.days.is_empty() {
            return Err(WireError::Empty("period batch"));
        }
        let mut parts = Vec::with_capacity(self.days.len());
        let mut digests = Vec::with_capacity(self.days.len() + self.pruned.len());
        let mut count = 0usize;
        for section in &self.days {
            let mut part = DayPart::decode(&section.keys, now_unix)?;
            count += part.keys.len();
            if count > MAX_BATCH_KEYS {
                return Err(WireError::TooManyKeys {
                    what: "period batch",
                    count,
                    max: MAX_BATCH_KEYS,
                });
            }
            if section.export_signature.is_some() && header.attachments.export_key.is_none() {
                return Err(WireError::invalid(
                    "export_signature",
                    "without an export key in the header",
                ));
            }
            part.export_signature = section.export_signature;
            digests.push((part.day, Sha256::digest(&section.keys).into()));
            parts.push(part);
        }
        let ascending = |days: &mut dyn Iterator<Item = u32>| {
            let days: Vec<u32> = days.collect();
            days.windows(2).all(|w| w[0] < w[1])
        };
        if !ascending(&mut parts.iter().map(|p| p.day))
            || !ascending(&mut self.pruned.iter().map(|p| p.day))
        {
            return Err(WireError::invalid(
                "days",
                "sections and pruned days must each be strictly ascending",
            ));
        }
        digests.extend(self.pruned.iter().map(|p| (p.day, p.digest)));
        digests.sort_unstable_by_key(|(day, _)| *day);
        if digests.windows(2).any(|w| w[0].0 == w[1].0) {
            return Err(WireError::invalid("days", "a day is both held and pruned"));
        }
        if days_digest(digests.iter().map(|(d, h)| (*d, h))) != header.days_digest {
            return Err(WireError::DigestMismatch("period batch days"));
        }
        let key = trust.get(&header.origin, self.key_id)?;
        signing::verify(
            key,
            BATCH_V2_CONTEXT,
            &self.header,
            &self.signature,
            "batch",
        )?;
        let expired_at = parts.iter().map(DayPart::expires_at).max().unwrap_or(0);
        if now_unix > expired_at {
            return Err(WireError::Expired {
                expired_at,
                now: now_unix,
            });
        }
        parts.retain(|p| now_unix <= p.expires_at());
        Ok((
            PeriodBatch {
                origin: header.origin,
                sequence: header.sequence,
                created_at: header.created_at,
                days: parts,
            },
            header.attachments,
        ))
    }
}

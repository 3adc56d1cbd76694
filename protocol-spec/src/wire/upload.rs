//! Upload requests from phones, padded to one fixed length (SPEC.md §5.4).

use prost::Message;
use zeroize::Zeroize;

use super::{check_version, decode_limited, pb, PROTOCOL_VERSION};
use crate::diagnosis::{key_from_wire, DiagnosisKey};
use crate::error::WireError;
use crate::filter::IntervalMask;
use crate::token::{UploadToken, TOKEN_INPUT_LEN, TOKEN_OUTPUT_LEN};
use crate::venue::{sealed_stay_len, MAX_STAY_SLOTS};

/// Exact encoded length of every upload request, real or dummy.
pub const UPLOAD_REQUEST_LEN: usize = 1024;
/// Most keys in one upload (14 infectious days plus today).
pub const MAX_UPLOAD_KEYS: usize = 16;
/// Most sealed stay reports in one upload (six one-hour stays fit the fixed length).
pub const MAX_UPLOAD_STAYS: usize = 8;
/// Longest authorization code.
pub const MAX_UPLOAD_CODE_LEN: usize = 64;

/// Tag byte of the `padding` field (field 15, length-delimited).
const PADDING_TAG: u8 = (15 << 3) | 2;
/// Tag byte plus the padding length, always written as a two-byte varint.
const PADDING_HEADER_LEN: usize = 3;

/// What a phone uploads after a positive diagnosis, or as cover traffic.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Upload {
    /// The single-use authorization code (empty when a token authorizes).
    pub upload_code: Vec<u8>,
    /// The anonymous authorization: a VOPRF token (SPEC.md §5.6).
    pub token: Option<UploadToken>,
    /// The keys of the infectious days (empty for a dummy).
    pub keys: Vec<DiagnosisKey>,
    /// Cover traffic: processed like a real upload, then dropped.
    pub dummy: bool,
    /// Filter form (SPEC.md §5.8): the intervals to publish, one mask per key in
    /// the order of `keys`. Empty for the key form.
    pub filter_intervals: Vec<IntervalMask>,
    /// Self-reported venue stays (SPEC.md §12.11); none in a key upload.
    pub stays: Stays,
}

/// The self-reported stays of an upload: sealed stay reports only the gateway
/// opens, and the day of symptom onset they are checked against.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Stays {
    /// UTC day of symptom onset.
    pub onset_day: u32,
    /// Sealed stay reports ([`crate::venue::seal_stay`]).
    pub reports: Vec<Vec<u8>>,
}

impl Upload {
    /// Wipes the authorization (code and token) from memory: a receiver calls
    /// it once the upload is processed. (Not a `Drop`: requests are built with
    /// struct-update syntax, which `Drop` forbids; the keys wipe themselves,
    /// `Tek` zeroizes on drop.)
    pub fn wipe_authorization(&mut self) {
        self.upload_code.zeroize();
        if let Some(t) = self.token.as_mut() {
            t.input.zeroize();
            t.output.zeroize();
        }
        self.token = None;
    }

    /// Encodes the request padded with zero bytes to exactly [`UPLOAD_REQUEST_LEN`].
    pub fn encode_padded(&self) -> Result<Vec<u8>, WireError> {
        if self.keys.len() > MAX_UPLOAD_KEYS {
            return Err(WireError::TooManyKeys {
                what: "upload",
                count: self.keys.len(),
                max: MAX_UPLOAD_KEYS,
            });
        }
        if self.upload_code.len() > MAX_UPLOAD_CODE_LEN {
            return Err(WireError::invalid("upload_code", "longer than 64 bytes"));
        }
        let msg = pb::UploadRequest {
            version: PROTOCOL_VERSION,
            upload_code: self.upload_code.clone(),
            keys: self
                .keys
                .iter()
                .map(|k| pb::DiagnosisKey {
                    key_data: k.tek.0.to_vec(),
                    rolling_start_interval_number: k.rolling_start,
                    rolling_period: k.rolling_period,
                    transmission_risk_level: u32::from(k.transmission_risk),
                    days_since_onset_of_symptoms: i32::from(k.days_since_onset),
                })
                .collect(),
            dummy: self.dummy,
            token: self.token.map(|t| pb::UploadToken {
                epoch: t.epoch,
                input: t.input.to_vec(),
                output: t.output.to_vec(),
            }),
            filter_intervals: self.filter_intervals.iter().map(|m| m.0.to_vec()).collect(),
            stays: self.stays.reports.clone(),
            onset_day: self.stays.onset_day,
            padding: Vec::new(),
        };
        // SPEC.md §5.4: the padding field is appended with its length `p` as a
        // two-byte varint (`0x80 | p & 0x7f`, `p >> 7`, also when `p < 128`), so
        // `p = 1024 - 3 - n` is the one solution for every unpadded length `n`
        // (with a shortest varint, `n = 894` had none).
        let p = (UPLOAD_REQUEST_LEN - PADDING_HEADER_LEN)
            .checked_sub(msg.encoded_len())
            .ok_or_else(|| {
                WireError::invalid("padding", "request does not fit the fixed length")
            })?;
        let mut bytes = msg.encode_to_vec();
        bytes.extend_from_slice(&[PADDING_TAG, 0x80 | (p & 0x7f) as u8, (p >> 7) as u8]);
        bytes.resize(UPLOAD_REQUEST_LEN, 0);
        Ok(bytes)
    }

    /// Decodes a request: exact length, zero padding, version, key ranges.
    pub fn decode(bytes: &[u8], now_unix: u64) -> Result<Upload, WireError> {
        const WHAT: &str = "upload request";
        if bytes.len() < UPLOAD_REQUEST_LEN {
            return Err(WireError::invalid(
                "length",
                format!(
                    "upload request is {} bytes, every upload is exactly {UPLOAD_REQUEST_LEN}",
                    bytes.len()
                ),
            ));
        }
        let m: pb::UploadRequest = decode_limited(WHAT, bytes, UPLOAD_REQUEST_LEN)?;
        check_version(WHAT, m.version)?;
        if m.padding.iter().any(|&b| b != 0) {
            return Err(WireError::invalid("padding", "must be zero bytes"));
        }
        let unpadded = pb::UploadRequest {
            padding: Vec::new(),
            ..m.clone()
        }
        .encoded_len();
        if unpadded + PADDING_HEADER_LEN + m.padding.len() != UPLOAD_REQUEST_LEN
            || bytes[unpadded] != PADDING_TAG
        {
            return Err(WireError::invalid(
                "padding",
                "must be the last field, its length a two-byte varint",
            ));
        }
        if m.upload_code.len() > MAX_UPLOAD_CODE_LEN {
            return Err(WireError::invalid("upload_code", "longer than 64 bytes"));
        }
        if m.keys.len() > MAX_UPLOAD_KEYS {
            return Err(WireError::TooManyKeys {
                what: WHAT,
                count: m.keys.len(),
                max: MAX_UPLOAD_KEYS,
            });
        }
        let stays = decode_stays(&m)?;
        if !m.dummy && m.keys.is_empty() && stays.reports.is_empty() {
            return Err(WireError::Empty(WHAT));
        }
        let keys: Vec<DiagnosisKey> = m
            .keys
            .iter()
            .map(|k| {
                key_from_wire(
                    &k.key_data,
                    k.rolling_start_interval_number,
                    k.rolling_period,
                    k.transmission_risk_level,
                    k.days_since_onset_of_symptoms,
                    now_unix,
                )
            })
            .collect::<Result<_, _>>()?;
        let token = m
            .token
            .map(|t| -> Result<UploadToken, WireError> {
                Ok(UploadToken {
                    epoch: t.epoch,
                    input: t.input.as_slice().try_into().map_err(|_| {
                        WireError::invalid("token.input", format!("is not {TOKEN_INPUT_LEN} bytes"))
                    })?,
                    output: t.output.as_slice().try_into().map_err(|_| {
                        WireError::invalid(
                            "token.output",
                            format!("is not {TOKEN_OUTPUT_LEN} bytes"),
                        )
                    })?,
                })
            })
            .transpose()?;
        let filter_intervals = decode_filter_intervals(&m.filter_intervals, &keys, now_unix)?;
        Ok(Upload {
            upload_code: m.upload_code,
            token,
            keys,
            dummy: m.dummy,
            filter_intervals,
            stays,
        })
    }
}

/// Stays: none, or up to [`MAX_UPLOAD_STAYS`] reports of a sealed stay's
/// length in a real upload without keys, with the day of onset.
fn decode_stays(m: &pb::UploadRequest) -> Result<Stays, WireError> {
    if m.stays.is_empty() {
        if m.onset_day != 0 {
            return Err(WireError::invalid("onset_day", "set without stays"));
        }
        return Ok(Stays::default());
    }
    if m.dummy || !m.keys.is_empty() {
        return Err(WireError::invalid(
            "stays",
            "travel in a real upload of their own, without keys",
        ));
    }
    if m.stays.len() > MAX_UPLOAD_STAYS {
        return Err(WireError::invalid(
            "stays",
            format!("{} reports, at most {MAX_UPLOAD_STAYS}", m.stays.len()),
        ));
    }
    let lengths = (1..=MAX_STAY_SLOTS).map(sealed_stay_len);
    if let Some(bad) = m
        .stays
        .iter()
        .find(|r| !lengths.clone().any(|l| l == r.len()))
    {
        return Err(WireError::invalid(
            "stays",
            format!("a report of {} bytes is no sealed stay's length", bad.len()),
        ));
    }
    if m.onset_day == 0 {
        return Err(WireError::invalid("onset_day", "missing for stays"));
    }
    Ok(Stays {
        onset_day: m.onset_day,
        reports: m.stays.clone(),
    })
}

/// Filter-form masks: none (key form), or exactly one valid mask per key.
fn decode_filter_intervals(
    fields: &[Vec<u8>],
    keys: &[DiagnosisKey],
    now_unix: u64,
) -> Result<Vec<IntervalMask>, WireError> {
    if fields.is_empty() {
        return Ok(Vec::new());
    }
    if fields.len() != keys.len() {
        return Err(WireError::invalid(
            "filter_intervals",
            format!("{} masks for {} keys", fields.len(), keys.len()),
        ));
    }
    fields
        .iter()
        .zip(keys)
        .map(|(field, key)| {
            let mask = IntervalMask::from_bytes(field)?;
            mask.validate(key, now_unix)?;
            Ok(mask)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wiping_clears_the_code_and_the_token_and_keeps_the_keys() {
        let mut u = Upload {
            upload_code: b"ABCD-EFGH-JKMN".to_vec(),
            token: Some(UploadToken {
                epoch: 3,
                input: [7; TOKEN_INPUT_LEN],
                output: [9; TOKEN_OUTPUT_LEN],
            }),
            dummy: true,
            ..Default::default()
        };
        let code = u.upload_code.as_ptr();
        u.wipe_authorization();
        assert!(u.upload_code.iter().all(|&b| b == 0), "code not wiped");
        assert_eq!(u.upload_code.as_ptr(), code, "wiped in place");
        assert_eq!(u.token, None);
        assert!(u.dummy);
    }
}

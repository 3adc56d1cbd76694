//! Upload bundles: the padded request of a positive diagnosis (key form, or
//! filter form with the intervals the patient chose), and dummy requests
//! of the same length on a Poisson schedule, so that an observer of the traffic
//! cannot tell who uploads real keys. A request is authorized by an anonymous
//! token (the default; see [`crate::tokens`]) and then sealed to the gateway's
//! HPKE key, so that any relay can carry it; or, for gateways without the
//! anonymous path, by the authority's single-use code in a plaintext bundle.
//! Transport is the caller's.

use rand_core::{OsRng, RngCore};
use traceless_protocol::wire::{Stays, Upload, MAX_UPLOAD_KEYS, MAX_UPLOAD_STAYS};
use traceless_protocol::{
    interval_number, interval_start_seconds, seal_upload, transmission_risk, DiagnosisKey,
    IntervalMask, Tek, UploadToken, INTERVALS_PER_DAY, MAX_DAYS_SINCE_ONSET, SEALED_UPLOAD_LEN,
};

use crate::error::{Result, SdkError};
use crate::own_keys::OwnKey;
use crate::storage::Table;
use crate::vault::Vault;

/// Length of an upload code as the node's authority CLI issues them
/// (`<16 hex>-<32 hex>`); dummies carry a random code of this length.
pub const UPLOAD_CODE_LEN: usize = 49;

const NEXT_DUMMY_KEY: &[u8] = b"schedule/next-dummy-upload";

/// The diagnosis keys of `own` (keys of days `first_day..=today`), minus the
/// excluded days, with days since onset relative to `onset_day`.
pub(crate) fn diagnosis_keys(
    own: &[(u32, OwnKey)],
    onset_day: u32,
    exclude_days: &[u32],
) -> Result<Vec<DiagnosisKey>> {
    let keys: Vec<DiagnosisKey> = own
        .iter()
        .filter(|(day, _)| !exclude_days.contains(day))
        .map(|(day, k)| {
            let dso = (i64::from(*day) - i64::from(onset_day)).clamp(
                -i64::from(MAX_DAYS_SINCE_ONSET),
                i64::from(MAX_DAYS_SINCE_ONSET),
            ) as i32;
            DiagnosisKey {
                tek: Tek(k.tek),
                rolling_start: k.rolling_start,
                rolling_period: k.rolling_period,
                transmission_risk: transmission_risk(dso),
                days_since_onset: dso as i8,
            }
        })
        .collect();
    if keys.is_empty() {
        return Err(SdkError::InvalidArgument(
            "no keys left to upload: every day of the infectious window is excluded or unknown"
                .into(),
        ));
    }
    if keys.len() > MAX_UPLOAD_KEYS {
        return Err(SdkError::InvalidArgument(format!(
            "{} keys exceed the {MAX_UPLOAD_KEYS} one upload may carry",
            keys.len()
        )));
    }
    Ok(keys)
}

/// The intervals of `key` a filter-form upload publishes (SPEC.md §5.8): every
/// interval that has ended at `now`, minus every interval that overlaps one of
/// the excluded half-open ranges `[start, end)` of unix seconds.
pub(crate) fn interval_mask(key: &DiagnosisKey, now: u64, exclude: &[(u64, u64)]) -> IntervalMask {
    let current = interval_number(now);
    let mut mask = IntervalMask::default();
    for j in 0..key.rolling_period.min(INTERVALS_PER_DAY) {
        let interval = key.rolling_start + j;
        if interval >= current {
            break;
        }
        let (start, end) = (
            interval_start_seconds(interval),
            interval_start_seconds(interval + 1),
        );
        if !exclude.iter().any(|&(s, e)| s < end && start < e) {
            mask.set(j, true);
        }
    }
    mask
}

/// The keys of a filter-form upload with their masks ([`interval_mask`]); keys
/// left with no interval are dropped. Errors if a range ends before it starts
/// or if nothing is left.
pub(crate) fn filter_masks(
    keys: Vec<DiagnosisKey>,
    now: u64,
    exclude: &[(u64, u64)],
) -> Result<(Vec<DiagnosisKey>, Vec<IntervalMask>)> {
    if let Some((s, e)) = exclude.iter().find(|(s, e)| s > e) {
        return Err(SdkError::InvalidArgument(format!(
            "excluded range [{s}, {e}) ends before it starts"
        )));
    }
    let (keys, masks): (Vec<_>, Vec<_>) = keys
        .into_iter()
        .map(|k| {
            let mask = interval_mask(&k, now, exclude);
            (k, mask)
        })
        .filter(|(_, m)| m.offsets().next().is_some())
        .unzip();
    if keys.is_empty() {
        return Err(SdkError::InvalidArgument(
            "no interval left to upload: every interval of the infectious window that has \
             ended is excluded"
                .into(),
        ));
    }
    Ok((keys, masks))
}

/// Encodes a real upload, authorized by a code or a token, padded to the fixed
/// length: key form if `masks` is empty, else filter form (one mask per key).
pub(crate) fn encode(
    code: &[u8],
    token: Option<UploadToken>,
    keys: Vec<DiagnosisKey>,
    masks: Vec<IntervalMask>,
) -> Result<Vec<u8>> {
    debug_assert!(masks.is_empty() || masks.len() == keys.len());
    Ok(Upload {
        upload_code: code.to_vec(),
        token,
        keys,
        dummy: false,
        filter_intervals: masks,
        stays: Default::default(),
    }
    .encode_padded()?)
}

/// Splits sealed stay reports into padded stay uploads (SPEC.md §12.11), as
/// many reports to an upload as fit the fixed length, each authorized by the
/// token `token(i)` gives the `i`-th upload.
pub(crate) fn encode_stays(
    onset_day: u32,
    reports: &[Vec<u8>],
    mut token: impl FnMut(usize) -> UploadToken,
) -> Result<Vec<Vec<u8>>> {
    let request = |token, reports: &[Vec<u8>]| {
        Upload {
            token: Some(token),
            stays: Stays {
                onset_day,
                reports: reports.to_vec(),
            },
            ..Default::default()
        }
        .encode_padded()
    };
    let mut out = Vec::new();
    let mut rest = reports;
    while !rest.is_empty() {
        let t = token(out.len());
        // The longest prefix that fits: a token's encoding has one length.
        let fits = (1..=rest.len().min(MAX_UPLOAD_STAYS))
            .take_while(|&n| request(t, &rest[..n]).is_ok())
            .last()
            .ok_or_else(|| {
                SdkError::InvalidArgument("a stay report does not fit an upload".into())
            })?;
        out.push(request(t, &rest[..fits])?);
        rest = &rest[fits..];
    }
    Ok(out)
}

/// Encodes a dummy of a token-authorized upload: `token` (random, see
/// [`crate::tokens::random`]), no code, no keys, the same padded length.
pub(crate) fn encode_token_dummy(token: UploadToken) -> Result<Vec<u8>> {
    Ok(Upload {
        upload_code: Vec::new(),
        token: Some(token),
        keys: Vec::new(),
        dummy: true,
        filter_intervals: Vec::new(),
        stays: Default::default(),
    }
    .encode_padded()?)
}

/// Seals a padded request to the gateway's X25519 key: always
/// [`SEALED_UPLOAD_LEN`] bytes.
pub(crate) fn seal(gateway_key: &[u8; 32], request: &[u8]) -> Result<Vec<u8>> {
    let sealed = seal_upload(gateway_key, request)
        .map_err(|e| SdkError::InvalidArgument(format!("cannot seal to this gateway key: {e}")))?;
    debug_assert_eq!(sealed.len(), SEALED_UPLOAD_LEN);
    Ok(sealed)
}

/// Encodes a dummy upload: a random code of the real codes' length, no keys, the
/// same padded length as every real upload.
pub(crate) fn encode_dummy() -> Result<Vec<u8>> {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut raw = [0u8; UPLOAD_CODE_LEN];
    OsRng.fill_bytes(&mut raw);
    let mut code: Vec<u8> = raw.iter().map(|b| HEX[usize::from(b & 15)]).collect();
    code[16] = b'-';
    Ok(Upload {
        upload_code: code,
        token: None,
        keys: Vec::new(),
        dummy: true,
        filter_intervals: Vec::new(),
        stays: Default::default(),
    }
    .encode_padded()?)
}

/// An exponentially distributed delay with `rate_per_day` events per day, in
/// seconds (at least 1), drawn from `rng`: the gaps of a Poisson process. The
/// SDK draws its dummy schedule from the operating system's CSPRNG; a
/// simulation passes a seeded one to be reproducible.
pub fn poisson_gap_seconds(rng: &mut impl RngCore, rate_per_day: f64) -> u64 {
    // 53 random bits give a uniform in (0, 1]; -ln(u)/rate is Exp(rate).
    let u = ((rng.next_u64() >> 11) + 1) as f64 / (1u64 << 53) as f64;
    let days = -u.ln() / rate_per_day;
    (days * 86_400.0).clamp(1.0, 1e12) as u64
}

/// When the next dummy upload is due: the stored time, or a fresh draw from `now`.
pub(crate) fn next_dummy_at(vault: &Vault, now: u64, rate_per_day: f64) -> Result<u64> {
    let storage = vault.storage();
    if let Some(at) = storage
        .get(Table::Meta, NEXT_DUMMY_KEY)?
        .and_then(|v| v.try_into().ok().map(u64::from_be_bytes))
    {
        return Ok(at);
    }
    schedule_next_dummy(vault, now, rate_per_day)
}

/// Draws and stores the next dummy upload time after `now`.
pub(crate) fn schedule_next_dummy(vault: &Vault, now: u64, rate_per_day: f64) -> Result<u64> {
    let at = now.saturating_add(poisson_gap_seconds(&mut OsRng, rate_per_day));
    vault
        .storage()
        .put(Table::Meta, NEXT_DUMMY_KEY, &at.to_be_bytes())?;
    Ok(at)
}

/// Days of own keys inside the infectious window `onset_day - before ..= today`.
pub(crate) fn window_days(
    onset_day: u32,
    before: u32,
    today: u32,
) -> std::ops::RangeInclusive<u32> {
    onset_day.saturating_sub(before)..=today
}

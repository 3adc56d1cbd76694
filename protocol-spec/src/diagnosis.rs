//! A published Temporary Exposure Key with its metadata.

use crate::error::WireError;
use crate::interval::{
    interval_number, interval_start_seconds, EnIntervalNumber, DRIFT_TOLERANCE_INTERVALS,
    INTERVALS_PER_DAY, RETENTION_DAYS,
};
use crate::keys::{Tek, KEY_LEN};

/// Highest transmission risk level.
pub const MAX_TRANSMISSION_RISK: u8 = 8;
/// Largest magnitude of days since onset of symptoms.
pub const MAX_DAYS_SINCE_ONSET: i8 = 14;

/// Transmission risk level of a key, or a reported stay (§12.11), `dso` days
/// from symptom onset: highest around onset, lower further away (levels as in
/// SPEC.md §7.2's table, where 1-2 weigh zero). Phones and gateways use this one
/// table.
pub fn transmission_risk(days_since_onset: i32) -> u8 {
    match days_since_onset {
        -2..=2 => 6,
        -3 | 3..=5 => 5,
        6..=9 => 4,
        _ => 3,
    }
}

/// A diagnosis key: the TEK of an infectious day with what the authority knows about it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DiagnosisKey {
    /// The published TEK.
    pub tek: Tek,
    /// ENIntervalNumber of the key's first valid interval.
    pub rolling_start: EnIntervalNumber,
    /// Number of intervals the key is valid for, 1..=144.
    pub rolling_period: u32,
    /// Transmission risk level 0..=8 (0 = unknown).
    pub transmission_risk: u8,
    /// Days from onset of symptoms to the key's day, -14..=14.
    pub days_since_onset: i8,
}

impl DiagnosisKey {
    /// First interval after the key's validity.
    pub fn validity_end(&self) -> EnIntervalNumber {
        self.rolling_start.saturating_add(self.rolling_period)
    }

    /// Unix seconds after which the key must no longer be stored or served:
    /// the end of its validity plus [`RETENTION_DAYS`].
    pub fn expires_at(&self) -> u64 {
        interval_start_seconds(self.validity_end()) + u64::from(RETENTION_DAYS) * 86_400
    }

    /// Checks the ranges SPEC.md §3 gives for every field, and that the key does
    /// not start after `now_unix` (plus drift tolerance).
    pub fn validate(&self, now_unix: u64) -> Result<(), WireError> {
        validate_fields(
            self.rolling_start,
            self.rolling_period,
            u32::from(self.transmission_risk),
            i32::from(self.days_since_onset),
            now_unix,
        )
    }
}

/// Range checks on raw wire values, before they are narrowed into a [`DiagnosisKey`].
pub(crate) fn validate_fields(
    rolling_start: u32,
    rolling_period: u32,
    transmission_risk: u32,
    days_since_onset: i32,
    now_unix: u64,
) -> Result<(), WireError> {
    if !(1..=INTERVALS_PER_DAY).contains(&rolling_period) {
        return Err(WireError::RollingPeriod(rolling_period));
    }
    if transmission_risk > u32::from(MAX_TRANSMISSION_RISK) {
        return Err(WireError::TransmissionRisk(transmission_risk));
    }
    if days_since_onset.unsigned_abs() > MAX_DAYS_SINCE_ONSET as u32 {
        return Err(WireError::DaysSinceOnset(days_since_onset));
    }
    let now = interval_number(now_unix);
    if rolling_start > now.saturating_add(DRIFT_TOLERANCE_INTERVALS) {
        return Err(WireError::StartInFuture {
            start: rolling_start,
            now,
        });
    }
    Ok(())
}

/// Appends the keys of one wire group (`key_data` a whole number of 16-byte
/// TEKs sharing the other fields) to `out`: [`key_from_wire`] for each, with
/// the shared fields validated once.
pub(crate) fn keys_from_wire_group(
    out: &mut Vec<DiagnosisKey>,
    key_data: &[u8],
    rolling_start: u32,
    rolling_period: u32,
    transmission_risk: u32,
    days_since_onset: i32,
    now_unix: u64,
) -> Result<(), WireError> {
    if key_data.is_empty() || !key_data.len().is_multiple_of(KEY_LEN) {
        return Err(WireError::KeyLength(key_data.len()));
    }
    let first = key_from_wire(
        &key_data[..KEY_LEN],
        rolling_start,
        rolling_period,
        transmission_risk,
        days_since_onset,
        now_unix,
    )?;
    out.extend(key_data.chunks_exact(KEY_LEN).map(|tek| DiagnosisKey {
        tek: Tek(tek.try_into().expect("chunks of 16 bytes")),
        rolling_start: first.rolling_start,
        rolling_period: first.rolling_period,
        transmission_risk: first.transmission_risk,
        days_since_onset: first.days_since_onset,
    }));
    Ok(())
}

/// Narrows raw wire values into a key after [`validate_fields`].
pub(crate) fn key_from_wire(
    key_data: &[u8],
    rolling_start: u32,
    rolling_period: u32,
    transmission_risk: u32,
    days_since_onset: i32,
    now_unix: u64,
) -> Result<DiagnosisKey, WireError> {
    let tek: [u8; 16] = key_data
        .try_into()
        .map_err(|_| WireError::KeyLength(key_data.len()))?;
    validate_fields(
        rolling_start,
        rolling_period,
        transmission_risk,
        days_since_onset,
        now_unix,
    )?;
    Ok(DiagnosisKey {
        tek: Tek(tek),
        rolling_start,
        rolling_period,
        // Both fit: checked against 8 and ±14 above.
        transmission_risk: transmission_risk as u8,
        days_since_onset: days_since_onset as i8,
    })
}

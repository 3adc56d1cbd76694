//! Time in the protocol: 10-minute ENIntervalNumbers and UTC days.

/// `ENIntervalNumber = unix_seconds / 600`: the 10-minute interval a token is valid for.
pub type EnIntervalNumber = u32;

/// Seconds in one interval.
pub const INTERVAL_SECONDS: u64 = 600;
/// Intervals in one UTC day, and the default (maximum) rolling period of a TEK.
pub const INTERVALS_PER_DAY: u32 = 144;
/// Clock drift tolerated when matching, in intervals (±2 h, as in GAEN).
pub const DRIFT_TOLERANCE_INTERVALS: u32 = 12;
/// Days a published key is kept (and an own TEK or sighting kept on a phone)
/// after its validity ended.
pub const RETENTION_DAYS: u32 = 14;
/// Seconds after the end of a key's validity before a still-valid uploaded key
/// may be published (embargo, SPEC.md §6.3).
pub const EMBARGO_SECONDS: u64 = 2 * 3600;

/// `ENIntervalNumber` of a unix time in seconds (saturating past year 2500).
pub fn interval_number(unix_seconds: u64) -> EnIntervalNumber {
    u32::try_from(unix_seconds / INTERVAL_SECONDS).unwrap_or(u32::MAX)
}

/// Unix seconds at which an interval starts.
pub fn interval_start_seconds(interval: EnIntervalNumber) -> u64 {
    u64::from(interval) * INTERVAL_SECONDS
}

/// UTC day number (`unix_seconds / 86400`) that an interval falls in.
pub fn day_of_interval(interval: EnIntervalNumber) -> u32 {
    interval / INTERVALS_PER_DAY
}

/// First interval of a UTC day: the rolling start of that day's TEK.
pub fn day_start_interval(day: u32) -> EnIntervalNumber {
    day.saturating_mul(INTERVALS_PER_DAY)
}

/// UTC day number of a unix time in seconds.
pub fn day_of_unix(unix_seconds: u64) -> u32 {
    day_of_interval(interval_number(unix_seconds))
}

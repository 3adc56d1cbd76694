//! Time as the node sees it, injectable so that embargo and retention can be tested.

pub use traceless_protocol::{Clock, ManualClock, SharedClock, SystemClock};

/// A clock that starts at a chosen time and then advances with real time:
/// `run --start-time` (tests run the binary at a fixed time of day).
#[derive(Clone, Copy, Debug)]
pub struct StartedAt {
    start: u64,
    since: std::time::Instant,
}

impl StartedAt {
    /// A clock that reads `unix_seconds` now.
    pub fn new(unix_seconds: u64) -> Self {
        StartedAt {
            start: unix_seconds,
            since: std::time::Instant::now(),
        }
    }
}

impl Clock for StartedAt {
    fn now(&self) -> u64 {
        self.start + self.since.elapsed().as_secs()
    }
}

/// `YYYY-MM-DD` of a UTC day number (days since 1970-01-01).
pub fn date_of_day(day: u32) -> String {
    // Howard Hinnant's civil_from_days.
    let z = i64::from(day) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

/// `YYYY-MM-DD HH:MM UTC` of a unix time.
pub fn datetime_of_unix(unix_seconds: u64) -> String {
    let day = u32::try_from(unix_seconds / 86_400).unwrap_or(u32::MAX);
    let secs = unix_seconds % 86_400;
    format!(
        "{} {:02}:{:02} UTC",
        date_of_day(day),
        secs / 3600,
        (secs % 3600) / 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(date_of_day(0), "1970-01-01");
        assert_eq!(date_of_day(19_675), "2023-11-14");
        assert_eq!(datetime_of_unix(1_700_000_000), "2023-11-14 22:13 UTC");
    }
}

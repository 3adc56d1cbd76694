//! Time as the node sees it, injectable so that embargo and retention can be
//! tested; and the peers' clocks (SPEC.md §2.1): each node samples the time of
//! its federation peers, estimates its own offset against their median, and
//! takes irreversible acts (releasing embargoed keys, publishing a period,
//! deleting) by a conservative clock that a node running ahead cannot push
//! forward.

use std::collections::HashMap;
use std::sync::Mutex;

use libp2p::PeerId;

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

/// Most peers whose clock samples are kept (the oldest sample goes first).
pub const MAX_CLOCK_PEERS: usize = 64;
/// Fewest fresh peer samples from which an offset is estimated.
pub const MIN_CLOCK_PEERS: usize = 2;

/// Settings of the peer-clock estimator (`[clock]` in the config).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerClockConfig {
    /// How far ahead of its peers' median a node's clock may be before it
    /// holds back and raises the alarm.
    pub tolerance_secs: u64,
    /// Samples older than this (by the node's own clock) are dropped.
    pub max_age_secs: u64,
    /// At start, irreversible acts wait up to this long (on the monotonic
    /// clock) for `startup_samples` samples.
    pub startup_wait_secs: u64,
    /// Samples that end the start-up wait: [`MIN_CLOCK_PEERS`], or fewer for
    /// a node configured with fewer peers (0: no wait, a node without peers).
    pub startup_samples: usize,
}

/// One peer's clock, as last sampled.
#[derive(Clone, Copy, Debug)]
struct Sample {
    /// The time the peer answered (its answer's transit makes the peer look
    /// slightly behind: the safe direction).
    peer_time: u64,
    /// Our monotonic clock when the answer arrived: the peer's time now is
    /// `peer_time + (monotonic now − at)`, whatever our wall clock does.
    at: u64,
}

/// Seconds since it was made, on the monotonic clock (wall-clock jumps do
/// not move it): how peer samples age.
#[derive(Clone, Copy, Debug)]
pub struct Monotonic(std::time::Instant);

impl Monotonic {
    /// Starts at 0 now.
    pub fn new() -> Self {
        Monotonic(std::time::Instant::now())
    }
}

impl Default for Monotonic {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for Monotonic {
    fn now(&self) -> u64 {
        self.0.elapsed().as_secs()
    }
}

/// What a node knows about its clock against its peers'.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClockStatus {
    /// Fewer than [`MIN_CLOCK_PEERS`] fresh samples: nothing is known, the
    /// node's own clock is used as it is.
    Unknown {
        /// Fresh samples held.
        peers: usize,
    },
    /// Within the tolerance of the peers' median.
    Agrees {
        /// Own clock minus the peers' median, seconds (positive: ahead).
        offset: i64,
        /// Fresh samples.
        peers: usize,
    },
    /// Ahead of the lower median of the peers by more than the tolerance:
    /// releases, publications and deletions wait for the peers' time.
    Ahead {
        /// Own clock minus the peers' lower median, seconds (positive).
        offset: i64,
        /// Fresh samples.
        peers: usize,
    },
    /// Behind the upper median of the peers by more than the tolerance: the
    /// node's releases, publications and deletions run late.
    Behind {
        /// Own clock minus the peers' upper median, seconds (negative).
        offset: i64,
        /// Fresh samples.
        peers: usize,
    },
}

impl ClockStatus {
    /// Own clock minus the peers' (0 when unknown).
    pub fn offset(&self) -> i64 {
        match *self {
            ClockStatus::Unknown { .. } => 0,
            ClockStatus::Agrees { offset, .. }
            | ClockStatus::Ahead { offset, .. }
            | ClockStatus::Behind { offset, .. } => offset,
        }
    }

    /// Fresh peer samples the status is based on.
    pub fn peers(&self) -> usize {
        match *self {
            ClockStatus::Unknown { peers }
            | ClockStatus::Agrees { peers, .. }
            | ClockStatus::Ahead { peers, .. }
            | ClockStatus::Behind { peers, .. } => peers,
        }
    }

    /// Whether the clock is off by more than the tolerance (either way).
    pub fn alarm(&self) -> bool {
        matches!(self, ClockStatus::Ahead { .. } | ClockStatus::Behind { .. })
    }

    /// The alert the transparency page shows, in plain words (`None` when
    /// there is no alarm).
    pub fn alert(&self) -> Option<String> {
        match *self {
            ClockStatus::Ahead { offset, .. } => Some(format!(
                "This node's clock is {} ahead of its peers; it holds back releases and deletions until it is corrected.",
                human_duration(offset.unsigned_abs())
            )),
            ClockStatus::Behind { offset, .. } => Some(format!(
                "This node's clock is {} behind its peers; its publications and deletions happen that much late until it is corrected.",
                human_duration(offset.unsigned_abs())
            )),
            _ => None,
        }
    }
}

/// `3 h`, `2 days`, `12 min`: a duration rounded for people.
pub fn human_duration(secs: u64) -> String {
    match secs {
        s if s >= 2 * 86_400 => format!("{} days", (s + 43_200) / 86_400),
        s if s >= 2 * 3600 => format!("{} h", (s + 1800) / 3600),
        s if s >= 60 => format!("{} min", (s + 30) / 60),
        s => format!("{s} s"),
    }
}

/// The peers' clocks (SPEC.md §2.1): at most one sample per authenticated
/// peer (its libp2p identity), at most [`MAX_CLOCK_PEERS`], each dropped
/// `max_age_secs` after it arrived. Samples age on a monotonic clock, so a
/// jump of the node's own wall clock shows at once against its peers'.
pub struct PeerClocks {
    config: PeerClockConfig,
    monotonic: SharedClock,
    samples: Mutex<HashMap<PeerId, Sample>>,
    /// The monotonic clock at start.
    started: u64,
    /// The alarm as last logged, so that a change is logged once.
    logged_alarm: Mutex<bool>,
}

impl PeerClocks {
    /// No samples yet; they age on `monotonic` (a [`Monotonic`] in a node).
    pub fn new(config: PeerClockConfig, monotonic: SharedClock) -> Self {
        PeerClocks {
            config,
            started: monotonic.now(),
            monotonic,
            samples: Mutex::new(HashMap::new()),
            logged_alarm: Mutex::new(false),
        }
    }

    /// The settings.
    pub fn config(&self) -> PeerClockConfig {
        self.config
    }

    fn samples(&self) -> std::sync::MutexGuard<'_, HashMap<PeerId, Sample>> {
        self.samples.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records that `peer` said its time was `peer_time` in an answer that
    /// just arrived; replaces the peer's previous sample.
    pub fn record(&self, peer: PeerId, peer_time: u64) {
        let at = self.monotonic.now();
        let mut s = self.samples();
        if !s.contains_key(&peer) && s.len() >= MAX_CLOCK_PEERS {
            if let Some(oldest) = s.iter().min_by_key(|(_, v)| v.at).map(|(k, _)| *k) {
                s.remove(&oldest);
            }
        }
        s.insert(peer, Sample { peer_time, at });
    }

    /// The fresh samples' `peer − own` at `own_now`, sorted; expired ones
    /// are dropped.
    fn fresh(&self, own_now: u64) -> Vec<i64> {
        let max_age = self.config.max_age_secs;
        let mono = self.monotonic.now();
        let mut s = self.samples();
        s.retain(|_, v| mono.saturating_sub(v.at) <= max_age);
        let own = i128::from(own_now);
        let mut d: Vec<i64> = s
            .values()
            .map(|v| {
                let peer_now = i128::from(v.peer_time) + i128::from(mono.saturating_sub(v.at));
                i64::try_from(peer_now - own).unwrap_or(if peer_now > own {
                    i64::MAX
                } else {
                    i64::MIN
                })
            })
            .collect();
        d.sort_unstable();
        d
    }

    /// Where this node's clock stands against its peers' at `own_now`: the
    /// lower median of the peers' clocks decides "ahead", the upper median
    /// "behind" (for an odd count both are the median).
    pub fn status(&self, own_now: u64) -> ClockStatus {
        let d = self.fresh(own_now);
        let peers = d.len();
        if peers < MIN_CLOCK_PEERS {
            return ClockStatus::Unknown { peers };
        }
        let lower = d[(peers - 1) / 2];
        let upper = d[peers / 2];
        let tol = i64::try_from(self.config.tolerance_secs).unwrap_or(i64::MAX);
        if -lower > tol {
            ClockStatus::Ahead {
                offset: -lower,
                peers,
            }
        } else if upper > tol {
            ClockStatus::Behind {
                offset: -upper,
                peers,
            }
        } else {
            ClockStatus::Agrees {
                offset: -(lower + upper) / 2,
                peers,
            }
        }
    }

    /// The clock for irreversible acts: `min(own, peers' lower median +
    /// tolerance)`; while the peers' is unknown, none (hold) until
    /// `startup_samples` samples or `startup_wait_secs` after start, the own
    /// clock after. A starting node
    /// whose clock runs ahead would otherwise publish a boundary its peers
    /// have not reached before it has heard from any of them.
    pub fn conservative_now(&self, own_now: u64) -> Option<u64> {
        let d = self.fresh(own_now);
        if d.len() < MIN_CLOCK_PEERS {
            let waited = self.monotonic.now().saturating_sub(self.started);
            let waiting =
                d.len() < self.config.startup_samples && waited < self.config.startup_wait_secs;
            return (!waiting).then_some(own_now);
        }
        let lower = i128::from(d[(d.len() - 1) / 2]);
        let peers_plus_tol = i128::from(own_now) + lower + i128::from(self.config.tolerance_secs);
        Some(u64::try_from(peers_plus_tol.clamp(0, i128::from(own_now))).unwrap_or(own_now))
    }

    /// Logs the alarm when it starts or ends (once per change).
    pub fn log_change(&self, status: &ClockStatus) {
        let mut logged = self.logged_alarm.lock().unwrap_or_else(|e| e.into_inner());
        if status.alarm() == *logged {
            return;
        }
        *logged = status.alarm();
        match status {
            ClockStatus::Ahead { offset, peers } => tracing::warn!(
                offset_seconds = offset,
                peers,
                "clock alarm: this node's clock is {} ahead of its peers; releases, publications and deletions wait for their time",
                human_duration(offset.unsigned_abs())
            ),
            ClockStatus::Behind { offset, peers } => tracing::warn!(
                offset_seconds = offset,
                peers,
                "clock alarm: this node's clock is {} behind its peers; its releases, publications and deletions run late",
                human_duration(offset.unsigned_abs())
            ),
            _ => tracing::info!("clock alarm over: this node's clock agrees with its peers"),
        }
    }
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

    const T: u64 = 1_700_000_000;
    const CONFIG: PeerClockConfig = PeerClockConfig {
        tolerance_secs: 600,
        max_age_secs: 300,
        startup_wait_secs: 0,
        startup_samples: 0,
    };

    /// Peers at `T + offset` each, sampled now on the monotonic `age`.
    fn clocks(offsets: &[i64], age: &ManualClock) -> PeerClocks {
        let c = PeerClocks::new(CONFIG, std::sync::Arc::new(age.clone()));
        for &o in offsets {
            c.record(PeerId::random(), T.saturating_add_signed(o));
        }
        c
    }

    #[test]
    fn median_of_peers_gives_the_offset_and_the_conservative_clock() {
        let age = ManualClock::new(0);
        // Our clock is 3 h ahead of three peers that agree within a minute.
        let own = T + 3 * 3600;
        let c = clocks(&[-30, 0, 40], &age);
        assert_eq!(
            c.status(own),
            ClockStatus::Ahead {
                offset: 3 * 3600,
                peers: 3
            }
        );
        assert_eq!(c.conservative_now(own), Some(T + 600));
        let alert = c.status(own).alert().unwrap();
        assert!(alert.contains("3 h ahead"), "{alert}");
        // The peers' time moves on with the monotonic clock: 100 s later they
        // are at T + 100, whatever our wall clock says.
        age.advance(100);
        assert_eq!(c.conservative_now(own), Some(T + 700));
        // A clock within the tolerance: no alarm, the own clock rules.
        let within = clocks(&[-30, 0, 40], &ManualClock::new(0));
        assert_eq!(
            within.status(T + 300),
            ClockStatus::Agrees {
                offset: 300,
                peers: 3
            }
        );
        assert_eq!(within.conservative_now(T + 300), Some(T + 300));
        // Behind only delays: the own clock is used, and the alarm is raised.
        let behind = clocks(&[3 * 3600, 3 * 3600], &ManualClock::new(0));
        assert_eq!(behind.conservative_now(T), Some(T));
        assert!(behind.status(T).alert().unwrap().contains("3 h behind"));
    }

    #[test]
    fn fewer_than_two_peers_is_unknown_and_changes_nothing() {
        let own = T + 3 * 3600;
        let age = ManualClock::new(0);
        let c = clocks(&[0], &age);
        assert_eq!(c.status(own), ClockStatus::Unknown { peers: 1 });
        assert!(!c.status(own).alarm());
        assert_eq!(c.conservative_now(own), Some(own));
        // The same peer twice is still one sample.
        let p = PeerId::random();
        let c = clocks(&[], &age);
        c.record(p, T);
        c.record(p, T);
        assert_eq!(c.status(own), ClockStatus::Unknown { peers: 1 });
        assert_eq!(c.conservative_now(own), Some(own));
    }

    #[test]
    fn a_lying_minority_cannot_move_the_median_outside_the_honest_clocks() {
        let age = ManualClock::new(0);
        // Our clock is right; three honest peers agree; two liars claim to be
        // a day ahead (to make us act early) or a day behind.
        for lie in [86_400, -86_400] {
            let c = clocks(&[-20, 0, 20, lie, lie], &age);
            let s = c.status(T);
            assert!(matches!(s, ClockStatus::Agrees { .. }), "{lie}: {s:?}");
            assert!(s.offset().abs() <= 20, "{lie}: {s:?}");
            assert_eq!(c.conservative_now(T), Some(T));
        }
        // Our clock is 3 h ahead and the liars back it: the honest majority
        // still raises the alarm and holds us back.
        let own = T + 3 * 3600;
        let c = clocks(&[-10, 0, 10, 3 * 3600, 3 * 3600], &age);
        assert!(matches!(c.status(own), ClockStatus::Ahead { .. }));
        // The median is the highest honest clock, T + 10.
        assert_eq!(c.conservative_now(own), Some(T + 10 + 600));
        // Whatever the peers say, the conservative clock is never ahead of ours.
        let c = clocks(&[86_400, 86_400, 86_400], &age);
        assert_eq!(c.conservative_now(T), Some(T));
        assert_eq!(
            c.status(T),
            ClockStatus::Behind {
                offset: -86_400,
                peers: 3
            }
        );
    }

    /// A starting node with peers holds irreversible acts until two peers'
    /// clocks are sampled (then a clock 3 h ahead is held back to theirs, not
    /// used), or until the wait ends with none (then its own clock decides).
    #[test]
    fn a_starting_node_waits_for_its_peers_clocks_before_acting() {
        let own = T + 3 * 3600;
        let config = PeerClockConfig {
            startup_wait_secs: 120,
            startup_samples: MIN_CLOCK_PEERS,
            ..CONFIG
        };
        let age = ManualClock::new(1_000);
        let c = PeerClocks::new(config, std::sync::Arc::new(age.clone()));
        assert_eq!(c.conservative_now(own), None);
        c.record(PeerId::random(), T);
        age.advance(119);
        assert_eq!(c.conservative_now(own), None, "one sample is not enough");
        c.record(PeerId::random(), T + 119);
        assert_eq!(c.conservative_now(own), Some(T + 119 + 600));

        let lone = PeerClocks::new(config, std::sync::Arc::new(age.clone()));
        age.advance(119);
        assert_eq!(lone.conservative_now(own), None);
        age.advance(1);
        assert_eq!(lone.conservative_now(own), Some(own), "the wait is bounded");

        // A node configured with one peer waits for that one.
        let one = PeerClocks::new(
            PeerClockConfig {
                startup_samples: 1,
                ..config
            },
            std::sync::Arc::new(age.clone()),
        );
        assert_eq!(one.conservative_now(own), None);
        one.record(PeerId::random(), T);
        assert_eq!(one.conservative_now(own), Some(own));
    }

    #[test]
    fn samples_expire_on_the_monotonic_clock() {
        let age = ManualClock::new(0);
        let own = T + 3 * 3600;
        let c = clocks(&[0, 0], &age);
        assert!(c.status(own).alarm());
        age.advance(CONFIG.max_age_secs);
        assert!(c.status(own).alarm(), "still fresh at max age");
        age.advance(1);
        assert_eq!(c.status(own), ClockStatus::Unknown { peers: 0 });
        assert_eq!(c.conservative_now(own), Some(own));
    }

    #[test]
    fn a_jump_of_the_own_clock_shows_at_once() {
        let age = ManualClock::new(0);
        let c = clocks(&[0, 5, -5], &age);
        assert!(matches!(c.status(T), ClockStatus::Agrees { .. }));
        // Our wall clock jumps 3 days ahead; the samples are still fresh and
        // still say where the peers are.
        let jumped = T + 3 * 86_400;
        assert!(matches!(
            c.status(jumped),
            ClockStatus::Ahead { offset, .. } if offset == 3 * 86_400
        ));
        assert_eq!(c.conservative_now(jumped), Some(T + 600));
    }

    #[test]
    fn at_most_max_peers_are_kept() {
        let c = clocks(&vec![0; MAX_CLOCK_PEERS + 10], &ManualClock::new(0));
        assert!(matches!(
            c.status(T),
            ClockStatus::Agrees { peers, .. } if peers == MAX_CLOCK_PEERS
        ));
    }

    #[test]
    fn durations_for_people() {
        assert_eq!(human_duration(3 * 3600 + 5), "3 h");
        assert_eq!(human_duration(2 * 86_400), "2 days");
        assert_eq!(human_duration(720), "12 min");
        assert_eq!(human_duration(5), "5 s");
    }
}

//! Self-reported stays (SPEC.md §12.11): CrowdNotifier's server-based variant,
//! for places with no owner in reach. A type-2 code carries the gateway's venue
//! key as its `mpk` and the gateway's X25519 report key. At check-out the phone
//! seals, besides its records, one stay report to the report key: the stay's
//! times, the hour identities it overlapped and the venue's notification key.
//! Only the gateway opens it, so a seized phone confirms no visit to anyone
//! without the gateway's key. A diagnosed visitor uploads the reports on the
//! anonymous path (a token, sealed, through a relay, padded like every upload);
//! the gateway checks them together and publishes one warning per hour identity.
//!
//! ```text
//! report = BE64 arrival ‖ BE64 departure ‖ notificationKey (32) ‖ id (32) per hour slot
//! sealed = HPKE.Seal(reportKey, info = "traceless/v1/venue-stay", aad = "", report)
//! ```

use sha2::{Digest, Sha512};
use zeroize::Zeroize;

use super::ibe::MasterSecret;
use super::identity::{identity, Slot, VenueNonces};
use super::payload::{EntryCode, VenueKind, MAX_STAY_MINUTES};
use super::trace::{details, seal_details, TraceWarning};
use super::VenueError;
use crate::sealed::{hpke_seal, SEAL_KEY_LEN};
use crate::{day_of_unix, transmission_risk, GatewaySealKey, RETENTION_DAYS};

/// HPKE `info` of a sealed stay report.
pub const STAY_REPORT_INFO: &[u8] = b"traceless/v1/venue-stay";
/// Domain of the gateway's self-reported venue key, derived from its seal key.
const MASTER_DOMAIN: &[u8] = b"traceless/v1/self-reported-venue-key";
/// Most hour slots of one stay: a stay of the longest maximum (1,440 minutes)
/// that starts off the hour.
pub const MAX_STAY_SLOTS: usize = MAX_STAY_MINUTES as usize / 60 + 1;
/// Most stays reported for one day (Corona-Warn-App's cap on check-ins a day).
pub const MAX_STAYS_PER_DAY: usize = 20;
/// How many days before symptom onset reported stays may begin (the infectious
/// window of diagnosis keys, §4).
pub const STAY_DAYS_BEFORE_ONSET: u32 = 2;
/// Times and notification key ahead of the identities.
const HEADER_LEN: usize = 8 + 8 + 32;
/// HPKE's `enc` and tag.
const SEAL_OVERHEAD: usize = SEAL_KEY_LEN + 16;

/// Length of a sealed stay report of `slots` hour slots.
pub const fn sealed_stay_len(slots: usize) -> usize {
    SEAL_OVERHEAD + HEADER_LEN + 32 * slots
}

/// What one sealed stay report holds.
#[derive(Debug, PartialEq, Eq)]
pub struct StayReport {
    /// Arrival, unix seconds.
    pub arrival: u64,
    /// Departure, unix seconds.
    pub departure: u64,
    /// The venue's notification key (warning details are sealed under it).
    pub notification_key: [u8; 32],
    /// `id` of each hour slot of `[arrival, departure)`, in order.
    pub identities: Vec<[u8; 32]>,
}

impl Drop for StayReport {
    fn drop(&mut self) {
        self.notification_key.zeroize();
    }
}

/// The stay report of a visit `[arrival, departure)` at a self-reported venue,
/// sealed to the code's report key; `None` for a basic venue (its owner and the
/// authority trace it, nothing is reported).
pub fn seal_stay(
    entry: &EntryCode,
    arrival: u64,
    departure: u64,
) -> Result<Option<Vec<u8>>, VenueError> {
    let VenueKind::SelfReported { report_key } = entry.kind else {
        return Ok(None);
    };
    check_times(arrival, departure)?;
    let report = StayReport {
        arrival,
        departure,
        notification_key: VenueNonces::derive(entry.payload()).notification_key,
        identities: Slot::hours_of(arrival, departure)
            .into_iter()
            .map(|slot| identity(entry.payload(), slot))
            .collect(),
    };
    report.seal(&report_key).map(Some)
}

fn check_times(arrival: u64, departure: u64) -> Result<(), VenueError> {
    let bad = |reason| {
        Err(VenueError::BadWindow {
            start: arrival,
            end: departure,
            reason,
        })
    };
    if departure <= arrival {
        return bad("ends before it starts");
    }
    if departure - arrival > u64::from(MAX_STAY_MINUTES) * 60 {
        return bad("is longer than the longest stay");
    }
    Ok(())
}

impl StayReport {
    /// Seals the report to a gateway's report key (what [`seal_stay`] stores).
    pub fn seal(&self, report_key: &[u8; SEAL_KEY_LEN]) -> Result<Vec<u8>, VenueError> {
        let mut plain = self.encode();
        let sealed = hpke_seal(report_key, STAY_REPORT_INFO, &[], &plain);
        plain.zeroize();
        sealed.ok_or(VenueError::BadPoint("reportKey"))
    }

    /// The plaintext a sealed report holds (see the module's layout).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN + 32 * self.identities.len());
        out.extend_from_slice(&self.arrival.to_be_bytes());
        out.extend_from_slice(&self.departure.to_be_bytes());
        out.extend_from_slice(&self.notification_key);
        for id in &self.identities {
            out.extend_from_slice(id);
        }
        out
    }

    /// Opens a sealed report with the gateway's key and checks its shape: times
    /// in order within the longest stay, one identity per hour slot.
    pub fn open(sealed: &[u8], gateway: &GatewaySealKey) -> Result<StayReport, VenueError> {
        let mut plain = gateway
            .hpke_open(STAY_REPORT_INFO, &[], sealed)
            .ok_or(VenueError::NotForThisKey)?;
        let report = Self::decode(&plain);
        plain.zeroize();
        report
    }

    /// Decodes and checks a report's plaintext (what [`StayReport::open`] does
    /// after opening).
    pub fn decode(plain: &[u8]) -> Result<StayReport, VenueError> {
        let short = || VenueError::Length {
            what: "stay report",
            len: plain.len(),
            expected: HEADER_LEN + 32,
        };
        if plain.len() < HEADER_LEN {
            return Err(short());
        }
        let be64 = |at: usize| u64::from_be_bytes(plain[at..at + 8].try_into().expect("8 bytes"));
        let (arrival, departure) = (be64(0), be64(8));
        check_times(arrival, departure)?;
        let slots = Slot::hours_of(arrival, departure).len();
        if plain.len() != HEADER_LEN + 32 * slots {
            return Err(VenueError::Length {
                what: "stay report",
                len: plain.len(),
                expected: HEADER_LEN + 32 * slots,
            });
        }
        Ok(StayReport {
            arrival,
            departure,
            notification_key: plain[16..48].try_into().expect("32 bytes"),
            identities: plain[HEADER_LEN..]
                .chunks_exact(32)
                .map(|c| c.try_into().expect("32 bytes"))
                .collect(),
        })
    }
}

/// The gateway's venue master key of every self-reported code it publishes:
/// `OS2IP_LE(SHA-512(domain ‖ seal secret)) mod r`, so it is kept, backed up
/// and rotated with the seal key (whose public half is the codes' report key).
pub fn self_reported_master(gateway: &GatewaySealKey) -> MasterSecret {
    let mut secret = gateway.secret_bytes();
    let wide: [u8; 64] = Sha512::new()
        .chain_update(MASTER_DOMAIN)
        .chain_update(secret)
        .finalize()
        .into();
    secret.zeroize();
    MasterSecret::from_wide(&wide)
}

/// The gateway checks one upload's stays together (SwissCovid's and
/// Corona-Warn-App's rules) and makes their warnings: `sk_id = H1(id)^msk` per
/// hour identity, details = the stay's window, `message`, and the transmission
/// risk of the stay's day from `onset_day`. Refused whole, by the first rule a
/// stay breaks: onset in the future; a stay ending after `now`, beginning before
/// the infectious window (`STAY_DAYS_BEFORE_ONSET` days before onset) or past
/// retention; two stays at once; more than [`MAX_STAYS_PER_DAY`] on a day.
pub fn trace_stays(
    master: &MasterSecret,
    stays: &[StayReport],
    onset_day: u32,
    message: &str,
    now: u64,
) -> Result<Vec<TraceWarning>, VenueError> {
    let onset = u64::from(onset_day) * 86_400;
    if onset_day > day_of_unix(now) {
        return Err(VenueError::BadWindow {
            start: onset,
            end: onset,
            reason: "symptom onset is in the future",
        });
    }
    let earliest = (onset.saturating_sub(u64::from(STAY_DAYS_BEFORE_ONSET) * 86_400))
        .max((u64::from(day_of_unix(now)) + 1).saturating_sub(u64::from(RETENTION_DAYS)) * 86_400);
    let mut order: Vec<&StayReport> = stays.iter().collect();
    order.sort_by_key(|s| s.arrival);
    let mut per_day = std::collections::BTreeMap::<u32, usize>::new();
    for (i, s) in order.iter().enumerate() {
        let bad = |reason| VenueError::BadWindow {
            start: s.arrival,
            end: s.departure,
            reason,
        };
        if s.departure > now {
            return Err(bad("ends in the future"));
        }
        if s.arrival < earliest {
            return Err(bad("begins before the infectious window or past retention"));
        }
        if let Some(next) = order.get(i + 1) {
            if next.arrival < s.departure {
                return Err(VenueError::StayOverlap {
                    first_end: s.departure,
                    second_start: next.arrival,
                });
            }
        }
        let day = day_of_unix(s.arrival);
        let count = per_day.entry(day).or_default();
        *count += 1;
        if *count > MAX_STAYS_PER_DAY {
            return Err(VenueError::TooManyStays {
                day,
                max: MAX_STAYS_PER_DAY,
            });
        }
    }
    let mut warnings = Vec::new();
    for s in order {
        let dso = i64::from(day_of_unix(s.arrival)) - i64::from(onset_day);
        let risk = transmission_risk(dso as i32);
        let details = details(s.arrival, s.departure, message, u32::from(risk))?;
        for (slot, id) in Slot::hours_of(s.arrival, s.departure)
            .into_iter()
            .zip(&s.identities)
        {
            let (nonce, sealed_details) = seal_details(&s.notification_key, &details, id);
            warnings.push(TraceWarning {
                identity: *id,
                key: master.identity_key(id),
                day: slot.day(),
                sealed_details,
                nonce,
            });
        }
    }
    Ok(warnings)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_holds_one_identity_per_hour_and_its_length_says_how_many() {
        let r = StayReport {
            arrival: 3_600 * 10 + 600,
            departure: 3_600 * 11 + 60,
            notification_key: [3; 32],
            identities: vec![[1; 32], [2; 32]],
        };
        let plain = r.encode();
        assert_eq!(plain.len() + SEAL_OVERHEAD, sealed_stay_len(2));
        assert_eq!(StayReport::decode(&plain).expect("decodes"), r);
        let short = &plain[..plain.len() - 32];
        assert_eq!(
            StayReport::decode(short),
            Err(VenueError::Length {
                what: "stay report",
                len: HEADER_LEN + 32,
                expected: HEADER_LEN + 64
            })
        );
    }
}

//! Venue check-ins on the phone (SPEC.md §12.6): check in from a scanned URL
//! with no network, check out by hand or by itself at the venue's maximum stay,
//! list the phone's own visits, match published warnings.
//!
//! While a visit is open the phone keeps the scanned code in [`open`]'s file
//! (it needs it to check out). At check-out it seals, per overlapped hour, one
//! key-private IBE record (192 bytes) and a times-only diary line into the
//! per-day vault ([`Table::Checkins`], shredded with the day), then zeroes the
//! open check-in file. From then on nothing on the phone, master key included,
//! names the venue: only a published trace key for that venue and hour opens a
//! record. The records in the vault, sealed per day:
//!
//! ```text
//! key = BE32(day) || HMAC(index_key, label || 0x00 || item)[..16]
//! record ("venue-record", random item) = 0x02 || IBE ciphertext              day of the hour slot
//! diary  ("venue-diary", times)        = 0x03 || BE64 arrival || BE64 departure   day of arrival
//! match  ("venue-match", times)        = 0x04 || BE64 arrival || BE64 departure
//!                                          || BE64 window start || BE64 window end || BE32 risk level
//! stay   ("venue-stay", random item)   = 0x05 || BE64 arrival || BE64 departure
//!                                          || sealed stay report                    day of arrival
//! ```
//!
//! A stay row exists only for a self-reported venue (SPEC.md §12.11): its
//! report is sealed to the gateway, which alone opens it, when the phone's
//! user, once diagnosed, uploads it.

pub(crate) mod cursor;
mod open;

use std::collections::BTreeMap;

use rand_core::{OsRng, RngCore};
use traceless_protocol::venue::{
    match_records, seal_stay, seal_visit, EntryCode, PresenceRisk, SealedRecord,
    SignedWarningBatch, VenueError, VenueKind, VisitMatch, MAX_STAYS_PER_DAY,
    STAY_DAYS_BEFORE_ONSET,
};
use traceless_protocol::{day_of_unix, DaySummary, ExposureKind, TrustList, RETENTION_DAYS};

use crate::error::{Result, SdkError};
use crate::storage::Table;
use crate::vault::Vault;
use open::OpenCheckIn;

const RECORD: u8 = 2;
const DIARY: u8 = 3;
const MATCH: u8 = 4;
const STAY: u8 = 5;
const DIARY_LEN: usize = 1 + 16;
const MATCH_LEN: usize = 1 + 32 + 4;
/// How far back a user may move the arrival of the open check-in.
const MAX_ARRIVAL_AGE_S: u64 = 86_400;

/// One of the phone's own check-ins, as shown to its user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckIn {
    /// Arrival, unix seconds.
    pub arrival: u64,
    /// Closed: the departure recorded. Open: when the phone will check out by
    /// itself (the departure the user set, else the venue's maximum stay).
    pub departure: u64,
    /// Open (the venue is shown) or closed (only the times remain).
    pub state: CheckInState,
}

/// Whether a check-in is still open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckInState {
    /// The visit in progress, as the poster describes it.
    Open {
        /// The venue's name.
        description: String,
        /// Its address.
        address: String,
        /// Its room, "" if none.
        room: String,
        /// The check-out the venue suggests (arrival plus its default stay).
        suggested_departure: u64,
    },
    /// Checked out: the venue is sealed away, only the times are readable.
    Closed,
}

fn be64(b: &[u8]) -> u64 {
    u64::from_be_bytes(b[..8].try_into().expect("8 bytes"))
}

fn bad_window(start: u64, end: u64, reason: &'static str) -> SdkError {
    SdkError::Venue(VenueError::BadWindow { start, end, reason })
}

fn no_open_check_in() -> SdkError {
    SdkError::InvalidArgument("no open check-in".into())
}

fn view_open(open: &OpenCheckIn) -> CheckIn {
    let venue = &open.entry.venue;
    CheckIn {
        arrival: open.arrival,
        departure: open.auto_checkout_at(),
        state: CheckInState::Open {
            description: venue.description.clone(),
            address: venue.address.clone(),
            room: venue.room.clone(),
            suggested_departure: open.arrival + u64::from(venue.default_stay_minutes) * 60,
        },
    }
}

/// Checks out the open visit if its automatic check-out is due by `now`.
pub(crate) fn tick(vault: &mut Vault, now: u64) -> Result<()> {
    if let Some(open) = open::read(vault)? {
        let at = open.auto_checkout_at();
        if now >= at {
            close(vault, now, &open, at)?;
        }
    }
    Ok(())
}

/// Checks in from a scanned entry URL (no network). Refused codes store nothing;
/// a visit still open is checked out at `now` first.
pub(crate) fn check_in(vault: &mut Vault, now: u64, url: &str) -> Result<CheckIn> {
    let entry = EntryCode::from_url(url)?;
    let (from, to) = (entry.venue.valid_from, entry.venue.valid_to);
    if (from, to) != (0, 0) && !(from..to).contains(&now) {
        return Err(bad_window(from, to, "the venue's code is not valid now"));
    }
    tick(vault, now)?;
    if let Some(open) = open::read(vault)? {
        close(vault, now, &open, now.max(open.arrival))?;
    }
    if matches!(entry.kind, VenueKind::SelfReported { .. }) {
        let day = day_of_unix(now);
        if stays(vault)?
            .iter()
            .filter(|s| day_of_unix(s.0) == day)
            .count()
            >= MAX_STAYS_PER_DAY
        {
            return Err(SdkError::Venue(VenueError::TooManyStays {
                day,
                max: MAX_STAYS_PER_DAY,
            }));
        }
    }
    let open = OpenCheckIn {
        arrival: now,
        departure: None,
        entry,
    };
    open::write(vault, &open)?;
    Ok(view_open(&open))
}

/// Changes the open visit's arrival (not in the future, at most a day ago) and
/// departure (`None`: none set; else after arrival, within the venue's maximum
/// stay). A departure already past checks the visit out at that time.
pub(crate) fn edit(
    vault: &mut Vault,
    now: u64,
    arrival: u64,
    departure: Option<u64>,
) -> Result<CheckIn> {
    tick(vault, now)?;
    let open = open::read(vault)?.ok_or_else(no_open_check_in)?;
    let end = departure.unwrap_or(0);
    if arrival > now || arrival.saturating_add(MAX_ARRIVAL_AGE_S) < now {
        return Err(bad_window(
            arrival,
            end,
            "arrival is in the future or over a day ago",
        ));
    }
    if list(vault, now)?
        .iter()
        .any(|c| c.state == CheckInState::Closed && c.departure > arrival)
    {
        return Err(bad_window(
            arrival,
            end,
            "arrival overlaps an earlier check-in",
        ));
    }
    let max_stay = u64::from(open.entry.venue.max_stay_minutes) * 60;
    if departure.is_some_and(|d| d <= arrival || d - arrival > max_stay) {
        return Err(bad_window(
            arrival,
            end,
            "departure is not after arrival within the venue's maximum stay",
        ));
    }
    let edited = OpenCheckIn {
        arrival,
        departure,
        entry: open.entry,
    };
    let at = edited.auto_checkout_at();
    if now >= at {
        close(vault, now, &edited, at)?;
        return Ok(closed_view(arrival, at));
    }
    open::write(vault, &edited)?;
    Ok(view_open(&edited))
}

fn closed_view(arrival: u64, departure: u64) -> CheckIn {
    CheckIn {
        arrival,
        departure,
        state: CheckInState::Closed,
    }
}

/// Checks the open visit out now.
pub(crate) fn check_out(vault: &mut Vault, now: u64) -> Result<CheckIn> {
    tick(vault, now)?;
    let open = open::read(vault)?.ok_or_else(no_open_check_in)?;
    let departure = now.max(open.arrival);
    close(vault, now, &open, departure)?;
    Ok(closed_view(open.arrival, departure))
}

/// Seals the visit `[open.arrival, departure)` into the vault (records of days
/// already past retention are not written), makes it durable, then destroys
/// the open check-in file.
fn close(vault: &mut Vault, now: u64, open: &OpenCheckIn, departure: u64) -> Result<()> {
    let oldest_kept = day_of_unix(now).saturating_sub(RETENTION_DAYS);
    for r in seal_visit(&open.entry, open.arrival, departure) {
        if r.day < oldest_kept {
            continue;
        }
        vault.ensure_day(r.day)?;
        let mut item = [0u8; 16];
        OsRng.fill_bytes(&mut item);
        let key = vault.record_key(r.day, b"venue-record", &item)?;
        vault.put(
            Table::Checkins,
            &key,
            &[&[RECORD][..], &r.ciphertext].concat(),
        )?;
    }
    let day = day_of_unix(open.arrival);
    if day >= oldest_kept {
        vault.ensure_day(day)?;
        let times = [open.arrival.to_be_bytes(), departure.to_be_bytes()].concat();
        let key = vault.record_key(day, b"venue-diary", &times)?;
        vault.put(Table::Checkins, &key, &[&[DIARY][..], &times].concat())?;
        if let Some(report) = seal_stay(&open.entry, open.arrival, departure)? {
            let mut item = [0u8; 16];
            OsRng.fill_bytes(&mut item);
            let key = vault.record_key(day, b"venue-stay", &item)?;
            vault.put(
                Table::Checkins,
                &key,
                &[&[STAY][..], &times, &report].concat(),
            )?;
        }
    }
    vault.storage().flush()?;
    open::destroy(vault)
}

/// Every check-in row of the live days tagged `tag` (of length `len`), without
/// the tag, with its day.
fn rows(vault: &Vault, tag: u8, len: Option<usize>) -> Result<Vec<(u32, Vec<u8>)>> {
    let mut out = Vec::new();
    for day in vault.live_days() {
        for (_, plain) in vault.scan_day(Table::Checkins, day)? {
            let plain = plain?;
            if plain.first() == Some(&tag) && len.is_none_or(|l| plain.len() == l) {
                out.push((day, plain[1..].to_vec()));
            }
        }
    }
    Ok(out)
}

/// Every stay report held: arrival, departure and the sealed report.
fn stays(vault: &Vault) -> Result<Vec<(u64, u64, Vec<u8>)>> {
    Ok(rows(vault, STAY, None)?
        .into_iter()
        .filter(|(_, r)| r.len() > 16)
        .map(|(_, r)| (be64(&r), be64(&r[8..]), r[16..].to_vec()))
        .collect())
}

/// The sealed stay reports a diagnosis with symptom onset on `onset_day`
/// uploads: stays arriving from [`STAY_DAYS_BEFORE_ONSET`] days before onset
/// (the gateway refuses earlier ones), by arrival.
pub(crate) fn stay_reports(vault: &mut Vault, now: u64, onset_day: u32) -> Result<Vec<Vec<u8>>> {
    tick(vault, now)?;
    let from = u64::from(onset_day.saturating_sub(STAY_DAYS_BEFORE_ONSET)) * 86_400;
    let mut held: Vec<_> = stays(vault)?
        .into_iter()
        .filter(|(arrival, departure, _)| *arrival >= from && *departure <= now)
        .collect();
    held.sort_by_key(|s| s.0);
    Ok(held.into_iter().map(|s| s.2).collect())
}

/// The phone's own check-ins, newest first.
pub(crate) fn list(vault: &mut Vault, now: u64) -> Result<Vec<CheckIn>> {
    tick(vault, now)?;
    let mut out: Vec<CheckIn> = rows(vault, DIARY, Some(DIARY_LEN))?
        .into_iter()
        .map(|(_, t)| closed_view(be64(&t), be64(&t[8..])))
        .collect();
    out.extend(open::read(vault)?.as_ref().map(view_open));
    out.sort_by_key(|c| std::cmp::Reverse(c.arrival));
    Ok(out)
}

/// Verifies a warning batch against the trust list and trial-decrypts the
/// records of each warning's day with its key; stores each new match under the
/// day of the visit, then raises the origin's [`cursor`] to the batch's
/// sequence. Returns how many matches are new. Refused batches store nothing.
pub(crate) fn sync_warnings(vault: &mut Vault, trust: &TrustList, bytes: &[u8]) -> Result<usize> {
    let batch = SignedWarningBatch::decode(bytes)?.verify(trust)?;
    let mut days: Vec<u32> = batch.warnings.iter().map(|w| w.day).collect();
    days.sort_unstable();
    days.dedup();
    let mut records = Vec::new();
    for day in days.into_iter().filter(|d| vault.has_day(*d)) {
        for (_, plain) in vault.scan_day(Table::Checkins, day)? {
            let plain = plain?;
            if plain.first() == Some(&RECORD) {
                records.push(SealedRecord {
                    day,
                    ciphertext: plain[1..].to_vec(),
                });
            }
        }
    }
    let mut new = 0;
    for m in match_records(&records, &batch.warnings) {
        if !vault.has_day(m.day) {
            continue;
        }
        let mut plain = vec![MATCH];
        for t in [m.arrival, m.departure, m.window_start, m.window_end] {
            plain.extend_from_slice(&t.to_be_bytes());
        }
        plain.extend_from_slice(&m.risk_level.to_be_bytes());
        let key = vault.record_key(m.day, b"venue-match", &plain[1..33])?;
        if vault.get(Table::Checkins, &key)?.is_none() {
            new += 1;
        }
        vault.put(Table::Checkins, &key, &plain)?;
    }
    // Matches first: a crash in between syncs the batch again, which adds none twice.
    vault.storage().flush()?;
    cursor::advance(vault, &batch.origin, batch.sequence)?;
    vault.storage().flush()?;
    Ok(new)
}

/// The venue matches stored so far.
fn matches(vault: &Vault) -> Result<Vec<VisitMatch>> {
    Ok(rows(vault, MATCH, Some(MATCH_LEN))?
        .into_iter()
        .map(|(day, m)| VisitMatch {
            day,
            arrival: be64(&m),
            departure: be64(&m[8..]),
            window_start: be64(&m[16..]),
            window_end: be64(&m[24..]),
            message: String::new(),
            risk_level: u32::from_be_bytes(m[32..36].try_into().expect("4 bytes")),
        })
        .collect())
}

/// The venue rows of the exposure summary, one per day (SPEC.md §12.7):
/// `minutes` = overlap minutes, `weighted_minutes` = `score` = the same
/// weighted by the case's transmission risk, `high_risk` at the
/// presence-tracing threshold.
pub(crate) fn summaries(vault: &Vault) -> Result<Vec<DaySummary>> {
    let matches = matches(vault)?;
    let risk = PresenceRisk::default();
    let unweighted = PresenceRisk {
        transmission_risk_values: [1.0; 9],
        ..risk.clone()
    };
    let minutes: BTreeMap<u32, f64> = unweighted
        .score(&matches)
        .into_iter()
        .map(|d| (d.day, d.minutes))
        .collect();
    Ok(risk
        .score(&matches)
        .into_iter()
        .map(|d| DaySummary {
            day: d.day,
            kind: ExposureKind::Venue,
            minutes: minutes.get(&d.day).copied().unwrap_or(d.minutes),
            weighted_minutes: d.minutes,
            score: d.minutes,
            high_risk: d.high_risk,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    //! With the master key (an unlocked phone, or a key taken from the
    //! keystore): once a visit is closed, no row and no file opens to anything
    //! that names the venue; while it is open, the check-in file does (control).

    use std::sync::Arc;

    use traceless_protocol::venue::{create_venue, VenueDescription};
    use traceless_protocol::GatewaySealKey;

    use super::*;
    use crate::storage::MemoryStorage;
    use crate::vault::MasterKey;

    fn contains(haystack: &[u8], needle: &[u8]) -> bool {
        haystack.windows(needle.len()).any(|w| w == needle)
    }

    #[test]
    fn after_check_out_nothing_the_master_key_opens_names_the_venue() {
        let authority = GatewaySealKey::generate();
        let v = VenueDescription::new("Apotheke am Markt", "Marktplatz 3", 0, 15, 120);
        let created = create_venue(&v, &authority.public_bytes()).expect("venue");
        let payload = created.entry.payload().to_vec();
        let mut vault =
            Vault::open(Arc::new(MemoryStorage::new()), &MasterKey([9; 32])).expect("vault");
        let arrival = 20_000 * 86_400 + 36_000;
        check_in(
            &mut vault,
            arrival,
            &created.entry.to_url("https://t.example/c"),
        )
        .expect("check in");
        let open = open::read(&vault).expect("reads").expect("open");
        assert_eq!(
            open.entry.payload(),
            payload,
            "control: the open file names it"
        );
        check_out(&mut vault, arrival + 4000).expect("check out");
        assert!(open::read(&vault).expect("reads").is_none());
        let file = vault
            .storage()
            .read_side(crate::storage::SideFile::OpenCheckIn)
            .expect("file");
        assert!(file.iter().all(|&b| b == 0), "the open check-in is zeroed");
        let mut opened = 0;
        for day in vault.live_days() {
            for (_, plain) in vault.scan_day(Table::Checkins, day).expect("scan") {
                let plain = plain.expect("opens");
                opened += 1;
                for run in payload.chunks(16) {
                    assert!(!contains(&plain, run), "a row names the venue");
                }
            }
        }
        assert_eq!(opened, 3, "two hour records and one diary line");
    }

    #[test]
    fn a_self_reported_stay_keeps_no_identity_key_or_payload_the_master_key_opens() {
        use traceless_protocol::venue::{
            create_self_reported, identity, self_reported_master, Slot, StayReport, VenueNonces,
        };
        let gateway = GatewaySealKey::generate();
        let v = VenueDescription::new("Hoftor Nord", "Gartenweg 2", 0, 15, 120);
        let code = create_self_reported(
            &v,
            &self_reported_master(&gateway).public(),
            &gateway.public_bytes(),
        )
        .expect("code");
        let mut vault =
            Vault::open(Arc::new(MemoryStorage::new()), &MasterKey([9; 32])).expect("vault");
        let (arrival, departure) = (20_000 * 86_400 + 36_600, 20_000 * 86_400 + 40_000);
        check_in(&mut vault, arrival, &code.to_url("https://t.example/c")).expect("in");
        check_out(&mut vault, departure).expect("out");
        let mut secrets: Vec<Vec<u8>> = Slot::hours_of(arrival, departure)
            .into_iter()
            .map(|s| identity(code.payload(), s).to_vec())
            .collect();
        secrets.push(
            VenueNonces::derive(code.payload())
                .notification_key
                .to_vec(),
        );
        secrets.extend(code.payload().chunks(16).map(<[u8]>::to_vec));
        let mut rows = 0;
        for day in vault.live_days() {
            for (_, plain) in vault.scan_day(Table::Checkins, day).expect("scan") {
                let plain = plain.expect("opens");
                rows += 1;
                for s in &secrets {
                    assert!(
                        !contains(&plain, s),
                        "a row holds an identity, key or payload"
                    );
                }
            }
        }
        assert_eq!(rows, 4, "two hour records, a diary line and a stay report");
        // Control: the gateway opens the report, and it holds those identities.
        let held = stays(&vault).expect("stays");
        let report = StayReport::open(&held[0].2, &gateway).expect("the gateway opens it");
        assert_eq!(report.identities.len(), 2);
        assert!(contains(&report.identities.concat(), &secrets[0]));
    }
}

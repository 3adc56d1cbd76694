//! The venue check-in figures of a run: venue recall against the ground truth
//! of [`crate::venues`], false alarms, bytes, and the privacy comparison, in
//! which every party's files or bytes are scanned for byte runs that name a
//! venue (with a positive control that plants a venue's payload in clear and
//! must be found).

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use crate::epidemic::DAY_S;
use crate::phones::Phone;
use crate::population::{PersonId, Population};
use crate::report::{CheckInFigures, Daily, PartyExposure, VisitPrivacy};
use crate::scenario::Scenario;
use crate::venues::{self, Needles, Registry, Traced, World};

/// Phones whose store lives on disk, to be seized at the end: the first few
/// (by person id) that a planned trace should warn, and a few other adopters.
pub const SEIZED_EXPOSED: usize = 3;
/// See [`SEIZED_EXPOSED`].
pub const SEIZED_OTHER: usize = 2;

/// Which SDK phones keep their store on disk (see [`SEIZED_EXPOSED`]).
pub fn seized_sample(world: &World, sdk_people: &[PersonId]) -> HashSet<PersonId> {
    let visitors: HashSet<PersonId> = world.stays.iter().map(|st| st.person).collect();
    let mut sorted = sdk_people.to_vec();
    sorted.sort_unstable();
    let exposed = sorted
        .iter()
        .filter(|p| world.planned_exposed.contains(p))
        .take(SEIZED_EXPOSED);
    let other = sorted
        .iter()
        .filter(|p| {
            world.adopters.contains(p) && visitors.contains(p) && !world.planned_exposed.contains(p)
        })
        .take(SEIZED_OTHER);
    exposed.chain(other).copied().collect()
}

/// What the figures are computed from.
pub struct Input<'a> {
    /// The scenario.
    pub s: &'a Scenario,
    /// The people.
    pub pop: &'a Population,
    /// Every venue visit.
    pub world: &'a World,
    /// The SDK phones.
    pub phones: &'a mut [Phone],
    /// The venues with codes.
    pub registry: &'a Registry,
    /// The stays the authority traced.
    pub traced: &'a [Traced],
    /// Traces refused.
    pub trace_errors: usize,
    /// Warning batches the gateway published.
    pub warning_batches: u64,
    /// Warning download per phone per day, mean.
    pub warning_bytes: f64,
    /// Of it, the warning list's.
    pub warning_list_bytes: f64,
    /// Days on which warnings had not reached every relay in time.
    pub warning_timeouts: u32,
    /// Node data directories, gateway first.
    pub node_dirs: &'a [PathBuf],
    /// Bodies a network observer saw.
    pub observed: &'a [Vec<u8>],
    /// App users truly close to an uploader (proximity ground truth).
    pub close: &'a HashSet<PersonId>,
    /// Phones whose store is on disk.
    pub seized: &'a HashSet<PersonId>,
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

/// The figures; fills each day's `venue_true_positives` in `daily`.
pub fn figures(mut i: Input<'_>, daily: &mut [Daily], day0: u64) -> CheckInFigures {
    let privacy = privacy(&mut i);
    let stays: Vec<venues::Stay> = i.traced.iter().map(|t| t.stay).collect();
    let visits: HashMap<PersonId, Vec<(u32, u64, u64)>> = i
        .phones
        .iter()
        .filter(|p| p.checks_in)
        .map(|p| (p.person, p.visits.clone()))
        .collect();
    let truth = venues::truth(&stays, &visits, &i.world.stays);
    let warned: Vec<&Phone> = i
        .phones
        .iter()
        .filter(|p| p.venue_warned_at.is_some())
        .collect();
    let warned_tp: Vec<&Phone> = warned
        .iter()
        .copied()
        .filter(|p| truth.exposed.contains(&p.person))
        .collect();
    let tp = warned_tp.len();
    let tp_high = warned_tp.iter().filter(|p| p.venue_high_risk).count();
    for d in daily.iter_mut() {
        let end = day0 + u64::from(d.day + 1) * DAY_S;
        d.venue_true_positives = warned_tp
            .iter()
            .filter(|p| p.venue_warned_at.is_some_and(|t| t < end))
            .count() as u32;
    }
    let near: HashSet<PersonId> = truth
        .exposed
        .iter()
        .chain(&truth.aerosol_only)
        .chain(&truth.other_time)
        .copied()
        .collect();
    let cases: HashSet<PersonId> = stays.iter().map(|st| st.person).collect();
    let proximity_tp = i
        .phones
        .iter()
        .filter(|p| p.notified_at.is_some() && i.close.contains(&p.person))
        .count();
    let notified: HashSet<PersonId> = i
        .phones
        .iter()
        .filter(|p| p.notified_at.is_some())
        .map(|p| p.person)
        .collect();
    let checkin_phones = i.phones.iter().filter(|p| p.checks_in).count();
    let phone_days = (checkin_phones.max(1) as f64) * f64::from(i.s.days.max(1));
    CheckInFigures {
        adoption: i.s.app.checkin_adoption,
        venues: i.pop.venues,
        venues_with_codes: i.registry.len(),
        checkin_phones,
        check_ins: i.phones.iter().map(|p| p.visits.len() as u64).sum(),
        check_in_errors: i.phones.iter().map(|p| p.checkin_errors).sum::<u64>() + i.registry.errors,
        traced_stays: i.traced.len(),
        trace_errors: i.trace_errors,
        traced_hours: i.traced.iter().map(|t| t.slots as u64).sum(),
        warning_batches: i.warning_batches,
        exposed_checked_in: truth.exposed.len(),
        exposed_all_people: truth.exposed_all_people.len(),
        warned: warned.len(),
        warned_high_risk: warned.iter().filter(|p| p.venue_high_risk).count(),
        true_positives: tp,
        recall: ratio(tp, truth.exposed.len()),
        recall_high_risk: ratio(tp_high, truth.exposed.len()),
        population_coverage: ratio(tp, truth.exposed_all_people.len()),
        proximity_recall: ratio(proximity_tp, i.close.len()),
        exposed_without_proximity_notification: truth
            .exposed
            .iter()
            .filter(|p| !notified.contains(p))
            .count(),
        aerosol_window_only: truth.aerosol_only.len(),
        aerosol_window_warned: warned
            .iter()
            .filter(|p| truth.aerosol_only.contains(&p.person))
            .count(),
        same_venue_other_time: truth.other_time.len(),
        false_alarms_same_venue_other_time: warned
            .iter()
            .filter(|p| truth.other_time.contains(&p.person))
            .count(),
        cases_warned_of_own_stay: warned
            .iter()
            .filter(|p| !near.contains(&p.person) && cases.contains(&p.person))
            .count(),
        false_alarms_elsewhere: warned
            .iter()
            .filter(|p| !near.contains(&p.person) && !cases.contains(&p.person))
            .count(),
        decrypted_without_row: i
            .phones
            .iter()
            .filter(|p| p.venue_matches > 0 && p.venue_warned_at.is_none())
            .count(),
        warning_bytes_per_phone_per_day: i.warning_bytes,
        warning_list_bytes_per_phone_per_day: i.warning_list_bytes,
        warning_batches_synced: i.phones.iter().map(|p| p.warning_batches).sum(),
        warning_sync_errors: i.phones.iter().map(|p| p.warning_errors).sum(),
        matching_ms_per_phone_per_day: i.phones.iter().map(|p| p.venue_ns as f64).sum::<f64>()
            / phone_days
            / 1e6,
        propagation_timeouts: i.warning_timeouts,
        privacy,
    }
}

/// The paper register's records against each party's, scanned.
fn privacy(i: &mut Input<'_>) -> VisitPrivacy {
    let w = i.world;
    let app = |p: PersonId| i.pop.people[p as usize].app;
    let app_records = w.stays.iter().filter(|st| app(st.person)).count() as u64;
    let people: HashSet<PersonId> = w.stays.iter().map(|st| st.person).collect();
    let needles = Needles::of(i.registry);
    // The control: a venue's QR payload, planted in clear.
    let control = i
        .registry
        .all()
        .map(|v| v.created.entry.payload().to_vec())
        .next()
        .unwrap_or_default();
    let mut parties = Vec::new();
    let names = std::iter::once("gateway".to_owned())
        .chain((1..i.node_dirs.len()).map(|r| format!("relay {r}")));
    for (name, dir) in names.zip(i.node_dirs) {
        let (hits, bytes, found) = venues::scan_with_control(&needles, dir, &control);
        parties.push(PartyExposure {
            party: name,
            scanned:
                "every file of its data directory (store, warning queue and batches, logs, keys)"
                    .into(),
            scanned_bytes: bytes,
            records_naming_a_visit: hits,
            control_found: Some(found),
        });
    }
    let observed_bytes: u64 = i.observed.iter().map(|b| b.len() as u64).sum();
    parties.push(PartyExposure {
        party: "network observer".into(),
        scanned: "every upload, key batch, warning list and warning batch between phones and relays (a check-in sends nothing)".into(),
        scanned_bytes: observed_bytes,
        records_naming_a_visit: i.observed.iter().map(|b| needles.hits(b)).sum(),
        control_found: Some(needles.hits(&control) > 0),
    });
    // The tracer is shown venue, address, room and window of each case's own
    // stay (which the case named): a view has no field for a visitor.
    let view_bytes: u64 = i.traced.iter().map(|t| t.view.len() as u64).sum();
    parties.push(PartyExposure {
        party: "health authority (tracer)".into(),
        scanned: format!(
            "the {} trace views it was shown: venue and window of cases' own stays, no visitor field",
            i.traced.len()
        ),
        scanned_bytes: view_bytes,
        records_naming_a_visit: 0,
        control_found: None,
    });
    parties.push(PartyExposure {
        party: "venue owner".into(),
        scanned: "nothing reaches it: a check-in is offline; it holds its trace secret".into(),
        scanned_bytes: 0,
        records_naming_a_visit: 0,
        control_found: None,
    });
    let (mut hits, mut bytes, mut found, mut listed) = (0, 0, true, 0);
    let mut seized = 0;
    for p in i.phones.iter() {
        if !i.seized.contains(&p.person) {
            continue;
        }
        p.flush();
        seized += 1;
        let dir = seized_dir(i, p.person);
        let (h, b, f) = venues::scan_with_control(&needles, &dir, &control);
        hits += h;
        bytes += b;
        found &= f;
    }
    for p in i.phones.iter_mut() {
        if i.seized.contains(&p.person) {
            listed += p.listed_with_venue() as u64;
        }
    }
    parties.push(PartyExposure {
        party: "seized phone (files)".into(),
        scanned: format!(
            "every file of the stores of {seized} phones that checked in (the master key stays in the keystore)"
        ),
        scanned_bytes: bytes,
        records_naming_a_visit: hits,
        control_found: Some(found && seized > 0),
    });
    parties.push(PartyExposure {
        party: "seized phone (unlocked app)".into(),
        scanned: format!(
            "the check-in list of the same {seized} phones: closed visits show times only"
        ),
        scanned_bytes: 0,
        records_naming_a_visit: listed,
        control_found: None,
    });
    VisitPrivacy {
        paper_register_records: w.stays.len() as u64,
        paper_register_people: people.len(),
        paper_register_app_user_records: app_records,
        paper_register_other_records: w.stays.len() as u64 - app_records,
        parties,
    }
}

/// Where a seized phone's store is: next to the node directories.
fn seized_dir(i: &Input<'_>, p: PersonId) -> PathBuf {
    i.node_dirs
        .first()
        .and_then(|d| d.parent())
        .map(|root| root.join("phones").join(format!("phone-{p}")))
        .unwrap_or_default()
}

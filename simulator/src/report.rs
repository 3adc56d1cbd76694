//! The figures of a run: what is printed, what goes into `report.json`, and the
//! HTML page that shows them with the plots.

use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

use crate::nodes::{NodeStorage, UploadTraffic};
use crate::privacy::PrivacyResult;

/// Everything a run measured.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Report {
    /// Scenario name.
    pub scenario: String,
    /// Seed.
    pub seed: u64,
    /// People.
    pub population: u32,
    /// Days simulated.
    pub days: u32,
    /// App users.
    pub app_users: usize,
    /// Phones that ran an SDK instance.
    pub sdk_phones: usize,
    /// SDK phones that synced every batch in full.
    pub full_sync_phones: usize,
    /// Outcomes against ground truth.
    pub outcome: Outcome,
    /// Costs.
    pub cost: Cost,
    /// The relay network.
    pub network: NetworkFigures,
    /// The sniffer experiment.
    pub privacy: PrivacyResult,
    /// The sniffer experiment for other sniffer counts.
    pub privacy_sweep: Vec<PrivacyResult>,
    /// The scenario rerun with other adoption rates and case loads.
    pub sweep: Vec<SweepPoint>,
    /// The same scenario in each publication form: this run's first.
    pub forms: Vec<FormFigures>,
    /// Precision–recall curves per attenuation-bucket setting of a grid, from
    /// this run's stored windows (see [`crate::calibration`]).
    pub calibration: crate::calibration::Calibration,
    /// Venue check-ins: recall of venue exposure, false alarms, bytes and the
    /// privacy comparison with a paper register.
    pub checkins: CheckInFigures,
    /// Per simulated day.
    pub daily: Vec<Daily>,
    /// Run time and memory (not compared between runs).
    pub run: RunFigures,
}

/// Epidemic and notification outcomes.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct Outcome {
    /// People ever infected (including initial cases).
    pub infected: usize,
    /// Positive test results during the simulation.
    pub positives: u32,
    /// Uploads accepted by the gateway.
    pub uploads: usize,
    /// App users truly close to an uploader on a published day (ground truth).
    pub truly_close: usize,
    /// Everyone, app or not, truly close to an uploader on a published day.
    pub truly_close_all_people: usize,
    /// App users who received any advertisement of an uploader on a published day.
    pub heard_an_uploader: usize,
    /// Phones that showed a high-risk notification.
    pub notified: usize,
    /// Notified and truly close.
    pub true_positives: usize,
    /// `true_positives / notified`.
    pub precision: f64,
    /// `true_positives / truly_close`.
    pub recall: f64,
    /// Hours from the (first matching) upload to the notification: p50.
    pub delay_hours_p50: f64,
    /// Same, p90.
    pub delay_hours_p90: f64,
    /// Phones outside the contact set (in the full-sync sample) that found any
    /// exposure window: must be 0 for the contacts shortcut to be sound.
    pub sample_windows_outside_contacts: u64,
}

/// What it costs a phone.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct Cost {
    /// HTTP bytes a phone downloads per day (list and batches), mean over days.
    pub download_bytes_per_phone_per_day: f64,
    /// The payload a phone cannot do without, per day, mean over days: in key
    /// form 16 B per published key, in filter form the Bloom optimum
    /// (58 bits, SPEC.md §5.8) per entry published that day.
    pub payload_floor_bytes_per_phone_per_day: f64,
    /// `download_bytes_per_phone_per_day` over the floor.
    pub download_over_floor: f64,
    /// Upload request size (a sealed upload), bytes.
    pub upload_bytes: usize,
    /// Distinct upload request sizes on the wire (1: a network observer cannot
    /// tell real uploads from dummies by size).
    pub upload_sizes_seen: usize,
    /// Dummy uploads the SDK phones sent (cover traffic), over HTTP to relays.
    pub dummy_uploads: u64,
    /// Dummy uploads not answered with 200.
    pub dummy_uploads_refused: u64,
    /// CPU in `sync_batch` + summary per full-sync phone per day, milliseconds (mean).
    pub matching_ms_per_phone_per_day: f64,
    /// Sightings handed to SDKs.
    pub sightings: u64,
    /// Sightings refused by SDK caps.
    pub sightings_refused: u64,
    /// Batches synced by all SDK phones.
    pub batches_synced: u64,
    /// Batches SDKs refused.
    pub sync_errors: u64,
}

/// The relay network.
#[derive(Clone, Debug, Default, Serialize)]
pub struct NetworkFigures {
    /// Relays (besides the gateway).
    pub relays: u32,
    /// Batches (or, in filter form, day-filter revisions) published.
    pub batches: u64,
    /// Keys published.
    pub keys: u64,
    /// Per node (gateway first): what it stores.
    pub storage: Vec<NodeStorage>,
    /// Gateway to relay propagation, p50, milliseconds (wall time, loopback): per
    /// batch in key form, per rebuild (all relays hold every newest filter) in
    /// filter form.
    pub propagation_ms_p50: f64,
    /// Same, p99.
    pub propagation_ms_p99: f64,
    /// Real uploads refused: by the issuer (no token for the code) or by the
    /// relay or gateway (a status other than 200).
    pub uploads_refused: usize,
    /// How uploads travel (`sealed via relays`: token-authorized, sealed to the
    /// gateway, posted to a relay).
    pub upload_path: String,
    /// Upload traffic as the nodes' own metrics count it.
    pub upload_traffic: UploadTraffic,
    /// Days on which some batch had not reached every relay within 15 s.
    pub propagation_timeouts: u32,
}

/// One rerun of the scenario with one parameter changed.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct SweepPoint {
    /// `adoption` or `initial_infected`.
    pub parameter: String,
    /// Its value.
    pub value: f64,
    /// People infected.
    pub infected: usize,
    /// Uploads.
    pub uploads: usize,
    /// Truly close app users.
    pub truly_close: usize,
    /// Notified phones.
    pub notified: usize,
    /// Precision.
    pub precision: f64,
    /// Recall.
    pub recall: f64,
    /// Fraction of all people (not only app users) truly close to an uploader
    /// who were notified: adoption enters twice (contact and uploader).
    pub population_coverage: f64,
    /// Download per phone per day, bytes.
    pub download_bytes_per_phone_per_day: f64,
    /// Upload to notification, p50 hours.
    pub delay_hours_p50: f64,
}

/// One run's figures for the key-form vs filter-form comparison.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct FormFigures {
    /// `keys` or `filter`.
    pub form: String,
    /// Download per phone per day, bytes.
    pub download_bytes_per_phone_per_day: f64,
    /// Download over its payload floor ([`Cost::download_over_floor`]).
    pub download_over_floor: f64,
    /// Recall against ground truth.
    pub recall: f64,
    /// Precision against ground truth.
    pub precision: f64,
    /// Notified phones that were not truly close (ground truth: includes real but
    /// short or distant contacts).
    pub false_alarms: usize,
    /// Full-sync sample phones that never heard an uploader yet found an exposure
    /// window: false matches of the cryptography (Bloom false positives).
    pub windows_without_contact: u64,
    /// Sniffers of the largest sniffer experiment the run made.
    pub sniffers: u32,
    /// That experiment: fraction of uploaders linked across two places.
    pub sniffer_linked_fraction: f64,
    /// That experiment: uploaders with any published unit seen by a sniffer.
    pub sniffer_seen: usize,
    /// Matching CPU per full-sync phone per day, milliseconds.
    pub matching_ms_per_phone_per_day: f64,
}

impl FormFigures {
    /// The comparison figures of `r`.
    pub fn of(r: &Report) -> Self {
        let o = &r.outcome;
        let most = std::iter::once(&r.privacy)
            .chain(&r.privacy_sweep)
            .max_by_key(|p| p.sniffers)
            .unwrap_or(&r.privacy);
        FormFigures {
            form: r.privacy.form.clone(),
            download_bytes_per_phone_per_day: r.cost.download_bytes_per_phone_per_day,
            download_over_floor: r.cost.download_over_floor,
            recall: o.recall,
            precision: o.precision,
            false_alarms: o.notified - o.true_positives,
            windows_without_contact: o.sample_windows_outside_contacts,
            sniffers: most.sniffers,
            sniffer_linked_fraction: most.linked_fraction,
            sniffer_seen: most.seen,
            matching_ms_per_phone_per_day: r.cost.matching_ms_per_phone_per_day,
        }
    }
}

/// One simulated day.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct Daily {
    /// Simulated day index.
    pub day: u32,
    /// New infections.
    pub new_infections: u32,
    /// Uploads accepted that day.
    pub uploads: u32,
    /// Phones notified so far.
    pub notified: u32,
    /// Notified and truly close, so far.
    pub true_positives: u32,
    /// Bytes a phone downloaded that day, on the wire.
    pub download_bytes_per_phone: f64,
    /// The bodies of those downloads decoded (gzip undone, HTTP heads left
    /// out): unlike the wire bytes, the same for two runs of one seed.
    #[serde(default)]
    pub download_body_bytes_per_phone: f64,
    /// That day's payload floor ([`Cost::payload_floor_bytes_per_phone_per_day`]).
    pub payload_floor_bytes: f64,
    /// Batches (or, in filter form, day-filter revisions) published so far.
    pub batches: u64,
    /// Phones with a venue exposure row so far.
    pub venue_warned: u32,
    /// Of them, truly venue-exposed (ground truth at the end of the run).
    pub venue_true_positives: u32,
    /// Bytes of venue warnings (list and batches) a phone downloaded that day.
    pub warning_bytes_per_phone: f64,
}

/// Venue check-ins (SPEC.md §12) against ground truth; see [`crate::venues`].
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct CheckInFigures {
    /// Fraction of app users who scan venue codes.
    pub adoption: f64,
    /// Venues in the city.
    pub venues: u32,
    /// Venues given an entry code (those an SDK phone checked in at).
    pub venues_with_codes: usize,
    /// SDK phones whose user checks in.
    pub checkin_phones: usize,
    /// Check-ins made (each checked out).
    pub check_ins: u64,
    /// Check-ins or check-outs the SDK refused, and venue codes refused.
    pub check_in_errors: u64,
    /// Case stays the authority traced (one owner pre-trace and one gateway
    /// trace each): every check-in of an uploading case in its upload window.
    pub traced_stays: usize,
    /// Traces refused.
    pub trace_errors: usize,
    /// Warnings published (one per traced hour slot).
    pub traced_hours: u64,
    /// Warning batches the gateway published.
    pub warning_batches: u64,
    /// Ground truth: phones that checked in with a visit overlapping a traced
    /// stay of another person at the same venue.
    pub exposed_checked_in: usize,
    /// Everyone (app or not, checked in or not) whose visit overlapped a traced stay.
    pub exposed_all_people: usize,
    /// Phones with a venue row in their exposure summary.
    pub warned: usize,
    /// Phones with a high-risk venue row.
    pub warned_high_risk: usize,
    /// Warned and exposed.
    pub true_positives: usize,
    /// `true_positives / exposed_checked_in`.
    pub recall: f64,
    /// Exposed phones with a high-risk venue row over `exposed_checked_in`.
    pub recall_high_risk: f64,
    /// `true_positives / exposed_all_people`: what check-ins reach of everyone
    /// who was there.
    pub population_coverage: f64,
    /// Proximity recall of the same run ([`Outcome::recall`]), for comparison.
    pub proximity_recall: f64,
    /// Exposed phones the proximity path did not notify.
    pub exposed_without_proximity_notification: usize,
    /// Checked-in phones not exposed but in a stay's aerosol window (arrived
    /// after the case left, within `min(stay, 30 min)`): warned on purpose.
    pub aerosol_window_only: usize,
    /// Of them, warned.
    pub aerosol_window_warned: usize,
    /// Checked-in phones at a traced venue on a traced day, neither exposed
    /// nor in an aerosol window: same venue, another time.
    pub same_venue_other_time: usize,
    /// Of them, warned: false alarms from same venue, other time.
    pub false_alarms_same_venue_other_time: usize,
    /// Cases warned of their own traced stay (and of no one else's): the SDK
    /// does not know which of its visits its user reported, so a case's
    /// phone matches the trace of its own visit.
    pub cases_warned_of_own_stay: usize,
    /// Other warned phones with no visit at a traced venue and day at all.
    pub false_alarms_elsewhere: usize,
    /// Phones a warning opened a record of (same venue and hour) that got no
    /// venue row: the presence-risk rule found no overlap.
    pub decrypted_without_row: usize,
    /// Venue warning download per phone per day (list and batches, HTTP
    /// bytes on the wire), mean over days, every app user counted.
    pub warning_bytes_per_phone_per_day: f64,
    /// Of it, the warning list's (`GET /v1/warnings?origin=&after=`: the
    /// batches above the relay's cursor).
    pub warning_list_bytes_per_phone_per_day: f64,
    /// Warning batches phones synced, and refused.
    pub warning_batches_synced: u64,
    /// Warning batches phones' SDKs refused.
    pub warning_sync_errors: u64,
    /// CPU in `sync_venue_warnings` + summary per check-in phone per day, ms.
    pub matching_ms_per_phone_per_day: f64,
    /// Days on which a warning batch had not reached every relay within 15 s.
    pub propagation_timeouts: u32,
    /// What a paper register would expose against each party under Traceless.
    pub privacy: VisitPrivacy,
}

/// The privacy comparison: a leaked paper register of the city's venues
/// against what each party holds under Traceless.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct VisitPrivacy {
    /// (person, visit) records a register at every venue would hold: every
    /// venue visit of the simulated period.
    pub paper_register_records: u64,
    /// Distinct people in it.
    pub paper_register_people: usize,
    /// Of the records, visits by app users.
    pub paper_register_app_user_records: u64,
    /// Of the records, visits by people without the app.
    pub paper_register_other_records: u64,
    /// Each party under Traceless, measured.
    pub parties: Vec<PartyExposure>,
}

/// What one party holds that names a visit.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct PartyExposure {
    /// Who.
    pub party: String,
    /// What was scanned.
    pub scanned: String,
    /// Bytes scanned (disk size varies by run: 0 in the comparison of runs).
    pub scanned_bytes: u64,
    /// Byte runs found that name a venue (name, address, QR payload, key,
    /// preid, URL fragment): each would tie a record to a visit.
    pub records_naming_a_visit: u64,
    /// Whether the scanner found the same needles planted in clear (its
    /// positive control); `None` where nothing was scanned.
    pub control_found: Option<bool>,
}

/// Wall time and memory of the run.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RunFigures {
    /// Seconds, whole run.
    pub seconds: f64,
    /// Seconds in the world model (population, mobility, epidemic, ground truth).
    pub world_seconds: f64,
    /// Seconds in the phone and network phase.
    pub phones_seconds: f64,
    /// Of them, seconds rescoring the calibration grid.
    pub calibration_seconds: f64,
    /// Of them, seconds computing the check-in figures (privacy scans included).
    pub checkin_figures_seconds: f64,
    /// Peak resident memory, MiB (VmHWM).
    pub peak_rss_mib: f64,
    /// Rayon threads.
    pub threads: usize,
}

/// Peak resident set size of this process, MiB (Linux `VmHWM`).
pub fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// The `q` quantile (0..=1) of `v` (sorted in place); 0 for an empty slice.
pub fn quantile(v: &mut [f64], q: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * q).round() as usize]
}

impl Report {
    /// The headline figures, a few lines.
    pub fn headline(&self) -> String {
        let o = &self.outcome;
        let c = &self.cost;
        let n = &self.network;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{}: {} people, {} app users, {} SDK phones, {} days",
            self.scenario, self.population, self.app_users, self.sdk_phones, self.days
        );
        let _ = writeln!(
            s,
            "  infected {}  positives {}  uploads {} ({})  truly close {}  notified {}",
            o.infected, o.positives, o.uploads, n.upload_path, o.truly_close, o.notified
        );
        let _ = writeln!(
            s,
            "  precision {:.3}  recall {:.3}  upload->notification p50 {:.1} h  p90 {:.1} h",
            o.precision, o.recall, o.delay_hours_p50, o.delay_hours_p90
        );
        let _ = writeln!(
            s,
            "  download {:.0} B/phone/day ({:.2}x the payload floor {:.0} B)  matching {:.2} ms/phone/day  batches {}  keys {}",
            c.download_bytes_per_phone_per_day,
            c.download_over_floor,
            c.payload_floor_bytes_per_phone_per_day,
            c.matching_ms_per_phone_per_day,
            n.batches,
            n.keys
        );
        let _ = writeln!(
            s,
            "  nodes: gateway + {} relays, {:.1} MB on disk each (max), gateway->relay p50 {:.0} ms p99 {:.0} ms",
            n.relays,
            n.storage.iter().map(|x| x.disk_bytes).max().unwrap_or(0) as f64 / 1e6,
            n.propagation_ms_p50,
            n.propagation_ms_p99
        );
        let _ = writeln!(
            s,
            "  dummy uploads {} (all uploads {} B)  sniffers {}: linked {}/{} uploaders ({:.1} %)",
            c.dummy_uploads,
            c.upload_bytes,
            self.privacy.sniffers,
            self.privacy.linked,
            self.privacy.uploaders,
            self.privacy.linked_fraction * 100.0
        );
        for f in &self.forms {
            let _ = writeln!(
                s,
                "  form {:<6}: download {:.0} B/phone/day ({:.2}x floor)  recall {:.3}  precision {:.3}  \
                 false alarms {} ({} without contact)  {} sniffers link {:.1} %",
                f.form,
                f.download_bytes_per_phone_per_day,
                f.download_over_floor,
                f.recall,
                f.precision,
                f.false_alarms,
                f.windows_without_contact,
                f.sniffers,
                f.sniffer_linked_fraction * 100.0
            );
        }
        let v = &self.checkins;
        if v.adoption > 0.0 {
            let _ = writeln!(
                s,
                "  check-ins ({:.0} % of app users): {} check-ins at {} venues, {} case stays traced ({} hours, {} warning batches), warnings {:.0} B/phone/day ({:.0} B of it the list)",
                v.adoption * 100.0,
                v.check_ins,
                v.venues_with_codes,
                v.traced_stays,
                v.traced_hours,
                v.warning_batches,
                v.warning_bytes_per_phone_per_day,
                v.warning_list_bytes_per_phone_per_day
            );
            let _ = writeln!(
                s,
                "  venue recall {:.3} ({}/{} exposed, high risk {:.3}; {} of everyone there)  proximity recall {:.3}  \
                 false alarms: same venue other time {}/{}, elsewhere {}  aerosol window warned {}/{}  cases warned of their own stay {}",
                v.recall,
                v.true_positives,
                v.exposed_checked_in,
                v.recall_high_risk,
                v.exposed_all_people,
                v.proximity_recall,
                v.false_alarms_same_venue_other_time,
                v.same_venue_other_time,
                v.false_alarms_elsewhere,
                v.aerosol_window_warned,
                v.aerosol_window_only,
                v.cases_warned_of_own_stay
            );
            let parties: Vec<String> = v
                .privacy
                .parties
                .iter()
                .map(|p| format!("{} {}", p.party, p.records_naming_a_visit))
                .collect();
            let _ = writeln!(
                s,
                "  a paper register would expose {} visits of {} people; records naming a visit under Traceless: {}",
                v.privacy.paper_register_records,
                v.privacy.paper_register_people,
                parties.join(", ")
            );
        }
        let _ = write!(
            s,
            "  run {:.1} s (world {:.1} s, phones {:.1} s, of them calibration {:.2} s over {} settings)  peak memory {:.0} MiB",
            self.run.seconds,
            self.run.world_seconds,
            self.run.phones_seconds,
            self.run.calibration_seconds,
            self.calibration.curves.len(),
            self.run.peak_rss_mib
        );
        s
    }

    /// Writes `report.json`, the SVG plots and `report.html` into `dir`.
    pub fn write(&self, dir: &Path) -> std::io::Result<Vec<String>> {
        std::fs::create_dir_all(dir)?;
        let json = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        std::fs::write(dir.join("report.json"), json)?;
        let plots = crate::plots::write_all(self, dir)?;
        let mut html = String::new();
        let _ = write!(
            html,
            "<!doctype html><html><head><meta charset=\"utf-8\"><title>Traceless simulation: {name}</title>\
             <style>body{{font-family:sans-serif;max-width:60em;margin:2em auto}}pre{{background:#f4f4f4;padding:1em}}\
             img{{max-width:100%}}</style></head><body><h1>Traceless simulation: {name}</h1>\
             <p>Real <code>traceless-sdk</code> instances against real <code>traceless-node</code> relays \
             (federated over loopback libp2p, uploads sealed and posted to relays by HTTP POST, downloads by HTTP GET).</p>\
             <pre>{head}</pre>",
            name = esc(&self.scenario),
            head = esc(&self.headline())
        );
        for p in &plots {
            let _ = write!(html, "<h2>{}</h2><img src=\"{p}\" alt=\"{p}\">", esc(p));
        }
        if self.checkins.adoption > 0.0 {
            html.push_str(&self.checkin_section());
        }
        let _ = write!(
            html,
            "<h2>All figures</h2><pre>{}</pre></body></html>",
            esc(&serde_json::to_string_pretty(self).unwrap_or_default())
        );
        std::fs::write(dir.join("report.html"), html)?;
        Ok(plots)
    }
}

impl Report {
    /// The HTML section on venue check-ins: recall and the privacy table.
    fn checkin_section(&self) -> String {
        let v = &self.checkins;
        let mut h = String::new();
        let _ = write!(
            h,
            "<h2>Venue check-ins</h2><p>{:.0} % of app users scan venue codes; the authority traced \
             {} case stays ({} hour slots). Venue recall {:.3} ({} of {} checked-in phones that overlapped a \
             traced stay got a venue row; high risk {:.3}); proximity recall {:.3}. Everyone who overlapped a \
             traced stay: {} people (coverage {:.3}). False alarms: same venue, other time {} of {}; \
             elsewhere {}. Aerosol window (after the case left, warned by the rule): {} of {}. \
             Cases warned of their own traced stay: {}. \
             Warnings cost {:.0} B per phone per day.</p>",
            v.adoption * 100.0,
            v.traced_stays,
            v.traced_hours,
            v.recall,
            v.true_positives,
            v.exposed_checked_in,
            v.recall_high_risk,
            v.proximity_recall,
            v.exposed_all_people,
            v.population_coverage,
            v.false_alarms_same_venue_other_time,
            v.same_venue_other_time,
            v.false_alarms_elsewhere,
            v.aerosol_window_warned,
            v.aerosol_window_only,
            v.cases_warned_of_own_stay,
            v.warning_bytes_per_phone_per_day
        );
        let p = &v.privacy;
        let _ = write!(
            h,
            "<table border=\"1\" cellpadding=\"4\"><tr><th>party</th><th>what</th>\
             <th>records naming a visit</th><th>scanner control</th></tr>\
             <tr><td>leaked paper register (every venue)</td><td>every visit: {} by app users, {} by others</td>\
             <td>{} ({} people)</td><td></td></tr>",
            p.paper_register_app_user_records,
            p.paper_register_other_records,
            p.paper_register_records,
            p.paper_register_people
        );
        for x in &p.parties {
            let control = match x.control_found {
                Some(true) => "found the planted payload",
                Some(false) => "MISSED the planted payload",
                None => "",
            };
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&x.party),
                esc(&x.scanned),
                x.records_naming_a_visit,
                control
            );
        }
        h.push_str("</table>");
        h
    }
}

/// `s` escaped for HTML text.
pub(crate) fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

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
    /// Bytes a phone downloaded that day.
    pub download_bytes_per_phone: f64,
    /// That day's payload floor ([`Cost::payload_floor_bytes_per_phone_per_day`]).
    pub payload_floor_bytes: f64,
    /// Batches (or, in filter form, day-filter revisions) published so far.
    pub batches: u64,
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
        let _ = write!(
            html,
            "<h2>All figures</h2><pre>{}</pre></body></html>",
            esc(&serde_json::to_string_pretty(self).unwrap_or_default())
        );
        std::fs::write(dir.join("report.html"), html)?;
        Ok(plots)
    }
}

/// `s` escaped for HTML text.
pub(crate) fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

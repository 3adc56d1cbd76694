//! A scenario file (`scenarios/<name>.toml`): who lives in the city, how they move,
//! how the disease and the app behave, and how the network is laid out. Every
//! field has a default, so a scenario names only what it changes.

use std::path::Path;

use serde::{Deserialize, Serialize};

/// Why a scenario was refused.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// The file could not be read.
    #[error("cannot read {0}: {1}")]
    Read(String, std::io::Error),
    /// Not valid TOML for this schema.
    #[error("invalid scenario: {0}")]
    Parse(#[from] toml::de::Error),
    /// A value is out of range.
    #[error("invalid scenario: {0}")]
    Invalid(String),
}

/// The whole scenario.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Scenario {
    /// Name shown in reports.
    pub name: String,
    /// Seed of every random choice: same seed, same results.
    pub seed: u64,
    /// People in the city.
    pub population: u32,
    /// Simulated days.
    pub days: u32,
    /// UTC day number of the first simulated day.
    pub start_day: u32,
    /// Households, workplaces, venues and transit.
    pub city: City,
    /// Bluetooth channel.
    pub channel: Channel,
    /// Disease, testing and upload behaviour.
    pub epidemic: Epidemic,
    /// The app and the phones.
    pub app: App,
    /// Relay nodes.
    pub network: Network,
    /// The sniffer experiment.
    pub privacy: Privacy,
    /// Reruns with other adoption rates and case loads.
    pub sweep: Sweep,
}

/// Reruns of the scenario, each with one parameter changed.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Sweep {
    /// Adoption rates.
    pub adoption: Vec<f64>,
    /// Initial infections (case load).
    pub initial_infected: Vec<u32>,
    /// Publication forms to rerun the scenario in, for the key-form vs
    /// filter-form comparison (the main run's form is always in it).
    pub publication: Vec<Publication>,
}

impl Default for Scenario {
    fn default() -> Self {
        Scenario {
            name: "unnamed".into(),
            seed: 1,
            population: 1000,
            days: 10,
            start_day: 19_675,
            city: City::default(),
            channel: Channel::default(),
            epidemic: Epidemic::default(),
            app: App::default(),
            network: Network::default(),
            privacy: Privacy::default(),
            sweep: Sweep::default(),
        }
    }
}

/// Places and schedules.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct City {
    /// Relative frequency of household sizes 1, 2, 3, ... .
    pub household_sizes: Vec<f64>,
    /// Fraction of people who go to a workplace or school on weekdays.
    pub worker_fraction: f64,
    /// Mean workplace (or class) size.
    pub workplace_mean_size: f64,
    /// Colleagues a worker is near during a day (at most).
    pub colleagues_per_day: u32,
    /// Fraction of workers who commute by public transport.
    pub transit_fraction: f64,
    /// Riders per transit car.
    pub transit_car_size: u32,
    /// Fellow riders a commuter is near (at most).
    pub riders_near: u32,
    /// Probability of visiting a venue (shop, bar, gym) on a given day.
    pub venue_visit_probability: f64,
    /// People per venue (mean venue count = population / this).
    pub people_per_venue: f64,
    /// Other visitors one is near at a venue (at most).
    pub visitors_near: u32,
}

impl Default for City {
    fn default() -> Self {
        City {
            household_sizes: vec![0.35, 0.33, 0.15, 0.12, 0.05],
            worker_fraction: 0.65,
            workplace_mean_size: 12.0,
            colleagues_per_day: 5,
            transit_fraction: 0.4,
            transit_car_size: 40,
            riders_near: 4,
            venue_visit_probability: 0.3,
            people_per_venue: 150.0,
            visitors_near: 3,
        }
    }
}

/// Bluetooth channel and scanning.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Channel {
    /// Attenuation at 1 m, dB (GAEN calibration puts ~1 m near 45-50 dB).
    pub loss_at_1m_db: f64,
    /// Path-loss exponent.
    pub path_loss_exponent: f64,
    /// Standard deviation of per-scan fading and orientation noise, dB.
    pub noise_db: f64,
    /// Extra loss when a phone is in a pocket or bag (drawn per encounter), dB.
    pub pocket_loss_db: f64,
    /// Probability that a phone is in a pocket or bag during an encounter.
    pub pocket_probability: f64,
    /// Seconds between scans (Android/iOS scan about every 4-5 minutes).
    pub scan_period_s: u32,
    /// Seconds each scan listens (the OS scans a few seconds per period).
    pub scan_window_s: f64,
    /// Milliseconds between a phone's advertisements (GAEN: 200-270 ms).
    pub advertising_interval_ms: u32,
    /// Reception probability of one advertisement at strong signal (collisions,
    /// radio duty cycling).
    pub reception_probability: f64,
    /// Standard deviation of fast fading between advertisements of one scan, dB.
    pub fast_fading_db: f64,
    /// Attenuation beyond which nothing is received, dB.
    pub sensitivity_db: f64,
    /// TX power every phone advertises, dBm.
    pub tx_power_dbm: i8,
}

impl Default for Channel {
    fn default() -> Self {
        Channel {
            loss_at_1m_db: 47.0,
            path_loss_exponent: 2.0,
            noise_db: 4.0,
            pocket_loss_db: 8.0,
            pocket_probability: 0.5,
            scan_period_s: 300,
            scan_window_s: 4.0,
            advertising_interval_ms: 250,
            reception_probability: 0.3,
            fast_fading_db: 2.0,
            sensitivity_db: 90.0,
            tx_power_dbm: -8,
        }
    }
}

/// Disease, testing and uploads.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Epidemic {
    /// People infected before day 0 (their infection day is in -6..=0).
    pub initial_infected: u32,
    /// Transmission hazard per minute at 1 m (falls with the square of distance).
    pub beta_per_minute: f64,
    /// Mean incubation period, days (geometric-like: 2 + Poisson).
    pub incubation_mean_days: f64,
    /// Days before symptom onset from which a case is infectious.
    pub presymptomatic_days: u32,
    /// Days after onset until which a case is infectious.
    pub infectious_days_after_onset: u32,
    /// Fraction of cases that develop symptoms.
    pub symptomatic_fraction: f64,
    /// Probability that a symptomatic case gets tested.
    pub test_adherence: f64,
    /// Days from onset to a positive result (uniform in this range).
    pub test_delay_days: [u32; 2],
    /// Probability that a tested app user uploads.
    pub upload_adherence: f64,
    /// Ground truth: minutes within `close_distance_m` that make a close contact.
    pub close_minutes: f64,
    /// Ground truth distance, metres.
    pub close_distance_m: f64,
    /// Cases stay home from the day of their positive result.
    pub isolate_after_test: bool,
}

impl Default for Epidemic {
    fn default() -> Self {
        Epidemic {
            initial_infected: 10,
            beta_per_minute: 0.0004,
            incubation_mean_days: 4.0,
            presymptomatic_days: 2,
            infectious_days_after_onset: 7,
            symptomatic_fraction: 0.65,
            test_adherence: 0.7,
            test_delay_days: [1, 2],
            upload_adherence: 0.7,
            close_minutes: 15.0,
            close_distance_m: 2.0,
            isolate_after_test: true,
        }
    }
}

/// Which phones run an SDK instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SdkPhones {
    /// Every app user runs an SDK, records every sighting and syncs every batch.
    All,
    /// Only phones that can match anything: uploaders and app users who received
    /// an uploader's advertisement; plus a random sample that syncs everything, to
    /// measure per-phone cost and check that nobody else could have matched.
    Contacts,
}

/// How diagnosed users' keys are published.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Publication {
    /// Daily keys in signed batches (SPEC.md §5.3): one key links a day's tokens.
    #[default]
    Keys,
    /// Chosen intervals as unlinkable entries in signed day filters (SPEC.md §5.8).
    Filter,
}

impl Publication {
    /// The name used in reports.
    pub fn name(self) -> &'static str {
        match self {
            Publication::Keys => "keys",
            Publication::Filter => "filter",
        }
    }
}

/// The app.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct App {
    /// Fraction of people who run the app.
    pub adoption: f64,
    /// Which phones get a real SDK instance.
    pub sdk_phones: SdkPhones,
    /// With `contacts`, phones in that sample that sync every batch in full.
    pub full_sync_sample: u32,
    /// Hour of the day (UTC) at which phones sync.
    pub sync_hour: u32,
    /// How uploads are published.
    pub publication: Publication,
    /// Fraction of SDK phones whose user scans the venue's QR code on arrival
    /// and checks out on leaving (SPEC.md §12), drawn once per person. The
    /// authority traces the venues a diagnosed user checked in at. 0 (the
    /// default): no check-ins, and runs of older scenario files are unchanged.
    pub checkin_adoption: f64,
}

impl Default for App {
    fn default() -> Self {
        App {
            adoption: 0.6,
            sdk_phones: SdkPhones::All,
            full_sync_sample: 50,
            sync_hour: 23,
            publication: Publication::Keys,
            checkin_adoption: 0.0,
        }
    }
}

/// Most `network.min_keys` a scenario may ask for (a period of padding beyond
/// it would be most of a gateway's pool).
const MAX_MIN_KEYS: u64 = 100_000;

/// The relay network.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Network {
    /// Relay nodes besides the gateway (phones download from these).
    pub relays: u32,
    /// The gateway's `k` (SPEC.md §6.4): each publication period padded with
    /// random keys to at least this many. 0 (the default here; nodes default
    /// to 140) keeps runs reproducible seed for seed, since padding is drawn
    /// from the OS's randomness, and the figures then count real keys only.
    pub min_keys: u64,
}

impl Default for Network {
    fn default() -> Self {
        Network {
            relays: 2,
            min_keys: 0,
        }
    }
}

/// The sniffer experiment.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Privacy {
    /// Sniffers placed at transit platforms, workplaces and venues (headline).
    pub sniffers: u32,
    /// Further sniffer counts to evaluate (the curve in the report).
    pub sniffer_sweep: Vec<u32>,
}

impl Default for Privacy {
    fn default() -> Self {
        Privacy {
            sniffers: 10,
            sniffer_sweep: vec![1, 5, 10, 25, 50, 100, 250],
        }
    }
}

impl Scenario {
    /// Reads and checks a scenario file.
    pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ScenarioError::Read(path.display().to_string(), e))?;
        Self::parse(&text)
    }

    /// Parses and checks scenario text.
    pub fn parse(text: &str) -> Result<Scenario, ScenarioError> {
        let s: Scenario = toml::from_str(text)?;
        s.validate()?;
        Ok(s)
    }

    /// Checks values serde cannot.
    pub fn validate(&self) -> Result<(), ScenarioError> {
        let bad = |m: &str| Err(ScenarioError::Invalid(m.into()));
        if self.population == 0 || self.population > 20_000_000 {
            return bad("population must be 1..=20,000,000");
        }
        if self.days == 0 || self.days > 28 {
            return bad("days must be 1..=28");
        }
        let unit = |x: f64| (0.0..=1.0).contains(&x);
        if !unit(self.app.checkin_adoption) {
            return bad("app.checkin_adoption must be within 0..=1");
        }
        if !unit(self.app.adoption)
            || !unit(self.epidemic.test_adherence)
            || !unit(self.epidemic.upload_adherence)
            || !unit(self.epidemic.symptomatic_fraction)
            || !unit(self.city.worker_fraction)
            || !unit(self.city.transit_fraction)
            || !unit(self.city.venue_visit_probability)
            || !unit(self.channel.pocket_probability)
            || !unit(self.channel.reception_probability)
        {
            return bad("probabilities and fractions must be within 0..=1");
        }
        if self.city.household_sizes.is_empty()
            || self.city.household_sizes.iter().any(|w| *w < 0.0)
            || self.city.household_sizes.iter().sum::<f64>() <= 0.0
        {
            return bad("household_sizes must be non-negative weights, not all zero");
        }
        if self.channel.scan_period_s < 60 || self.channel.scan_period_s > 1800 {
            return bad("scan_period_s must be 60..=1800");
        }
        if !(0.1..=60.0).contains(&self.channel.scan_window_s)
            || !(20..=10_000).contains(&self.channel.advertising_interval_ms)
        {
            return bad("scan_window_s must be 0.1..=60 and advertising_interval_ms 20..=10000");
        }
        if self.epidemic.test_delay_days[0] > self.epidemic.test_delay_days[1] {
            return bad("test_delay_days must be [min, max]");
        }
        if self.epidemic.initial_infected > self.population {
            return bad("initial_infected exceeds the population");
        }
        if !(20..=23).contains(&self.app.sync_hour) {
            return bad("sync_hour must be 20..=23 (after the day's uploads)");
        }
        if self.sweep.adoption.iter().any(|a| !unit(*a))
            || self
                .sweep
                .initial_infected
                .iter()
                .any(|&i| i > self.population)
            || self.sweep.adoption.len() + self.sweep.initial_infected.len() > 32
        {
            return bad("sweep values out of range (at most 32 reruns)");
        }
        if self.network.relays == 0 || self.network.relays > 16 {
            return bad("network.relays must be 1..=16");
        }
        if self.network.min_keys > MAX_MIN_KEYS {
            return bad("network.min_keys must be at most 100000");
        }
        if self.city.workplace_mean_size < 1.0 || self.city.people_per_venue < 1.0 {
            return bad("workplace_mean_size and people_per_venue must be at least 1");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checked_in_scenarios_parse() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
        for name in ["demo", "city-100k", "city-1m"] {
            let s =
                Scenario::load(&dir.join(format!("{name}.toml"))).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(s.name, name);
        }
    }

    #[test]
    fn out_of_range_values_are_refused() {
        for bad in [
            "population = 0",
            "days = 100",
            "[app]\nadoption = 1.5",
            "[app]\nsync_hour = 8",
            "[app]\ncheckin_adoption = 1.01",
            "[app]\ncheckin_adoption = -0.1",
            "[epidemic]\ntest_delay_days = [3, 1]",
            "unknown_field = 1",
        ] {
            assert!(Scenario::parse(bad).is_err(), "{bad}");
        }
    }
}

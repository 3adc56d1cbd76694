//! What the host app can tune. Defaults are what a deployment would ship. Set
//! at open ([`crate::Sdk::open`]) and replaced at any time
//! ([`crate::Sdk::set_config`]); the risk part may also come signed from an
//! authority ([`crate::Sdk::apply_risk_config`]).

use traceless_protocol::{RiskParameters, MAX_SCAN_PERIOD_SECONDS};

use crate::error::{Result, SdkError};
use crate::sightings::Caps;

/// Version of the configuration layout (the C ABI's `TlConfig.version`).
pub const CONFIG_VERSION: u32 = 1;

/// SDK settings.
#[derive(Clone, Debug, PartialEq)]
pub struct SdkConfig {
    /// This phone's calibrated TX power in dBm, written into its metadata.
    pub tx_power_dbm: i8,
    /// TX power assumed for a received token until its key is published and its
    /// metadata can be read.
    pub assumed_tx_power_dbm: i8,
    /// The host's Bluetooth scan period in seconds, assumed only for a sender
    /// heard exactly once (any other contact's cadence is read from its
    /// sightings, SPEC.md §7.1); 1..=300 (GAEN scanned about every 5 minutes).
    pub scan_period_s: u16,
    /// How far in the future a reported time may lie (clock skew between the
    /// Bluetooth stack and the app), seconds.
    pub max_future_skew_s: u64,
    /// Bounds on what received advertisements can make the phone store.
    pub caps: Caps,
    /// Risk scoring parameters.
    pub risk: RiskParameters,
    /// Days before symptom onset (or the test, if none) whose keys a diagnosis
    /// uploads by default (ECDC: contacts from 48 h before onset).
    pub infectious_days_before_onset: u32,
    /// Mean number of dummy uploads per day.
    pub dummy_uploads_per_day: f64,
    /// Threads the matcher may use during sync.
    pub matcher_threads: usize,
}

impl SdkConfig {
    /// Checks every field's range.
    pub fn validate(&self) -> Result<()> {
        let bad = |what: &str| Err(SdkError::InvalidArgument(what.into()));
        let r = &self.risk;
        let weights = r
            .attenuation_weights
            .iter()
            .chain(&r.transmission_risk_values)
            .chain(&r.infectiousness_weights);
        if self.scan_period_s == 0 || u64::from(self.scan_period_s) > MAX_SCAN_PERIOD_SECONDS {
            bad("scan_period_s must be 1..=300")
        } else if self.dummy_uploads_per_day.is_nan() || self.dummy_uploads_per_day <= 0.0 {
            bad("dummy_uploads_per_day must be positive")
        } else if self.matcher_threads == 0 {
            bad("matcher_threads must be at least 1")
        } else if r.attenuation_thresholds_db[0] > r.attenuation_thresholds_db[1] {
            bad("attenuation thresholds must be ascending")
        } else if weights.clone().any(|w| !w.is_finite() || *w < 0.0) {
            bad("weights and values must be finite and not negative")
        } else if !r.threshold.is_finite() || r.threshold <= 0.0 {
            bad("threshold must be positive")
        } else {
            Ok(())
        }
    }
}

impl Default for SdkConfig {
    fn default() -> Self {
        SdkConfig {
            tx_power_dbm: -8,
            assumed_tx_power_dbm: -8,
            scan_period_s: 300,
            max_future_skew_s: 60,
            caps: Caps::default(),
            risk: RiskParameters::default(),
            infectious_days_before_onset: 2,
            dummy_uploads_per_day: 0.2,
            matcher_threads: 1,
        }
    }
}

//! Phones: each one a real `traceless-sdk` instance on its own manual clock,
//! doing what a host app does: broadcast the SDK's advertisement, hand it every
//! received advertisement, buy an upload token with the patient's code and build
//! the sealed diagnosis upload (the anonymous path, SPEC.md §5.6–5.7), build
//! sealed dummy uploads, sync downloaded batches and read the exposure summary.
//! The dummy schedule is the SDK's Poisson process, drawn from the scenario
//! seed rather than the operating system's randomness (as the SDK draws it), so
//! that the dummies a run sends, like every other figure, follow from its seed.
//! Phones that do not run an SDK instance (see
//! [`SdkPhones`](crate::scenario::SdkPhones)) still broadcast EN-compatible tokens
//! of their own random daily keys, so listeners hear realistic noise.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use rand::RngCore;
use rand_chacha::ChaCha8Rng;
use traceless_protocol::sealed::SEAL_KEY_LEN;
use traceless_protocol::{
    interval_start_seconds, ExposureKind, ManualClock, Metadata, Tek, TokenPublicKey,
    ADVERTISEMENT_LEN,
};
use traceless_sdk::{poisson_gap_seconds, Sdk, SdkConfig, SdkError};

use crate::http::{self, HttpError};
use crate::nodes::ORIGIN;
use crate::population::PersonId;
use crate::scenario::Publication;
use crate::seed::{rng, Stream};

/// A 20-byte advertisement (RPI || AEM).
pub type Payload = [u8; ADVERTISEMENT_LEN];

/// What a phone sent in a day.
#[derive(Debug, Default)]
pub struct Broadcast {
    /// Advertisements by interval.
    pub ads: Vec<(u32, Payload)>,
    /// The sealed diagnosis upload it built, if due today, or why it could not.
    pub upload: Option<Result<Vec<u8>, UploadFailure>>,
    /// Sealed dummy uploads due today (unix time, request), same length as real ones.
    pub dummies: Vec<(u64, Vec<u8>)>,
}

/// What the app knows of the authority's gateway for the anonymous upload
/// path: where its token issuer answers and the keys it publishes
/// (`GET /v1/gateway-keys`).
#[derive(Clone, Debug)]
pub struct GatewayKeys {
    /// The gateway's HTTP address, where the issuer answers `POST /v1/tokens`.
    pub issuer: SocketAddr,
    /// The X25519 key uploads are sealed to.
    pub seal: [u8; SEAL_KEY_LEN],
    /// The key tokens are issued under.
    pub token: TokenPublicKey,
}

impl GatewayKeys {
    /// Fetches the keys from the gateway at `addr`, over HTTP.
    pub fn fetch(addr: SocketAddr) -> Result<GatewayKeys, UploadFailure> {
        let r = http::request(addr, "GET", "/v1/gateway-keys", b"")?;
        let bad = || UploadFailure::GatewayKeys(String::from_utf8_lossy(&r.body).into_owned());
        let j = r.try_json().filter(|_| r.status == 200).ok_or_else(bad)?;
        let hex32 = |v: &serde_json::Value| -> Option<[u8; 32]> {
            hex::decode(v.as_str()?).ok()?.try_into().ok()
        };
        let epoch = j["issuing_epoch"].as_u64().ok_or_else(bad)?;
        let token = j["token_keys"]
            .as_array()
            .and_then(|keys| keys.iter().find(|k| k["epoch"].as_u64() == Some(epoch)))
            .and_then(|k| hex32(&k["public_key"]))
            .ok_or_else(bad)?;
        Ok(GatewayKeys {
            issuer: addr,
            seal: hex32(&j["seal_public_key"]).ok_or_else(bad)?,
            token: TokenPublicKey {
                epoch: u32::try_from(epoch).map_err(|_| bad())?,
                key: token,
            },
        })
    }
}

/// Why a phone could not build its sealed upload.
#[derive(Debug, thiserror::Error)]
pub enum UploadFailure {
    /// The SDK refused (token request or answer, or the upload itself).
    #[error("SDK: {0}")]
    Sdk(#[from] SdkError),
    /// Talking to the issuer failed.
    #[error(transparent)]
    Http(#[from] HttpError),
    /// The issuer refused the code.
    #[error("the token issuer answered HTTP {0}")]
    Issuer(u16),
    /// The gateway's keys could not be read.
    #[error("unreadable gateway keys: {0}")]
    GatewayKeys(String),
}

/// One received advertisement to hand to a phone's SDK.
#[derive(Clone, Copy, Debug)]
pub struct Heard {
    /// Unix seconds.
    pub at: u64,
    /// Who broadcast it.
    pub speaker: PersonId,
    /// Attenuation, dB.
    pub attenuation_db: u8,
}

/// A phone running the SDK.
pub struct Phone {
    /// Whose phone.
    pub person: PersonId,
    sdk: Sdk,
    clock: ManualClock,
    publication: Publication,
    /// The dummy schedule's stream, and when the next dummy is due.
    dummy_rng: ChaCha8Rng,
    next_dummy_at: u64,
    /// Syncs every batch (rather than only batches of uploaders it heard).
    pub full_sync: bool,
    /// Uploaders this phone received an advertisement from.
    pub heard_uploaders: HashSet<PersonId>,
    /// When the app first showed a high-risk exposure (unix seconds).
    pub notified_at: Option<u64>,
    /// Earliest upload time among uploaders whose batches produced windows.
    pub first_matched_upload_at: Option<u64>,
    /// Sightings handed to the SDK.
    pub sightings: u64,
    /// Sightings the SDK refused (caps, times).
    pub sightings_refused: u64,
    /// Batches synced.
    pub batches_synced: u64,
    /// Batches the SDK refused.
    pub sync_errors: u64,
    /// Nanoseconds spent in `sync_batch` and `exposure_summary`.
    pub sync_ns: u64,
    /// Exposure windows found.
    pub windows: u64,
    /// Whether this phone's user scans venue codes.
    pub checks_in: bool,
    /// Its own check-ins: (venue, arrival, departure) as the SDK closed them.
    pub visits: Vec<(u32, u64, u64)>,
    /// Check-ins or check-outs the SDK refused.
    pub checkin_errors: u64,
    /// Venue warning batches synced.
    pub warning_batches: u64,
    /// Venue warning batches the SDK refused.
    pub warning_errors: u64,
    /// Warnings that opened one of its records (same venue and hour).
    pub venue_matches: u64,
    /// When the exposure summary first showed a venue row (unix seconds).
    pub venue_warned_at: Option<u64>,
    /// Whether a venue row is high risk.
    pub venue_high_risk: bool,
    /// Nanoseconds spent in `sync_venue_warnings` and the summary.
    pub venue_ns: u64,
}

impl Phone {
    /// A fresh phone at unix time `now`, trusting `authority` for [`ORIGIN`],
    /// its dummy schedule drawn from `seed`; its store in memory, or on disk
    /// under `store` (sealed under a master key the files do not hold, as the
    /// platform keystore holds it).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        person: PersonId,
        now: u64,
        config: SdkConfig,
        authority: traceless_protocol::ed25519_dalek::VerifyingKey,
        full_sync: bool,
        publication: Publication,
        seed: u64,
        checks_in: bool,
        store: Option<&std::path::Path>,
    ) -> Result<Phone, traceless_sdk::SdkError> {
        let clock = ManualClock::new(now);
        let mut dummy_rng = rng(seed, Stream::Dummy, &[u64::from(person)]);
        let next_dummy_at = now.saturating_add(poisson_gap_seconds(
            &mut dummy_rng,
            config.dummy_uploads_per_day,
        ));
        let mut sdk = match store {
            None => Sdk::in_memory(config, Arc::new(clock.clone()))?,
            Some(dir) => Sdk::open(
                dir,
                &traceless_sdk::MasterKey([0x5a; 32]),
                config,
                Arc::new(clock.clone()),
            )?,
        };
        sdk.trust_authority(ORIGIN, 1, authority)?;
        Ok(Phone {
            person,
            sdk,
            clock,
            publication,
            dummy_rng,
            next_dummy_at,
            full_sync,
            heard_uploaders: HashSet::new(),
            notified_at: None,
            first_matched_upload_at: None,
            sightings: 0,
            sightings_refused: 0,
            batches_synced: 0,
            sync_errors: 0,
            sync_ns: 0,
            windows: 0,
            checks_in,
            visits: Vec::new(),
            checkin_errors: 0,
            warning_batches: 0,
            warning_errors: 0,
            venue_matches: 0,
            venue_warned_at: None,
            venue_high_risk: false,
            venue_ns: 0,
        })
    }

    /// The advertisements of `intervals` (ascending), as the SDK produces them at
    /// each interval's start; an upload due at `upload.0` is built on the way
    /// (buying its token from the issuer then; the SDK then switches to a fresh
    /// key); then the sealed dummy uploads due before `day_end` on the phone's
    /// seeded schedule.
    pub fn broadcast(
        &mut self,
        intervals: &[u32],
        mut upload: Option<(u64, &[u8], u32)>,
        day_end: u64,
        gateway: &GatewayKeys,
    ) -> Broadcast {
        let mut ads = Vec::with_capacity(intervals.len());
        let mut bundle = None;
        for &i in intervals {
            let t = interval_start_seconds(i);
            if let Some((at, code, onset_day)) = upload {
                if at <= t {
                    bundle = Some(self.upload(at, code, onset_day, gateway));
                    upload = None;
                }
            }
            self.clock.set(t);
            if let Ok(ad) = self.sdk.advertisement() {
                ads.push((i, ad.to_bytes()));
            }
        }
        if let Some((at, code, onset_day)) = upload {
            bundle = Some(self.upload(at, code, onset_day, gateway));
        }
        let mut dummies = Vec::new();
        for _ in 0..64 {
            let at = self.next_dummy_at;
            if at >= day_end {
                break;
            }
            self.clock.set(at.max(day_end - 86_400));
            match self.sdk.sealed_dummy_upload(&gateway.seal) {
                Ok(d) => dummies.push((at, d)),
                Err(_) => break,
            }
            let rate = self.sdk.config().dummy_uploads_per_day;
            self.next_dummy_at = at.saturating_add(poisson_gap_seconds(&mut self.dummy_rng, rate));
        }
        Broadcast {
            ads,
            upload: bundle,
            dummies,
        }
    }

    /// At `at`: buys one token with `code` from the issuer over HTTP and seals
    /// the diagnosis upload (in the scenario's publication form) to the gateway.
    fn upload(
        &mut self,
        at: u64,
        code: &[u8],
        onset_day: u32,
        gateway: &GatewayKeys,
    ) -> Result<Vec<u8>, UploadFailure> {
        self.clock.set(at);
        // The app asks for one advertisement at upload time at the latest, so the
        // day's key exists even if nobody heard the phone today.
        let _ = self.sdk.advertisement();
        let request = self.sdk.token_request(gateway.token.epoch, 1, code)?;
        let r = http::request(gateway.issuer, "POST", "/v1/tokens", &request)?;
        if r.status != 200 {
            return Err(UploadFailure::Issuer(r.status));
        }
        self.sdk.token_finalize(&r.body, &gateway.token)?;
        Ok(match self.publication {
            Publication::Keys => self
                .sdk
                .sealed_diagnosis_upload(&gateway.seal, onset_day, &[]),
            Publication::Filter => self.sdk.sealed_filter_upload(&gateway.seal, onset_day, &[]),
        }?)
    }

    /// Hands received advertisements (ascending in time) to the SDK.
    pub fn listen(&mut self, heard: &[(Heard, Payload)], tx_power_dbm: i8) {
        for (h, payload) in heard {
            self.clock.set(h.at);
            let rssi = (i16::from(tx_power_dbm) - i16::from(h.attenuation_db)).max(-127) as i8;
            match self.sdk.record_sighting(payload, rssi, None, h.at) {
                Ok(()) => self.sightings += 1,
                Err(_) => self.sightings_refused += 1,
            }
        }
    }

    /// Syncs downloaded batches (or day filters, in filter form) at unix time
    /// `now`: `(bytes, upload time of the earliest uploader in it)`. Marks the
    /// phone notified if the exposure summary shows a high-risk day.
    pub fn sync(&mut self, now: u64, batches: &[(&[u8], Option<u64>)]) {
        if batches.is_empty() {
            return;
        }
        self.clock.set(now);
        let t0 = Instant::now();
        for (bytes, uploaded_at) in batches {
            let synced = match self.publication {
                Publication::Keys => self.sdk.sync_batch(bytes),
                Publication::Filter => self.sdk.sync_filter(bytes),
            };
            match synced {
                Ok(r) => {
                    self.batches_synced += 1;
                    if r.new_windows > 0 {
                        self.windows += r.new_windows as u64;
                        if let Some(at) = uploaded_at {
                            self.first_matched_upload_at =
                                Some(self.first_matched_upload_at.map_or(*at, |f| f.min(*at)));
                        }
                    }
                }
                Err(_) => self.sync_errors += 1,
            }
        }
        if self.notified_at.is_none() && self.windows > 0 {
            if let Ok(days) = self.sdk.exposure_summary() {
                if days
                    .iter()
                    .any(|d| d.high_risk && d.kind == ExposureKind::Proximity)
                {
                    self.notified_at = Some(now);
                }
            }
        }
        self.sync_ns += t0.elapsed().as_nanos() as u64;
    }
}

impl Phone {
    /// Scans `url` (venue `venue`'s code) at `arrival` and checks out at
    /// `departure`, each on the phone's clock at that time, as its user does.
    pub fn visit(&mut self, venue: u32, url: &str, arrival: u64, departure: u64) {
        self.clock.set(arrival);
        if self.sdk.check_in(url).is_err() {
            self.checkin_errors += 1;
            return;
        }
        self.clock.set(departure);
        match self.sdk.check_out() {
            Ok(c) => self.visits.push((venue, c.arrival, c.departure)),
            Err(_) => self.checkin_errors += 1,
        }
    }

    /// Syncs downloaded venue warning batches at unix time `now` and reads the
    /// exposure summary's venue rows.
    pub fn sync_warnings(&mut self, now: u64, batches: &[&[u8]]) {
        if batches.is_empty() || !self.checks_in {
            return;
        }
        self.clock.set(now);
        let t0 = Instant::now();
        let mut new = 0;
        for bytes in batches {
            match self.sdk.sync_venue_warnings(bytes) {
                Ok(n) => {
                    self.warning_batches += 1;
                    new += n as u64;
                }
                Err(_) => self.warning_errors += 1,
            }
        }
        if new > 0 {
            self.venue_matches += new;
            if let Ok(days) = self.sdk.exposure_summary() {
                let venue = days.iter().filter(|d| d.kind == ExposureKind::Venue);
                for d in venue {
                    self.venue_warned_at.get_or_insert(now);
                    self.venue_high_risk |= d.high_risk;
                }
            }
        }
        self.venue_ns += t0.elapsed().as_nanos() as u64;
    }

    /// Check-ins the phone's own list names a venue for (only an open one
    /// does; closed ones show their times only), for the seized-phone figure.
    pub fn listed_with_venue(&mut self) -> usize {
        self.sdk.check_ins().map_or(0, |l| {
            l.iter()
                .filter(|c| matches!(c.state, traceless_sdk::CheckInState::Open { .. }))
                .count()
        })
    }

    /// Makes the phone's store durable (before its files are inspected).
    pub fn flush(&self) {
        let _ = self.sdk.flush();
    }

    /// The daily summaries of this phone's stored windows scored under `risk`
    /// (the SDK's own configuration is restored afterwards; none if the SDK
    /// refuses `risk`).
    pub fn day_scores(
        &mut self,
        risk: &traceless_protocol::RiskParameters,
    ) -> Vec<traceless_protocol::DaySummary> {
        let saved = self.sdk.config().clone();
        let rescored = traceless_sdk::SdkConfig {
            risk: risk.clone(),
            ..saved.clone()
        };
        if self.sdk.set_config(rescored).is_err() {
            return Vec::new();
        }
        let days = self.sdk.exposure_summary().unwrap_or_default();
        let _ = self.sdk.set_config(saved);
        days
    }
}

/// Tokens of a phone without an SDK instance: its own random key of the day.
pub struct NoiseKeys {
    seed: u64,
    tx_power_dbm: i8,
    cache: HashMap<(PersonId, u32), Payload>,
}

impl NoiseKeys {
    /// Keys drawn from `seed`.
    pub fn new(seed: u64, tx_power_dbm: i8) -> Self {
        NoiseKeys {
            seed,
            tx_power_dbm,
            cache: HashMap::new(),
        }
    }

    /// The advertisement `p` broadcasts in interval `i` of unix day `day`.
    pub fn payload(&mut self, p: PersonId, day: u32, i: u32) -> Payload {
        let (seed, tx) = (self.seed, self.tx_power_dbm);
        *self.cache.entry((p, i)).or_insert_with(|| {
            let mut tek = [0u8; 16];
            rng(seed, Stream::Phone, &[u64::from(p), u64::from(day)]).fill_bytes(&mut tek);
            Tek(tek).advertisement(i, Metadata::new(tx)).to_bytes()
        })
    }
}

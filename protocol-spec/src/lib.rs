//! # traceless-protocol
//!
//! The reference implementation of the Traceless protocol (normative text:
//! `SPEC.md` beside this crate). Phones broadcast rotating tokens derived from a
//! daily Temporary Exposure Key exactly as Apple/Google Exposure Notification v1.2
//! does; people who test positive publish their keys through a health authority's
//! gateway, which signs them into batches; every phone re-derives the published
//! keys' tokens and matches them against what it heard, locally.
//!
//! What this reveals, and to whom: a published key links one day's tokens of one
//! diagnosed person (by design, as in GAEN); the filter form ([`filter`], SPEC.md
//! §5.8) publishes only chosen intervals as unlinkable entries instead. Nothing
//! here carries a name, an address, a location or a phone identifier. Matching happens only on the phone,
//! and the result leaves the matcher as "exposed on day D, score S".
//!
//! ```
//! use traceless_protocol::*;
//!
//! // A phone broadcasts today's tokens...
//! let now = 1_700_000_000;
//! let tek = Tek::generate();
//! let interval = interval_number(now);
//! let start = day_start_interval(day_of_unix(now));
//! let ad = tek.advertisement(interval, Metadata::new(-8));
//!
//! // ...another phone hears one of them at 50 dB for five minutes...
//! let heard = [Observation { rpi: ad.rpi, interval, attenuation_db: 50, duration_s: 300 }];
//!
//! // ...its owner tests positive; the authority's gateway signs the key into a batch.
//! let authority = AuthorityKey::generate("example.health", 1);
//! let key = DiagnosisKey { tek, rolling_start: start, rolling_period: 144,
//!                          transmission_risk: 6, days_since_onset: 0 };
//! let batch = Batch { origin: "example.health".into(), sequence: 1, created_at: now,
//!                     day: day_of_unix(now), keys: vec![key] };
//! let wire = batch.sign(&authority).unwrap().encode();
//!
//! // The listening phone verifies the batch against its trust list and matches.
//! let mut trust = TrustList::new();
//! trust.insert("example.health", 1, authority.verifying_key());
//! let batch = SignedBatch::decode(&wire).unwrap().verify(&trust, now).unwrap();
//! let index = ObservationIndex::new(&heard);
//! let matches = match_keys(&index, &batch.keys);
//! assert_eq!(matches[0].observations, vec![0]);
//!
//! // Risk scoring turns matches into a per-day summary.
//! let windows = exposure_windows(&batch.keys, &heard, &matches);
//! let days = RiskParameters::default().daily_summaries(&windows);
//! assert_eq!(days[0].minutes, 5.0);
//! ```

mod clock;
mod derive;
mod diagnosis;
mod error;
mod export;
mod exposure;
pub mod filter;
mod interval;
mod keys;
pub mod log;
mod matcher;
mod reference;
mod risk;
pub mod sealed;
mod signing;
pub mod token;
pub mod venue;
pub mod wire;

pub use clock::{Clock, ManualClock, SharedClock, SystemClock};
pub use derive::{TokenDeriver, HKDF_LANES, MAX_TOKENS_PER_KEY};
pub use diagnosis::{transmission_risk, DiagnosisKey, MAX_DAYS_SINCE_ONSET, MAX_TRANSMISSION_RISK};
pub use error::{KeyOrderFault, WireError};
pub use export::{ExportFile, ExportSigner, ECDSA_P256_SHA256_OID, EXPORT_HEADER};
pub use exposure::{
    exposure_seconds, SightingRun, MAX_SCAN_PERIOD_SECONDS, MAX_SIGHTING_GAP_SECONDS,
    MAX_TOKEN_SECONDS, SAME_SCAN_SECONDS,
};
pub use filter::{EntryFilter, FilterEntry, IntervalMask};
pub use interval::*;
pub use keys::*;
pub use matcher::{match_keys, match_keys_parallel, KeyMatch, Observation, ObservationIndex};
pub use reference::match_keys_reference;
pub use risk::*;
pub use sealed::{seal_upload, GatewaySealKey, SEALED_UPLOAD_LEN};
pub use signing::{
    AuthorityKey, TrustList, BATCH_CONTEXT, BATCH_V2_CONTEXT, DELETION_CONTEXT, EXPORT_KEY_CONTEXT,
    FILTER_CONTEXT, RISK_CONFIG_CONTEXT,
};
pub use token::{TokenKey, TokenPublicKey, TokenRequest, TokenResponse, UploadToken};
pub use wire::{
    validate_origin, Batch, BatchAttachments, BatchList, DayFilter, ExportKeyCertificate,
    FilterParts, PeriodBatch, PublishedBatch, RiskConfig, SignedBatch, SignedExportKey,
    SignedFilter, SignedPeriodBatch, SignedRiskConfig, Upload,
};

/// Re-exported so that users name the same key types this crate does.
pub use ed25519_dalek;
/// Re-exported for GAEN export signing keys.
pub use p256;

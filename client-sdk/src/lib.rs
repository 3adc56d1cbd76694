//! # traceless-sdk
//!
//! What a phone app embeds. The SDK draws a random Temporary Exposure Key each UTC
//! day and gives the app the 20-byte advertisement to broadcast; the app reports
//! every advertisement it receives; the SDK aggregates them per token and keeps
//! them on disk (sled) sealed under a per-day key that is destroyed after 14 days
//! (crypto-shredding). The app downloads signed batches from any relay node and
//! hands them to [`Sdk::sync_batch`], which verifies them against the trusted
//! authorities and matches locally.
//!
//! Uploads are anonymous by default. After a positive test the app obtains
//! upload tokens from the health authority's issuer ([`Sdk::token_request`],
//! [`Sdk::token_finalize`]: an RFC 9497 VOPRF, so the issuer cannot link the
//! tokens it evaluated to the upload that spends one); the SDK keeps them sealed
//! at rest. [`Sdk::sealed_diagnosis_upload`] spends one token and seals the
//! fixed-length upload to the gateway's key (RFC 9180 HPKE), so that any relay
//! can carry it without reading it and the gateway never sees the phone's
//! address; [`Sdk::sealed_dummy_upload`] builds cover traffic of the same length
//! on a Poisson schedule ([`Sdk::next_dummy_upload_at`]). For gateways without
//! the anonymous path, [`Sdk::diagnosis_upload`] and [`Sdk::dummy_upload`] still
//! build the plaintext bundle authorized by a single-use code.
//!
//! In the filter form (SPEC.md §5.8) the patient leaves out chosen times
//! ([`Sdk::sealed_filter_upload`], [`Sdk::filter_diagnosis_upload`]: a mask of
//! intervals per key instead of whole days) and the gateway publishes
//! unlinkable entries in signed Bloom filters per origin and day, one part per
//! publication boundary holding only what is new; [`Sdk::sync_filter`] probes
//! the stored sightings against a part and merges the hits into the same
//! exposure summary ([`Sdk::filter_revision`] tells the app which parts it
//! holds, so it fetches only later ones).
//!
//! What it reveals: the app learns per day only "exposed for M minutes, score S";
//! the node that serves batches learns nothing (every phone downloads the same
//! bytes); the disk holds no token, key or time in clear. Time comes from an
//! injected [`Clock`](traceless_protocol::Clock), so tests and simulations run
//! days in milliseconds. The C ABI is in the `ffi` module and `include/traceless.h`.
//!
//! ```
//! use std::sync::Arc;
//! use traceless_protocol::token::TokenIssueRequest;
//! use traceless_protocol::{AuthorityKey, Batch, DiagnosisKey, GatewaySealKey, ManualClock,
//!                          TokenKey, Upload, day_of_unix};
//! use traceless_sdk::{Sdk, SdkConfig};
//!
//! let clock = ManualClock::new(1_700_000_000);
//! let mut alice = Sdk::in_memory(SdkConfig::default(), Arc::new(clock.clone())).unwrap();
//! let mut bob = Sdk::in_memory(SdkConfig::default(), Arc::new(clock.clone())).unwrap();
//!
//! // Bob hears Alice's broadcasts at -60 dBm for 20 minutes.
//! for _ in 0..5 {
//!     let ad = alice.advertisement().unwrap();
//!     bob.record_sighting(&ad.to_bytes(), -60, None, clock.now()).unwrap();
//!     clock.advance(240);
//! }
//!
//! // The next day Alice tests positive. With the authority's code she obtains an
//! // anonymous token from its issuer...
//! clock.advance(86_400);
//! let today = day_of_unix(clock.now());
//! let issuer = TokenKey::generate(1);
//! let request = alice.token_request(1, 1, b"code").unwrap();
//! let blinded = TokenIssueRequest::decode(&request).unwrap().blinded;
//! let response = issuer.issue(&blinded).unwrap().encode();
//! assert_eq!(alice.token_finalize(&response, &issuer.public_key()).unwrap(), 1);
//!
//! // ...and her upload, sealed to the gateway, reaches it through any relay; the
//! // gateway checks the token and signs her keys into a batch (here, directly).
//! let gateway = GatewaySealKey::generate();
//! let sealed = alice.sealed_diagnosis_upload(&gateway.public_bytes(), today - 1, &[]).unwrap();
//! let upload = Upload::decode(&gateway.open(&sealed).unwrap(), clock.now()).unwrap();
//! assert!(issuer.verify(&upload.token.unwrap()));
//! let authority = AuthorityKey::generate("example.health", 1);
//! let yesterday: Vec<DiagnosisKey> = upload.keys.into_iter()
//!     .filter(|k| k.rolling_start / 144 == today - 1).collect();
//! let batch = Batch { origin: "example.health".into(), sequence: 1, created_at: clock.now(),
//!                     day: today - 1, keys: yesterday };
//! let wire = batch.sign(&authority).unwrap().encode();
//!
//! // Bob syncs the batch and learns that he was exposed yesterday, nothing more.
//! bob.trust_authority("example.health", 1, authority.verifying_key()).unwrap();
//! bob.sync_batch(&wire).unwrap();
//! let days = bob.exposure_summary().unwrap();
//! assert_eq!(days.len(), 1);
//! assert_eq!(days[0].day, today - 1);
//! assert!(days[0].minutes >= 20.0);
//! # use traceless_protocol::Clock;
//! ```

// `unsafe` is denied everywhere but in the C ABI module.
#![deny(unsafe_code)]
#![deny(missing_docs)]

// UniFFI's scaffolding (`extern "C"` functions) for the Kotlin, Swift and Python bindings.
#[allow(unsafe_code)]
pub mod bindings;
mod checkins;
#[cfg(feature = "client")]
pub mod client;
mod config;
mod data_report;
mod error;
#[allow(unsafe_code)]
pub mod ffi;
mod filters;
mod own_keys;
mod sdk;
mod sightings;
mod storage;
mod sync;
mod tokens;
mod upload;
mod vault;

// UniFFI's generated code names the tag type at the crate root.
#[doc(hidden)]
pub use bindings::UniFfiTag;
pub use checkins::{CheckIn, CheckInState};
pub use config::{SdkConfig, CONFIG_VERSION};
pub use data_report::{DataPublication, DataReport, NodePresence};
pub use error::{Result, SdkError};
pub use own_keys::OwnKey;
pub use sdk::{Sdk, Status};
pub use sightings::{Caps, Sighting};
pub use storage::{MemoryStorage, SideFile, SledStorage, Storage, Table};
pub use sync::SyncReport;
pub use traceless_protocol::transmission_risk;
pub use upload::{poisson_gap_seconds, UPLOAD_CODE_LEN};
pub use vault::MasterKey;

//! Venue check-in without registers (SPEC.md §12): CrowdNotifier basic, managed
//! and self-reported (server-based) variants.
//!
//! A venue prints an entry QR code (its description, a master public key
//! `mpk = mpk_owner · mpk_HA` and a random seed, after `#` in a URL so no web
//! server learns which venue was scanned). A phone that scans it keeps, per hour
//! of the stay, only a key-private IBE ciphertext of its arrival, departure and
//! the venue's notification key: without the trace key of that venue and hour
//! nobody, the phone's owner included, can tell which venue it was. A warning
//! needs both the owner's trace secret and the health authority's key; phones
//! trial-decrypt their records with the published keys and score the overlap
//! with Corona-Warn-App's presence-tracing risk, locally.
//!
//! ```
//! use traceless_protocol::venue::*;
//! use traceless_protocol::GatewaySealKey;
//!
//! let authority = GatewaySealKey::generate();
//! let venue = VenueDescription::new("Bakery Sonnenschein", "Hauptstr. 1, Berlin", 1, 30, 120);
//! let created = create_venue(&venue, &authority.public_bytes()).unwrap();
//! let url = created.entry.to_url("https://traceless.example/c");
//!
//! // A phone scans the poster at 10:05 and leaves at 10:50.
//! let entry = EntryCode::from_url(&url).unwrap();
//! let records = seal_visit(&entry, 36_300, 39_000);
//!
//! // A case was there 10:00-11:00: the owner and the authority trace together.
//! let pre = created.trace_secret.pre_trace(36_000, 39_600, 86_400).unwrap();
//! let traced = complete_trace(&pre, &authority, "Please get tested", 8, 86_400).unwrap();
//! assert_eq!(traced.view.description, "Bakery Sonnenschein");
//! let hits = match_records(&records, &traced.warnings);
//! assert_eq!(hits.len(), 1);
//! assert!(PresenceRisk::default().score(&hits)[0].high_risk);
//! ```

mod error;
pub mod ibe;
mod identity;
mod payload;
mod record;
mod report;
mod risk;
mod setup;
mod trace;
mod warnings;

/// Generated protobuf types of `proto/venue.proto`.
#[allow(missing_docs, clippy::all)]
pub mod pb {
    include!(concat!(env!("OUT_DIR"), "/traceless.venue.v1.rs"));
}

pub use error::{TextFault, VenueError};
pub use ibe::{IdentityKey, MasterPublic, MasterSecret};
pub use identity::{
    identity, identity_from_parts, preid, timekey, Slot, VenueNonces, HKDF_INFO, SLOT_RANGE,
    SLOT_SECONDS,
};
pub use payload::{
    EntryCode, VenueDescription, VenueKind, MAX_PAYLOAD_LEN, MAX_STAY_MINUTES, MAX_TEXT_CHARS,
    MAX_URL_LEN, PAYLOAD_VERSION, REPORT_KEY_LEN,
};
pub use record::{match_records, seal_visit, SealedRecord, VisitMatch, RECORD_LEN};
pub use report::{
    seal_stay, sealed_stay_len, self_reported_master, trace_stays, StayReport, MAX_STAYS_PER_DAY,
    MAX_STAY_SLOTS, STAY_DAYS_BEFORE_ONSET, STAY_REPORT_INFO,
};
pub use risk::{PresenceRisk, VenueExposureDay};
pub use setup::{
    create_room, create_self_reported, create_venue, generate_passphrase, CreatedVenue,
    Organisation, TraceSecret,
};
pub use trace::{
    complete_trace, PreTrace, TraceView, TraceWarning, Traced, MAX_MESSAGE_CHARS, MAX_TRACE_SLOTS,
};
pub use warnings::{
    batch_runs, SignedWarningBatch, WarningBatch, MAX_BATCH_LEN, MAX_BODY_LEN, MAX_WARNINGS,
    VENUE_WARNINGS_CONTEXT,
};

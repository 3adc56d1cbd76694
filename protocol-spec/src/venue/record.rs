//! A phone's check-in records and matching (SPEC.md §12.6). Per hour slot of a
//! stay the phone keeps `IBE.Enc(mpk, id, arrival ‖ departure ‖ notificationKey)`
//! and the day: 192 bytes that name no venue. A published `(id, sk_id)` opens
//! exactly the records made for that venue and hour.

use super::ibe::OVERHEAD;
use super::identity::{identity, Slot, VenueNonces};
use super::payload::EntryCode;
use super::trace::{open_details, TraceWarning};

/// Plaintext: BE64 arrival ‖ BE64 departure ‖ 32-byte notification key.
const PLAINTEXT_LEN: usize = 8 + 8 + 32;
/// Every record's ciphertext length.
pub const RECORD_LEN: usize = PLAINTEXT_LEN + OVERHEAD;

/// One hour of one visit, as the phone stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedRecord {
    /// UTC day of the slot: the vault day it is stored (and shredded) with.
    pub day: u32,
    /// [`RECORD_LEN`] bytes of key-private IBE ciphertext.
    pub ciphertext: Vec<u8>,
}

/// Seals a stay `[arrival, departure)` at the venue of `entry`: one record per
/// overlapped hour. No network, nothing kept but the records.
pub fn seal_visit(entry: &EntryCode, arrival: u64, departure: u64) -> Vec<SealedRecord> {
    let nonces = VenueNonces::derive(entry.payload());
    let mut m = [0u8; PLAINTEXT_LEN];
    m[..8].copy_from_slice(&arrival.to_be_bytes());
    m[8..16].copy_from_slice(&departure.to_be_bytes());
    m[16..].copy_from_slice(&nonces.notification_key);
    let records = Slot::hours_of(arrival, departure)
        .into_iter()
        .map(|slot| SealedRecord {
            day: slot.day(),
            ciphertext: entry
                .master_public
                .encrypt(&identity(entry.payload(), slot), &m),
        })
        .collect();
    zeroize::Zeroize::zeroize(&mut m);
    records
}

/// A record that a published warning opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VisitMatch {
    /// UTC day of the visit's hour.
    pub day: u32,
    /// The phone's arrival.
    pub arrival: u64,
    /// The phone's departure.
    pub departure: u64,
    /// The traced window start.
    pub window_start: u64,
    /// The traced window end.
    pub window_end: u64,
    /// The authority's message (only visitors can read it).
    pub message: String,
    /// The case's transmission risk level, 0..=8.
    pub risk_level: u32,
}

/// Trial-decrypts every record of a warning's day with its key: one pairing per
/// (record × warning). One match per visit and window, however many hours both
/// share.
pub fn match_records(records: &[SealedRecord], warnings: &[TraceWarning]) -> Vec<VisitMatch> {
    let mut out: Vec<VisitMatch> = Vec::new();
    for w in warnings {
        for r in records
            .iter()
            .filter(|r| r.day == w.day && r.ciphertext.len() == RECORD_LEN)
        {
            let Ok(m) = w.key.decrypt(&w.identity, &r.ciphertext) else {
                continue;
            };
            let arrival = u64::from_be_bytes(m[..8].try_into().expect("8"));
            let departure = u64::from_be_bytes(m[8..16].try_into().expect("8"));
            let key: [u8; 32] = m[16..].try_into().expect("32");
            let Ok(d) = open_details(&key, w) else {
                continue;
            };
            let found = VisitMatch {
                day: (arrival / 86_400) as u32,
                arrival,
                departure,
                window_start: d.window_start,
                window_end: d.window_end,
                message: d.message,
                risk_level: d.transmission_risk_level,
            };
            if !out.contains(&found) {
                out.push(found);
            }
        }
    }
    out
}

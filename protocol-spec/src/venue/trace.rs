//! Tracing a venue (SPEC.md §12.5). The owner turns its trace secret into
//! pre-trace keys `H1(id)^msk_owner` for the hours of a window; the health
//! authority opens its sealed share, recomputes every identity itself from the
//! payload (it never takes an identity from the owner), completes
//! `sk_id = pre · H1(id)^msk_HA`, checks `e(sk_id, g2) = e(H1(id), mpk)` and
//! writes the warnings. What the tracer sees: the payload's description and the
//! window. Never a visitor.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::ChaCha20Poly1305;
use prost::Message;
use rand_core::{OsRng, RngCore};

use super::ibe::IdentityKey;
use super::identity::{identity_from_parts, preid, timekey, Slot, VenueNonces};
use super::payload::{EntryCode, VenueKind};
use super::pb;
use super::setup::{open_ha_key, TraceSecret};
use super::VenueError;
use crate::MAX_TRANSMISSION_RISK;

/// Most hour slots one trace may cover (one day).
pub const MAX_TRACE_SLOTS: usize = 24;
/// Longest authority message, characters.
pub const MAX_MESSAGE_CHARS: usize = 500;

/// The owner's half of a trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreTrace {
    /// The entry payload.
    pub payload: Vec<u8>,
    /// The sealed authority share.
    pub sealed_ha: Vec<u8>,
    /// Window start, unix seconds.
    pub window_start: u64,
    /// Window end, unix seconds.
    pub window_end: u64,
    /// `(slot, H1(id)^msk_owner)` per hour of the window.
    pub keys: Vec<(Slot, IdentityKey)>,
}

fn check_window(start: u64, end: u64, now: u64) -> Result<Vec<Slot>, VenueError> {
    let bad = |reason| Err(VenueError::BadWindow { start, end, reason });
    if end <= start {
        return bad("ends before it starts");
    }
    if end > now {
        return bad("ends in the future");
    }
    let slots = Slot::hours_of(start, end);
    if slots.len() > MAX_TRACE_SLOTS {
        return bad("covers more than 24 hours");
    }
    Ok(slots)
}

impl TraceSecret {
    /// Pre-trace keys for `[start, end)` (at most 24 hour slots, not in the future).
    pub fn pre_trace(&self, start: u64, end: u64, now: u64) -> Result<PreTrace, VenueError> {
        let slots = check_window(start, end, now)?;
        let keys = slots
            .into_iter()
            .map(|slot| {
                (
                    slot,
                    self.owner
                        .identity_key(&super::identity(&self.payload, slot)),
                )
            })
            .collect();
        Ok(PreTrace {
            payload: self.payload.clone(),
            sealed_ha: self.sealed_ha.clone(),
            window_start: start,
            window_end: end,
            keys,
        })
    }
}

impl PreTrace {
    /// Encodes as `PreTrace` protobuf.
    pub fn encode(&self) -> Vec<u8> {
        pb::PreTrace {
            version: 1,
            payload: self.payload.clone(),
            sealed_ha_key: self.sealed_ha.clone(),
            window_start: self.window_start,
            window_end: self.window_end,
            keys: self
                .keys
                .iter()
                .map(|(slot, k)| pb::PreTraceKey {
                    interval_start: slot.start,
                    interval_length: slot.length,
                    pre_key: k.to_bytes().to_vec(),
                })
                .collect(),
        }
        .encode_to_vec()
    }

    /// Decodes a `PreTrace` (at most [`MAX_TRACE_SLOTS`] keys, valid points).
    pub fn decode(bytes: &[u8]) -> Result<Self, VenueError> {
        if bytes.len() > 8 * 1024 {
            return Err(VenueError::PayloadTooLong {
                len: bytes.len(),
                max: 8 * 1024,
            });
        }
        let p = pb::PreTrace::decode(bytes).map_err(|e| VenueError::Malformed {
            what: "PreTrace",
            reason: e.to_string(),
        })?;
        if p.version != 1 {
            return Err(VenueError::UnsupportedVersion {
                what: "PreTrace",
                found: p.version,
                supported: 1,
            });
        }
        if p.keys.len() > MAX_TRACE_SLOTS {
            return Err(VenueError::TooMany {
                len: p.keys.len(),
                max: MAX_TRACE_SLOTS,
            });
        }
        let keys = p
            .keys
            .iter()
            .map(|k| {
                Ok((
                    Slot::new(k.interval_start, k.interval_length)?,
                    IdentityKey::from_bytes(&k.pre_key)?,
                ))
            })
            .collect::<Result<_, VenueError>>()?;
        Ok(PreTrace {
            payload: p.payload,
            sealed_ha: p.sealed_ha_key,
            window_start: p.window_start,
            window_end: p.window_end,
            keys,
        })
    }
}

/// What the tracer sees of a trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceView {
    /// The venue's description, as on the poster.
    pub description: String,
    /// Its address.
    pub address: String,
    /// Its room, "" if none.
    pub room: String,
    /// Window start.
    pub window_start: u64,
    /// Window end.
    pub window_end: u64,
}

/// One published hour of a traced venue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceWarning {
    /// The identity.
    pub identity: [u8; 32],
    /// Its identity key `sk_id`.
    pub key: IdentityKey,
    /// UTC day of the slot.
    pub day: u32,
    /// `WarningDetails`, ChaCha20-Poly1305 under the notification key.
    pub sealed_details: Vec<u8>,
    /// The AEAD nonce.
    pub nonce: [u8; 12],
}

/// A completed trace.
#[derive(Debug, Clone)]
pub struct Traced {
    /// What the tracer saw.
    pub view: TraceView,
    /// The warnings to publish.
    pub warnings: Vec<TraceWarning>,
}

pub(crate) fn seal_details(
    notification_key: &[u8; 32],
    details: &pb::WarningDetails,
    id: &[u8; 32],
) -> ([u8; 12], Vec<u8>) {
    let mut nonce = [0u8; 12];
    OsRng.fill_bytes(&mut nonce);
    let ct = ChaCha20Poly1305::new(notification_key.into())
        .encrypt(
            &nonce.into(),
            Payload {
                msg: &details.encode_to_vec(),
                aad: id,
            },
        )
        .expect("ChaCha20-Poly1305 encrypts short messages");
    (nonce, ct)
}

/// Opens a warning's details with a record's notification key.
pub(crate) fn open_details(
    notification_key: &[u8; 32],
    w: &TraceWarning,
) -> Result<pb::WarningDetails, VenueError> {
    let pt = ChaCha20Poly1305::new(notification_key.into())
        .decrypt(
            &w.nonce.into(),
            Payload {
                msg: &w.sealed_details,
                aad: &w.identity,
            },
        )
        .map_err(|_| VenueError::NotForThisKey)?;
    pb::WarningDetails::decode(pt.as_slice()).map_err(|e| VenueError::Malformed {
        what: "WarningDetails",
        reason: e.to_string(),
    })
}

pub(crate) fn details(
    start: u64,
    end: u64,
    message: &str,
    risk_level: u32,
) -> Result<pb::WarningDetails, VenueError> {
    let chars = message.chars().count();
    if chars > MAX_MESSAGE_CHARS {
        return Err(VenueError::Text {
            field: "message",
            fault: super::TextFault::TooLong(chars),
        });
    }
    if risk_level > u32::from(MAX_TRANSMISSION_RISK) {
        return Err(VenueError::BadType {
            what: "transmission risk level",
            found: risk_level,
        });
    }
    Ok(pb::WarningDetails {
        window_start: start,
        window_end: end,
        message: message.into(),
        transmission_risk_level: risk_level,
    })
}

/// The authority completes an owner's pre-trace (CrowdNotifier basic, step C).
pub fn complete_trace(
    pre: &PreTrace,
    authority: &crate::GatewaySealKey,
    message: &str,
    risk_level: u32,
    now: u64,
) -> Result<Traced, VenueError> {
    let entry = EntryCode::from_payload(&pre.payload)?;
    if entry.kind != VenueKind::Basic {
        return Err(VenueError::BadType {
            what: "crowdNotifierData.type",
            found: 2,
        });
    }
    let window = check_window(pre.window_start, pre.window_end, now)?;
    let ha = open_ha_key(&pre.sealed_ha, authority)?;
    let details = details(pre.window_start, pre.window_end, message, risk_level)?;
    let nonces = VenueNonces::derive(&pre.payload);
    let pid = preid(&pre.payload, &nonces);
    let mut seen = std::collections::BTreeSet::new();
    let mut warnings = Vec::with_capacity(pre.keys.len());
    for (slot, pre_key) in &pre.keys {
        if !window.contains(slot) || !seen.insert(*slot) {
            return Err(VenueError::SlotOutsideWindow {
                slot_start: slot.start,
            });
        }
        let id = identity_from_parts(&pid, *slot, &timekey(*slot, &nonces));
        let key = pre_key.combine(&ha.identity_key(&id));
        if !key.is_key_of(&entry.master_public, &id) {
            return Err(VenueError::TraceKeyInvalid {
                slot_start: slot.start,
            });
        }
        let (nonce, sealed_details) = seal_details(&nonces.notification_key, &details, &id);
        warnings.push(TraceWarning {
            identity: id,
            key,
            day: slot.day(),
            sealed_details,
            nonce,
        });
    }
    let view = TraceView {
        description: entry.venue.description,
        address: entry.venue.address,
        room: entry.venue.room,
        window_start: pre.window_start,
        window_end: pre.window_end,
    };
    Ok(Traced { view, warnings })
}

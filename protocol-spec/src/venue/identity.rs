//! CrowdNotifier v3 identities (SPEC.md §12.2), exactly as the CrowdNotifier
//! techspec ("Computing Identities and Keys"), so its published vectors apply:
//!
//! ```text
//! noncePreId ‖ nonceTimekey ‖ notificationKey = HKDF-SHA256(IKM = payload, salt = "",
//!                                                   info = "CrowdNotifier_v3", L = 96)
//! preid   = SHA-256("CN-PREID" ‖ payload ‖ noncePreId)
//! timekey = SHA-256("CN-TIMEKEY" ‖ BE32(length) ‖ BE64(start) ‖ nonceTimekey)
//! id      = SHA-256("CN-ID" ‖ preid ‖ BE32(length) ‖ BE64(start) ‖ timekey)
//! ```
//!
//! `payload` is the raw QR payload bytes as scanned, so every byte of the poster
//! (texts, public key, seed) is bound into every identity (entry binding).

use hkdf::Hkdf;
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, ZeroizeOnDrop};

use super::VenueError;

/// HKDF `info` of CrowdNotifier v3.
pub const HKDF_INFO: &[u8] = b"CrowdNotifier_v3";
/// The identity slot: one identity per overlapped hour.
pub const SLOT_SECONDS: u32 = 3600;
/// Slot lengths CrowdNotifier allows (Traceless issues only [`SLOT_SECONDS`]).
pub const SLOT_RANGE: std::ops::RangeInclusive<u32> = 900..=86_400;

/// The three HKDF outputs of a payload.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct VenueNonces {
    /// Nonce of the pre-identity.
    pub nonce_preid: [u8; 32],
    /// Nonce of the time keys.
    pub nonce_timekey: [u8; 32],
    /// Key of the warning details only visitors may read.
    pub notification_key: [u8; 32],
}

impl VenueNonces {
    /// HKDF-SHA256(payload, salt = "", info = "CrowdNotifier_v3", L = 96).
    pub fn derive(payload: &[u8]) -> Self {
        let mut okm = [0u8; 96];
        Hkdf::<Sha256>::new(None, payload)
            .expand(HKDF_INFO, &mut okm)
            .expect("96 bytes is within HKDF-SHA256's output limit");
        let take = |i: usize| -> [u8; 32] { okm[i * 32..(i + 1) * 32].try_into().expect("32") };
        let nonces = VenueNonces {
            nonce_preid: take(0),
            nonce_timekey: take(1),
            notification_key: take(2),
        };
        okm.zeroize();
        nonces
    }
}

impl std::fmt::Debug for VenueNonces {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("VenueNonces(<redacted>)")
    }
}

/// One identity slot: `[start, start + length)`, `start % length == 0`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Slot {
    /// Unix seconds.
    pub start: u64,
    /// Seconds, in [`SLOT_RANGE`].
    pub length: u32,
}

impl Slot {
    /// Checks the CrowdNotifier constraints on a slot.
    pub fn new(start: u64, length: u32) -> Result<Self, VenueError> {
        if !SLOT_RANGE.contains(&length) || !start.is_multiple_of(u64::from(length)) {
            return Err(VenueError::BadSlot { start, length });
        }
        Ok(Slot { start, length })
    }

    /// The hour slots `[arrival, departure)` overlaps (one if the stay is empty).
    pub fn hours_of(arrival: u64, departure: u64) -> Vec<Slot> {
        let len = u64::from(SLOT_SECONDS);
        let first = arrival / len;
        let last = departure.max(arrival + 1).div_ceil(len);
        (first..last)
            .map(|h| Slot {
                start: h * len,
                length: SLOT_SECONDS,
            })
            .collect()
    }

    /// End of the slot, unix seconds.
    pub fn end(&self) -> u64 {
        self.start + u64::from(self.length)
    }

    /// UTC day the slot starts on.
    pub fn day(&self) -> u32 {
        (self.start / 86_400) as u32
    }
}

/// `preid = SHA-256("CN-PREID" ‖ payload ‖ noncePreId)`.
pub fn preid(payload: &[u8], nonces: &VenueNonces) -> [u8; 32] {
    Sha256::new()
        .chain_update(b"CN-PREID")
        .chain_update(payload)
        .chain_update(nonces.nonce_preid)
        .finalize()
        .into()
}

/// `timekey = SHA-256("CN-TIMEKEY" ‖ BE32(length) ‖ BE64(start) ‖ nonceTimekey)`.
pub fn timekey(slot: Slot, nonces: &VenueNonces) -> [u8; 32] {
    Sha256::new()
        .chain_update(b"CN-TIMEKEY")
        .chain_update(slot.length.to_be_bytes())
        .chain_update(slot.start.to_be_bytes())
        .chain_update(nonces.nonce_timekey)
        .finalize()
        .into()
}

/// `id = SHA-256("CN-ID" ‖ preid ‖ BE32(length) ‖ BE64(start) ‖ timekey)`: what a
/// server-based upload lets the gateway recompute from `(preid, slot, timekey)`.
pub fn identity_from_parts(preid: &[u8; 32], slot: Slot, timekey: &[u8; 32]) -> [u8; 32] {
    Sha256::new()
        .chain_update(b"CN-ID")
        .chain_update(preid)
        .chain_update(slot.length.to_be_bytes())
        .chain_update(slot.start.to_be_bytes())
        .chain_update(timekey)
        .finalize()
        .into()
}

/// The identity of `payload` for `slot`.
pub fn identity(payload: &[u8], slot: Slot) -> [u8; 32] {
    let nonces = VenueNonces::derive(payload);
    identity_from_parts(&preid(payload, &nonces), slot, &timekey(slot, &nonces))
}

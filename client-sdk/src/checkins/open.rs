//! The open check-in: the one record on the phone that names a venue, kept in
//! a file of its own (`<dir>/checkin`) so that check-out can destroy it by
//! overwriting it in place (sled would keep a removed record in its log).
//!
//! ```text
//! file      = nonce(24) || XChaCha20-Poly1305(master, plaintext, aad = OPEN_AAD)   (OPEN_FILE_LEN bytes)
//!           | 0x00 * OPEN_FILE_LEN                                                  (no open check-in)
//! plaintext = 0x01 || BE64 arrival || BE64 departure (0: not set) || BE16 len || payload || 0x00 padding
//! ```
//!
//! The plaintext is padded to the longest payload, so the file has one length
//! whatever the venue and every overwrite covers all of it.

use traceless_protocol::venue::{EntryCode, MAX_PAYLOAD_LEN};
use zeroize::Zeroizing;

use crate::error::{Result, SdkError};
use crate::storage::SideFile;
use crate::vault::Vault;

const OPEN_AAD: &[u8] = b"traceless/sdk/v1/open-checkin";
const FORMAT: u8 = 1;
const HEADER_LEN: usize = 1 + 8 + 8 + 2;
const PLAIN_LEN: usize = HEADER_LEN + MAX_PAYLOAD_LEN;
/// Length of the open check-in file: nonce, padded plaintext, tag.
pub(crate) const OPEN_FILE_LEN: usize = 24 + PLAIN_LEN + 16;

/// A visit in progress.
pub(crate) struct OpenCheckIn {
    /// Unix seconds.
    pub arrival: u64,
    /// A departure the user set (checked out by itself then), if any.
    pub departure: Option<u64>,
    /// The scanned code.
    pub entry: EntryCode,
}

impl OpenCheckIn {
    /// Arrival plus the venue's maximum stay.
    pub fn max_departure(&self) -> u64 {
        self.arrival + u64::from(self.entry.venue.max_stay_minutes) * 60
    }

    /// When the phone checks out by itself: the departure set, else the maximum stay.
    pub fn auto_checkout_at(&self) -> u64 {
        self.departure.unwrap_or(u64::MAX).min(self.max_departure())
    }
}

fn be64(b: &[u8]) -> u64 {
    u64::from_be_bytes(b[..8].try_into().expect("8 bytes"))
}

/// The open check-in, if there is one.
pub(crate) fn read(vault: &Vault) -> Result<Option<OpenCheckIn>> {
    let raw = vault.storage().read_side(SideFile::OpenCheckIn)?;
    if raw.iter().all(|&b| b == 0) {
        return Ok(None);
    }
    if raw.len() != OPEN_FILE_LEN {
        return Err(SdkError::Corrupt(format!(
            "open check-in file is {} bytes, not {OPEN_FILE_LEN}",
            raw.len()
        )));
    }
    let plain = vault.open_with_master(OPEN_AAD, &raw, "open check-in file")?;
    let bad = || SdkError::Corrupt("open check-in has a bad layout".into());
    if plain.len() != PLAIN_LEN || plain[0] != FORMAT {
        return Err(bad());
    }
    let len = usize::from(u16::from_be_bytes([plain[17], plain[18]]));
    if len > MAX_PAYLOAD_LEN {
        return Err(bad());
    }
    let entry = EntryCode::from_payload(&plain[HEADER_LEN..HEADER_LEN + len])
        .map_err(|e| SdkError::Corrupt(format!("open check-in payload: {e}")))?;
    let departure = be64(&plain[9..]);
    Ok(Some(OpenCheckIn {
        arrival: be64(&plain[1..]),
        departure: (departure != 0).then_some(departure),
        entry,
    }))
}

/// Replaces the open check-in (durable before this returns).
pub(crate) fn write(vault: &Vault, open: &OpenCheckIn) -> Result<()> {
    let payload = open.entry.payload();
    let mut plain = Zeroizing::new(vec![0u8; PLAIN_LEN]);
    plain[0] = FORMAT;
    plain[1..9].copy_from_slice(&open.arrival.to_be_bytes());
    plain[9..17].copy_from_slice(&open.departure.unwrap_or(0).to_be_bytes());
    let len = u16::try_from(payload.len()).expect("payloads are at most MAX_PAYLOAD_LEN bytes");
    plain[17..19].copy_from_slice(&len.to_be_bytes());
    plain[HEADER_LEN..HEADER_LEN + payload.len()].copy_from_slice(payload);
    let sealed = vault.seal_with_master(OPEN_AAD, &plain)?;
    debug_assert_eq!(sealed.len(), OPEN_FILE_LEN);
    vault.storage().write_side(SideFile::OpenCheckIn, &sealed)
}

/// Destroys the open check-in: zeros over the whole file, synced.
pub(crate) fn destroy(vault: &Vault) -> Result<()> {
    vault
        .storage()
        .write_side(SideFile::OpenCheckIn, &[0u8; OPEN_FILE_LEN])
}

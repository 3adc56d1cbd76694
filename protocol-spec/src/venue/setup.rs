//! Setting up venues (SPEC.md §12.4): two IBE key pairs per venue (owner and
//! health authority), `mpk = mpk_owner · mpk_HA`, the authority's half sealed to
//! the authority and then forgotten, so the owner cannot be coerced into tracing
//! alone; and the managed variant, where one passphrase holds the owner key of a
//! whole set of rooms.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use prost::Message;
use rand_core::{OsRng, RngCore};
use sha2::{Digest, Sha512};

use super::ibe::{MasterPublic, MasterSecret, SCALAR_LEN};
use super::payload::{EntryCode, VenueDescription, VenueKind};
use super::pb;
use super::VenueError;
use crate::sealed::hpke_seal;
use crate::GatewaySealKey;

/// HPKE `info` of the sealed authority key share.
pub const HA_KEY_INFO: &[u8] = b"traceless/v1/venue-ha-key";
/// Length of a sealed authority key: enc ‖ ciphertext ‖ tag.
pub const SEALED_HA_KEY_LEN: usize = 32 + SCALAR_LEN + 16;
/// Shortest passphrase accepted for a managed set (40 base32 characters = 200 bits
/// typed by hand at minimum; generated ones carry 260 bits).
pub const MIN_PASSPHRASE_CHARS: usize = 40;

fn seal_ha_key(msk_ha: &MasterSecret, authority: &[u8; 32]) -> Result<Vec<u8>, VenueError> {
    hpke_seal(authority, HA_KEY_INFO, &[], &msk_ha.to_bytes())
        .ok_or(VenueError::BadPoint("authority key"))
}

/// Opens a sealed authority key share with the authority's key.
pub(crate) fn open_ha_key(
    sealed: &[u8],
    authority: &GatewaySealKey,
) -> Result<MasterSecret, VenueError> {
    if sealed.len() != SEALED_HA_KEY_LEN {
        return Err(VenueError::Length {
            what: "sealed authority key",
            len: sealed.len(),
            expected: SEALED_HA_KEY_LEN,
        });
    }
    let pt = zeroize::Zeroizing::new(
        authority
            .hpke_open(HA_KEY_INFO, &[], sealed)
            .ok_or(VenueError::SealedKey)?,
    );
    MasterSecret::from_bytes(&pt)
}

/// The owner's trace secret: the owner key, the sealed authority key and the
/// entry payload. Printed as the trace QR, never next to the entry QR.
#[derive(Clone)]
pub struct TraceSecret {
    pub(crate) owner: MasterSecret,
    pub(crate) sealed_ha: Vec<u8>,
    pub(crate) payload: Vec<u8>,
}

impl std::fmt::Debug for TraceSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TraceSecret(<redacted>)")
    }
}

impl TraceSecret {
    /// The encoded `TraceSecretData`.
    pub fn encode(&self) -> Vec<u8> {
        pb::TraceSecretData {
            version: 1,
            owner_key: self.owner.to_bytes().to_vec(),
            sealed_ha_key: self.sealed_ha.clone(),
            payload: self.payload.clone(),
        }
        .encode_to_vec()
    }

    /// Decodes [`TraceSecret::encode`], checking the owner key against the payload.
    pub fn decode(bytes: &[u8]) -> Result<Self, VenueError> {
        let d = pb::TraceSecretData::decode(bytes).map_err(|e| VenueError::Malformed {
            what: "TraceSecretData",
            reason: e.to_string(),
        })?;
        if d.version != 1 {
            return Err(VenueError::UnsupportedVersion {
                what: "TraceSecretData",
                found: d.version,
                supported: 1,
            });
        }
        EntryCode::from_payload(&d.payload)?;
        if d.sealed_ha_key.len() != SEALED_HA_KEY_LEN {
            return Err(VenueError::Length {
                what: "sealed authority key",
                len: d.sealed_ha_key.len(),
                expected: SEALED_HA_KEY_LEN,
            });
        }
        Ok(TraceSecret {
            owner: MasterSecret::from_bytes(&d.owner_key)?,
            sealed_ha: d.sealed_ha_key,
            payload: d.payload,
        })
    }

    /// The trace QR text: `traceless-trace:1:<base64url TraceSecretData>`.
    pub fn to_text(&self) -> String {
        format!(
            "traceless-trace:1:{}",
            URL_SAFE_NO_PAD.encode(self.encode())
        )
    }

    /// Parses [`TraceSecret::to_text`].
    pub fn from_text(text: &str) -> Result<Self, VenueError> {
        let b64 = text
            .trim()
            .strip_prefix("traceless-trace:1:")
            .ok_or(VenueError::NotEntryUrl("not a trace secret"))?;
        TraceSecret::decode(
            &URL_SAFE_NO_PAD
                .decode(b64)
                .map_err(|_| VenueError::Base64)?,
        )
    }

    /// The entry code this secret traces.
    pub fn entry(&self) -> EntryCode {
        EntryCode::from_payload(&self.payload).expect("validated when the secret was made")
    }
}

/// A new venue: what goes on the poster, and what the owner keeps apart.
#[derive(Debug)]
pub struct CreatedVenue {
    /// The entry code of the poster.
    pub entry: EntryCode,
    /// The owner's trace secret.
    pub trace_secret: TraceSecret,
}

/// Creates a venue for the authority whose HPKE public key is `authority`: owner
/// and authority key pairs, `mpk = mpk_owner · mpk_HA`, `msk_HA` sealed to the
/// authority and dropped.
pub fn create_venue(
    venue: &VenueDescription,
    authority: &[u8; 32],
) -> Result<CreatedVenue, VenueError> {
    let owner = MasterSecret::generate();
    let ha = MasterSecret::generate();
    let sealed_ha = seal_ha_key(&ha, authority)?;
    let mpk = owner.public().combine(&ha.public());
    drop(ha);
    let entry = EntryCode::build(venue, &mpk, VenueKind::Basic)?;
    let trace_secret = TraceSecret {
        owner,
        sealed_ha,
        payload: entry.payload().to_vec(),
    };
    Ok(CreatedVenue {
        entry,
        trace_secret,
    })
}

/// A passphrase of 52 base32 characters (260 bits) in groups of four.
pub fn generate_passphrase() -> String {
    const ALPHABET: &[u8; 32] = b"abcdefghijkmnpqrstuvwxyz23456789";
    let mut bytes = [0u8; 52];
    OsRng.fill_bytes(&mut bytes);
    let chars: Vec<char> = bytes
        .iter()
        .map(|b| ALPHABET[usize::from(b % 32)] as char)
        .collect();
    chars
        .chunks(4)
        .map(|c| c.iter().collect::<String>())
        .collect::<Vec<_>>()
        .join("-")
}

/// A managed set of rooms (CrowdNotifier managed variant): one owner key from a
/// passphrase, `msk_O = SHA-512(passphrase) mod r`, one sealed authority share,
/// one `mpk` for every room. Nothing here is secret; the passphrase is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Organisation {
    /// `mpk = mpk_O · mpk_HA`.
    pub master_public: MasterPublic,
    /// `msk_HA` sealed to the authority.
    pub sealed_ha: Vec<u8>,
}

fn passphrase_key(passphrase: &str) -> Result<MasterSecret, VenueError> {
    let chars = passphrase.chars().count();
    if chars < MIN_PASSPHRASE_CHARS {
        return Err(VenueError::WeakPassphrase(chars));
    }
    Ok(MasterSecret::from_wide(
        &Sha512::digest(passphrase.as_bytes()).into(),
    ))
}

impl Organisation {
    /// Sets up the organisation for `authority`.
    pub fn create(passphrase: &str, authority: &[u8; 32]) -> Result<Self, VenueError> {
        let owner = passphrase_key(passphrase)?;
        let ha = MasterSecret::generate();
        let sealed_ha = seal_ha_key(&ha, authority)?;
        Ok(Organisation {
            master_public: owner.public().combine(&ha.public()),
            sealed_ha,
        })
    }

    /// Recovers the trace secret of one room from the passphrase and its payload;
    /// fails with [`VenueError::TraceKeyInvalid`]-free checks: the payload must be
    /// one of this organisation's.
    pub fn trace_secret(
        &self,
        passphrase: &str,
        room: &EntryCode,
    ) -> Result<TraceSecret, VenueError> {
        if room.master_public != self.master_public {
            return Err(VenueError::BadPoint("room master public key"));
        }
        Ok(TraceSecret {
            owner: passphrase_key(passphrase)?,
            sealed_ha: self.sealed_ha.clone(),
            payload: room.payload().to_vec(),
        })
    }
}

/// A room of a managed set: the organisation's `mpk`, a fresh seed.
pub fn create_room(org: &Organisation, room: &VenueDescription) -> Result<EntryCode, VenueError> {
    EntryCode::build(room, &org.master_public, VenueKind::Basic)
}

/// A self-reported code (CrowdNotifier server-based, SPEC.md §12.11) for a place
/// with no owner in reach: `mpk` is the gateway's venue key
/// ([`self_reported_master`](super::self_reported_master)'s public half) and
/// `report_key` its X25519 seal key, both from `GET /v1/gateway-keys`. There is
/// no trace secret: a diagnosed visitor reports the stay.
pub fn create_self_reported(
    venue: &VenueDescription,
    venue_key: &MasterPublic,
    report_key: &[u8; 32],
) -> Result<EntryCode, VenueError> {
    EntryCode::build(
        venue,
        venue_key,
        VenueKind::SelfReported {
            report_key: *report_key,
        },
    )
}

//! The entry QR code (SPEC.md §12.1): the CrowdNotifier / Corona-Warn-App
//! `QRCodePayload` protobuf, unpadded base64url after `#` in an `https` URL, so
//! the web server behind the URL never learns which venue was scanned. Decoding
//! validates like CWA's `TraceLocationVerifier`: texts 1..=100 characters on one
//! line, key and seed lengths, versions, validity period.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use prost::Message;
use rand_core::{OsRng, RngCore};

use super::ibe::{MasterPublic, G2_LEN};
use super::pb;
use super::{TextFault, VenueError};

/// `QRCodePayload.version`: CrowdNotifier v3 identities.
pub const PAYLOAD_VERSION: u32 = 3;
/// Version of the nested messages.
const INNER_VERSION: u32 = 1;
/// Longest description, address or room label, in characters (CWA).
pub const MAX_TEXT_CHARS: usize = 100;
/// Longest payload: three 100-character texts of 4-byte characters, key, seed.
pub const MAX_PAYLOAD_LEN: usize = 1400;
/// Longest entry URL.
pub const MAX_URL_LEN: usize = 2048;
/// Length of the cryptographic seed.
pub const SEED_LEN: usize = 32;
/// Longest stay, minutes (CWA: auto check-out at most 23:45 after arrival; we allow a day).
pub const MAX_STAY_MINUTES: u32 = 1440;
/// Length of a self-reported code's report key (an X25519 public key).
pub const REPORT_KEY_LEN: usize = 32;
/// Highest CWA `TraceLocationType`.
pub const MAX_VENUE_TYPE: u32 = 12;

/// Who completes the trace keys of a venue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VenueKind {
    /// CrowdNotifier basic: owner and health authority together.
    Basic,
    /// Server-based: the gateway's venue key alone (codes for places with no
    /// owner in reach; a diagnosed visitor reports the stay, SPEC.md §12.11).
    SelfReported {
        /// The gateway's X25519 key that stay reports are sealed to.
        report_key: [u8; REPORT_KEY_LEN],
    },
}

impl VenueKind {
    fn code(self) -> u32 {
        match self {
            VenueKind::Basic => 1,
            VenueKind::SelfReported { .. } => 2,
        }
    }
}

/// What a venue says about itself on its poster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VenueDescription {
    /// Name shown to visitors, 1..=100 characters.
    pub description: String,
    /// Address, 1..=100 characters.
    pub address: String,
    /// Validity period start, unix seconds (0 with `valid_to` 0: permanent).
    pub valid_from: u64,
    /// Validity period end, unix seconds.
    pub valid_to: u64,
    /// CWA `TraceLocationType`, 0..=12.
    pub venue_type: u32,
    /// Room of a managed set, "" for a single venue.
    pub room: String,
    /// Suggested check-out, minutes.
    pub default_stay_minutes: u32,
    /// Automatic check-out, minutes.
    pub max_stay_minutes: u32,
}

impl VenueDescription {
    /// A permanent venue without a room.
    pub fn new(
        description: &str,
        address: &str,
        venue_type: u32,
        default_stay_minutes: u32,
        max_stay_minutes: u32,
    ) -> Self {
        VenueDescription {
            description: description.into(),
            address: address.into(),
            valid_from: 0,
            valid_to: 0,
            venue_type,
            room: String::new(),
            default_stay_minutes,
            max_stay_minutes,
        }
    }

    /// Checks every field (the same rules [`EntryCode::from_payload`] applies).
    pub fn validate(&self) -> Result<(), VenueError> {
        check_text("description", &self.description, 1)?;
        check_text("address", &self.address, 1)?;
        check_text("room", &self.room, 0)?;
        let (from, to) = (self.valid_from, self.valid_to);
        if (from, to) != (0, 0) && from >= to {
            return Err(VenueError::BadPeriod {
                start: from,
                end: to,
            });
        }
        if self.venue_type > MAX_VENUE_TYPE {
            return Err(VenueError::BadType {
                what: "venue type",
                found: self.venue_type,
            });
        }
        let (d, m) = (self.default_stay_minutes, self.max_stay_minutes);
        if d == 0 || d > m || m > MAX_STAY_MINUTES {
            return Err(VenueError::BadStay {
                default_minutes: d,
                max_minutes: m,
            });
        }
        Ok(())
    }
}

fn check_text(field: &'static str, text: &str, min: usize) -> Result<(), VenueError> {
    let chars = text.chars().count();
    let fault = if chars < min {
        Some(TextFault::Empty)
    } else if chars > MAX_TEXT_CHARS {
        Some(TextFault::TooLong(chars))
    } else if text.chars().any(char::is_control) {
        Some(TextFault::NotOneLine)
    } else {
        None
    };
    fault.map_or(Ok(()), |fault| Err(VenueError::Text { field, fault }))
}

fn check_version(what: &'static str, found: u32, supported: u32) -> Result<(), VenueError> {
    if found != supported {
        return Err(VenueError::UnsupportedVersion {
            what,
            found,
            supported,
        });
    }
    Ok(())
}

/// A validated entry code: the raw payload bytes (what identities derive from)
/// and what they say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryCode {
    payload: Vec<u8>,
    /// The venue's description.
    pub venue: VenueDescription,
    /// `mpk`.
    pub master_public: MasterPublic,
    /// Who traces it.
    pub kind: VenueKind,
}

impl EntryCode {
    /// Builds the payload of a new code with a fresh random seed.
    pub fn build(
        venue: &VenueDescription,
        master_public: &MasterPublic,
        kind: VenueKind,
    ) -> Result<Self, VenueError> {
        venue.validate()?;
        let mut seed = [0u8; SEED_LEN];
        OsRng.fill_bytes(&mut seed);
        let country = pb::TracelessLocationData {
            version: INNER_VERSION,
            r#type: venue.venue_type,
            room: venue.room.clone(),
            default_stay_minutes: venue.default_stay_minutes,
            max_stay_minutes: venue.max_stay_minutes,
            report_key: match kind {
                VenueKind::Basic => Vec::new(),
                VenueKind::SelfReported { report_key } => report_key.to_vec(),
            },
        };
        let payload = pb::QrCodePayload {
            version: PAYLOAD_VERSION,
            location_data: Some(pb::TraceLocation {
                version: INNER_VERSION,
                description: venue.description.clone(),
                address: venue.address.clone(),
                start_timestamp: venue.valid_from,
                end_timestamp: venue.valid_to,
            }),
            crowd_notifier_data: Some(pb::CrowdNotifierData {
                version: INNER_VERSION,
                public_key: master_public.to_bytes().to_vec(),
                cryptographic_seed: seed.to_vec(),
                r#type: kind.code(),
            }),
            country_data: country.encode_to_vec(),
        }
        .encode_to_vec();
        EntryCode::from_payload(&payload)
    }

    /// Decodes and validates raw payload bytes.
    pub fn from_payload(payload: &[u8]) -> Result<Self, VenueError> {
        if payload.len() > MAX_PAYLOAD_LEN {
            return Err(VenueError::PayloadTooLong {
                len: payload.len(),
                max: MAX_PAYLOAD_LEN,
            });
        }
        let malformed = |what| {
            move |e: prost::DecodeError| VenueError::Malformed {
                what,
                reason: e.to_string(),
            }
        };
        let p = pb::QrCodePayload::decode(payload).map_err(malformed("QRCodePayload"))?;
        check_version("QRCodePayload", p.version, PAYLOAD_VERSION)?;
        let loc = p.location_data.ok_or(VenueError::Missing("locationData"))?;
        check_version("TraceLocation", loc.version, INNER_VERSION)?;
        let cn = p
            .crowd_notifier_data
            .ok_or(VenueError::Missing("crowdNotifierData"))?;
        check_version("CrowdNotifierData", cn.version, INNER_VERSION)?;
        if cn.public_key.len() != G2_LEN {
            return Err(VenueError::Length {
                what: "publicKey",
                len: cn.public_key.len(),
                expected: G2_LEN,
            });
        }
        if cn.cryptographic_seed.len() != SEED_LEN {
            return Err(VenueError::Length {
                what: "cryptographicSeed",
                len: cn.cryptographic_seed.len(),
                expected: SEED_LEN,
            });
        }
        let country = pb::TracelessLocationData::decode(p.country_data.as_slice())
            .map_err(malformed("TracelessLocationData"))?;
        check_version("TracelessLocationData", country.version, INNER_VERSION)?;
        let venue = VenueDescription {
            description: loc.description,
            address: loc.address,
            valid_from: loc.start_timestamp,
            valid_to: loc.end_timestamp,
            venue_type: country.r#type,
            room: country.room,
            default_stay_minutes: country.default_stay_minutes,
            max_stay_minutes: country.max_stay_minutes,
        };
        venue.validate()?;
        let kind = match (cn.r#type, country.report_key.len()) {
            (1, 0) => VenueKind::Basic,
            (2, REPORT_KEY_LEN) => VenueKind::SelfReported {
                report_key: country.report_key.try_into().expect("checked length"),
            },
            (1 | 2, len) => {
                return Err(VenueError::Length {
                    what: "reportKey",
                    len,
                    expected: if cn.r#type == 1 { 0 } else { REPORT_KEY_LEN },
                })
            }
            (found, _) => {
                return Err(VenueError::BadType {
                    what: "crowdNotifierData.type",
                    found,
                })
            }
        };
        let master_public = MasterPublic::from_bytes(&cn.public_key)?;
        Ok(EntryCode {
            payload: payload.to_vec(),
            venue,
            master_public,
            kind,
        })
    }

    /// Parses a scanned URL `https://<host>/<path>?v=3#<base64url payload>`.
    pub fn from_url(url: &str) -> Result<Self, VenueError> {
        if url.len() > MAX_URL_LEN {
            return Err(VenueError::UrlTooLong {
                len: url.len(),
                max: MAX_URL_LEN,
            });
        }
        let rest = url
            .strip_prefix("https://")
            .ok_or(VenueError::NotEntryUrl("not https"))?;
        let (head, fragment) = rest
            .split_once('#')
            .ok_or(VenueError::NotEntryUrl("no # fragment"))?;
        let (_, query) = head
            .split_once('?')
            .ok_or(VenueError::NotEntryUrl("no ?v= version"))?;
        let version = query
            .split('&')
            .find_map(|kv| kv.strip_prefix("v="))
            .ok_or(VenueError::NotEntryUrl("no ?v= version"))?;
        let found = version
            .parse()
            .map_err(|_| VenueError::NotEntryUrl("version is not a number"))?;
        check_version("entry URL", found, PAYLOAD_VERSION)?;
        let payload = URL_SAFE_NO_PAD
            .decode(fragment)
            .map_err(|_| VenueError::Base64)?;
        EntryCode::from_payload(&payload)
    }

    /// The URL to print: `<base>?v=3#<base64url payload>`.
    pub fn to_url(&self, base: &str) -> String {
        format!(
            "{base}?v={PAYLOAD_VERSION}#{}",
            URL_SAFE_NO_PAD.encode(&self.payload)
        )
    }

    /// The raw payload bytes.
    pub fn payload(&self) -> &[u8] {
        &self.payload
    }
}

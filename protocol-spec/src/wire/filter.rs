//! Signed parts of day filters of filter-form entries (SPEC.md §5.8).

use prost::Message;

use super::{check_reencodes, decode_limited, decode_list, pb, signature_bytes, validate_origin};
use crate::error::WireError;
use crate::filter::{
    EntryFilter, FILTER_EMBARGO_INTERVALS, FILTER_HASHES, MAX_FILTER_ENTRIES, MAX_FILTER_PARTS,
};
use crate::interval::{day_start_interval, interval_start_seconds, RETENTION_DAYS};
use crate::signing::{self, AuthorityKey, TrustList, FILTER_CONTEXT, SIGNATURE_LEN};
use crate::wire::MAX_CLOCK_SKEW_SECONDS;

/// Largest encoded [`SignedFilter`] accepted: a full part plus headers.
pub const MAX_SIGNED_FILTER_LEN: usize = 5 << 20;

/// Version of `FilterBody`: 2 since a day filter grows by parts (SPEC.md §5.8,
/// §9). Every other signed message is still version 1.
pub const FILTER_VERSION: u32 = 2;

/// One part of one origin's filter of one UTC day: the entries that became
/// publishable after the previous part.
#[derive(Clone, Debug)]
pub struct DayFilter {
    /// Authority id of the gateway that built the filter.
    pub origin: String,
    /// UTC day whose intervals the entries belong to.
    pub day: u32,
    /// Part number, 1..=[`MAX_FILTER_PARTS`]; parts of a day hold disjoint
    /// entries and a phone probes all of them.
    pub revision: u64,
    /// Publication time, unix seconds: observations after it are not probed.
    pub created_at: u64,
    /// The Bloom filter.
    pub filter: EntryFilter,
}

/// Unix seconds at which a filter of `day` leaves retention, like a key of that day.
pub fn filter_expires_at(day: u32) -> u64 {
    interval_start_seconds(day_start_interval(day + 1)) + u64::from(RETENTION_DAYS) * 86_400
}

impl DayFilter {
    /// Unix seconds after which the filter must no longer be stored or served.
    pub fn expires_at(&self) -> u64 {
        filter_expires_at(self.day)
    }

    /// The canonical body encoding.
    pub fn encode_body(&self) -> Vec<u8> {
        pb::FilterBody {
            version: FILTER_VERSION,
            origin: self.origin.clone(),
            day: self.day,
            revision: self.revision,
            created_at: self.created_at,
            entry_count: self.filter.entries(),
            hashes: FILTER_HASHES,
            seed: self.filter.seed().to_vec(),
            bitmap: self.filter.bitmap().to_vec(),
        }
        .encode_to_vec()
    }

    /// Decodes and validates a body: version, origin, revision, times, and the
    /// filter's size and hash parameters (SPEC.md §5.8).
    pub fn decode_body(bytes: &[u8], now_unix: u64) -> Result<DayFilter, WireError> {
        const WHAT: &str = "filter body";
        let body: pb::FilterBody = decode_limited(WHAT, bytes, MAX_SIGNED_FILTER_LEN)?;
        if body.version != FILTER_VERSION {
            return Err(WireError::UnsupportedVersion {
                what: WHAT,
                found: body.version,
                supported: FILTER_VERSION,
            });
        }
        validate_origin(&body.origin)?;
        if body.revision == 0 || body.revision > MAX_FILTER_PARTS {
            return Err(WireError::invalid(
                "revision",
                format!(
                    "part {} of a day; parts are 1..={MAX_FILTER_PARTS}",
                    body.revision
                ),
            ));
        }
        if body.created_at > now_unix.saturating_add(MAX_CLOCK_SKEW_SECONDS) {
            return Err(WireError::TimeInFuture {
                what: "filter created_at",
                at: body.created_at,
                now: now_unix,
            });
        }
        let earliest =
            interval_start_seconds(day_start_interval(body.day) + FILTER_EMBARGO_INTERVALS);
        if body.created_at < earliest {
            return Err(WireError::invalid(
                "created_at",
                format!(
                    "{} is before day {}'s first entry may be published ({earliest})",
                    body.created_at, body.day
                ),
            ));
        }
        if body.entry_count > MAX_FILTER_ENTRIES {
            return Err(WireError::TooManyKeys {
                what: "filter",
                count: usize::try_from(body.entry_count).unwrap_or(usize::MAX),
                max: MAX_FILTER_ENTRIES as usize,
            });
        }
        let filter =
            EntryFilter::from_parts(body.entry_count, body.hashes, &body.seed, &body.bitmap)?;
        let decoded = DayFilter {
            origin: body.origin,
            day: body.day,
            revision: body.revision,
            created_at: body.created_at,
            filter,
        };
        if decoded.encode_body() != bytes {
            return Err(WireError::NonCanonical(WHAT));
        }
        Ok(decoded)
    }

    /// Signs the filter with the authority's key.
    pub fn sign(&self, key: &AuthorityKey) -> Result<SignedFilter, WireError> {
        if self.origin != key.origin {
            return Err(WireError::invalid(
                "origin",
                "differs from the signing authority's",
            ));
        }
        let body = self.encode_body();
        let signature = signing::sign(&key.signing_key, FILTER_CONTEXT, &body);
        Ok(SignedFilter {
            body,
            key_id: key.key_id,
            signature,
        })
    }
}

/// A filter as it travels: the exact signed body bytes, the key id and the signature.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedFilter {
    /// Canonical encoding of the filter body.
    pub body: Vec<u8>,
    /// Trust-list key id of the signer.
    pub key_id: u32,
    /// Ed25519 signature over `"traceless/v2/filter" || 0x00 || body`.
    pub signature: [u8; SIGNATURE_LEN],
}

impl SignedFilter {
    /// Protobuf encoding of the envelope.
    pub fn encode(&self) -> Vec<u8> {
        pb::SignedFilter {
            body: self.body.clone(),
            key_id: self.key_id,
            signature: self.signature.to_vec(),
        }
        .encode_to_vec()
    }

    /// Decodes the envelope (size, shape and canonical encoding: an envelope
    /// with unknown fields is rejected; see [`SignedFilter::verify`] for the rest).
    pub fn decode(bytes: &[u8]) -> Result<SignedFilter, WireError> {
        let m: pb::SignedFilter = decode_limited("signed filter", bytes, MAX_SIGNED_FILTER_LEN)?;
        let signature = signature_bytes(&m.signature)?;
        let filter = SignedFilter {
            body: m.body,
            key_id: m.key_id,
            signature,
        };
        check_reencodes("signed filter", &filter.encode(), bytes)?;
        Ok(filter)
    }

    /// Validates the body, checks the signer against `trust` and the signature, and
    /// rejects a filter past retention at `now_unix`.
    pub fn verify(&self, trust: &TrustList, now_unix: u64) -> Result<DayFilter, WireError> {
        let filter = DayFilter::decode_body(&self.body, now_unix)?;
        let key = trust.get(&filter.origin, self.key_id)?;
        signing::verify(key, FILTER_CONTEXT, &self.body, &self.signature, "filter")?;
        let expired_at = filter.expires_at();
        if now_unix > expired_at {
            return Err(WireError::Expired {
                expired_at,
                now: now_unix,
            });
        }
        Ok(filter)
    }
}

/// Several parts of one day filter in one download (SPEC.md §6.1): the exact
/// `SignedFilter` encodings, by ascending revision, at most
/// [`MAX_LIST_LEN`](super::MAX_LIST_LEN). Each part is verified
/// on its own ([`SignedFilter::decode`], [`SignedFilter::verify`]); the envelope
/// carries no signature of its own.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FilterParts {
    /// `SignedFilter` encodings.
    pub parts: Vec<Vec<u8>>,
}

impl FilterParts {
    /// Protobuf encoding.
    pub fn encode(&self) -> Vec<u8> {
        pb::FilterParts {
            parts: self.parts.clone(),
        }
        .encode_to_vec()
    }

    /// Decodes the envelope (size, shape and canonical encoding); the parts
    /// themselves are checked by [`SignedFilter::decode`] one by one.
    pub fn decode(bytes: &[u8]) -> Result<FilterParts, WireError> {
        let parts = decode_list("filter parts", bytes, |m: pb::FilterParts| m.parts)?;
        Ok(FilterParts { parts })
    }
}

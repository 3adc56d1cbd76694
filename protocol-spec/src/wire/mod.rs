//! Wire formats (SPEC.md §5): protobuf messages generated from `proto/*.proto`,
//! and the validated domain types that decode from and encode to them.

mod batch;
mod deletion;
mod export_key;
mod filter;
mod held;
mod next_page;
mod period_batch;
mod published;
mod risk_config;
mod upload;

pub use batch::{
    Batch, BatchAttachments, BatchList, ExportAttestation, Publication, SignedBatch,
    MAX_BATCH_KEYS, MAX_CLOCK_SKEW_SECONDS, MAX_SIGNED_BATCH_LEN,
};
pub use deletion::{
    verify_deletion_log, DeletedRange, DeletionRecord, SignedDeletionRecord,
    MAX_DELETION_RECORD_LEN,
};
pub use export_key::{
    validate_region, ExportKeyCertificate, SignedExportKey, MAX_SIGNED_EXPORT_KEY_LEN,
};
pub use filter::{
    filter_expires_at, DayFilter, FilterParts, SignedFilter, FILTER_VERSION, MAX_SIGNED_FILTER_LEN,
};
pub use held::{HeldRevisions, MAX_HELD_DAYS};
pub use next_page::{names_next, next_link};
pub use period_batch::{
    DayPart, DaySection, PeriodAttachments, PeriodBatch, PrunedDay, SignedPeriodBatch, DIGEST_LEN,
    PERIOD_BATCH_VERSION,
};
pub use published::{ExportDay, PublishedBatch, PublishedKeys, VerifiedBatch};
pub use risk_config::{RiskConfig, SignedRiskConfig, MAX_PERMILLE, MAX_SIGNED_RISK_CONFIG_LEN};
pub use upload::{
    Stays, Upload, MAX_UPLOAD_CODE_LEN, MAX_UPLOAD_KEYS, MAX_UPLOAD_STAYS, UPLOAD_REQUEST_LEN,
};

/// Protocol version spoken by this implementation (the `version` fields).
pub const PROTOCOL_VERSION: u32 = 1;

/// Generated protobuf types of `proto/traceless.proto`.
#[allow(missing_docs, clippy::all)]
pub mod pb {
    include!(concat!(env!("OUT_DIR"), "/traceless.v1.rs"));
}

/// Generated protobuf types of `proto/gaen_export.proto`.
#[allow(missing_docs, clippy::all)]
pub mod gaen_pb {
    include!(concat!(env!("OUT_DIR"), "/gaen.rs"));
}

use crate::error::WireError;
use crate::signing::SIGNATURE_LEN;
use prost::Message;

/// Fails with [`WireError::NonCanonical`] unless `encoded` (the decoded message
/// encoded again) is exactly `received`: no unknown fields, no padding, so only
/// one encoding of a signed envelope exists (SPEC.md §5.1).
pub(crate) fn check_reencodes(
    what: &'static str,
    encoded: &[u8],
    received: &[u8],
) -> Result<(), WireError> {
    if encoded == received {
        Ok(())
    } else {
        Err(WireError::NonCanonical(what))
    }
}

/// Decodes `bytes` as `M` after a length check, mapping errors to [`WireError`].
pub(crate) fn decode_limited<M: Message + Default>(
    what: &'static str,
    bytes: &[u8],
    max: usize,
) -> Result<M, WireError> {
    if bytes.len() > max {
        return Err(WireError::Oversized {
            what,
            len: bytes.len(),
            max,
        });
    }
    M::decode(bytes).map_err(|e| WireError::malformed(what, e))
}

/// Largest download of several signed messages in one body ([`FilterParts`],
/// [`BatchList`]) that a node sends or a phone accepts: a node stops adding
/// messages before this (always sending at least one) and says so with a
/// [`next_link`]; the phone then asks again after the last one it got.
pub const MAX_LIST_LEN: usize = 32 << 20;

/// Decodes a download of signed messages (a protobuf `repeated bytes` at field 1,
/// [`FilterParts`] or [`BatchList`]): size, shape and canonical encoding; the
/// messages themselves are checked one by one by their own decoders.
pub(crate) fn decode_list<M: Message + Default>(
    what: &'static str,
    bytes: &[u8],
    items: impl FnOnce(M) -> Vec<Vec<u8>>,
) -> Result<Vec<Vec<u8>>, WireError> {
    let m: M = decode_limited(what, bytes, MAX_LIST_LEN)?;
    check_reencodes(what, &m.encode_to_vec(), bytes)?;
    Ok(items(m))
}

/// Checks the `version` field of a message.
pub(crate) fn check_version(what: &'static str, found: u32) -> Result<(), WireError> {
    if found == PROTOCOL_VERSION {
        Ok(())
    } else {
        Err(WireError::UnsupportedVersion {
            what,
            found,
            supported: PROTOCOL_VERSION,
        })
    }
}

/// A 64-byte Ed25519 signature field.
pub(crate) fn signature_bytes(field: &[u8]) -> Result<[u8; SIGNATURE_LEN], WireError> {
    field.try_into().map_err(|_| {
        WireError::invalid(
            "signature",
            format!("is {} bytes, not {SIGNATURE_LEN}", field.len()),
        )
    })
}

/// Checks that an authority id (an *origin*, SPEC.md §5.2) is 1..=64 characters
/// of `[a-z0-9.-]`. The one origin validator: wire decoders, trust lists and the
/// SDK all use it.
pub fn validate_origin(origin: &str) -> Result<(), WireError> {
    let ok = (1..=64).contains(&origin.len())
        && origin
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(WireError::invalid(
            "origin",
            "must be 1..=64 characters of [a-z0-9.-]",
        ))
    }
}

//! The oblivious relay protocol (SPEC.md §5.7): a relay node forwards a phone's
//! sealed upload to its origin's gateway over libp2p. The request carries the
//! origin and the sealed bytes, nothing about the phone; the answer is one of a
//! few fixed statuses, the same for real uploads and dummies.

use serde::{Deserialize, Serialize};

/// Protocol name.
pub const RELAY_PROTOCOL: &str = "/traceless/upload-relay/1.0.0";
/// Largest request read (a sealed upload plus the origin and framing).
pub const MAX_RELAY_REQUEST_LEN: u64 = 4096;
/// Sealed uploads a gateway processes at once for one relay peer; more are
/// answered `Busy` at once (a relay cannot make the gateway queue without bound).
pub const MAX_INFLIGHT_PER_PEER: usize = 32;
/// Sealed uploads one relay forwards at once, over all phones (HTTP 503 beyond).
pub const MAX_RELAY_INFLIGHT: usize = 64;

/// A relayed sealed upload.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RelayRequest {
    /// Authority id the upload is for.
    pub origin: String,
    /// The sealed upload, exactly `SEALED_UPLOAD_LEN` bytes.
    #[serde(with = "serde_bytes")]
    pub sealed: Vec<u8>,
}

pub use crate::core::answer::RelayResponse;

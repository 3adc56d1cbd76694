//! The one mapping from an upload's outcome to its answer: the relay protocol's
//! status (what a gateway tells a relay) and the HTTP status (what a phone is
//! told, directly by a gateway or through a relay). Both paths read this table,
//! so they cannot disagree.

use serde::{Deserialize, Serialize};

use crate::gateway::{UploadError, UploadReceipt};
use crate::upload_codes::CodeError;

/// The gateway's answer to a relayed upload. `Accepted` for every real upload
/// that was stored and every dummy; the others only for uploads that are broken,
/// replayed, or cannot be taken now.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RelayResponse {
    /// Stored (or, for a dummy, processed and dropped).
    Accepted,
    /// Not decryptable, malformed, or without a token.
    Malformed,
    /// Token invalid, of an unknown or expired epoch, or the gateway takes no
    /// tokens at all.
    Unauthorized,
    /// Token used before.
    Replayed,
    /// The gateway is at its limit; retry later.
    Busy,
    /// This node is not the gateway of that origin.
    WrongGateway,
    /// A day's filter is full; nothing was stored, and retrying will not help.
    Full,
}

impl RelayResponse {
    /// The HTTP status a phone gets for this answer.
    pub fn http_status(self) -> u16 {
        match self {
            RelayResponse::Accepted => 200,
            RelayResponse::Malformed => 400,
            RelayResponse::Unauthorized => 403,
            RelayResponse::Replayed => 409,
            RelayResponse::Busy => 503,
            RelayResponse::WrongGateway => 502,
            RelayResponse::Full => 507,
        }
    }

    /// The lower-case name used in JSON answers (`{"status": "accepted"}`).
    pub fn name(self) -> &'static str {
        match self {
            RelayResponse::Accepted => "accepted",
            RelayResponse::Malformed => "malformed",
            RelayResponse::Unauthorized => "unauthorized",
            RelayResponse::Replayed => "replayed",
            RelayResponse::Busy => "busy",
            RelayResponse::WrongGateway => "wronggateway",
            RelayResponse::Full => "full",
        }
    }
}

/// The table: what each refusal is answered with.
pub fn refusal(e: &UploadError) -> RelayResponse {
    match e {
        UploadError::Malformed(_)
        | UploadError::MissingToken
        | UploadError::NothingToPublish { .. }
        | UploadError::Stay(_) => RelayResponse::Malformed,
        UploadError::Code(CodeError::Malformed) => RelayResponse::Malformed,
        UploadError::Code(_)
        | UploadError::TokenEpoch(_)
        | UploadError::TokenInvalid
        | UploadError::NoTokenKeys => RelayResponse::Unauthorized,
        UploadError::TokenSpent => RelayResponse::Replayed,
        UploadError::RateLimited | UploadError::PoolFull { .. } | UploadError::Storage(_) => {
            RelayResponse::Busy
        }
        UploadError::FilterFull { .. } => RelayResponse::Full,
        UploadError::NotAGateway => RelayResponse::WrongGateway,
    }
}

/// The relay status of an upload's outcome.
pub fn relay_response(result: &Result<UploadReceipt, UploadError>) -> RelayResponse {
    match result {
        Ok(_) => RelayResponse::Accepted,
        Err(e) => refusal(e),
    }
}

/// The HTTP status of a refused upload at `POST /v1/upload`. The same as through
/// a relay, except that a relay (which accepts no uploads of its own) is "not
/// here" (404) rather than "wrong gateway" (502), and too many uploads is 429.
pub fn http_status(e: &UploadError) -> u16 {
    match e {
        UploadError::NotAGateway => 404,
        UploadError::RateLimited => 429,
        other => refusal(other).http_status(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The two paths agree on every refusal they share (the table has one row
    /// per error, so a direct upload and a relayed one get the same answer).
    #[test]
    fn direct_and_relayed_answers_agree() {
        let errors = [
            UploadError::MissingToken,
            UploadError::NoTokenKeys,
            UploadError::TokenEpoch(3),
            UploadError::TokenInvalid,
            UploadError::TokenSpent,
            UploadError::FilterFull {
                day: 1,
                stored: 2,
                adding: 3,
                max: 4,
            },
            UploadError::Code(CodeError::Malformed),
        ];
        for e in &errors {
            assert_eq!(http_status(e), refusal(e).http_status(), "{e}");
        }
        assert_eq!(
            http_status(&errors[5]),
            507,
            "a full filter is 507 both ways"
        );
        assert_eq!(refusal(&errors[5]), RelayResponse::Full);
        assert_eq!(refusal(&errors[1]), RelayResponse::Unauthorized);
        assert_eq!(http_status(&errors[1]), 403);
    }
}

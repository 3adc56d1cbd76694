//! Codes issued by an operator on the staff page: the `codes-issued` entry is
//! appended durably first, then the codes' salted hashes are stored, and only
//! then are the codes handed back to be shown (once: they are kept nowhere).
//!
//! On a gateway with token keys the codes are the token issuer's (phones redeem
//! them at `/v1/tokens`); otherwise they are the gateway's upload codes
//! (redeemed with a direct `/v1/upload`).

use traceless_protocol::log::{Event, OperatorRole};

use super::{Account, OperatorError};
use crate::core::Core;
use crate::upload_codes::{self, CodeForm};

/// Most codes one issuance makes.
pub const MAX_CODES: usize = 20;
/// How long an issued code stays valid.
pub const CODE_TTL_SECONDS: u64 = 48 * 3600;

/// Why codes were not issued.
#[derive(Debug, thiserror::Error)]
pub enum IssuanceError {
    /// The account may not issue codes.
    #[error("this needs the role issue-codes")]
    NotPermitted,
    /// Not 1..=20.
    #[error("between 1 and {MAX_CODES} codes at a time, not {0}")]
    Count(usize),
    /// This node is not a gateway.
    #[error("this node is not a gateway")]
    NotAGateway,
    /// The log entry or the codes could not be stored: none is valid.
    #[error("{0}")]
    Failed(#[from] OperatorError),
}

/// Issues `count` short codes as `account` (as stored now) at the core's now.
pub fn issue(core: &Core, account: &Account, count: usize) -> Result<Vec<String>, IssuanceError> {
    if !account.may(OperatorRole::IssueCodes) {
        return Err(IssuanceError::NotPermitted);
    }
    if !(1..=MAX_CODES).contains(&count) {
        return Err(IssuanceError::Count(count));
    }
    if core.gateway.is_none() {
        return Err(IssuanceError::NotAGateway);
    }
    let now = core.now();
    let (codes, records) = upload_codes::issue_form(count, CodeForm::Short, now + CODE_TTL_SECONDS);
    core.log
        .append(&Event::CodesIssued {
            actor: account.name.clone(),
            count: count as u64,
            at: now,
        })
        .map_err(OperatorError::from)?;
    match &core.issuer {
        Some(issuer) => issuer.insert_codes(&records),
        None => core.store.insert_codes(&records),
    }
    .map_err(OperatorError::from)?;
    Ok(codes)
}

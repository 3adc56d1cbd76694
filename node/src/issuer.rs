//! The authority's token issuer: a patient's single-use code buys up to 16
//! blinded upload tokens (RFC 9497 VOPRF, SPEC.md §5.6).
//!
//! The issuer keeps its own database, apart from the gateway's (`<data_dir>/issuer/`,
//! codes imported from `<data_dir>/issuer/upload-codes/incoming/`). It stores the
//! codes (salted hashes, removed when used) and nothing about what it evaluated:
//! the blinded elements are uniformly random and leave no trace. The gateway's
//! database holds hashes of spent token inputs and keys; no field of one joins
//! the other.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use prometheus_client::metrics::counter::Counter;

use traceless_protocol::token::TokenIssueRequest;
use traceless_protocol::{TokenKey, WireError};

use crate::storage::{CodeStore, GatewayCommit, SledStore, StorageError};
use crate::upload_codes::{self, CodeError};

/// Why an issuance was refused.
#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    /// The request does not decode or its elements are invalid.
    #[error("invalid token request: {0}")]
    Malformed(#[from] WireError),
    /// Tokens of another epoch were asked for.
    #[error("tokens are issued for epoch {current}, not {asked}")]
    WrongEpoch {
        /// Epoch asked for.
        asked: u32,
        /// Epoch issued now.
        current: u32,
    },
    /// The code was refused.
    #[error(transparent)]
    Code(CodeError),
    /// Storage failed; nothing was issued.
    #[error("storage: {0}")]
    Storage(#[from] StorageError),
}

impl From<CodeError> for IssueError {
    fn from(e: CodeError) -> Self {
        match e {
            CodeError::Storage(s) => IssueError::Storage(s),
            other => IssueError::Code(other),
        }
    }
}

/// The issuing service of one authority.
pub struct Issuer {
    dir: PathBuf,
    /// The issuer's own database, seen only as codes: it holds nothing else.
    codes: Box<dyn CodeStore>,
    key: TokenKey,
    lock: Mutex<()>,
    issued: Counter,
}

impl Issuer {
    /// Opens the issuer's own database under `dir`, issuing with `key` and
    /// counting issued tokens in `issued` (the node's metric).
    pub fn open(dir: &Path, key: TokenKey, issued: Counter) -> Result<Self, StorageError> {
        Ok(Issuer {
            dir: dir.to_owned(),
            codes: Box::new(SledStore::open(&dir.join("db"))?),
            key,
            lock: Mutex::new(()),
            issued,
        })
    }

    /// The issuer's data directory (codes for it go to `upload-codes/incoming/` below).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The epoch tokens are issued for now.
    pub fn epoch(&self) -> u32 {
        self.key.epoch
    }

    /// Tokens issued since start: all the issuer learns.
    pub fn issued(&self) -> u64 {
        self.issued.get()
    }

    /// Imports new codes and drops expired ones.
    pub fn import_codes(&self, now: u64) -> Result<upload_codes::ImportReport, CodeError> {
        let n = upload_codes::import_incoming(&self.dir, self.codes.as_ref())?;
        self.codes.purge_codes(now)?;
        Ok(n)
    }

    /// Stores codes issued on the staff page (their `codes-issued` entry is
    /// logged already).
    pub fn insert_codes(
        &self,
        records: &[([u8; 8], crate::storage::CodeRecord)],
    ) -> Result<(), StorageError> {
        self.codes.insert_codes(records)
    }

    /// Checks the code, evaluates the blinded elements, consumes the code (one
    /// flush), and returns the encoded `TokenIssueResponse`.
    pub fn issue(&self, body: &[u8], now: u64) -> Result<Vec<u8>, IssueError> {
        let request = TokenIssueRequest::decode(body)?;
        if request.epoch != self.key.epoch {
            return Err(IssueError::WrongEpoch {
                asked: request.epoch,
                current: self.key.epoch,
            });
        }
        let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let code = upload_codes::check(self.codes.as_ref(), &request.authorization, now)?;
        let response = self.key.issue(&request.blinded)?;
        self.codes.commit_gateway(&GatewayCommit {
            consume_code: Some(code),
            ..Default::default()
        })?;
        self.issued.inc_by(request.blinded.len() as u64);
        Ok(response.encode())
    }
}

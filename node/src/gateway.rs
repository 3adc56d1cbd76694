//! The gateway role: accepts uploads for one authority, holds embargoed keys, and
//! signs accepted keys into batches.

use std::collections::BTreeMap;
use std::sync::Mutex;

use sha2::{Digest, Sha256};
use traceless_protocol::{
    AuthorityKey, Batch, DiagnosisKey, GatewaySealKey, TokenKey, Upload, WireError,
};

use crate::embargo;
use crate::storage::{BatchMeta, GatewayCommit, StorageError, Store, StoredBatch};
use crate::upload_codes::{self, CodeError, RateLimiter};

/// Why an upload was refused; each says what the client did wrong.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    /// This node is a relay.
    #[error("this node is a relay and accepts no uploads; send uploads to a gateway")]
    NotAGateway,
    /// Too many uploads across all clients right now.
    #[error("too many uploads right now; retry later")]
    RateLimited,
    /// The body is not a valid upload request.
    #[error("invalid upload request: {0}")]
    Malformed(#[from] WireError),
    /// The upload code was refused.
    #[error(transparent)]
    Code(CodeError),
    /// Storage failed (nothing was accepted).
    #[error("storage: {0}")]
    Storage(#[from] StorageError),
    /// This gateway has no token keys, so it accepts no sealed uploads.
    #[error("this gateway does not accept anonymous (sealed) uploads")]
    NoTokenKeys,
    /// A sealed upload without a token inside.
    #[error("a sealed upload must carry an upload token")]
    MissingToken,
    /// The token's epoch is not (or no longer) accepted.
    #[error("upload token of epoch {0} is not accepted (expired or unknown key)")]
    TokenEpoch(u32),
    /// The token does not verify under its epoch's key.
    #[error("upload token is not valid")]
    TokenInvalid,
    /// The token was redeemed before.
    #[error("upload token was already used")]
    TokenSpent,
}

impl From<CodeError> for UploadError {
    fn from(e: CodeError) -> Self {
        match e {
            CodeError::Storage(s) => UploadError::Storage(s),
            other => UploadError::Code(other),
        }
    }
}

/// What an accepted upload became.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct UploadReceipt {
    /// Batches published now.
    pub published: Vec<BatchMeta>,
    /// Keys held back by the embargo.
    pub embargoed: usize,
    /// Keys dropped because they were already past retention.
    pub expired: usize,
}

/// A gateway: the authority key, the upload rate limit, and for anonymous
/// uploads the HPKE key and the token keys by epoch.
pub struct Gateway {
    key: AuthorityKey,
    limiter: RateLimiter,
    seal_key: GatewaySealKey,
    token_keys: BTreeMap<u32, TokenKey>,
    // Serialises sequence allocation and token redemption.
    lock: Mutex<()>,
}

impl Gateway {
    /// A gateway signing with `key`, accepting `uploads_per_minute`, opening
    /// sealed uploads with `seal_key` and redeeming tokens of `token_keys`.
    pub fn new(
        key: AuthorityKey,
        uploads_per_minute: u32,
        now: u64,
        seal_key: GatewaySealKey,
        token_keys: Vec<TokenKey>,
    ) -> Self {
        Gateway {
            key,
            limiter: RateLimiter::new(uploads_per_minute, now),
            seal_key,
            token_keys: token_keys.into_iter().map(|k| (k.epoch, k)).collect(),
            lock: Mutex::new(()),
        }
    }

    /// The public key phones seal uploads to.
    pub fn seal_public_key(&self) -> [u8; 32] {
        self.seal_key.public_bytes()
    }

    /// The token keys by epoch.
    pub fn token_keys(&self) -> impl Iterator<Item = &TokenKey> {
        self.token_keys.values()
    }

    /// The authority id.
    pub fn origin(&self) -> &str {
        &self.key.origin
    }

    /// Signs `keys` (all of one day each group) into new batches.
    fn seal(
        &self,
        store: &dyn Store,
        keys: Vec<DiagnosisKey>,
        now: u64,
        commit: &mut GatewayCommit,
    ) -> Result<(), UploadError> {
        let mut by_day: BTreeMap<u32, Vec<DiagnosisKey>> = BTreeMap::new();
        for k in keys {
            by_day
                .entry(traceless_protocol::day_of_interval(k.rolling_start))
                .or_default()
                .push(k);
        }
        let mut seq = store.next_sequence(&self.key.origin)?;
        for (day, keys) in by_day {
            let batch = Batch {
                origin: self.key.origin.clone(),
                sequence: seq,
                created_at: now,
                day,
                keys,
            };
            let signed = batch.clone().sign(&self.key)?;
            let bytes = signed.encode();
            let mut batch = batch;
            batch.canonicalize();
            commit.batches.push(StoredBatch {
                meta: BatchMeta::of(&batch, &bytes),
                bytes,
            });
            seq += 1;
        }
        commit.next_sequence = Some((self.key.origin.clone(), seq));
        Ok(())
    }

    /// Accepts an upload: rate limit, decoding, the single-use code, then the keys
    /// are either sealed into batches at once or held by the embargo. The code is
    /// consumed in the same durable write that stores the keys.
    pub fn accept(
        &self,
        store: &dyn Store,
        body: &[u8],
        now: u64,
    ) -> Result<UploadReceipt, UploadError> {
        if !self.limiter.try_take(now) {
            return Err(UploadError::RateLimited);
        }
        let upload = Upload::decode(body, now)?;
        if upload.dummy {
            return Ok(UploadReceipt::default());
        }
        let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let code = upload_codes::check(store, &upload.upload_code, now)?;
        let mut commit = GatewayCommit {
            consume_code: Some(code),
            ..Default::default()
        };
        self.stage_keys(store, upload.keys, now, &mut commit)
    }

    /// Accepts a sealed upload that a relay forwarded: opens it, redeems its
    /// token (once), then stages its keys like [`Gateway::accept`]. A dummy gets
    /// the same work — opening, the VOPRF evaluation, the spent check, marking
    /// its token spent with a flush — and is then dropped, so neither the answer
    /// nor its timing tells it apart (the caller pads the timing too).
    pub fn accept_sealed(
        &self,
        store: &dyn Store,
        sealed: &[u8],
        now: u64,
    ) -> Result<UploadReceipt, UploadError> {
        if !self.limiter.try_take(now) {
            return Err(UploadError::RateLimited);
        }
        let newest = self
            .token_keys
            .values()
            .next_back()
            .ok_or(UploadError::NoTokenKeys)?;
        let upload = Upload::decode(&self.seal_key.open(sealed)?, now)?;
        let token = upload.token.ok_or(UploadError::MissingToken)?;
        let key = match self.token_keys.get(&token.epoch) {
            Some(k) => k,
            // A dummy made before its phone had tokens still costs an evaluation.
            None if upload.dummy => newest,
            None => return Err(UploadError::TokenEpoch(token.epoch)),
        };
        let valid = key.verify(&token);
        let id: [u8; 32] = Sha256::digest(token.input).into();
        let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        if store.token_spent(token.epoch, &id)? {
            return Err(UploadError::TokenSpent);
        }
        if !valid && !upload.dummy {
            return Err(UploadError::TokenInvalid);
        }
        let mut commit = GatewayCommit {
            spend_token: Some((token.epoch, id)),
            ..Default::default()
        };
        let keys = if upload.dummy {
            Vec::new()
        } else {
            upload.keys
        };
        self.stage_keys(store, keys, now, &mut commit)
    }

    /// Publishes, holds (embargo) or drops each key, and commits with one flush.
    fn stage_keys(
        &self,
        store: &dyn Store,
        keys: Vec<DiagnosisKey>,
        now: u64,
        commit: &mut GatewayCommit,
    ) -> Result<UploadReceipt, UploadError> {
        let mut receipt = UploadReceipt::default();
        let mut publish_now = Vec::new();
        for key in keys {
            if key.expires_at() <= now {
                receipt.expired += 1;
            } else if embargo::is_embargoed(&key, now) {
                commit.add_pending.push((embargo::release_at(&key), key));
                receipt.embargoed += 1;
            } else {
                publish_now.push(key);
            }
        }
        if !publish_now.is_empty() {
            self.seal(store, publish_now, now, commit)?;
        }
        store.commit_gateway(commit)?;
        receipt.published = std::mem::take(&mut commit.batches)
            .into_iter()
            .map(|b| b.meta)
            .collect();
        Ok(receipt)
    }

    /// Seals embargoed keys whose embargo ended by `now` into batches.
    pub fn release_pending(
        &self,
        store: &dyn Store,
        now: u64,
    ) -> Result<Vec<BatchMeta>, UploadError> {
        let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let due = store.pending_due(now)?;
        if due.is_empty() {
            return Ok(Vec::new());
        }
        let mut commit = GatewayCommit {
            remove_pending: due.iter().map(|p| p.id.clone()).collect(),
            ..Default::default()
        };
        let keys: Vec<_> = due
            .into_iter()
            .map(|p| p.key)
            .filter(|k| k.expires_at() > now)
            .collect();
        if !keys.is_empty() {
            self.seal(store, keys, now, &mut commit)?;
        }
        store.commit_gateway(&commit)?;
        Ok(commit.batches.into_iter().map(|b| b.meta).collect())
    }
}

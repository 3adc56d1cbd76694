//! The gateway role: accepts uploads for one authority into its durable pool,
//! and at each period boundary signs the pool's due keys, shuffled together and
//! padded, into batches (SPEC.md §6.4); for filter-form uploads (SPEC.md §5.8) it
//! stores only the hashed entries of the chosen intervals and folds the
//! publishable ones into signed day filters.
//!
//! A filter-form upload's TEKs live only in memory while their entries are
//! derived: they are never written, and nothing on this path logs them (`Tek`'s
//! `Debug` is redacted, and errors name intervals and counts only).

use std::collections::BTreeMap;
use std::sync::Mutex;

use rand::rngs::OsRng;
use rand_core::RngCore;
use sha2::{Digest, Sha256};
use traceless_protocol::filter::{
    entry_publishable, filter_entries, FILTER_SEED_LEN, MAX_FILTER_ENTRIES, MAX_FILTER_PARTS,
};
use traceless_protocol::venue::{
    self_reported_master, trace_stays, MasterPublic, MasterSecret, StayReport, VenueError,
};
use traceless_protocol::wire::{filter_expires_at, Stays, PERIOD_BATCH_VERSION};
use traceless_protocol::{
    day_of_interval, AuthorityKey, Batch, DayFilter, DiagnosisKey, EntryFilter, GatewaySealKey,
    IntervalMask, TokenKey, Upload, WireError,
};

use crate::config::PublicationConfig;
use crate::core::publication::{self, Schedule, Shapes};
use crate::export_keys::GatewayPublication;
use crate::storage::warnings::WarningFiles;
use crate::storage::{
    BatchMeta, FilterMeta, GatewayCommit, PublishedPeriod, PutOutcome, StorageError, Store,
    StoredBatch, StoredEntry, StoredFilter,
};
use crate::upload_codes::{self, CodeError, RateLimiter};

/// The message of warnings from self-reported stays: no tracer wrote it.
pub const SELF_REPORTED_MESSAGE: &str =
    "Someone who tested positive reported being at this place while you were there.";

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
    /// Every key of the upload had already expired (or, in filter form, every
    /// chosen interval lies past retention): nothing would be published, so the
    /// upload is refused and its code or token is not spent.
    #[error(
        "nothing to publish: all {keys} keys of the upload have expired; the code was not used"
    )]
    NothingToPublish {
        /// Keys in the upload.
        keys: usize,
    },
    /// The publication pool is full until the next period is published; nothing
    /// was stored and the code or token was not spent.
    #[error("the publication pool holds {held} keys, this upload adds {adding}, and it holds at most {max}; retry after the next publication")]
    PoolFull {
        /// Keys in the pool.
        held: u64,
        /// Keys this upload would add.
        adding: u64,
        /// `publication.pool_max_keys`.
        max: u64,
    },
    /// A self-reported stay breaks a rule of SPEC.md §12.11 (or its report does
    /// not open with this gateway's key): nothing was queued and the token was
    /// not spent.
    #[error("self-reported stays refused: {0}")]
    Stay(#[from] VenueError),
    /// A filter-form upload would push a day's filter past its size limit.
    #[error("day {day}'s filter is full: it holds {stored} entries, this upload adds {adding}, and a filter holds at most {max}; nothing was stored")]
    FilterFull {
        /// UTC day.
        day: u32,
        /// Entries stored for the day.
        stored: u64,
        /// New entries this upload would add.
        adding: u64,
        /// [`MAX_FILTER_ENTRIES`].
        max: u64,
    },
}

/// Why a filter rebuild failed (no filter of that run was published).
#[derive(Debug, thiserror::Error)]
pub enum RebuildError {
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The filter could not be built or signed.
    #[error("building filter: {0}")]
    Build(#[from] WireError),
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
    /// Keys added to the pool (published at a later period boundary).
    pub pooled: usize,
    /// Of those, keys held past the next boundary by the embargo.
    pub embargoed: usize,
    /// Keys dropped because they were already past retention.
    pub expired: usize,
    /// Filter entries derived from a filter-form upload (its keys are not stored).
    pub filter_entries: usize,
    /// Venue warnings queued from self-reported stays (SPEC.md §12.11).
    pub stay_warnings: usize,
}

impl UploadReceipt {
    /// Whether this is a dummy's receipt (nothing pooled or derived).
    pub fn is_dummy(&self) -> bool {
        self.pooled == 0 && self.expired == 0 && self.filter_entries == 0 && self.stay_warnings == 0
    }
}

/// An upload whose code and token are wiped when it goes out of scope, on
/// every path out of the gateway (refusals included).
struct Wiped(Upload);

impl std::ops::Deref for Wiped {
    type Target = Upload;
    fn deref(&self) -> &Upload {
        &self.0
    }
}

impl std::ops::DerefMut for Wiped {
    fn deref_mut(&mut self) -> &mut Upload {
        &mut self.0
    }
}

impl Drop for Wiped {
    fn drop(&mut self) {
        self.0.wipe_authorization();
    }
}

/// What one period's publication did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PeriodReport {
    /// The boundary published (`created_at` of its batches).
    pub boundary: u64,
    /// Periods this publication covers (more than 1 after the clock jumped
    /// forward or the node was down: they are published together, once).
    pub periods: u64,
    /// The batches signed.
    pub batches: Vec<BatchMeta>,
    /// Real keys published.
    pub real_keys: usize,
    /// Padding keys published.
    pub padding_keys: usize,
    /// Pooled keys dropped because they expired before their period.
    pub expired: usize,
}

/// A gateway: the authority key, the upload rate limit, the publication
/// schedule, and for anonymous uploads the HPKE key and the token keys by epoch.
pub struct Gateway {
    key: AuthorityKey,
    limiter: RateLimiter,
    seal_key: GatewaySealKey,
    // The venue key of self-reported codes, derived from `seal_key` (§12.11).
    venue_master: MasterSecret,
    token_keys: BTreeMap<u32, TokenKey>,
    schedule_config: PublicationConfig,
    // Serialises the pool: uploads, token redemption, period publication; holds
    // the pool's size once read, and the shapes padding imitates.
    lock: Mutex<PoolState>,
    // Serialises filter rebuilds (the job and direct callers), apart from uploads.
    rebuild_lock: Mutex<()>,
    // Serialises venue-warning publication (the job and direct callers): two
    // at once would both read the queue and publish its traces twice.
    pub(crate) warning_lock: Mutex<()>,
    // Signed into every batch besides the keys (export key, risk configuration).
    publication: GatewayPublication,
}

/// What the pool lock guards besides the store.
#[derive(Debug, Default)]
struct PoolState {
    /// Keys in the pool, once read from the store.
    size: Option<u64>,
    /// Shapes of recently published real keys, for padding.
    shapes: Shapes,
}

impl PoolState {
    fn size(&mut self, store: &dyn Store) -> Result<u64, StorageError> {
        match self.size {
            Some(n) => Ok(n),
            None => {
                let n = store.pending_count()?;
                self.size = Some(n);
                Ok(n)
            }
        }
    }
}

impl Gateway {
    /// A gateway signing with `key`, accepting `uploads_per_minute`, publishing
    /// on the `schedule` of periods, opening sealed uploads with `seal_key` and
    /// redeeming tokens of `token_keys`.
    pub fn new(
        key: AuthorityKey,
        uploads_per_minute: u32,
        now: u64,
        schedule: PublicationConfig,
        seal_key: GatewaySealKey,
        token_keys: Vec<TokenKey>,
    ) -> Self {
        Gateway {
            key,
            limiter: RateLimiter::new(uploads_per_minute, now),
            venue_master: self_reported_master(&seal_key),
            seal_key,
            token_keys: token_keys.into_iter().map(|k| (k.epoch, k)).collect(),
            schedule_config: schedule,
            lock: Mutex::new(PoolState::default()),
            rebuild_lock: Mutex::new(()),
            warning_lock: Mutex::new(()),
            publication: GatewayPublication::default(),
        }
    }

    /// Signs `publication` (the authority's export key and risk configuration)
    /// into every batch from now on (SPEC.md §6.2, §7.3).
    pub fn with_publication(mut self, publication: GatewayPublication) -> Self {
        self.publication = publication;
        self
    }

    /// What the gateway signs into its batches besides the keys.
    pub fn publication(&self) -> &GatewayPublication {
        &self.publication
    }

    /// The public key phones seal uploads to.
    pub fn seal_public_key(&self) -> [u8; 32] {
        self.seal_key.public_bytes()
    }

    /// The `mpk` of this gateway's self-reported codes (SPEC.md §12.11).
    pub fn venue_public_key(&self) -> MasterPublic {
        self.venue_master.public()
    }

    /// The token keys by epoch.
    pub fn token_keys(&self) -> impl Iterator<Item = &TokenKey> {
        self.token_keys.values()
    }

    /// The authority's binding of this gateway's transparency log (SPEC.md §8.3).
    pub fn bind_log(&self, log_origin: &str) -> crate::federation::witnessing::Binding {
        crate::federation::witnessing::Binding::sign(&self.key, log_origin)
    }

    /// This gateway's seal key, which is the venue authority key that
    /// completes owners' pre-traces (SPEC.md §12.5, §12.10).
    pub(crate) fn venue_authority_key(&self) -> &GatewaySealKey {
        &self.seal_key
    }

    /// Signs a warning batch with the authority key.
    pub fn sign_warnings(
        &self,
        batch: &traceless_protocol::venue::WarningBatch,
    ) -> Result<traceless_protocol::venue::SignedWarningBatch, traceless_protocol::venue::VenueError>
    {
        batch.sign(&self.key)
    }

    /// The authority id.
    pub fn origin(&self) -> &str {
        &self.key.origin
    }

    /// The publication schedule.
    pub fn schedule(&self) -> Schedule {
        Schedule::new(self.schedule_config.period_seconds)
    }

    /// Accepts an upload: rate limit, decoding, the single-use code, then the keys
    /// join the pool. The code is consumed in the same durable write that stores
    /// the keys.
    pub fn accept(
        &self,
        store: &dyn Store,
        queue: &WarningFiles,
        body: &[u8],
        now: u64,
    ) -> Result<UploadReceipt, UploadError> {
        let mut upload = Wiped(Upload::decode(body, now)?);
        if upload.dummy {
            return self.admit_dummy(now);
        }
        let mut pool = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let code = upload_codes::check(store, &upload.upload_code, now)?;
        self.admit(now)?;
        let mut commit = GatewayCommit {
            consume_code: Some(code),
            ..Default::default()
        };
        self.stage(store, queue, &mut pool, &mut upload, now, &mut commit)
    }

    /// Accepts a sealed upload that a relay forwarded: opens it, redeems its
    /// token (once), then stages its keys like [`Gateway::accept`]. A dummy gets
    /// the same work — opening, the VOPRF evaluation, the spent check, marking
    /// its token spent with a flush — and is then dropped, so neither the answer
    /// nor its timing tells it apart (the caller pads the timing too).
    pub fn accept_sealed(
        &self,
        store: &dyn Store,
        queue: &WarningFiles,
        sealed: &[u8],
        now: u64,
    ) -> Result<UploadReceipt, UploadError> {
        let newest = self
            .token_keys
            .values()
            .next_back()
            .ok_or(UploadError::NoTokenKeys)?;
        // The opened upload (TEKs, token) is wiped when dropped.
        let opened = zeroize::Zeroizing::new(self.seal_key.open(sealed)?);
        let mut upload = Wiped(Upload::decode(&opened, now)?);
        let token = upload.token.ok_or(UploadError::MissingToken)?;
        let key = match self.token_keys.get(&token.epoch) {
            Some(k) => k,
            // A dummy made before its phone had tokens still costs an evaluation.
            None if upload.dummy => newest,
            None => return Err(UploadError::TokenEpoch(token.epoch)),
        };
        let valid = key.verify(&token);
        let id: [u8; 32] = Sha256::digest(token.input).into();
        let mut pool = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        if store.token_spent(token.epoch, &id)? {
            return Err(UploadError::TokenSpent);
        }
        if !valid && !upload.dummy {
            return Err(UploadError::TokenInvalid);
        }
        if upload.dummy {
            self.admit_dummy(now)?;
        } else {
            self.admit(now)?;
        }
        let mut commit = GatewayCommit {
            spend_token: Some((token.epoch, id)),
            ..Default::default()
        };
        if upload.dummy {
            // Cover traffic: its work is done, nothing of it is kept.
            upload.keys.clear();
        }
        self.stage(store, queue, &mut pool, &mut upload, now, &mut commit)
    }

    /// Charges the upload bucket for an authenticated real upload. Only uploads
    /// that passed their code or token check are charged, so junk POSTs (which
    /// fail to open or decode) and stolen-looking guesses cannot drain it.
    fn admit(&self, now: u64) -> Result<(), UploadError> {
        if self.limiter.try_take(now) {
            Ok(())
        } else {
            Err(UploadError::RateLimited)
        }
    }

    /// A dummy costs the bucket nothing (cover traffic must not crowd out real
    /// uploads), but is refused when the bucket is empty, exactly like a real
    /// upload then, so that the answer never tells the two apart.
    fn admit_dummy(&self, now: u64) -> Result<UploadReceipt, UploadError> {
        if self.limiter.has_token(now) {
            Ok(UploadReceipt::default())
        } else {
            Err(UploadError::RateLimited)
        }
    }

    /// The one path both authorizations take: a key-form upload's keys join the
    /// pool, a filter-form upload's chosen intervals become entries, an upload of
    /// self-reported stays queues their warnings.
    fn stage(
        &self,
        store: &dyn Store,
        queue: &WarningFiles,
        pool: &mut PoolState,
        upload: &mut Upload,
        now: u64,
        commit: &mut GatewayCommit,
    ) -> Result<UploadReceipt, UploadError> {
        if !upload.stays.reports.is_empty() {
            return self.stage_stays(store, queue, &upload.stays, now, commit);
        }
        let keys = std::mem::take(&mut upload.keys);
        if upload.filter_intervals.is_empty() || keys.is_empty() {
            self.stage_keys(store, pool, keys, now, commit)
        } else {
            self.stage_entries(store, keys, &upload.filter_intervals, now, commit)
        }
    }

    /// Opens an upload's stay reports, checks them together (SPEC.md §12.11) and
    /// queues their warnings for the next boundary, durably, before the code or
    /// token is spent: a crash in between leaves a retry that queues them again
    /// (phones keep one match per visit and window), never a spent token whose
    /// stays are lost. Any refusal queues nothing and spends nothing.
    fn stage_stays(
        &self,
        store: &dyn Store,
        queue: &WarningFiles,
        stays: &Stays,
        now: u64,
        commit: &mut GatewayCommit,
    ) -> Result<UploadReceipt, UploadError> {
        let reports = stays
            .reports
            .iter()
            .map(|r| StayReport::open(r, &self.seal_key))
            .collect::<Result<Vec<_>, _>>()?;
        let warnings = trace_stays(
            &self.venue_master,
            &reports,
            stays.onset_day,
            SELF_REPORTED_MESSAGE,
            now,
        )?;
        let stay_warnings = warnings.len();
        queue.enqueue(warnings, now)?;
        store.commit_gateway(commit)?;
        Ok(UploadReceipt {
            stay_warnings,
            ..Default::default()
        })
    }

    /// Derives the entries of every chosen interval and commits them with the
    /// code or token spend, in one flush; the keys are dropped here. `Upload::decode`
    /// validated the masks (exactly one per key, inside the key, ended). A key already past
    /// retention adds nothing. Refuses the whole upload if a day would exceed
    /// [`MAX_FILTER_ENTRIES`].
    fn stage_entries(
        &self,
        store: &dyn Store,
        keys: Vec<DiagnosisKey>,
        masks: &[IntervalMask],
        now: u64,
        commit: &mut GatewayCommit,
    ) -> Result<UploadReceipt, UploadError> {
        let mut receipt = UploadReceipt::default();
        for (key, mask) in keys.iter().zip(masks) {
            if key.expires_at() <= now {
                receipt.expired += 1;
                continue;
            }
            // An entry of a day already past retention would be deleted unpublished.
            commit.filter_entries.extend(
                filter_entries(key, mask)
                    .into_iter()
                    .map(|(interval, entry)| StoredEntry {
                        day: day_of_interval(interval),
                        interval,
                        entry,
                    })
                    .filter(|e| filter_expires_at(e.day) > now),
            );
        }
        if commit.filter_entries.is_empty() {
            return Err(UploadError::NothingToPublish { keys: keys.len() });
        }
        drop(keys);
        // Sorted, so that nothing downstream sees the upload's key order.
        commit.filter_entries.sort_unstable();
        commit.filter_entries.dedup();
        let mut by_day: BTreeMap<u32, u64> = BTreeMap::new();
        for e in &commit.filter_entries {
            if !store.has_filter_entry(e)? {
                *by_day.entry(e.day).or_default() += 1;
            }
        }
        let stored: BTreeMap<u32, u64> = store.filter_entry_days()?.into_iter().collect();
        for (day, adding) in by_day {
            let have = stored.get(&day).copied().unwrap_or(0);
            if have + adding > MAX_FILTER_ENTRIES {
                return Err(UploadError::FilterFull {
                    day,
                    stored: have,
                    adding,
                    max: MAX_FILTER_ENTRIES,
                });
            }
        }
        store.commit_gateway(commit)?;
        receipt.filter_entries = commit.filter_entries.len();
        Ok(receipt)
    }

    /// Folds each day's entries that are publishable at `now` and in no part yet
    /// into the day's next part (SPEC.md §5.8): a fresh random seed, `revision`
    /// one above the last part, `created_at = now` (a period boundary), signed
    /// and stored with its entries marked as folded, in one write. Returns the
    /// new parts (to gossip). A day at [`MAX_FILTER_PARTS`] gets no more parts
    /// (not reached at hourly boundaries; counted and logged if it is).
    pub fn rebuild_filters(
        &self,
        store: &dyn Store,
        now: u64,
    ) -> Result<Vec<StoredFilter>, RebuildError> {
        let _guard = self.rebuild_lock.lock().unwrap_or_else(|e| e.into_inner());
        let mut built = Vec::new();
        for (day, _) in store.filter_entry_days()? {
            if filter_expires_at(day) <= now {
                continue; // retention's now
            }
            let new: Vec<StoredEntry> = store
                .unfolded_entries_of_day(day)?
                .into_iter()
                .filter(|e| entry_publishable(e.interval, now))
                .collect();
            if new.is_empty() {
                continue;
            }
            let revision = store
                .filter_parts(&self.key.origin, day)?
                .last()
                .map_or(1, |p| p.revision + 1);
            if revision > MAX_FILTER_PARTS {
                tracing::error!(
                    day,
                    entries = new.len(),
                    "day filter has {MAX_FILTER_PARTS} parts: entries left unpublished"
                );
                continue;
            }
            let mut seed = [0u8; FILTER_SEED_LEN];
            OsRng.fill_bytes(&mut seed);
            let entries: Vec<_> = new.iter().map(|e| e.entry).collect();
            let filter = DayFilter {
                origin: self.key.origin.clone(),
                day,
                revision,
                created_at: now,
                filter: EntryFilter::build(&entries, seed)?,
            };
            let bytes = filter.sign(&self.key)?.encode();
            let stored = StoredFilter {
                meta: FilterMeta::of(&filter, &bytes),
                bytes,
            };
            if store.put_built_filter(&stored, &new)? == PutOutcome::New {
                built.push(stored);
            }
        }
        Ok(built)
    }

    /// Pools each key (with the time from which it may be published: now, or
    /// the end of its embargo) or drops it as expired, and commits with one
    /// flush. Refuses the whole upload if the pool would pass its bound.
    fn stage_keys(
        &self,
        store: &dyn Store,
        pool: &mut PoolState,
        keys: Vec<DiagnosisKey>,
        now: u64,
        commit: &mut GatewayCommit,
    ) -> Result<UploadReceipt, UploadError> {
        let mut receipt = UploadReceipt::default();
        let uploaded = keys.len();
        let next = self.schedule().publication_of(now);
        for key in keys {
            if key.expires_at() <= now {
                receipt.expired += 1;
                continue;
            }
            let eligible = publication::eligible_at(&key, now);
            if self.schedule().publication_of(eligible) > next {
                receipt.embargoed += 1;
            }
            commit.add_pending.push((eligible, key));
        }
        // A real upload of nothing but expired keys is refused before its code or
        // token is spent (a dummy's empty key list passes: it spends its token).
        if uploaded > 0 && receipt.expired == uploaded {
            return Err(UploadError::NothingToPublish { keys: uploaded });
        }
        let held = pool.size(store)?;
        let adding = commit.add_pending.len() as u64;
        let max = self.schedule_config.pool_max_keys;
        if held + adding > max {
            return Err(UploadError::PoolFull { held, adding, max });
        }
        store.commit_gateway(commit)?;
        pool.size = Some(held + adding);
        receipt.pooled = commit.add_pending.len();
        Ok(receipt)
    }

    /// Publishes the period that ends at `boundary` (SPEC.md §6.4), once: every
    /// pooled key that may be published before `boundary`, shuffled together with
    /// padding up to k, signed into batches created at `boundary`, committed with
    /// the removal of those keys from the pool and the new period mark in one
    /// flush. `None` if that period (or a later one) is published already; the
    /// gateway's first call only marks the current period, since nothing can be
    /// pooled before a gateway runs. Missed periods are published together.
    pub fn publish_period(
        &self,
        store: &dyn Store,
        boundary: u64,
    ) -> Result<Option<PeriodReport>, UploadError> {
        let mut pool = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let last = match store.published_period()? {
            Some(last) if last.boundary >= boundary => return Ok(None),
            Some(last) => last,
            None => {
                store.commit_gateway(&GatewayCommit {
                    published_period: Some(PublishedPeriod {
                        boundary,
                        padding_keys: 0,
                    }),
                    ..Default::default()
                })?;
                return Ok(None);
            }
        };
        let due = store.pending_due(boundary.saturating_sub(1))?;
        // Keys pooled together share a pool file: each id is removed once.
        let mut remove_pending: Vec<Vec<u8>> = due.iter().map(|p| p.id.clone()).collect();
        remove_pending.dedup();
        let mut commit = GatewayCommit {
            remove_pending,
            ..Default::default()
        };
        let removed = due.len() as u64;
        let (real, expired): (Vec<_>, Vec<_>) = due
            .into_iter()
            .map(|p| p.key)
            .partition(|k| k.expires_at() > boundary);
        let mut rng = OsRng;
        let padding =
            publication::padding_count(real.len(), self.schedule_config.min_keys, &mut rng);
        pool.shapes.learn(&real, boundary);
        let mut keys = pool.shapes.padding(padding, boundary, &mut rng);
        let real_keys = real.len();
        keys.extend(real);
        let first = store.next_sequence(&self.key.origin)?;
        let batches =
            publication::period_batches(&self.key.origin, keys, boundary, first, &mut rng);
        for batch in batches {
            let signed = batch.sign_with(&self.key, self.publication.as_publication())?;
            let days: Vec<Batch> = batch.days.iter().map(|d| d.as_batch(&batch)).collect();
            commit.batches.push(StoredBatch {
                meta: BatchMeta::of(PERIOD_BATCH_VERSION, &days, signed.id()),
                bytes: signed.encode(),
            });
        }
        commit.next_sequence = Some((self.key.origin.clone(), first + commit.batches.len() as u64));
        commit.published_period = Some(PublishedPeriod {
            boundary,
            padding_keys: last.padding_keys + padding as u64,
        });
        store.commit_gateway(&commit)?;
        pool.size = pool.size.map(|n| n.saturating_sub(removed));
        Ok(Some(PeriodReport {
            boundary,
            periods: (boundary - last.boundary) / self.schedule().period(),
            batches: commit.batches.into_iter().map(|b| b.meta).collect(),
            real_keys,
            padding_keys: padding,
            expired: expired.len(),
        }))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::storage::{CodeStore, GatewayStore, SledStore};
    use traceless_protocol::{day_start_interval, Tek};

    /// A day whose filter would pass [`MAX_FILTER_ENTRIES`] refuses the whole
    /// upload: nothing stored, the code not consumed, and an error that says why.
    #[test]
    fn an_upload_that_would_overfill_a_days_filter_is_refused_whole() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(&dir.path().join("db")).unwrap();
        let now = 1_700_000_000;
        let (codes, records) = crate::upload_codes::issue(1, now + 86_400);
        store.insert_codes(&records).unwrap();
        let gateway = Gateway::new(
            AuthorityKey::generate("test.health", 1),
            100,
            now,
            PublicationConfig::default(),
            GatewaySealKey::generate(),
            Vec::new(),
        );
        let (full, other) = (19_673, 19_672);
        store.set_entry_count_for_test(full, MAX_FILTER_ENTRIES - 1);
        let key = |day| DiagnosisKey {
            tek: Tek::generate(),
            rolling_start: day_start_interval(day),
            rolling_period: 144,
            transmission_risk: 4,
            days_since_onset: 0,
        };
        let mut two = IntervalMask::default();
        two.set(1, true);
        two.set(2, true);
        let body = |keys: Vec<DiagnosisKey>, masks: Vec<IntervalMask>| {
            Upload {
                upload_code: codes[0].as_bytes().to_vec(),
                token: None,
                keys,
                dummy: false,
                filter_intervals: masks,
                stays: Default::default(),
            }
            .encode_padded()
            .unwrap()
        };
        let queue = WarningFiles::at(dir.path());
        let err = gateway
            .accept(
                &store,
                &queue,
                &body(vec![key(other), key(full)], vec![two, two]),
                now,
            )
            .unwrap_err();
        assert!(
            matches!(err, UploadError::FilterFull { day, stored, adding: 2, .. }
            if day == full && stored == MAX_FILTER_ENTRIES - 1)
        );
        assert!(err.to_string().contains("filter is full"), "{err}");
        assert_eq!(
            store.filter_entry_days().unwrap(),
            vec![(full, MAX_FILTER_ENTRIES - 1)],
            "nothing stored, not even the other day's entries"
        );
        // One more entry still fits, and the code was not consumed.
        let mut one = IntervalMask::default();
        one.set(1, true);
        let receipt = gateway
            .accept(&store, &queue, &body(vec![key(full)], vec![one]), now)
            .unwrap();
        assert_eq!(receipt.filter_entries, 1);
        assert_eq!(
            store.filter_entry_days().unwrap(),
            vec![(full, MAX_FILTER_ENTRIES)]
        );
    }
}

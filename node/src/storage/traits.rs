//! The storage interfaces, split by who needs them: serving and ingesting
//! batches, day filters, the gateway's uploads and embargo, upload codes (also
//! the issuer's), and retention with its log. [`Store`] is all of them, for the
//! parts that own a whole database.

use traceless_protocol::wire::SignedDeletionRecord;

use super::records::{
    BatchMeta, CodeRecord, Expired, FilterMeta, GatewayCommit, PendingKey, PublishedPeriod,
    PutOutcome, StoredBatch, StoredEntry, StoredFilter,
};
use super::summary::StoreSummary;
use super::StorageError;

/// Batches: ingest, serving, and the release of held ones.
pub trait BatchStore {
    /// Stores a verified batch durably (or reports it as a duplicate or conflict).
    fn put_batch(&self, batch: &StoredBatch) -> Result<PutOutcome, StorageError>;
    /// Stores many verified batches with one flush (bulk ingest).
    fn put_batches(&self, batches: &[StoredBatch]) -> Result<Vec<PutOutcome>, StorageError>;
    /// Stores a verified batch that is already being announced, so it is not held
    /// for the release job: a visible batch accepted from gossip, which gossipsub
    /// forwards itself once validated.
    fn put_announced_batch(&self, batch: &StoredBatch) -> Result<PutOutcome, StorageError>;
    /// A stored batch.
    fn get_batch(&self, origin: &str, sequence: u64) -> Result<Option<StoredBatch>, StorageError>;
    /// Metadata of one origin's batches with a sequence above `after`, ascending.
    fn list_batches(
        &self,
        origin: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<BatchMeta>, StorageError>;
    /// Metadata of every stored batch, by origin then sequence.
    fn all_batches(&self) -> Result<Vec<BatchMeta>, StorageError>;
    /// Metadata of the batches of one UTC day.
    fn batches_of_day(&self, day: u32) -> Result<Vec<BatchMeta>, StorageError>;
    /// Held (embargoed) batches that become visible at or before `now`.
    fn held_due(&self, now: u64) -> Result<Vec<BatchMeta>, StorageError>;
    /// Marks held batches as released (they have been or are being gossiped).
    fn mark_released(&self, batches: &[BatchMeta]) -> Result<(), StorageError>;
}

/// Day filters: ingest and serving of their parts (SPEC.md §5.8). Parts never
/// replace one another: every part is kept until its day's retention.
pub trait FilterStore {
    /// Stores a verified part durably, unless the same part is stored already
    /// (`Duplicate`) or another part with its origin, day and revision
    /// (`Conflict`: the first one is kept).
    fn put_filter(&self, filter: &StoredFilter) -> Result<PutOutcome, StorageError>;
    /// A stored part.
    fn get_filter(
        &self,
        origin: &str,
        day: u32,
        revision: u64,
    ) -> Result<Option<StoredFilter>, StorageError>;
    /// Metadata of the stored parts of (origin, day), by ascending revision.
    fn filter_parts(&self, origin: &str, day: u32) -> Result<Vec<FilterMeta>, StorageError>;
    /// Metadata of every stored part, by origin, day and revision.
    fn all_filters(&self) -> Result<Vec<FilterMeta>, StorageError>;
}

/// Upload codes (salted hashes): the gateway's and the issuer's.
pub trait CodeStore: Send + Sync {
    /// Adds upload codes (by id).
    fn insert_codes(&self, codes: &[([u8; 8], CodeRecord)]) -> Result<(), StorageError>;
    /// An upload code's record.
    fn get_code(&self, id: &[u8; 8]) -> Result<Option<CodeRecord>, StorageError>;
    /// Removes codes that expired at or before `now`; returns how many.
    fn purge_codes(&self, now: u64) -> Result<usize, StorageError>;
    /// Applies a gateway change atomically and durably (the issuer's consumes a
    /// code and nothing else).
    fn commit_gateway(&self, commit: &GatewayCommit) -> Result<(), StorageError>;
}

/// The gateway's publication pool (SPEC.md §6.4): accepted keys waiting for
/// their period boundary. Keys are added and removed by
/// [`CodeStore::commit_gateway`], atomically with what they came or went with.
pub trait PoolStore {
    /// Pooled keys that may be published from `now` or earlier.
    fn pending_due(&self, now: u64) -> Result<Vec<PendingKey>, StorageError>;
    /// Number of keys in the pool.
    fn pending_count(&self) -> Result<u64, StorageError>;
    /// The last published period (none before the gateway's first period).
    fn published_period(&self) -> Result<Option<PublishedPeriod>, StorageError>;
}

/// What a gateway's uploads, tokens and filter building need.
pub trait GatewayStore {
    /// The gateway's next sequence number for `origin` (1 if none yet).
    fn next_sequence(&self, origin: &str) -> Result<u64, StorageError>;
    /// Whether an upload token (epoch, SHA-256 of its input) was spent.
    fn token_spent(&self, epoch: u32, id: &[u8; 32]) -> Result<bool, StorageError>;
    /// Forgets spent tokens of every epoch not in `keep` (their key is retired, so
    /// they can never verify again); returns how many were removed.
    fn purge_spent_tokens(&self, keep: &[u32]) -> Result<usize, StorageError>;
    /// Days with stored filter entries (gateway), with their entry counts, ascending.
    fn filter_entry_days(&self) -> Result<Vec<(u32, u64)>, StorageError>;
    /// The stored entries of one day that no part folded yet, by interval then
    /// entry.
    fn unfolded_entries_of_day(&self, day: u32) -> Result<Vec<StoredEntry>, StorageError>;
    /// Stores a part this gateway built and marks the entries it folds, in one
    /// atomic, flushed write (so no entry is folded twice or never).
    fn put_built_filter(
        &self,
        filter: &StoredFilter,
        folded: &[StoredEntry],
    ) -> Result<PutOutcome, StorageError>;
    /// Whether an entry is stored.
    fn has_filter_entry(&self, entry: &StoredEntry) -> Result<bool, StorageError>;
}

/// Retention and its public log.
pub trait RetentionStore {
    /// Metadata of batches whose retention ended at or before `now`.
    fn expired_batches(&self, now: u64) -> Result<Vec<BatchMeta>, StorageError>;
    /// Expired batches, filters and filter-entry days at `now` (due when their
    /// expiry is at or before `now`).
    fn expired(&self, now: u64) -> Result<Expired, StorageError>;
    /// Deletes expired batches, filters and filter entries and appends the record
    /// of it to the deletion log, atomically.
    fn delete_and_log(
        &self,
        expired: &Expired,
        record: &SignedDeletionRecord,
    ) -> Result<(), StorageError>;
    /// The deletion log, oldest first.
    fn deletion_log(&self) -> Result<Vec<SignedDeletionRecord>, StorageError>;
}

/// What the store holds, in figures, without a scan (for `/`, `/metrics` and
/// `/v1/origins`; see [`super::summary`]).
pub trait SummaryStore {
    /// The figures at `now` (the node's clock; it does not go back).
    fn summary(&self, now: u64) -> StoreSummary;
}

/// A whole node database: every interface above.
pub trait Store:
    BatchStore
    + FilterStore
    + CodeStore
    + GatewayStore
    + PoolStore
    + RetentionStore
    + SummaryStore
    + Send
    + Sync
    + 'static
{
}

impl<T> Store for T where
    T: BatchStore
        + FilterStore
        + CodeStore
        + GatewayStore
        + PoolStore
        + RetentionStore
        + SummaryStore
        + Send
        + Sync
        + 'static
{
}

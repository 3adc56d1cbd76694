//! Record codecs: what is stored about batches, day filters, filter entries,
//! upload codes and held keys, and their fixed-length encodings.

use sha2::{Digest, Sha256};
use traceless_protocol::wire::filter_expires_at;
use traceless_protocol::wire::PublishedBatch;
use traceless_protocol::{Batch, DayFilter, DiagnosisKey, FilterEntry, Tek, TrustList, WireError};

use super::keyspace::{split_batch_key, split_filter_key};
use super::StorageError;

/// What is known about a stored batch without reading its bytes: a version 1
/// batch holds one day, a period batch (version 2, SPEC.md §5.9) the days
/// retention has not pruned yet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchMeta {
    /// Authority id.
    pub origin: String,
    /// Per-origin sequence number.
    pub sequence: u64,
    /// 1 (one day) or 2 (one period).
    pub version: u32,
    /// The days still held, ascending; never empty.
    pub days: Vec<BatchDay>,
    /// Publication time claimed by the authority.
    pub created_at: u64,
    /// Unix seconds from which the batch may be served and forwarded (embargo).
    pub visible_from: u64,
    /// The batch's identifier: SHA-256 of a version 1 `SignedBatch`, of a
    /// period batch's header (stable across pruning). Gossip dedup, the
    /// conflict check and the log name it.
    pub content_id: [u8; 32],
}

/// One held day of a stored batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchDay {
    /// UTC day of the keys.
    pub day: u32,
    /// Number of keys of the day.
    pub key_count: u64,
    /// Unix seconds at which retention deletes the day (its last key expires).
    pub expires_at: u64,
}

impl BatchMeta {
    /// Metadata of a verified batch of `version` from its days (each as a
    /// one-day batch), named by its identifier.
    pub fn of(version: u32, days: &[Batch], content_id: [u8; 32]) -> Self {
        let first = &days[0];
        BatchMeta {
            origin: first.origin.clone(),
            sequence: first.sequence,
            version,
            days: days
                .iter()
                .map(|d| BatchDay {
                    day: d.day,
                    key_count: d.keys.len() as u64,
                    expires_at: d.expires_at(),
                })
                .collect(),
            created_at: first.created_at,
            visible_from: days
                .iter()
                .map(crate::embargo::batch_visible_from)
                .max()
                .unwrap_or(0),
            content_id,
        }
    }

    /// Whether the batch may be served and forwarded at `now`.
    pub fn is_visible(&self, now: u64) -> bool {
        now >= self.visible_from
    }

    /// Keys over every held day.
    pub fn key_count(&self) -> u64 {
        self.days.iter().map(|d| d.key_count).sum()
    }

    /// When retention next acts on the batch: the first held day's expiry
    /// (it prunes that day, or deletes the batch with its last day).
    pub fn expires_at(&self) -> u64 {
        self.days.iter().map(|d| d.expires_at).min().unwrap_or(0)
    }

    /// The day its last key expires, which the log names it by: the deletion of
    /// that day deletes the batch.
    pub fn last_day(&self) -> u32 {
        self.days.last().map_or(0, |d| d.day)
    }

    /// Layout of records written before period batches: one day, 68 bytes.
    const LEGACY_LEN: usize = 4 + 8 * 4 + 32;
    /// Bytes before the days in the current layout.
    const HEAD_LEN: usize = 1 + 8 * 2 + 32 + 2;
    const DAY_LEN: usize = 4 + 8 * 2;

    pub(super) fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(Self::HEAD_LEN + Self::DAY_LEN * self.days.len());
        v.push(self.version as u8);
        v.extend_from_slice(&self.created_at.to_be_bytes());
        v.extend_from_slice(&self.visible_from.to_be_bytes());
        v.extend_from_slice(&self.content_id);
        v.extend_from_slice(&(self.days.len() as u16).to_be_bytes());
        for d in &self.days {
            v.extend_from_slice(&d.day.to_be_bytes());
            v.extend_from_slice(&d.key_count.to_be_bytes());
            v.extend_from_slice(&d.expires_at.to_be_bytes());
        }
        v
    }

    /// Decodes either layout: a record of [`Self::LEGACY_LEN`] bytes is a
    /// version 1 batch as nodes stored it before period batches (read as it
    /// is, so an old data dir needs no rewrite).
    pub(super) fn decode(key: &[u8], v: &[u8]) -> Result<Self, StorageError> {
        let bad = || StorageError::Corrupt("b");
        let (origin, sequence) = split_batch_key(key).ok_or_else(bad)?;
        let u64_at = |i: usize| u64::from_be_bytes(v[i..i + 8].try_into().unwrap_or([0; 8]));
        let u32_at = |i: usize| u32::from_be_bytes(v[i..i + 4].try_into().unwrap_or([0; 4]));
        if v.len() == Self::LEGACY_LEN {
            return Ok(BatchMeta {
                origin,
                sequence,
                version: 1,
                days: vec![BatchDay {
                    day: u32_at(0),
                    key_count: u64_at(4),
                    expires_at: u64_at(28),
                }],
                created_at: u64_at(12),
                visible_from: u64_at(20),
                content_id: v[36..68].try_into().map_err(|_| bad())?,
            });
        }
        if v.len() < Self::HEAD_LEN {
            return Err(bad());
        }
        let n = usize::from(u16::from_be_bytes([v[49], v[50]]));
        if n == 0 || v.len() != Self::HEAD_LEN + Self::DAY_LEN * n {
            return Err(bad());
        }
        let days = (0..n)
            .map(|i| {
                let at = Self::HEAD_LEN + Self::DAY_LEN * i;
                BatchDay {
                    day: u32_at(at),
                    key_count: u64_at(at + 4),
                    expires_at: u64_at(at + 12),
                }
            })
            .collect();
        Ok(BatchMeta {
            origin,
            sequence,
            version: u32::from(v[0]),
            days,
            created_at: u64_at(1),
            visible_from: u64_at(9),
            content_id: v[17..49].try_into().map_err(|_| bad())?,
        })
    }
}

/// SHA-256 of bytes: a version 1 batch's identifier, a day filter part's,
/// the ETag of a batch as served and a gossip message id.
pub fn content_id(signed_bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(signed_bytes).into()
}

/// A batch as stored: its metadata and exact signed bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredBatch {
    /// Metadata.
    pub meta: BatchMeta,
    /// The `SignedBatch` or `SignedPeriodBatch` encoding, as forwarded to
    /// peers (a period batch with its export signatures, its expired days
    /// pruned).
    pub bytes: Vec<u8>,
}

impl StoredBatch {
    /// What a node stores of a batch it received: decoded, verified with its
    /// attachments (SPEC.md §5.3, §5.9), a period batch with the days expired
    /// at `now` pruned.
    pub fn verified(bytes: &[u8], trust: &TrustList, now: u64) -> Result<Self, WireError> {
        let published = PublishedBatch::decode(bytes)?;
        let verified = published.verify_with_attachments(trust, now)?;
        let days: Vec<Batch> = verified.days.into_iter().map(|d| d.batch).collect();
        let kept = match &published {
            // Verification keeps the days not expired at `now` (and refused a
            // batch whose every day expired): fewer than the sections held
            // means some are due to be pruned.
            PublishedBatch::Period(p) if days.len() < p.days.len() => published
                .pruned_at(now)?
                .ok_or(WireError::Empty("period batch"))?
                .encode(),
            _ => bytes.to_vec(),
        };
        Ok(StoredBatch {
            meta: BatchMeta::of(verified.version, &days, published.id()),
            bytes: kept,
        })
    }

    /// The bytes phones are served ([`PublishedBatch::served`]).
    pub fn served(&self) -> Vec<u8> {
        match self.meta.version {
            1 => self.bytes.clone(),
            _ => PublishedBatch::decode(&self.bytes)
                .map(|b| b.served())
                .unwrap_or_else(|_| self.bytes.clone()),
        }
    }
}

/// Result of storing a batch or a part of a day filter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PutOutcome {
    /// Stored now, and flushed.
    New,
    /// The identical batch (or part) was already stored.
    Duplicate,
    /// Another batch with the same origin and sequence (or part with the same
    /// origin, day and revision) is stored: the authority signed two different
    /// ones under one number. The first one is kept.
    Conflict,
}

/// What is known about one stored part of a day filter without reading its
/// bytes. A node keeps every part of a day until the day's retention.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FilterMeta {
    /// Authority id.
    pub origin: String,
    /// UTC day of the entries.
    pub day: u32,
    /// Part number (1..=384).
    pub revision: u64,
    /// Publication time claimed by the authority (a period boundary).
    pub created_at: u64,
    /// Entries folded into the part.
    pub entries: u64,
    /// SHA-256 of the `SignedFilter` encoding: ETag and gossip message id.
    pub content_id: [u8; 32],
    /// Length of the `SignedFilter` encoding.
    pub len: u64,
}

impl FilterMeta {
    /// Metadata of a verified part and its exact signed bytes.
    pub fn of(filter: &DayFilter, signed_bytes: &[u8]) -> Self {
        FilterMeta {
            origin: filter.origin.clone(),
            day: filter.day,
            revision: filter.revision,
            created_at: filter.created_at,
            entries: filter.filter.entries(),
            content_id: content_id(signed_bytes),
            len: signed_bytes.len() as u64,
        }
    }

    /// Unix seconds after which retention deletes the part.
    pub fn expires_at(&self) -> u64 {
        filter_expires_at(self.day)
    }

    const LEN: usize = 8 * 3 + 32;

    pub(super) fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(Self::LEN);
        for n in [self.created_at, self.entries, self.len] {
            v.extend_from_slice(&n.to_be_bytes());
        }
        v.extend_from_slice(&self.content_id);
        v
    }

    pub(super) fn decode(key: &[u8], v: &[u8]) -> Result<Self, StorageError> {
        let bad = || StorageError::Corrupt("g");
        let (origin, day, revision) = split_filter_key(key).ok_or_else(bad)?;
        if v.len() != Self::LEN {
            return Err(bad());
        }
        let u64_at = |i: usize| u64::from_be_bytes(v[i..i + 8].try_into().unwrap_or([0; 8]));
        Ok(FilterMeta {
            origin,
            day,
            revision,
            created_at: u64_at(0),
            entries: u64_at(8),
            len: u64_at(16),
            content_id: v[24..56].try_into().map_err(|_| bad())?,
        })
    }
}

/// A part of a day filter as stored: its metadata and exact signed bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredFilter {
    /// Metadata.
    pub meta: FilterMeta,
    /// The `SignedFilter` encoding, served byte for byte.
    pub bytes: Vec<u8>,
}

/// One filter entry a gateway holds: the UTC day, the interval and the entry.
/// Never the TEK or the RPI it came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct StoredEntry {
    /// UTC day of `interval`.
    pub day: u32,
    /// The chosen interval.
    pub interval: u32,
    /// `SHA-256(context || 0 || RPI || interval)[..16]`.
    pub entry: FilterEntry,
}

/// What one retention run deletes.
#[derive(Clone, Debug, Default)]
pub struct Expired {
    /// Batches with expired days.
    pub batches: Vec<ExpiredBatch>,
    /// Expired day filters.
    pub filters: Vec<FilterMeta>,
    /// Days whose stored filter entries expired, with how many there are.
    pub entry_days: Vec<(u32, u64)>,
}

/// A batch of which retention deletes some days, or all.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExpiredBatch {
    /// The batch as stored.
    pub meta: BatchMeta,
    /// The days deleted.
    pub days: Vec<BatchDay>,
    /// What is left: the batch with those days pruned (a period batch), or
    /// `None` when it is deleted whole.
    pub kept: Option<StoredBatch>,
}

impl Expired {
    /// Whether nothing is due.
    pub fn is_empty(&self) -> bool {
        self.batches.is_empty() && self.filters.is_empty() && self.entry_days.is_empty()
    }
}

/// A single-use upload code as stored: never the code, only a salted hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CodeRecord {
    /// Random per-code salt.
    pub salt: [u8; 16],
    /// SHA-256 of `salt || secret`.
    pub hash: [u8; 32],
    /// Unix seconds after which the code is void.
    pub expires_at: u64,
}

impl CodeRecord {
    #[cfg(test)]
    pub(crate) fn encode_for_test(&self) -> Vec<u8> {
        self.encode()
    }

    pub(super) fn encode(&self) -> Vec<u8> {
        [&self.salt[..], &self.hash, &self.expires_at.to_be_bytes()].concat()
    }

    pub(super) fn decode(v: &[u8]) -> Result<Self, StorageError> {
        if v.len() != 56 {
            return Err(StorageError::Corrupt("c"));
        }
        Ok(CodeRecord {
            salt: v[0..16]
                .try_into()
                .map_err(|_| StorageError::Corrupt("c"))?,
            hash: v[16..48]
                .try_into()
                .map_err(|_| StorageError::Corrupt("c"))?,
            expires_at: u64::from_be_bytes(
                v[48..56]
                    .try_into()
                    .map_err(|_| StorageError::Corrupt("c"))?,
            ),
        })
    }
}

/// A diagnosis key a gateway accepted but holds back until its embargo ends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingKey {
    /// Storage id (release time and a random suffix) of the pool file that
    /// holds it, shared by the keys one commit pooled with the same release
    /// time: removing the id removes all of them.
    pub id: Vec<u8>,
    /// The key.
    pub key: DiagnosisKey,
}

/// The gateway's publication progress (SPEC.md §6.4).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PublishedPeriod {
    /// The boundary of the last period published (unix seconds).
    pub boundary: u64,
    /// Padding keys published so far, over the gateway's life.
    pub padding_keys: u64,
}

impl PublishedPeriod {
    /// `boundary || padding_keys`, big-endian.
    pub(super) fn encode(&self) -> [u8; 16] {
        let mut v = [0u8; 16];
        v[..8].copy_from_slice(&self.boundary.to_be_bytes());
        v[8..].copy_from_slice(&self.padding_keys.to_be_bytes());
        v
    }

    pub(super) fn decode(v: &[u8]) -> Result<Self, StorageError> {
        let bad = || StorageError::Corrupt("q");
        let v: [u8; 16] = v.try_into().map_err(|_| bad())?;
        let (b, p) = v.split_at(8);
        Ok(PublishedPeriod {
            boundary: u64::from_be_bytes(b.try_into().map_err(|_| bad())?),
            padding_keys: u64::from_be_bytes(p.try_into().map_err(|_| bad())?),
        })
    }
}

/// One atomic change made by a gateway for an upload or a period's publication.
#[derive(Debug, Default)]
pub struct GatewayCommit {
    /// Upload code to consume.
    pub consume_code: Option<[u8; 8]>,
    /// Keys to pool, each with the time from which it may be published.
    pub add_pending: Vec<(u64, DiagnosisKey)>,
    /// Pooled keys now published in `batches` (or dropped as expired).
    pub remove_pending: Vec<Vec<u8>>,
    /// The period this commit publishes.
    pub published_period: Option<PublishedPeriod>,
    /// New batches signed by the gateway.
    pub batches: Vec<StoredBatch>,
    /// The gateway's next sequence number after these batches.
    pub next_sequence: Option<(String, u64)>,
    /// An upload token to mark spent: (epoch, SHA-256 of its input).
    pub spend_token: Option<(u32, [u8; 32])>,
    /// Filter entries of a filter-form upload (entries already stored are kept once).
    pub filter_entries: Vec<StoredEntry>,
}

/// A held key's file content: TEK, rolling start and period, risk, onset.
pub(super) fn encode_key(k: &DiagnosisKey) -> Vec<u8> {
    let mut v = k.tek.0.to_vec();
    v.extend_from_slice(&k.rolling_start.to_be_bytes());
    v.extend_from_slice(&k.rolling_period.to_be_bytes());
    v.push(k.transmission_risk);
    v.push(k.days_since_onset as u8);
    v
}

/// Length of one [`encode_key`] record.
pub(super) const KEY_RECORD_LEN: usize = 26;

/// The keys of a pool file: [`encode_key`] records one after the other (a file
/// written before keys were grouped holds one).
pub(super) fn decode_keys(v: &[u8]) -> Result<Vec<DiagnosisKey>, StorageError> {
    if v.is_empty() || !v.len().is_multiple_of(KEY_RECORD_LEN) {
        return Err(StorageError::Corrupt("p"));
    }
    v.chunks(KEY_RECORD_LEN).map(decode_key).collect()
}

pub(super) fn decode_key(v: &[u8]) -> Result<DiagnosisKey, StorageError> {
    let bad = || StorageError::Corrupt("p");
    if v.len() != KEY_RECORD_LEN {
        return Err(bad());
    }
    Ok(DiagnosisKey {
        tek: Tek(v[0..16].try_into().map_err(|_| bad())?),
        rolling_start: u32::from_be_bytes(v[16..20].try_into().map_err(|_| bad())?),
        rolling_period: u32::from_be_bytes(v[20..24].try_into().map_err(|_| bad())?),
        transmission_risk: v[24],
        days_since_onset: v[25] as i8,
    })
}

//! The key space of the sled tree: one named one-byte prefix per kind of
//! record, and the builders and parsers of every key. Nothing else in the node
//! spells a prefix or slices a key; parsers check lengths and return `None` for
//! a key that is too short instead of panicking.
//!
//! Layout (`origin` is UTF-8 and never contains a NUL byte; numbers are
//! big-endian, so keys sort by them):
//!
//! | prefix | key | value |
//! | --- | --- | --- |
//! | [`BATCH`] | `b origin 0 sequence` | batch metadata |
//! | [`DAY_INDEX`] | `d day origin 0 sequence` | empty |
//! | [`EXPIRY_INDEX`] | `e expires_at origin 0 sequence` | empty |
//! | [`HELD_INDEX`] | `h visible_from origin 0 sequence` | empty (not yet gossiped) |
//! | [`DELETION_LOG`] | `l index` | signed deletion record |
//! | [`CODE`] | `c id` | code record (salted hash) |
//! | [`PENDING`] | `p release_at random8` | empty (the key is in a file) |
//! | [`SEQUENCE`] | `s origin` | the gateway's next sequence number |
//! | [`SPENT_TOKEN`] | `t epoch sha256(input)` | empty |
//! | [`FILTER`] | `g origin 0 day revision` | metadata of one part of a day filter |
//! | [`LEGACY_FILTER`] | `f origin 0 day` | a version-1 day filter (old databases; removed at open) |
//! | [`ENTRY_COUNT`] | `k day` | number of entries of the day |
//! | [`ENTRY`] | `n day interval sealed-entry` | empty, or the part that folded it (big-endian u64) |
//! | [`LEGACY_BATCH_BODY`] | `x origin 0 sequence` | batch bytes (old databases; migrated away at open) |
//! | [`PUBLISHED_PERIOD`] | `q` | the gateway's last published period boundary and padding keys so far |
//! | [`LOG_LEAF`] | `L index` | transparency-log entry (leaf data) |
//! | [`LOG_HASH`] | `H level index` | root of a perfect subtree of the log |
//! | [`LOG_META`] | `M name` | transparency-log bookkeeping (see `crate::log`) |
//! | [`WITNESS`] | `W kind origin` | witness state: kind `c` the latest note cosigned for a log, `e` evidence of its equivocation (see `crate::federation::witnessing`) |
//! | [`OPERATOR`] | `A name` | operator account (see `crate::operators`) |
//! | [`UPLOAD_STATS`] | `U day` | a gateway's real uploads and keys accepted that day |
//! | [`LOG_INDEX`] | `I kind origin 0 sequence`, `I f day origin 0 revision` | the log index of a batch's entry: kind `p` its publication, `d` its deletion; kind `f` a filter revision's publication (see `crate::log`) |

use traceless_protocol::filter::FILTER_ENTRY_LEN;

use super::records::StoredEntry;

/// Batch metadata, by origin and sequence.
pub const BATCH: u8 = b'b';
/// Index of batches by UTC day.
pub const DAY_INDEX: u8 = b'd';
/// Index of batches by retention time.
pub const EXPIRY_INDEX: u8 = b'e';
/// Index of batches held for the release job, by visibility time.
pub const HELD_INDEX: u8 = b'h';
/// The deletion log, by index.
pub const DELETION_LOG: u8 = b'l';
/// Upload codes, by id.
pub const CODE: u8 = b'c';
/// Embargoed keys a gateway holds, by release time.
pub const PENDING: u8 = b'p';
/// A gateway's next sequence number, by origin.
pub const SEQUENCE: u8 = b's';
/// Spent upload tokens, by epoch and input hash.
pub const SPENT_TOKEN: u8 = b't';
/// Day-filter part metadata, by origin, day and revision.
pub const FILTER: u8 = b'g';
/// Version-1 day-filter metadata, by origin and day (removed at open).
pub const LEGACY_FILTER: u8 = b'f';
/// Filter-entry counts, by day.
pub const ENTRY_COUNT: u8 = b'k';
/// Sealed filter entries, by day and interval.
pub const ENTRY: u8 = b'n';
/// Batch bodies inside sled, as older versions stored them.
pub const LEGACY_BATCH_BODY: u8 = b'x';
/// The gateway's publication progress (SPEC.md §6.4): one record.
pub const PUBLISHED_PERIOD: u8 = b'q';

/// Transparency-log entries, by index.
pub const LOG_LEAF: u8 = b'L';
/// Transparency-log perfect-subtree hashes, by level and index.
pub const LOG_HASH: u8 = b'H';
/// Transparency-log bookkeeping, by name.
pub const LOG_META: u8 = b'M';

/// Witness state per witnessed log (kinds [`WITNESS_COSIGNED`], [`WITNESS_EVIDENCE`]).
pub const WITNESS: u8 = b'W';
/// Witness-state kind: the latest note cosigned.
pub const WITNESS_COSIGNED: u8 = b'c';
/// Witness-state kind: equivocation evidence (the gossip message).
pub const WITNESS_EVIDENCE: u8 = b'e';
/// Operator accounts, by name (SPEC.md §8.4).
pub const OPERATOR: u8 = b'A';
/// A gateway's accepted uploads and keys, by UTC day of acceptance.
pub const UPLOAD_STATS: u8 = b'U';
/// Log indexes of batch entries, by kind ([`LOG_INDEX_PUBLISHED`],
/// [`LOG_INDEX_DELETED`]), origin and sequence.
pub const LOG_INDEX: u8 = b'I';
/// Log-index kind: the batch's publication entry.
pub const LOG_INDEX_PUBLISHED: u8 = b'p';
/// Log-index kind: the deletion entry covering the batch.
pub const LOG_INDEX_DELETED: u8 = b'd';
/// Log-index kind: a filter revision's publication entry.
pub const LOG_INDEX_FILTER: u8 = b'f';
/// Log-index kind: a venue warning batch's publication entry (by origin and
/// warning sequence).
pub const LOG_INDEX_WARNING: u8 = b'w';

/// `origin 0 sequence`: the tail shared by batch keys and batch indexes.
fn batch_ref(origin: &str, sequence: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(origin.len() + 9);
    k.extend_from_slice(origin.as_bytes());
    k.push(0);
    k.extend_from_slice(&sequence.to_be_bytes());
    k
}

/// Parses `origin 0 sequence`.
fn split_batch_ref(k: &[u8]) -> Option<(String, u64)> {
    let split = k.len().checked_sub(9)?;
    let (origin, rest) = k.split_at(split);
    let (zero, seq) = rest.split_first()?;
    if *zero != 0 || origin.is_empty() {
        return None;
    }
    let seq = u64::from_be_bytes(seq.try_into().ok()?);
    Some((String::from_utf8(origin.to_vec()).ok()?, seq))
}

/// `prefix || origin 0 sequence` (batch records of [`BATCH`] and [`LEGACY_BATCH_BODY`]).
pub fn batch_key_with(prefix: u8, origin: &str, sequence: u64) -> Vec<u8> {
    let mut k = vec![prefix];
    k.extend_from_slice(&batch_ref(origin, sequence));
    k
}

/// The metadata key of a batch.
pub fn batch_key(origin: &str, sequence: u64) -> Vec<u8> {
    batch_key_with(BATCH, origin, sequence)
}

/// Origin and sequence of a batch key (any one-byte prefix).
pub fn split_batch_key(k: &[u8]) -> Option<(String, u64)> {
    split_batch_ref(k.get(1..)?)
}

/// An index key: `prefix || lead || origin 0 sequence`.
pub fn index_key(prefix: u8, lead: &[u8], origin: &str, sequence: u64) -> Vec<u8> {
    let mut k = vec![prefix];
    k.extend_from_slice(lead);
    k.extend_from_slice(&batch_ref(origin, sequence));
    k
}

/// Origin and sequence of an index key whose lead is `lead_len` bytes.
pub fn split_index_key(k: &[u8], lead_len: usize) -> Option<(String, u64)> {
    split_batch_ref(k.get(1 + lead_len..)?)
}

/// `prefix || n` for a big-endian number: a scan prefix, or a range bound.
pub fn numbered(prefix: u8, n: &[u8]) -> Vec<u8> {
    let mut k = vec![prefix];
    k.extend_from_slice(n);
    k
}

/// `g origin 0 day`: the scan prefix of one day filter's parts.
pub fn filter_day_prefix(origin: &str, day: u32) -> Vec<u8> {
    let mut k = Vec::with_capacity(origin.len() + 14);
    k.push(FILTER);
    k.extend_from_slice(origin.as_bytes());
    k.push(0);
    k.extend_from_slice(&day.to_be_bytes());
    k
}

/// The metadata key of part `revision` of a day filter.
pub fn filter_key(origin: &str, day: u32, revision: u64) -> Vec<u8> {
    let mut k = filter_day_prefix(origin, day);
    k.extend_from_slice(&revision.to_be_bytes());
    k
}

/// Origin, day and revision of a filter key.
pub fn split_filter_key(k: &[u8]) -> Option<(String, u32, u64)> {
    let k = k.get(1..)?;
    let split = k.len().checked_sub(13)?;
    let (origin, rest) = k.split_at(split);
    let (zero, rest) = rest.split_first()?;
    if *zero != 0 || origin.is_empty() {
        return None;
    }
    let day = u32::from_be_bytes(rest[..4].try_into().ok()?);
    let revision = u64::from_be_bytes(rest[4..].try_into().ok()?);
    Some((String::from_utf8(origin.to_vec()).ok()?, day, revision))
}

/// `n || day || interval || sealed entry`: entries sort by day, interval and the
/// encrypted entry only.
pub fn entry_key(e: &StoredEntry) -> Vec<u8> {
    let mut k = Vec::with_capacity(9 + FILTER_ENTRY_LEN);
    k.push(ENTRY);
    k.extend_from_slice(&e.day.to_be_bytes());
    k.extend_from_slice(&e.interval.to_be_bytes());
    k.extend_from_slice(&e.entry.0);
    k
}

/// Interval and sealed entry of an entry key.
pub fn split_entry_key(k: &[u8]) -> Option<(u32, [u8; FILTER_ENTRY_LEN])> {
    if k.len() != 9 + FILTER_ENTRY_LEN {
        return None;
    }
    let interval = u32::from_be_bytes(k.get(5..9)?.try_into().ok()?);
    Some((interval, k.get(9..)?.try_into().ok()?))
}

/// The scan prefix of one day's entries.
pub fn entry_day_prefix(day: u32) -> Vec<u8> {
    numbered(ENTRY, &day.to_be_bytes())
}

/// `k || day`: the number of entries stored for a day.
pub fn entry_count_key(day: u32) -> Vec<u8> {
    numbered(ENTRY_COUNT, &day.to_be_bytes())
}

/// The day of an entry-count key.
pub fn split_entry_count_key(k: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(k.get(1..5)?.try_into().ok()?))
}

/// The key of a spent token.
pub fn spent_key(epoch: u32, id: &[u8; 32]) -> Vec<u8> {
    let mut k = numbered(SPENT_TOKEN, &epoch.to_be_bytes());
    k.extend_from_slice(id);
    k
}

/// The epoch of a spent-token key.
pub fn split_spent_key(k: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(k.get(1..5)?.try_into().ok()?))
}

/// The key of an upload code.
pub fn code_key(id: &[u8; 8]) -> Vec<u8> {
    numbered(CODE, id)
}

/// The key of a pooled key: the time from which it may be published (its
/// acceptance, or the end of its embargo) and a random suffix.
pub fn pending_key(release_at: u64, random: [u8; 8]) -> Vec<u8> {
    let mut k = numbered(PENDING, &release_at.to_be_bytes());
    k.extend_from_slice(&random);
    k
}

/// The key of a gateway's next sequence number.
pub fn sequence_key(origin: &str) -> Vec<u8> {
    numbered(SEQUENCE, origin.as_bytes())
}

/// The key of the deletion log's entry `index`.
pub fn log_key(index: u64) -> Vec<u8> {
    numbered(DELETION_LOG, &index.to_be_bytes())
}

/// The key of transparency-log entry `index`.
pub fn log_leaf_key(index: u64) -> Vec<u8> {
    numbered(LOG_LEAF, &index.to_be_bytes())
}

/// The index of a transparency-log entry key.
pub fn split_log_leaf_key(k: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(k.get(1..9)?.try_into().ok()?))
}

/// The key of the log's perfect subtree `index` at `level`.
pub fn log_hash_key(level: u32, index: u64) -> Vec<u8> {
    let mut k = vec![LOG_HASH, level as u8];
    k.extend_from_slice(&index.to_be_bytes());
    k
}

/// The key of a named log bookkeeping value.
pub fn log_meta_key(name: &str) -> Vec<u8> {
    numbered(LOG_META, name.as_bytes())
}

/// The key of a witness-state record of `kind` for the log `origin`.
pub fn witness_key(kind: u8, origin: &str) -> Vec<u8> {
    let mut k = vec![WITNESS, kind];
    k.extend_from_slice(origin.as_bytes());
    k
}

/// The key of operator account `name`.
pub fn operator_key(name: &str) -> Vec<u8> {
    numbered(OPERATOR, name.as_bytes())
}

/// The key of the log index of batch `origin`/`sequence`'s entry of `kind`.
pub fn log_index_key(kind: u8, origin: &str, sequence: u64) -> Vec<u8> {
    index_key(LOG_INDEX, &[kind], origin, sequence)
}

/// The log-index key of revision `revision` of `origin`'s filter of `day`.
pub fn log_filter_index_key(origin: &str, day: u32, revision: u64) -> Vec<u8> {
    let mut lead = vec![LOG_INDEX_FILTER];
    lead.extend_from_slice(&day.to_be_bytes());
    index_key(LOG_INDEX, &lead, origin, revision)
}

/// The key of day `day`'s upload statistics.
pub fn upload_stats_key(day: u32) -> Vec<u8> {
    numbered(UPLOAD_STATS, &day.to_be_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Keys too short for their kind parse to `None` (they used to panic on
    /// slicing).
    #[test]
    fn short_keys_do_not_parse_and_do_not_panic() {
        for k in [&[][..], &[BATCH], &[BATCH, 0], &[HELD_INDEX, 1, 2, 3]] {
            assert_eq!(split_batch_key(k), None);
            assert_eq!(split_index_key(k, 8), None);
            assert_eq!(split_filter_key(k), None);
            assert_eq!(split_entry_key(k), None);
            assert_eq!(split_entry_count_key(k), None);
            assert_eq!(split_spent_key(k), None);
        }
        let k = batch_key("o.health", 7);
        assert_eq!(split_batch_key(&k), Some(("o.health".into(), 7)));
        let k = index_key(HELD_INDEX, &9u64.to_be_bytes(), "o.health", 7);
        assert_eq!(split_index_key(&k, 8), Some(("o.health".into(), 7)));
        let k = filter_key("o.health", 19_000, 3);
        assert_eq!(split_filter_key(&k), Some(("o.health".into(), 19_000, 3)));
        assert!(k.starts_with(&filter_day_prefix("o.health", 19_000)));
        // A version-1 key (`origin 0 day`, no revision) is not a part's key.
        assert_eq!(split_filter_key(&k[..k.len() - 8]), None);
    }
}

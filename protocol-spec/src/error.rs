//! Errors that say what a peer or a file got wrong.

/// Why a message, file or key was rejected. Every decoder in this crate returns it,
/// and each variant names the offending field and value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The input is longer than the message type allows.
    #[error("{what} is {len} bytes, over the {max}-byte limit")]
    Oversized {
        /// Which message.
        what: &'static str,
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The input is not valid protobuf (truncated, bad tag, bad varint, ...).
    #[error("{what} is not valid protobuf: {reason}")]
    Malformed {
        /// Which message.
        what: &'static str,
        /// The decoder's explanation.
        reason: String,
    },
    /// The input decodes, but re-encoding does not reproduce it (unknown fields,
    /// non-minimal varints, default values written out, wrong order).
    #[error("{0} is not in canonical encoding")]
    NonCanonical(&'static str),
    /// A version this implementation does not speak.
    #[error("{what} has version {found}; this implementation speaks version {supported}")]
    UnsupportedVersion {
        /// Which message.
        what: &'static str,
        /// The version found.
        found: u32,
        /// The version supported.
        supported: u32,
    },
    /// A key is not 16 bytes (or key data is not a multiple of 16 bytes).
    #[error("key data is {0} bytes; a TEK is 16 bytes")]
    KeyLength(usize),
    /// Rolling period outside 1..=144.
    #[error("rolling period {0} is outside 1..=144")]
    RollingPeriod(u32),
    /// Transmission risk level outside 0..=8.
    #[error("transmission risk level {0} is outside 0..=8")]
    TransmissionRisk(u32),
    /// Days since onset of symptoms outside -14..=14.
    #[error("days since onset of symptoms {0} is outside -14..=14")]
    DaysSinceOnset(i32),
    /// A key's validity starts after the current interval plus the drift tolerance.
    #[error(
        "key starts at interval {start}, after the current interval {now} plus drift tolerance"
    )]
    StartInFuture {
        /// The key's rolling start.
        start: u32,
        /// The current interval.
        now: u32,
    },
    /// A time stamp lies after now plus the tolerated clock skew.
    #[error("{what} time {at} is in the future (now {now})")]
    TimeInFuture {
        /// Which time.
        what: &'static str,
        /// The claimed time, unix seconds.
        at: u64,
        /// Now, unix seconds.
        now: u64,
    },
    /// Every key of the batch (or the whole filter) is past retention.
    #[error("past retention since {expired_at} (now {now})")]
    Expired {
        /// Unix seconds at which the last key's retention ended.
        expired_at: u64,
        /// Now, unix seconds.
        now: u64,
    },
    /// A certificate is used outside its validity.
    #[error("{what} is valid from {not_before} until {not_after}, not at {now}")]
    OutsideValidity {
        /// Which certificate.
        what: &'static str,
        /// Start of validity, unix seconds.
        not_before: u64,
        /// End of validity (exclusive), unix seconds.
        not_after: u64,
        /// The time checked, unix seconds.
        now: u64,
    },
    /// A batch or upload carries no keys where at least one is required.
    #[error("{0} holds no keys")]
    Empty(&'static str),
    /// Too many keys in one message.
    #[error("{what} holds {count} keys, over the limit of {max}")]
    TooManyKeys {
        /// Which message.
        what: &'static str,
        /// Keys found.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// A field is out of its allowed range or form.
    #[error("field {field} is invalid: {reason}")]
    InvalidField {
        /// The field name as in the `.proto` file.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A key group's keys start on another day than the batch's `day`.
    #[error("key starts on day {key_day}, but the batch is for day {batch_day}")]
    WrongDay {
        /// Day of the key's rolling start.
        key_day: u32,
        /// The batch's day.
        batch_day: u32,
    },
    /// A batch's keys are not in canonical order (SPEC.md §5.3: strictly
    /// ascending by `(tuple, TEK)`, one group per tuple).
    #[error("batch group {group}: {fault}")]
    KeyOrder {
        /// Index of the offending group in `groups`.
        group: usize,
        /// What is out of order.
        fault: KeyOrderFault,
    },
    /// The signer is not in the trust list (or the key id is unknown, or retired).
    #[error("origin {origin:?} key {key_id} is not in the trust list")]
    UntrustedSigner {
        /// The claimed origin.
        origin: String,
        /// The claimed key id.
        key_id: u32,
    },
    /// The signature does not verify.
    #[error("signature of {0} does not verify")]
    BadSignature(&'static str),
    /// What travels does not hash to the digest that was signed.
    #[error("{0} do not match the signed digest")]
    DigestMismatch(&'static str),
    /// The hash chain of a deletion log is broken.
    #[error("deletion log entry {index} does not chain to the previous entry")]
    BrokenChain {
        /// Index of the entry whose previous hash is wrong.
        index: u64,
    },
}

/// How a batch's keys break canonical order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyOrderFault {
    /// Two TEKs of the group are not in ascending byte order.
    #[error("keys are not sorted ascending")]
    KeysUnsorted,
    /// The group holds one TEK twice.
    #[error("holds a key twice")]
    DuplicateKey,
    /// The group's tuple sorts before the previous group's.
    #[error("groups are not sorted by (rolling start, rolling period, transmission risk, days since onset)")]
    GroupsUnsorted,
    /// The group has the same tuple as the previous group: one tuple split in two.
    #[error("repeats the previous group's tuple")]
    SplitGroup,
}

impl WireError {
    pub(crate) fn malformed(what: &'static str, e: prost::DecodeError) -> Self {
        WireError::Malformed {
            what,
            reason: e.to_string(),
        }
    }

    pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        WireError::InvalidField {
            field,
            reason: reason.into(),
        }
    }
}

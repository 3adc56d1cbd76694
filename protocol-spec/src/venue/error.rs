//! Why a QR code, key, trace or warning was rejected.

/// What is wrong with a text field of the QR payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextFault {
    /// No characters where 1 is the minimum.
    Empty,
    /// More characters than the limit.
    TooLong(usize),
    /// A line break or other control character.
    NotOneLine,
}

/// Every venue decoder and check returns this; each variant names what failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VenueError {
    /// The scanned text is longer than any entry URL.
    #[error("entry URL is {len} characters, over the {max}-character limit")]
    UrlTooLong {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The scanned text is not an entry URL (`https://…?v=3#<payload>`).
    #[error("not an entry URL: {0}")]
    NotEntryUrl(&'static str),
    /// The fragment is not unpadded base64url.
    #[error("entry URL payload is not base64url")]
    Base64,
    /// The payload is longer than any valid payload.
    #[error("QR payload is {len} bytes, over the {max}-byte limit")]
    PayloadTooLong {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Not valid protobuf.
    #[error("{what} is not valid protobuf: {reason}")]
    Malformed {
        /// Which message.
        what: &'static str,
        /// The decoder's explanation.
        reason: String,
    },
    /// A required message or field is absent.
    #[error("{0} is missing")]
    Missing(&'static str),
    /// A version this implementation does not speak.
    #[error("{what} has version {found}; this implementation speaks {supported}")]
    UnsupportedVersion {
        /// Which message.
        what: &'static str,
        /// The version found.
        found: u32,
        /// The version supported.
        supported: u32,
    },
    /// A text field breaks the 1..=100 characters, one line rule.
    #[error("{field}: {fault:?}")]
    Text {
        /// Which field.
        field: &'static str,
        /// What is wrong.
        fault: TextFault,
    },
    /// A byte string of the wrong length.
    #[error("{what} is {len} bytes; expected {expected}")]
    Length {
        /// Which field.
        what: &'static str,
        /// Its length.
        len: usize,
        /// The required length.
        expected: usize,
    },
    /// Not a point of the prime-order subgroup (or not a canonical scalar).
    #[error("{0} is not a valid group element")]
    BadPoint(&'static str),
    /// Validity period with start after end (or only one of them set).
    #[error("validity period {start}..{end} is invalid")]
    BadPeriod {
        /// Start, unix seconds.
        start: u64,
        /// End, unix seconds.
        end: u64,
    },
    /// Venue type outside 0..=12, or a CrowdNotifier type this crate does not know.
    #[error("{what} {found} is not a known type")]
    BadType {
        /// Which type field.
        what: &'static str,
        /// The value.
        found: u32,
    },
    /// Default stay outside 1..=1440 minutes or maximum below the default.
    #[error(
        "stay {default_minutes}/{max_minutes} minutes is invalid (1 <= default <= max <= 1440)"
    )]
    BadStay {
        /// Default stay.
        default_minutes: u32,
        /// Maximum stay.
        max_minutes: u32,
    },
    /// A slot that breaks CrowdNotifier's rules (length 900..=86400, aligned).
    #[error("slot {start}+{length} is not an aligned identity slot")]
    BadSlot {
        /// Start, unix seconds.
        start: u64,
        /// Length, seconds.
        length: u32,
    },
    /// A stay or window that ends before it starts, lies in the future, or is too long.
    #[error("window {start}..{end}: {reason}")]
    BadWindow {
        /// Start, unix seconds.
        start: u64,
        /// End, unix seconds.
        end: u64,
        /// What is wrong.
        reason: &'static str,
    },
    /// A ciphertext or key does not open: not made for this identity and key.
    #[error("does not decrypt with this key")]
    NotForThisKey,
    /// The authority's sealed key share does not open with the authority's key.
    #[error("sealed authority key does not open with this authority's key")]
    SealedKey,
    /// A completed trace key fails `e(sk, g2) = e(H1(id), mpk)`: the owner's
    /// pre-trace key is not from this venue's trace secret.
    #[error("trace key for slot {slot_start} does not belong to the venue's master key")]
    TraceKeyInvalid {
        /// The slot whose key failed.
        slot_start: u64,
    },
    /// A pre-trace key for a slot outside the traced window, or given twice.
    #[error("pre-trace key for slot {slot_start} is outside the window or repeated")]
    SlotOutsideWindow {
        /// The slot.
        slot_start: u64,
    },
    /// The passphrase of a managed venue set is too short to hold 256 bits.
    #[error("passphrase has {0} characters; at least 40 are required")]
    WeakPassphrase(usize),
    /// The warnings' signature does not verify, or its key is not trusted.
    #[error("venue warnings: {0}")]
    Signature(crate::WireError),
    /// A warning batch that is not in canonical encoding.
    #[error("{0} is not in canonical encoding")]
    NonCanonical(&'static str),
    /// A warning batch with more warnings than allowed.
    #[error("{len} warnings, over the {max} limit")]
    TooMany {
        /// How many.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Two reported stays of one upload overlap in time (nobody is in two
    /// places at once).
    #[error(
        "a reported stay begins at {second_start}, before the previous one ends at {first_end}"
    )]
    StayOverlap {
        /// End of the earlier stay.
        first_end: u64,
        /// Start of the later one.
        second_start: u64,
    },
    /// More stays reported for one day than anyone checks in at.
    #[error("more than {max} stays reported for day {day}")]
    TooManyStays {
        /// UTC day.
        day: u32,
        /// The limit.
        max: usize,
    },
}

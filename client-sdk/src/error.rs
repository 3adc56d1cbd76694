//! Errors that say what the host app, the storage or a downloaded file got wrong.

use traceless_protocol::WireError;

/// Why an SDK call failed. Nothing is stored when a call fails, and data stored
/// before stays intact.
#[derive(Debug, thiserror::Error)]
pub enum SdkError {
    /// The database directory could not be read or written.
    #[error("storage: {0}")]
    Storage(String),
    /// The database exists but its content is damaged (a file was truncated or
    /// overwritten): the SDK refuses to guess.
    #[error("database is corrupted: {0}")]
    Corrupt(String),
    /// The master key supplied by the app is not the one the database was created with.
    #[error("the master key does not open this database")]
    WrongMasterKey,
    /// An advertisement is not exactly 20 bytes (RPI || AEM).
    #[error("advertisement is {0} bytes; a Bluetooth advertisement payload is 20 bytes")]
    Advertisement(usize),
    /// A time stamp lies after now plus the tolerated skew.
    #[error("{what} time {at} is in the future (now {now})")]
    InFuture {
        /// Which time.
        what: &'static str,
        /// The time given, unix seconds.
        at: u64,
        /// Now, unix seconds.
        now: u64,
    },
    /// A time stamp lies before the retention window: it would be deleted at once.
    #[error("{what} time {at} is older than the {days}-day retention window")]
    TooOld {
        /// Which time.
        what: &'static str,
        /// The time given, unix seconds.
        at: u64,
        /// The retention in days.
        days: u32,
    },
    /// A cap on what received advertisements may make the phone store was reached;
    /// the advertisement was dropped (anyone can broadcast, so storage is bounded).
    #[error("sighting dropped: {0}")]
    OverCapacity(&'static str),
    /// A batch or export file was rejected: malformed, untrusted signer, bad
    /// signature, expired, or keys out of range.
    #[error("rejected: {0}")]
    Rejected(#[from] WireError),
    /// The batch or export file was already synced.
    #[error("already synced: {0}")]
    AlreadySynced(String),
    /// An argument is out of its range (the message says which and why).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A scanned venue code, a check-in time or a venue warning batch was
    /// refused (SPEC.md §12); the variant says which field and why.
    #[error("venue: {0}")]
    Venue(#[from] traceless_protocol::venue::VenueError),
    /// A node's transparency-log proof was refused (forged, for another batch
    /// or other bytes, too few trusted witnesses; SPEC.md §8.3.1).
    #[error("log proof: {0}")]
    Log(#[from] traceless_protocol::log::LogError),
    /// The phone requires each batch to come with a publication proof
    /// ([`crate::Sdk::require_log_proofs`]) and none was given.
    #[error("a publication proof cosigned by {required} trusted witnesses is required")]
    LogProofRequired {
        /// Trusted witnesses required.
        required: usize,
    },
}

impl From<sled::Error> for SdkError {
    fn from(e: sled::Error) -> Self {
        match e {
            sled::Error::Corruption { .. } => SdkError::Corrupt(e.to_string()),
            sled::Error::Unsupported(_) | sled::Error::ReportableBug(_) => {
                SdkError::Corrupt(e.to_string())
            }
            other => SdkError::Storage(other.to_string()),
        }
    }
}

impl From<std::io::Error> for SdkError {
    fn from(e: std::io::Error) -> Self {
        SdkError::Storage(e.to_string())
    }
}

/// Result of SDK calls.
pub type Result<T, E = SdkError> = std::result::Result<T, E>;

//! The transparency log (SPEC.md §8.3): every node keeps an append-only Merkle
//! log (RFC 9162 hashing) of what it published, deleted and issued, signs
//! checkpoints of it in the C2SP `tlog-checkpoint` signed-note format, and other
//! relays cosign those checkpoints as witnesses (C2SP `tlog-cosignature`,
//! `cosignature/v1`). Nodes and phones share this module: [`tree`] (hashing and
//! proofs), [`checkpoint`] (notes, signatures, cosignatures), [`entry`] (the
//! events a leaf holds), [`publication`] (a batch's publication and deletion
//! proven to a phone).

pub mod checkpoint;
pub mod entry;
pub mod publication;
pub mod tree;

pub use checkpoint::{
    cosign, log_origin, verify_checkpoint, Checkpoint, NoteKey, VerifiedCheckpoint,
    MAX_CHECKPOINT_LEN,
};
pub use entry::{AccountAction, DeletionKind, Event, OperatorRole, PublicationForm, MAX_ENTRY_LEN};
pub use publication::{
    LogInclusion, PublicationProof, VerifiedDeletion, VerifiedPublication,
    MAX_PUBLICATION_PROOF_LEN,
};
pub use tree::{
    leaf_hash, node_hash, verify_consistency, verify_inclusion, Hash, MemoryTree, PerfectHashes,
};

/// Why a checkpoint, proof or log entry was refused; says what the sender got
/// wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogError {
    /// A leaf index at or past the tree size.
    #[error("leaf index {index} is not in a tree of {size} leaves")]
    IndexOutOfRange {
        /// The index asked for.
        index: u64,
        /// The tree size.
        size: u64,
    },
    /// A consistency proof needs `0 < old <= new`.
    #[error("tree sizes {old} and {new} are not 0 < old <= new")]
    SizeOrder {
        /// The older size.
        old: u64,
        /// The newer size.
        new: u64,
    },
    /// A tree size larger than the log.
    #[error("tree size {size} is beyond the log's {log_size} entries")]
    BeyondLog {
        /// The size asked for.
        size: u64,
        /// The log's size.
        log_size: u64,
    },
    /// A proof with the wrong number of hashes for its sizes (a proof for
    /// another tree size).
    #[error("proof has {got} hashes; these tree sizes need {expected}")]
    ProofLength {
        /// What the sizes need.
        expected: usize,
        /// What was sent.
        got: usize,
    },
    /// The proof does not lead to the claimed root.
    #[error("proof does not match the tree root")]
    RootMismatch,
    /// A checkpoint or entry that does not parse.
    #[error("{what} is malformed: {why}")]
    Malformed {
        /// Which thing.
        what: &'static str,
        /// What is wrong.
        why: String,
    },
    /// Input over its size limit.
    #[error("{what} is {len} bytes, over the {max}-byte limit")]
    Oversized {
        /// Which thing.
        what: &'static str,
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Parses, but does not re-encode to the same bytes.
    #[error("{0} is not in canonical form")]
    NonCanonical(&'static str),
    /// The checkpoint carries no valid signature of the log's key.
    #[error("checkpoint is not signed by log key {0}")]
    NotSignedByLog(String),
    /// A signature by a known key (the log or a trusted witness) does not verify:
    /// the checkpoint was forged or altered.
    #[error("signature of {name} does not verify")]
    BadSignature {
        /// The key's name.
        name: String,
    },
    /// The checkpoint names another log than the key it was checked against.
    #[error("checkpoint origin {found:?}, expected {expected:?}")]
    WrongOrigin {
        /// The log's origin.
        expected: String,
        /// The checkpoint's.
        found: String,
    },
    /// A proof whose log entry verifies but is not about the thing asked for
    /// (another batch, another content id, a deletion by another node).
    #[error("log entry does not match: {0}")]
    EntryMismatch(String),
    /// Fewer trusted witnesses cosigned than required.
    #[error("{found} trusted witnesses cosigned; {required} required")]
    TooFewWitnesses {
        /// Cosignatures by trusted witnesses.
        found: usize,
        /// The threshold.
        required: usize,
    },
}

/// Parses a lowercase 64-character hex hash.
pub(crate) fn parse_hex_hash(what: &'static str, s: &str) -> Result<Hash, LogError> {
    let malformed = || LogError::Malformed {
        what,
        why: format!("{s:?} is not 64 lowercase hex digits"),
    };
    if s.len() != 64
        || !s
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(malformed());
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).map_err(|_| malformed())?;
    }
    Ok(out)
}

/// Lowercase hex of a hash.
pub fn hex_hash(h: &Hash) -> String {
    h.iter().map(|b| format!("{b:02x}")).collect()
}

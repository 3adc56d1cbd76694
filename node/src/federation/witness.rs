//! Witnessing other nodes' transparency logs (C2SP `tlog-witness` semantics,
//! SPEC.md §8.3): a witness keeps, per log, the latest checkpoint it cosigned;
//! it cosigns a new one only if the log signed it and a consistency proof from
//! that latest size verifies, and it records an equivocation when the log has
//! signed two different roots for one tree size (the two signed notes are the
//! evidence anyone can check).
//!
//! This is the witness's state machine, driven by whatever carries checkpoints
//! (an `add-checkpoint` request: `old`, a consistency proof, the note). Bad input
//! changes nothing: a forged note, a proof that does not verify or a stale size
//! is an error and the witness's state stays as it was.

use std::collections::{BTreeMap, HashMap};

use traceless_protocol::ed25519_dalek::{SigningKey, VerifyingKey};
use traceless_protocol::log::{cosign, verify_checkpoint, verify_consistency, Hash};
use traceless_protocol::log::{Checkpoint, LogError, NoteKey};

/// Sizes whose roots a witness remembers per log, to recognise an older
/// checkpoint that contradicts one it saw.
pub const REMEMBERED_SIZES: usize = 64;

/// A witness's settings.
#[derive(Clone, Debug)]
pub struct Config {
    /// The witness's key name in cosignatures.
    pub name: String,
}

/// What an accepted checkpoint led to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// Consistent with what the witness saw: cosigned (`note` carries the new
    /// cosignature).
    Cosigned {
        /// The log.
        origin: String,
        /// Its new size.
        size: u64,
        /// The note with this witness's cosignature added.
        note: Vec<u8>,
    },
    /// The log signed two different roots for one size.
    Equivocation {
        /// The log.
        origin: String,
        /// The tree size both notes claim.
        size: u64,
        /// The note the witness held.
        first: Vec<u8>,
        /// The contradicting note.
        second: Vec<u8>,
    },
}

/// Why a checkpoint was not cosigned; the sender sent something wrong unless
/// it is [`WitnessError::Conflict`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WitnessError {
    /// The note is malformed, forged, or not signed by the log its origin names.
    #[error("checkpoint refused: {0}")]
    Checkpoint(LogError),
    /// The origin does not name a Traceless node log (`traceless.log/<hex key>`).
    #[error("origin {0:?} does not name a node log")]
    UnknownLog(String),
    /// The consistency proof from the witness's latest size does not verify
    /// (C2SP: 422).
    #[error("consistency proof refused: {0}")]
    BadProof(LogError),
    /// The proof starts at another size than the witness's latest (C2SP: 409
    /// with the latest size): the sender should retry from `latest`.
    #[error("witness holds size {latest}, proof starts at {old}")]
    Conflict {
        /// The witness's latest size of the log.
        latest: u64,
        /// Where the proof started.
        old: u64,
    },
    /// The log equivocated before: this witness no longer cosigns it.
    #[error("log {0} equivocated; not cosigning")]
    Equivocating(String),
}

/// The log key a node-log origin names.
pub fn log_key_of(origin: &str) -> Option<NoteKey> {
    let hex_key = origin.strip_prefix("traceless.log/")?;
    let bytes: [u8; 32] = hex::decode(hex_key).ok()?.try_into().ok()?;
    let key = VerifyingKey::from_bytes(&bytes).ok()?;
    let note_key = NoteKey::of_node(key);
    (note_key.name == origin).then_some(note_key)
}

struct Seen {
    size: u64,
    root: Hash,
    note: Vec<u8>,
    /// Roots (and notes) of recent sizes.
    history: BTreeMap<u64, (Hash, Vec<u8>)>,
}

/// A witness: its key and what it cosigned per log.
pub struct Witness {
    key: SigningKey,
    config: Config,
    logs: HashMap<String, Seen>,
    equivocating: BTreeMap<String, Event>,
}

impl Witness {
    /// A witness that cosigns with `key`.
    pub fn new(key: SigningKey, config: Config) -> Self {
        Witness {
            key,
            config,
            logs: HashMap::new(),
            equivocating: BTreeMap::new(),
        }
    }

    /// This witness's public key, as phones configure it.
    pub fn note_key(&self) -> NoteKey {
        NoteKey {
            name: self.config.name.clone(),
            key: self.key.verifying_key(),
        }
    }

    /// The latest size and root cosigned for `origin`.
    pub fn latest(&self, origin: &str) -> Option<(u64, Hash)> {
        self.logs.get(origin).map(|s| (s.size, s.root))
    }

    /// Whether `origin` was caught equivocating.
    pub fn is_equivocating(&self, origin: &str) -> bool {
        self.equivocating.contains_key(origin)
    }

    /// Every equivocation caught, with its evidence.
    pub fn equivocations(&self) -> impl Iterator<Item = &Event> {
        self.equivocating.values()
    }

    /// C2SP `add-checkpoint`: `note` with a consistency `proof` from size `old`
    /// (the witness's latest; ignored for a log it has not seen). Cosigns at
    /// `now` and returns the cosigned note, or the equivocation it proves.
    pub fn add_checkpoint(
        &mut self,
        old: u64,
        proof: &[Hash],
        note: &[u8],
        now: u64,
    ) -> Result<Event, WitnessError> {
        let origin = note_origin(note).map_err(WitnessError::Checkpoint)?;
        let log = log_key_of(&origin).ok_or_else(|| WitnessError::UnknownLog(origin.clone()))?;
        let cp = verify_checkpoint(note, &log, &[])
            .map_err(WitnessError::Checkpoint)?
            .checkpoint;
        if self.is_equivocating(&origin) {
            return Err(WitnessError::Equivocating(origin));
        }
        if let Some(seen) = self.logs.get(&origin) {
            if let Some((root, first)) = seen.history.get(&cp.size) {
                if *root != cp.root {
                    let e = Event::Equivocation {
                        origin: origin.clone(),
                        size: cp.size,
                        first: first.clone(),
                        second: note.to_vec(),
                    };
                    self.equivocating.insert(origin, e.clone());
                    return Ok(e);
                }
            }
            if cp.size < seen.size || (cp.size > seen.size && old != seen.size) {
                return Err(WitnessError::Conflict {
                    latest: seen.size,
                    old,
                });
            }
            // Every tree extends the empty one; otherwise the proof must hold.
            if cp.size > seen.size && seen.size > 0 {
                verify_consistency(seen.size, cp.size, proof, &seen.root, &cp.root)
                    .map_err(WitnessError::BadProof)?;
            }
        }
        let cosigned =
            cosign(note, &self.config.name, &self.key, now).map_err(WitnessError::Checkpoint)?;
        self.remember(&cp, &cosigned);
        Ok(Event::Cosigned {
            origin,
            size: cp.size,
            note: cosigned,
        })
    }

    fn remember(&mut self, cp: &Checkpoint, note: &[u8]) {
        let seen = self.logs.entry(cp.origin.clone()).or_insert_with(|| Seen {
            size: cp.size,
            root: cp.root,
            note: note.to_vec(),
            history: BTreeMap::new(),
        });
        seen.size = cp.size;
        seen.root = cp.root;
        seen.note = note.to_vec();
        seen.history.insert(cp.size, (cp.root, note.to_vec()));
        while seen.history.len() > REMEMBERED_SIZES {
            seen.history.pop_first();
        }
    }

    /// The latest note cosigned for `origin` (what the witness gossips).
    pub fn latest_note(&self, origin: &str) -> Option<&[u8]> {
        self.logs.get(origin).map(|s| s.note.as_slice())
    }
}

/// The origin line of a note (before its signature is checked).
fn note_origin(note: &[u8]) -> Result<String, LogError> {
    let text = std::str::from_utf8(note).map_err(|_| LogError::Malformed {
        what: "checkpoint",
        why: "not UTF-8".into(),
    })?;
    let body = text.split("\n\n").next().unwrap_or_default();
    Checkpoint::parse_body(&format!("{body}\n")).map(|c| c.origin)
}

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
    /// Claimed evidence that is not two notes of one log, one size and two
    /// roots (each signature is checked first).
    #[error("not an equivocation: the notes are not one log's size with two roots")]
    NotEquivocation,
    /// A witness gossip message or request that does not parse (truncated,
    /// unknown kind, trailing bytes, over its size limit).
    #[error("witness message malformed: {0}")]
    Malformed(&'static str),
    /// A gateway binding whose authority signature does not verify under the
    /// trust list.
    #[error("gateway binding refused: {0}")]
    BadBinding(String),
}

/// The log key a node-log origin names.
pub fn log_key_of(origin: &str) -> Option<NoteKey> {
    let hex_key = origin.strip_prefix("traceless.log/")?;
    let bytes: [u8; 32] = hex::decode(hex_key).ok()?.try_into().ok()?;
    let key = VerifyingKey::from_bytes(&bytes).ok()?;
    let note_key = NoteKey::of_node(key);
    (note_key.name == origin).then_some(note_key)
}

/// What a witness knows of one log.
#[derive(Default)]
struct Seen {
    /// The latest checkpoint it cosigned: size, root and the cosigned note.
    cosigned: Option<(u64, Hash, Vec<u8>)>,
    /// Roots (and notes) of recent sizes, cosigned or only observed.
    history: BTreeMap<u64, (Hash, Vec<u8>)>,
}

/// A witness: its key and what it cosigned per log.
pub struct Witness {
    key: SigningKey,
    config: Config,
    logs: HashMap<String, Seen>,
    equivocating: BTreeMap<String, Event>,
}

/// A note whose log signature verified, with the log's origin.
fn verified(note: &[u8]) -> Result<Checkpoint, WitnessError> {
    let origin = note_origin(note).map_err(WitnessError::Checkpoint)?;
    let log = log_key_of(&origin).ok_or_else(|| WitnessError::UnknownLog(origin.clone()))?;
    Ok(verify_checkpoint(note, &log, &[])
        .map_err(WitnessError::Checkpoint)?
        .checkpoint)
}

/// Checks that `first` and `second` prove an equivocation: both validly signed
/// by one log, one size, two roots. Returns the event they make.
pub fn check_evidence(first: &[u8], second: &[u8]) -> Result<Event, WitnessError> {
    let a = verified(first)?;
    let b = verified(second)?;
    if a.origin != b.origin || a.size != b.size || a.root == b.root {
        return Err(WitnessError::NotEquivocation);
    }
    Ok(Event::Equivocation {
        origin: a.origin,
        size: a.size,
        first: first.to_vec(),
        second: second.to_vec(),
    })
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
        self.logs
            .get(origin)
            .and_then(|s| s.cosigned.as_ref())
            .map(|(size, root, _)| (*size, *root))
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
        let cp = verified(note)?;
        if let Some(e) = self.contradiction(&cp, note)? {
            return Ok(e);
        }
        if let Some((size, root, _)) = self.logs.get(&cp.origin).and_then(|s| s.cosigned.as_ref()) {
            let (size, root) = (*size, *root);
            if cp.size < size || (cp.size > size && old != size) {
                return Err(WitnessError::Conflict { latest: size, old });
            }
            // Every tree extends the empty one; otherwise the proof must hold.
            if cp.size > size && size > 0 {
                verify_consistency(size, cp.size, proof, &root, &cp.root)
                    .map_err(WitnessError::BadProof)?;
            }
        }
        let cosigned =
            cosign(note, &self.config.name, &self.key, now).map_err(WitnessError::Checkpoint)?;
        let seen = self.logs.entry(cp.origin.clone()).or_default();
        seen.cosigned = Some((cp.size, cp.root, cosigned.clone()));
        remember(seen, &cp, note);
        Ok(Event::Cosigned {
            origin: cp.origin,
            size: cp.size,
            note: cosigned,
        })
    }

    /// A note seen on gossip (not submitted for cosigning): remembered by size,
    /// so that a second root for that size is caught whichever note comes
    /// first. `Ok(None)`: nothing contradicts it.
    pub fn observe(&mut self, note: &[u8]) -> Result<Option<Event>, WitnessError> {
        let cp = verified(note)?;
        if let Some(e) = self.contradiction(&cp, note)? {
            return Ok(Some(e));
        }
        remember(self.logs.entry(cp.origin.clone()).or_default(), &cp, note);
        Ok(None)
    }

    /// Restores a log's latest cosigned note (from the witness's durable
    /// state, at start).
    pub fn restore(&mut self, cosigned: &[u8]) -> Result<(), WitnessError> {
        let cp = verified(cosigned)?;
        let seen = self.logs.entry(cp.origin.clone()).or_default();
        seen.cosigned = Some((cp.size, cp.root, cosigned.to_vec()));
        remember(seen, &cp, cosigned);
        Ok(())
    }

    /// Records an equivocation proven by `first` and `second` (evidence from
    /// storage or from another witness: checked here, never trusted). `Ok(None)`
    /// when the log is already known to equivocate.
    pub fn record_evidence(
        &mut self,
        first: &[u8],
        second: &[u8],
    ) -> Result<Option<Event>, WitnessError> {
        let e = check_evidence(first, second)?;
        let Event::Equivocation { origin, .. } = &e else {
            return Err(WitnessError::NotEquivocation);
        };
        if self.is_equivocating(origin) {
            return Ok(None);
        }
        self.equivocating.insert(origin.clone(), e.clone());
        Ok(Some(e))
    }

    /// Refuses a log caught before; catches a second root for a size seen.
    fn contradiction(
        &mut self,
        cp: &Checkpoint,
        note: &[u8],
    ) -> Result<Option<Event>, WitnessError> {
        if self.is_equivocating(&cp.origin) {
            return Err(WitnessError::Equivocating(cp.origin.clone()));
        }
        let Some((root, first)) = self
            .logs
            .get(&cp.origin)
            .and_then(|s| s.history.get(&cp.size))
        else {
            return Ok(None);
        };
        if *root == cp.root {
            return Ok(None);
        }
        let e = Event::Equivocation {
            origin: cp.origin.clone(),
            size: cp.size,
            first: first.clone(),
            second: note.to_vec(),
        };
        self.equivocating.insert(cp.origin.clone(), e.clone());
        Ok(Some(e))
    }

    /// The latest note cosigned for `origin` (what the witness gossips).
    pub fn latest_note(&self, origin: &str) -> Option<&[u8]> {
        self.logs
            .get(origin)
            .and_then(|s| s.cosigned.as_ref())
            .map(|(_, _, n)| n.as_slice())
    }
}

/// Keeps `note` as the one of its size (the first one seen stays: it is the
/// evidence if another root turns up), at most [`REMEMBERED_SIZES`] sizes.
fn remember(seen: &mut Seen, cp: &Checkpoint, note: &[u8]) {
    seen.history
        .entry(cp.size)
        .or_insert_with(|| (cp.root, note.to_vec()));
    while seen.history.len() > REMEMBERED_SIZES {
        seen.history.pop_first();
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

//! Witnessing over the federation (SPEC.md §8.3): the wire forms, the durable
//! witness state and the book the swarm loop and the HTTP side share.
//!
//! - Every node signs its checkpoint at each period boundary and pushes it to
//!   each connected peer with the C2SP `add-checkpoint` request
//!   ([`AddCheckpoint`], protocol [`WITNESS_PROTOCOL`]); a peer that holds a
//!   size answers [`AddCheckpointResponse::Conflict`] and the node retries with
//!   the consistency proof from it.
//! - A witness cosigns, makes its new state durable, answers with the cosigned
//!   note and gossips it on [`CHECKPOINT_TOPIC`] ([`Gossip::Checkpoint`]).
//!   Every node remembers the notes it sees there per size, so two roots for one
//!   size are caught whichever arrives first; the two notes are gossiped as
//!   [`Gossip::Equivocation`] and every receiver checks both signatures itself.
//! - A gateway's announcement carries a [`Binding`]: its authority's signature
//!   over its log origin, so a relay knows whose batches to stop forwarding when
//!   that log equivocates (and nobody can make it stop forwarding another
//!   authority's batches).
//! - The origin keeps the cosignatures of known witnesses on its own latest
//!   checkpoint, which `GET /v1/log/checkpoint` serves.
//!
//! The gossip message is a small binary framing written by hand (a kind byte
//! and length-prefixed fields; a crate would add a dependency for 40 lines).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use traceless_protocol::ed25519_dalek::SigningKey;
use traceless_protocol::ed25519_dalek::{Signature, Signer as _};
use traceless_protocol::log::checkpoint::merge_signatures;
use traceless_protocol::log::{verify_checkpoint, Hash, NoteKey, MAX_CHECKPOINT_LEN};
use traceless_protocol::{AuthorityKey, TrustList};

use super::witness::{check_evidence, log_key_of, Config, Event, Witness, WitnessError};
use crate::storage::keyspace::{witness_key, WITNESS, WITNESS_COSIGNED, WITNESS_EVIDENCE};

/// The gossip topic of cosigned checkpoints and equivocation evidence.
pub const CHECKPOINT_TOPIC: &str = "traceless/v1/checkpoints";
/// The `add-checkpoint` request-response protocol.
pub const WITNESS_PROTOCOL: &str = "/traceless/witness/1.0.0";
/// Signing context of a gateway binding.
pub const BINDING_CONTEXT: &[u8] = b"traceless/v1/log-binding";
/// Largest witness gossip message: two notes and a binding.
pub const MAX_WITNESS_MESSAGE_LEN: usize = 2 * (MAX_CHECKPOINT_LEN + 2) + 256;
/// Largest `add-checkpoint` request (a note and a proof of 64 hashes).
pub const MAX_ADD_CHECKPOINT_LEN: u64 = (MAX_CHECKPOINT_LEN + 64 * 40 + 256) as u64;

const KIND_CHECKPOINT: u8 = 1;
const KIND_EQUIVOCATION: u8 = 2;

/// `context || 0x00 || log origin`, as every signature of SPEC.md §5.2.
fn binding_message(log_origin: &str) -> Vec<u8> {
    [BINDING_CONTEXT, &[0], log_origin.as_bytes()].concat()
}

/// A gateway's authority vouching for its log: the authority's Ed25519
/// signature (context [`BINDING_CONTEXT`]) over the log origin.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Binding {
    /// Authority id.
    pub authority: String,
    /// Which of its trust-list keys signed.
    pub key_id: u32,
    /// The signature.
    pub signature: [u8; 64],
}

impl Binding {
    /// The binding of `log_origin` by `key`.
    pub fn sign(key: &AuthorityKey, log_origin: &str) -> Binding {
        Binding {
            authority: key.origin.clone(),
            key_id: key.key_id,
            signature: key
                .signing_key
                .sign(&binding_message(log_origin))
                .to_bytes(),
        }
    }

    /// Checks the binding of `log_origin` against the trust list.
    pub fn verify(&self, trust: &TrustList, log_origin: &str) -> Result<(), WitnessError> {
        let key = trust
            .get(&self.authority, self.key_id)
            .map_err(|e| WitnessError::BadBinding(e.to_string()))?;
        key.verify_strict(
            &binding_message(log_origin),
            &Signature::from_bytes(&self.signature),
        )
        .map_err(|_| WitnessError::BadBinding(format!("bad signature by {}", self.authority)))
    }
}

/// A message on [`CHECKPOINT_TOPIC`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Gossip {
    /// A checkpoint note (cosigned by the witness that gossips it), with the
    /// log's gateway binding if it has one.
    Checkpoint {
        /// The note.
        note: Vec<u8>,
        /// The binding.
        binding: Option<Binding>,
    },
    /// Two notes of one log, one size, two roots.
    Equivocation {
        /// The note held first.
        first: Vec<u8>,
        /// The contradicting note.
        second: Vec<u8>,
        /// The log's gateway binding, if known.
        binding: Option<Binding>,
    },
}

fn put_field(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
    out.extend_from_slice(bytes);
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], WitnessError> {
        if self.0.len() < n {
            return Err(WitnessError::Malformed("truncated"));
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    fn field(&mut self) -> Result<&'a [u8], WitnessError> {
        let len = self.take(2)?;
        self.take(u16::from_be_bytes([len[0], len[1]]) as usize)
    }
}

impl Gossip {
    /// The wire form (SPEC.md §8.3).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let binding = match self {
            Gossip::Checkpoint { note, binding } => {
                out.push(KIND_CHECKPOINT);
                put_field(&mut out, note);
                binding
            }
            Gossip::Equivocation {
                first,
                second,
                binding,
            } => {
                out.push(KIND_EQUIVOCATION);
                put_field(&mut out, first);
                put_field(&mut out, second);
                binding
            }
        };
        if let Some(b) = binding {
            put_field(&mut out, b.authority.as_bytes());
            out.extend_from_slice(&b.key_id.to_be_bytes());
            out.extend_from_slice(&b.signature);
        }
        out
    }

    /// Parses the wire form; refuses anything over the size limit, truncated,
    /// of an unknown kind or with bytes left over.
    pub fn decode(bytes: &[u8]) -> Result<Gossip, WitnessError> {
        if bytes.len() > MAX_WITNESS_MESSAGE_LEN {
            return Err(WitnessError::Malformed("over the size limit"));
        }
        let mut r = Reader(bytes);
        let kind = r.take(1)?[0];
        let notes = match kind {
            KIND_CHECKPOINT => vec![r.field()?.to_vec()],
            KIND_EQUIVOCATION => vec![r.field()?.to_vec(), r.field()?.to_vec()],
            _ => return Err(WitnessError::Malformed("unknown kind")),
        };
        let binding = if r.0.is_empty() {
            None
        } else {
            let authority = std::str::from_utf8(r.field()?)
                .map_err(|_| WitnessError::Malformed("authority is not UTF-8"))?
                .to_owned();
            let key_id = u32::from_be_bytes(r.take(4)?.try_into().unwrap_or_default());
            let signature: [u8; 64] = r.take(64)?.try_into().unwrap_or([0; 64]);
            if !r.0.is_empty() {
                return Err(WitnessError::Malformed("trailing bytes"));
            }
            Some(Binding {
                authority,
                key_id,
                signature,
            })
        };
        let mut notes = notes.into_iter();
        let first = notes.next().unwrap_or_default();
        Ok(match notes.next() {
            None => Gossip::Checkpoint {
                note: first,
                binding,
            },
            Some(second) => Gossip::Equivocation {
                first,
                second,
                binding,
            },
        })
    }
}

/// C2SP `add-checkpoint`: a log pushes its note, with the consistency proof
/// from `old`, the size it believes the witness holds (0: none).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AddCheckpoint {
    /// The witness's latest size as the log believes it.
    pub old: u64,
    /// Consistency proof from `old` to the note's size.
    pub proof: Vec<Hash>,
    /// The note.
    #[serde(with = "serde_bytes")]
    pub note: Vec<u8>,
    /// The log's gateway binding, if it is a gateway's.
    pub binding: Option<(String, u32, serde_bytes::ByteBuf)>,
}

impl AddCheckpoint {
    /// The bytes it carries: note, proof hashes, binding (CBOR framing adds a
    /// few bytes per field).
    pub fn wire_len(&self) -> usize {
        self.note.len()
            + 32 * self.proof.len()
            + self
                .binding
                .as_ref()
                .map_or(0, |(a, _, s)| a.len() + 4 + s.len())
    }

    fn binding(&self) -> Result<Option<Binding>, WitnessError> {
        self.binding
            .as_ref()
            .map(|(authority, key_id, sig)| {
                Ok(Binding {
                    authority: authority.clone(),
                    key_id: *key_id,
                    signature: sig
                        .as_ref()
                        .try_into()
                        .map_err(|_| WitnessError::Malformed("binding signature"))?,
                })
            })
            .transpose()
    }
}

/// The answer to [`AddCheckpoint`].
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub enum AddCheckpointResponse {
    /// Cosigned: the note with the witness's cosignature.
    Cosigned(serde_bytes::ByteBuf),
    /// The witness holds another size (C2SP 409): retry with a proof from it.
    Conflict(u64),
    /// This node does not cosign: do not push to it again.
    NotAWitness,
    /// Refused (bad proof, forged, equivocating log), with why.
    Refused(String),
}

/// What the swarm should do with a gossip message, and what to gossip back.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Valid and news: forward it.
    Accept(Option<Vec<u8>>),
    /// Valid, nothing new (a log already caught, a known equivocation).
    Ignore,
}

/// The witness's durable state: per log the latest cosigned note, and the
/// evidence of each equivocation caught (under [`WITNESS`] in the node's sled
/// tree; each write is flushed before anything leaves the node).
struct Durable {
    db: sled::Db,
}

impl Durable {
    fn put(&self, kind: u8, origin: &str, value: &[u8]) -> Result<(), sled::Error> {
        self.db.insert(witness_key(kind, origin), value)?;
        self.db.flush()?;
        Ok(())
    }

    fn all(&self, kind: u8) -> Vec<Vec<u8>> {
        self.db
            .scan_prefix([WITNESS, kind])
            .filter_map(|i| i.ok().map(|(_, v)| v.to_vec()))
            .collect()
    }
}

/// An equivocation as the page and `/v1/witness/equivocations` show it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Equivocation {
    /// The log.
    pub origin: String,
    /// The size both notes claim.
    pub size: u64,
    /// The two notes.
    pub first: Vec<u8>,
    /// The second note.
    pub second: Vec<u8>,
    /// The authority whose gateway the log is, if bound.
    pub authority: Option<String>,
}

struct State {
    witness: Witness,
    /// Whether this node cosigns (relays by default).
    cosign: bool,
    /// This node's own latest announced note, with the known witnesses'
    /// cosignatures collected so far.
    own: Option<Vec<u8>>,
    /// Gateway bindings seen, by log origin (verified).
    bindings: BTreeMap<String, Binding>,
    /// Equivocations, by log origin.
    caught: BTreeMap<String, Equivocation>,
    /// Authorities whose gateway log equivocated: their batches are not
    /// forwarded.
    blocked: BTreeSet<String>,
}

/// The witness book: shared by the swarm loop (which feeds it) and the HTTP
/// side (which reads it).
pub struct Book {
    state: Mutex<State>,
    durable: Durable,
    trust: TrustList,
    own_origin: String,
    own_log: NoteKey,
    known: Vec<NoteKey>,
    binding: Option<Binding>,
}

/// How a [`Book`] is set up.
pub struct BookConfig {
    /// The node's key: its log key and its witness key.
    pub node_key: SigningKey,
    /// Whether this node cosigns others' checkpoints.
    pub cosign: bool,
    /// Witnesses whose cosignatures this node collects (Ed25519 keys).
    pub known: Vec<[u8; 32]>,
    /// On a gateway: its authority's binding of the node's log.
    pub binding: Option<Binding>,
    /// The trust list (to check other gateways' bindings).
    pub trust: TrustList,
}

impl Book {
    /// Opens the book over the node's sled tree and restores its durable state.
    pub fn open(db: sled::Db, config: BookConfig) -> Book {
        let pk = config.node_key.verifying_key();
        let own_log = NoteKey::of_node(pk);
        let mut witness = Witness::new(
            config.node_key.clone(),
            Config {
                name: NoteKey::witness_of_node(pk).name,
            },
        );
        let durable = Durable { db };
        for note in durable.all(WITNESS_COSIGNED) {
            if let Err(e) = witness.restore(&note) {
                tracing::error!("witness state: stored note does not verify: {e}");
            }
        }
        let known = config
            .known
            .iter()
            .filter_map(|k| {
                traceless_protocol::ed25519_dalek::VerifyingKey::from_bytes(k)
                    .ok()
                    .map(NoteKey::witness_of_node)
            })
            .collect();
        let binding = config.binding;
        let book = Book {
            state: Mutex::new(State {
                witness,
                cosign: config.cosign,
                own: None,
                bindings: BTreeMap::new(),
                caught: BTreeMap::new(),
                blocked: BTreeSet::new(),
            }),
            durable,
            trust: config.trust,
            own_origin: own_log.name.clone(),
            own_log,
            known,
            binding,
        };
        for bytes in book.durable.all(WITNESS_EVIDENCE) {
            if let Err(e) = book.on_gossip(&bytes) {
                tracing::error!("witness state: stored evidence does not verify: {e}");
            }
        }
        book
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// This node's log origin.
    pub fn own_origin(&self) -> &str {
        &self.own_origin
    }

    /// This node's gateway binding (on a gateway).
    pub fn binding(&self) -> Option<&Binding> {
        self.binding.as_ref()
    }

    /// The `add-checkpoint` request that pushes `note` to a witness believed to
    /// hold `old` (0: none), with `proof` from it.
    pub fn request(&self, old: u64, proof: Vec<Hash>, note: Vec<u8>) -> AddCheckpoint {
        AddCheckpoint {
            old,
            proof,
            note,
            binding: self.binding.as_ref().map(|b| {
                (
                    b.authority.clone(),
                    b.key_id,
                    serde_bytes::ByteBuf::from(b.signature.to_vec()),
                )
            }),
        }
    }

    /// Starts a new round for this node's own checkpoint `note`: cosignatures
    /// collected for an older size are dropped (a note of the same size keeps
    /// them).
    pub fn announce(&self, note: &[u8]) {
        let mut s = self.state();
        let keep = s
            .own
            .as_ref()
            .and_then(|old| merge_signatures(old, note).ok().flatten());
        s.own = Some(keep.unwrap_or_else(|| note.to_vec()));
    }

    /// This node's latest announced checkpoint with the cosignatures of known
    /// witnesses gathered so far.
    pub fn own_note(&self) -> Option<Vec<u8>> {
        self.state().own.clone()
    }

    /// The known witnesses whose valid cosignatures the own note carries.
    pub fn own_witnesses(&self) -> Vec<String> {
        let Some(note) = self.own_note() else {
            return Vec::new();
        };
        verify_checkpoint(&note, &self.own_log, &self.known)
            .map(|v| v.cosignatures.into_iter().map(|c| c.witness).collect())
            .unwrap_or_default()
    }

    /// Adds the cosignatures of known witnesses that `note` carries to this
    /// node's own note of the same text; signatures of unknown keys are
    /// ignored (SPEC.md §8.3). Returns how many known witnesses it gained.
    pub fn collect(&self, note: &[u8]) -> Result<usize, WitnessError> {
        let v = verify_checkpoint(note, &self.own_log, &self.known)
            .map_err(WitnessError::Checkpoint)?;
        let names: BTreeSet<&str> = v.cosignatures.iter().map(|c| c.witness.as_str()).collect();
        let kept = only_signatures_of(note, &names);
        let mut s = self.state();
        let Some(own) = s.own.clone() else {
            return Ok(0);
        };
        let before = verify_checkpoint(&own, &self.own_log, &self.known)
            .map(|v| v.cosignatures.len())
            .unwrap_or(0);
        let Some(merged) = merge_signatures(&own, &kept).map_err(WitnessError::Checkpoint)? else {
            return Ok(0); // another size than the one announced last
        };
        let after = verify_checkpoint(&merged, &self.own_log, &self.known)
            .map_err(WitnessError::Checkpoint)?
            .cosignatures
            .len();
        s.own = Some(merged);
        Ok(after.saturating_sub(before))
    }

    /// Witness side of `add-checkpoint`: cosigns if consistent, makes the new
    /// state durable, and returns the answer and what to gossip.
    pub fn add_checkpoint(
        &self,
        req: &AddCheckpoint,
        now: u64,
    ) -> (AddCheckpointResponse, Option<Vec<u8>>) {
        match self.try_add(req, now) {
            Ok(r) => r,
            Err(WitnessError::Conflict { latest, .. }) => {
                (AddCheckpointResponse::Conflict(latest), None)
            }
            Err(e) => (AddCheckpointResponse::Refused(e.to_string()), None),
        }
    }

    fn try_add(
        &self,
        req: &AddCheckpoint,
        now: u64,
    ) -> Result<(AddCheckpointResponse, Option<Vec<u8>>), WitnessError> {
        let binding = req.binding()?;
        let mut s = self.state();
        if !s.cosign {
            return Ok((AddCheckpointResponse::NotAWitness, None));
        }
        let origin = origin_of(&req.note)?;
        if let Some(b) = &binding {
            b.verify(&self.trust, &origin)?;
        }
        match s
            .witness
            .add_checkpoint(req.old, &req.proof, &req.note, now)?
        {
            Event::Cosigned { origin, note, .. } => {
                self.durable
                    .put(WITNESS_COSIGNED, &origin, &note)
                    .map_err(|_| WitnessError::Malformed("witness state could not be stored"))?;
                if let Some(b) = binding.clone() {
                    s.bindings.insert(origin, b);
                }
                let gossip = Gossip::Checkpoint {
                    note: note.clone(),
                    binding,
                };
                Ok((
                    AddCheckpointResponse::Cosigned(serde_bytes::ByteBuf::from(note)),
                    Some(gossip.encode()),
                ))
            }
            e @ Event::Equivocation { .. } => {
                if let Some(b) = binding {
                    s.bindings.insert(origin, b);
                }
                let gossip = self.caught(&mut s, e);
                Ok((
                    AddCheckpointResponse::Refused("equivocation".into()),
                    Some(gossip),
                ))
            }
        }
    }

    /// Records an equivocation durably, blocks its authority, and returns the
    /// evidence to gossip.
    fn caught(&self, s: &mut State, e: Event) -> Vec<u8> {
        let Event::Equivocation {
            origin,
            size,
            first,
            second,
        } = e
        else {
            return Vec::new();
        };
        let binding = s.bindings.get(&origin).cloned();
        let evidence = Gossip::Equivocation {
            first: first.clone(),
            second: second.clone(),
            binding: binding.clone(),
        }
        .encode();
        if let Err(e) = self.durable.put(WITNESS_EVIDENCE, &origin, &evidence) {
            tracing::error!("storing equivocation evidence failed: {e}");
        }
        let authority = binding.map(|b| b.authority);
        if origin != self.own_origin {
            if let Some(a) = &authority {
                s.blocked.insert(a.clone());
            }
        }
        tracing::warn!(%origin, size, authority = ?authority,
            "log equivocated: two signed checkpoints of one size with different roots");
        s.caught.insert(
            origin.clone(),
            Equivocation {
                origin,
                size,
                first,
                second,
                authority,
            },
        );
        evidence
    }

    /// A message from [`CHECKPOINT_TOPIC`]. `Err`: the sender sent something
    /// invalid (reject and penalise); nothing was stored.
    pub fn on_gossip(&self, bytes: &[u8]) -> Result<Verdict, WitnessError> {
        match Gossip::decode(bytes)? {
            Gossip::Checkpoint { note, binding } => {
                let origin = origin_of(&note)?;
                if origin == self.own_origin {
                    self.collect(&note)?;
                    return Ok(Verdict::Accept(None));
                }
                if let Some(b) = &binding {
                    b.verify(&self.trust, &origin)?;
                }
                let mut s = self.state();
                let observed = match s.witness.observe(&note) {
                    Err(WitnessError::Equivocating(_)) => return Ok(Verdict::Ignore),
                    r => r?,
                };
                if let Some(b) = binding {
                    s.bindings.insert(origin, b);
                }
                Ok(Verdict::Accept(observed.map(|e| self.caught(&mut s, e))))
            }
            Gossip::Equivocation {
                first,
                second,
                binding,
            } => {
                let e = check_evidence(&first, &second)?;
                let Event::Equivocation { origin, .. } = &e else {
                    return Err(WitnessError::NotEquivocation);
                };
                if let Some(b) = &binding {
                    b.verify(&self.trust, origin)?;
                }
                let mut s = self.state();
                if s.caught.contains_key(origin) {
                    return Ok(Verdict::Ignore);
                }
                // Marks the witness too (it stops cosigning the log).
                let _ = s.witness.record_evidence(&first, &second);
                if let Some(b) = binding {
                    s.bindings.insert(origin.clone(), b);
                }
                self.caught(&mut s, e);
                Ok(Verdict::Accept(None))
            }
        }
    }

    /// Whether batches of `authority` must not be forwarded or served to peers.
    pub fn is_blocked(&self, authority: &str) -> bool {
        self.state().blocked.contains(authority)
    }

    /// Every equivocation caught, oldest log origin first.
    pub fn equivocations(&self) -> Vec<Equivocation> {
        self.state().caught.values().cloned().collect()
    }

    /// This node's own announced note if it is of `size` (what
    /// `GET /v1/log/checkpoint` serves while the log has not grown since).
    pub fn own_note_at(&self, size: u64) -> Option<Vec<u8>> {
        let note = self.own_note()?;
        let v = verify_checkpoint(&note, &self.own_log, &[]).ok()?;
        (v.checkpoint.size == size).then_some(note)
    }

    /// The size of a note of this node's own log, if it verifies.
    pub fn own_size(&self, note: &[u8]) -> Option<u64> {
        verify_checkpoint(note, &self.own_log, &[])
            .ok()
            .map(|v| v.checkpoint.size)
    }

    /// Latest size cosigned for `origin` (tests, page).
    pub fn latest(&self, origin: &str) -> Option<(u64, Hash)> {
        self.state().witness.latest(origin)
    }
}

/// The origin of a note whose log signature verifies.
fn origin_of(note: &[u8]) -> Result<String, WitnessError> {
    let text = std::str::from_utf8(note).map_err(|_| WitnessError::Malformed("not UTF-8"))?;
    let origin = text.lines().next().unwrap_or_default().to_owned();
    let log = log_key_of(&origin).ok_or_else(|| WitnessError::UnknownLog(origin.clone()))?;
    verify_checkpoint(note, &log, &[]).map_err(WitnessError::Checkpoint)?;
    Ok(origin)
}

/// `note` with only the signature lines (`— <name> <base64>`) of the log and
/// of `names`.
fn only_signatures_of(note: &[u8], names: &BTreeSet<&str>) -> Vec<u8> {
    let text = String::from_utf8_lossy(note);
    let Some((body, sigs)) = text.split_once("\n\n") else {
        return note.to_vec();
    };
    let origin = body.lines().next().unwrap_or_default();
    let mut out = format!("{body}\n\n");
    for line in sigs.lines() {
        let name = line
            .strip_prefix("\u{2014} ")
            .and_then(|l| l.split(' ').next());
        if name.is_some_and(|n| n == origin || names.contains(n)) {
            out.push_str(line);
            out.push('\n');
        }
    }
    out.into_bytes()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use traceless_protocol::log::{log_origin, Checkpoint, LogError, MemoryTree};

    fn tree(n: u64, salt: u8) -> MemoryTree {
        let mut t = MemoryTree::new();
        for i in 0..n {
            t.push(&[salt, i as u8]);
        }
        t
    }

    fn note_of(key: &SigningKey, t: &MemoryTree) -> Vec<u8> {
        Checkpoint {
            origin: log_origin(&key.verifying_key().to_bytes()),
            size: t.size(),
            root: t.root(),
        }
        .sign(key)
    }

    fn book(seed: u8, known: &[u8], authority: Option<AuthorityKey>) -> (Book, tempfile::TempDir) {
        let origin = log_origin(
            &SigningKey::from_bytes(&[seed; 32])
                .verifying_key()
                .to_bytes(),
        );
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let key = |s: u8| SigningKey::from_bytes(&[s; 32]);
        let mut trust = TrustList::new();
        trust.insert("a.health", 1, gateway_authority().verifying_key());
        let b = Book::open(
            db,
            BookConfig {
                node_key: key(seed),
                cosign: true,
                known: known
                    .iter()
                    .map(|s| key(*s).verifying_key().to_bytes())
                    .collect(),
                binding: authority.map(|a| Binding::sign(&a, &origin)),
                trust,
            },
        );
        (b, dir)
    }

    fn gateway_authority() -> AuthorityKey {
        AuthorityKey {
            origin: "a.health".into(),
            key_id: 1,
            signing_key: SigningKey::from_bytes(&[40; 32]),
        }
    }

    #[test]
    fn gossip_messages_round_trip_and_malformed_ones_are_typed_errors() {
        let g = Gossip::Equivocation {
            first: b"one".to_vec(),
            second: b"two".to_vec(),
            binding: Some(Binding::sign(&gateway_authority(), "traceless.log/00")),
        };
        let bytes = g.encode();
        assert_eq!(Gossip::decode(&bytes).unwrap(), g);
        for cut in [0, 1, 3, bytes.len() - 1] {
            assert_eq!(
                Gossip::decode(&bytes[..cut]),
                Err(WitnessError::Malformed("truncated")),
                "cut at {cut}"
            );
        }
        let mut extra = bytes.clone();
        extra.push(0);
        assert_eq!(
            Gossip::decode(&extra),
            Err(WitnessError::Malformed("trailing bytes"))
        );
        assert_eq!(
            Gossip::decode(&[9, 0, 0]),
            Err(WitnessError::Malformed("unknown kind"))
        );
        assert_eq!(
            Gossip::decode(&vec![1; MAX_WITNESS_MESSAGE_LEN + 1]),
            Err(WitnessError::Malformed("over the size limit"))
        );
    }

    #[test]
    fn a_forged_or_truncated_note_on_gossip_is_refused_and_changes_nothing() {
        let (b, _d) = book(2, &[], None);
        let gw = SigningKey::from_bytes(&[1; 32]);
        let origin = log_origin(&gw.verifying_key().to_bytes());
        let t = tree(4, 0);
        let forged = Checkpoint {
            origin: origin.clone(),
            size: 4,
            root: t.root(),
        }
        .sign(&SigningKey::from_bytes(&[6; 32]));
        let msg = |note: &[u8]| {
            Gossip::Checkpoint {
                note: note.to_vec(),
                binding: None,
            }
            .encode()
        };
        assert!(matches!(
            b.on_gossip(&msg(&forged)),
            Err(WitnessError::Checkpoint(LogError::NotSignedByLog(_)))
        ));
        let good = note_of(&gw, &t);
        assert!(matches!(
            b.on_gossip(&msg(&good[..good.len() - 10])),
            Err(WitnessError::Checkpoint(_))
        ));
        // Nothing was remembered: the honest note of another root is no
        // equivocation.
        assert_eq!(
            b.on_gossip(&msg(&note_of(&gw, &tree(4, 1)))),
            Ok(Verdict::Accept(None))
        );
        assert!(b.equivocations().is_empty());
    }

    #[test]
    fn a_binding_by_an_untrusted_key_is_refused() {
        let (b, _d) = book(2, &[], None);
        let gw = SigningKey::from_bytes(&[1; 32]);
        let origin = log_origin(&gw.verifying_key().to_bytes());
        let mut rogue = gateway_authority();
        rogue.signing_key = SigningKey::from_bytes(&[41; 32]);
        let msg = Gossip::Checkpoint {
            note: note_of(&gw, &tree(3, 0)),
            binding: Some(Binding::sign(&rogue, &origin)),
        }
        .encode();
        assert!(matches!(
            b.on_gossip(&msg),
            Err(WitnessError::BadBinding(_))
        ));
    }

    #[test]
    fn two_roots_on_gossip_are_caught_block_the_bound_authority_and_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let gw = SigningKey::from_bytes(&[1; 32]);
        let origin = log_origin(&gw.verifying_key().to_bytes());
        let binding = Some(Binding::sign(&gateway_authority(), &origin));
        let open = || {
            let mut trust = TrustList::new();
            trust.insert("a.health", 1, gateway_authority().verifying_key());
            Book::open(
                sled::open(dir.path()).unwrap(),
                BookConfig {
                    node_key: SigningKey::from_bytes(&[2; 32]),
                    cosign: true,
                    known: Vec::new(),
                    binding: None,
                    trust,
                },
            )
        };
        let b = open();
        let msg = |note| {
            Gossip::Checkpoint {
                note,
                binding: binding.clone(),
            }
            .encode()
        };
        assert_eq!(
            b.on_gossip(&msg(note_of(&gw, &tree(5, 0)))),
            Ok(Verdict::Accept(None))
        );
        let Ok(Verdict::Accept(Some(evidence))) = b.on_gossip(&msg(note_of(&gw, &tree(5, 1))))
        else {
            panic!("not caught")
        };
        assert!(b.is_blocked("a.health"));
        assert!(!b.is_blocked("b.health"));
        // Another node checks the evidence itself, and acts on it once.
        let (other, _d) = book(3, &[], None);
        assert_eq!(other.on_gossip(&evidence), Ok(Verdict::Accept(None)));
        assert_eq!(other.on_gossip(&evidence), Ok(Verdict::Ignore));
        assert!(other.is_blocked("a.health"));
        // Evidence of one root twice is no evidence.
        let n = note_of(&gw, &tree(5, 0));
        let fake = Gossip::Equivocation {
            first: n.clone(),
            second: n,
            binding: None,
        }
        .encode();
        assert_eq!(
            book(4, &[], None).0.on_gossip(&fake),
            Err(WitnessError::NotEquivocation)
        );
        drop(b);
        let again = open();
        assert!(again.is_blocked("a.health"), "evidence is durable");
        assert_eq!(again.equivocations().len(), 1);
    }

    #[test]
    fn the_origin_keeps_known_witnesses_cosignatures_and_ignores_unknown_ones() {
        let (gateway, _d) = book(1, &[2], Some(gateway_authority()));
        let (known, _d2) = book(2, &[], None);
        let (unknown, _d3) = book(3, &[], None);
        let gw = SigningKey::from_bytes(&[1; 32]);
        let note = note_of(&gw, &tree(3, 0));
        gateway.announce(&note);
        let req = gateway.request(0, Vec::new(), note.clone());
        for w in [&unknown, &known] {
            let (AddCheckpointResponse::Cosigned(c), Some(g)) = w.add_checkpoint(&req, 7) else {
                panic!()
            };
            assert!(matches!(Gossip::decode(&g), Ok(Gossip::Checkpoint { .. })));
            gateway.collect(&c).unwrap();
        }
        assert_eq!(
            gateway.own_witnesses(),
            vec![NoteKey::witness_of_node(SigningKey::from_bytes(&[2; 32]).verifying_key()).name]
        );
        let own = String::from_utf8(gateway.own_note().unwrap()).unwrap();
        assert_eq!(
            own.matches('\u{2014}').count(),
            2,
            "log + known witness: {own}"
        );
        // A proof for the wrong size is refused; the state stays.
        let t9 = tree(9, 0);
        let bad = gateway.request(3, t9.prove_consistency(2, 9).unwrap(), note_of(&gw, &t9));
        assert!(matches!(
            known.add_checkpoint(&bad, 8),
            (AddCheckpointResponse::Refused(_), None)
        ));
        assert_eq!(known.latest(gateway.own_origin()).map(|l| l.0), Some(3));
        // From a size the witness does not hold: conflict with its size.
        let from0 = gateway.request(0, Vec::new(), note_of(&gw, &t9));
        assert_eq!(
            known.add_checkpoint(&from0, 8).0,
            AddCheckpointResponse::Conflict(3)
        );
    }
}

//! Checkpoints (C2SP `tlog-checkpoint`): a signed note whose text is
//!
//! ```text
//! <origin>\n<tree size, decimal>\n<base64 root hash>\n
//! ```
//!
//! signed by the log's Ed25519 key (C2SP `signed-note`, key ID
//! `SHA-256(name || 0x0A || 0x01 || key)[:4]`) and cosigned by witnesses with
//! C2SP `tlog-cosignature` (`cosignature/v1`, key ID
//! `SHA-256(name || 0x0A || 0x04 || key)[:4]`, signature
//! `timestamp(8, big-endian) || Ed25519("cosignature/v1\ntime <t>\n" || text)`).
//! The note syntax and the signature-line handling come from the `signed_note`
//! crate; this module adds the checkpoint body and the cosignature algorithm,
//! which that crate does not have.

use base64::prelude::{Engine, BASE64_STANDARD};
use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};
use signed_note::{Note, NoteError, Signature, Signer, Verifier, VerifierList};

use super::tree::Hash;
use super::LogError;

/// Largest checkpoint note accepted (body plus up to a hundred signatures).
pub const MAX_CHECKPOINT_LEN: usize = 16 << 10;

/// Signature algorithm byte of Ed25519 in C2SP `signed-note`.
const ALG_ED25519: u8 = 0x01;
/// Signature algorithm byte of `cosignature/v1`.
const ALG_COSIGNATURE_V1: u8 = 0x04;

/// The log origin (and log key name) of the node whose checkpoint key is
/// `node_id`: `traceless.log/<hex key>`.
pub fn log_origin(node_id: &[u8; 32]) -> String {
    format!("traceless.log/{}", super::hex_hash(node_id))
}

/// A log's or a witness's public key, with the name it signs under.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoteKey {
    /// Key name (for a log: its origin).
    pub name: String,
    /// Ed25519 public key.
    pub key: VerifyingKey,
}

impl NoteKey {
    /// The key of a node: named by [`log_origin`].
    pub fn of_node(key: VerifyingKey) -> Self {
        NoteKey {
            name: log_origin(&key.to_bytes()),
            key,
        }
    }

    /// The key a node cosigns other logs' checkpoints under: named
    /// `traceless.witness/<hex key>`.
    pub fn witness_of_node(key: VerifyingKey) -> Self {
        NoteKey {
            name: format!("traceless.witness/{}", super::hex_hash(&key.to_bytes())),
            key,
        }
    }

    fn key_id(&self, alg: u8) -> u32 {
        let mut h = Sha256::new();
        h.update(self.name.as_bytes());
        h.update([0x0A, alg]);
        h.update(self.key.as_bytes());
        let d = h.finalize();
        u32::from_be_bytes([d[0], d[1], d[2], d[3]])
    }

    /// Key ID of this key's checkpoint signatures.
    pub fn log_key_id(&self) -> u32 {
        self.key_id(ALG_ED25519)
    }

    /// Key ID of this key's cosignatures.
    pub fn witness_key_id(&self) -> u32 {
        self.key_id(ALG_COSIGNATURE_V1)
    }
}

/// A tree head: what a log commits to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log's origin.
    pub origin: String,
    /// Number of leaves.
    pub size: u64,
    /// Root hash of the tree of `size` leaves.
    pub root: Hash,
}

impl Checkpoint {
    /// The note text.
    pub fn body(&self) -> String {
        format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            BASE64_STANDARD.encode(self.root)
        )
    }

    /// Parses a note text (no extension lines: this log writes none).
    pub fn parse_body(text: &str) -> Result<Checkpoint, LogError> {
        let malformed = |why: &str| LogError::Malformed {
            what: "checkpoint",
            why: why.to_owned(),
        };
        let mut lines = text.split('\n');
        let (Some(origin), Some(size), Some(root), Some(""), None) = (
            lines.next(),
            lines.next(),
            lines.next(),
            lines.next(),
            lines.next(),
        ) else {
            return Err(malformed("not three lines (origin, size, root)"));
        };
        if origin.is_empty() {
            return Err(malformed("empty origin"));
        }
        let size: u64 = size
            .parse()
            .map_err(|_| malformed("tree size is not a decimal number"))?;
        let root: Hash = BASE64_STANDARD
            .decode(root)
            .ok()
            .and_then(|r| r.try_into().ok())
            .ok_or_else(|| malformed("root is not 32 bytes of base64"))?;
        let cp = Checkpoint {
            origin: origin.to_owned(),
            size,
            root,
        };
        if cp.body() != text {
            return Err(LogError::NonCanonical("checkpoint"));
        }
        Ok(cp)
    }

    /// The checkpoint as a note signed by the log's key (`log_key`'s public half
    /// named [`log_origin`]).
    pub fn sign(&self, log_key: &SigningKey) -> Vec<u8> {
        let signer = LogSigner {
            key: log_key,
            id: NoteKey::of_node(log_key.verifying_key()).log_key_id(),
            name: &self.origin,
        };
        let mut note = Note::new(self.body().as_bytes(), &[]).expect("checkpoint text is valid");
        note.add_sigs(&[&signer])
            .expect("a log origin is a valid key name");
        note.to_bytes()
    }
}

struct LogSigner<'a> {
    key: &'a SigningKey,
    id: u32,
    name: &'a str,
}

impl Signer for LogSigner<'_> {
    fn name(&self) -> &str {
        self.name
    }
    fn key_id(&self) -> u32 {
        self.id
    }
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, ed25519_dalek::SignatureError> {
        Ok(self.key.sign(msg).to_bytes().to_vec())
    }
}

/// `"cosignature/v1\ntime <t>\n" || text`: what a witness signs.
fn cosigned_message(time: u64, text: &[u8]) -> Vec<u8> {
    let mut m = format!("cosignature/v1\ntime {time}\n").into_bytes();
    m.extend_from_slice(text);
    m
}

struct CosignatureSigner<'a> {
    key: &'a SigningKey,
    name: &'a str,
    id: u32,
    time: u64,
}

impl Signer for CosignatureSigner<'_> {
    fn name(&self) -> &str {
        self.name
    }
    fn key_id(&self) -> u32 {
        self.id
    }
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, ed25519_dalek::SignatureError> {
        let mut sig = self.time.to_be_bytes().to_vec();
        sig.extend_from_slice(&self.key.sign(&cosigned_message(self.time, msg)).to_bytes());
        Ok(sig)
    }
}

/// Verifies either kind of signature by one key.
struct KeyVerifier {
    key: NoteKey,
    id: u32,
    cosignature: bool,
}

impl Verifier for KeyVerifier {
    fn name(&self) -> &str {
        &self.key.name
    }
    fn key_id(&self) -> u32 {
        self.id
    }
    fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        let (msg, sig) = if self.cosignature {
            let Some((time, sig)) = sig.split_first_chunk::<8>() else {
                return false;
            };
            (cosigned_message(u64::from_be_bytes(*time), msg), sig)
        } else {
            (msg.to_vec(), sig)
        };
        let Ok(sig) = <[u8; 64]>::try_from(sig) else {
            return false;
        };
        self.key
            .key
            .verify_strict(&msg, &ed25519_dalek::Signature::from_bytes(&sig))
            .is_ok()
    }
}

/// A witness's cosignature on a checkpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cosignature {
    /// The witness's key name.
    pub witness: String,
    /// When it cosigned, unix seconds.
    pub time: u64,
}

/// A checkpoint whose log signature verified, with the trusted witnesses whose
/// cosignatures verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedCheckpoint {
    /// The tree head.
    pub checkpoint: Checkpoint,
    /// Valid cosignatures by the trusted witnesses given.
    pub cosignatures: Vec<Cosignature>,
    /// The note, as received.
    pub note: Vec<u8>,
}

impl VerifiedCheckpoint {
    /// Fails unless at least `required` trusted witnesses cosigned.
    pub fn require_witnesses(&self, required: usize) -> Result<(), LogError> {
        if self.cosignatures.len() >= required {
            Ok(())
        } else {
            Err(LogError::TooFewWitnesses {
                found: self.cosignatures.len(),
                required,
            })
        }
    }
}

/// Verifies a checkpoint note: signed by `log` (whose name must be its origin),
/// and which of `witnesses` cosigned it. Signatures by other keys are ignored
/// (C2SP: clients ignore unknown signatures); a bad signature by a known key is
/// [`LogError::BadSignature`].
pub fn verify_checkpoint(
    note: &[u8],
    log: &NoteKey,
    witnesses: &[NoteKey],
) -> Result<VerifiedCheckpoint, LogError> {
    if note.len() > MAX_CHECKPOINT_LEN {
        return Err(LogError::Oversized {
            what: "checkpoint",
            len: note.len(),
            max: MAX_CHECKPOINT_LEN,
        });
    }
    let parsed = Note::from_bytes(note).map_err(|e| note_error(e, log))?;
    let text = std::str::from_utf8(parsed.text()).map_err(|_| LogError::Malformed {
        what: "checkpoint",
        why: "not UTF-8".into(),
    })?;
    let checkpoint = Checkpoint::parse_body(text)?;
    if checkpoint.origin != log.name {
        return Err(LogError::WrongOrigin {
            expected: log.name.clone(),
            found: checkpoint.origin,
        });
    }
    let mut verifiers: Vec<Box<dyn Verifier>> = vec![Box::new(KeyVerifier {
        id: log.log_key_id(),
        key: log.clone(),
        cosignature: false,
    })];
    for w in witnesses {
        verifiers.push(Box::new(KeyVerifier {
            id: w.witness_key_id(),
            key: w.clone(),
            cosignature: true,
        }));
    }
    let (verified, _unknown) = parsed
        .verify(&VerifierList::new(verifiers))
        .map_err(|e| note_error(e, log))?;
    let log_id = log.log_key_id();
    if !verified
        .iter()
        .any(|s| s.name() == log.name && s.id() == log_id)
    {
        return Err(LogError::NotSignedByLog(log.name.clone()));
    }
    let cosignatures = verified
        .iter()
        .filter(|s| !(s.name() == log.name && s.id() == log_id))
        .filter_map(|s| {
            let time = s.signature().first_chunk::<8>()?;
            Some(Cosignature {
                witness: s.name().to_owned(),
                time: u64::from_be_bytes(*time),
            })
        })
        .collect();
    Ok(VerifiedCheckpoint {
        checkpoint,
        cosignatures,
        note: note.to_vec(),
    })
}

fn note_error(e: NoteError, log: &NoteKey) -> LogError {
    match e {
        NoteError::InvalidSignature { name, .. } => LogError::BadSignature { name },
        NoteError::UnverifiedNote => LogError::NotSignedByLog(log.name.clone()),
        other => LogError::Malformed {
            what: "checkpoint note",
            why: other.to_string(),
        },
    }
}

/// The signature lines of a well-formed note.
fn signatures(note: &[u8]) -> Result<(Vec<u8>, Vec<Signature>), LogError> {
    let malformed = |why: &str| LogError::Malformed {
        what: "checkpoint note",
        why: why.to_owned(),
    };
    let parsed = Note::from_bytes(note).map_err(|e| malformed(&e.to_string()))?;
    let text = parsed.text().to_vec();
    let sigs = note
        .get(text.len() + 1..)
        .ok_or_else(|| malformed("no signature block"))?;
    let sigs = sigs
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| Signature::from_bytes(l).map_err(|e| malformed(&e.to_string())))
        .collect::<Result<_, _>>()?;
    Ok((text, sigs))
}

/// Adds `witness`'s cosignature at `time` to a checkpoint note (the caller has
/// verified the checkpoint and its consistency first). Replaces an older
/// cosignature by the same key.
pub fn cosign(
    note: &[u8],
    witness_name: &str,
    witness: &SigningKey,
    time: u64,
) -> Result<Vec<u8>, LogError> {
    let (text, sigs) = signatures(note)?;
    let id = NoteKey {
        name: witness_name.to_owned(),
        key: witness.verifying_key(),
    }
    .witness_key_id();
    let mut n = Note::new(&text, &sigs).map_err(|e| LogError::Malformed {
        what: "checkpoint note",
        why: e.to_string(),
    })?;
    n.add_sigs(&[&CosignatureSigner {
        key: witness,
        name: witness_name,
        id,
        time,
    }])
    .map_err(|e| LogError::Malformed {
        what: "witness name",
        why: e.to_string(),
    })?;
    Ok(n.to_bytes())
}

/// The union of the signatures of two notes of the same checkpoint text
/// (cosignatures gathered from several witnesses); `None` if the texts differ.
pub fn merge_signatures(a: &[u8], b: &[u8]) -> Result<Option<Vec<u8>>, LogError> {
    let (text_a, mut sigs) = signatures(a)?;
    let (text_b, more) = signatures(b)?;
    if text_a != text_b {
        return Ok(None);
    }
    for s in more {
        if !sigs.contains(&s) {
            sigs.push(s);
        }
    }
    let n = Note::new(&text_a, &sigs).map_err(|e| LogError::Malformed {
        what: "checkpoint note",
        why: e.to_string(),
    })?;
    Ok(Some(n.to_bytes()))
}

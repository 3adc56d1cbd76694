//! "Where is my data" (SPEC.md §8.3.2): after a key-form upload, the phone
//! recognises the batches that carry its own keys while it syncs, and the host
//! adds each node's publication proof to show where they were published, by
//! which authority, on which nodes' logs, and when each node deleted them.
//!
//! The report never holds a key: it holds 16-byte fingerprints of the uploaded
//! keys, SHA-256 over a context, the TEK and its rolling start. It lives in a
//! side file of its own (`<dir>/data-report`, master-sealed, one fixed length
//! whatever it holds, an empty report sealed like a full one) so that [`forget`]
//! and the retention pass destroy it by overwriting it in place; without the
//! master key, the file does not even say whether this phone ever uploaded. With the master key (an unlocked phone) it
//! does: a report says its owner tested positive, which is why it is kept only
//! [`KEEP_DAYS`] after the last upload.
//!
//! ```text
//! file      = nonce(24) || XChaCha20-Poly1305(master, plaintext, aad = AAD)   (FILE_LEN bytes)
//! plaintext = 0x01 || BE32 len || postcard(State) || 0x00 padding             (PLAIN_LEN bytes)
//! ```
//!
//! A state with no uploaded key is no report; so is an empty file (a store
//! made before this file existed), which [`open`] replaces at once.
//!
//! ```text
//! ```

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use traceless_protocol::log::{NoteKey, PublicationProof};
use traceless_protocol::{day_of_interval, DiagnosisKey, RETENTION_DAYS};
use zeroize::Zeroizing;

use crate::error::{Result, SdkError};
use crate::storage::SideFile;
use crate::vault::Vault;

const AAD: &[u8] = b"traceless/sdk/v1/data-report";
const FINGERPRINT_CONTEXT: &[u8] = b"traceless/sdk/v1/uploaded-key";
const FORMAT: u8 = 1;
/// Uploaded keys remembered (15 days of keys, several a day).
pub const MAX_UPLOADED_KEYS: usize = 64;
/// Batches remembered.
pub const MAX_PUBLICATIONS: usize = 24;
/// Nodes remembered per batch.
pub const MAX_NODES: usize = 4;
/// Longest node label the host may give (a URL, a name).
pub const MAX_NODE_LABEL_LEN: usize = 64;
/// Days the report is kept after the last upload: the nodes delete the last
/// uploaded day's batches [`RETENTION_DAYS`] after it, and a phone that looks
/// weekly should still see that.
pub const KEEP_DAYS: u64 = 2 * RETENTION_DAYS as u64 + 2;
/// Plaintext length: fits the largest [`State`] (checked by a test).
const PLAIN_LEN: usize = 24 << 10;
/// Length of the side file: nonce, padded plaintext, tag.
pub(crate) const FILE_LEN: usize = 24 + PLAIN_LEN + 16;

type Fingerprint = [u8; 16];

/// One node's log holding (and perhaps having deleted) a batch, as verified.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodePresence {
    /// The host's label for the node (its URL, say).
    pub node: String,
    /// The node's Ed25519 key: whose log it is.
    pub node_id: [u8; 32],
    /// Leaf index of the publication in that log.
    pub log_index: u64,
    /// Tree size of the checkpoint the proof was checked against.
    pub tree_size: u64,
    /// Trusted witnesses that cosigned that checkpoint.
    pub witnesses: u32,
    /// When the node stored the batch (from its log entry), unix seconds.
    pub published_at: u64,
    /// When this phone checked the proof, unix seconds.
    pub checked_at: u64,
    /// When the node deleted the batch (from its signed, logged deletion record).
    pub deleted_at: Option<u64>,
    /// Leaf index of the deletion entry.
    pub deletion_index: Option<u64>,
}

/// A batch that carries some of this phone's uploaded keys.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataPublication {
    /// The authority that signed it.
    pub origin: String,
    /// Its sequence number.
    pub sequence: u64,
    /// Its identifier in every node's log: SHA-256 of a version 1 batch, of a
    /// period batch's header (SPEC.md §5.9).
    pub content_id: [u8; 32],
    /// UTC day of its keys, of a period batch its last: the day nodes list
    /// and log it by.
    pub day: u32,
    /// Keys in the batch.
    pub keys: u32,
    /// Of them, this phone's.
    pub own_keys: u32,
    /// When this phone first saw it, unix seconds.
    pub found_at: u64,
    /// Nodes whose logs were shown to hold it.
    pub nodes: Vec<NodePresence>,
}

/// What the phone knows about where its uploaded keys went.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DataReport {
    /// When the last upload was prepared, unix seconds (`None`: no report).
    pub uploaded_at: Option<u64>,
    /// Keys uploaded since the report began.
    pub keys_uploaded: usize,
    /// Batches found carrying them.
    pub publications: Vec<DataPublication>,
}

/// The sealed content.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct State {
    uploaded_at: u64,
    uploaded: Vec<Fingerprint>,
    publications: Vec<DataPublication>,
}

fn fingerprint(key: &DiagnosisKey) -> Fingerprint {
    let d = Sha256::new()
        .chain_update(FINGERPRINT_CONTEXT)
        .chain_update([0])
        .chain_update(key.tek.0)
        .chain_update(key.rolling_start.to_be_bytes())
        .finalize();
    d[..16].try_into().expect("16 of 32 bytes")
}

fn corrupt(why: &str) -> SdkError {
    SdkError::Corrupt(format!("data report file: {why}"))
}

/// Reads the report at open; gives a store without the file its sealed empty one.
pub(crate) fn open(vault: &Vault) -> Result<Option<State>> {
    let raw = vault.storage().read_side(SideFile::DataReport)?;
    if raw.is_empty() {
        forget(vault)?;
        return Ok(None);
    }
    if raw.len() != FILE_LEN {
        return Err(corrupt(&format!("{} bytes, not {FILE_LEN}", raw.len())));
    }
    let plain = vault.open_with_master(AAD, &raw, "data report file")?;
    if plain.len() != PLAIN_LEN || plain[0] != FORMAT {
        return Err(corrupt("bad layout"));
    }
    let len = u32::from_be_bytes(plain[1..5].try_into().expect("4 bytes")) as usize;
    let body = plain.get(5..5 + len).ok_or_else(|| corrupt("bad length"))?;
    let state: State = postcard::from_bytes(body).map_err(|e| corrupt(&e.to_string()))?;
    Ok((!state.uploaded.is_empty()).then_some(state))
}

/// Replaces the report (durable before this returns).
fn write(vault: &Vault, state: &State) -> Result<()> {
    let body =
        Zeroizing::new(postcard::to_allocvec(state).map_err(|e| SdkError::Storage(e.to_string()))?);
    if 5 + body.len() > PLAIN_LEN {
        return Err(SdkError::OverCapacity("data report is full"));
    }
    let mut plain = Zeroizing::new(vec![0u8; PLAIN_LEN]);
    plain[0] = FORMAT;
    plain[1..5].copy_from_slice(&(body.len() as u32).to_be_bytes());
    plain[5..5 + body.len()].copy_from_slice(&body);
    let sealed = vault.seal_with_master(AAD, &plain)?;
    debug_assert_eq!(sealed.len(), FILE_LEN);
    vault.storage().write_side(SideFile::DataReport, &sealed)
}

/// Destroys the report: an empty one sealed over the whole file, synced.
pub(crate) fn forget(vault: &Vault) -> Result<()> {
    write(vault, &State::default())
}

/// Remembers the keys of an upload being prepared (key form).
pub(crate) fn note_upload(
    vault: &Vault,
    state: &mut Option<State>,
    now: u64,
    keys: &[DiagnosisKey],
) -> Result<()> {
    let mut next = state.clone().unwrap_or_default();
    next.uploaded_at = now;
    for k in keys {
        let f = fingerprint(k);
        if !next.uploaded.contains(&f) {
            next.uploaded.push(f);
        }
    }
    // Keep the newest: the oldest keys' batches are the first to be deleted.
    let excess = next.uploaded.len().saturating_sub(MAX_UPLOADED_KEYS);
    next.uploaded.drain(..excess);
    write(vault, &next)?;
    *state = Some(next);
    Ok(())
}

/// A verified batch being synced: if it carries uploaded keys, remember it.
/// Returns whether it did.
pub(crate) fn note_batch(
    vault: &Vault,
    state: &mut Option<State>,
    now: u64,
    origin: &str,
    sequence: u64,
    content_id: [u8; 32],
    keys: &[DiagnosisKey],
) -> Result<bool> {
    let Some(current) = state.as_ref() else {
        return Ok(false);
    };
    let own = keys
        .iter()
        .filter(|k| current.uploaded.contains(&fingerprint(k)))
        .count();
    if own == 0
        || current
            .publications
            .iter()
            .any(|p| p.origin == origin && p.sequence == sequence)
    {
        return Ok(false);
    }
    let mut next = current.clone();
    if next.publications.len() >= MAX_PUBLICATIONS {
        next.publications.remove(0);
    }
    next.publications.push(DataPublication {
        origin: origin.to_owned(),
        sequence,
        content_id,
        day: keys
            .iter()
            .map(|k| day_of_interval(k.rolling_start))
            .max()
            .unwrap_or(0),
        keys: keys.len() as u32,
        own_keys: own as u32,
        found_at: now,
        nodes: Vec::new(),
    });
    write(vault, &next)?;
    *state = Some(next);
    Ok(true)
}

/// Checks a node's publication proof for one of the report's batches and
/// records the node (replacing what was recorded for it before).
pub(crate) fn record_proof(
    vault: &Vault,
    state: &mut Option<State>,
    now: u64,
    node: &str,
    proof: &[u8],
    witnesses: &[NoteKey],
    required: usize,
) -> Result<DataPublication> {
    if node.is_empty() || node.len() > MAX_NODE_LABEL_LEN {
        return Err(SdkError::InvalidArgument(format!(
            "node label must be 1..={MAX_NODE_LABEL_LEN} bytes"
        )));
    }
    let proof = PublicationProof::decode(proof)?;
    let (origin, sequence) = match traceless_protocol::log::Event::decode(&proof.published.entry)? {
        traceless_protocol::log::Event::Published {
            origin, sequence, ..
        } => (origin, sequence),
        _ => {
            return Err(traceless_protocol::log::LogError::EntryMismatch(
                "the proof's entry is not a publication".into(),
            )
            .into())
        }
    };
    let mut next = state.clone().ok_or_else(not_yours)?;
    let p = next
        .publications
        .iter_mut()
        .find(|p| p.origin == origin && p.sequence == sequence)
        .ok_or_else(not_yours)?;
    let v = proof.verify(&origin, sequence, &p.content_id, witnesses, required)?;
    let presence = NodePresence {
        node: node.to_owned(),
        node_id: v.node_id,
        log_index: v.index,
        tree_size: v.checkpoint.checkpoint.size,
        witnesses: v.checkpoint.cosignatures.len() as u32,
        published_at: v.published_at,
        checked_at: now,
        deleted_at: v.deleted.map(|d| d.deleted_at),
        deletion_index: v.deleted.map(|d| d.index),
    };
    p.nodes.retain(|n| n.node_id != presence.node_id);
    if p.nodes.len() >= MAX_NODES {
        p.nodes.remove(0);
    }
    p.nodes.push(presence);
    let out = p.clone();
    write(vault, &next)?;
    *state = Some(next);
    Ok(out)
}

fn not_yours() -> SdkError {
    SdkError::InvalidArgument("that batch carries none of this phone's uploaded keys".into())
}

/// The report as the app shows it.
pub(crate) fn view(state: &Option<State>) -> DataReport {
    match state {
        None => DataReport::default(),
        Some(s) => DataReport {
            uploaded_at: Some(s.uploaded_at),
            keys_uploaded: s.uploaded.len(),
            publications: s.publications.clone(),
        },
    }
}

/// Destroys a report [`KEEP_DAYS`] after its last upload. Returns whether it did.
pub(crate) fn expire(vault: &Vault, state: &mut Option<State>, now: u64) -> Result<bool> {
    match state {
        Some(s) if now >= s.uploaded_at + KEEP_DAYS * 86_400 => {
            forget(vault)?;
            *state = None;
            Ok(true)
        }
        _ => Ok(false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The largest report the caps allow fits the fixed plaintext length.
    #[test]
    fn the_fullest_report_fits_the_file() {
        let presence = NodePresence {
            node: "n".repeat(MAX_NODE_LABEL_LEN),
            node_id: [0xff; 32],
            log_index: u64::MAX,
            tree_size: u64::MAX,
            witnesses: u32::MAX,
            published_at: u64::MAX,
            checked_at: u64::MAX,
            deleted_at: Some(u64::MAX),
            deletion_index: Some(u64::MAX),
        };
        let publication = DataPublication {
            origin: "o".repeat(64),
            sequence: u64::MAX,
            content_id: [0xff; 32],
            day: u32::MAX,
            keys: u32::MAX,
            own_keys: u32::MAX,
            found_at: u64::MAX,
            nodes: vec![presence; MAX_NODES],
        };
        let state = State {
            uploaded_at: u64::MAX,
            uploaded: vec![[0xff; 16]; MAX_UPLOADED_KEYS],
            publications: vec![publication; MAX_PUBLICATIONS],
        };
        let len = postcard::to_allocvec(&state).unwrap().len();
        assert!(5 + len <= PLAIN_LEN, "{len} bytes");
        // And the file is not needlessly large: within 2x of the fullest report.
        assert!(PLAIN_LEN < 2 * (5 + len), "{len} bytes");
    }
}

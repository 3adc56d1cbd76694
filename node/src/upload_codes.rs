//! Single-use upload codes issued by the authority's CLI.
//!
//! A code is `<8-byte id hex>-<16-byte secret hex>`. The node stores only the id, a
//! random per-code salt, `SHA-256(salt || secret)` and the expiry; a code is
//! consumed atomically with the batches it authorised. The CLI cannot open the
//! running node's database, so it drops issued records (never the secrets) as files
//! into `<data_dir>/upload-codes/incoming/`, which the node imports on a schedule.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::storage::{CodeRecord, CodeStore, StorageError};

/// Why an upload code was refused.
#[derive(Debug, thiserror::Error)]
pub enum CodeError {
    /// Not of the form `<16 hex>-<32 hex>`.
    #[error("upload code is malformed")]
    Malformed,
    /// Unknown, already used, or wrong secret (indistinguishable on purpose).
    #[error("upload code is unknown or already used")]
    Unknown,
    /// The code expired.
    #[error("upload code expired")]
    Expired,
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

fn hash(salt: &[u8; 16], secret: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(salt);
    h.update(secret);
    h.finalize().into()
}

/// Makes `count` fresh codes valid until `expires_at`: the codes to hand out, and
/// the records to store.
pub fn issue(count: usize, expires_at: u64) -> (Vec<String>, Vec<([u8; 8], CodeRecord)>) {
    let mut rng = rand::rngs::OsRng;
    let mut codes = Vec::with_capacity(count);
    let mut records = Vec::with_capacity(count);
    for _ in 0..count {
        let mut id = [0u8; 8];
        let mut secret = [0u8; 16];
        let mut salt = [0u8; 16];
        rng.fill_bytes(&mut id);
        rng.fill_bytes(&mut secret);
        rng.fill_bytes(&mut salt);
        codes.push(format!("{}-{}", hex::encode(id), hex::encode(secret)));
        records.push((
            id,
            CodeRecord {
                salt,
                hash: hash(&salt, &secret),
                expires_at,
            },
        ));
    }
    (codes, records)
}

fn incoming_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("upload-codes").join("incoming")
}

/// Drops issued records into the node's incoming directory.
pub fn write_incoming(
    data_dir: &Path,
    records: &[([u8; 8], CodeRecord)],
) -> std::io::Result<PathBuf> {
    let dir = incoming_dir(data_dir);
    std::fs::create_dir_all(&dir)?;
    let name = format!("{}.codes", hex::encode(rand::random::<[u8; 8]>()));
    let text: String = records
        .iter()
        .map(|(id, r)| {
            format!(
                "{} {} {} {}\n",
                hex::encode(id),
                hex::encode(r.salt),
                hex::encode(r.hash),
                r.expires_at
            )
        })
        .collect();
    // Write then rename, so the node never reads a half-written file.
    let tmp = dir.join(format!("{name}.tmp"));
    std::fs::write(&tmp, text)?;
    let path = dir.join(name);
    std::fs::rename(&tmp, &path)?;
    Ok(path)
}

fn parse_line(line: &str) -> Option<([u8; 8], CodeRecord)> {
    let mut parts = line.split_whitespace();
    let id = hex::decode(parts.next()?).ok()?.try_into().ok()?;
    let salt = hex::decode(parts.next()?).ok()?.try_into().ok()?;
    let hash = hex::decode(parts.next()?).ok()?.try_into().ok()?;
    let expires_at = parts.next()?.parse().ok()?;
    Some((
        id,
        CodeRecord {
            salt,
            hash,
            expires_at,
        },
    ))
}

/// Imports and removes every `*.codes` file in the incoming directory; returns how
/// many codes were imported.
pub fn import_incoming(data_dir: &Path, store: &dyn CodeStore) -> Result<usize, CodeError> {
    let Ok(entries) = std::fs::read_dir(incoming_dir(data_dir)) else {
        return Ok(0);
    };
    let mut n = 0;
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "codes") {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let records: Vec<_> = text.lines().filter_map(parse_line).collect();
        store.insert_codes(&records)?;
        n += records.len();
        let _ = std::fs::remove_file(&path);
    }
    Ok(n)
}

/// Checks a code without consuming it; returns its id, to be consumed in the same
/// atomic write that stores what it authorised.
pub fn check(store: &dyn CodeStore, code: &[u8], now: u64) -> Result<[u8; 8], CodeError> {
    let text = std::str::from_utf8(code).map_err(|_| CodeError::Malformed)?;
    let (id_hex, secret_hex) = text.split_once('-').ok_or(CodeError::Malformed)?;
    let id: [u8; 8] = hex::decode(id_hex)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or(CodeError::Malformed)?;
    let secret: [u8; 16] = hex::decode(secret_hex)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or(CodeError::Malformed)?;
    let record = store.get_code(&id)?.ok_or(CodeError::Unknown)?;
    if hash(&record.salt, &secret) != record.hash {
        return Err(CodeError::Unknown);
    }
    if now >= record.expires_at {
        return Err(CodeError::Expired);
    }
    Ok(id)
}

/// A token bucket over all uploads: `per_minute` tokens, refilled continuously.
/// There is deliberately no per-client limit: the node does not know clients.
pub struct RateLimiter {
    per_minute: f64,
    state: Mutex<(f64, u64)>,
}

impl RateLimiter {
    /// A full bucket of `per_minute` tokens at `now`.
    pub fn new(per_minute: u32, now: u64) -> Self {
        RateLimiter {
            per_minute: f64::from(per_minute),
            state: Mutex::new((f64::from(per_minute), now)),
        }
    }

    /// Takes a token if one is left at `now`.
    pub fn try_take(&self, now: u64) -> bool {
        self.with_refilled(now, |tokens| {
            let left = *tokens >= 1.0;
            if left {
                *tokens -= 1.0;
            }
            left
        })
    }

    /// Whether a token is left at `now`, without taking it.
    pub fn has_token(&self, now: u64) -> bool {
        self.with_refilled(now, |tokens| *tokens >= 1.0)
    }

    fn with_refilled(&self, now: u64, f: impl FnOnce(&mut f64) -> bool) -> bool {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let elapsed = now.saturating_sub(s.1) as f64;
        s.0 = (s.0 + elapsed * self.per_minute / 60.0).min(self.per_minute);
        s.1 = s.1.max(now);
        f(&mut s.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::SledStore;

    #[test]
    fn codes_are_hashed_single_use_and_expire() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SledStore::open(&dir.path().join("db")).expect("open");
        let (codes, records) = issue(2, 1000);
        write_incoming(dir.path(), &records).expect("write");
        assert_eq!(import_incoming(dir.path(), &store).expect("import"), 2);
        assert_eq!(import_incoming(dir.path(), &store).expect("import"), 0);
        // Nothing stored contains the secret.
        let secret = codes[0].split_once('-').expect("dash").1;
        let stored = store
            .get_code(&records[0].0)
            .expect("get")
            .expect("present");
        assert!(!hex::encode(stored.encode_for_test()).contains(secret));

        let id = check(&store, codes[0].as_bytes(), 10).expect("valid");
        assert_eq!(id, records[0].0);
        assert!(matches!(
            check(&store, codes[1].as_bytes(), 1000),
            Err(CodeError::Expired)
        ));
        let mut wrong = codes[0].clone();
        wrong.pop();
        wrong.push('x');
        assert!(check(&store, wrong.as_bytes(), 10).is_err());
        store
            .commit_gateway(&crate::storage::GatewayCommit {
                consume_code: Some(id),
                ..Default::default()
            })
            .expect("consume");
        assert!(matches!(
            check(&store, codes[0].as_bytes(), 10),
            Err(CodeError::Unknown)
        ));
    }

    #[test]
    fn rate_limit_refills() {
        let r = RateLimiter::new(2, 0);
        assert!(r.try_take(0));
        assert!(r.try_take(0));
        assert!(!r.try_take(0));
        assert!(r.try_take(30));
    }
}

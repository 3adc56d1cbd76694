//! Single-use upload codes issued by the authority's CLI.
//!
//! A code has one of two forms:
//! - long: `<8-byte id hex>-<16-byte secret hex>` (for apps and QR codes);
//! - short, for reading out over a phone hotline: 12 symbols of Crockford's
//!   base32 (`0-9 A-Z` without `I L O U`), printed `XXXX-XXXX-XXXX`: 11 random
//!   symbols (55 bits) and a check symbol that catches any single mistyped symbol
//!   and any swap of two neighbours (see [`check_symbol`]); `Z` never occurs. Case, dashes and
//!   spaces do not matter, and `I`/`L` read as `1`, `O` as `0`. Its id is derived
//!   from its 11 symbols (so two short codes collide only if they are equal).
//!
//! The node stores only the id, a
//! random per-code salt, `SHA-256(salt || secret)` and the expiry; a code is
//! consumed atomically with the batches it authorised. The CLI cannot open the
//! running node's database, so it drops issued records (never the secrets) as files
//! into `<data_dir>/upload-codes/incoming/`, which the node imports on a schedule.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rand::{Rng, RngCore};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::storage::{CodeRecord, CodeStore, StorageError};

/// Why an upload code was refused.
#[derive(Debug, thiserror::Error)]
pub enum CodeError {
    /// Neither `<16 hex>-<32 hex>` nor 12 base32 symbols with a valid check symbol.
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

/// Which form of code to issue.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum CodeForm {
    /// `<16 hex>-<32 hex>`.
    #[default]
    Long,
    /// `XXXX-XXXX-XXXX` (Crockford base32 with a check symbol).
    Short,
}

/// Crockford's base32 alphabet; short codes use its first 31 symbols (not `Z`),
/// so that every symbol value is below the prime 31 of [`check_symbol`].
const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
/// Symbol values a short code uses.
const SHORT_BASE: u8 = 31;
/// Random symbols in a short code (11 × log2 31 ≈ 54.5 bits).
const SHORT_DATA: usize = 11;

/// The check symbol `c` of a short code's data symbols `v` (values 0..31): the
/// one that makes `Σ (i+1)·v_i + 12·c ≡ 0 (mod 31)`. With weights 1..=12, all
/// non-zero modulo the prime 31, and values below 31, changing any one symbol
/// (the check included) or swapping any two neighbours changes the sum.
pub fn check_symbol(values: &[u8; SHORT_DATA]) -> u8 {
    let sum: u32 = weighted_sum(values);
    // 13 is the inverse of 12 modulo 31 (12 · 13 = 156 = 5 · 31 + 1).
    ((31 - sum % 31) * 13 % 31) as u8
}

fn weighted_sum(values: &[u8]) -> u32 {
    values
        .iter()
        .enumerate()
        .map(|(i, &v)| (i as u32 + 1) * u32::from(v))
        .sum()
}

/// A short code's symbol values, from text (case, dashes and spaces ignored;
/// `I`/`L` as `1`, `O` as `0`); `None` unless 12 symbols with a valid check.
fn parse_short(text: &str) -> Option<[u8; SHORT_DATA]> {
    let mut values = Vec::with_capacity(SHORT_DATA + 1);
    for c in text.chars().filter(|c| *c != '-' && *c != ' ') {
        let c = match c.to_ascii_uppercase() {
            'I' | 'L' => '1',
            'O' => '0',
            c => c,
        };
        let v = ALPHABET.iter().position(|&a| char::from(a) == c)? as u8;
        if v >= SHORT_BASE {
            return None;
        }
        values.push(v);
    }
    if values.len() != SHORT_DATA + 1 || !weighted_sum(&values).is_multiple_of(31) {
        return None;
    }
    let mut data = [0; SHORT_DATA];
    data.copy_from_slice(&values[..SHORT_DATA]);
    Some(data)
}

/// The id under which a short code is stored.
fn short_id(data: &[u8; SHORT_DATA]) -> [u8; 8] {
    let mut h = Sha256::new();
    h.update(b"traceless short upload code id");
    h.update(data);
    let d = h.finalize();
    let mut id = [0; 8];
    id.copy_from_slice(&d[..8]);
    id
}

/// Makes `count` fresh long-form codes valid until `expires_at`: the codes to
/// hand out, and the records to store.
pub fn issue(count: usize, expires_at: u64) -> (Vec<String>, Vec<([u8; 8], CodeRecord)>) {
    issue_form(count, CodeForm::Long, expires_at)
}

/// [`issue`] in either form.
pub fn issue_form(
    count: usize,
    form: CodeForm,
    expires_at: u64,
) -> (Vec<String>, Vec<([u8; 8], CodeRecord)>) {
    let mut rng = rand::rngs::OsRng;
    let mut codes = Vec::with_capacity(count);
    let mut records = Vec::with_capacity(count);
    for _ in 0..count {
        let mut salt = [0u8; 16];
        rng.fill_bytes(&mut salt);
        let (code, id, secret) = match form {
            CodeForm::Long => {
                let mut id = [0u8; 8];
                let mut secret = [0u8; 16];
                rng.fill_bytes(&mut id);
                rng.fill_bytes(&mut secret);
                (
                    format!("{}-{}", hex::encode(id), hex::encode(secret)),
                    id,
                    secret.to_vec(),
                )
            }
            CodeForm::Short => {
                let data: [u8; SHORT_DATA] = std::array::from_fn(|_| rng.gen_range(0..SHORT_BASE));
                let symbols: Vec<char> = data
                    .iter()
                    .chain([check_symbol(&data)].iter())
                    .map(|&v| char::from(ALPHABET[usize::from(v)]))
                    .collect();
                let groups: Vec<String> = symbols.chunks(4).map(|c| c.iter().collect()).collect();
                (groups.join("-"), short_id(&data), data.to_vec())
            }
        };
        codes.push(code);
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

/// A code's id and secret, from either form.
fn parse(code: &[u8]) -> Result<([u8; 8], Vec<u8>), CodeError> {
    let text = std::str::from_utf8(code).map_err(|_| CodeError::Malformed)?;
    if let Some(data) = parse_short(text) {
        return Ok((short_id(&data), data.to_vec()));
    }
    let (id_hex, secret_hex) = text.split_once('-').ok_or(CodeError::Malformed)?;
    let id: [u8; 8] = hex::decode(id_hex)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or(CodeError::Malformed)?;
    let secret: [u8; 16] = hex::decode(secret_hex)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or(CodeError::Malformed)?;
    Ok((id, secret.to_vec()))
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

/// What one [`import_incoming`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ImportReport {
    /// Codes imported.
    pub imported: usize,
    /// Lines that are not code records, kept in `<file>.rejected` beside the
    /// incoming file (blank lines are not counted).
    pub rejected: usize,
}

/// Imports and removes every `*.codes` file in the incoming directory. Lines
/// that do not parse are not dropped: they are appended to `<name>.rejected`
/// (synced before the incoming file is removed) and counted in the report.
pub fn import_incoming(data_dir: &Path, store: &dyn CodeStore) -> Result<ImportReport, CodeError> {
    let mut report = ImportReport::default();
    let Ok(entries) = std::fs::read_dir(incoming_dir(data_dir)) else {
        return Ok(report);
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "codes") {
            continue;
        }
        let bytes = std::fs::read(&path).map_err(StorageError::Io)?;
        let text = String::from_utf8_lossy(&bytes);
        let (mut records, mut rejected) = (Vec::new(), Vec::new());
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            match parse_line(line) {
                Some(r) => records.push(r),
                None => rejected.push(line),
            }
        }
        if !rejected.is_empty() {
            let kept = path.with_extension("rejected");
            append_durably(&kept, &rejected).map_err(StorageError::Io)?;
            tracing::warn!(file = %path.display(), rejected = rejected.len(), kept = %kept.display(),
                "upload-code lines that are not code records were not imported");
        }
        store.insert_codes(&records)?;
        report.imported += records.len();
        report.rejected += rejected.len();
        std::fs::remove_file(&path).map_err(StorageError::Io)?;
    }
    Ok(report)
}

/// Appends `lines` to `path` and syncs it.
fn append_durably(path: &Path, lines: &[&str]) -> std::io::Result<()> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    for l in lines {
        writeln!(f, "{l}")?;
    }
    f.sync_all()
}

/// Checks a code without consuming it; returns its id, to be consumed in the same
/// atomic write that stores what it authorised.
pub fn check(store: &dyn CodeStore, code: &[u8], now: u64) -> Result<[u8; 8], CodeError> {
    let (id, secret) = parse(code)?;
    let record = store.get_code(&id)?.ok_or(CodeError::Unknown)?;
    // Constant time: how much of the hash matched must not show in the timing.
    if !bool::from(hash(&record.salt, &secret).ct_eq(&record.hash)) {
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

    /// Bad lines used to be dropped silently and the file deleted.
    #[test]
    fn bad_lines_are_kept_in_a_rejected_file_and_counted() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SledStore::open(&dir.path().join("db")).expect("open");
        let (codes, records) = issue(2, 1000);
        let path = write_incoming(dir.path(), &records).expect("write");
        let mut text = std::fs::read_to_string(&path).expect("read");
        text.push_str("not a code line\n\n00ff short\n");
        std::fs::write(&path, text).expect("write");
        let report = import_incoming(dir.path(), &store).expect("import");
        assert_eq!(
            report,
            ImportReport {
                imported: 2,
                rejected: 2
            }
        );
        assert!(!path.exists(), "the incoming file is consumed");
        let kept = std::fs::read_to_string(path.with_extension("rejected")).expect("kept");
        assert_eq!(kept, "not a code line\n00ff short\n");
        // The good lines were imported; the rejected file is not read again.
        assert!(check(&store, codes[0].as_bytes(), 0).is_ok());
        let again = import_incoming(dir.path(), &store).expect("import");
        assert_eq!(again, ImportReport::default());
    }

    #[test]
    fn codes_are_hashed_single_use_and_expire() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SledStore::open(&dir.path().join("db")).expect("open");
        let (codes, records) = issue(2, 1000);
        write_incoming(dir.path(), &records).expect("write");
        let report = |imported| ImportReport {
            imported,
            rejected: 0,
        };
        assert_eq!(
            import_incoming(dir.path(), &store).expect("import"),
            report(2)
        );
        assert_eq!(
            import_incoming(dir.path(), &store).expect("import"),
            report(0)
        );
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
        assert!(matches!(
            check(&store, wrong.as_bytes(), 10),
            Err(CodeError::Malformed)
        ));
        let mut wrong = codes[0].clone();
        let last = if wrong.ends_with('0') { '1' } else { '0' };
        wrong.pop();
        wrong.push(last);
        assert!(matches!(
            check(&store, wrong.as_bytes(), 10),
            Err(CodeError::Unknown)
        ));
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
    fn short_codes_work_typed_loosely_and_catch_typos() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SledStore::open(&dir.path().join("db")).expect("open");
        let (codes, records) = issue_form(50, CodeForm::Short, 1000);
        store.insert_codes(&records).expect("insert");
        for code in &codes {
            assert_eq!(code.len(), 14, "{code}");
            assert!(code
                .chars()
                .all(|c| c == '-' || ALPHABET.contains(&(c as u8))));
        }
        let code = &codes[0];
        assert_eq!(
            check(&store, code.as_bytes(), 10).expect("valid"),
            records[0].0
        );
        // As read out over the phone: lower case, spaces, O for 0, l for 1.
        let spoken = code
            .to_lowercase()
            .replace('-', " ")
            .replace('0', "o")
            .replace('1', "l");
        assert_eq!(
            check(&store, spoken.as_bytes(), 10).expect("valid"),
            records[0].0
        );
        // Every single-symbol typo and every neighbour swap is refused as
        // malformed (the check symbol), never looked up.
        let symbols: Vec<char> = code.chars().filter(|c| *c != '-').collect();
        for i in 0..symbols.len() {
            for &a in ALPHABET.iter() {
                let mut typo = symbols.clone();
                if typo[i] == char::from(a) {
                    continue;
                }
                typo[i] = char::from(a);
                let typo: String = typo.into_iter().collect();
                assert!(
                    matches!(
                        check(&store, typo.as_bytes(), 10),
                        Err(CodeError::Malformed)
                    ),
                    "{typo} accepted"
                );
            }
            if i + 1 < symbols.len() && symbols[i] != symbols[i + 1] {
                let mut swapped = symbols.clone();
                swapped.swap(i, i + 1);
                let swapped: String = swapped.into_iter().collect();
                assert!(matches!(
                    check(&store, swapped.as_bytes(), 10),
                    Err(CodeError::Malformed)
                ));
            }
        }
        // A well-formed short code nobody issued is unknown.
        let (other, _) = issue_form(1, CodeForm::Short, 1000);
        assert!(matches!(
            check(&store, other[0].as_bytes(), 10),
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

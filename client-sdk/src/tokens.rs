//! Anonymous upload tokens (SPEC.md §5.6) kept on the phone until an upload
//! spends them.
//!
//! The tokens are stored in the [`Table::OwnKeys`] table under the keyed hash
//! `BE32(day) || HMAC(index_key, "upload-tokens")[..16]`, sealed under the key
//! of the day they were issued, so they are crypto-shredded with that day like
//! everything else. Every phone writes this record every day it has a key, and
//! every record has one padded length, so a copy of the disk does not tell
//! whether the phone ever held tokens (which would hint at a diagnosis):
//!
//! ```text
//! record = count(1) || entry * count || 0x00 * (RECORD_SLOTS - count) * 100
//! entry  = BE32(epoch) || input(32) || output(64)
//! ```
//!
//! The token inputs never reach the disk in clear, and the issuer only ever saw
//! them blinded.

use rand_core::{OsRng, RngCore};
use traceless_protocol::token::{TOKEN_INPUT_LEN, TOKEN_OUTPUT_LEN};
use traceless_protocol::UploadToken;
use zeroize::Zeroizing;

use crate::error::{Result, SdkError};
use crate::storage::Table;
use crate::vault::Vault;

/// Label of a day's token record in its keyed-hash storage key.
const LABEL: &[u8] = b"upload-tokens";
const ENTRY_LEN: usize = 4 + TOKEN_INPUT_LEN + TOKEN_OUTPUT_LEN;
/// Tokens one day's record can hold (two full issuances).
const RECORD_SLOTS: usize = 32;
const RECORD_LEN: usize = 1 + RECORD_SLOTS * ENTRY_LEN;

fn storage_key(vault: &Vault, day: u32) -> Result<[u8; 20]> {
    vault.record_key(day, LABEL, &[])
}

fn encode(tokens: &[UploadToken]) -> Result<Zeroizing<Vec<u8>>> {
    if tokens.len() > RECORD_SLOTS {
        return Err(SdkError::InvalidArgument(format!(
            "a phone keeps at most {RECORD_SLOTS} upload tokens a day"
        )));
    }
    let mut out = Zeroizing::new(Vec::with_capacity(RECORD_LEN));
    out.push(tokens.len() as u8);
    for t in tokens {
        out.extend_from_slice(&t.epoch.to_be_bytes());
        out.extend_from_slice(&t.input);
        out.extend_from_slice(&t.output);
    }
    out.resize(RECORD_LEN, 0);
    Ok(out)
}

fn decode(day: u32, bytes: &[u8]) -> Result<Vec<UploadToken>> {
    let count = usize::from(bytes.first().copied().unwrap_or(u8::MAX));
    if bytes.len() != RECORD_LEN || count > RECORD_SLOTS {
        return Err(SdkError::Corrupt(format!(
            "upload tokens of day {day}: the record is damaged"
        )));
    }
    Ok(bytes[1..]
        .chunks_exact(ENTRY_LEN)
        .take(count)
        .map(|e| {
            let (epoch, rest) = e.split_at(4);
            let (input, output) = rest.split_at(TOKEN_INPUT_LEN);
            UploadToken {
                epoch: u32::from_be_bytes(epoch.try_into().expect("4 bytes")),
                input: input.try_into().expect("32 bytes"),
                output: output.try_into().expect("64 bytes"),
            }
        })
        .collect())
}

/// The tokens stored under `day` (empty if none or the day expired).
fn of_day(vault: &Vault, day: u32) -> Result<Vec<UploadToken>> {
    if !vault.has_day(day) {
        return Ok(Vec::new());
    }
    match vault.get(Table::OwnKeys, &storage_key(vault, day)?)? {
        Some(bytes) => decode(day, &Zeroizing::new(bytes)),
        None => Ok(Vec::new()),
    }
}

fn write_day(vault: &Vault, day: u32, tokens: &[UploadToken]) -> Result<()> {
    vault.put(Table::OwnKeys, &storage_key(vault, day)?, &encode(tokens)?)?;
    vault.storage().flush()
}

/// Writes the day's (empty) token record if it has none, so that every phone has
/// one per day whether or not it ever held tokens. The caller flushes.
pub(crate) fn ensure_record(vault: &Vault, day: u32) -> Result<()> {
    let key = storage_key(vault, day)?;
    if vault.storage().get(Table::OwnKeys, &key)?.is_none() {
        vault.put(Table::OwnKeys, &key, &encode(&[])?)?;
    }
    Ok(())
}

/// Every stored token with the day it is filed under, over all live days.
pub(crate) fn all(vault: &Vault) -> Result<Vec<(u32, UploadToken)>> {
    let mut out = Vec::new();
    for day in vault.live_days() {
        out.extend(of_day(vault, day)?.into_iter().map(|t| (day, t)));
    }
    Ok(out)
}

/// Adds `tokens` to the record of `day` (creating the day's key if needed) and
/// makes them durable.
pub(crate) fn store(vault: &mut Vault, day: u32, tokens: &[UploadToken]) -> Result<()> {
    vault.ensure_day(day)?;
    let mut kept = of_day(vault, day)?;
    kept.extend_from_slice(tokens);
    write_day(vault, day, &kept)
}

/// The token the next upload spends: of the newest issuing epoch (older keys
/// are retired first by the gateway), and among those the one filed under the
/// oldest day (shredded soonest).
pub(crate) fn next(vault: &Vault) -> Result<Option<(u32, UploadToken)>> {
    Ok(all(vault)?
        .into_iter()
        .min_by_key(|(day, t)| (std::cmp::Reverse(t.epoch), *day)))
}

/// Removes one spent token from the record of `day`, durably.
pub(crate) fn remove(vault: &Vault, day: u32, spent: &UploadToken) -> Result<()> {
    let mut kept = of_day(vault, day)?;
    let Some(i) = kept.iter().position(|t| t == spent) else {
        return Err(SdkError::Corrupt(format!(
            "the upload token being spent is no longer filed under day {day}"
        )));
    };
    kept.remove(i);
    write_day(vault, day, &kept)
}

/// A token of `epoch` with random input and output, for dummy uploads: the same
/// shape as a real one, but it verifies under no key.
pub(crate) fn random(epoch: u32) -> UploadToken {
    let mut token = UploadToken {
        epoch,
        input: [0; TOKEN_INPUT_LEN],
        output: [0; TOKEN_OUTPUT_LEN],
    };
    OsRng.fill_bytes(&mut token.input);
    OsRng.fill_bytes(&mut token.output);
    token
}

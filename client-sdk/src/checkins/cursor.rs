//! The warning cursor: per origin, the highest warning batch sequence synced,
//! so that a host lists `GET /v1/warnings` and downloads only what is newer
//! (warning sequences start at 0, SPEC.md §12.10). It names no venue and no
//! visit (every phone syncs every batch), but it decides what the phone skips:
//! it is sealed under the master key, so that a value written by anyone else
//! is `Corrupt`, never a silent skip of warnings.
//!
//! ```text
//! key   = "warning-cursor/" || origin                              (Table::Meta)
//! value = nonce(24) || XChaCha20-Poly1305(master, BE64 sequence, aad = CURSOR_AAD || origin)
//! ```

use crate::error::{Result, SdkError};
use crate::storage::Table;
use crate::vault::Vault;

const CURSOR_AAD: &[u8] = b"traceless/sdk/v1/warning-cursor\x00";

fn key(origin: &str) -> Vec<u8> {
    [b"warning-cursor/", origin.as_bytes()].concat()
}

fn aad(origin: &str) -> Vec<u8> {
    [CURSOR_AAD, origin.as_bytes()].concat()
}

/// The highest warning sequence of `origin` synced, if any.
pub(crate) fn get(vault: &Vault, origin: &str) -> Result<Option<u64>> {
    let Some(sealed) = vault.storage().get(Table::Meta, &key(origin))? else {
        return Ok(None);
    };
    let plain = vault.open_with_master(&aad(origin), &sealed, "warning cursor")?;
    let bytes: [u8; 8] = plain
        .as_slice()
        .try_into()
        .map_err(|_| SdkError::Corrupt("warning cursor is not 8 bytes".into()))?;
    Ok(Some(u64::from_be_bytes(bytes)))
}

/// Raises `origin`'s cursor to `sequence` (never lowers it).
pub(crate) fn advance(vault: &Vault, origin: &str, sequence: u64) -> Result<()> {
    if get(vault, origin)?.is_some_and(|c| c >= sequence) {
        return Ok(());
    }
    let sealed = vault.seal_with_master(&aad(origin), &sequence.to_be_bytes())?;
    vault.storage().put(Table::Meta, &key(origin), &sealed)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::storage::{MemoryStorage, Storage};
    use crate::vault::MasterKey;

    /// A value not sealed by this phone's master key for this origin is
    /// `Corrupt`, not a cursor: bytes in clear, another origin's cursor copied
    /// over, another master key's.
    #[test]
    fn a_cursor_not_sealed_for_this_origin_and_key_is_corrupt() {
        let storage = Arc::new(MemoryStorage::new());
        let vault = Vault::open(storage.clone(), &MasterKey([3; 32])).expect("vault");
        assert_eq!(get(&vault, "a.health").expect("reads"), None);
        advance(&vault, "a.health", 7).expect("advances");
        advance(&vault, "a.health", 2).expect("ignored");
        advance(&vault, "b.health", 9).expect("advances");
        assert_eq!(get(&vault, "a.health").expect("reads"), Some(7));
        assert_eq!(get(&vault, "b.health").expect("reads"), Some(9));

        let other =
            Vault::open(Arc::new(MemoryStorage::new()), &MasterKey([4; 32])).expect("vault");
        advance(&other, "a.health", 99).expect("advances");
        let foreign = other
            .storage()
            .get(Table::Meta, &key("a.health"))
            .expect("reads")
            .expect("written");
        let b = storage
            .get(Table::Meta, &key("b.health"))
            .expect("reads")
            .expect("written");
        for value in [99u64.to_be_bytes().to_vec(), b, foreign] {
            storage
                .put(Table::Meta, &key("a.health"), &value)
                .expect("writes");
            assert!(matches!(get(&vault, "a.health"), Err(SdkError::Corrupt(_))));
        }
    }
}

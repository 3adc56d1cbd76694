//! Key files: the node's libp2p identity, its deletion-log signing key, and
//! authority signing keys for gateways (export keys: [`crate::export_keys`]). Each is generated on first
//! use and written with mode 0600.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use rand_core::OsRng;
use serde::{Deserialize, Serialize};
use traceless_protocol::ed25519_dalek::SigningKey;
use traceless_protocol::{AuthorityKey, GatewaySealKey, TokenKey};

/// Why a key file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Reading or writing failed.
    #[error("key file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file's content is not a key of the expected kind (an empty file too).
    #[error("key file {0} is not a valid key")]
    Invalid(String),
    /// A freshly generated key could not be encoded; nothing was written.
    #[error("key file {path}: the new key could not be encoded ({why}); nothing written")]
    Encode {
        /// The file that was not written.
        path: String,
        /// Why.
        why: String,
    },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> KeyError + '_ {
    move |source| KeyError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Writes `bytes` to a new private file (fails if it exists). The bytes go to
/// a temporary file in the same directory first, synced, then linked into
/// place (which fails if `path` exists): a crash or a failed write never leaves
/// a partial or empty key file behind.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<(), KeyError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir).map_err(io_err(path))?;
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let tmp = dir.join(format!(".{name}.tmp-{:016x}", rand::random::<u64>()));
    let written = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::hard_link(&tmp, path)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    let _ = std::fs::remove_file(&tmp);
    written.map_err(io_err(path))
}

/// Reads the key at `path`, or writes a new one from `generate` if there is
/// none. A key that fails to encode (or encodes to nothing) is not written.
fn load_or_create(
    path: &Path,
    generate: impl FnOnce() -> Result<Vec<u8>, String>,
) -> Result<Vec<u8>, KeyError> {
    match std::fs::read(path) {
        Ok(b) if b.is_empty() => Err(KeyError::Invalid(path.display().to_string())),
        Ok(b) => Ok(b),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let encode_error = |why: String| KeyError::Encode {
                path: path.display().to_string(),
                why,
            };
            let b = generate().map_err(encode_error)?;
            if b.is_empty() {
                return Err(encode_error("encoded to nothing".into()));
            }
            write_private(path, &b)?;
            Ok(b)
        }
        Err(e) => Err(io_err(path)(e)),
    }
}

/// The node's libp2p identity (`node.key` in the data dir), made on first start.
pub fn node_identity(data_dir: &Path) -> Result<libp2p::identity::Keypair, KeyError> {
    let path = data_dir.join("node.key");
    let bytes = load_or_create(&path, || {
        libp2p::identity::Keypair::generate_ed25519()
            .to_protobuf_encoding()
            .map_err(|e| e.to_string())
    })?;
    libp2p::identity::Keypair::from_protobuf_encoding(&bytes)
        .map_err(|_| KeyError::Invalid(path.display().to_string()))
}

/// The node's deletion-log signing key (`deletion-log.key`), made on first start.
pub fn deletion_log_key(data_dir: &Path) -> Result<SigningKey, KeyError> {
    let path = data_dir.join("deletion-log.key");
    let bytes = load_or_create(&path, || {
        Ok(SigningKey::generate(&mut OsRng).to_bytes().to_vec())
    })?;
    let b: [u8; 32] = bytes
        .try_into()
        .map_err(|_| KeyError::Invalid(path.display().to_string()))?;
    Ok(SigningKey::from_bytes(&b))
}

/// An authority key file as written by `authority keygen`.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct AuthorityKeyFile {
    origin: String,
    key_id: u32,
    secret_key: String,
}

/// Writes a new authority key file.
pub fn write_authority_key(path: &Path, key: &AuthorityKey) -> Result<(), KeyError> {
    let file = AuthorityKeyFile {
        origin: key.origin.clone(),
        key_id: key.key_id,
        secret_key: hex::encode(key.signing_key.to_bytes()),
    };
    let text = format!(
        "# Traceless authority signing key: keep secret; only the gateway reads it.\n{}",
        toml::to_string(&file).map_err(|_| KeyError::Invalid(path.display().to_string()))?
    );
    write_private(path, text.as_bytes())
}

/// Reads an authority key file.
pub fn read_authority_key(path: &Path) -> Result<AuthorityKey, KeyError> {
    let text = std::fs::read_to_string(path).map_err(io_err(path))?;
    let invalid = || KeyError::Invalid(path.display().to_string());
    let file: AuthorityKeyFile = toml::from_str(&text).map_err(|_| invalid())?;
    let secret: [u8; 32] = hex::decode(&file.secret_key)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(invalid)?;
    Ok(AuthorityKey {
        origin: file.origin,
        key_id: file.key_id,
        signing_key: SigningKey::from_bytes(&secret),
    })
}

/// The `[[trust]]` entry for an authority key, to paste into every node's config.
pub fn trust_entry(key: &AuthorityKey) -> String {
    format!(
        "[[trust]]\norigin = \"{}\"\nkey_id = {}\npublic_key = \"{}\"\n",
        key.origin,
        key.key_id,
        hex::encode(key.verifying_key().to_bytes())
    )
}

/// Replaces the key in `path` with a fresh one under the next key id; the old file
/// is kept beside it as `<path>.<old id>.retired`. Returns the new key.
pub fn rotate_authority_key(path: &Path) -> Result<AuthorityKey, KeyError> {
    let old = read_authority_key(path)?;
    let retired = path.with_extension(format!("{}.retired", old.key_id));
    std::fs::rename(path, &retired).map_err(io_err(path))?;
    let new = AuthorityKey::generate(old.origin, old.key_id + 1);
    write_authority_key(path, &new)?;
    Ok(new)
}

/// The gateway's HPKE key for sealed uploads (`gateway-seal.key`), made on first start.
pub fn gateway_seal_key(data_dir: &Path) -> Result<GatewaySealKey, KeyError> {
    let path = data_dir.join("gateway-seal.key");
    let bytes = load_or_create(&path, || {
        Ok(GatewaySealKey::generate().secret_bytes().to_vec())
    })?;
    GatewaySealKey::from_secret(&bytes).map_err(|_| KeyError::Invalid(path.display().to_string()))
}

/// Writes a new VOPRF token key of `epoch` (fails if the file exists).
pub fn write_token_key(path: &Path, key: &TokenKey) -> Result<(), KeyError> {
    write_private(path, &key.to_bytes())
}

/// Reads a token key file as the key of `epoch`.
pub fn read_token_key(path: &Path, epoch: u32) -> Result<TokenKey, KeyError> {
    let bytes = std::fs::read(path).map_err(io_err(path))?;
    TokenKey::from_bytes(epoch, &bytes).map_err(|_| KeyError::Invalid(path.display().to_string()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// A key that failed to encode used to be written as an empty file (the
    /// identity's `unwrap_or_default`), and every later start failed on it.
    #[test]
    fn a_key_that_fails_to_encode_writes_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.key");
        let err = load_or_create(&path, || Err("no encoding".into())).unwrap_err();
        assert!(matches!(err, KeyError::Encode { .. }), "{err}");
        let err = load_or_create(&path, || Ok(Vec::new())).unwrap_err();
        assert!(matches!(err, KeyError::Encode { .. }), "{err}");
        assert!(!path.exists(), "no empty key file");
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "no temporary file left"
        );
        assert_eq!(
            load_or_create(&path, || Ok(vec![1, 2])).unwrap(),
            vec![1, 2]
        );
        assert_eq!(load_or_create(&path, || Ok(vec![3])).unwrap(), vec![1, 2]);
    }

    /// An empty or corrupt key file at start is an error naming the file.
    #[test]
    fn an_empty_or_corrupt_key_file_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.key");
        std::fs::write(&path, b"").unwrap();
        let err = node_identity(dir.path()).unwrap_err();
        assert!(
            matches!(&err, KeyError::Invalid(p) if p.ends_with("node.key")),
            "{err}"
        );
        std::fs::write(&path, b"garbage").unwrap();
        let err = node_identity(dir.path()).unwrap_err();
        assert!(
            matches!(&err, KeyError::Invalid(p) if p.ends_with("node.key")),
            "{err}"
        );
    }

    /// `write_private` never replaces an existing key.
    #[test]
    fn write_private_refuses_to_replace_a_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.key");
        write_private(&path, b"one").unwrap();
        let err = write_private(&path, b"two").unwrap_err();
        assert!(
            matches!(&err, KeyError::Io { source, .. } if source.kind() == std::io::ErrorKind::AlreadyExists),
            "{err}"
        );
        assert_eq!(std::fs::read(&path).unwrap(), b"one");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}

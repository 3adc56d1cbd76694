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
    /// The file's content is not a key of the expected kind.
    #[error("key file {0} is not a valid key")]
    Invalid(String),
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> KeyError + '_ {
    move |source| KeyError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Writes `bytes` to a new private file (fails if it exists).
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<(), KeyError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io_err(path))?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io_err(path))?;
    f.write_all(bytes).map_err(io_err(path))?;
    f.sync_all().map_err(io_err(path))
}

fn load_or_create(path: &Path, generate: impl FnOnce() -> Vec<u8>) -> Result<Vec<u8>, KeyError> {
    match std::fs::read(path) {
        Ok(b) => Ok(b),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let b = generate();
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
            .unwrap_or_default()
    })?;
    libp2p::identity::Keypair::from_protobuf_encoding(&bytes)
        .map_err(|_| KeyError::Invalid(path.display().to_string()))
}

/// The node's deletion-log signing key (`deletion-log.key`), made on first start.
pub fn deletion_log_key(data_dir: &Path) -> Result<SigningKey, KeyError> {
    let path = data_dir.join("deletion-log.key");
    let bytes = load_or_create(&path, || {
        SigningKey::generate(&mut OsRng).to_bytes().to_vec()
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
    let bytes = load_or_create(&path, || GatewaySealKey::generate().secret_bytes().to_vec())?;
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

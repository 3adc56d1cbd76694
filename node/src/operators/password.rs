//! Operator passwords: Argon2id (RFC 9106) in the PHC string format, via the
//! RustCrypto `argon2` crate.
//!
//! Parameters: m = 19 MiB, t = 2, p = 1, the first of OWASP's Password Storage
//! Cheat Sheet configurations for Argon2id (equivalent in strength to its
//! m = 46 MiB, t = 1). They cost about 20 ms on one core of this project's CI
//! machine, which a login pays once and a guesser pays per guess; the memory
//! term is what makes GPU guessing expensive. A hash keeps its parameters, so a
//! later change verifies old hashes as they were made.

use std::sync::OnceLock;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use rand::RngCore;

/// Memory cost in KiB.
pub const M_COST_KIB: u32 = 19 * 1024;
/// Passes.
pub const T_COST: u32 = 2;
/// Lanes.
pub const P_COST: u32 = 1;

/// Shortest password accepted.
pub const MIN_PASSWORD_LEN: usize = 12;

fn hasher() -> Argon2<'static> {
    // The constants are within argon2's bounds; `Params::new` checks only those.
    let params = Params::new(M_COST_KIB, T_COST, P_COST, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// The PHC string of `password` under a fresh random salt.
pub fn hash(password: &str) -> String {
    let mut salt = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut salt);
    // 16 bytes always encode as a valid salt.
    let salt = SaltString::encode_b64(&salt).unwrap_or_else(|_| unreachable!("16-byte salt"));
    hasher()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .unwrap_or_else(|_| unreachable!("argon2 with valid parameters"))
}

/// Whether `password` matches the PHC string `phc` (false for a malformed one).
pub fn verify(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|h| hasher().verify_password(password.as_bytes(), &h).is_ok())
}

/// A hash no password matches, verified against for unknown or disabled
/// accounts so that they cost what a wrong password costs.
pub fn decoy() -> &'static str {
    static DECOY: OnceLock<String> = OnceLock::new();
    DECOY.get_or_init(|| {
        let mut random = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut random);
        hash(&hex::encode(random))
    })
}

/// A fresh one-time password: 20 symbols of base32 (100 bits).
pub fn generate() -> String {
    const ALPHABET: &[u8; 32] = b"abcdefghijkmnpqrstuvwxyz23456789";
    let mut bytes = [0u8; 20];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    bytes
        .iter()
        .map(|b| char::from(ALPHABET[usize::from(b % 32)]))
        .collect()
}

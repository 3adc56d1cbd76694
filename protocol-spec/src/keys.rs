//! The key schedule, byte-compatible with Apple/Google *Exposure Notification
//! Cryptography Specification v1.2* (SPEC.md §2).
//!
//! ```text
//! RPIK  = HKDF-SHA256(IKM = TEK, salt = None, info = "EN-RPIK", L = 16)
//! AEMK  = HKDF-SHA256(IKM = TEK, salt = None, info = "EN-AEMK", L = 16)
//! RPI_i = AES-128(RPIK, "EN-RPI" || 0x00 * 6 || LE32(i))
//! AEM_i = AES-128-CTR(AEMK, IV = RPI_i, metadata)
//! ```
//!
//! This module is the plain, obviously-correct form of each derivation. The matcher's
//! batched form lives in [`crate::derive`] and is tested equal to this one.

use aes::cipher::{BlockCipherEncrypt, KeyInit};
use aes::Aes128;
use hkdf::Hkdf;
use rand_core::{OsRng, RngCore};
use sha2::Sha256;
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::interval::EnIntervalNumber;

/// Length of every key and token in the schedule.
pub const KEY_LEN: usize = 16;
/// Length of a Bluetooth advertisement payload: RPI || AEM.
pub const ADVERTISEMENT_LEN: usize = 20;
/// HKDF info of the RPI key.
pub const RPIK_INFO: &[u8] = b"EN-RPIK";
/// HKDF info of the metadata key.
pub const AEMK_INFO: &[u8] = b"EN-AEMK";
/// Prefix of the padded data encrypted into an RPI.
pub const RPI_PREFIX: &[u8; 6] = b"EN-RPI";
/// Metadata version byte: major 1 (bits 7-6 = 01), minor 0.
pub const METADATA_VERSION: u8 = 0b0100_0000;

/// Temporary Exposure Key: 16 random bytes, one per UTC day. Secret until
/// published: not `Copy` (every copy is an explicit `clone`), overwritten with
/// zeros when dropped, and redacted in `Debug`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Zeroize, ZeroizeOnDrop)]
pub struct Tek(pub [u8; KEY_LEN]);

/// Rolling Proximity Identifier Key.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Rpik(pub [u8; KEY_LEN]);

/// Associated Encrypted Metadata Key.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Aemk(pub [u8; KEY_LEN]);

/// Rolling Proximity Identifier: the token broadcast in one interval.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct Rpi(pub [u8; KEY_LEN]);

/// Associated Encrypted Metadata: the 4 metadata bytes encrypted under the AEMK.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Aem(pub [u8; 4]);

/// The 4 metadata bytes: version, TX power (dBm, signed), two reserved zero bytes.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Metadata(pub [u8; 4]);

/// One Bluetooth advertisement payload: `RPI || AEM`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Advertisement {
    /// The rolling identifier.
    pub rpi: Rpi,
    /// The encrypted metadata.
    pub aem: Aem,
}

impl std::fmt::Debug for Tek {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // A TEK is secret until published; never print it by accident.
        f.write_str("Tek(..)")
    }
}

impl Tek {
    /// Draws a new TEK from the operating system's CSPRNG.
    pub fn generate() -> Self {
        let mut k = [0u8; KEY_LEN];
        OsRng.fill_bytes(&mut k);
        Tek(k)
    }

    /// `RPIK = HKDF-SHA256(TEK, None, "EN-RPIK", 16)`.
    pub fn rpik(&self) -> Rpik {
        Rpik(hkdf16(&self.0, RPIK_INFO))
    }

    /// `AEMK = HKDF-SHA256(TEK, None, "EN-AEMK", 16)`.
    pub fn aemk(&self) -> Aemk {
        Aemk(hkdf16(&self.0, AEMK_INFO))
    }

    /// The advertisement this key broadcasts in `interval` with `metadata`.
    pub fn advertisement(&self, interval: EnIntervalNumber, metadata: Metadata) -> Advertisement {
        let rpi = self.rpik().rpi(interval);
        let aem = self.aemk().encrypt_metadata(&rpi, metadata);
        Advertisement { rpi, aem }
    }
}

fn hkdf16(ikm: &[u8; KEY_LEN], info: &[u8]) -> [u8; KEY_LEN] {
    let mut okm = [0u8; KEY_LEN];
    Hkdf::<Sha256>::new(None, ikm)
        .expand(info, &mut okm)
        .expect("16 bytes is a valid HKDF-SHA256 output length");
    okm
}

/// `"EN-RPI" || 0x00 * 6 || LE32(interval)`: the block encrypted into an RPI.
pub fn rpi_padded_data(interval: EnIntervalNumber) -> [u8; 16] {
    let mut block = [0u8; 16];
    block[..6].copy_from_slice(RPI_PREFIX);
    block[12..].copy_from_slice(&interval.to_le_bytes());
    block
}

impl Rpik {
    /// `RPI_i = AES-128(RPIK, PaddedData_i)`.
    pub fn rpi(&self, interval: EnIntervalNumber) -> Rpi {
        let cipher = Aes128::new(&self.0.into());
        let mut block = rpi_padded_data(interval).into();
        cipher.encrypt_block(&mut block);
        Rpi(block.into())
    }
}

impl Aemk {
    /// `AEM = AES-128-CTR(AEMK, IV = RPI, metadata)`. CTR over 4 bytes is one
    /// keystream block: the metadata XOR the first 4 bytes of `AES(AEMK, RPI)`.
    /// Decryption is the same operation.
    pub fn encrypt_metadata(&self, rpi: &Rpi, metadata: Metadata) -> Aem {
        let keystream = self.keystream(rpi);
        Aem(std::array::from_fn(|i| metadata.0[i] ^ keystream[i]))
    }

    /// Recovers the metadata of a matched advertisement.
    pub fn decrypt_metadata(&self, rpi: &Rpi, aem: &Aem) -> Metadata {
        let keystream = self.keystream(rpi);
        Metadata(std::array::from_fn(|i| aem.0[i] ^ keystream[i]))
    }

    fn keystream(&self, rpi: &Rpi) -> [u8; 16] {
        let cipher = Aes128::new(&self.0.into());
        let mut block = rpi.0.into();
        cipher.encrypt_block(&mut block);
        block.into()
    }
}

impl Metadata {
    /// Version 1.0 metadata with the given calibrated TX power in dBm.
    pub fn new(tx_power_dbm: i8) -> Self {
        Metadata([METADATA_VERSION, tx_power_dbm.to_le_bytes()[0], 0, 0])
    }

    /// The advertised TX power in dBm.
    pub fn tx_power_dbm(&self) -> i8 {
        i8::from_le_bytes([self.0[1]])
    }
}

impl Advertisement {
    /// The 20 bytes put on air.
    pub fn to_bytes(&self) -> [u8; ADVERTISEMENT_LEN] {
        let mut out = [0u8; ADVERTISEMENT_LEN];
        out[..16].copy_from_slice(&self.rpi.0);
        out[16..].copy_from_slice(&self.aem.0);
        out
    }

    /// Parses 20 received bytes; `None` if the length is wrong.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let bytes: &[u8; ADVERTISEMENT_LEN] = bytes.try_into().ok()?;
        let mut rpi = [0u8; 16];
        let mut aem = [0u8; 4];
        rpi.copy_from_slice(&bytes[..16]);
        aem.copy_from_slice(&bytes[16..]);
        Some(Advertisement {
            rpi: Rpi(rpi),
            aem: Aem(aem),
        })
    }
}

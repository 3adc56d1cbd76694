//! Boneh–Franklin FullIdent over BLS12-381 (SPEC.md §12.3), in CrowdNotifier's
//! type-III arrangement: master public keys in G2, identity keys in G1.
//!
//! ```text
//! mpk = g2^msk            sk_id = H1(id)^msk
//! Enc(mpk, id, m):  x ←$ {0,1}^256,  r = H3(x, m, id)
//!   c1 = g2^r,  c2 = x ⊕ HT(e(H1(id), mpk)^r),  c3 = AEAD(H4(x), m)
//! Dec(sk_id, id, c): x = c2 ⊕ HT(e(sk_id, c1)),  m = AEAD⁻¹(H4(x), c3),
//!   accept only if c1 = g2^H3(x, m, id)
//! ```
//!
//! The ciphertext names neither the identity nor the master key (key privacy): a
//! record is opened only by the one `sk_id` it was made for. The pairing crate is
//! arkworks (`ark-bls12-381`): pure Rust, RFC 9380 hash-to-curve (SSWU through
//! the 11-isogeny, checked here against RFC 9380's own vectors), and a canonical
//! serialisation of the target group, which `HT` hashes. Interoperability with
//! mcl's `hashAndMapToG1` (NotifyMe's H1) is not claimed.

use ark_bls12_381::{g1, Bls12_381, Fr, G1Affine, G1Projective, G2Affine, G2Projective};
use ark_ec::hashing::curve_maps::wb::WBMap;
use ark_ec::hashing::map_to_curve_hasher::MapToCurveBasedHasher;
use ark_ec::hashing::HashToCurve;
use ark_ec::pairing::{Pairing, PairingOutput};
use ark_ec::{AffineRepr, CurveGroup, PrimeGroup};
use ark_ff::field_hashers::{DefaultFieldHasher, HashToField};
use ark_ff::PrimeField;
use ark_serialize::{CanonicalDeserialize, CanonicalSerialize};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::ChaCha20Poly1305;
use rand_core::{OsRng, RngCore};
use sha2::{Digest, Sha256};
use zeroize::Zeroize;

use super::VenueError;

/// Domain of H1 (RFC 9380 suite BLS12381G1_XMD:SHA-256_SSWU_RO_).
pub const H1_DST: &[u8] = b"TRACELESS-V1-VENUE-H1_BLS12381G1_XMD:SHA-256_SSWU_RO_";
/// Domain of H3 (RFC 9380 hash_to_field into Fr, expand_message_xmd SHA-256, L = 48).
pub const H3_DST: &[u8] = b"TRACELESS-V1-VENUE-H3_BLS12381FR_XMD:SHA-256";
/// Prefix of HT = SHA-256(prefix ‖ canonical Gt bytes).
pub const HT_PREFIX: &[u8] = b"TRACELESS-V1-VENUE-HT";
/// Prefix of H4 = SHA-256(prefix ‖ x).
pub const H4_PREFIX: &[u8] = b"TRACELESS-V1-VENUE-H4";
/// Compressed G1 point.
pub const G1_LEN: usize = 48;
/// Compressed G2 point.
pub const G2_LEN: usize = 96;
/// Canonical target-group element (12 × 48-byte little-endian Fp).
pub const GT_LEN: usize = 576;
/// A scalar, 32 bytes little-endian, below the group order.
pub const SCALAR_LEN: usize = 32;
/// AEAD tag.
pub const TAG_LEN: usize = 16;
/// Ciphertext overhead over the plaintext: c1 ‖ c2 ‖ tag.
pub const OVERHEAD: usize = G2_LEN + 32 + TAG_LEN;

type H1Hasher =
    MapToCurveBasedHasher<G1Projective, DefaultFieldHasher<Sha256, 128>, WBMap<g1::Config>>;

/// RFC 9380 `hash_to_curve` into G1 under `dst` (exposed for the RFC's vectors).
pub fn hash_to_g1(dst: &[u8], msg: &[u8]) -> G1Affine {
    H1Hasher::new(dst)
        .and_then(|h| h.hash(msg))
        .expect("the BLS12-381 G1 SSWU map is defined for every field element")
}

/// H1(id).
pub fn h1(id: &[u8; 32]) -> G1Affine {
    hash_to_g1(H1_DST, id)
}

fn h3(x: &[u8; 32], m: &[u8], id: &[u8; 32]) -> Fr {
    let mut input = Vec::with_capacity(32 + 4 + m.len() + 32);
    input.extend_from_slice(x);
    input.extend_from_slice(&(m.len() as u32).to_be_bytes());
    input.extend_from_slice(m);
    input.extend_from_slice(id);
    let [r] = <DefaultFieldHasher<Sha256, 128> as HashToField<Fr>>::new(H3_DST)
        .hash_to_field::<1>(&input);
    r
}

/// The canonical 576 bytes of a target-group element (SPEC.md §12.3).
pub fn gt_bytes(gt: &PairingOutput<Bls12_381>) -> [u8; GT_LEN] {
    let mut out = [0u8; GT_LEN];
    gt.serialize_compressed(&mut out[..])
        .expect("a Gt element is 576 bytes");
    out
}

fn ht(gt: &PairingOutput<Bls12_381>) -> [u8; 32] {
    Sha256::new()
        .chain_update(HT_PREFIX)
        .chain_update(gt_bytes(gt))
        .finalize()
        .into()
}

fn h4(x: &[u8; 32]) -> [u8; 32] {
    Sha256::new()
        .chain_update(H4_PREFIX)
        .chain_update(x)
        .finalize()
        .into()
}

/// The AEAD of c3: ChaCha20-Poly1305 under the one-time key H4(x), all-zero nonce
/// (each key encrypts exactly one message), the identity as associated data.
fn aead(x: &[u8; 32]) -> ChaCha20Poly1305 {
    ChaCha20Poly1305::new(&h4(x).into())
}

fn g1_to_bytes(p: &G1Affine) -> [u8; G1_LEN] {
    let mut out = [0u8; G1_LEN];
    p.serialize_compressed(&mut out[..]).expect("48 bytes");
    out
}

fn g2_to_bytes(p: &G2Affine) -> [u8; G2_LEN] {
    let mut out = [0u8; G2_LEN];
    p.serialize_compressed(&mut out[..]).expect("96 bytes");
    out
}

fn g1_from_bytes(bytes: &[u8], what: &'static str) -> Result<G1Affine, VenueError> {
    if bytes.len() != G1_LEN {
        return Err(VenueError::Length {
            what,
            len: bytes.len(),
            expected: G1_LEN,
        });
    }
    // Checked: on the curve, in the prime-order subgroup.
    G1Affine::deserialize_compressed(bytes).map_err(|_| VenueError::BadPoint(what))
}

fn g2_from_bytes(bytes: &[u8], what: &'static str) -> Result<G2Affine, VenueError> {
    if bytes.len() != G2_LEN {
        return Err(VenueError::Length {
            what,
            len: bytes.len(),
            expected: G2_LEN,
        });
    }
    G2Affine::deserialize_compressed(bytes).map_err(|_| VenueError::BadPoint(what))
}

/// A master secret key `msk ∈ Fr` (zeroised on drop).
#[derive(Clone, PartialEq, Eq)]
pub struct MasterSecret(Fr);

impl Drop for MasterSecret {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl std::fmt::Debug for MasterSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterSecret(<redacted>)")
    }
}

impl MasterSecret {
    /// A fresh key: 64 bytes from the OS CSPRNG reduced mod r.
    pub fn generate() -> Self {
        let mut wide = [0u8; 64];
        OsRng.fill_bytes(&mut wide);
        let s = Self::from_wide(&wide);
        wide.zeroize();
        s
    }

    /// `msk = OS2IP(bytes) mod r`, little-endian (64 bytes make the bias negligible).
    pub fn from_wide(bytes: &[u8; 64]) -> Self {
        MasterSecret(Fr::from_le_bytes_mod_order(bytes))
    }

    /// The 32-byte little-endian encoding.
    pub fn to_bytes(&self) -> [u8; SCALAR_LEN] {
        let mut out = [0u8; SCALAR_LEN];
        self.0.serialize_compressed(&mut out[..]).expect("32 bytes");
        out
    }

    /// Decodes [`MasterSecret::to_bytes`]; rejects values ≥ r.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, VenueError> {
        if bytes.len() != SCALAR_LEN {
            return Err(VenueError::Length {
                what: "master secret",
                len: bytes.len(),
                expected: SCALAR_LEN,
            });
        }
        Fr::deserialize_compressed(bytes)
            .map(MasterSecret)
            .map_err(|_| VenueError::BadPoint("master secret"))
    }

    /// `mpk = g2^msk`.
    pub fn public(&self) -> MasterPublic {
        MasterPublic((G2Projective::generator() * self.0).into_affine())
    }

    /// `H1(id)^msk`: an identity key if this is the whole master secret, a
    /// share of one if it is one party's part.
    pub fn identity_key(&self, id: &[u8; 32]) -> IdentityKey {
        IdentityKey((G1Projective::from(h1(id)) * self.0).into_affine())
    }
}

/// A master public key `mpk ∈ G2`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MasterPublic(G2Affine);

impl MasterPublic {
    /// The 96-byte compressed encoding.
    pub fn to_bytes(&self) -> [u8; G2_LEN] {
        g2_to_bytes(&self.0)
    }

    /// Decodes a compressed G2 point (on the curve, in the subgroup, not identity).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, VenueError> {
        let p = g2_from_bytes(bytes, "master public key")?;
        if p == G2Affine::default() {
            return Err(VenueError::BadPoint("master public key"));
        }
        Ok(MasterPublic(p))
    }

    /// `mpk_a · mpk_b` (written additively: the key of `msk_a + msk_b`).
    pub fn combine(&self, other: &MasterPublic) -> MasterPublic {
        MasterPublic((self.0 + other.0).into_affine())
    }

    /// IBE encryption of `m` to `id` under this master key.
    pub fn encrypt(&self, id: &[u8; 32], m: &[u8]) -> Vec<u8> {
        let mut x = [0u8; 32];
        OsRng.fill_bytes(&mut x);
        let c = self.encrypt_with(id, m, &x);
        x.zeroize();
        c
    }

    /// [`MasterPublic::encrypt`] with a given `x`: for published vectors only, as
    /// a repeated `x` links ciphertexts.
    pub fn encrypt_with(&self, id: &[u8; 32], m: &[u8], x: &[u8; 32]) -> Vec<u8> {
        let r = h3(x, m, id);
        let c1 = (G2Projective::generator() * r).into_affine();
        let mask = ht(&(Bls12_381::pairing(h1(id), self.0) * r));
        let mut out = Vec::with_capacity(OVERHEAD + m.len());
        out.extend_from_slice(&g2_to_bytes(&c1));
        out.extend(x.iter().zip(mask).map(|(a, b)| a ^ b));
        let c3 = aead(x)
            .encrypt(&[0u8; 12].into(), Payload { msg: m, aad: id })
            .expect("ChaCha20-Poly1305 encrypts any message under 256 GiB");
        out.extend_from_slice(&c3);
        out
    }
}

/// An identity key `sk_id ∈ G1` (or an owner's/authority's share of one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdentityKey(G1Affine);

impl IdentityKey {
    /// The 48-byte compressed encoding.
    pub fn to_bytes(&self) -> [u8; G1_LEN] {
        g1_to_bytes(&self.0)
    }

    /// Decodes a compressed G1 point (on the curve, in the subgroup).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, VenueError> {
        g1_from_bytes(bytes, "identity key").map(IdentityKey)
    }

    /// Adds two shares: `H1(id)^a · H1(id)^b = H1(id)^(a+b)`.
    pub fn combine(&self, other: &IdentityKey) -> IdentityKey {
        IdentityKey((self.0 + other.0).into_affine())
    }

    /// Whether this is the key of `id` under `mpk`: `e(sk, g2) = e(H1(id), mpk)`.
    pub fn is_key_of(&self, mpk: &MasterPublic, id: &[u8; 32]) -> bool {
        Bls12_381::pairing(self.0, G2Affine::generator()) == Bls12_381::pairing(h1(id), mpk.0)
    }

    /// Opens a ciphertext made for `id`; fails with [`VenueError::NotForThisKey`]
    /// for any other identity or master key, and for any tampering.
    pub fn decrypt(&self, id: &[u8; 32], ciphertext: &[u8]) -> Result<Vec<u8>, VenueError> {
        if ciphertext.len() < OVERHEAD {
            return Err(VenueError::Length {
                what: "IBE ciphertext",
                len: ciphertext.len(),
                expected: OVERHEAD,
            });
        }
        let (c1_bytes, rest) = ciphertext.split_at(G2_LEN);
        let (c2, c3) = rest.split_at(32);
        let c1 = g2_from_bytes(c1_bytes, "IBE ciphertext c1")?;
        let mask = ht(&Bls12_381::pairing(self.0, c1));
        let mut x: [u8; 32] = std::array::from_fn(|i| c2[i] ^ mask[i]);
        let m = aead(&x)
            .decrypt(&[0u8; 12].into(), Payload { msg: c3, aad: id })
            .map_err(|_| VenueError::NotForThisKey);
        let checked = m.and_then(|m| {
            let r = h3(&x, &m, id);
            if (G2Projective::generator() * r).into_affine() == c1 {
                Ok(m)
            } else {
                Err(VenueError::NotForThisKey)
            }
        });
        x.zeroize();
        checked
    }
}

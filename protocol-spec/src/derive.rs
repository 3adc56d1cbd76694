//! Batched token derivation for the matcher: the same functions as [`crate::keys`],
//! arranged so that deriving a published key's 144 RPIs costs little more than its
//! primitives (six SHA-256 compressions and 144 AES blocks).
//!
//! Three things differ from the plain form (each tested equal to it, below and in
//! `tests/gaen_vectors.rs`):
//! 1. HKDF-SHA256 is computed on raw SHA-256 compressions (`sha2::compress256`,
//!    which runs SHA-NI / ARMv8 SHA2 when the CPU has them). `HKDF-Extract` with
//!    `salt = None` is `HMAC(0x00 * 32, TEK)`; the SHA-256 states after that HMAC's
//!    ipad and opad blocks never change, so they are computed once. A key then costs
//!    six compressions (see [`TokenDeriver::rpik`]) instead of eight plus the
//!    allocation-free but generic `hkdf` crate's bookkeeping. Written by hand
//!    because no crate exposes HMAC with a precomputed key state over `compress256`.
//! 2. The padded blocks `"EN-RPI" || 0x00 * 6 || LE32(i)` for a rolling start are built
//!    once and cached: the keys of a batch share a handful of rolling starts.
//! 3. All RPIs of a key are encrypted in one `encrypt_blocks_b2b` call under an
//!    encryption-only key schedule (`Aes128Enc`, half the work of `Aes128`'s), which
//!    lets the `aes` crate use its widest parallel backend (AES-NI x8, VAES-256 x30,
//!    VAES-512 x64 on x86, ARMv8 AES on aarch64).
//!
//! Measured and not kept (`benches/matcher.rs`, on a Sapphire Rapids core): issuing
//! the same HKDF step of 2, 4 or 8 keys back to back (0.88–0.94x one key at a time;
//! independent compressions overlap only 1.28x here), and running the next key's
//! HKDF steps between batches of the current key's AES blocks or probes (no change).

use aes::cipher::{BlockCipherEncrypt, KeyInit};
use aes::{Aes128Enc, Block};
#[allow(deprecated)] // sha2 0.10's compress256 takes generic-array 0.14 blocks.
use sha2::digest::generic_array::GenericArray;

use crate::interval::{EnIntervalNumber, INTERVALS_PER_DAY};
use crate::keys::{rpi_padded_data, Rpik, Tek, RPIK_INFO};

/// Most RPIs one key can have: a rolling period is at most 144 intervals.
pub const MAX_TOKENS_PER_KEY: usize = INTERVALS_PER_DAY as usize;

pub(crate) const SHA256_IV: [u32; 8] = [
    0x6a09_e667,
    0xbb67_ae85,
    0x3c6e_f372,
    0xa54f_f53a,
    0x510e_527f,
    0x9b05_688c,
    0x1f83_d9ab,
    0x5be0_cd19,
];

/// Number of rolling starts whose padded blocks are cached.
const PADDED_CACHE_SLOTS: usize = 16;

/// One SHA-256 compression (SHA-NI / ARMv8 SHA2 when the CPU has them).
#[allow(deprecated)] // sha2 0.10's compress256 takes generic-array 0.14 blocks.
pub(crate) fn compress(state: &mut [u32; 8], block: &[u8; 64]) {
    sha2::compress256(state, std::slice::from_ref(GenericArray::from_slice(block)));
}

pub(crate) fn state_bytes(state: &[u32; 8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (chunk, word) in out.chunks_exact_mut(4).zip(state) {
        chunk.copy_from_slice(&word.to_be_bytes());
    }
    out
}

/// HMAC-SHA256 with the key's ipad/opad blocks already absorbed.
#[derive(Clone, Copy)]
struct HmacState {
    inner: [u32; 8],
    outer: [u32; 8],
}

impl HmacState {
    /// Absorbs the ipad and opad blocks of `key`: two independent compressions.
    fn new(key: &[u8; 32]) -> Self {
        let pad_block = |pad: u8| {
            let mut block = [pad; 64];
            for (b, k) in block.iter_mut().zip(key) {
                *b ^= k;
            }
            let mut state = SHA256_IV;
            compress(&mut state, &block);
            state
        };
        HmacState {
            inner: pad_block(0x36),
            outer: pad_block(0x5c),
        }
    }
}

/// Pads `msg` (≤ 55 bytes, preceded by one 64-byte key block) and compresses it
/// into `state`.
fn finish_after_key_block(state: &mut [u32; 8], msg: &[u8]) {
    debug_assert!(msg.len() <= 55);
    let mut block = [0u8; 64];
    block[..msg.len()].copy_from_slice(msg);
    block[msg.len()] = 0x80;
    let bit_len = ((64 + msg.len()) as u64) * 8;
    block[56..].copy_from_slice(&bit_len.to_be_bytes());
    compress(state, &block);
}

/// `"EN-RPIK" || 0x01`: the single HKDF-Expand block for a 16-byte output.
const RPIK_EXPAND_INFO: [u8; 8] = {
    assert!(RPIK_INFO.len() == 7);
    let mut info = [1u8; 8];
    let mut i = 0;
    while i < RPIK_INFO.len() {
        info[i] = RPIK_INFO[i];
        i += 1;
    }
    info
};

/// Derives RPIKs and RPIs in bulk. Keep one per thread; it caches per-rolling-start
/// data, so reusing it across keys is what makes it fast.
pub struct TokenDeriver {
    zero_salt: HmacState,
    padded: PaddedCache,
    out: Box<[Block; MAX_TOKENS_PER_KEY]>,
}

impl Default for TokenDeriver {
    fn default() -> Self {
        Self::new()
    }
}

impl TokenDeriver {
    /// A deriver with empty caches.
    pub fn new() -> Self {
        TokenDeriver {
            zero_salt: HmacState::new(&[0u8; 32]),
            padded: PaddedCache::new(),
            out: Box::new([Block::default(); MAX_TOKENS_PER_KEY]),
        }
    }

    /// `RPIK = HKDF-SHA256(TEK, None, "EN-RPIK", 16)` in six SHA-256 compressions
    /// on cached HMAC states, the fewest HKDF allows here:
    /// - HKDF-Extract, `PRK = HMAC(salt = 0x00 * 32, IKM = TEK)`: the salt's ipad and
    ///   opad states are fixed and cached, leaving the inner block (TEK, padding)
    ///   and the outer block (inner hash, padding): 2.
    /// - HKDF-Expand, `T(1) = HMAC(PRK, "EN-RPIK" || 0x01)`, of which 16 bytes are
    ///   kept: PRK is new per key, so its ipad and opad blocks must be compressed,
    ///   then the inner block (8-byte info, padding) and the outer block: 4.
    pub fn rpik(&self, tek: &Tek) -> Rpik {
        let mut extract = self.zero_salt;
        finish_after_key_block(&mut extract.inner, &tek.0);
        finish_after_key_block(&mut extract.outer, &state_bytes(&extract.inner));
        let mut expand = HmacState::new(&state_bytes(&extract.outer));
        finish_after_key_block(&mut expand.inner, &RPIK_EXPAND_INFO);
        finish_after_key_block(&mut expand.outer, &state_bytes(&expand.inner));
        let mut rpik = [0u8; 16];
        rpik.copy_from_slice(&state_bytes(&expand.outer)[..16]);
        Rpik(rpik)
    }

    /// The RPIs of intervals `rolling_start .. rolling_start + period` of `tek`
    /// (`period` is clamped to 144), as AES blocks in interval order, all encrypted
    /// in one call so that the `aes` crate runs its widest backend.
    pub fn rpis(&mut self, tek: &Tek, rolling_start: EnIntervalNumber, period: u32) -> &[Block] {
        let rpik = self.rpik(tek);
        let cipher = Aes128Enc::new(&rpik.0.into());
        let n = (period as usize).min(MAX_TOKENS_PER_KEY);
        let padded = self.padded.get(rolling_start);
        cipher
            .encrypt_blocks_b2b(&padded[..n], &mut self.out[..n])
            .expect("input and output slices have the same length");
        &self.out[..n]
    }
}

/// Padded blocks of the most recent rolling starts: a batch's keys share a
/// handful of starts (one per day), so a linear scan of 16 slots beats hashing.
struct PaddedCache {
    slots: Vec<(Option<EnIntervalNumber>, Box<[Block; MAX_TOKENS_PER_KEY]>)>,
    /// Slot replaced on the next miss (round robin).
    victim: usize,
}

impl PaddedCache {
    fn new() -> Self {
        PaddedCache {
            slots: (0..PADDED_CACHE_SLOTS)
                .map(|_| (None, Box::new([Block::default(); MAX_TOKENS_PER_KEY])))
                .collect(),
            victim: 0,
        }
    }

    /// The padded blocks of `start .. start + 144`, from the cache or built into it.
    fn get(&mut self, start: EnIntervalNumber) -> &[Block; MAX_TOKENS_PER_KEY] {
        let i = match self.slots.iter().position(|(s, _)| *s == Some(start)) {
            Some(i) => i,
            None => {
                let i = self.victim;
                self.victim = (i + 1) % PADDED_CACHE_SLOTS;
                let (slot_start, blocks) = &mut self.slots[i];
                for (j, block) in blocks.iter_mut().enumerate() {
                    *block = rpi_padded_data(start.wrapping_add(j as u32)).into();
                }
                *slot_start = Some(start);
                i
            }
        };
        &self.slots[i].1
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// The six-compression HKDF equals the `hkdf` crate's (`Tek::rpik`).
        #[test]
        fn rpik_equals_the_hkdf_definition(tek in any::<[u8; 16]>()) {
            let tek = Tek(tek);
            prop_assert_eq!(TokenDeriver::new().rpik(&tek).0, tek.rpik().0);
        }

        /// Batched RPIs equal one AES block per interval under the plain RPIK, across
        /// more rolling starts than the padded-block cache holds.
        #[test]
        fn rpis_equal_one_block_per_interval(
            keys in prop::collection::vec(
                (any::<[u8; 16]>(), 2_900_000u32..2_900_000 + 30 * 144, 0u32..=150),
                1..40,
            ),
        ) {
            let mut deriver = TokenDeriver::new();
            for (tek, start, period) in keys {
                let tek = Tek(tek);
                let rpik = tek.rpik();
                let expected: Vec<[u8; 16]> = (0..period.min(144))
                    .map(|j| rpik.rpi(start + j).0)
                    .collect();
                let got: Vec<[u8; 16]> = deriver
                    .rpis(&tek, start, period)
                    .iter()
                    .map(|b| (*b).into())
                    .collect();
                prop_assert_eq!(got, expected);
            }
        }
    }
}

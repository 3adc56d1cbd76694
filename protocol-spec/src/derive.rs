//! Batched token derivation for the matcher: the same functions as [`crate::keys`],
//! arranged so that deriving a published key's 144 RPIs costs little more than the
//! 144 AES blocks themselves.
//!
//! Three things differ from the plain form (each tested equal to it):
//! 1. HKDF-SHA256 is computed on raw SHA-256 compressions. `HKDF-Extract` with
//!    `salt = None` is `HMAC(0x00 * 32, TEK)`; the SHA-256 states after that HMAC's
//!    ipad and opad blocks never change, so they are computed once. A key then costs
//!    six compressions (extract 2, expand key setup 2, expand 2) instead of eight plus
//!    the allocation-free but generic `hkdf` crate's bookkeeping. Written by hand
//!    because no crate exposes HMAC with a precomputed key state over `compress256`.
//! 2. The padded blocks `"EN-RPI" || 0x00 * 6 || LE32(i)` for a rolling start are built
//!    once and cached: the keys of a batch share a handful of rolling starts.
//! 3. All RPIs of a key are encrypted in one `encrypt_blocks_b2b` call, which lets the
//!    `aes` crate use its widest parallel backend (AES-NI x8, VAES-256/512 on x86,
//!    ARMv8 AES on aarch64).

use aes::cipher::{BlockCipherEncrypt, KeyInit};
use aes::{Aes128, Block};
#[allow(deprecated)] // sha2 0.10's compress256 takes generic-array 0.14 blocks.
use sha2::digest::generic_array::GenericArray;

use crate::interval::{EnIntervalNumber, INTERVALS_PER_DAY};
use crate::keys::{rpi_padded_data, Rpik, Tek, RPIK_INFO};

/// Most RPIs one key can have: a rolling period is at most 144 intervals.
pub const MAX_TOKENS_PER_KEY: usize = INTERVALS_PER_DAY as usize;

const SHA256_IV: [u32; 8] = [
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
fn compress(state: &mut [u32; 8], block: &[u8; 64]) {
    sha2::compress256(state, std::slice::from_ref(GenericArray::from_slice(block)));
}

fn state_bytes(state: &[u32; 8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (chunk, word) in out.chunks_exact_mut(4).zip(state) {
        chunk.copy_from_slice(&word.to_be_bytes());
    }
    out
}

/// HMAC-SHA256 with the key's ipad/opad blocks already absorbed.
#[derive(Clone)]
struct HmacState {
    inner: [u32; 8],
    outer: [u32; 8],
}

impl HmacState {
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

    /// `HMAC(key, msg)` for a message that fits in the one block after the key
    /// block (at most 55 bytes).
    fn mac(&self, msg: &[u8]) -> [u8; 32] {
        debug_assert!(msg.len() <= 55);
        let inner = finish_after_key_block(self.inner, msg);
        finish_after_key_block(self.outer, &inner)
    }
}

/// Pads `msg` (≤ 55 bytes, preceded by one 64-byte key block) and compresses it.
fn finish_after_key_block(mut state: [u32; 8], msg: &[u8]) -> [u8; 32] {
    let mut block = [0u8; 64];
    block[..msg.len()].copy_from_slice(msg);
    block[msg.len()] = 0x80;
    let bit_len = ((64 + msg.len()) as u64) * 8;
    block[56..].copy_from_slice(&bit_len.to_be_bytes());
    compress(&mut state, &block);
    state_bytes(&state)
}

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

    /// `RPIK = HKDF-SHA256(TEK, None, "EN-RPIK", 16)`, on cached HMAC states.
    pub fn rpik(&self, tek: &Tek) -> Rpik {
        // HKDF-Extract: PRK = HMAC(salt = 0x00 * 32, IKM = TEK)
        let prk = self.zero_salt.mac(&tek.0);
        // HKDF-Expand for one output block: T(1) = HMAC(PRK, info || 0x01)
        let mut info = [0u8; 8];
        info[..RPIK_INFO.len()].copy_from_slice(RPIK_INFO);
        info[RPIK_INFO.len()] = 0x01;
        let t1 = HmacState::new(&prk).mac(&info[..=RPIK_INFO.len()]);
        let mut rpik = [0u8; 16];
        rpik.copy_from_slice(&t1[..16]);
        Rpik(rpik)
    }

    /// The RPIs of intervals `rolling_start .. rolling_start + period` of `tek`
    /// (`period` is clamped to 144), as AES blocks in interval order.
    pub fn rpis(&mut self, tek: &Tek, rolling_start: EnIntervalNumber, period: u32) -> &[Block] {
        let n = (period as usize).min(MAX_TOKENS_PER_KEY);
        let rpik = self.rpik(tek);
        let cipher = Aes128::new(&rpik.0.into());
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

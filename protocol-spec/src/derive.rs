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
use crate::diagnosis::DiagnosisKey;
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

/// `RPIK = HKDF-SHA256(TEK, None, "EN-RPIK", 16)` as its chain of dependent
/// SHA-256 compressions, advanced one step at a time so that independent work (the
/// previous key's AES blocks) can run between the steps. Six compressions in
/// five steps, the fewest HKDF allows here:
/// 1. HKDF-Extract, `PRK = HMAC(salt = 0x00 * 32, IKM = TEK)`: the salt's ipad and
///    opad states are fixed and cached, leaving the inner block (TEK, padding) …
/// 2. … and the outer block (inner hash, padding).
/// 3. HKDF-Expand, `T(1) = HMAC(PRK, "EN-RPIK" || 0x01)` of which 16 bytes are
///    kept: PRK is new per key, so its ipad and opad blocks must be compressed
///    (two independent compressions) …
/// 4. … then the inner block (8-byte info, padding) …
/// 5. … and the outer block (inner hash, padding).
struct RpikSteps {
    done: u8,
    /// The inner hash state of the HMAC in progress.
    inner: [u32; 8],
    /// Its outer hash state.
    outer: [u32; 8],
}

impl RpikSteps {
    const STEPS: u8 = 5;

    /// Starts the HKDF of `tek` with step 1.
    fn start(zero_salt: &HmacState, tek: &Tek) -> Self {
        let mut steps = RpikSteps {
            done: 1,
            inner: zero_salt.inner,
            outer: zero_salt.outer,
        };
        finish_after_key_block(&mut steps.inner, &tek.0);
        steps
    }

    /// Runs the next step (nothing once all are done).
    fn advance(&mut self) {
        match self.done {
            1 | 4 => {
                let inner = state_bytes(&self.inner);
                finish_after_key_block(&mut self.outer, &inner);
            }
            2 => {
                let prk = HmacState::new(&state_bytes(&self.outer));
                (self.inner, self.outer) = (prk.inner, prk.outer);
            }
            3 => finish_after_key_block(&mut self.inner, &RPIK_EXPAND_INFO),
            _ => return,
        }
        self.done += 1;
    }

    /// The RPIK, running the steps not yet run.
    fn finish(mut self) -> Rpik {
        while self.done < Self::STEPS {
            self.advance();
        }
        let mut rpik = [0u8; 16];
        rpik.copy_from_slice(&state_bytes(&self.outer)[..16]);
        Rpik(rpik)
    }
}

/// Where [`TokenDeriver::for_each_key`] splits a key's AES blocks to run one HKDF
/// step of the next key in between: multiples of 64, the widest batch of the
/// `aes` crate's backends (VAES-512), so no batch is cut short.
const AES_SPLITS: [usize; 3] = [64, 128, MAX_TOKENS_PER_KEY];

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
    /// on cached HMAC states (see [`RpikSteps`]).
    pub fn rpik(&self, tek: &Tek) -> Rpik {
        RpikSteps::start(&self.zero_salt, tek).finish()
    }

    /// The RPIs of intervals `rolling_start .. rolling_start + period` of `tek`
    /// (`period` is clamped to 144), as AES blocks in interval order.
    pub fn rpis(&mut self, tek: &Tek, rolling_start: EnIntervalNumber, period: u32) -> &[Block] {
        let rpik = self.rpik(tek);
        let cipher = Aes128::new(&rpik.0.into());
        let n = (period as usize).min(MAX_TOKENS_PER_KEY);
        let padded = self.padded.get(rolling_start);
        cipher
            .encrypt_blocks_b2b(&padded[..n], &mut self.out[..n])
            .expect("input and output slices have the same length");
        &self.out[..n]
    }

    /// Calls `f(i, rpis)` for each key `keys[i]` in order, with the RPIs
    /// [`TokenDeriver::rpis`] gives for it. Pipelined: while the AES blocks of
    /// one key are encrypted (and `f` probes them), the HKDF of the next key
    /// advances, one dependent SHA-256 step between two batches of blocks; the
    /// CPU runs the two side by side, as they use different units.
    pub fn for_each_key(&mut self, keys: &[DiagnosisKey], mut f: impl FnMut(usize, &[Block])) {
        let Some(first) = keys.first() else {
            return;
        };
        let mut rpik = self.rpik(&first.tek);
        for (i, key) in keys.iter().enumerate() {
            let cipher = Aes128::new(&rpik.0.into());
            let mut next = keys.get(i + 1).map(|k| RpikSteps::start(&self.zero_salt, &k.tek));
            let n = (key.rolling_period as usize).min(MAX_TOKENS_PER_KEY);
            let padded = self.padded.get(key.rolling_start);
            let mut done = 0;
            for split in AES_SPLITS {
                let end = split.min(n);
                cipher
                    .encrypt_blocks_b2b(&padded[done..end], &mut self.out[done..end])
                    .expect("input and output slices have the same length");
                done = end;
                if let Some(steps) = &mut next {
                    steps.advance();
                }
            }
            f(i, &self.out[..n]);
            if let Some(steps) = next {
                rpik = steps.finish();
            }
        }
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

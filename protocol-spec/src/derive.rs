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
//! 4. The HKDFs of four keys run interleaved, step by step ([`TokenDeriver::rpiks`]),
//!    on blocks whose padding was written once (`HkdfBlocks`), and their AES key
//!    schedules back to back ([`TokenDeriver::for_each_key`]). Interleaving paid
//!    nothing while each block was rebuilt per compression (0.88–0.94x, an earlier
//!    measurement): SHA-NI's 16-byte loads of a block written byte by byte miss
//!    store-to-load forwarding and wait for the stores to retire, which serialises
//!    the keys. With whole 16-byte stores, four interleaved keys reach the rate of
//!    four independent compression chains (`benches/matcher.rs`).
//!
//! Measured and not kept (`benches/matcher.rs`, on a Sapphire Rapids core): running
//! the next key's HKDF steps between batches of the current key's AES blocks or
//! probes (no change).

use aes::cipher::{BlockCipherEncrypt, KeyInit};
use aes::{Aes128Enc, Block};
#[allow(deprecated)] // sha2 0.10's compress256 takes generic-array 0.14 blocks.
use sha2::digest::generic_array::GenericArray;

use crate::diagnosis::DiagnosisKey;
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

/// Keys whose HKDF compressions [`TokenDeriver::for_each_key`] interleaves.
pub const HKDF_LANES: usize = 4;

/// Number of rolling starts whose padded blocks are cached.
const PADDED_CACHE_SLOTS: usize = 16;

/// One SHA-256 compression (SHA-NI / ARMv8 SHA2 when the CPU has them).
#[allow(deprecated)] // sha2 0.10's compress256 takes generic-array 0.14 blocks.
pub(crate) fn compress(state: &mut [u32; 8], block: &[u8; 64]) {
    sha2::compress256(state, std::slice::from_ref(GenericArray::from_slice(block)));
}

pub(crate) fn state_bytes(state: &[u32; 8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    put_state_bytes(&mut out, state, 0);
    out
}

/// Writes the digest bytes of `state`, each XORed with `pad`, to the first 32
/// bytes of `out`, word by word (which compiles to two 16-byte stores).
#[inline]
fn put_state_bytes(out: &mut [u8], state: &[u32; 8], pad: u8) {
    let pad = u32::from_ne_bytes([pad; 4]);
    for (chunk, word) in out[..32].chunks_exact_mut(4).zip(state) {
        chunk.copy_from_slice(&(word ^ pad).to_be_bytes());
    }
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

/// A block holding a message of `len` bytes (≤ 55, preceded by one 64-byte key
/// block) at its start, already padded: zeros where the message goes, then
/// `0x80`, zeros and the bit length.
const fn padded_block(len: usize) -> [u8; 64] {
    assert!(len <= 55);
    let mut block = [0u8; 64];
    block[len] = 0x80;
    let bit_len = ((64 + len) as u64 * 8).to_be_bytes();
    let mut i = 0;
    while i < 8 {
        block[56 + i] = bit_len[i];
        i += 1;
    }
    block
}

/// `"EN-RPIK" || 0x01`, padded: HKDF-Expand's single inner block for a 16-byte
/// output, the same for every key.
const RPIK_EXPAND_BLOCK: [u8; 64] = {
    assert!(RPIK_INFO.len() == 7);
    let mut block = padded_block(8);
    let mut i = 0;
    while i < RPIK_INFO.len() {
        block[i] = RPIK_INFO[i];
        i += 1;
    }
    block[7] = 0x01;
    block
};

/// The blocks HKDF compresses, kept from key to key with their constant parts
/// (padding, length, HMAC pad bytes) written once: per key only the first 16 or 32
/// bytes are rewritten, in whole 16-byte stores that SHA-NI's 16-byte loads can
/// take straight from the store buffer. A block rebuilt per key (padding bytes
/// stored one by one) makes those loads wait for the stores to reach the cache,
/// which serialises the compressions of interleaved keys.
#[repr(align(64))]
struct HkdfBlocks {
    /// TEK || padding.
    tek: [u8; 64],
    /// A 32-byte digest || padding.
    digest: [u8; 64],
    /// (PRK ^ 0x36) || 0x36 * 32.
    ipad: [u8; 64],
    /// (PRK ^ 0x5c) || 0x5c * 32.
    opad: [u8; 64],
}

impl HkdfBlocks {
    fn new() -> Self {
        HkdfBlocks {
            tek: padded_block(16),
            digest: padded_block(32),
            ipad: [0x36; 64],
            opad: [0x5c; 64],
        }
    }

    /// Compresses the padded block of `tek` into `state`.
    fn finish_tek(&mut self, state: &mut [u32; 8], tek: &[u8; 16]) {
        self.tek[..16].copy_from_slice(tek);
        compress(state, &self.tek);
    }

    /// Compresses the padded block of the digest `inner` into `state`.
    fn finish_digest(&mut self, state: &mut [u32; 8], inner: &[u32; 8]) {
        put_state_bytes(&mut self.digest, inner, 0);
        compress(state, &self.digest);
    }

    /// Compresses HMAC's ipad and opad blocks of the 32-byte key `prk` (a digest
    /// state) into `inner` and `outer` (the SHA-256 IV).
    fn absorb_hmac_key(&mut self, inner: &mut [u32; 8], outer: &mut [u32; 8], prk: &[u32; 8]) {
        put_state_bytes(&mut self.ipad, prk, 0x36);
        put_state_bytes(&mut self.opad, prk, 0x5c);
        compress(inner, &self.ipad);
        compress(outer, &self.opad);
    }
}

/// Derives RPIKs and RPIs in bulk. Keep one per thread; it caches per-rolling-start
/// data, so reusing it across keys is what makes it fast.
pub struct TokenDeriver {
    zero_salt: HmacState,
    blocks: Box<HkdfBlocks>,
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
            blocks: Box::new(HkdfBlocks::new()),
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
    pub fn rpik(&mut self, tek: &Tek) -> Rpik {
        let [rpik] = self.rpiks([tek]);
        rpik
    }

    /// [`TokenDeriver::rpik`] of `N` keys at once, each of the five dependent
    /// steps issued for all `N` keys before the next: the compressions of
    /// different keys are independent, so the CPU overlaps them (`benches/matcher.rs`
    /// prints the gain as "HKDF, 4 keys interleaved").
    pub fn rpiks<const N: usize>(&mut self, teks: [&Tek; N]) -> [Rpik; N] {
        let b = &mut *self.blocks;
        // Each lane's states live in place in these arrays (moving whole HMAC
        // states between steps costs a memcpy per step).
        let mut extract_inner = [self.zero_salt.inner; N];
        for (state, tek) in extract_inner.iter_mut().zip(teks) {
            b.finish_tek(state, &tek.0);
        }
        let mut prk = [self.zero_salt.outer; N];
        for (state, inner) in prk.iter_mut().zip(&extract_inner) {
            b.finish_digest(state, inner);
        }
        let mut expand_inner = [SHA256_IV; N];
        let mut expand_outer = [SHA256_IV; N];
        for ((inner, outer), prk) in expand_inner.iter_mut().zip(&mut expand_outer).zip(&prk) {
            b.absorb_hmac_key(inner, outer, prk);
        }
        for state in &mut expand_inner {
            compress(state, &RPIK_EXPAND_BLOCK);
        }
        for (state, inner) in expand_outer.iter_mut().zip(&expand_inner) {
            b.finish_digest(state, inner);
        }
        expand_outer.map(|state| {
            let mut rpik = [0u8; 16];
            rpik.copy_from_slice(&state_bytes(&state)[..16]);
            Rpik(rpik)
        })
    }

    /// The RPIs of intervals `rolling_start .. rolling_start + period` of `tek`
    /// (`period` is clamped to 144), as AES blocks in interval order, all encrypted
    /// in one call so that the `aes` crate runs its widest backend.
    pub fn rpis(&mut self, tek: &Tek, rolling_start: EnIntervalNumber, period: u32) -> &[Block] {
        let cipher = Aes128Enc::new(&self.rpik(tek).0.into());
        self.encrypt(&cipher, rolling_start, period)
    }

    /// Calls `f(i, rpis)` for every key `i` of `keys`, with the RPIs
    /// [`TokenDeriver::rpis`] gives for it, keys of the same rolling start one after
    /// another (so that their padded blocks, and whatever `f` probes for that day,
    /// stay in L1), otherwise in key order. The keys' HKDFs run [`HKDF_LANES`] at a
    /// time ([`TokenDeriver::rpiks`]) and their AES key schedules back to back, so
    /// that independent work overlaps.
    pub fn for_each_key(&mut self, keys: &[DiagnosisKey], mut f: impl FnMut(usize, &[Block])) {
        let order = rolling_start_order(keys);
        let mut groups = order.chunks_exact(HKDF_LANES);
        for indices in groups.by_ref() {
            let group: [&DiagnosisKey; HKDF_LANES] =
                std::array::from_fn(|l| &keys[indices[l] as usize]);
            let rpiks = self.rpiks(group.map(|key| &key.tek));
            let ciphers = rpiks.map(|rpik| Aes128Enc::new(&rpik.0.into()));
            for ((&i, key), cipher) in indices.iter().zip(group).zip(&ciphers) {
                f(
                    i as usize,
                    self.encrypt(cipher, key.rolling_start, key.rolling_period),
                );
            }
        }
        for &i in groups.remainder() {
            let key = &keys[i as usize];
            f(
                i as usize,
                self.rpis(&key.tek, key.rolling_start, key.rolling_period),
            );
        }
    }

    fn encrypt(
        &mut self,
        cipher: &Aes128Enc,
        rolling_start: EnIntervalNumber,
        period: u32,
    ) -> &[Block] {
        let n = (period as usize).min(MAX_TOKENS_PER_KEY);
        let padded = self.padded.get(rolling_start);
        cipher
            .encrypt_blocks_b2b(&padded[..n], &mut self.out[..n])
            .expect("input and output slices have the same length");
        &self.out[..n]
    }
}

/// Indices of `keys` sorted by rolling start, in key order within one start.
fn rolling_start_order(keys: &[DiagnosisKey]) -> Vec<u32> {
    let mut order: Vec<u32> = (0..keys.len() as u32).collect();
    order.sort_by_key(|&i| keys[i as usize].rolling_start);
    order
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

        /// Interleaved RPIKs equal one-at-a-time ones, lane by lane.
        #[test]
        fn interleaved_rpiks_equal_the_hkdf_definition(teks in any::<[[u8; 16]; 4]>()) {
            let teks = teks.map(Tek);
            let got = TokenDeriver::new().rpiks([&teks[0], &teks[1], &teks[2], &teks[3]]);
            for (rpik, tek) in got.iter().zip(&teks) {
                prop_assert_eq!(rpik.0, tek.rpik().0);
            }
        }

        /// `for_each_key` visits every key once, with the RPIs `rpis` gives it,
        /// whatever the count (groups of four and a remainder) and mix of starts.
        #[test]
        fn for_each_key_visits_every_key_once(
            keys in prop::collection::vec(
                (any::<[u8; 16]>(), 0u32..20, 0u32..=150),
                0..23,
            ),
        ) {
            let keys: Vec<DiagnosisKey> = keys
                .into_iter()
                .map(|(tek, day, period)| DiagnosisKey {
                    tek: Tek(tek),
                    rolling_start: 2_900_000 + 144 * (day % 5) + day,
                    rolling_period: period,
                    transmission_risk: 0,
                    days_since_onset: 0,
                })
                .collect();
            let mut seen = vec![0u32; keys.len()];
            let mut deriver = TokenDeriver::new();
            let mut single = TokenDeriver::new();
            deriver.for_each_key(&keys, |i, rpis| {
                seen[i] += 1;
                let key = &keys[i];
                assert_eq!(rpis, single.rpis(&key.tek, key.rolling_start, key.rolling_period));
            });
            prop_assert!(seen.iter().all(|&n| n == 1), "visits: {:?}", seen);
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

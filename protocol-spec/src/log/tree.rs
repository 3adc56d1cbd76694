//! RFC 6962 / RFC 9162 Merkle tree hashing, and inclusion and consistency proofs
//! (generation and verification).
//!
//! Written here rather than taken from `ct-merkle`: its current release is on
//! `digest` 0.11 / `sha2` 0.11 (we are on 0.10 with the dalek 4 line) and keeps the
//! whole tree in memory, while the node needs proofs over a tree stored in sled.
//! Proof generation therefore reads hashes through [`PerfectHashes`], which a
//! store implements over its own keys; [`MemoryTree`] implements it in memory.
//! The algorithms are the RFC's, quoted next to the code; they are checked
//! against the transparency-dev reference vectors (`vectors/merkle-rfc6962.json`).

use sha2::{Digest, Sha256};

use super::LogError;

/// A 32-byte SHA-256 tree hash.
pub type Hash = [u8; 32];

/// Most hashes a proof may hold (a tree of 2^63 leaves needs 63; a consistency
/// proof at most two more than that). Longer proofs are refused before any work.
pub const MAX_PROOF_HASHES: usize = 64;

/// `MTH({})` = SHA-256 of the empty string.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// `MTH({d}) = SHA-256(0x00 || d)` (RFC 9162 §2.1.1).
pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0x00]);
    h.update(data);
    h.finalize().into()
}

/// `SHA-256(0x01 || left || right)` (RFC 9162 §2.1.1).
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([0x01]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The largest power of two smaller than `n` (`n >= 2`): RFC 9162's `k`.
fn split(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1 << (63 - (n - 1).leading_zeros())
}

/// Hashes of perfect subtrees: `perfect(level, i)` is the root of the subtree of
/// leaves `i * 2^level .. (i + 1) * 2^level` (level 0: leaf hashes). Only
/// subtrees that lie wholly inside the tree are ever asked for.
pub trait PerfectHashes {
    /// Why a hash could not be read (storage).
    type Error: From<LogError>;
    /// The root of one perfect subtree.
    fn perfect(&self, level: u32, index: u64) -> Result<Hash, Self::Error>;
}

/// The perfect subtrees completed by appending leaf `index` with hash `leaf`:
/// `(level, index, hash)` for levels 1.. while the new leaf closes a subtree.
/// A store writes these together with the leaf.
pub fn completed_by_append<P: PerfectHashes>(
    tree: &P,
    index: u64,
    leaf: Hash,
) -> Result<Vec<(u32, u64, Hash)>, P::Error> {
    let mut out = Vec::new();
    let mut hash = leaf;
    let mut level = 0;
    let mut i = index;
    while i & 1 == 1 {
        let left = tree.perfect(level, i - 1)?;
        hash = node_hash(&left, &hash);
        level += 1;
        i >>= 1;
        out.push((level, i, hash));
    }
    Ok(out)
}

/// `MTH(D[lo:hi])` from perfect subtrees (`lo` aligned as the RFC's recursions
/// leave it: a multiple of the largest power of two below `hi - lo`).
pub fn subtree_root<P: PerfectHashes>(tree: &P, lo: u64, hi: u64) -> Result<Hash, P::Error> {
    let n = hi - lo;
    if n == 0 {
        return Ok(empty_root());
    }
    if n.is_power_of_two() && lo.is_multiple_of(n) {
        return tree.perfect(n.trailing_zeros(), lo / n);
    }
    let k = split(n);
    let left = subtree_root(tree, lo, lo + k)?;
    let right = subtree_root(tree, lo + k, hi)?;
    Ok(node_hash(&left, &right))
}

/// The root of a tree of `size` leaves.
pub fn root<P: PerfectHashes>(tree: &P, size: u64) -> Result<Hash, P::Error> {
    subtree_root(tree, 0, size)
}

/// `PATH(m, D[lo:hi])` (RFC 6962 §2.1.1): the audit path of leaf `lo + m`, leaf
/// side first.
fn path<P: PerfectHashes>(
    tree: &P,
    m: u64,
    lo: u64,
    hi: u64,
    out: &mut Vec<Hash>,
) -> Result<(), P::Error> {
    let n = hi - lo;
    if n <= 1 {
        return Ok(());
    }
    let k = split(n);
    if m < k {
        path(tree, m, lo, lo + k, out)?;
        out.push(subtree_root(tree, lo + k, hi)?);
    } else {
        path(tree, m - k, lo + k, hi, out)?;
        out.push(subtree_root(tree, lo, lo + k)?);
    }
    Ok(())
}

/// The inclusion proof of leaf `index` in the tree of `size` leaves.
pub fn prove_inclusion<P: PerfectHashes>(
    tree: &P,
    index: u64,
    size: u64,
) -> Result<Vec<Hash>, P::Error> {
    if index >= size {
        return Err(LogError::IndexOutOfRange { index, size }.into());
    }
    let mut out = Vec::new();
    path(tree, index, 0, size, &mut out)?;
    Ok(out)
}

/// `SUBPROOF(m, D[lo:hi], b)` (RFC 6962 §2.1.2).
fn subproof<P: PerfectHashes>(
    tree: &P,
    m: u64,
    lo: u64,
    hi: u64,
    whole: bool,
    out: &mut Vec<Hash>,
) -> Result<(), P::Error> {
    let n = hi - lo;
    if m == n {
        if !whole {
            out.push(subtree_root(tree, lo, hi)?);
        }
        return Ok(());
    }
    let k = split(n);
    if m <= k {
        subproof(tree, m, lo, lo + k, whole, out)?;
        out.push(subtree_root(tree, lo + k, hi)?);
    } else {
        subproof(tree, m - k, lo + k, hi, false, out)?;
        out.push(subtree_root(tree, lo, lo + k)?);
    }
    Ok(())
}

/// The consistency proof between the trees of `old` and `new` leaves
/// (`0 < old <= new`; empty when they are equal).
pub fn prove_consistency<P: PerfectHashes>(
    tree: &P,
    old: u64,
    new: u64,
) -> Result<Vec<Hash>, P::Error> {
    if old == 0 || old > new {
        return Err(LogError::SizeOrder { old, new }.into());
    }
    let mut out = Vec::new();
    subproof(tree, old, 0, new, true, &mut out)?;
    Ok(out)
}

/// How many hashes the inclusion proof of `index` in a tree of `size` has
/// (counted along `PATH`, without hashing).
pub fn inclusion_proof_len(index: u64, size: u64) -> usize {
    let (mut m, mut n, mut len) = (index, size, 0);
    while n > 1 {
        let k = split(n);
        len += 1;
        if m < k {
            n = k;
        } else {
            m -= k;
            n -= k;
        }
    }
    len
}

/// How many hashes the consistency proof between `old` and `new` has (counted
/// along `SUBPROOF`, without hashing).
pub fn consistency_proof_len(old: u64, new: u64) -> usize {
    let (mut m, mut n, mut whole, mut len) = (old, new, true, 0);
    while m != n {
        let k = split(n);
        len += 1;
        if m <= k {
            n = k;
        } else {
            m -= k;
            n -= k;
            whole = false;
        }
    }
    len + usize::from(!whole)
}

/// Verifies that `leaf` (a leaf hash) is at `index` in the tree of `size` leaves
/// whose root is `root` (RFC 9162 §2.1.3.2).
pub fn verify_inclusion(
    leaf: &Hash,
    index: u64,
    size: u64,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), LogError> {
    if index >= size {
        return Err(LogError::IndexOutOfRange { index, size });
    }
    let expected = inclusion_proof_len(index, size);
    if proof.len() != expected {
        return Err(LogError::ProofLength {
            expected,
            got: proof.len(),
        });
    }
    let (mut fn_, mut sn) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if fn_ & 1 == 1 || fn_ == sn {
            r = node_hash(p, &r);
            while fn_ & 1 == 0 && fn_ != 0 {
                fn_ >>= 1;
                sn >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    if sn == 0 && &r == root {
        Ok(())
    } else {
        Err(LogError::RootMismatch)
    }
}

/// Verifies that the tree of `old` leaves with root `old_root` is a prefix of the
/// tree of `new` leaves with root `new_root` (RFC 9162 §2.1.4.2).
pub fn verify_consistency(
    old: u64,
    new: u64,
    proof: &[Hash],
    old_root: &Hash,
    new_root: &Hash,
) -> Result<(), LogError> {
    if old == 0 || old > new {
        return Err(LogError::SizeOrder { old, new });
    }
    let expected = consistency_proof_len(old, new);
    if proof.len() != expected {
        return Err(LogError::ProofLength {
            expected,
            got: proof.len(),
        });
    }
    if old == new {
        return if old_root == new_root {
            Ok(())
        } else {
            Err(LogError::RootMismatch)
        };
    }
    // "If first is an exact power of 2, then prepend first_hash to the
    // consistency_path array."
    let mut path: Vec<Hash> = Vec::with_capacity(proof.len() + 1);
    if old.is_power_of_two() {
        path.push(*old_root);
    }
    path.extend_from_slice(proof);
    let (mut fn_, mut sn) = (old - 1, new - 1);
    while fn_ & 1 == 1 {
        fn_ >>= 1;
        sn >>= 1;
    }
    let (mut fr, mut sr) = (path[0], path[0]);
    for c in &path[1..] {
        if sn == 0 {
            return Err(LogError::RootMismatch);
        }
        if fn_ & 1 == 1 || fn_ == sn {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while fn_ & 1 == 0 && fn_ != 0 {
                fn_ >>= 1;
                sn >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    if sn == 0 && &fr == old_root && &sr == new_root {
        Ok(())
    } else {
        Err(LogError::RootMismatch)
    }
}

/// A tree in memory (phones checking a proof locally, tests, benches): one vector
/// of perfect-subtree hashes per level.
#[derive(Clone, Debug, Default)]
pub struct MemoryTree {
    levels: Vec<Vec<Hash>>,
}

impl MemoryTree {
    /// An empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of leaves.
    pub fn size(&self) -> u64 {
        self.levels.first().map_or(0, |l| l.len() as u64)
    }

    /// Appends a leaf (its data, hashed with [`leaf_hash`]).
    pub fn push(&mut self, data: &[u8]) {
        self.push_hash(leaf_hash(data));
    }

    /// Appends a leaf by its hash.
    pub fn push_hash(&mut self, leaf: Hash) {
        let index = self.size();
        // Every left sibling a new leaf closes is already stored.
        let completed = completed_by_append(self, index, leaf).unwrap_or_default();
        self.set(0, leaf);
        for (level, _, hash) in completed {
            self.set(level, hash);
        }
    }

    fn set(&mut self, level: u32, hash: Hash) {
        let level = level as usize;
        if self.levels.len() <= level {
            self.levels.resize_with(level + 1, Vec::new);
        }
        self.levels[level].push(hash);
    }

    /// The root of the whole tree.
    pub fn root(&self) -> Hash {
        root(self, self.size()).unwrap_or_else(|_| empty_root())
    }
}

impl PerfectHashes for MemoryTree {
    type Error = LogError;
    fn perfect(&self, level: u32, index: u64) -> Result<Hash, LogError> {
        self.levels
            .get(level as usize)
            .and_then(|l| l.get(index as usize))
            .copied()
            .ok_or(LogError::IndexOutOfRange {
                index,
                size: self.size(),
            })
    }
}

impl MemoryTree {
    /// [`prove_inclusion`] over this tree.
    pub fn prove_inclusion(&self, index: u64, size: u64) -> Result<Vec<Hash>, LogError> {
        self.check_size(size)?;
        prove_inclusion(self, index, size)
    }

    /// [`prove_consistency`] over this tree.
    pub fn prove_consistency(&self, old: u64, new: u64) -> Result<Vec<Hash>, LogError> {
        self.check_size(new)?;
        prove_consistency(self, old, new)
    }

    /// The root of the first `size` leaves.
    pub fn root_at(&self, size: u64) -> Result<Hash, LogError> {
        self.check_size(size)?;
        root(self, size)
    }

    fn check_size(&self, size: u64) -> Result<(), LogError> {
        if size > self.size() {
            return Err(LogError::BeyondLog {
                size,
                log_size: self.size(),
            });
        }
        Ok(())
    }
}

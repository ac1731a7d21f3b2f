//! Merkle tree hashing and proofs of RFC 9162 §2.1 (as RFC 6962 §2.1), with SHA-256: the
//! hashes a verifiable log commits to, and the checks an offline verifier runs.
//!
//! ```text
//! leaf hash:  SHA-256(0x00 || entry)
//! node hash:  SHA-256(0x01 || left || right)
//! empty tree: SHA-256("")
//! MTH(D[n]):  the root of n leaves: split at k, the largest power of two below n
//! ```
//!
//! Verification ([`verify_inclusion`], [`verify_consistency`]) follows RFC 9162 §2.1.3.2 and
//! §2.1.4.2 step by step, and each failure is named ([`ProofError`]). Proof generation here
//! ([`inclusion_proof_from`], [`consistency_proof_from`]) reads subtree hashes from a source, by the
//! recursive definitions of RFC 6962 §2.1.1 and §2.1.2: the reference a tiled store's proofs
//! are checked against, and what a test builds proofs with.

use sha2::{Digest, Sha256};

/// Bytes of a Merkle tree hash.
pub const MERKLE_HASH_LEN: usize = 32;

/// A Merkle tree hash (SHA-256).
pub type MerkleHash = [u8; MERKLE_HASH_LEN];

/// Why a proof does not verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    /// The leaf index is not below the tree size.
    #[error("leaf index {index} is not below the tree size {size}")]
    IndexOutOfRange {
        /// The leaf index.
        index: u64,
        /// The tree size.
        size: u64,
    },
    /// The old tree size is larger than the new one.
    #[error("old tree size {old} is larger than the new tree size {new}")]
    SizesOutOfOrder {
        /// The old size.
        old: u64,
        /// The new size.
        new: u64,
    },
    /// The proof has the wrong number of hashes for the sizes given.
    #[error("the proof has {got} hashes, which does not fit the tree sizes")]
    WrongLength {
        /// The hashes given.
        got: usize,
    },
    /// The proof leads to a root other than the one given.
    #[error("the proof does not lead to the given root hash")]
    RootMismatch,
    /// A consistency proof does not lead to the old root.
    #[error("the consistency proof does not lead to the old root hash")]
    OldRootMismatch,
    /// The leaves of a batch proof are not in ascending order of index, each once.
    #[error("the leaves of a batch proof are not in ascending index order, each once")]
    LeavesOutOfOrder,
}

/// Returns the hash of a leaf whose entry is `entry`: SHA-256(0x00 || entry).
pub fn leaf_hash(entry: &[u8]) -> MerkleHash {
    Sha256::new()
        .chain_update([0u8])
        .chain_update(entry)
        .finalize()
        .into()
}

/// Returns the hash of an interior node: SHA-256(0x01 || left || right).
pub fn node_hash(left: &MerkleHash, right: &MerkleHash) -> MerkleHash {
    Sha256::new()
        .chain_update([1u8])
        .chain_update(left)
        .chain_update(right)
        .finalize()
        .into()
}

/// Returns the root of the empty tree: SHA-256 of nothing.
pub fn empty_root() -> MerkleHash {
    Sha256::digest([]).into()
}

/// The largest power of two strictly below `n` (`n` at least 2).
fn split(n: usize) -> usize {
    debug_assert!(n >= 2);
    1 << (usize::BITS - 1 - (n - 1).leading_zeros())
}

/// Returns MTH of the leaves whose hashes are `leaves`.
pub fn root_of(leaves: &[MerkleHash]) -> MerkleHash {
    match leaves {
        [] => empty_root(),
        [one] => *one,
        _ => {
            let k = split(leaves.len());
            node_hash(&root_of(&leaves[..k]), &root_of(&leaves[k..]))
        }
    }
}

/// Returns the inclusion proof of leaf `index` in the tree of `leaves` (PATH of RFC 6962
/// §2.1.1), or `None` if `index` is out of range.
pub fn inclusion_proof(leaves: &[MerkleHash], index: usize) -> Option<Vec<MerkleHash>> {
    (index < leaves.len()).then(|| {
        let source = |start: u64, end: u64| {
            Ok::<_, std::convert::Infallible>(root_of(&leaves[start as usize..end as usize]))
        };
        match inclusion_proof_from(index as u64, leaves.len() as u64, source) {
            Ok(proof) => proof,
            Err(never) => match never {},
        }
    })
}

/// Returns the consistency proof from the tree of the first `old_size` of `leaves` to the tree
/// of all of them (PROOF of RFC 6962 §2.1.2): empty when the sizes are equal or `old_size` is
/// 0; `None` if `old_size` is larger than the tree.
pub fn consistency_proof(leaves: &[MerkleHash], old_size: usize) -> Option<Vec<MerkleHash>> {
    if old_size > leaves.len() {
        return None;
    }
    let source = |start: u64, end: u64| {
        Ok::<_, std::convert::Infallible>(root_of(&leaves[start as usize..end as usize]))
    };
    match consistency_proof_from(old_size as u64, leaves.len() as u64, source) {
        Ok(proof) => Some(proof),
        Err(never) => match never {},
    }
}

/// The largest power of two strictly below `n` (`n` at least 2).
fn split_u64(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1 << (u64::BITS - 1 - (n - 1).leading_zeros())
}

/// PATH of RFC 6962 §2.1.1 for leaf `index` of a tree of `size` leaves (`index < size`),
/// reading each sibling's hash from `range`, which answers MTH of the leaves
/// `[start, end)`. A tiled store answers a range aligned to its size from one stored node, so
/// a proof costs O(log n) reads.
pub fn inclusion_proof_from<E>(
    index: u64,
    size: u64,
    mut range: impl FnMut(u64, u64) -> Result<MerkleHash, E>,
) -> Result<Vec<MerkleHash>, E> {
    debug_assert!(index < size);
    let mut proof = Vec::new();
    // Walk down from the root, collecting siblings; the proof lists them bottom up.
    let (mut start, mut end, mut m) = (0u64, size, index);
    while end - start > 1 {
        let k = split_u64(end - start);
        if m < k {
            proof.push(range(start + k, end)?);
            end = start + k;
        } else {
            proof.push(range(start, start + k)?);
            start += k;
            m -= k;
        }
    }
    proof.reverse();
    Ok(proof)
}

/// PROOF of RFC 6962 §2.1.2 from the tree of `old_size` leaves to that of `new_size`
/// (`old_size <= new_size`; empty when they are equal or `old_size` is 0), reading hashes
/// from `range` as [`inclusion_proof_from`] does.
pub fn consistency_proof_from<E>(
    old_size: u64,
    new_size: u64,
    mut range: impl FnMut(u64, u64) -> Result<MerkleHash, E>,
) -> Result<Vec<MerkleHash>, E> {
    debug_assert!(old_size <= new_size);
    let mut proof = Vec::new();
    if old_size == 0 || old_size == new_size {
        return Ok(proof);
    }
    // SUBPROOF(m, D[start:end], whole), unrolled: walk down, collecting hashes, listed bottom up.
    let (mut start, mut end, mut m, mut whole) = (0u64, new_size, old_size, true);
    loop {
        let n = end - start;
        if m == n {
            if !whole {
                proof.push(range(start, end)?);
            }
            break;
        }
        let k = split_u64(n);
        if m <= k {
            proof.push(range(start + k, end)?);
            end = start + k;
        } else {
            proof.push(range(start, start + k)?);
            start += k;
            m -= k;
            whole = false;
        }
    }
    proof.reverse();
    Ok(proof)
}

/// MTH of the leaves `[start, end)` of a tree (`start < end`), from `complete`, which answers
/// the hash of a complete subtree: `complete(level, index)` covers the leaves
/// `[index << level, (index + 1) << level)`. What a store of complete subtrees answers
/// [`inclusion_proof_from`]'s `range` with: O(log n) reads.
pub fn range_hash<E>(
    start: u64,
    end: u64,
    complete: &mut impl FnMut(u8, u64) -> Result<MerkleHash, E>,
) -> Result<MerkleHash, E> {
    debug_assert!(start < end);
    let n = end - start;
    let aligned = n.is_power_of_two() && start.is_multiple_of(n);
    if aligned {
        let level = n.trailing_zeros() as u8;
        return complete(level, start >> level);
    }
    let k = split_u64(n);
    let left = range_hash(start, start + k, complete)?;
    let right = range_hash(start + k, end, complete)?;
    Ok(node_hash(&left, &right))
}

/// Checks that `leaf` (a leaf hash) is leaf `index` of the tree of `size` leaves whose root is
/// `root`, by `proof` (RFC 9162 §2.1.3.2).
pub fn verify_inclusion(
    leaf: &MerkleHash,
    index: u64,
    size: u64,
    proof: &[MerkleHash],
    root: &MerkleHash,
) -> Result<(), ProofError> {
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    let wrong_length = ProofError::WrongLength { got: proof.len() };
    let (mut f, mut s) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if s == 0 {
            return Err(wrong_length);
        }
        if f & 1 == 1 || f == s {
            r = node_hash(p, &r);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        f >>= 1;
        s >>= 1;
    }
    if s != 0 {
        return Err(wrong_length);
    }
    if r == *root {
        Ok(())
    } else {
        Err(ProofError::RootMismatch)
    }
}

/// Checks that the tree of `old_size` leaves with root `old_root` is a prefix of the tree of
/// `new_size` leaves with root `new_root`, by `proof` (RFC 9162 §2.1.4.2). Equal sizes need
/// an empty proof and equal roots; the empty tree is a prefix of every tree.
pub fn verify_consistency(
    old_size: u64,
    new_size: u64,
    old_root: &MerkleHash,
    new_root: &MerkleHash,
    proof: &[MerkleHash],
) -> Result<(), ProofError> {
    let wrong_length = ProofError::WrongLength { got: proof.len() };
    if old_size > new_size {
        return Err(ProofError::SizesOutOfOrder {
            old: old_size,
            new: new_size,
        });
    }
    if old_size == new_size || old_size == 0 {
        if !proof.is_empty() {
            return Err(wrong_length);
        }
        return match old_size == 0 || old_root == new_root {
            true => Ok(()),
            false => Err(ProofError::RootMismatch),
        };
    }
    let mut path: Vec<MerkleHash> = Vec::with_capacity(proof.len() + 1);
    if old_size.is_power_of_two() {
        path.push(*old_root);
    }
    path.extend_from_slice(proof);
    let Some((first, rest)) = path.split_first() else {
        return Err(wrong_length);
    };
    let (mut f, mut s) = (old_size - 1, new_size - 1);
    while f & 1 == 1 {
        f >>= 1;
        s >>= 1;
    }
    let (mut fr, mut sr) = (*first, *first);
    for c in rest {
        if s == 0 {
            return Err(wrong_length);
        }
        if f & 1 == 1 || f == s {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        f >>= 1;
        s >>= 1;
    }
    if s != 0 {
        return Err(wrong_length);
    }
    if fr != *old_root {
        return Err(ProofError::OldRootMismatch);
    }
    if sr != *new_root {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

/// Returns one proof that the leaves at `indices` (ascending, distinct, each below `size`) are
/// in the tree of `size` leaves: the hashes of the maximal subtrees that hold none of them, in
/// the order a left-to-right walk of the tree meets them, read from `range` as
/// [`inclusion_proof_from`] does. For one leaf it is that leaf's audit path, top down; for many,
/// each shared hash is given once, and a run of neighbouring leaves needs only the hashes
/// around it.
pub fn batch_inclusion_proof_from<E>(
    indices: &[u64],
    size: u64,
    mut range: impl FnMut(u64, u64) -> Result<MerkleHash, E>,
) -> Result<Vec<MerkleHash>, E> {
    fn walk<E>(
        start: u64,
        end: u64,
        indices: &[u64],
        range: &mut impl FnMut(u64, u64) -> Result<MerkleHash, E>,
        out: &mut Vec<MerkleHash>,
    ) -> Result<(), E> {
        if indices.is_empty() {
            out.push(range(start, end)?);
            return Ok(());
        }
        if end - start == 1 {
            return Ok(());
        }
        let k = split_u64(end - start);
        let cut = indices.partition_point(|&i| i < start + k);
        walk(start, start + k, &indices[..cut], range, out)?;
        walk(start + k, end, &indices[cut..], range, out)
    }
    let mut out = Vec::new();
    if !indices.is_empty() && size > 0 {
        walk(0, size, indices, &mut range, &mut out)?;
    }
    Ok(out)
}

/// Checks that each `(index, leaf hash)` of `leaves` (ascending indexes, distinct) is in the
/// tree of `size` leaves whose root is `root`, by a proof of [`batch_inclusion_proof_from`].
pub fn verify_batch_inclusion(
    leaves: &[(u64, MerkleHash)],
    size: u64,
    proof: &[MerkleHash],
    root: &MerkleHash,
) -> Result<(), ProofError> {
    fn compute(
        start: u64,
        end: u64,
        leaves: &[(u64, MerkleHash)],
        proof: &mut std::slice::Iter<'_, MerkleHash>,
        total: usize,
    ) -> Result<MerkleHash, ProofError> {
        if leaves.is_empty() {
            return proof
                .next()
                .copied()
                .ok_or(ProofError::WrongLength { got: total });
        }
        if end - start == 1 {
            return Ok(leaves[0].1);
        }
        let k = split_u64(end - start);
        let cut = leaves.partition_point(|(i, _)| *i < start + k);
        let left = compute(start, start + k, &leaves[..cut], proof, total)?;
        let right = compute(start + k, end, &leaves[cut..], proof, total)?;
        Ok(node_hash(&left, &right))
    }
    for pair in leaves.windows(2) {
        if pair[0].0 >= pair[1].0 {
            return Err(ProofError::LeavesOutOfOrder);
        }
    }
    if let Some((index, _)) = leaves.last()
        && *index >= size
    {
        return Err(ProofError::IndexOutOfRange { index: *index, size });
    }
    if leaves.is_empty() {
        return match proof.is_empty() {
            true => Ok(()),
            false => Err(ProofError::WrongLength { got: proof.len() }),
        };
    }
    let mut iter = proof.iter();
    let computed = compute(0, size, leaves, &mut iter, proof.len())?;
    if iter.next().is_some() {
        return Err(ProofError::WrongLength { got: proof.len() });
    }
    match computed == *root {
        true => Ok(()),
        false => Err(ProofError::RootMismatch),
    }
}

//! RFC 9162 Merkle tree hashing and proofs (`stemedb::protocol::merkle`): the roots of the
//! Certificate Transparency reference test vectors (RFC 6962's eight test inputs), and, for
//! every tree of up to 70 leaves, every inclusion proof and every consistency proof verifies,
//! while a proof for another leaf or size, a flipped byte in a proof, a leaf or a root, and a
//! proof one hash short or long are each refused with their named reason.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use stemedb::protocol::merkle::{
    MerkleHash, ProofError, consistency_proof, empty_root, inclusion_proof, leaf_hash, root_of,
    verify_consistency, verify_inclusion,
};

/// The eight leaf inputs of the Certificate Transparency test vectors.
const INPUTS: [&[u8]; 8] = [
    b"",
    b"\x00",
    b"\x10",
    b"\x20\x21",
    b"\x30\x31",
    b"\x40\x41\x42\x43",
    b"\x50\x51\x52\x53\x54\x55\x56\x57",
    b"\x60\x61\x62\x63\x64\x65\x66\x67\x68\x69\x6a\x6b\x6c\x6d\x6e\x6f",
];

/// The roots of the first 1..=8 of those leaves.
const ROOTS: [&str; 8] = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
];

fn leaves(n: usize) -> Vec<MerkleHash> {
    (0..n)
        .map(|i| leaf_hash(format!("entry {i}").as_bytes()))
        .collect()
}

fn flip(hash: &MerkleHash) -> MerkleHash {
    let mut flipped = *hash;
    flipped[7] ^= 0x20;
    flipped
}

#[test]
fn the_roots_of_the_reference_vectors() {
    assert_eq!(
        hex::encode(empty_root()),
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
    let hashes: Vec<MerkleHash> = INPUTS.iter().map(|input| leaf_hash(input)).collect();
    for (n, expected) in ROOTS.iter().enumerate() {
        assert_eq!(
            hex::encode(root_of(&hashes[..=n])),
            *expected,
            "root of {} leaves",
            n + 1
        );
    }
}

#[test]
fn every_inclusion_proof_verifies_and_any_change_is_refused_by_name() {
    for n in 1..=70usize {
        let tree = leaves(n);
        let root = root_of(&tree);
        let size = n as u64;
        for (i, leaf) in tree.iter().enumerate() {
            let index = i as u64;
            let proof = inclusion_proof(&tree, i).unwrap();
            assert_eq!(
                verify_inclusion(leaf, index, size, &proof, &root),
                Ok(()),
                "leaf {i} of {n}"
            );
            // Another leaf, index or root.
            assert_eq!(
                verify_inclusion(&flip(leaf), index, size, &proof, &root),
                Err(ProofError::RootMismatch)
            );
            assert_eq!(
                verify_inclusion(leaf, index, size, &proof, &flip(&root)),
                Err(ProofError::RootMismatch)
            );
            if n > 1 {
                let other = (index + 1) % size;
                assert!(
                    verify_inclusion(leaf, other, size, &proof, &root).is_err(),
                    "leaf {i} as {other} of {n}"
                );
            }
            assert_eq!(
                verify_inclusion(leaf, size, size, &proof, &root),
                Err(ProofError::IndexOutOfRange { index: size, size })
            );
            // A flipped byte in any proof hash; a hash too many or too few.
            for k in 0..proof.len() {
                let mut bad = proof.clone();
                bad[k] = flip(&bad[k]);
                assert_eq!(
                    verify_inclusion(leaf, index, size, &bad, &root),
                    Err(ProofError::RootMismatch)
                );
            }
            let mut long = proof.clone();
            long.push(root);
            assert!(matches!(
                verify_inclusion(leaf, index, size, &long, &root),
                Err(ProofError::WrongLength { .. })
            ));
            if let Some((_, short)) = proof.split_last() {
                assert!(matches!(
                    verify_inclusion(leaf, index, size, short, &root),
                    Err(ProofError::WrongLength { .. })
                ));
            }
        }
        assert_eq!(inclusion_proof(&tree, n), None);
    }
}

#[test]
fn every_consistency_proof_verifies_and_any_change_is_refused_by_name() {
    let all = leaves(48);
    for n in 1..=all.len() {
        let tree = &all[..n];
        let new_root = root_of(tree);
        for m in 0..=n {
            let old_root = root_of(&tree[..m]);
            let proof = consistency_proof(tree, m).unwrap();
            let (old, new) = (m as u64, n as u64);
            assert_eq!(
                verify_consistency(old, new, &old_root, &new_root, &proof),
                Ok(()),
                "{m} to {n}"
            );
            if m == 0 {
                continue;
            }
            // Another old or new root; a flipped byte in the proof; sizes out of order.
            assert!(verify_consistency(old, new, &flip(&old_root), &new_root, &proof).is_err());
            assert!(verify_consistency(old, new, &old_root, &flip(&new_root), &proof).is_err());
            for k in 0..proof.len() {
                let mut bad = proof.clone();
                bad[k] = flip(&bad[k]);
                assert!(
                    verify_consistency(old, new, &old_root, &new_root, &bad).is_err(),
                    "{m} to {n}, hash {k} flipped"
                );
            }
            if m < n {
                assert_eq!(
                    verify_consistency(new, old, &new_root, &old_root, &proof),
                    Err(ProofError::SizesOutOfOrder { old: new, new: old })
                );
                let mut long = proof.clone();
                long.push(new_root);
                assert!(matches!(
                    verify_consistency(old, new, &old_root, &new_root, &long),
                    Err(ProofError::WrongLength { .. })
                        | Err(ProofError::RootMismatch)
                        | Err(ProofError::OldRootMismatch)
                ));
            }
        }
        assert_eq!(consistency_proof(tree, n + 1), None);
    }
}

//! The Merkle tree over the log, as a [`Node`] answers about it: the tree head, inclusion and
//! consistency proofs, and tlog-tiles tiles (see `storage::state::tree`).

use super::{InclusionProof, Node, NodeError, TreeHead};
use crate::protocol::Hash;
use crate::protocol::merkle::MerkleHash;

/// Which leaf an inclusion proof is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeafRef {
    /// The leaf at this index.
    Index(u64),
    /// The first leaf of the record with this content hash.
    Content(Hash),
}

impl Node {
    /// Returns the Merkle tree head at the ingest cursor: its size, root and cursor.
    pub fn tree_head(&self) -> Result<TreeHead, NodeError> {
        self.with_state(|state| Ok(state.tree_head()?))
    }

    /// Returns the root of the tree's first `size` leaves.
    pub fn tree_root(&self, size: u64) -> Result<MerkleHash, NodeError> {
        self.with_state(|state| Ok(state.tree_root(size)?))
    }

    /// Returns the inclusion proof of `leaf` in the tree of `size` leaves (`None`: the tree
    /// now).
    pub fn inclusion_proof(&self, leaf: LeafRef, size: Option<u64>) -> Result<InclusionProof, NodeError> {
        self.with_state(|state| {
            Ok(match leaf {
                LeafRef::Index(index) => state.inclusion_proof(index, size)?,
                LeafRef::Content(hash) => state.inclusion_proof_of(&hash, size)?,
            })
        })
    }

    /// Returns the consistency proof from the tree of `old` leaves to that of `new` (`None`:
    /// the tree now).
    pub fn consistency_proof(&self, old: u64, new: Option<u64>) -> Result<Vec<MerkleHash>, NodeError> {
        self.with_state(|state| Ok(state.consistency_proof(old, new)?))
    }

    /// Returns the hashes of tlog-tiles tile `(level, index)` of the tree of `size` leaves
    /// (`None`: the tree now): at most 256, fewer for a partial tile, none if it has none yet.
    pub fn tile(&self, level: u8, index: u64, size: Option<u64>) -> Result<Vec<MerkleHash>, NodeError> {
        self.with_state(|state| Ok(state.tile(level, index, size)?))
    }

    /// Returns the tree size at log position `end`: the leaves whose records lie below it.
    pub fn tree_size_at(&self, end: u64) -> Result<u64, NodeError> {
        self.with_state(|state| Ok(state.tree_size_at(end)?))
    }
}

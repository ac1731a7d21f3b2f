//! The tree's reads through [`State`](super::super::State): heads, roots, inclusion and
//! consistency proofs, tiles, and filling a tree that lags the log.

use heed::RoTxn;

use super::{Leaf, TreeExtent, append, content_of, extent, index_of, node, offset_of_leaf, range, root, size_at, tile};
use crate::protocol::Hash;
use crate::protocol::merkle::{self, MerkleHash};
use crate::storage::state::{Databases, StateError};

/// The tree at a size: what a checkpoint signs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TreeHead {
    /// Leaves.
    pub size: u64,
    /// MTH of those leaves.
    pub root: MerkleHash,
    /// The log position just past the last of them.
    pub cursor: u64,
}

/// An inclusion proof of one leaf in the tree of one size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InclusionProof {
    /// The leaf's index.
    pub index: u64,
    /// The tree size the proof is for.
    pub size: u64,
    /// The leaf hash.
    pub leaf: MerkleHash,
    /// The log position of the leaf's record.
    pub offset: u64,
    /// The audit path, bottom up.
    pub path: Vec<MerkleHash>,
}

/// Checks that the tree covers the log to the ingest cursor; returns its extent.
fn available(txn: &RoTxn<'_>, dbs: &Databases) -> Result<TreeExtent, StateError> {
    let at = extent(txn, dbs)?;
    let cursor = crate::storage::state::apply::read_cursor(txn, dbs)?;
    if at.cursor != cursor {
        return Err(StateError::TreeUnavailable {
            tree_cursor: at.cursor,
            cursor,
        });
    }
    Ok(at)
}

/// The tree size a request names, checked against the tree; `None` is the whole tree.
fn checked_size(at: TreeExtent, size: Option<u64>) -> Result<u64, StateError> {
    match size {
        None => Ok(at.size),
        Some(size) if size <= at.size => Ok(size),
        Some(size) => Err(StateError::NotInTree(format!(
            "tree size {size} is beyond the tree's {}",
            at.size
        ))),
    }
}

impl crate::storage::state::State {
    /// Returns the tree head at the ingest cursor.
    pub fn tree_head(&self) -> Result<TreeHead, StateError> {
        self.read(|txn, dbs| {
            let at = available(txn, dbs)?;
            Ok(TreeHead {
                size: at.size,
                root: root(txn, dbs, at.size)?,
                cursor: at.cursor,
            })
        })
    }

    /// Returns the root of the tree's first `size` leaves.
    pub fn tree_root(&self, size: u64) -> Result<MerkleHash, StateError> {
        self.read(|txn, dbs| {
            let at = available(txn, dbs)?;
            root(txn, dbs, checked_size(at, Some(size))?)
        })
    }

    /// Returns the inclusion proof of leaf `index` in the tree of `size` leaves (`None`: the
    /// whole tree).
    pub fn inclusion_proof(&self, index: u64, size: Option<u64>) -> Result<InclusionProof, StateError> {
        self.read(|txn, dbs| {
            let at = available(txn, dbs)?;
            proof_in(txn, dbs, index, checked_size(at, size)?)
        })
    }

    /// Returns the inclusion proof of the first leaf of the record whose content hash is
    /// `content`, in the tree of `size` leaves (`None`: the whole tree).
    pub fn inclusion_proof_of(&self, content: &Hash, size: Option<u64>) -> Result<InclusionProof, StateError> {
        self.read(|txn, dbs| {
            let at = available(txn, dbs)?;
            let size = checked_size(at, size)?;
            let index = index_of(txn, dbs, at, content)?
                .ok_or_else(|| StateError::NotInTree(format!("no record with content hash {content}")))?;
            proof_in(txn, dbs, index, size)
        })
    }

    /// Returns the consistency proof from the tree of `old` leaves to that of `new` (`None`:
    /// the whole tree).
    pub fn consistency_proof(&self, old: u64, new: Option<u64>) -> Result<Vec<MerkleHash>, StateError> {
        self.read(|txn, dbs| {
            let at = available(txn, dbs)?;
            let new = checked_size(at, new)?;
            if old > new {
                return Err(StateError::NotInTree(format!("old size {old} is beyond the new size {new}")));
            }
            merkle::consistency_proof_from(old, new, |start, end| range(txn, dbs, start, end))
        })
    }

    /// Returns the hashes of tlog-tiles tile `(tile_level, index)` of the tree of `size`
    /// leaves (`None`: the whole tree).
    pub fn tile(&self, tile_level: u8, index: u64, size: Option<u64>) -> Result<Vec<MerkleHash>, StateError> {
        self.read(|txn, dbs| {
            let at = available(txn, dbs)?;
            tile(txn, dbs, checked_size(at, size)?, tile_level, index)
        })
    }

    /// Returns the tree size at log position `end`: the leaves whose records lie below it.
    pub fn tree_size_at(&self, end: u64) -> Result<u64, StateError> {
        self.read(|txn, dbs| {
            let at = available(txn, dbs)?;
            size_at(txn, dbs, at, end)
        })
    }

    /// Returns the log position of leaf `index`'s record.
    pub fn leaf_offset(&self, index: u64) -> Result<u64, StateError> {
        self.read(|txn, dbs| {
            let at = available(txn, dbs)?;
            if index >= at.size {
                return Err(StateError::NotInTree(format!("leaf {index} is not below the tree size {}", at.size)));
            }
            offset_of_leaf(txn, dbs, index)
        })
    }

    /// Returns the tree's extent, available or not: what [`tree_backfill`](Self::tree_backfill)
    /// starts from.
    pub fn tree_extent(&self) -> Result<TreeExtent, StateError> {
        self.read(extent)
    }

    /// Appends the leaves of `records` (consecutive log records from the tree's cursor, all
    /// below the ingest cursor) to a tree that lags the ingest cursor; returns the new
    /// extent. Each record's leaf is what the ingest would have made of it.
    pub fn tree_backfill(&self, records: &[(u64, u64, &[u8])]) -> Result<TreeExtent, StateError> {
        self.write(|txn, dbs| {
            let at = extent(txn, dbs)?;
            let cursor = crate::storage::state::apply::read_cursor(txn, dbs)?;
            let mut leaves = Vec::with_capacity(records.len());
            let mut end = at.cursor;
            for &(offset, next, payload) in records {
                if offset < end {
                    continue;
                }
                if next > cursor {
                    break;
                }
                let content = content_of(payload);
                let stored = match content {
                    Some(hash) => crate::storage::state::read::offset_of(txn, dbs, &hash)? == Some(offset),
                    None => false,
                };
                leaves.push(Leaf::of(offset, payload, content, stored));
                end = next;
            }
            if leaves.is_empty() {
                return Ok(at);
            }
            append(txn, dbs, at, &leaves, end)
        })
    }
}

fn proof_in(txn: &RoTxn<'_>, dbs: &Databases, index: u64, size: u64) -> Result<InclusionProof, StateError> {
    if index >= size {
        return Err(StateError::NotInTree(format!("leaf {index} is not below the tree size {size}")));
    }
    Ok(InclusionProof {
        index,
        size,
        leaf: node(txn, dbs, 0, index)?,
        offset: offset_of_leaf(txn, dbs, index)?,
        path: merkle::inclusion_proof_from(index, size, |start, end| range(txn, dbs, start, end))?,
    })
}

#[cfg(feature = "test-kit")]
impl crate::storage::state::State {
    /// Empties the tree, as a state written before the tree existed has it. Test-only.
    pub fn forget_tree(&self) -> Result<(), StateError> {
        self.write(|txn, dbs| {
            for db in [dbs.tree, dbs.leaf_index] {
                db.clear(txn).map_err(StateError::lmdb("clear tree"))?;
            }
            dbs.meta
                .delete(txn, crate::storage::state::layout::META_TREE)
                .map_err(StateError::lmdb("clear tree extent"))?;
            Ok(())
        })
    }
}

//! The Merkle tree over the log (RFC 9162 §2.1, SHA-256): every record the ingest planned is a
//! leaf, rejected ones included, in log order; the tree is written in the same transaction as
//! the ingest cursor, so it is a function of the log and every replica has the same root at
//! the same size.
//!
//! ```text
//! database      key                          value
//! tree          level u8, index u64          hash[32]: the complete subtree of leaves
//!                                            [index << level, (index + 1) << level)
//! leaf_offsets  leaf index u64               offset u64: the log position of its record
//! leaf_index    content hash[32]             leaf index u64: the first leaf of that record
//! meta "tree"   -                            cursor u64, size u64
//! ```
//!
//! - **Complete subtrees only.** A leaf is written at level 0; when it completes a subtree of
//!   2^l leaves, that subtree's hash is written at level l. Every stored node is final, so a
//!   node is written once and never changes. MTH of any range is a few stored nodes, so the
//!   root at any size, an inclusion proof and a consistency proof each cost O(log n) reads,
//!   and the C2SP tlog-tiles tiles (levels 0, 8, 16, ...; 256 hashes each) are ranges of one
//!   level ([`State::tile`](super::State::tile)).
//! - **Retention never touches it.** A record whose bytes the log collected keeps its leaf.
//! - **Its cursor.** `meta "tree"` names the log position the tree covers. The ingest appends
//!   leaves only while it equals the ingest cursor. A state that was written before the tree
//!   existed has a tree behind its cursor: the node fills it from the log when it opens
//!   ([`State::tree_backfill`](super::State::tree_backfill)); if the log no longer holds those
//!   records, the tree stays behind, and proofs are refused with
//!   [`StateError::TreeUnavailable`] rather than computed over a log that is not the node's.

use std::ops::Bound;

use heed::{PutFlags, RoTxn, RwTxn};

use super::layout::{decode_u64, META_TREE};
use super::{Databases, StateError};
use crate::protocol::merkle::{self, MerkleHash, MERKLE_HASH_LEN};
use crate::protocol::Hash;

/// Height of a C2SP tlog-tiles tile: a tile holds up to 2^8 = 256 hashes of one level.
pub const TILE_HEIGHT: u8 = 8;
/// Hashes in a full tile.
pub const TILE_WIDTH: u64 = 1 << TILE_HEIGHT;

/// One leaf to append: its Merkle leaf hash, the content hash of its record (if it decoded),
/// and its log position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Leaf {
    /// SHA-256(0x00 || record bytes).
    pub hash: MerkleHash,
    /// The record's content hash, if it decoded.
    pub content: Option<Hash>,
    /// The record's log position.
    pub offset: u64,
}

impl Leaf {
    /// The leaf of the record at `offset` with bytes `payload` and content hash `content`.
    pub fn of(offset: u64, payload: &[u8], content: Option<Hash>) -> Self {
        Self {
            hash: merkle::leaf_hash(payload),
            content,
            offset,
        }
    }
}

/// The content hash a leaf is found by: its record's, if the record decodes.
pub(super) fn content_of(payload: &[u8]) -> Option<Hash> {
    crate::protocol::LogRecord::decode(payload)
        .ok()
        .map(|record| record.content_hash())
}

/// The tree's extent: the log position it covers and its size in leaves.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TreeExtent {
    /// Every record below this position is a leaf.
    pub cursor: u64,
    /// Leaves.
    pub size: u64,
}

fn node_key(level: u8, index: u64) -> [u8; 9] {
    let mut key = [0u8; 9];
    key[0] = level;
    key[1..].copy_from_slice(&index.to_be_bytes());
    key
}

fn decode_hash(what: &'static str, bytes: &[u8]) -> Result<MerkleHash, StateError> {
    bytes
        .try_into()
        .map_err(|_| StateError::corrupt(what, format!("{} bytes, not {MERKLE_HASH_LEN}", bytes.len())))
}

/// Reads the tree's extent (zero for a state that never had one).
pub(super) fn extent(txn: &RoTxn<'_>, dbs: &Databases) -> Result<TreeExtent, StateError> {
    match dbs.meta.get(txn, META_TREE).map_err(StateError::lmdb("read tree extent"))? {
        None => Ok(TreeExtent::default()),
        Some(bytes) if bytes.len() == 16 => Ok(TreeExtent {
            cursor: decode_u64("tree cursor", &bytes[..8])?,
            size: decode_u64("tree size", &bytes[8..])?,
        }),
        Some(bytes) => Err(StateError::corrupt("tree extent", format!("{} bytes, not 16", bytes.len()))),
    }
}

/// Appends `leaves` (consecutive records, the first at the tree's cursor) and moves the
/// tree's cursor to `end`, in the caller's transaction; returns the new extent.
pub(super) fn append(
    txn: &mut RwTxn<'_>,
    dbs: &Databases,
    mut at: TreeExtent,
    leaves: &[Leaf],
    end: u64,
) -> Result<TreeExtent, StateError> {
    for leaf in leaves {
        let index = at.size;
        dbs.tree
            .put(txn, &node_key(0, index), &leaf.hash)
            .map_err(StateError::lmdb("store tree leaf"))?;
        dbs.leaf_offsets
            .put_with_flags(txn, PutFlags::APPEND, &index.to_be_bytes(), &leaf.offset.to_be_bytes())
            .map_err(StateError::lmdb("store leaf offset"))?;
        if let Some(content) = leaf.content {
            // The first leaf of a record is its leaf: a resubmission is a later leaf of the
            // same content, which an inclusion proof by hash need not name.
            dbs.leaf_index
                .put_with_flags(txn, PutFlags::NO_OVERWRITE, content.as_bytes(), &index.to_be_bytes())
                .or_else(|error| match error {
                    heed::Error::Mdb(heed::MdbError::KeyExist) => Ok(()),
                    other => Err(other),
                })
                .map_err(StateError::lmdb("store leaf index"))?;
        }
        // Each subtree this leaf completes: its hash is its left sibling's with the new one.
        let (mut level, mut position, mut hash) = (0u8, index, leaf.hash);
        while position & 1 == 1 {
            let left = node(txn, dbs, level, position - 1)?;
            hash = merkle::node_hash(&left, &hash);
            level += 1;
            position >>= 1;
            dbs.tree
                .put(txn, &node_key(level, position), &hash)
                .map_err(StateError::lmdb("store tree node"))?;
        }
        at.size += 1;
    }
    at.cursor = end;
    let mut value = [0u8; 16];
    value[..8].copy_from_slice(&at.cursor.to_be_bytes());
    value[8..].copy_from_slice(&at.size.to_be_bytes());
    dbs.meta
        .put(txn, META_TREE, &value)
        .map_err(StateError::lmdb("store tree extent"))?;
    Ok(at)
}

/// Returns the stored hash of the complete subtree `(level, index)`.
pub(super) fn node(txn: &RoTxn<'_>, dbs: &Databases, level: u8, index: u64) -> Result<MerkleHash, StateError> {
    match dbs
        .tree
        .get(txn, &node_key(level, index))
        .map_err(StateError::lmdb("read tree node"))?
    {
        Some(bytes) => decode_hash("tree node", bytes),
        None => Err(StateError::corrupt(
            "tree node",
            format!("no node at level {level}, index {index}"),
        )),
    }
}

/// Returns MTH of the leaves `[start, end)` (`start < end <=` the tree's size).
pub(super) fn range(txn: &RoTxn<'_>, dbs: &Databases, start: u64, end: u64) -> Result<MerkleHash, StateError> {
    merkle::range_hash(start, end, &mut |level, index| node(txn, dbs, level, index))
}

/// Returns the root of the tree's first `size` leaves.
pub(super) fn root(txn: &RoTxn<'_>, dbs: &Databases, size: u64) -> Result<MerkleHash, StateError> {
    match size {
        0 => Ok(merkle::empty_root()),
        _ => range(txn, dbs, 0, size),
    }
}

/// Returns the first leaf whose record has content hash `content`, if any.
pub(super) fn index_of(txn: &RoTxn<'_>, dbs: &Databases, content: &Hash) -> Result<Option<u64>, StateError> {
    dbs.leaf_index
        .get(txn, content.as_bytes())
        .map_err(StateError::lmdb("read leaf index"))?
        .map(|bytes| decode_u64("leaf index", bytes))
        .transpose()
}

/// Returns the log position of leaf `index`'s record.
pub(super) fn offset_of_leaf(txn: &RoTxn<'_>, dbs: &Databases, index: u64) -> Result<u64, StateError> {
    match dbs
        .leaf_offsets
        .get(txn, &index.to_be_bytes())
        .map_err(StateError::lmdb("read leaf offset"))?
    {
        Some(bytes) => decode_u64("leaf offset", bytes),
        None => Err(StateError::corrupt("leaf offset", format!("no offset for leaf {index}"))),
    }
}

/// Returns the number of leaves whose records lie below log position `end`: the tree size a
/// point in the log has. Positions grow with leaf indexes, so this is a binary search.
pub(super) fn size_at(txn: &RoTxn<'_>, dbs: &Databases, at: TreeExtent, end: u64) -> Result<u64, StateError> {
    if end >= at.cursor {
        return Ok(at.size);
    }
    // The first leaf at or past `end`.
    let (mut low, mut high) = (0u64, at.size);
    while low < high {
        let mid = low + (high - low) / 2;
        if offset_of_leaf(txn, dbs, mid)? < end {
            low = mid + 1;
        } else {
            high = mid;
        }
    }
    Ok(low)
}

/// Returns the hashes of tile `(tile_level, index)` of a tree of `size` leaves: the nodes of
/// level `8 × tile_level` from `256 × index`, as many as are complete (at most 256). Empty if
/// the tile holds none yet.
pub(super) fn tile(
    txn: &RoTxn<'_>,
    dbs: &Databases,
    size: u64,
    tile_level: u8,
    index: u64,
) -> Result<Vec<MerkleHash>, StateError> {
    let level = u32::from(tile_level) * u32::from(TILE_HEIGHT);
    if level >= 64 {
        return Ok(Vec::new());
    }
    let complete = size >> level;
    let first = index.saturating_mul(TILE_WIDTH);
    let end = complete.min(first.saturating_add(TILE_WIDTH));
    if first >= end {
        return Ok(Vec::new());
    }
    let level = level as u8;
    let mut hashes = Vec::with_capacity((end - first) as usize);
    let start = node_key(level, first);
    let stop = node_key(level, end);
    let entries = dbs
        .tree
        .range(txn, &(Bound::Included(&start[..]), Bound::Excluded(&stop[..])))
        .map_err(StateError::lmdb("read tile"))?;
    for entry in entries {
        let (_, value) = entry.map_err(StateError::lmdb("read tile"))?;
        hashes.push(decode_hash("tree node", value)?);
    }
    if hashes.len() as u64 != end - first {
        return Err(StateError::corrupt(
            "tile",
            format!("{} of {} nodes at level {level}", hashes.len(), end - first),
        ));
    }
    Ok(hashes)
}

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
    let cursor = super::apply::read_cursor(txn, dbs)?;
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

impl super::State {
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
            let index = index_of(txn, dbs, content)?
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
            let cursor = super::apply::read_cursor(txn, dbs)?;
            let mut leaves = Vec::with_capacity(records.len());
            let mut end = at.cursor;
            for &(offset, next, payload) in records {
                if offset < end {
                    continue;
                }
                if next > cursor {
                    break;
                }
                leaves.push(Leaf::of(offset, payload, content_of(payload)));
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
impl super::State {
    /// Empties the tree, as a state written before the tree existed has it. Test-only.
    pub fn forget_tree(&self) -> Result<(), StateError> {
        self.write(|txn, dbs| {
            for db in [dbs.tree, dbs.leaf_offsets, dbs.leaf_index] {
                db.clear(txn).map_err(StateError::lmdb("clear tree"))?;
            }
            dbs.meta
                .delete(txn, META_TREE)
                .map_err(StateError::lmdb("clear tree extent"))?;
            Ok(())
        })
    }
}

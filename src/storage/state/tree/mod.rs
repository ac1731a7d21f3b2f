//! The Merkle tree over the log (RFC 9162 §2.1, SHA-256): every record the ingest planned is a
//! leaf, rejected ones included, in log order; the tree is written in the same transaction as
//! the ingest cursor, so it is a function of the log and every replica has the same root at
//! the same size.
//!
//! ```text
//! database      key                          value
//! tree          level u8, block u64          the complete nodes i of the level with
//!                                            i >> 8 = block, in order, each its hash[32]: the
//!                                            subtree of leaves [i << level, (i + 1) << level);
//!                                            at level 0 each hash is followed by offset u64,
//!                                            the log position of the leaf's record
//! leaf_index    content hash[32]             leaf index u64: the first leaf of that record
//! meta "tree"   -                            cursor u64, size u64
//! ```
//!
//! - **Complete subtrees only, 256 to a block.** A leaf is added at level 0; when it
//!   completes a subtree of 2^l leaves, that subtree's hash is added at level l. Every stored
//!   node is final. The nodes of a level are kept 256 to an LMDB value, so a batch rewrites one
//!   or two blocks per level instead of writing a value per node, and a node is one read. MTH of any range is a few stored nodes, so the
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

mod read;

use std::collections::BTreeMap;

use heed::{PutFlags, RoTxn, RwTxn};

use super::layout::{decode_u64, META_TREE};
use super::{Databases, StateError};
use crate::protocol::merkle::{self, MerkleHash, MERKLE_HASH_LEN};
use crate::protocol::Hash;

pub use read::{InclusionProof, TreeHead};

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
    /// Whether `leaf_index` must find it by content hash: false for an assertion the ingest
    /// stored, which `assertion_hashes` finds already.
    pub indexed: bool,
}

impl Leaf {
    /// The leaf of the record at `offset` with bytes `payload` and content hash `content`,
    /// found by `leaf_index` unless `stored` (an assertion stored from this very record).
    pub fn of(offset: u64, payload: &[u8], content: Option<Hash>, stored: bool) -> Self {
        Self {
            hash: merkle::leaf_hash(payload),
            content,
            offset,
            indexed: !stored,
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

/// Nodes per block.
const BLOCK: u64 = 256;

fn block_key(level: u8, block: u64) -> [u8; 9] {
    let mut key = [0u8; 9];
    key[0] = level;
    key[1..].copy_from_slice(&block.to_be_bytes());
    key
}

/// Bytes of one node's entry in a block of `level`.
fn entry_len(level: u8) -> usize {
    match level {
        0 => MERKLE_HASH_LEN + 8,
        _ => MERKLE_HASH_LEN,
    }
}

/// The entry of node `index` of `level` in its block, if the block holds it.
fn entry(level: u8, index: u64, block: &[u8]) -> Option<&[u8]> {
    let len = entry_len(level);
    let at = (index % BLOCK) as usize * len;
    block.get(at..at + len)
}

fn read_entry<'t>(txn: &'t RoTxn<'_>, dbs: &Databases, level: u8, index: u64) -> Result<&'t [u8], StateError> {
    let block = dbs
        .tree
        .get(txn, &block_key(level, index / BLOCK))
        .map_err(StateError::lmdb("read tree block"))?
        .unwrap_or_default();
    entry(level, index, block).ok_or_else(|| {
        StateError::corrupt("tree node", format!("no node at level {level}, index {index}"))
    })
}

fn decode_hash(what: &'static str, bytes: &[u8]) -> Result<MerkleHash, StateError> {
    bytes
        .try_into()
        .map_err(|_| StateError::corrupt(what, format!("{} bytes, not {MERKLE_HASH_LEN}", bytes.len())))
}

/// Decodes a node's entry: its hash (a leaf's entry holds its record's offset after it).
fn decode_node(bytes: &[u8]) -> Result<MerkleHash, StateError> {
    decode_hash("tree node", bytes.get(..MERKLE_HASH_LEN).unwrap_or(bytes))
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
///
/// The right edge of the tree (each level's complete node still waiting for its right
/// sibling) and the last block of each level are read once per batch; the new nodes are added
/// to the blocks in memory, and each block the batch changed is written once.
pub(super) fn append(
    txn: &mut RwTxn<'_>,
    dbs: &Databases,
    mut at: TreeExtent,
    leaves: &[Leaf],
    end: u64,
) -> Result<TreeExtent, StateError> {
    let mut frontier: [Option<MerkleHash>; 64] = [None; 64];
    for (level, slot) in frontier.iter_mut().enumerate() {
        if at.size >> level & 1 == 1 {
            *slot = Some(node(txn, dbs, level as u8, (at.size >> level) - 1)?);
        }
    }
    // The blocks this batch adds to, by (level, block).
    let mut blocks: BTreeMap<(u8, u64), Vec<u8>> = BTreeMap::new();
    let mut add = |txn: &RwTxn<'_>, level: u8, index: u64, bytes: &[u8]| -> Result<(), StateError> {
        let block = match blocks.entry((level, index / BLOCK)) {
            std::collections::btree_map::Entry::Occupied(entry) => entry.into_mut(),
            std::collections::btree_map::Entry::Vacant(entry) => {
                let stored = dbs
                    .tree
                    .get(txn, &block_key(level, index / BLOCK))
                    .map_err(StateError::lmdb("read tree block"))?
                    .unwrap_or_default();
                entry.insert(stored.to_vec())
            }
        };
        if block.len() != (index % BLOCK) as usize * entry_len(level) {
            return Err(StateError::corrupt(
                "tree block",
                format!("level {level} block {} holds {} bytes before node {index}", index / BLOCK, block.len()),
            ));
        }
        block.extend_from_slice(bytes);
        Ok(())
    };
    for leaf in leaves {
        let index = at.size;
        let mut value = [0u8; MERKLE_HASH_LEN + 8];
        value[..MERKLE_HASH_LEN].copy_from_slice(&leaf.hash);
        value[MERKLE_HASH_LEN..].copy_from_slice(&leaf.offset.to_be_bytes());
        add(txn, 0, index, &value)?;
        if let Some(content) = leaf.content.filter(|_| leaf.indexed) {
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
            let left = frontier[usize::from(level)]
                .take()
                .ok_or_else(|| StateError::corrupt("tree", format!("no left sibling at level {level}")))?;
            hash = merkle::node_hash(&left, &hash);
            level += 1;
            position >>= 1;
            add(txn, level, position, &hash)?;
        }
        frontier[usize::from(level)] = Some(hash);
        at.size += 1;
    }
    for ((level, block), bytes) in &blocks {
        dbs.tree
            .put(txn, &block_key(*level, *block), bytes)
            .map_err(StateError::lmdb("store tree block"))?;
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
    decode_node(read_entry(txn, dbs, level, index)?)
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

/// Returns the first leaf whose record has content hash `content`, if any: from `leaf_index`,
/// or, for the stored copy of an assertion, from its log position.
pub(super) fn index_of(
    txn: &RoTxn<'_>,
    dbs: &Databases,
    at: TreeExtent,
    content: &Hash,
) -> Result<Option<u64>, StateError> {
    let indexed = dbs
        .leaf_index
        .get(txn, content.as_bytes())
        .map_err(StateError::lmdb("read leaf index"))?
        .map(|bytes| decode_u64("leaf index", bytes))
        .transpose()?;
    let stored = match super::read::offset_of(txn, dbs, content)? {
        Some(offset) if offset < at.cursor => {
            let index = size_at(txn, dbs, at, offset)?;
            (index < at.size && offset_of_leaf(txn, dbs, index)? == offset).then_some(index)
        }
        _ => None,
    };
    Ok(match (indexed, stored) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    })
}

/// Returns the log position of leaf `index`'s record.
pub(super) fn offset_of_leaf(txn: &RoTxn<'_>, dbs: &Databases, index: u64) -> Result<u64, StateError> {
    decode_u64("leaf offset", read_entry(txn, dbs, 0, index)?.get(MERKLE_HASH_LEN..).unwrap_or_default())
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
    // A tile is one block of its level.
    let level = level as u8;
    let block = dbs
        .tree
        .get(txn, &block_key(level, index))
        .map_err(StateError::lmdb("read tile"))?
        .unwrap_or_default();
    (first..end)
        .map(|i| {
            entry(level, i, block)
                .ok_or_else(|| StateError::corrupt("tile", format!("no node at level {level}, index {i}")))
                .and_then(decode_node)
        })
        .collect()
}

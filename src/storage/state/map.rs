//! The authenticated map over the evidence (issue 25; hashing in `protocol::smt`): for each
//! (subject, predicate) pair, the chain over the records that changed what it resolves to
//! (its stored assertions, and each vote on them that became live), and for each agent, the
//! chain over its trust changes that were applied; in log order, as log-tree leaves.
//!
//! ```text
//! database     key                             value
//! map_leaves   map key[32]                     chain[32]: the key's value
//! map_nodes    depth u8, prefix[32] (masked)   hash[32] of a subtree holding two keys or more
//! evidence     map key[32], leaf index u64     offset u64: the records of each chain
//! meta "map"   -                               cursor u64: the log position the map covers
//! ```
//!
//! - **Why chains of what changed.** A vote the ingest ignored (older than, or the same as, the
//!   voter's live vote) is never live at any point of the log, and a trust change likewise is
//!   never applied: leaving them out changes no resolution, past or present. So a chain holds
//!   exactly what a verifier replays, and as of any point X, the records below X of a pair's
//!   chain and its agents' chains are all the evidence there was then.
//! - **Why agents apart from pairs.** A trust change moves every pair its agent voted on.
//!   Folding trust into the pairs' values would rewrite all of them on each change (a popular
//!   voter: the whole map). Kept under the agent's own key, a trust change updates one leaf,
//!   and a resolution's proof carries one map path per voter it counted.
//! - **Updates per batch.** The ingest commit extends the chains the batch touched and
//!   recomputes the tree along their paths once, sharing the upper levels; a subtree of two
//!   keys or more is stored at (depth, prefix), one of one key is that key's leaf, found in
//!   `map_leaves`. Keys are never removed, so a stored subtree never falls back to one key.

use std::collections::BTreeMap;
use std::ops::Bound;

use heed::{RoTxn, RwTxn};

use super::layout::{META_MAP, decode_u64};
use super::tree::{self, Leaf};
use super::{Databases, StateError};
use crate::protocol::merkle::{MerkleHash, node_hash};
use crate::protocol::smt::{MAP_EMPTY, MapProof, MapTerminal, bit, evidence_step, map_leaf_hash};

fn masked(key: &MerkleHash, depth: usize) -> MerkleHash {
    let mut out = [0u8; 32];
    let full = depth / 8;
    out[..full].copy_from_slice(&key[..full]);
    if !depth.is_multiple_of(8) {
        out[full] = key[full] & (0xffu8 << (8 - depth % 8));
    }
    out
}

fn filled(key: &MerkleHash, depth: usize) -> MerkleHash {
    let mut out = masked(key, depth);
    let full = depth / 8;
    if !depth.is_multiple_of(8) {
        out[full] |= 0xffu8 >> (depth % 8);
        out[full + 1..].fill(0xff);
    } else {
        out[full..].fill(0xff);
    }
    out
}

/// `prefix` with bit `depth` set to `one`.
fn with_bit(prefix: &MerkleHash, depth: usize, one: bool) -> MerkleHash {
    let mut out = *prefix;
    match one {
        true => out[depth / 8] |= 0x80 >> (depth % 8),
        false => out[depth / 8] &= !(0x80 >> (depth % 8)),
    }
    out
}

fn node_key(depth: usize, prefix: &MerkleHash) -> [u8; 33] {
    let mut key = [0u8; 33];
    key[0] = depth as u8;
    key[1..].copy_from_slice(&masked(prefix, depth));
    key
}

fn decode_hash(what: &'static str, bytes: &[u8]) -> Result<MerkleHash, StateError> {
    bytes
        .try_into()
        .map_err(|_| StateError::corrupt(what, format!("{} bytes, not 32", bytes.len())))
}

/// The keys under `prefix` at `depth`: the first (with its value), and whether there is a second.
fn first_two(
    txn: &RoTxn<'_>,
    dbs: &Databases,
    depth: usize,
    prefix: &MerkleHash,
) -> Result<(Option<(MerkleHash, MerkleHash)>, bool), StateError> {
    let (low, high) = (masked(prefix, depth), filled(prefix, depth));
    let range = (Bound::Included(&low[..]), Bound::Included(&high[..]));
    let mut entries = dbs
        .map_leaves
        .range(txn, &range)
        .map_err(StateError::lmdb("read map leaves"))?;
    let first = match entries.next() {
        None => return Ok((None, false)),
        Some(entry) => {
            let (key, value) = entry.map_err(StateError::lmdb("read map leaves"))?;
            (decode_hash("map key", key)?, decode_hash("map value", value)?)
        }
    };
    Ok((Some(first), entries.next().is_some()))
}

/// What the subtree at (`depth`, `prefix`) is: a stored interior node, one leaf, or empty.
enum Subtree {
    Interior(MerkleHash),
    Leaf(MerkleHash, MerkleHash),
    Empty,
}

fn subtree(txn: &RoTxn<'_>, dbs: &Databases, depth: usize, prefix: &MerkleHash) -> Result<Subtree, StateError> {
    if depth < 256
        && let Some(bytes) = dbs
            .map_nodes
            .get(txn, &node_key(depth, prefix))
            .map_err(StateError::lmdb("read map node"))?
    {
        return Ok(Subtree::Interior(decode_hash("map node", bytes)?));
    }
    Ok(match first_two(txn, dbs, depth, prefix)?.0 {
        Some((key, value)) => Subtree::Leaf(key, value),
        None => Subtree::Empty,
    })
}

fn subtree_hash(txn: &RoTxn<'_>, dbs: &Databases, depth: usize, prefix: &MerkleHash) -> Result<MerkleHash, StateError> {
    Ok(match subtree(txn, dbs, depth, prefix)? {
        Subtree::Interior(hash) => hash,
        Subtree::Leaf(key, value) => map_leaf_hash(&key, &value),
        Subtree::Empty => MAP_EMPTY,
    })
}

/// Recomputes the subtree at (`depth`, `prefix`), under which `keys` (sorted, at least one)
/// changed; stores it if it holds two keys or more; returns its hash.
///
/// Two changed keys or more make it an interior node at once; for one, a stored node says it
/// holds others, and otherwise the leaves under it are counted (a new key may land next to a
/// lone one).
fn update(
    txn: &mut RwTxn<'_>,
    dbs: &Databases,
    depth: usize,
    prefix: &MerkleHash,
    keys: &[MerkleHash],
) -> Result<MerkleHash, StateError> {
    if keys.len() == 1 {
        let stored = depth < 256
            && dbs
                .map_nodes
                .get(txn, &node_key(depth, prefix))
                .map_err(StateError::lmdb("read map node"))?
                .is_some();
        if !stored {
            let (first, second) = first_two(txn, dbs, depth, prefix)?;
            if !second {
                let (key, value) = first.ok_or_else(|| StateError::corrupt("map", "a changed key is not stored"))?;
                return Ok(map_leaf_hash(&key, &value));
            }
        }
    }
    let split = keys.partition_point(|key| !bit(key, depth));
    let (left, right) = keys.split_at(split);
    let child = |txn: &mut RwTxn<'_>, one: bool, keys: &[MerkleHash]| {
        let prefix = with_bit(prefix, depth, one);
        match keys.is_empty() {
            true => subtree_hash(txn, dbs, depth + 1, &prefix),
            false => update(txn, dbs, depth + 1, &prefix, keys),
        }
    };
    let left = child(txn, false, left)?;
    let right = child(txn, true, right)?;
    let hash = node_hash(&left, &right);
    dbs.map_nodes
        .put(txn, &node_key(depth, prefix), &hash)
        .map_err(StateError::lmdb("store map node"))?;
    Ok(hash)
}

/// Returns the map's root.
pub(super) fn root(txn: &RoTxn<'_>, dbs: &Databases) -> Result<MerkleHash, StateError> {
    subtree_hash(txn, dbs, 0, &MAP_EMPTY)
}

/// Returns the value of `key`, if it has one.
pub(super) fn value(txn: &RoTxn<'_>, dbs: &Databases, key: &MerkleHash) -> Result<Option<MerkleHash>, StateError> {
    dbs.map_leaves
        .get(txn, key)
        .map_err(StateError::lmdb("read map leaf"))?
        .map(|bytes| decode_hash("map value", bytes))
        .transpose()
}

/// Returns the proof of `key`'s value or absence.
pub(super) fn proof(txn: &RoTxn<'_>, dbs: &Databases, key: &MerkleHash) -> Result<MapProof, StateError> {
    let mut siblings = Vec::new();
    for depth in 0..256 {
        match subtree(txn, dbs, depth, key)? {
            Subtree::Interior(_) => {
                let sibling = with_bit(&masked(key, depth + 1), depth, !bit(key, depth));
                siblings.push(subtree_hash(txn, dbs, depth + 1, &sibling)?);
            }
            Subtree::Leaf(key, value) => {
                return Ok(MapProof {
                    siblings,
                    terminal: MapTerminal::Leaf { key, value },
                });
            }
            Subtree::Empty => {
                return Ok(MapProof {
                    siblings,
                    terminal: MapTerminal::Empty,
                });
            }
        }
    }
    Err(StateError::corrupt("map", "a path of 256 interior nodes"))
}

/// Returns the (leaf index, log position) of each record of `key`'s chain, in order.
pub(super) fn chain(txn: &RoTxn<'_>, dbs: &Databases, key: &MerkleHash) -> Result<Vec<(u64, u64)>, StateError> {
    let mut out = Vec::new();
    for entry in dbs
        .evidence
        .prefix_iter(txn, key)
        .map_err(StateError::lmdb("read evidence"))?
    {
        let (k, v) = entry.map_err(StateError::lmdb("read evidence"))?;
        let index = decode_u64("evidence leaf", k.get(32..).unwrap_or_default())?;
        out.push((index, decode_u64("evidence offset", v)?));
    }
    Ok(out)
}

/// Reads the log position the map covers (0 for a state that never had one).
pub(super) fn cursor(txn: &RoTxn<'_>, dbs: &Databases) -> Result<u64, StateError> {
    match dbs.meta.get(txn, META_MAP).map_err(StateError::lmdb("read map cursor"))? {
        None => Ok(0),
        Some(bytes) => decode_u64("map cursor", bytes),
    }
}

/// One record that changed what a map key resolves to.
#[derive(Debug, Clone, Copy)]
pub(super) struct Evidence {
    pub(super) key: MerkleHash,
    pub(super) index: u64,
    pub(super) leaf: MerkleHash,
    pub(super) offset: u64,
}

/// Extends the chains of `evidence` (any order), recomputes the map along their keys' paths,
/// and moves the map's cursor to `end`.
pub(super) fn extend(txn: &mut RwTxn<'_>, dbs: &Databases, evidence: &mut [Evidence], end: u64) -> Result<(), StateError> {
    evidence.sort_unstable_by_key(|e| (e.key, e.index));
    let mut touched: BTreeMap<MerkleHash, MerkleHash> = BTreeMap::new();
    for e in evidence.iter() {
        let chain = match touched.get(&e.key) {
            Some(chain) => *chain,
            None => value(txn, dbs, &e.key)?.unwrap_or(MAP_EMPTY),
        };
        touched.insert(e.key, evidence_step(&chain, e.index, &e.leaf));
        let mut key = [0u8; 40];
        key[..32].copy_from_slice(&e.key);
        key[32..].copy_from_slice(&e.index.to_be_bytes());
        dbs.evidence
            .put(txn, &key, &e.offset.to_be_bytes())
            .map_err(StateError::lmdb("store evidence"))?;
    }
    for (key, chain) in &touched {
        dbs.map_leaves
            .put(txn, key, chain)
            .map_err(StateError::lmdb("store map leaf"))?;
    }
    let keys: Vec<MerkleHash> = touched.into_keys().collect();
    if !keys.is_empty() {
        update(txn, dbs, 0, &MAP_EMPTY, &keys)?;
    }
    dbs.meta
        .put(txn, META_MAP, &end.to_be_bytes())
        .map_err(StateError::lmdb("store map cursor"))?;
    Ok(())
}

/// The leaf of the record at log position `offset`, among the batch's `leaves` (whose first is
/// leaf `first`).
pub(super) fn leaf_at(leaves: &[Leaf], first: u64, offset: u64) -> Result<(u64, MerkleHash), StateError> {
    let at = leaves
        .binary_search_by_key(&offset, |leaf| leaf.offset)
        .map_err(|_| StateError::corrupt("map", format!("no leaf for the record at {offset}")))?;
    Ok((first + at as u64, leaves[at].hash))
}

/// The leaf of the record at log position `offset`, from the stored tree.
pub(super) fn stored_leaf_at(
    txn: &RoTxn<'_>,
    dbs: &Databases,
    at: tree::TreeExtent,
    offset: u64,
) -> Result<(u64, MerkleHash), StateError> {
    let index = tree::size_at(txn, dbs, at, offset)?;
    if index >= at.size || tree::offset_of_leaf(txn, dbs, index)? != offset {
        return Err(StateError::corrupt("map", format!("no leaf for the record at {offset}")));
    }
    Ok((index, tree::node(txn, dbs, 0, index)?))
}

impl super::State {
    /// The tree head and the map root at the ingest cursor, read together: what a checkpoint
    /// signs. The map root is `None` if the map does not cover the log.
    pub fn checkpoint_head(&self) -> Result<(tree::TreeHead, Option<MerkleHash>), StateError> {
        self.read(|txn, dbs| {
            let at = tree::extent(txn, dbs)?;
            let cursor = super::apply::read_cursor(txn, dbs)?;
            if at.cursor != cursor {
                return Err(StateError::TreeUnavailable {
                    tree_cursor: at.cursor,
                    cursor,
                });
            }
            let head = tree::TreeHead {
                size: at.size,
                root: tree::root(txn, dbs, at.size)?,
                cursor,
            };
            let map_root = match self::cursor(txn, dbs)? == cursor {
                true => Some(root(txn, dbs)?),
                false => None,
            };
            Ok((head, map_root))
        })
    }

    /// Rebuilds the map from the state, if the tree covers the log and the map does not (a
    /// state written before the map existed); returns whether it did.
    pub fn map_rebuild(&self) -> Result<bool, StateError> {
        self.write(|txn, dbs| {
            let at = tree::extent(txn, dbs)?;
            let cursor = super::apply::read_cursor(txn, dbs)?;
            if at.cursor != cursor || self::cursor(txn, dbs)? == cursor {
                return Ok(false);
            }
            for db in [dbs.map_leaves, dbs.map_nodes, dbs.evidence] {
                db.clear(txn).map_err(StateError::lmdb("clear map"))?;
            }
            let members = super::receipt::chain_members(txn, dbs)?;
            let mut evidence = Vec::with_capacity(members.len());
            for (offset, key) in members {
                let (index, leaf) = stored_leaf_at(txn, dbs, at, offset)?;
                evidence.push(Evidence { key, index, leaf, offset });
            }
            extend(txn, dbs, &mut evidence, cursor)?;
            Ok(true)
        })
    }
}

#[cfg(feature = "test-kit")]
impl super::State {
    /// Empties the map, as a state written before the map existed has it. Test-only.
    pub fn forget_map(&self) -> Result<(), StateError> {
        self.write(|txn, dbs| {
            for db in [dbs.map_leaves, dbs.map_nodes, dbs.evidence] {
                db.clear(txn).map_err(StateError::lmdb("clear map"))?;
            }
            dbs.meta.delete(txn, META_MAP).map_err(StateError::lmdb("clear map cursor"))?;
            Ok(())
        })
    }
}

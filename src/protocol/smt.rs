//! The authenticated map a checkpoint commits to (issue 25): a sparse Merkle tree over 256-bit
//! keys, with SHA-256, in which a subtree holding one key is that key's leaf (so a path is as
//! long as the keys' shared prefixes need, about log2 of their number), and an empty subtree
//! is 32 zero bytes.
//!
//! ```text
//! leaf:      SHA-256(0x00 || key || value)
//! interior:  SHA-256(0x01 || left || right)        (a subtree with two or more keys)
//! empty:     0^32
//! key bits:  most significant bit of byte 0 first; bit d chooses the child at depth d
//! ```
//!
//! What StemeDB keys and values are — a pair's or an agent's evidence chain — is in
//! [`evidence_step`] and the key functions: a key's value is the chain over the leaves of the
//! records that changed what it resolves to, in log order, so the value commits to the whole
//! list and no record can be left out or added.
//!
//! A [`MapProof`] shows a key's value, or its absence, against a root: the siblings from the
//! root down, then what the path ends at (the key's leaf, another key's leaf, or an empty
//! subtree). [`MapProof::verify`] names each failure ([`MapProofError`]).

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::merkle::{MerkleHash, node_hash};

/// The hash of an empty subtree.
pub const MAP_EMPTY: MerkleHash = [0u8; 32];
/// Longest path: one bit per level.
pub const MAP_DEPTH_MAX: usize = 256;

/// Returns bit `depth` of `key` (most significant first).
pub fn bit(key: &MerkleHash, depth: usize) -> bool {
    key[depth / 8] & (0x80 >> (depth % 8)) != 0
}

/// Returns the hash of the leaf of `key` with `value`.
pub fn map_leaf_hash(key: &MerkleHash, value: &MerkleHash) -> MerkleHash {
    Sha256::new()
        .chain_update([0u8])
        .chain_update(key)
        .chain_update(value)
        .finalize()
        .into()
}

/// Returns the number of leading bits `a` and `b` share.
pub fn shared_bits(a: &MerkleHash, b: &MerkleHash) -> usize {
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        let diff = x ^ y;
        if diff != 0 {
            return i * 8 + diff.leading_zeros() as usize;
        }
    }
    256
}

/// The map key of a (subject, predicate) pair, from the state's pair id (the blake3 digests of
/// the two names).
pub fn pair_key(pair_id: &[u8]) -> MerkleHash {
    Sha256::new()
        .chain_update([0x10])
        .chain_update(pair_id)
        .finalize()
        .into()
}

/// The map key of an agent (its trust).
pub fn agent_key(agent: &[u8; 32]) -> MerkleHash {
    Sha256::new()
        .chain_update([0x11])
        .chain_update(agent)
        .finalize()
        .into()
}

/// One step of an evidence chain: the chain after `chain`, extended by the record at leaf
/// `index` of the log tree, whose leaf hash is `leaf`. A chain starts at [`MAP_EMPTY`].
pub fn evidence_step(chain: &MerkleHash, index: u64, leaf: &MerkleHash) -> MerkleHash {
    Sha256::new()
        .chain_update([0x02])
        .chain_update(chain)
        .chain_update(index.to_be_bytes())
        .chain_update(leaf)
        .finalize()
        .into()
}

/// Where a map path ends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MapTerminal {
    /// An empty subtree: no key with the path's prefix.
    Empty,
    /// A subtree of one key: that key's leaf.
    Leaf {
        /// The key (the one asked about, or another with the path's prefix).
        #[serde(with = "hex32")]
        key: MerkleHash,
        /// Its value.
        #[serde(with = "hex32")]
        value: MerkleHash,
    },
}

/// A proof of a key's value, or of its absence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MapProof {
    /// The siblings along the path, from the root's children down.
    #[serde(with = "hex32_vec")]
    pub siblings: Vec<MerkleHash>,
    /// What the path ends at.
    pub terminal: MapTerminal,
}

/// Why a map proof does not verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MapProofError {
    /// The path is longer than keys have bits.
    #[error("the path is longer than 256 levels")]
    TooDeep,
    /// The path ends at another key's leaf that does not share the path's prefix.
    #[error("the path ends at a leaf off its own prefix")]
    OffPath,
    /// The path shows a value for the key where absence was claimed, or none where a value was.
    #[error("the path shows {found} for the key, not {claimed}")]
    Membership {
        /// What the proof shows: "a value" or "no value".
        found: &'static str,
        /// What was claimed.
        claimed: &'static str,
    },
    /// The path shows another value for the key.
    #[error("the path shows another value for the key")]
    ValueMismatch,
    /// The path does not lead to the root.
    #[error("the path does not lead to the map root")]
    RootMismatch,
}

impl MapProof {
    /// Checks that `key` has `value` (`None`: is absent) in the map whose root is `root`.
    pub fn verify(
        &self,
        root: &MerkleHash,
        key: &MerkleHash,
        value: Option<&MerkleHash>,
    ) -> Result<(), MapProofError> {
        let depth = self.siblings.len();
        if depth > MAP_DEPTH_MAX {
            return Err(MapProofError::TooDeep);
        }
        let mut hash = match &self.terminal {
            MapTerminal::Empty => {
                if value.is_some() {
                    return Err(MapProofError::Membership {
                        found: "no value",
                        claimed: "a value",
                    });
                }
                MAP_EMPTY
            }
            MapTerminal::Leaf {
                key: found,
                value: found_value,
            } => {
                if shared_bits(found, key) < depth {
                    return Err(MapProofError::OffPath);
                }
                match (found == key, value) {
                    (true, Some(value)) if value == found_value => {}
                    (true, Some(_)) => return Err(MapProofError::ValueMismatch),
                    (true, None) => {
                        return Err(MapProofError::Membership {
                            found: "a value",
                            claimed: "no value",
                        });
                    }
                    (false, Some(_)) => {
                        return Err(MapProofError::Membership {
                            found: "no value",
                            claimed: "a value",
                        });
                    }
                    (false, None) => {}
                }
                map_leaf_hash(found, found_value)
            }
        };
        for (d, sibling) in self.siblings.iter().enumerate().rev() {
            hash = match bit(key, d) {
                true => node_hash(sibling, &hash),
                false => node_hash(&hash, sibling),
            };
        }
        match hash == *root {
            true => Ok(()),
            false => Err(MapProofError::RootMismatch),
        }
    }
}

/// Serde of a 32-byte hash as lowercase hex.
pub mod hex32 {
    use serde::{Deserialize, Deserializer, Serializer};

    /// Serializes as hex.
    pub fn serialize<S: Serializer>(hash: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(hash))
    }

    /// Deserializes from 64 hex digits.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let text = String::deserialize(d)?;
        let bytes = hex::decode(&text).map_err(serde::de::Error::custom)?;
        bytes
            .try_into()
            .map_err(|_| serde::de::Error::custom("a hash is 32 bytes"))
    }
}

/// Serde of a list of 32-byte hashes as lowercase hex strings.
pub mod hex32_vec {
    use serde::{Deserialize, Deserializer, Serializer};

    /// Serializes as a list of hex strings.
    pub fn serialize<S: Serializer>(hashes: &[[u8; 32]], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(hashes.iter().map(hex::encode))
    }

    /// Deserializes from a list of 64-hex-digit strings.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<[u8; 32]>, D::Error> {
        let texts = Vec::<String>::deserialize(d)?;
        texts
            .iter()
            .map(|text| {
                hex::decode(text)
                    .map_err(serde::de::Error::custom)?
                    .try_into()
                    .map_err(|_| serde::de::Error::custom("a hash is 32 bytes"))
            })
            .collect()
    }
}

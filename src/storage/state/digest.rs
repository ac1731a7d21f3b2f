//! [`StateDigest`]: one hash over the canonical state at its ingest cursor, so that two nodes
//! (a replica and its source, a node and one rebuilt from the same log) can be compared
//! without moving their data.
//!
//! It covers every database the log alone determines, in LMDB's key order: records, hash and
//! pair indexes, supersession, live votes and their totals, applied trust, the histories and
//! the rejections, with the ingest cursor. It leaves out `ingest_times` (when each batch was
//! committed, by this node's clock) and the schema version. Each entry is hashed with its
//! database's name and the lengths of its key and value, so no two different states share a
//! byte stream. Reading is one read transaction: the digest is of one consistent state.

use super::{State, StateError};
use crate::protocol::Hash;

/// The digest of a state at an ingest cursor: blake3 over every database the log alone
/// determines (records, hash and pair indexes, supersession, live votes and their totals,
/// applied trust, the histories, the rejections), in key order, with the cursor. It leaves
/// out when each batch was committed (this node's clock) and the schema version. Nodes that
/// applied the same log to the same cursor have the same digest, however they batched it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StateDigest {
    /// The ingest cursor it reflects: every journal record below it is applied.
    pub cursor: u64,
    /// blake3 over the canonical state.
    pub hash: Hash,
}

impl std::fmt::Display for StateDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} at cursor {}", self.hash, self.cursor)
    }
}

impl State {
    /// Returns the [`StateDigest`] of the state now.
    pub fn digest(&self) -> Result<StateDigest, StateError> {
        self.read(|txn, dbs| {
            let cursor = super::apply::read_cursor(txn, dbs)?;
            let mut hasher = blake3::Hasher::new();
            hasher.update(b"stemedb state digest v1");
            hasher.update(&cursor.to_be_bytes());
            let canonical = [
                ("assertion_records", dbs.assertion_records),
                ("assertion_hashes", dbs.assertion_hashes),
                ("pairs", dbs.pairs),
                ("supersession", dbs.supersession),
                ("votes", dbs.votes),
                ("vote_totals", dbs.vote_totals),
                ("trust", dbs.trust),
                ("vote_history", dbs.vote_history),
                ("trust_history", dbs.trust_history),
                ("rejected", dbs.rejected),
                ("tree", dbs.tree),
                ("leaf_index", dbs.leaf_index),
                ("map_leaves", dbs.map_leaves),
                ("map_nodes", dbs.map_nodes),
                ("evidence", dbs.evidence),
                ("learned", dbs.learned),
            ];
            for (name, db) in canonical {
                hasher.update(name.as_bytes());
                let entries = db.iter(txn).map_err(StateError::lmdb("scan for digest"))?;
                let mut count = 0u64;
                for entry in entries {
                    let (key, value) = entry.map_err(StateError::lmdb("scan for digest"))?;
                    hasher.update(&(key.len() as u64).to_be_bytes());
                    hasher.update(key);
                    hasher.update(&(value.len() as u64).to_be_bytes());
                    hasher.update(value);
                    count += 1;
                }
                hasher.update(&count.to_be_bytes());
            }
            Ok(StateDigest {
                cursor,
                hash: Hash::from_bytes(*hasher.finalize().as_bytes()),
            })
        })
    }
}

//! The Merkle tree over the log, as a [`Node`] answers about it: the tree head, inclusion and
//! consistency proofs, and tlog-tiles tiles (see `storage::state::tree`).

use super::{CheckpointError, InclusionProof, Node, NodeError, SignedCheckpoint, TreeHead};
use crate::protocol::Hash;
use crate::protocol::merkle::MerkleHash;
use crate::protocol::note::{Checkpoint, NoteVerifier};

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

impl Node {
    /// Returns the verifier key of this node's checkpoints (C2SP note verifier key text via
    /// `Display`).
    pub fn checkpoint_verifier(&self) -> NoteVerifier {
        self.inner.checkpointer.verifier()
    }

    /// Returns the newest kept checkpoint of at most `size` leaves (`None`: the newest), as
    /// the signed note; `None` if none is kept.
    pub fn checkpoint(&self, size: Option<u64>) -> Result<Option<SignedCheckpoint>, NodeError> {
        let Some((_, note)) = self.with_state(|state| Ok(state.checkpoint(size)?))? else {
            return Ok(None);
        };
        let checkpoint =
            Checkpoint::open(&note, &self.inner.checkpointer.verifier()).map_err(CheckpointError::from)?;
        Ok(Some(SignedCheckpoint { note, checkpoint }))
    }

    /// Waits until a checkpoint of at least `size` leaves is kept (by the checkpointer, or on
    /// demand), or until `deadline`; returns the newest kept one, or `None` at the deadline.
    pub async fn wait_checkpoint(
        &self,
        size: u64,
        deadline: std::time::Instant,
    ) -> Result<Option<SignedCheckpoint>, NodeError> {
        let mut kept = self.inner.checkpointer.kept();
        let reached = actix_rt::time::timeout(
            deadline.saturating_duration_since(std::time::Instant::now()),
            kept.wait_for(|kept| *kept >= size),
        )
        .await;
        match reached {
            Ok(Ok(_)) => self.checkpoint(None),
            _ => Ok(None),
        }
    }

    /// Signs a checkpoint of the tree now and keeps it (on demand); refused if the tree does not
    /// extend the latest checkpoint this node signed ([`CheckpointError::Inconsistent`]).
    pub fn sign_checkpoint(&self) -> Result<SignedCheckpoint, NodeError> {
        self.with_state(|state| Ok(self.inner.checkpointer.sign(state, true)?))
    }
}

impl Node {
    /// Returns the bytes of leaf `index`'s record (as the log holds it: the leaf is the
    /// SHA-256 of `0x00` and these), or `None` if the log has let the record go.
    pub fn leaf_record(&self, index: u64) -> Result<Option<bytes::Bytes>, NodeError> {
        let offset = self.with_state(|state| Ok(state.leaf_offset(index)?))?;
        let mut reader = self.with_running(|running| Ok(running.log.reader()))?;
        match reader.read_range(offset, 1, 1) {
            Ok(read) => Ok(read
                .records
                .into_iter()
                .next()
                .filter(|(at, _)| *at == offset)
                .map(|(_, payload)| payload)),
            Err(crate::log::ReadError::Unreadable { .. }) => Ok(None),
            Err(crate::log::ReadError::Transient(source)) => {
                Err(NodeError::Log(crate::log::LogError::Backend(source)))
            }
            Err(error @ crate::log::ReadError::Corrupt { .. }) => {
                Err(NodeError::Log(crate::log::LogError::Backend(Box::new(error))))
            }
        }
    }
}

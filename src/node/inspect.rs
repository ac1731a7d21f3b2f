//! Whole-state inspection of a [`Node`]: counts, the full dump, and the state digest.

use super::{Node, NodeError, StateDigest, StateDump};

impl Node {
    /// Returns (stored assertions, stored rejections).
    pub fn counts(&self) -> Result<(u64, u64), NodeError> {
        self.with_state(|state| Ok(state.counts()?))
    }

    /// Returns every row of the state; see [`StateDump`] (meant for tests and inspection).
    pub fn dump(&self) -> Result<StateDump, NodeError> {
        self.with_state(|state| Ok(state.dump()?))
    }

    /// Returns the digest of the canonical state at its ingest cursor: nodes that applied the
    /// same log up to the same cursor have the same digest (see [`StateDigest`]). Reads every
    /// row once, in one read transaction.
    pub fn state_digest(&self) -> Result<StateDigest, NodeError> {
        self.with_state(|state| Ok(state.digest()?))
    }
}

//! Whole-state inspection of a [`Node`]: counts, the full dump, and the state digest.

use std::path::Path;

use super::{Node, NodeError, STATE_DIR, StateDigest, StateDump};
use crate::Config;
use crate::storage::state::State;

impl Node {
    /// Returns (stored assertions, stored rejections).
    pub fn counts(&self) -> Result<(u64, u64), NodeError> {
        self.with_state(|state| Ok(state.counts()?))
    }

    /// Returns every row of the state; see [`StateDump`] (meant for tests and inspection).
    pub fn dump(&self) -> Result<StateDump, NodeError> {
        self.with_state(|state| Ok(state.dump()?))
    }

    /// Returns where the learned trust model stands: the log position it covers, the answers
    /// it holds and the re-estimations run (see `[learned]`).
    pub fn learned_meta(&self) -> Result<crate::storage::state::LearnedMeta, NodeError> {
        self.with_state(|state| Ok(state.learned_meta()?))
    }

    /// Returns the time this node spent keeping the learned trust model since it started (its
    /// online steps and re-estimations, inside ingest transactions).
    pub fn learned_time(&self) -> Result<std::time::Duration, NodeError> {
        self.with_state(|state| Ok(state.learned_time()))
    }

    /// Returns the digest of the canonical state at its ingest cursor: nodes that applied the
    /// same log up to the same cursor have the same digest (see [`StateDigest`]). Reads every
    /// row once, in one read transaction.
    pub fn state_digest(&self) -> Result<StateDigest, NodeError> {
        self.with_state(|state| Ok(state.digest()?))
    }

    /// Returns the digest of the state stored in `data_dir` as it stands, at its ingest cursor,
    /// without starting a node (none may run on it): how replicas of a stream, stopped, are
    /// compared. Refuses a directory without `state/`.
    pub fn stored_state_digest(
        config: &Config,
        data_dir: impl AsRef<Path>,
    ) -> Result<StateDigest, NodeError> {
        let data_dir = data_dir.as_ref();
        if !data_dir.join(STATE_DIR).is_dir() {
            return Err(NodeError::NotADataDir {
                dir: data_dir.to_owned(),
                missing: STATE_DIR,
            });
        }
        let _lock = crate::log::lock_data_dir(data_dir)?;
        let state = State::open(data_dir.join(STATE_DIR), config.state.clone())?;
        let digest = state.digest();
        state.close();
        Ok(digest?)
    }
}

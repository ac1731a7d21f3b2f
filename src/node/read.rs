//! Reads of the indexed state: assertions, successors, rejections, votes and trust. Each runs
//! a short LMDB read transaction on the caller's thread.

use super::{ListPage, ListQuery, Node, NodeError, Rejection, StoredAssertion, StoredVote, VoteTotals};
use crate::protocol::{AgentId, Hash};
use crate::storage::state::StateError;

impl Node {
    /// Returns the assertion with content hash `hash`, if it is indexed.
    pub fn get(&self, hash: &Hash) -> Result<Option<StoredAssertion>, NodeError> {
        self.with_state(|state| Ok(state.get(hash)?))
    }

    /// Lists assertions by subject or by (subject, predicate), heads or full history. A name
    /// longer than a record's may be is refused ([`NodeError::NameTooLong`]).
    pub fn list(&self, query: &ListQuery) -> Result<ListPage, NodeError> {
        let predicate = query.predicate.as_deref().unwrap_or_default();
        self.inner.limits.check_names(&query.subject, predicate)?;
        self.with_state(|state| match state.list(query) {
            Err(StateError::BadCursor) => Err(NodeError::BadCursor),
            result => Ok(result?),
        })
    }

    /// Returns the hashes of up to `limit` assertions that supersede `hash`.
    pub fn successors(&self, hash: &Hash, limit: usize) -> Result<Vec<Hash>, NodeError> {
        self.with_state(|state| Ok(state.successors(hash, limit)?))
    }

    /// Returns the rejection of the record at journal `offset`, if the ingestor rejected it.
    pub fn rejection(&self, offset: u64) -> Result<Option<Rejection>, NodeError> {
        self.with_state(|state| Ok(state.rejection(offset)?))
    }

    /// Returns up to `limit` records the ingestor rejected, from journal offset `from` on.
    pub fn rejections(&self, from: u64, limit: usize) -> Result<Vec<Rejection>, NodeError> {
        self.with_state(|state| Ok(state.rejections(from, limit)?))
    }

    /// Returns the totals of the live votes on `assertion` (zero if nobody voted).
    pub fn vote_totals(&self, assertion: &Hash) -> Result<VoteTotals, NodeError> {
        self.with_state(|state| Ok(state.vote_totals(assertion)?))
    }

    /// Returns up to `limit` live votes on `assertion` (one per voter), by voter.
    pub fn votes(&self, assertion: &Hash, limit: usize) -> Result<Vec<StoredVote>, NodeError> {
        self.with_state(|state| Ok(state.votes(assertion, limit)?))
    }

    /// Returns `agent`'s trust factor: that of its applied trust change (see
    /// [`submit_trust`](Self::submit_trust)), else from the configuration (`[votes.trust]`),
    /// else `votes.trust_default`.
    pub fn trust(&self, agent: &AgentId) -> Result<f32, NodeError> {
        if let Some(factor) = self.with_state(|state| Ok(state.trust(agent)?))? {
            return Ok(factor);
        }
        let configured = self.inner.trust_configured.get(agent);
        Ok(configured.copied().unwrap_or(self.inner.trust_default))
    }
}

//! [`Evidence`]: what a lens reads besides the candidates, from a snapshot of the state or
//! from records a verifier replayed.

use std::collections::HashMap;

use super::{ResolveError, VOTES_PER_CANDIDATE_MAX};
use crate::protocol::{AgentId, Hash};
use crate::storage::state::{Snapshot, StoredVote};

/// What a lens may read besides the candidates: the snapshot's live votes and trust, as of
/// the query's point in the log.
pub struct Evidence<'a> {
    pub(super) source: Source<'a>,
    pub(super) trust: &'a TrustBook,
    /// Only records journaled below this count, if the query asked for a past point.
    pub(super) as_of_end: Option<u64>,
}

/// Where a lens's evidence comes from: a snapshot of the state, or records replayed by a
/// verifier (see [`crate::receipt`]).
pub(super) enum Source<'a> {
    Snapshot(&'a Snapshot),
    Replayed(&'a Replayed),
}

/// Evidence replayed from records rather than read from the state: the live votes of each
/// candidate and the journaled trust of each voter, at a point of the log.
#[derive(Debug, Clone, Default)]
pub struct Replayed {
    /// The live votes of each assertion.
    pub votes: HashMap<Hash, Vec<StoredVote>>,
    /// The applied trust change of each agent that has one.
    pub trust: HashMap<AgentId, f32>,
    /// The log position the evidence reflects.
    pub end: u64,
}

impl<'a> Evidence<'a> {
    /// Evidence from replayed records, with the configured `trust`.
    pub fn replayed(replayed: &'a Replayed, trust: &'a TrustBook) -> Self {
        Self {
            source: Source::Replayed(replayed),
            trust,
            as_of_end: None,
        }
    }
}

impl Evidence<'_> {
    /// Returns the live votes on `assertion` (at most [`VOTES_PER_CANDIDATE_MAX`]).
    /// Not available for a past point (the replaced records are kept for weights only):
    /// answers [`ResolveError::AsOfUnsupported`] then; use [`vote_weights`](Self::vote_weights).
    pub fn votes(&self, assertion: &Hash) -> Result<Vec<StoredVote>, ResolveError> {
        let snapshot = match self.source {
            Source::Replayed(replayed) => {
                return Ok(replayed.votes.get(assertion).cloned().unwrap_or_default());
            }
            Source::Snapshot(snapshot) => snapshot,
        };
        if self.as_of_end.is_some() {
            return Err(ResolveError::AsOfUnsupported {
                what: "whole vote records",
            });
        }
        Ok(snapshot.votes(assertion, VOTES_PER_CANDIDATE_MAX)?)
    }

    /// Returns (voter, weight) of each live vote on `assertion` (at most
    /// [`VOTES_PER_CANDIDATE_MAX`]): cheaper than [`votes`](Self::votes) when the records
    /// themselves are not needed.
    pub fn vote_weights(&self, assertion: &Hash) -> Result<Vec<(AgentId, f32)>, ResolveError> {
        let snapshot = match self.source {
            Source::Replayed(replayed) => {
                let votes = replayed
                    .votes
                    .get(assertion)
                    .map(Vec::as_slice)
                    .unwrap_or_default();
                return Ok(votes.iter().map(|v| (v.vote.voter, v.vote.weight)).collect());
            }
            Source::Snapshot(snapshot) => snapshot,
        };
        Ok(match self.as_of_end {
            Some(end) => snapshot.vote_weights_as_of(assertion, end, VOTES_PER_CANDIDATE_MAX)?,
            None => snapshot.vote_weights(assertion, VOTES_PER_CANDIDATE_MAX)?,
        })
    }

    /// Returns `agent`'s trust factor as of the snapshot: its journaled trust change, else
    /// its configured factor, else the default.
    pub fn trust(&self, agent: &AgentId) -> Result<f32, ResolveError> {
        let journaled = match (&self.source, self.as_of_end) {
            (Source::Replayed(replayed), _) => replayed.trust.get(agent).copied(),
            (Source::Snapshot(snapshot), Some(end)) => {
                snapshot.trust_change_as_of(agent, end)?.map(|s| s.change.factor)
            }
            (Source::Snapshot(snapshot), None) => snapshot.trust_change(agent)?.map(|s| s.change.factor),
        };
        if let Some(factor) = journaled {
            return Ok(factor);
        }
        Ok(self
            .trust
            .configured
            .get(agent)
            .copied()
            .unwrap_or(self.trust.default))
    }

    /// Returns `agent`'s journaled trust factor as of the evidence's point, if it has one
    /// (what the log says; configured factors are not part of the log).
    pub fn journaled_trust(&self, agent: &AgentId) -> Result<Option<f32>, ResolveError> {
        Ok(match (&self.source, self.as_of_end) {
            (Source::Replayed(replayed), _) => replayed.trust.get(agent).copied(),
            (Source::Snapshot(snapshot), Some(end)) => {
                snapshot.trust_change_as_of(agent, end)?.map(|s| s.change.factor)
            }
            (Source::Snapshot(snapshot), None) => snapshot.trust_change(agent)?.map(|s| s.change.factor),
        })
    }

    /// The snapshot and log position the learned model is read at; a receipt's replayed
    /// evidence does not carry the model.
    pub(crate) fn learned_source(&self) -> Result<(&Snapshot, u64), ResolveError> {
        match self.source {
            Source::Snapshot(snapshot) => Ok((snapshot, self.offset())),
            Source::Replayed(_) => Err(ResolveError::ModelUnavailable(
                "replayed evidence does not carry the learned model".into(),
            )),
        }
    }

    /// Returns the point in the log the resolution reflects: records below it count.
    pub fn offset(&self) -> u64 {
        match self.source {
            Source::Snapshot(snapshot) => self.as_of_end.unwrap_or_else(|| snapshot.cursor()),
            Source::Replayed(replayed) => replayed.end,
        }
    }
}

/// The configured trust: the factor of an agent without a journaled trust change.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TrustBook {
    /// Factor of an agent neither journaled nor configured.
    pub default: f32,
    /// Configured factors.
    pub configured: HashMap<AgentId, f32>,
}

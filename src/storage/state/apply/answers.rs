//! What the learned trust model takes from a committed batch.

use super::super::learned::Answered;
use super::super::votes::Tally;
use super::{Plan, Step};

/// What the learned model takes from a planned batch and its tallies.
pub(super) fn answered(plan: &Plan, tallies: &[Tally]) -> Vec<Answered> {
    let mut out = Vec::new();
    for step in &plan.steps {
        if let Step::Store(stored) = step {
            out.push(Answered::Stored {
                offset: stored.offset,
                hash: stored.hash,
                pair: stored.pair,
                object: Answered::object_digest(&stored.assertion.object),
                signers: stored.assertion.signatures.iter().map(|s| s.agent).collect(),
            });
        }
    }
    // A vote replaced within the batch answered first: the answer dates from it, however the
    // log was batched (a replaced stored vote answered before and changes nothing).
    for row in tallies.iter().flat_map(|t| t.rows.iter().chain(&t.replaced)) {
        if let Some(pair) = plan.vote_pairs.get(&row.vote.assertion) {
            out.push(Answered::Voted {
                offset: row.offset,
                assertion: row.vote.assertion,
                pair: *pair,
                voter: row.vote.voter,
            });
        }
    }
    out
}


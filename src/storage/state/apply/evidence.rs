//! The map's evidence of one batch: which of its records changed what a map key resolves to.

use super::{Plan, Step};
use crate::storage::state::map::{self, Evidence};
use crate::storage::state::{StateError, Tally};

/// The records of a batch that changed what a map key resolves to (see `map`): its stored
/// assertions, the votes that became live (also if a later vote of the batch replaced them),
/// and the trust changes that were applied (likewise). `first` is the batch's first leaf.
pub(super) fn batch_evidence(plan: &Plan, tallies: &[Tally], first: u64) -> Result<Vec<Evidence>, StateError> {
    use crate::protocol::smt::{agent_key, pair_key};
    let mut evidence = Vec::new();
    let mut add = |key, offset| -> Result<(), StateError> {
        let (index, leaf) = map::leaf_at(&plan.leaves, first, offset)?;
        evidence.push(Evidence { key, index, leaf, offset });
        Ok(())
    };
    for step in &plan.steps {
        if let Step::Store(stored) = step {
            add(pair_key(stored.pair.as_bytes()), stored.offset)?;
        }
    }
    for tally in tallies {
        let replaced_here = tally.replaced.iter().filter(|row| row.offset >= plan.cursor);
        for row in tally.rows.iter().chain(replaced_here) {
            let pair = plan.vote_pairs.get(&row.vote.assertion).ok_or_else(|| {
                StateError::corrupt("vote tally", format!("no pair for assertion {}", row.vote.assertion))
            })?;
            add(pair_key(pair.as_bytes()), row.offset)?;
        }
    }
    let replaced_here = plan.trust_replaced.iter().filter(|row| row.offset >= plan.cursor);
    for row in plan.trust.values().chain(replaced_here) {
        add(agent_key(row.change.agent.as_bytes()), row.offset)?;
    }
    Ok(evidence)
}


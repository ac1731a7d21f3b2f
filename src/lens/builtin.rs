//! The built-in lenses.

use std::collections::HashMap;

use super::{Candidate, Evidence, Lens, ResolveError, Score};
use crate::storage::state::ExactWeight;

/// The latest timestamp wins.
#[derive(Debug, Clone, Copy, Default)]
pub struct Recency;

impl Lens for Recency {
    fn name(&self) -> &str {
        "recency"
    }

    fn score(&self, candidates: &[Candidate], _evidence: &Evidence<'_>) -> Result<Vec<Score>, ResolveError> {
        Ok(candidates
            .iter()
            .map(|c| Score {
                value: c.timestamp_ms as f64,
                reason: format!("asserted at {} ms", c.timestamp_ms),
            })
            .collect())
    }
}

/// The highest confidence wins.
#[derive(Debug, Clone, Copy, Default)]
pub struct Confidence;

impl Lens for Confidence {
    fn name(&self) -> &str {
        "confidence"
    }

    fn score(&self, candidates: &[Candidate], _evidence: &Evidence<'_>) -> Result<Vec<Score>, ResolveError> {
        Ok(candidates
            .iter()
            .map(|c| Score {
                value: f64::from(c.confidence),
                reason: format!("confidence {}", c.confidence),
            })
            .collect())
    }
}

/// The greatest sum of live vote weight × voter trust wins.
#[derive(Debug, Clone, Copy, Default)]
pub struct Consensus;

impl Lens for Consensus {
    fn name(&self) -> &str {
        "consensus"
    }

    fn score(&self, candidates: &[Candidate], evidence: &Evidence<'_>) -> Result<Vec<Score>, ResolveError> {
        let mut trust = HashMap::new();
        let mut scores = Vec::with_capacity(candidates.len());
        for candidate in candidates {
            if candidate.votes.count == 0 {
                scores.push(Score {
                    value: 0.0,
                    reason: "no votes".to_owned(),
                });
                continue;
            }
            let votes = evidence.vote_weights(&candidate.hash)?;
            // Each vote's weight × trust, summed exactly per trust factor, then weighted:
            // the order votes are read in cannot change the score.
            let mut by_factor: HashMap<u32, ExactWeight> = HashMap::new();
            for (voter, weight) in &votes {
                let factor = match trust.get(voter) {
                    Some(factor) => *factor,
                    None => {
                        let factor = evidence.trust(voter)?;
                        trust.insert(*voter, factor);
                        factor
                    }
                };
                by_factor
                    .entry(factor.to_bits())
                    .or_insert(ExactWeight::ZERO)
                    .add(*weight);
            }
            let mut factors: Vec<(u32, ExactWeight)> = by_factor.into_iter().collect();
            factors.sort_by_key(|(bits, _)| *bits);
            let value: f64 = factors
                .iter()
                .map(|(bits, weight)| f64::from(f32::from_bits(*bits)) * weight.to_f64())
                .sum();
            scores.push(Score {
                value,
                reason: format!(
                    "{} live vote(s), total weight {:.3}, weighted by voter trust {value:.3}",
                    votes.len(),
                    candidate.votes.weight_f64()
                ),
            });
        }
        Ok(scores)
    }
}

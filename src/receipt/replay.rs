//! The replay of a receipt's evidence: what the node resolves, recomputed from the records.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::{Receipt, ReceiptError};
use crate::lens::{Candidate, Evidence, LensRegistry, Replayed, TrustBook, rank};
use crate::protocol::merkle::MerkleHash;
use crate::protocol::{AgentId, Assertion, Hash, TrustChange, Vote};
use crate::storage::state::{LIST_LIMIT_MAX, StoredVote, Summary, VoteTotals};

/// A voter's trust changes: (leaf index, leaf hash, content hash, change).
pub(super) type TrustChain<'a> = Vec<(u64, MerkleHash, Hash, &'a TrustChange)>;

/// Replays the evidence as the node resolves: heads (or all, with history) by (timestamp,
/// hash), the limit, the lifecycles; each voter's live vote, the greatest by (timestamp, hash);
/// each voter's applied trust, likewise; then the lens and the ranking.
pub(super) fn replay(
    receipt: &Receipt,
    assertions: &BTreeMap<Hash, (u64, &Assertion, u64)>,
    votes: &[(u64, Hash, &Vote, u64)],
    trust: &BTreeMap<AgentId, TrustChain<'_>>,
    size: u64,
) -> Result<Vec<(Hash, f64)>, ReceiptError> {
    let query = &receipt.query;
    let failed = |reason: String| ReceiptError::Lens {
        lens: query.lens.clone(),
        reason,
    };
    let superseded: BTreeSet<Hash> = assertions.values().filter_map(|(_, a, _)| a.parent).collect();
    let order = |hash: &Hash| assertions.get(hash).map(|(_, a, _)| (a.timestamp_ms, *hash));
    let mut heads: Vec<Hash> = assertions
        .keys()
        .filter(|h| !superseded.contains(h))
        .copied()
        .collect();
    let mut older: Vec<Hash> = assertions
        .keys()
        .filter(|h| superseded.contains(h))
        .copied()
        .collect();
    heads.sort_by_key(order);
    older.sort_by_key(order);
    if query.history {
        heads.extend(older);
    }
    heads.truncate(query.limit.min(LIST_LIMIT_MAX).min(crate::lens::CANDIDATES_MAX));
    // Live votes: per (assertion, voter), the greatest by (timestamp, hash).
    let mut live: HashMap<(Hash, AgentId), (u64, Hash, &Vote, u64)> = HashMap::new();
    for &(index, hash, vote, offset) in votes {
        let key = (vote.assertion, vote.voter);
        let newer = live
            .get(&key)
            .is_none_or(|(_, h, v, _)| (vote.timestamp_ms, hash) > (v.timestamp_ms, *h));
        if newer {
            live.insert(key, (index, hash, vote, offset));
        }
    }
    let mut replayed = Replayed {
        end: size,
        ..Replayed::default()
    };
    for ((assertion, _), (_, hash, vote, offset)) in &live {
        replayed.votes.entry(*assertion).or_default().push(StoredVote {
            hash: *hash,
            offset: *offset,
            vote: (*vote).clone(),
        });
    }
    for (agent, changes) in trust {
        if let Some((_, _, _, change)) = changes
            .iter()
            .max_by_key(|(_, _, hash, change)| (change.timestamp_ms, *hash))
        {
            replayed.trust.insert(*agent, change.factor);
        }
    }
    let mut candidates = Vec::with_capacity(heads.len());
    for hash in heads {
        let Some((_, assertion, offset)) = assertions.get(&hash) else {
            continue;
        };
        if !query.lifecycles.contains(&assertion.lifecycle) {
            continue;
        }
        let summary = Summary::of(assertion, *offset);
        let mut totals = VoteTotals::default();
        for stored in replayed.votes.get(&hash).map(Vec::as_slice).unwrap_or_default() {
            totals.count += 1;
            totals.weight.add(stored.vote.weight);
        }
        candidates.push(Candidate {
            hash,
            timestamp_ms: assertion.timestamp_ms,
            offset: summary.offset,
            confidence: summary.confidence,
            lifecycle: summary.lifecycle,
            signers: summary.signers,
            votes: totals,
        });
    }
    let book = TrustBook {
        default: receipt.trust.default,
        configured: receipt.trust.configured.iter().copied().collect(),
    };
    let lens = LensRegistry::with_builtins()
        .get(&query.lens)
        .map_err(|e| failed(format!("{e} (the verifier replays the built-in lenses)")))?;
    let ranked = rank(candidates, &Evidence::replayed(&replayed, &book), lens.as_ref())
        .map_err(|e| failed(e.to_string()))?;
    Ok(ranked
        .into_iter()
        .map(|s| (s.candidate.hash, s.score.value))
        .collect())
}

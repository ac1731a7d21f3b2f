//! Lenses: of the competing assertions about one (subject, predicate), which one wins, and why.
//!
//! A [`Lens`] scores the candidates of one [`Snapshot`] and explains each score; [`resolve`]
//! ranks them by score, then by timestamp, then by hash (greater wins each tie), so every
//! resolution is deterministic. Built-ins, registered under their names on every node:
//! - [`Recency`] (`"recency"`): the latest timestamp wins;
//! - [`Confidence`] (`"confidence"`): the highest confidence wins;
//! - [`Consensus`] (`"consensus"`): the greatest sum, over the live votes, of vote weight ×
//!   the voter's trust (journaled trust, else the configured factor, else the default). A voter
//!   has one live vote per assertion, so many votes by one voter count once;
//! - [`learned::Learned`] (`"learned"`): the posterior probability of the candidate's value
//!   under the trust model the ingest learns from the log (`storage::state::learned`).
//!
//! A host registers its own with `Node::register_lens`.

mod builtin;
mod evidence;
pub mod learned;
mod views;

use std::collections::HashMap;
use std::sync::Arc;

use thiserror::Error;

pub use builtin::{Confidence, Consensus, Recency};
use evidence::Source;
pub use evidence::{Evidence, Replayed, TrustBook};
pub use views::{MaxStale, OWNER_SHARE_DIVISOR, ViewKey, ViewStatus, WinnerChange};
// The node's machinery: internal, open to this workspace's tests with the test kit.
#[cfg(feature = "test-kit")]
#[doc(hidden)]
pub use views::{Refresher, Subscription, ViewCensus, ViewCounters, Views};
#[cfg(not(feature = "test-kit"))]
pub(crate) use views::{Subscription, ViewCounters, Views};

use crate::protocol::{AgentId, Hash, Lifecycle};
use crate::storage::state::{HeadSummary, Snapshot, StateError, VoteTotals};

/// Most candidates one resolution considers.
pub const CANDIDATES_MAX: usize = 10_000;
/// Most live votes a lens reads per candidate.
pub const VOTES_PER_CANDIDATE_MAX: usize = 100_000;

/// An assertion competing in a resolution: what a lens scores, as the heads index and the vote
/// totals hold it (a lens never decodes a record).
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    /// Its content hash.
    pub hash: Hash,
    /// Its timestamp.
    pub timestamp_ms: u64,
    /// The position of its record in the log.
    pub offset: u64,
    /// Its author's confidence, in [0, 1].
    pub confidence: f32,
    /// Where it stands.
    pub lifecycle: Lifecycle,
    /// Its signers, in signature order.
    pub signers: Vec<AgentId>,
    /// Its live votes, counted.
    pub votes: VoteTotals,
}

/// A lens's score of one candidate: greater is better, with the reason in words.
#[derive(Debug, Clone, PartialEq)]
pub struct Score {
    /// The score; must be finite.
    pub value: f64,
    /// Why, for people and the audit trail.
    pub reason: String,
}

/// A way of resolving disagreement; see the module docs.
pub trait Lens: Send + Sync {
    /// Its name, under which queries ask for it.
    fn name(&self) -> &str;

    /// Scores each candidate (one score each, in order); greater wins.
    fn score(&self, candidates: &[Candidate], evidence: &Evidence<'_>) -> Result<Vec<Score>, ResolveError>;
}

/// What to resolve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    /// The subject.
    pub subject: String,
    /// The predicate.
    pub predicate: String,
    /// The lens, by name.
    pub lens: String,
    /// The lifecycles a candidate may have (default: proposed and active).
    pub lifecycles: Vec<Lifecycle>,
    /// Let superseded assertions compete too.
    pub history: bool,
    /// Most candidates to rank (at most [`CANDIDATES_MAX`]).
    pub limit: usize,
    /// Resolve as the store knew things at a past point, not now.
    pub as_of: Option<AsOf>,
    /// Accept the answer of a materialized view this stale (see `views`); `None` always
    /// computes. Only a query with the default lifecycles, limit, no history and no `as_of`
    /// uses or creates a view.
    pub max_stale: Option<MaxStale>,
    /// Write an audit record of this resolution (always, when `node.audit = "all"`).
    pub audit: bool,
    /// Who asks: named in the audit record, and the owner of a view the query creates (one
    /// requester holds at most its share of the views; see [`OWNER_SHARE_DIVISOR`]).
    pub requester: Option<String>,
}

/// A past point in the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AsOf {
    /// The journal record at this offset and every one before it count; none after it.
    Offset(u64),
    /// What the store had applied by this wall-clock time, in milliseconds since the epoch.
    TimeMs(u64),
    /// Both bounds at once: the records that count under each, so the earlier point.
    Both {
        /// As [`AsOf::Offset`].
        offset: u64,
        /// As [`AsOf::TimeMs`].
        time_ms: u64,
    },
}

impl Query {
    /// Resolves (`subject`, `predicate`) with `lens`: heads only, proposed or active ones, up
    /// to 1,000 candidates.
    pub fn new(subject: impl Into<String>, predicate: impl Into<String>, lens: impl Into<String>) -> Self {
        Self {
            subject: subject.into(),
            predicate: predicate.into(),
            lens: lens.into(),
            lifecycles: vec![Lifecycle::Proposed, Lifecycle::Active],
            history: false,
            limit: 1000,
            as_of: None,
            max_stale: None,
            audit: false,
            requester: None,
        }
    }

    /// Returns the view this query may use, if it is one a view answers.
    pub fn view_key(&self) -> Option<ViewKey> {
        let plain = Self::new(self.subject.clone(), self.predicate.clone(), self.lens.clone());
        let same = self.lifecycles == plain.lifecycles
            && self.history == plain.history
            && self.limit == plain.limit
            && self.as_of.is_none();
        same.then(|| ViewKey {
            subject: self.subject.clone(),
            predicate: self.predicate.clone(),
            lens: self.lens.clone(),
        })
    }
}

/// A candidate with its score, as ranked.
#[derive(Debug, Clone, PartialEq)]
pub struct Scored {
    /// The candidate.
    pub candidate: Candidate,
    /// Its score.
    pub score: Score,
}

/// The answer to a [`Query`].
#[derive(Debug, Clone, PartialEq)]
pub struct Resolution {
    /// The winner: the first of `ranked`, if any candidate qualified.
    pub winner: Option<Hash>,
    /// Every qualifying candidate, best first.
    pub ranked: Vec<Scored>,
    /// The lens that ranked them.
    pub lens: String,
    /// The ingest cursor of the snapshot it read: the journal records below it counted.
    pub offset: u64,
    /// The id of its audit record, if it was audited.
    pub audit_id: Option<u64>,
}

impl Resolution {
    /// Returns an estimate of the bytes its heap allocations hold: the ranked candidates (with
    /// their signers and reasons) and the lens name. What a view of it costs, besides its key.
    pub fn heap_bytes(&self) -> usize {
        let ranked: usize = self
            .ranked
            .iter()
            .map(|scored| {
                scored.candidate.signers.capacity() * size_of::<AgentId>() + scored.score.reason.capacity()
            })
            .sum();
        self.ranked.capacity() * size_of::<Scored>() + ranked + self.lens.capacity()
    }
}

/// Why a resolution failed.
#[derive(Debug, Error)]
pub enum ResolveError {
    /// No lens of that name is registered.
    #[error("no lens named {name:?} is registered")]
    UnknownLens {
        /// The name asked for.
        name: String,
    },
    /// A lens of that name is registered already.
    #[error("a lens named {name:?} is registered already")]
    LensExists {
        /// The name.
        name: String,
    },
    /// What a lens asked for is not kept for past points.
    #[error("{what} are not available as of a past point")]
    AsOfUnsupported {
        /// What.
        what: &'static str,
    },
    /// The lens misbehaved: wrong number of scores, or a score that is not finite.
    #[error("lens {lens:?} failed: {reason}")]
    Lens {
        /// The lens.
        lens: String,
        /// What went wrong.
        reason: String,
    },
    /// Reading the snapshot failed.
    #[error(transparent)]
    State(#[from] StateError),
    /// The node is shut down.
    #[error("the node is shut down")]
    Closed,
    /// The audit record could not be written; the resolution is not returned unaudited.
    #[error("audit record not written: {0}")]
    Audit(#[from] crate::storage::audit::AuditError),
    /// No room for another view: `node.views_max` views (or `node.views_bytes_max` bytes of
    /// them) exist, and every one that would have to go is watched; or the view alone is
    /// larger than `node.views_bytes_max`.
    #[error(
        "no room for another view: the views are at node.views_max = {max} or node.views_bytes_max, and watched"
    )]
    ViewsFull {
        /// `node.views_max`.
        max: usize,
    },
    /// The answer cannot be proven: a lens no verifier can replay, a tree or map that does not
    /// cover the log, or a checkpoint the node refuses to sign.
    #[error("the answer cannot be proven: {0}")]
    Unprovable(String),
    /// The learned trust model cannot answer: it is not kept (`[learned]`), or does not
    /// cover the log the answer needs, or the evidence is a receipt's (which does not carry
    /// the model).
    #[error("the learned trust model cannot answer: {0}")]
    ModelUnavailable(String),
    /// The query's subject or predicate is longer than the node's limits allow; refused
    /// before any work. [`NameTooLong::field`](crate::protocol::NameTooLong::field) says which.
    #[error(transparent)]
    NameTooLong(#[from] crate::protocol::NameTooLong),
}

/// The lenses of a node, by name.
#[derive(Default)]
pub struct LensRegistry {
    lenses: parking_lot::RwLock<HashMap<String, Arc<dyn Lens>>>,
}

impl LensRegistry {
    /// Returns true if and only if `name` is a lens an offline verifier can replay.
    pub fn provable(name: &str) -> bool {
        matches!(name, "recency" | "confidence" | "consensus")
    }

    /// A registry holding the built-ins.
    pub fn with_builtins() -> Self {
        let registry = Self::default();
        for lens in [
            Arc::new(Recency) as Arc<dyn Lens>,
            Arc::new(Confidence),
            Arc::new(Consensus),
            Arc::new(learned::Learned),
        ] {
            registry.lenses.write().insert(lens.name().to_owned(), lens);
        }
        registry
    }

    /// Registers `lens` under its name; a name is registered once.
    pub fn register(&self, lens: Arc<dyn Lens>) -> Result<(), ResolveError> {
        let mut lenses = self.lenses.write();
        let name = lens.name().to_owned();
        if lenses.contains_key(&name) {
            return Err(ResolveError::LensExists { name });
        }
        lenses.insert(name, lens);
        Ok(())
    }

    /// Returns the lens named `name`.
    pub fn get(&self, name: &str) -> Result<Arc<dyn Lens>, ResolveError> {
        self.lenses
            .read()
            .get(name)
            .cloned()
            .ok_or_else(|| ResolveError::UnknownLens {
                name: name.to_owned(),
            })
    }

    /// Returns the registered names, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.lenses.read().keys().cloned().collect();
        names.sort();
        names
    }
}

/// Resolves `query` with `lens` on one snapshot; see the module docs.
pub fn resolve(
    snapshot: &Snapshot,
    query: &Query,
    lens: &dyn Lens,
    trust: &TrustBook,
) -> Result<Resolution, ResolveError> {
    let limit = query.limit.min(CANDIDATES_MAX);
    let as_of_end = match query.as_of {
        None => None,
        // The record at the offset counts: everything below the next offset.
        Some(AsOf::Offset(offset)) => Some(offset.saturating_add(1).min(snapshot.cursor())),
        Some(AsOf::TimeMs(ms)) => Some(snapshot.cursor_at_time(ms)?),
        Some(AsOf::Both { offset, time_ms }) => Some(
            offset
                .saturating_add(1)
                .min(snapshot.cursor())
                .min(snapshot.cursor_at_time(time_ms)?),
        ),
    };
    let entries = match as_of_end {
        None => snapshot.entries(&query.subject, &query.predicate, query.history, limit)?,
        Some(end) => snapshot.entries_as_of(&query.subject, &query.predicate, end, query.history, limit)?,
    };
    let mut candidates = Vec::with_capacity(entries.len());
    for HeadSummary {
        hash,
        timestamp_ms,
        summary,
    } in entries
    {
        if !query.lifecycles.contains(&summary.lifecycle) {
            continue;
        }
        let votes = match as_of_end {
            None => snapshot.vote_totals(&hash)?,
            Some(end) => {
                let mut totals = VoteTotals::default();
                for (_, weight) in snapshot.vote_weights_as_of(&hash, end, VOTES_PER_CANDIDATE_MAX)? {
                    totals.count += 1;
                    totals.weight.add(weight);
                }
                totals
            }
        };
        candidates.push(Candidate {
            hash,
            timestamp_ms,
            offset: summary.offset,
            confidence: summary.confidence,
            lifecycle: summary.lifecycle,
            signers: summary.signers,
            votes,
        });
    }
    let evidence = Evidence {
        source: Source::Snapshot(snapshot),
        trust,
        as_of_end,
    };
    let (ranked, offset) = (rank(candidates, &evidence, lens)?, evidence.offset());
    Ok(Resolution {
        winner: ranked.first().map(|s| s.candidate.hash),
        ranked,
        lens: lens.name().to_owned(),
        offset,
        audit_id: None,
    })
}

/// Scores `candidates` with `lens` on `evidence` and ranks them: by score, then timestamp,
/// then hash, greater first. What a node and an offline verifier both run.
pub fn rank(
    candidates: Vec<Candidate>,
    evidence: &Evidence<'_>,
    lens: &dyn Lens,
) -> Result<Vec<Scored>, ResolveError> {
    let scores = lens.score(&candidates, evidence)?;
    let failed = |reason: String| ResolveError::Lens {
        lens: lens.name().to_owned(),
        reason,
    };
    if scores.len() != candidates.len() {
        return Err(failed(format!(
            "{} scores for {} candidates",
            scores.len(),
            candidates.len()
        )));
    }
    if let Some(bad) = scores.iter().find(|s| !s.value.is_finite()) {
        return Err(failed(format!("score {} is not finite", bad.value)));
    }
    let mut ranked: Vec<Scored> = candidates
        .into_iter()
        .zip(scores)
        .map(|(candidate, score)| Scored { candidate, score })
        .collect();
    ranked.sort_by(|a, b| {
        b.score
            .value
            .total_cmp(&a.score.value)
            .then(b.candidate.timestamp_ms.cmp(&a.candidate.timestamp_ms))
            .then(b.candidate.hash.cmp(&a.candidate.hash))
    });
    Ok(ranked)
}

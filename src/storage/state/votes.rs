//! Votes: one live vote per (voter, assertion) and exact totals per assertion, in the `votes`
//! and `vote_totals` databases (see [`layout`](super::layout)).
//!
//! The live vote of a voter on an assertion is the greatest of its votes by (timestamp, content
//! hash): a newer vote replaces the older one (count unchanged, weight adjusted by the
//! difference), an older or identical one changes nothing. Because the winner is a maximum, the
//! outcome does not depend on the order votes arrive in, and replaying one changes nothing.
//! [`State::tally`] folds a batch of votes into the stored rows and totals (read-only); the
//! ingest commit writes the result with the cursor.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use heed::RoTxn;

use super::tally::ExactWeight;
use super::layout::{decode_totals, decode_vote, vote_key};
use super::{Databases, State, StateError};
use crate::protocol::{AGENT_ID_LEN, HASH_LEN, Hash, Vote};

/// A stored, live vote.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredVote {
    /// The vote's content hash.
    pub hash: Hash,
    /// The journal offset of the record that brought it.
    pub offset: u64,
    /// The vote.
    pub vote: Vote,
}

/// The live votes of one assertion, counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct VoteTotals {
    /// Number of live votes (one per voter).
    pub count: u64,
    /// Exact sum of their weights.
    pub weight: ExactWeight,
}

impl VoteTotals {
    /// Returns the total weight as the nearest `f64`.
    pub fn weight_f64(&self) -> f64 {
        self.weight.to_f64()
    }
}

/// A vote the ingestor found well-formed and about a known assertion, ready to count.
#[derive(Debug, Clone, PartialEq)]
pub struct RoutedVote {
    /// Its journal offset.
    pub offset: u64,
    /// Its content hash.
    pub hash: Hash,
    /// The vote.
    pub vote: Vote,
}

/// What counting a batch of votes decided: the rows and totals to write.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Tally {
    /// New live votes (inserted or replacing older ones).
    pub rows: Vec<StoredVote>,
    /// New totals of every assertion whose live votes changed.
    pub totals: Vec<(Hash, VoteTotals)>,
    /// Votes that became live.
    pub counted: usize,
    /// Votes that changed nothing (older than, or identical to, the live vote).
    pub ignored: usize,
    /// Live votes that a newer one replaced (stored ones, and ones live only within this
    /// batch), for the history that as-of reads use.
    pub replaced: Vec<StoredVote>,
}

/// Returns true if and only if `new` replaces `live` as the voter's live vote.
pub fn supersedes(new: &RoutedVote, live: &StoredVote) -> bool {
    (new.vote.timestamp_ms, new.hash) > (live.vote.timestamp_ms, live.hash)
}


#[cfg(feature = "test-kit")]
impl State {
    /// [`tally`](Self::tally) for this crate's tests, which check it against every order of
    /// the same votes.
    #[doc(hidden)]
    pub fn tally_for_tests(&self, votes: &[RoutedVote]) -> Result<Tally, StateError> {
        self.tally(votes)
    }
}

impl State {
    /// Folds `votes`, in order, into the stored live votes and totals; returns what changed,
    /// without writing it. Valid until the next write.
    pub(crate) fn tally(&self, votes: &[RoutedVote]) -> Result<Tally, StateError> {
        self.read(|txn, dbs| {
            let mut live: HashMap<[u8; HASH_LEN + AGENT_ID_LEN], Option<StoredVote>> = HashMap::new();
            let mut totals: HashMap<Hash, VoteTotals> = HashMap::new();
            let mut changed = Vec::new();
            let mut tally = Tally::default();
            for new in votes {
                let key = vote_key(&new.vote.assertion, &new.vote.voter);
                let slot = match live.entry(key) {
                    Entry::Occupied(entry) => entry.into_mut(),
                    Entry::Vacant(entry) => entry.insert(get_vote(txn, dbs, &key)?),
                };
                let total = match totals.entry(new.vote.assertion) {
                    Entry::Occupied(entry) => entry.into_mut(),
                    Entry::Vacant(entry) => entry.insert(get_totals(txn, dbs, &new.vote.assertion)?),
                };
                match slot {
                    Some(current) if !supersedes(new, current) => {
                        tally.ignored += 1;
                        continue;
                    }
                    Some(current) => {
                        total
                            .weight
                            .sub(current.vote.weight)
                            .map_err(|e| StateError::corrupt("vote totals", e))?;
                        tally.replaced.push(current.clone());
                    }
                    None => total.count += 1,
                }
                total.weight.add(new.vote.weight);
                *slot = Some(StoredVote {
                    hash: new.hash,
                    offset: new.offset,
                    vote: new.vote.clone(),
                });
                changed.push(key);
                tally.counted += 1;
            }
            changed.sort_unstable();
            changed.dedup();
            let mut touched: Vec<Hash> = Vec::new();
            for key in changed {
                if let Some(Some(row)) = live.remove(&key) {
                    touched.push(row.vote.assertion);
                    tally.rows.push(row);
                }
            }
            touched.dedup();
            tally.totals = touched.into_iter().map(|h| (h, totals[&h])).collect();
            Ok(tally)
        })
    }

    /// Returns the totals of `assertion` (zero if nobody voted).
    pub fn vote_totals(&self, assertion: &Hash) -> Result<VoteTotals, StateError> {
        self.read(|txn, dbs| get_totals(txn, dbs, assertion))
    }

    /// Returns up to `limit` live votes on `assertion`, by voter.
    pub fn votes(&self, assertion: &Hash, limit: usize) -> Result<Vec<StoredVote>, StateError> {
        self.read(|txn, dbs| votes_in(txn, dbs, assertion, limit))
    }
}

/// Returns up to `limit` (voter, weight) pairs of the live votes on `assertion`, by voter.
pub(super) fn vote_weights_in(
    txn: &RoTxn<'_>,
    dbs: &Databases,
    assertion: &Hash,
    limit: usize,
) -> Result<Vec<(crate::protocol::AgentId, f32)>, StateError> {
    let iter = dbs
        .votes
        .prefix_iter(txn, assertion.as_bytes())
        .map_err(StateError::lmdb("scan votes"))?;
    let mut out = Vec::new();
    for entry in iter.take(limit) {
        let (key, value) = entry.map_err(StateError::lmdb("scan votes"))?;
        out.push(super::layout::decode_vote_weight(key, value)?);
    }
    Ok(out)
}

pub(super) fn votes_in(
    txn: &RoTxn<'_>,
    dbs: &Databases,
    assertion: &Hash,
    limit: usize,
) -> Result<Vec<StoredVote>, StateError> {
    let iter = dbs
        .votes
        .prefix_iter(txn, assertion.as_bytes())
        .map_err(StateError::lmdb("scan votes"))?;
    let mut out = Vec::new();
    for entry in iter.take(limit.min(super::LIST_LIMIT_MAX)) {
        let (_, value) = entry.map_err(StateError::lmdb("scan votes"))?;
        out.push(decode_vote(value)?);
    }
    Ok(out)
}

pub(super) fn get_vote(
    txn: &RoTxn<'_>,
    dbs: &Databases,
    key: &[u8],
) -> Result<Option<StoredVote>, StateError> {
    dbs.votes
        .get(txn, key)
        .map_err(StateError::lmdb("read vote"))?
        .map(decode_vote)
        .transpose()
}

pub(super) fn get_totals(
    txn: &RoTxn<'_>,
    dbs: &Databases,
    assertion: &Hash,
) -> Result<VoteTotals, StateError> {
    let Some(value) = dbs
        .vote_totals
        .get(txn, assertion.as_bytes())
        .map_err(StateError::lmdb("read vote totals"))?
    else {
        return Ok(VoteTotals::default());
    };
    decode_totals(value)
}


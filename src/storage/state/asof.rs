//! Reads as of a point in the log: the state as it stood when the ingest cursor was `end`, that
//! is, with only the records journaled below `end` applied.
//!
//! Nothing is replayed. An assertion counts if its record lies below `end`; it was a head then
//! unless a child journaled below `end` supersedes it (the supersession edges and the children's
//! offsets say so). A voter's live vote then is its live row if that was journaled below `end`,
//! else the last of its replaced votes below `end` (`vote_history`); trust likewise. The cost
//! is that of reading the pair's entries, their children, and the live votes (plus the history
//! of those replaced since `end`) of the candidates: bounded by the pair, never by the log.

use heed::RoTxn;

use super::layout::{
    PairId, Section, decode_summary, decode_trust, decode_vote, decode_vote_weight, history_key_offset,
    record_value_offset, section_prefix, split_pair_key, vote_key,
};
use super::read::{HeadSummary, LIST_LIMIT_MAX, offset_of};
use super::{Databases, StateError, StoredTrust};
use crate::protocol::{AgentId, HASH_LEN, Hash};

/// The entries of `pair` as of `end`: the heads then, and with `history` those superseded then,
/// each part oldest first; at most `limit`.
pub(super) fn entries_as_of(
    txn: &RoTxn<'_>,
    dbs: &Databases,
    pair: &PairId,
    end: u64,
    history: bool,
    limit: usize,
) -> Result<Vec<HeadSummary>, StateError> {
    let limit = limit.min(LIST_LIMIT_MAX);
    let (mut heads, mut superseded) = (Vec::new(), Vec::new());
    for section in [Section::Head, Section::Superseded] {
        let iter = dbs
            .pairs
            .prefix_iter(txn, &section_prefix(pair, section))
            .map_err(StateError::lmdb("scan pairs"))?;
        for entry in iter {
            let (key, value) = entry.map_err(StateError::lmdb("scan pairs"))?;
            let key = split_pair_key(key).ok_or_else(|| StateError::corrupt("pairs key", "malformed"))?;
            let summary = decode_summary(value)?;
            if summary.offset >= end {
                continue;
            }
            let entry = HeadSummary {
                hash: key.hash,
                timestamp_ms: key.timestamp_ms,
                summary,
            };
            if section == Section::Superseded && superseded_before(txn, dbs, &key.hash, end)? {
                superseded.push(entry);
            } else {
                heads.push(entry);
            }
        }
    }
    // A head of now that was a head then comes before one superseded since: order by time.
    heads.sort_by_key(|h| (h.timestamp_ms, h.hash));
    superseded.sort_by_key(|h| (h.timestamp_ms, h.hash));
    if history {
        heads.extend(superseded);
    }
    heads.truncate(limit);
    Ok(heads)
}

/// Returns true if and only if a child journaled below `end` supersedes `parent`.
fn superseded_before(txn: &RoTxn<'_>, dbs: &Databases, parent: &Hash, end: u64) -> Result<bool, StateError> {
    let iter = dbs
        .supersession
        .prefix_iter(txn, parent.as_bytes())
        .map_err(StateError::lmdb("scan supersession"))?;
    for entry in iter {
        let (key, _) = entry.map_err(StateError::lmdb("scan supersession"))?;
        let child: [u8; HASH_LEN] = key
            .get(HASH_LEN..)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| StateError::corrupt("supersession key", "not parent and child"))?;
        if offset_of(txn, dbs, &Hash::from_bytes(child))?.is_some_and(|offset| offset < end) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// (voter, weight) of each vote on `assertion` that was live as of `end`.
pub(super) fn vote_weights_as_of(
    txn: &RoTxn<'_>,
    dbs: &Databases,
    assertion: &Hash,
    end: u64,
    limit: usize,
) -> Result<Vec<(AgentId, f32)>, StateError> {
    let iter = dbs
        .votes
        .prefix_iter(txn, assertion.as_bytes())
        .map_err(StateError::lmdb("scan votes"))?;
    let mut out = Vec::new();
    for entry in iter {
        if out.len() == limit {
            break;
        }
        let (key, value) = entry.map_err(StateError::lmdb("scan votes"))?;
        let (voter, weight) = decode_vote_weight(key, value)?;
        if record_value_offset(value)? < end {
            out.push((voter, weight));
            continue;
        }
        // Replaced since: the last replaced vote below `end`, if the voter had one then.
        let prefix = vote_key(assertion, &voter);
        if let Some(earlier) = last_history_below(txn, dbs.vote_history, &prefix, end)? {
            out.push((voter, decode_vote(&earlier)?.vote.weight));
        }
    }
    Ok(out)
}

/// `agent`'s applied trust change as of `end`.
pub(super) fn trust_as_of(
    txn: &RoTxn<'_>,
    dbs: &Databases,
    agent: &AgentId,
    end: u64,
) -> Result<Option<StoredTrust>, StateError> {
    if let Some(live) = super::trust::get_trust(txn, dbs, agent)?
        && live.offset < end
    {
        return Ok(Some(live));
    }
    last_history_below(txn, dbs.trust_history, agent.as_bytes(), end)?
        .map(|value| decode_trust(&value))
        .transpose()
}

/// The value of the last history entry under `prefix` whose offset lies below `end`.
fn last_history_below(txn: &RoTxn<'_>, db: super::Db, prefix: &[u8], end: u64) -> Result<Option<Vec<u8>>, StateError> {
    let mut last = None;
    for entry in db
        .prefix_iter(txn, prefix)
        .map_err(StateError::lmdb("scan history"))?
    {
        let (key, value) = entry.map_err(StateError::lmdb("scan history"))?;
        if history_key_offset(key)? >= end {
            break;
        }
        last = Some(value.to_vec());
    }
    Ok(last)
}

/// The ingest cursor the state had reached at wall-clock `ms`: 0 if nothing was applied by
/// then.
pub(super) fn end_at_time(txn: &RoTxn<'_>, dbs: &Databases, ms: u64) -> Result<u64, StateError> {
    use std::ops::Bound;
    let upper = super::layout::ingest_time_key(ms, u64::MAX);
    let range = (Bound::Unbounded, Bound::Included(&upper[..]));
    let last = dbs
        .ingest_times
        .rev_range(txn, &range)
        .map_err(StateError::lmdb("scan ingest times"))?
        .next()
        .transpose()
        .map_err(StateError::lmdb("scan ingest times"))?;
    match last {
        Some((key, _)) => history_key_offset(key),
        None => Ok(0),
    }
}

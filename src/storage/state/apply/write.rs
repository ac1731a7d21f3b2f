//! The writes of a commit: a planned assertion's rows, and the shards' tallies.

use heed::{PutFlags, RwTxn};

use super::super::layout::{
    Section, Summary, encode_assertion, encode_summary, encode_totals, encode_vote, offset_key, pair_key,
    supersession_key, vote_history_key, vote_key,
};
use super::super::votes::Tally;
use super::super::{Databases, StateError};
use super::Store;

/// Stores an assertion: its record, its `pairs` entry as a head, and, for a successor, the
/// supersession edge and its parent's move out of the heads.
pub(super) fn store(txn: &mut RwTxn<'_>, dbs: &Databases, step: &Store) -> Result<(), StateError> {
    let Store {
        offset,
        hash,
        assertion,
        body,
        pair,
        parent_timestamp_ms,
    } = step;
    let (offset, parent_timestamp_ms) = (*offset, *parent_timestamp_ms);
    // Offsets only grow, batch after batch: every record goes at the right edge of the tree.
    dbs.assertion_records
        .put_with_flags(txn, PutFlags::APPEND, &offset_key(offset), &encode_assertion(pair, body))
        .map_err(StateError::lmdb("store assertion record"))?;
    dbs.assertion_hashes
        .put(txn, hash.as_bytes(), &offset_key(offset))
        .map_err(StateError::lmdb("store assertion hash"))?;
    dbs.pairs
        .put(
            txn,
            &pair_key(pair, Section::Head, assertion.timestamp_ms, hash),
            &encode_summary(&Summary::of(assertion, offset)),
        )
        .map_err(StateError::lmdb("store pairs entry"))?;
    if let (Some(parent), Some(parent_ts)) = (&assertion.parent, parent_timestamp_ms) {
        dbs.supersession
            .put(txn, &supersession_key(parent, hash), &[])
            .map_err(StateError::lmdb("store supersession"))?;
        let head = pair_key(pair, Section::Head, parent_ts, parent);
        let summary = dbs
            .pairs
            .get(txn, &head)
            .map_err(StateError::lmdb("read pairs entry"))?
            .map(<[u8]>::to_vec);
        // An earlier successor may have moved it already.
        if let Some(summary) = summary {
            dbs.pairs
                .delete(txn, &head)
                .map_err(StateError::lmdb("move parent out of heads"))?;
            dbs.pairs
                .put(txn, &pair_key(pair, Section::Superseded, parent_ts, parent), &summary)
                .map_err(StateError::lmdb("move parent out of heads"))?;
        }
    }
    Ok(())
}

pub(super) fn write_tally(txn: &mut RwTxn<'_>, dbs: &Databases, tally: &Tally) -> Result<(), StateError> {
    for row in &tally.replaced {
        dbs.vote_history
            .put(
                txn,
                &vote_history_key(&row.vote.assertion, &row.vote.voter, row.offset),
                &encode_vote(row),
            )
            .map_err(StateError::lmdb("store vote history"))?;
    }
    for row in &tally.rows {
        dbs.votes
            .put(
                txn,
                &vote_key(&row.vote.assertion, &row.vote.voter),
                &encode_vote(row),
            )
            .map_err(StateError::lmdb("store vote"))?;
    }
    for (assertion, totals) in &tally.totals {
        dbs.vote_totals
            .put(txn, assertion.as_bytes(), &encode_totals(totals))
            .map_err(StateError::lmdb("store vote totals"))?;
    }
    Ok(())
}

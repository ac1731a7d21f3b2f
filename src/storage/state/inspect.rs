//! [`StateDump`]: every row of the state, for consistency checks and inspection tools.

use super::layout::{
    PairKey, Summary, decode_assertion, decode_offset, decode_rejection, decode_summary, decode_trust, decode_vote, hash_at,
    split_pair_key,
};
use super::read::record_at;
use super::rejection::Rejection;
use super::{State, StateError, StoredAssertion, StoredTrust, StoredVote, VoteTotals};
use crate::protocol::{HASH_LEN, Hash};

/// Every row of the state. Loads the whole database into memory: meant for tests, audits and
/// inspection tools on small or medium stores, not for serving queries.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StateDump {
    /// Every stored assertion, by hash order.
    pub assertions: Vec<StoredAssertion>,
    /// Every `pairs` entry: its key, decoded, and its summary.
    pub pairs: Vec<(PairKey, Summary)>,
    /// Every supersession edge, as (parent, child).
    pub supersession: Vec<(Hash, Hash)>,
    /// Every live vote, by (assertion, voter).
    pub votes: Vec<StoredVote>,
    /// Every vote total, by assertion.
    pub vote_totals: Vec<(Hash, VoteTotals)>,
    /// Every applied trust change, by agent.
    pub trust: Vec<StoredTrust>,
    /// Every rejection, by offset.
    pub rejected: Vec<Rejection>,
    /// The ingest cursor.
    pub ingest_cursor: u64,
}

impl State {
    /// Reads every row (see [`StateDump`]) in one read transaction.
    pub fn dump(&self) -> Result<StateDump, StateError> {
        self.read(|txn, dbs| {
            let mut dump = StateDump {
                ingest_cursor: super::apply::read_cursor(txn, dbs)?,
                ..StateDump::default()
            };
            for entry in dbs
                .assertion_hashes
                .iter(txn)
                .map_err(StateError::lmdb("scan for dump"))?
            {
                let (key, value) = entry.map_err(StateError::lmdb("scan for dump"))?;
                let hash = hash_at(key, 0, "assertion hash key")?;
                let offset = decode_offset(value)?;
                let assertion = decode_assertion(record_at(txn, dbs, &hash, offset)?)?;
                dump.assertions.push(StoredAssertion {
                    hash,
                    offset,
                    assertion,
                });
            }
            let records = dbs
                .assertion_records
                .len(txn)
                .map_err(StateError::lmdb("count for dump"))?;
            if records != dump.assertions.len() as u64 {
                return Err(StateError::corrupt(
                    "assertion_records",
                    format!("{records} records for {} hashes", dump.assertions.len()),
                ));
            }
            for entry in dbs.pairs.iter(txn).map_err(StateError::lmdb("scan for dump"))? {
                let (key, value) = entry.map_err(StateError::lmdb("scan for dump"))?;
                let key = split_pair_key(key).ok_or_else(|| StateError::corrupt("pairs key", "malformed"))?;
                dump.pairs.push((key, decode_summary(value)?));
            }
            for entry in dbs
                .supersession
                .iter(txn)
                .map_err(StateError::lmdb("scan for dump"))?
            {
                let (key, _) = entry.map_err(StateError::lmdb("scan for dump"))?;
                let edge = (
                    hash_at(key, 0, "supersession key")?,
                    hash_at(key, HASH_LEN, "supersession key")?,
                );
                dump.supersession.push(edge);
            }
            for entry in dbs.votes.iter(txn).map_err(StateError::lmdb("scan for dump"))? {
                let (_, value) = entry.map_err(StateError::lmdb("scan for dump"))?;
                dump.votes.push(decode_vote(value)?);
            }
            for entry in dbs
                .vote_totals
                .iter(txn)
                .map_err(StateError::lmdb("scan for dump"))?
            {
                let (key, _) = entry.map_err(StateError::lmdb("scan for dump"))?;
                let hash = hash_at(key, 0, "vote totals key")?;
                dump.vote_totals
                    .push((hash, super::votes::get_totals(txn, dbs, &hash)?));
            }
            for entry in dbs.trust.iter(txn).map_err(StateError::lmdb("scan for dump"))? {
                let (_, value) = entry.map_err(StateError::lmdb("scan for dump"))?;
                dump.trust.push(decode_trust(value)?);
            }
            for entry in dbs
                .rejected
                .iter(txn)
                .map_err(StateError::lmdb("scan for dump"))?
            {
                let (_, value) = entry.map_err(StateError::lmdb("scan for dump"))?;
                dump.rejected
                    .push(decode_rejection(value)?);
            }
            Ok(dump)
        })
    }
}

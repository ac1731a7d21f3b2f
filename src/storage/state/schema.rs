//! Schema versions: what [`State::open_with`] does with a state written by an older build.
//!
//! - **3** (this build): the [`layout`](super::layout) with `pairs` (heads, history and
//!   summaries), and records appended by offset with a hash index.
//! - **2**: `by_subject` and `by_subject_predicate` indexes with empty values, no heads; trust
//!   rows are journaled trust changes.
//! - **1**: as 2, but trust rows were bare factors written outside the journal.
//!
//! An older state is never changed behind the caller's back. Opening it reports
//! [`Outdated`] to the caller's decision, which answers one of:
//! - [`Upgrade::Rebuild`]: empty every database; the ingestor then replays the journal from
//!   offset 0. Right when the journal still holds every record from 0 on: the rebuilt state is
//!   exactly what this build would have written.
//! - [`Upgrade::Convert`]: rewrite the old databases in place, in one transaction (`stemedb state
//!   convert`): every assertion moves to the records by offset, with its hash entry and its
//!   `pairs` entry, head or superseded as the supersession edges say; the old databases are
//!   emptied. Votes, totals, rejections and the
//!   cursor are kept as they are. Trust rows of version 1 are dropped (no replay could
//!   reproduce them).
//! - [`Upgrade::Refuse`]: change nothing and fail with [`StateError::SchemaOutdated`].

use heed::types::Bytes;
use heed::{CommitOrAbort, Env, RwTxn, WithoutTls};

use super::layout::{
    DB_ASSERTION_HASHES, DB_ASSERTION_RECORDS, DB_META, DB_PAIRS, DB_REJECTED, DB_SUPERSESSION, DB_CHECKPOINTS, DB_EVIDENCE, DB_LEARNED, DB_INGEST_TIMES, DB_LEAF_INDEX, DB_MAP_LEAVES, DB_MAP_NODES, DB_TREE, DB_TRUST, DB_TRUST_HISTORY, DB_V2_ASSERTIONS, DB_V2_INDEXES, DB_VOTE_HISTORY, DB_VOTE_TOTALS, DB_VOTES,
    META_INGEST_CURSOR, META_SCHEMA_VERSION, PairId, Section, Summary, decode_u64, encode_assertion, encode_summary, offset_key,
    pair_key_of,
};
use super::{Databases, Db, StateError};
use crate::protocol::{Assertion, HASH_LEN, Hash};

/// Version of the state layout (drawn in `storage/state/layout/`); stored in `meta` and checked
/// at open.
pub const SCHEMA_VERSION: u32 = 3;
/// The oldest version this build converts.
pub const SCHEMA_VERSION_OLDEST: u32 = 1;
/// Version 1: trust rows written outside the journal.
const SCHEMA_VERSION_UNJOURNALED_TRUST: u32 = 1;
/// Assertions converted per read of the old `assertions` database during a conversion.
const CONVERT_CHUNK: usize = 1024;

/// An existing state of an older schema version, as found at open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outdated {
    /// Its schema version.
    pub found: u32,
    /// Its ingest cursor: every journal record below it is applied.
    pub cursor: u64,
}

/// What to do with an [`Outdated`] state; see the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upgrade {
    /// Change nothing; fail with [`StateError::SchemaOutdated`].
    #[cfg_attr(not(feature = "test-kit"), allow(dead_code, reason = "State::open refuses"))]
    Refuse,
    /// Empty the state, to be rebuilt from the journal.
    Rebuild,
    /// Convert the databases in place.
    Convert,
}

/// What opening found: a new or current state, or an older one.
pub(super) enum Found {
    /// No state yet, or one of [`SCHEMA_VERSION`].
    Current,
    /// An older state.
    Outdated(Outdated),
}

/// Reads the schema version and cursor without creating or changing anything.
pub(super) fn inspect(env: &Env<WithoutTls>) -> Result<Found, StateError> {
    let rtxn = env.read_txn().map_err(StateError::lmdb("begin read"))?;
    let meta = env
        .open_databases_and_commit(rtxn, |opener, rtxn| {
            opener
                .open_database::<Bytes, Bytes>(rtxn, Some(DB_META))
                .map(CommitOrAbort::<_, ()>::Commit)
        })
        .map_err(StateError::lmdb("open meta"))?
        .unwrap_commit();
    let Some(meta) = meta else {
        return Ok(Found::Current);
    };
    let rtxn = env.read_txn().map_err(StateError::lmdb("begin read"))?;
    let Some(version) = meta
        .get(&rtxn, META_SCHEMA_VERSION)
        .map_err(StateError::lmdb("read meta"))?
    else {
        return Ok(Found::Current);
    };
    let found = u32::from_be_bytes(
        version
            .try_into()
            .map_err(|_| StateError::corrupt("schema version", "not 4 bytes"))?,
    );
    let cursor = match meta
        .get(&rtxn, META_INGEST_CURSOR)
        .map_err(StateError::lmdb("read ingest cursor"))?
    {
        Some(bytes) => decode_u64("ingest cursor", bytes)?,
        None => 0,
    };
    match found {
        SCHEMA_VERSION => Ok(Found::Current),
        SCHEMA_VERSION_OLDEST..SCHEMA_VERSION => Ok(Found::Outdated(Outdated { found, cursor })),
        _ => Err(StateError::SchemaVersion {
            found,
            expected: SCHEMA_VERSION,
        }),
    }
}

/// The databases of schema 2 that schema 3 replaced, where they exist.
pub(super) struct Legacy {
    /// Records by hash.
    assertions: Option<Db>,
    /// `by_subject` and `by_subject_predicate`.
    indexes: Vec<Db>,
}

impl Legacy {
    fn all(&self) -> impl Iterator<Item = Db> + '_ {
        self.assertions.iter().chain(&self.indexes).copied()
    }
}

/// Creates (or opens) the databases of this schema, and the legacy databases of schema 2 that
/// exist, in one committed transaction.
pub(super) fn create_databases(env: &Env<WithoutTls>) -> Result<(Databases, Legacy), StateError> {
    let txn = env.write_txn().map_err(StateError::lmdb("begin write"))?;
    let (current, legacy) = env
        .create_databases_and_commit(txn, |opener, txn| {
            let mut create = |name| opener.create_database::<Bytes, Bytes>(txn, Some(name));
            let current = [
                create(DB_ASSERTION_RECORDS)?,
                create(DB_ASSERTION_HASHES)?,
                create(DB_PAIRS)?,
                create(DB_SUPERSESSION)?,
                create(DB_REJECTED)?,
                create(DB_META)?,
                create(DB_VOTES)?,
                create(DB_VOTE_TOTALS)?,
                create(DB_TRUST)?,
                create(DB_VOTE_HISTORY)?,
                create(DB_TRUST_HISTORY)?,
                create(DB_INGEST_TIMES)?,
                create(DB_TREE)?,
                create(DB_LEAF_INDEX)?,
                create(DB_CHECKPOINTS)?,
                create(DB_MAP_LEAVES)?,
                create(DB_MAP_NODES)?,
                create(DB_EVIDENCE)?,
                create(DB_LEARNED)?,
            ];
            let [first, second] = DB_V2_INDEXES;
            let legacy = [
                opener.open_database::<Bytes, Bytes>(txn, Some(DB_V2_ASSERTIONS))?,
                opener.open_database::<Bytes, Bytes>(txn, Some(first))?,
                opener.open_database::<Bytes, Bytes>(txn, Some(second))?,
            ];
            Ok::<_, heed::Error>(CommitOrAbort::<_, ()>::Commit((current, legacy)))
        })
        .map_err(StateError::lmdb("create databases"))?
        .unwrap_commit();
    let [
        assertion_records,
        assertion_hashes,
        pairs,
        supersession,
        rejected,
        meta,
        votes,
        vote_totals,
        trust,
        vote_history,
        trust_history,
        ingest_times,
        tree,
        leaf_index,
        checkpoints,
        map_leaves,
        map_nodes,
        evidence,
        learned,
    ] = current;
    let [assertions, first, second] = legacy;
    let legacy = Legacy {
        assertions,
        indexes: [first, second].into_iter().flatten().collect(),
    };
    let dbs = Databases {
        assertion_records,
        assertion_hashes,
        pairs,
        supersession,
        rejected,
        meta,
        votes,
        vote_totals,
        trust,
        vote_history,
        trust_history,
        ingest_times,
        tree,
        leaf_index,
        checkpoints,
        map_leaves,
        map_nodes,
        evidence,
        learned,
    };
    Ok((dbs, legacy))
}

/// Writes the schema version of a new state.
pub(super) fn stamp(txn: &mut RwTxn<'_>, dbs: &Databases) -> Result<(), StateError> {
    dbs.meta
        .put(txn, META_SCHEMA_VERSION, &SCHEMA_VERSION.to_be_bytes())
        .map_err(StateError::lmdb("write meta"))
}

/// Empties every database and removes the legacy ones, then stamps this version: the
/// ingestor rebuilds the state from journal offset 0.
pub(super) fn rebuild(txn: &mut RwTxn<'_>, dbs: &Databases, legacy: &Legacy) -> Result<(), StateError> {
    for db in dbs.all().into_iter().chain(legacy.all()) {
        db.clear(txn).map_err(StateError::lmdb("clear database"))?;
    }
    stamp(txn, dbs)
}

/// Converts a state of version `found` in place; see the module docs.
pub(super) fn convert(txn: &mut RwTxn<'_>, dbs: &Databases, legacy: &Legacy, found: u32) -> Result<(), StateError> {
    if found == SCHEMA_VERSION_UNJOURNALED_TRUST {
        let dropped = dbs.trust.len(txn).map_err(StateError::lmdb("count trust"))?;
        dbs.trust.clear(txn).map_err(StateError::lmdb("clear trust"))?;
        if dropped > 0 {
            tracing::warn!(
                dropped,
                "trust factors set outside the journal were dropped; re-issue them as trust changes"
            );
        }
    }
    // A crash before the commit leaves version 2 and nothing of this; start clean anyway.
    for db in [dbs.pairs, dbs.assertion_records, dbs.assertion_hashes] {
        db.clear(txn).map_err(StateError::lmdb("clear new database"))?;
    }
    let Some(v2_assertions) = legacy.assertions else {
        return finish_conversion(txn, dbs, legacy, found, 0);
    };
    let mut after: Option<[u8; HASH_LEN]> = None;
    let mut converted = 0u64;
    loop {
        let chunk = read_v2_chunk(txn, v2_assertions, after.as_ref())?;
        let Some((last, _)) = chunk.last() else { break };
        after = Some(*last);
        for (hash, value) in &chunk {
            let hash = Hash::from_bytes(*hash);
            let (offset, record) = value
                .split_first_chunk::<8>()
                .ok_or_else(|| StateError::corrupt("assertion", "shorter than its offset"))?;
            let offset = u64::from_be_bytes(*offset);
            let assertion =
                Assertion::from_record_bytes(record).map_err(|e| StateError::corrupt("assertion", e))?;
            let superseded = dbs
                .supersession
                .prefix_iter(txn, hash.as_bytes())
                .map_err(StateError::lmdb("scan supersession"))?
                .next()
                .is_some();
            let section = if superseded { Section::Superseded } else { Section::Head };
            dbs.pairs
                .put(
                    txn,
                    &pair_key_of(&assertion, &hash, section),
                    &encode_summary(&Summary::of(&assertion, offset)),
                )
                .map_err(StateError::lmdb("convert pairs"))?;
            let pair = PairId::of_assertion(&assertion);
            dbs.assertion_records
                .put(txn, &offset_key(offset), &encode_assertion(&pair, record))
                .map_err(StateError::lmdb("convert assertion"))?;
            dbs.assertion_hashes
                .put(txn, hash.as_bytes(), &offset_key(offset))
                .map_err(StateError::lmdb("convert assertion"))?;
            converted += 1;
        }
    }
    finish_conversion(txn, dbs, legacy, found, converted)
}

/// Empties the legacy databases and stamps this version.
fn finish_conversion(
    txn: &mut RwTxn<'_>,
    dbs: &Databases,
    legacy: &Legacy,
    found: u32,
    converted: u64,
) -> Result<(), StateError> {
    for db in legacy.all() {
        db.clear(txn).map_err(StateError::lmdb("clear legacy database"))?;
    }
    tracing::info!(from = found, to = SCHEMA_VERSION, converted, "state converted in place");
    stamp(txn, dbs)
}

/// A schema 2 `assertions` row: hash, then offset and record.
type V2Row = ([u8; HASH_LEN], Vec<u8>);

/// Reads up to [`CONVERT_CHUNK`] old `assertions` rows after `after`, copied out so that the
/// caller may write to the database.
fn read_v2_chunk(txn: &RwTxn<'_>, v2_assertions: Db, after: Option<&[u8; HASH_LEN]>) -> Result<Vec<V2Row>, StateError> {
    use std::ops::Bound;
    let start = after.map_or(Bound::Unbounded, |a| Bound::Excluded(&a[..]));
    let range = (start, Bound::Unbounded);
    let mut out = Vec::with_capacity(CONVERT_CHUNK);
    for entry in v2_assertions
        .range(txn, &range)
        .map_err(StateError::lmdb("scan assertions"))?
        .take(CONVERT_CHUNK)
    {
        let (key, value) = entry.map_err(StateError::lmdb("scan assertions"))?;
        let key: [u8; HASH_LEN] = key
            .try_into()
            .map_err(|_| StateError::corrupt("assertion key", "not 32 bytes"))?;
        out.push((key, value.to_vec()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::super::{State, StateConfig, StateError};
    use super::*;
    use crate::protocol::AgentKey;

    /// A version 1 state held bare trust factors written outside the journal. Opening it
    /// changes nothing and says so; converting it drops them (no replay could reproduce them)
    /// and marks it with this version.
    #[test]
    fn a_version_1_state_is_refused_unchanged_then_converted_without_its_unjournaled_trust() {
        let dir = tempfile::TempDir::new().unwrap();
        let agent = AgentKey::from_secret_bytes(&[5; 32]).agent_id();
        let state = State::open(dir.path(), StateConfig::default()).unwrap();
        state
            .write(|txn, dbs| {
                let put = |txn: &mut heed::RwTxn<'_>, db: Db, k: &[u8], v: &[u8]| {
                    db.put(txn, k, v).map_err(StateError::lmdb("test put"))
                };
                put(txn, dbs.meta, META_SCHEMA_VERSION, &1u32.to_be_bytes())?;
                put(txn, dbs.trust, agent.as_bytes(), &3.0f32.to_bits().to_be_bytes())
            })
            .unwrap();
        state.close();
        let refused = State::open(dir.path(), StateConfig::default()).unwrap_err();
        assert!(
            matches!(refused, StateError::SchemaOutdated { found: 1, expected: SCHEMA_VERSION }),
            "{refused:?}"
        );
        let state = State::open_with(dir.path(), StateConfig::default(), |outdated| {
            assert_eq!(outdated, Outdated { found: 1, cursor: 0 });
            Ok::<_, StateError>(Upgrade::Convert)
        })
        .unwrap();
        let (trust, version) = state
            .read(|txn, dbs| {
                let trust = dbs.trust.get(txn, agent.as_bytes()).unwrap().map(<[u8]>::to_vec);
                let version = dbs.meta.get(txn, META_SCHEMA_VERSION).unwrap().map(<[u8]>::to_vec);
                Ok((trust, version))
            })
            .unwrap();
        assert_eq!(trust, None, "the unjournaled factor is dropped");
        assert_eq!(version, Some(SCHEMA_VERSION.to_be_bytes().to_vec()));
    }
}

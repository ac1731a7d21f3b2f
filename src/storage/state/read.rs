//! Queries of the state: by hash, by subject, by (subject, predicate), heads or history.
//!
//! Every query runs in one short read transaction and does bounded work: a list returns at
//! most `limit` assertions (at most [`LIST_LIMIT_MAX`]) and examines at most
//! [`LIST_SCAN_FACTOR`] `pairs` entries per requested one; a page that stops early carries a
//! cursor to continue from. Listing heads reads only the heads section of each pair: the
//! superseded entries of a pair are skipped with one seek, not one by one.

use std::ops::Bound;

use heed::RoTxn;

use super::layout::{
    PAIR_KEY_BYTES, PairId, PairKey, Section, Summary, decode_assertion, decode_offset, offset_key, decode_rejection,
    decode_summary, hash_at, rejected_key, section_prefix, split_pair_key, subject_digest,
};
use super::rejection::Rejection;
use super::{Databases, State, StateError};
use crate::protocol::{Assertion, HASH_LEN, Hash};

/// Most assertions one list query returns: bounds the memory and time of one call.
pub const LIST_LIMIT_MAX: usize = 10_000;
/// `pairs` entries (and seeks past a pair's superseded entries) a list may make per assertion
/// requested: bounds the work of one call, however long the history.
pub const LIST_SCAN_FACTOR: usize = 16;

/// A stored assertion with where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredAssertion {
    /// Its content hash.
    pub hash: Hash,
    /// The journal offset of the record that brought it.
    pub offset: u64,
    /// The assertion.
    pub assertion: Assertion,
}

/// A position in a listing: continue after this `pairs` entry. Opaque; it round-trips through
/// [`as_bytes`](Self::as_bytes) and [`from_bytes`](Self::from_bytes) (or hex, for URLs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListCursor {
    key: [u8; PAIR_KEY_BYTES],
}

impl ListCursor {
    /// Returns its bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.key
    }

    /// Reads a cursor from bytes made by [`as_bytes`](Self::as_bytes); `None` if they are not one.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        split_pair_key(bytes)?;
        Some(Self {
            key: bytes.try_into().ok()?,
        })
    }
}

/// A head of a pair as the `pairs` index holds it: no record decoded.
#[derive(Debug, Clone, PartialEq)]
pub struct HeadSummary {
    /// The assertion's content hash.
    pub hash: Hash,
    /// Its timestamp.
    pub timestamp_ms: u64,
    /// Offset, confidence, lifecycle and signers.
    pub summary: Summary,
}

/// A listing request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListQuery {
    /// The subject.
    pub subject: String,
    /// Only this predicate, if given.
    pub predicate: Option<String>,
    /// Include superseded assertions (the full history) rather than heads only.
    pub history: bool,
    /// Most assertions to return; 1..=[`LIST_LIMIT_MAX`] (larger values are clamped).
    pub limit: usize,
    /// Continue after this position (from a previous page's `next`).
    pub after: Option<ListCursor>,
}

impl ListQuery {
    /// Heads of `subject`, first page of up to 100.
    pub fn subject(subject: impl Into<String>) -> Self {
        Self {
            subject: subject.into(),
            predicate: None,
            history: false,
            limit: 100,
            after: None,
        }
    }

    /// Heads of (`subject`, `predicate`), first page of up to 100.
    pub fn pair(subject: impl Into<String>, predicate: impl Into<String>) -> Self {
        Self {
            predicate: Some(predicate.into()),
            ..Self::subject(subject)
        }
    }
}

/// One page of a listing. A pair's entries come heads first, then (with `history`) its
/// superseded ones, each part ordered by timestamp, then hash; a subject's pairs come in the
/// order of their predicate digests.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ListPage {
    /// The assertions.
    pub assertions: Vec<StoredAssertion>,
    /// Where the next page starts, if there may be more.
    pub next: Option<ListCursor>,
}

impl State {
    /// Returns the assertion with content hash `hash`, if stored.
    pub fn get(&self, hash: &Hash) -> Result<Option<StoredAssertion>, StateError> {
        self.read(|txn, dbs| get_in(txn, dbs, hash))
    }

    /// Lists assertions of a subject or a (subject, predicate) pair; see [`ListQuery`].
    pub fn list(&self, query: &ListQuery) -> Result<ListPage, StateError> {
        self.read(|txn, dbs| list_in(txn, dbs, query))
    }

    /// Returns up to `limit` (at most [`LIST_LIMIT_MAX`]) heads of (`subject`, `predicate`)
    /// from the `pairs` index alone, oldest first: what a lens scores, without decoding a
    /// record. Names are not compared (see [`PairId`]); [`list`](Self::list) compares them.
    pub fn heads(&self, subject: &str, predicate: &str, limit: usize) -> Result<Vec<HeadSummary>, StateError> {
        self.read(|txn, dbs| heads_in(txn, dbs, &PairId::of(subject, predicate), limit))
    }

    /// Returns up to `limit` (at most [`LIST_LIMIT_MAX`]) assertions that supersede `hash`,
    /// by hash; empty for a head.
    pub fn successors(&self, hash: &Hash, limit: usize) -> Result<Vec<Hash>, StateError> {
        self.read(|txn, dbs| {
            let mut out = Vec::new();
            let iter = dbs
                .supersession
                .prefix_iter(txn, hash.as_bytes())
                .map_err(StateError::lmdb("scan supersession"))?;
            for entry in iter.take(limit.min(LIST_LIMIT_MAX)) {
                let (key, _) = entry.map_err(StateError::lmdb("scan supersession"))?;
                out.push(hash_at(key, HASH_LEN, "supersession key")?);
            }
            Ok(out)
        })
    }

    /// Returns the rejection stored for the record at journal `offset`, if any.
    pub fn rejection(&self, offset: u64) -> Result<Option<Rejection>, StateError> {
        self.read(|txn, dbs| {
            dbs.rejected
                .get(txn, &rejected_key(offset))
                .map_err(StateError::lmdb("read rejection"))?
                .map(decode_rejection)
                .transpose()
        })
    }

    /// Returns up to `limit` rejections at journal offsets from `from` on, in offset order.
    pub fn rejections(&self, from: u64, limit: usize) -> Result<Vec<Rejection>, StateError> {
        self.read(|txn, dbs| {
            let start = rejected_key(from);
            let range = (Bound::Included(&start[..]), Bound::Unbounded);
            let iter = dbs
                .rejected
                .range(txn, &range)
                .map_err(StateError::lmdb("scan rejections"))?;
            let mut out = Vec::new();
            for entry in iter.take(limit.min(LIST_LIMIT_MAX)) {
                let (_, value) = entry.map_err(StateError::lmdb("scan rejections"))?;
                out.push(decode_rejection(value)?);
            }
            Ok(out)
        })
    }

    /// Returns (stored assertions, stored rejections).
    pub fn counts(&self) -> Result<(u64, u64), StateError> {
        self.read(|txn, dbs| {
            let assertions = dbs.assertion_hashes.len(txn).map_err(StateError::lmdb("count"))?;
            let rejected = dbs.rejected.len(txn).map_err(StateError::lmdb("count"))?;
            Ok((assertions, rejected))
        })
    }
}

pub(super) fn get_in(
    txn: &RoTxn<'_>,
    dbs: &Databases,
    hash: &Hash,
) -> Result<Option<StoredAssertion>, StateError> {
    let Some(offset) = offset_of(txn, dbs, hash)? else {
        return Ok(None);
    };
    let assertion = decode_assertion(record_at(txn, dbs, hash, offset)?)?;
    Ok(Some(StoredAssertion {
        hash: *hash,
        offset,
        assertion,
    }))
}

/// Returns the journal offset of the stored assertion `hash`, if it is stored.
pub(super) fn offset_of(txn: &RoTxn<'_>, dbs: &Databases, hash: &Hash) -> Result<Option<u64>, StateError> {
    dbs.assertion_hashes
        .get(txn, hash.as_bytes())
        .map_err(StateError::lmdb("read assertion hash"))?
        .map(decode_offset)
        .transpose()
}

/// Returns the `assertion_records` value of assertion `hash`, stored at `offset`.
pub(super) fn record_at<'t>(
    txn: &'t RoTxn<'_>,
    dbs: &Databases,
    hash: &Hash,
    offset: u64,
) -> Result<&'t [u8], StateError> {
    dbs.assertion_records
        .get(txn, &offset_key(offset))
        .map_err(StateError::lmdb("read assertion record"))?
        .ok_or_else(|| StateError::corrupt("assertion_hashes", format!("{hash} points to no record at {offset}")))
}


pub(super) fn heads_in(
    txn: &RoTxn<'_>,
    dbs: &Databases,
    pair: &PairId,
    limit: usize,
) -> Result<Vec<HeadSummary>, StateError> {
    entries_in(txn, dbs, pair, false, limit)
}

/// Up to `limit` (at most [`LIST_LIMIT_MAX`]) `pairs` entries of `pair`: its heads, then, with
/// `history`, its superseded entries, each part oldest first.
pub(super) fn entries_in(
    txn: &RoTxn<'_>,
    dbs: &Databases,
    pair: &PairId,
    history: bool,
    limit: usize,
) -> Result<Vec<HeadSummary>, StateError> {
    let limit = limit.min(LIST_LIMIT_MAX);
    let mut out = Vec::new();
    let sections: &[Section] = if history {
        &[Section::Head, Section::Superseded]
    } else {
        &[Section::Head]
    };
    for section in sections {
        let iter = dbs
            .pairs
            .prefix_iter(txn, &section_prefix(pair, *section))
            .map_err(StateError::lmdb("scan pairs"))?;
        for entry in iter.take(limit - out.len()) {
            let (key, value) = entry.map_err(StateError::lmdb("scan pairs"))?;
            let key = split_pair_key(key).ok_or_else(|| StateError::corrupt("pairs key", "malformed"))?;
            out.push(HeadSummary {
                hash: key.hash,
                timestamp_ms: key.timestamp_ms,
                summary: decode_summary(value)?,
            });
        }
    }
    Ok(out)
}

pub(super) fn list_in(txn: &RoTxn<'_>, dbs: &Databases, query: &ListQuery) -> Result<ListPage, StateError> {
    let limit = query.limit.clamp(1, LIST_LIMIT_MAX);
    let prefix: Vec<u8> = match &query.predicate {
        Some(predicate) => PairId::of(&query.subject, predicate).as_bytes().to_vec(),
        None => subject_digest(&query.subject).to_vec(),
    };
    if let Some(after) = &query.after
        && !after.key.starts_with(&prefix)
    {
        return Err(StateError::BadCursor);
    }
    let mut page = ListPage::default();
    let mut last = None;
    let mut budget = limit.saturating_mul(LIST_SCAN_FACTOR);
    // Where the next range starts: after the cursor, or at the prefix.
    let mut from: Bound<Vec<u8>> = match &query.after {
        Some(after) => Bound::Excluded(after.key.to_vec()),
        None => Bound::Included(prefix.clone()),
    };
    'seek: loop {
        let range = (from.as_ref().map(Vec::as_slice), Bound::Unbounded);
        let iter = dbs.pairs.range(txn, &range).map_err(StateError::lmdb("scan pairs"))?;
        for entry in iter {
            let (key, _) = entry.map_err(StateError::lmdb("scan pairs"))?;
            if !key.starts_with(&prefix) {
                return Ok(page);
            }
            if page.assertions.len() == limit || budget == 0 {
                page.next = last;
                return Ok(page);
            }
            budget -= 1;
            let split = split_pair_key(key).ok_or_else(|| StateError::corrupt("pairs key", "malformed"))?;
            if !query.history && split.section == Section::Superseded {
                // Skip the rest of this pair's history with one seek to the next pair.
                let mut next = split.pair.as_bytes().to_vec();
                next.push(Section::Superseded as u8 + 1);
                from = Bound::Included(next);
                continue 'seek;
            }
            last = Some(ListCursor {
                key: key.try_into().map_err(|_| StateError::corrupt("pairs key", "malformed"))?,
            });
            push_if_named(txn, dbs, query, &split, &mut page)?;
        }
        return Ok(page);
    }
}

/// Appends the assertion of `entry` if its names are the query's. Equal digests of different
/// names would need a blake3 collision; checked anyway.
fn push_if_named(
    txn: &RoTxn<'_>,
    dbs: &Databases,
    query: &ListQuery,
    entry: &PairKey,
    page: &mut ListPage,
) -> Result<(), StateError> {
    let stored = get_in(txn, dbs, &entry.hash)?
        .ok_or_else(|| StateError::corrupt("pairs", format!("entry for {} has no assertion", entry.hash)))?;
    let same_names = stored.assertion.subject == query.subject
        && query
            .predicate
            .as_ref()
            .is_none_or(|p| *p == stored.assertion.predicate);
    if same_names {
        page.assertions.push(stored);
    }
    Ok(())
}

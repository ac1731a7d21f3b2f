//! Queries of the state: by hash, by subject, by (subject, predicate), heads or history.
//!
//! Every query runs in one short read transaction and does bounded work: a list returns at
//! most `limit` assertions (at most [`LIST_LIMIT_MAX`]) and examines at most
//! [`LIST_SCAN_FACTOR`] index entries per requested one; a page that stops early carries a
//! cursor to continue from.

use std::ops::Bound;

use heed::RoTxn;

use super::layout::{
    self, DIGEST_BYTES, decode_assertion, decode_rejection, hash_at, rejected_key,
};
use super::rejection::Rejection;
use super::{Databases, State, StateError};
use crate::protocol::{Assertion, HASH_LEN, Hash};

/// Most assertions one list query returns: bounds the memory and time of one call.
pub const LIST_LIMIT_MAX: usize = 10_000;
/// Index entries a list may examine per assertion requested, when listing heads skips
/// superseded ones: bounds the work of one call, however long the history.
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

/// A position in a listing: continue after the entry with this timestamp and hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListCursor {
    /// Timestamp of the last entry returned.
    pub timestamp_ms: u64,
    /// Hash of the last entry returned.
    pub hash: Hash,
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

/// One page of a listing, ordered by timestamp, then hash.
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
            let assertions = dbs.assertions.len(txn).map_err(StateError::lmdb("count"))?;
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
    let value = dbs
        .assertions
        .get(txn, hash.as_bytes())
        .map_err(StateError::lmdb("read assertion"))?;
    value
        .map(|value| {
            let (offset, assertion) = decode_assertion(value)?;
            Ok(StoredAssertion {
                hash: *hash,
                offset,
                assertion,
            })
        })
        .transpose()
}


fn is_head(txn: &RoTxn<'_>, dbs: &Databases, hash: &Hash) -> Result<bool, StateError> {
    let mut iter = dbs
        .supersession
        .prefix_iter(txn, hash.as_bytes())
        .map_err(StateError::lmdb("scan supersession"))?;
    Ok(iter
        .next()
        .transpose()
        .map_err(StateError::lmdb("scan supersession"))?
        .is_none())
}

fn list_in(txn: &RoTxn<'_>, dbs: &Databases, query: &ListQuery) -> Result<ListPage, StateError> {
    let limit = query.limit.clamp(1, LIST_LIMIT_MAX);
    let (db, digest) = match &query.predicate {
        Some(predicate) => (
            dbs.by_subject_predicate,
            layout::pair_digest(&query.subject, predicate),
        ),
        None => (dbs.by_subject, layout::subject_digest(&query.subject)),
    };
    let start = match query.after {
        Some(after) => Bound::Excluded(layout::index_key(&digest, after.timestamp_ms, &after.hash)?),
        None => Bound::Included(digest.to_vec()),
    };
    let range = (start.as_ref().map(Vec::as_slice), Bound::Unbounded);
    let iter = db.range(txn, &range).map_err(StateError::lmdb("scan index"))?;
    let mut page = ListPage::default();
    let mut last = None;
    for (scanned, entry) in iter.enumerate() {
        let (key, _) = entry.map_err(StateError::lmdb("scan index"))?;
        if key.get(..DIGEST_BYTES) != Some(&digest[..]) {
            return Ok(page);
        }
        if page.assertions.len() == limit || scanned == limit.saturating_mul(LIST_SCAN_FACTOR) {
            page.next = last;
            return Ok(page);
        }
        let (timestamp_ms, hash) =
            layout::split_index_key(key).ok_or_else(|| StateError::corrupt("index key", "wrong length"))?;
        last = Some(ListCursor { timestamp_ms, hash });
        let stored = get_in(txn, dbs, &hash)?
            .ok_or_else(|| StateError::corrupt("index", format!("entry for {hash} has no assertion")))?;
        // Equal digests of different names would need a blake3 collision; checked anyway.
        let same_names = stored.assertion.subject == query.subject
            && query
                .predicate
                .as_ref()
                .is_none_or(|p| *p == stored.assertion.predicate);
        if same_names && (query.history || is_head(txn, dbs, &hash)?) {
            page.assertions.push(stored);
        }
    }
    Ok(page)
}

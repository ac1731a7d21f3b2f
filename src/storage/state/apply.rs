//! The one write path of the state: apply a batch of journal records and advance the ingest
//! cursor, in one LMDB transaction.
//!
//! Records below the stored cursor are skipped, so replaying a batch that was already applied
//! changes nothing; a record whose assertion is already stored is a duplicate (content
//! addressing makes a resubmission the same assertion) and changes nothing either.

use heed::RwTxn;

use super::index::{pair_key, subject_key, supersession_key};
use super::rejection::{RejectReason, Rejection};
use super::{Databases, META_INGEST_CURSOR, State, StateError, decode_u64};
use crate::protocol::{Assertion, Hash, LogRecord};

/// One durable journal record, as the ingestor read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestRecord {
    /// Its global offset.
    pub offset: u64,
    /// The offset of the record after it.
    pub next: u64,
    /// Its payload (a [`LogRecord`] encoding).
    pub payload: Vec<u8>,
}

/// What applying one batch did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApplyOutcome {
    /// Assertions stored.
    pub applied: usize,
    /// Records whose assertion was already stored.
    pub duplicates: usize,
    /// Records below the cursor on entry, i.e. applied before (replays).
    pub skipped: usize,
    /// Records refused, with their reasons (also stored in the `rejected` database).
    pub rejected: Vec<Rejection>,
    /// The ingest cursor after the batch.
    pub cursor: u64,
}

enum Decision {
    Applied,
    Duplicate,
    Rejected(Rejection),
}

impl State {
    /// Returns the ingest cursor: the journal offset of the next record to apply.
    pub fn ingest_cursor(&self) -> Result<u64, StateError> {
        self.read(read_cursor)
    }

    /// Applies `records` (consecutive, ascending) and advances the cursor past the last one,
    /// all in one transaction. Records below the stored cursor are skipped.
    pub fn apply(&self, records: &[IngestRecord]) -> Result<ApplyOutcome, StateError> {
        self.write(|txn, dbs| {
            let mut outcome = ApplyOutcome {
                cursor: read_cursor(txn, dbs)?,
                ..ApplyOutcome::default()
            };
            for record in records {
                assert!(
                    record.next > record.offset,
                    "journal record ends before it starts"
                );
                if record.offset < outcome.cursor {
                    outcome.skipped += 1;
                    continue;
                }
                match apply_one(txn, dbs, record)? {
                    Decision::Applied => outcome.applied += 1,
                    Decision::Duplicate => outcome.duplicates += 1,
                    Decision::Rejected(rejection) => {
                        let value = rmp_serde::to_vec_named(&rejection)
                            .map_err(|e| StateError::corrupt("rejection", e))?;
                        dbs.rejected
                            .put(txn, &record.offset.to_be_bytes(), &value)
                            .map_err(StateError::lmdb("store rejection"))?;
                        outcome.rejected.push(rejection);
                    }
                }
                outcome.cursor = record.next;
            }
            dbs.meta
                .put(txn, META_INGEST_CURSOR, &outcome.cursor.to_be_bytes())
                .map_err(StateError::lmdb("store ingest cursor"))?;
            Ok(outcome)
        })
    }
}

pub(super) fn read_cursor(txn: &heed::RoTxn<'_>, dbs: &Databases) -> Result<u64, StateError> {
    match dbs
        .meta
        .get(txn, META_INGEST_CURSOR)
        .map_err(StateError::lmdb("read ingest cursor"))?
    {
        Some(bytes) => decode_u64("ingest cursor", bytes),
        None => Ok(0),
    }
}

fn apply_one(txn: &mut RwTxn<'_>, dbs: &Databases, record: &IngestRecord) -> Result<Decision, StateError> {
    let reject = |hash, reason| {
        Ok(Decision::Rejected(Rejection {
            offset: record.offset,
            hash,
            reason,
        }))
    };
    let assertion = match LogRecord::decode(&record.payload) {
        Ok(LogRecord::Assertion(assertion)) => assertion,
        Err(error) => {
            let reason = RejectReason::Undecodable {
                detail: error.to_string(),
            };
            return reject(None, reason);
        }
    };
    let hash = assertion.content_hash();
    let get = |txn: &RwTxn<'_>, hash: &Hash| {
        dbs.assertions
            .get(txn, hash.as_bytes())
            .map(|value| value.map(<[u8]>::to_vec))
            .map_err(StateError::lmdb("read assertion"))
    };
    if get(txn, &hash)?.is_some() {
        return Ok(Decision::Duplicate);
    }
    if let Some(parent) = assertion.parent {
        let Some(stored) = get(txn, &parent)? else {
            return reject(Some(hash), RejectReason::UnknownParent { parent });
        };
        let (_, parent_assertion) = super::read::decode_stored(&stored)?;
        if parent_assertion.subject != assertion.subject || parent_assertion.predicate != assertion.predicate
        {
            return reject(Some(hash), RejectReason::ParentMismatch { parent });
        }
        dbs.supersession
            .put(txn, &supersession_key(&parent, &hash)?, &[])
            .map_err(StateError::lmdb("store supersession"))?;
    }
    store(txn, dbs, record, &assertion, &hash)?;
    Ok(Decision::Applied)
}

fn store(
    txn: &mut RwTxn<'_>,
    dbs: &Databases,
    record: &IngestRecord,
    assertion: &Assertion,
    hash: &Hash,
) -> Result<(), StateError> {
    // The payload after its tag byte is the canonical record: stored as read, not re-encoded.
    let body = record.payload.get(1..).unwrap_or_default();
    let mut value = Vec::with_capacity(size_of::<u64>() + body.len());
    value.extend_from_slice(&record.offset.to_be_bytes());
    value.extend_from_slice(body);
    dbs.assertions
        .put(txn, hash.as_bytes(), &value)
        .map_err(StateError::lmdb("store assertion"))?;
    dbs.by_subject
        .put(txn, &subject_key(assertion, hash)?, &[])
        .map_err(StateError::lmdb("store subject index"))?;
    dbs.by_subject_predicate
        .put(txn, &pair_key(assertion, hash)?, &[])
        .map_err(StateError::lmdb("store subject+predicate index"))?;
    Ok(())
}

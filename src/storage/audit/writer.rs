//! The audit writer: commits queued records in batches, keeps the store within its bounds by
//! deleting the oldest records in the same transaction, and recovers from a full map.
//!
//! Invariants:
//! - `Store::stored_bytes` equals the stored bytes of the committed records; only this thread
//!   (and the open, before it starts) changes it, and only after a commit succeeded.
//! - A commit never deletes records of its own batch: only older ones.
//! - `MDB_MAP_FULL` is never final for the store: the failed transaction is aborted, the
//!   oldest records are deleted down to half what is stored (then half that) in transactions
//!   of their own (LMDB reuses freed pages only once the freeing transaction committed), and
//!   the commit is retried, up to [`MAP_FULL_RETRIES_MAX`] times; a batch that
//!   still does not fit is committed record by record, so that only a record that cannot fit
//!   even in an emptied store fails.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use crossbeam_channel::Receiver;
use serde::Deserialize;

use super::{AUDIT_QUEUE, AuditBounds, AuditError, AuditRecord, Pending, RECORD_KEYS_BYTES, Store, decode_id, pair_key};
use crate::storage::state::StateError;
use crate::telemetry::catalog;

/// Retries of a commit that found the map full, the first with a budget of half the stored
/// bytes, each later one with half the one before: eight halvings leave under 1/256 of the
/// store, in effect an empty one.
pub const MAP_FULL_RETRIES_MAX: u32 = 8;
/// Records deleted per transaction when a store is trimmed at open: small transactions need
/// few free pages, so a trim succeeds even in a nearly full map.
const TRIM_CHUNK_RECORDS: u64 = 256;

/// The fields of a record that its deletion needs (its index key).
#[derive(Deserialize)]
struct RecordPair {
    id: u64,
    subject: String,
    predicate: String,
}

/// A record ready to store: the record, its encoding, and its stored bytes.
struct Encoded<'a> {
    record: &'a AuditRecord,
    value: Vec<u8>,
    bytes: u64,
}

/// The writer thread's state.
pub(super) struct Writer {
    store: Arc<Store>,
    bounds: AuditBounds,
}

impl Writer {
    pub(super) fn new(store: Arc<Store>, bounds: AuditBounds) -> Self {
        Self { store, bounds }
    }

    /// Commits queued records until the queue closes.
    pub(super) fn run(self, receiver: &Receiver<Pending>) {
        while let Ok(first) = receiver.recv() {
            let mut batch = vec![first];
            batch.extend(receiver.try_iter().take(AUDIT_QUEUE));
            let outcomes = self.write(&batch);
            for ((_, reply), outcome) in batch.into_iter().zip(outcomes) {
                let _ = reply.send(outcome);
            }
        }
    }

    /// Writes `batch`; returns one outcome per record, in order.
    fn write(&self, batch: &[Pending]) -> Vec<Result<(), AuditError>> {
        let mut outcomes = Vec::with_capacity(batch.len());
        let mut accepted = Vec::with_capacity(batch.len());
        for (record, _) in batch {
            match self.encode(record) {
                Ok(encoded) => {
                    accepted.push((outcomes.len(), encoded));
                    outcomes.push(Ok(()));
                }
                Err(error) => outcomes.push(Err(error)),
            }
        }
        if accepted.is_empty() {
            return outcomes;
        }
        let items: Vec<&Encoded<'_>> = accepted.iter().map(|(_, e)| e).collect();
        match self.commit_with_retries(&items) {
            Ok(()) => {}
            // Alone, each record gets the whole store's room.
            Err(error) if is_map_full(&error) && items.len() > 1 => {
                for (index, encoded) in &accepted {
                    outcomes[*index] = self.commit_with_retries(&[encoded]).map_err(commit_error);
                }
            }
            Err(error) => {
                let error = commit_error(error);
                for (index, _) in &accepted {
                    outcomes[*index] = Err(error.clone());
                }
            }
        }
        outcomes
    }

    fn encode<'a>(&self, record: &'a AuditRecord) -> Result<Encoded<'a>, AuditError> {
        let value = rmp_serde::to_vec_named(record)
            .map_err(|e| AuditError::Commit(Arc::new(StateError::corrupt("audit record", e))))?;
        let bytes = value.len() as u64 + RECORD_KEYS_BYTES;
        if bytes > self.bounds.bytes_max {
            return Err(AuditError::TooLarge {
                bytes,
                max: self.bounds.bytes_max,
            });
        }
        Ok(Encoded { record, value, bytes })
    }

    /// Commits `items` within the bounds, halving the byte budget after each full map.
    fn commit_with_retries(&self, items: &[&Encoded<'_>]) -> Result<(), StateError> {
        let mut budget = self.bounds.bytes_max;
        let mut attempt = 0;
        loop {
            match self.store.commit(items, budget, self.bounds.records_max) {
                Ok((stored, evicted)) => {
                    self.store.stored_bytes.store(stored, Ordering::Release);
                    metrics::gauge!(catalog::AUDIT_STORED_BYTES).set(stored as f64);
                    metrics::counter!(catalog::AUDIT_EVICTED).increment(evicted);
                    return Ok(());
                }
                Err(error) if is_map_full(&error) && attempt < MAP_FULL_RETRIES_MAX => {
                    attempt += 1;
                    // Half of what is stored, not of the configured budget: the store may be
                    // far below it (a map too small for the budget).
                    budget = budget.min(self.store.stored_bytes()) / 2;
                    tracing::warn!(attempt, budget, "the audit map is full: evicting more and retrying");
                    // Pages a transaction frees are reusable only after it commits: the
                    // eviction commits on its own, before the retry.
                    self.store.trim(AuditBounds {
                        bytes_max: budget,
                        ..self.bounds
                    })?;
                    metrics::gauge!(catalog::AUDIT_STORED_BYTES).set(self.store.stored_bytes() as f64);
                }
                Err(error) => return Err(error),
            }
        }
    }
}

impl Store {
    /// Stores `items` and deletes the oldest older records until at most `bytes_max` bytes and
    /// `records_max` records remain, in one transaction. Returns the stored bytes and the
    /// number of records deleted; on an error nothing changed.
    fn commit(&self, items: &[&Encoded<'_>], bytes_max: u64, records_max: u64) -> Result<(u64, u64), StateError> {
        let mut txn = self.env.write_txn().map_err(StateError::lmdb("begin audit write"))?;
        let mut stored = self.stored_bytes();
        let mut oldest_new = u64::MAX;
        for item in items {
            let record = item.record;
            self.records
                .put(&mut txn, &record.id.to_be_bytes(), &item.value)
                .map_err(StateError::lmdb("store audit record"))?;
            self.by_pair
                .put(&mut txn, &pair_key(&record.subject, &record.predicate, record.id), &[])
                .map_err(StateError::lmdb("store audit index"))?;
            stored += item.bytes;
            oldest_new = oldest_new.min(record.id);
        }
        let (stored, evicted) = self.evict(&mut txn, stored, bytes_max, records_max, oldest_new, u64::MAX)?;
        txn.commit().map_err(StateError::lmdb("commit audit"))?;
        Ok((stored, evicted))
    }

    /// Deletes the oldest records, below id `keep_from` and at most `chunk` of them, while
    /// more than `bytes_max` bytes or `records_max` records are stored; returns the stored
    /// bytes after, and how many were deleted.
    fn evict(
        &self,
        txn: &mut heed::RwTxn<'_>,
        mut stored: u64,
        bytes_max: u64,
        records_max: u64,
        keep_from: u64,
        chunk: u64,
    ) -> Result<(u64, u64), StateError> {
        let mut count = self.records.len(txn).map_err(StateError::lmdb("count audit"))?;
        let mut evicted = 0;
        while (stored > bytes_max || count > records_max) && evicted < chunk {
            let Some((key, value)) = self.records.first(txn).map_err(StateError::lmdb("read audit"))? else {
                break;
            };
            let id = decode_id(key)?;
            if id >= keep_from {
                break;
            }
            let bytes = value.len() as u64 + RECORD_KEYS_BYTES;
            let old: RecordPair =
                rmp_serde::from_slice(value).map_err(|e| StateError::corrupt("audit record", e))?;
            assert_eq!(old.id, id, "audit record {id} is stored under another id");
            let index = pair_key(&old.subject, &old.predicate, id);
            self.records
                .delete(txn, &id.to_be_bytes())
                .map_err(StateError::lmdb("delete audit record"))?;
            self.by_pair
                .delete(txn, &index)
                .map_err(StateError::lmdb("delete audit index"))?;
            assert!(stored >= bytes, "audit stored bytes {stored} below a record's {bytes}");
            stored -= bytes;
            count -= 1;
            evicted += 1;
        }
        Ok((stored, evicted))
    }

    /// Deletes the oldest records until the store is within `bounds`, in small transactions
    /// (halved after a full map, down to one record).
    pub(super) fn trim(&self, bounds: AuditBounds) -> Result<(), StateError> {
        let mut chunk = TRIM_CHUNK_RECORDS;
        loop {
            let mut txn = self.env.write_txn().map_err(StateError::lmdb("begin audit trim"))?;
            let outcome = self.evict(
                &mut txn,
                self.stored_bytes(),
                bounds.bytes_max,
                bounds.records_max,
                u64::MAX,
                chunk,
            );
            let outcome = outcome.and_then(|done| {
                txn.commit()
                    .map_err(StateError::lmdb("commit audit trim"))
                    .map(|()| done)
            });
            match outcome {
                Ok((_, 0)) => return Ok(()),
                Ok((stored, evicted)) => {
                    self.stored_bytes.store(stored, Ordering::Release);
                    metrics::counter!(catalog::AUDIT_EVICTED).increment(evicted);
                }
                Err(error) if is_map_full(&error) && chunk > 1 => chunk /= 2,
                Err(error) => return Err(error),
            }
        }
    }
}

/// Returns true if and only if `error` is LMDB's `MDB_MAP_FULL`.
fn is_map_full(error: &StateError) -> bool {
    matches!(
        error,
        StateError::Lmdb {
            source: heed::Error::Mdb(heed::MdbError::MapFull),
            ..
        }
    )
}

fn commit_error(error: StateError) -> AuditError {
    AuditError::Commit(Arc::new(error))
}

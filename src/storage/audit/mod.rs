//! The audit trail: one record per audited resolution, in an LMDB environment of its own
//! (`<data_dir>/audit`), so that its writes never take the state's writer lock or its fsyncs.
//!
//! ```text
//! database  key                      value
//! records   id u64                   AuditRecord, MessagePack (named)
//! by_pair   pair[64] id u64          empty
//! ```
//!
//! Ids grow by one from the largest stored. A writer thread takes records from a bounded queue
//! and commits what is queued in one transaction, then answers each (see the `writer` module).
//!
//! Retention has two bounds, and both apply: at most `records_max` records, and at most
//! `bytes_max` stored bytes, where a record's stored bytes are its encoded value plus its two
//! keys ([`RECORD_KEYS_BYTES`]). Past either, the oldest records are deleted in the same
//! transaction that adds the new ones. The running total of stored bytes is not persisted: it
//! is recomputed at open from the value lengths (a scan of the leaf pages; overflow pages are
//! not read), so it can never disagree with the records. A store over its bounds at open (the
//! bounds were lowered) is trimmed before the writer starts.
//!
//! The map holds more than the stored bytes (B-tree pages, free pages that copy-on-write and
//! open readers need), which is why `node.audit_bytes_max` must leave headroom below
//! `node.audit_map_bytes`. Should a commit still find the map full, it is retried with half the
//! byte budget (evicting more), so a full map is never a lasting state.

mod writer;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;

use crossbeam_channel::Sender;
use heed::types::Bytes;
use heed::{CommitOrAbort, Database, Env, EnvOpenOptions, WithoutTls};
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use crate::protocol::Hash;
use crate::storage::state::{PairId, StateError};

/// Records queued to the writer before resolvers wait.
const AUDIT_QUEUE: usize = 4096;
/// Bytes of a record's two keys: its id in `records`, and pair and id in `by_pair`.
pub const RECORD_KEYS_BYTES: u64 = (size_of::<u64>() + size_of::<PairId>() + size_of::<u64>()) as u64;

/// The bounds of an audit store; see the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuditBounds {
    /// The LMDB map size, in bytes (a multiple of the OS page size).
    pub map_bytes: usize,
    /// Most stored bytes (encoded records and their keys) kept.
    pub bytes_max: u64,
    /// Most records kept.
    pub records_max: u64,
}

/// One audited resolution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// Its id.
    pub id: u64,
    /// When it was resolved (wall clock, ms).
    pub at_ms: u64,
    /// Who asked, as the query named them.
    pub requester: Option<String>,
    /// The subject.
    pub subject: String,
    /// The predicate.
    pub predicate: String,
    /// The lens.
    pub lens: String,
    /// Whether superseded assertions competed.
    pub history: bool,
    /// The past point asked for, as a journal offset bound, if any.
    pub as_of: Option<String>,
    /// Every candidate, best first, with its score.
    pub candidates: Vec<(Hash, f64)>,
    /// The winner.
    pub winner: Option<Hash>,
    /// The ingest offset the resolution reflected.
    pub offset: u64,
}

type Db = Database<'static, Bytes, Bytes>;

/// A record to write, and where its outcome goes.
type Pending = (AuditRecord, oneshot::Sender<Result<(), AuditError>>);

/// An audit record that was not written.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AuditError {
    /// The writer thread stopped (the node is shutting down).
    #[error("the audit writer stopped")]
    WriterStopped,
    /// The record alone is larger than the store's byte budget (`node.audit_bytes_max`): it
    /// could only be kept by deleting every other record, so it is refused.
    #[error("audit record of {bytes} bytes exceeds node.audit_bytes_max = {max}")]
    TooLarge {
        /// Its stored bytes (encoded record and keys).
        bytes: u64,
        /// The budget.
        max: u64,
    },
    /// The commit of the batch holding the record failed.
    #[error("audit commit failed: {0}")]
    Commit(Arc<StateError>),
}

/// The audit trail's storage, shared by the writer thread and readers.
struct Store {
    env: Env<WithoutTls>,
    records: Db,
    by_pair: Db,
    /// Stored bytes as of the last commit; written by the writer (and the open) only.
    stored_bytes: AtomicU64,
}

/// The audit trail; see the module docs. Dropping it stops the writer once it has committed
/// what is queued; join the handle [`open`](Self::open) returned.
pub struct AuditLog {
    store: Arc<Store>,
    queue: Sender<Pending>,
}

impl AuditLog {
    /// Opens (creating) the audit environment in `dir`, trims it to `bounds`, and starts its
    /// writer thread, which keeps it within them. Returns the log, the next id, and the writer.
    pub fn open(dir: &Path, bounds: AuditBounds) -> Result<(Self, u64, JoinHandle<()>), StateError> {
        assert!(bounds.bytes_max > 0 && bounds.records_max > 0, "audit bounds must be positive");
        std::fs::create_dir_all(dir).map_err(|source| StateError::CreateDir {
            path: dir.to_owned(),
            source,
        })?;
        let mut options = EnvOpenOptions::new().read_txn_without_tls();
        options.map_size(bounds.map_bytes).max_dbs(2);
        // Default flags, unlike the state's NO_META_SYNC: the state can be rebuilt from the
        // journal, an audit record cannot, so each commit syncs its pages and its meta page
        // before the ids it holds are answered (`audit_ingest` bench: no measurable cost).
        // SAFETY: only this process opens these files, under the node's journal lock, and
        // nothing truncates or rewrites them behind LMDB's back.
        #[allow(unsafe_code)]
        let env = unsafe { options.open(dir) }.map_err(StateError::lmdb("open audit environment"))?;
        let txn = env.write_txn().map_err(StateError::lmdb("begin write"))?;
        let [records, by_pair] = env
            .create_databases_and_commit(txn, |opener, txn| {
                let records = opener.create_database::<Bytes, Bytes>(txn, Some("records"))?;
                let by_pair = opener.create_database::<Bytes, Bytes>(txn, Some("by_pair"))?;
                Ok::<_, heed::Error>(CommitOrAbort::<_, ()>::Commit([records, by_pair]))
            })
            .map_err(StateError::lmdb("create audit databases"))?
            .unwrap_commit();
        let store = Store {
            env,
            records,
            by_pair,
            stored_bytes: AtomicU64::new(0),
        };
        let (next_id, stored) = store.scan()?;
        store.stored_bytes.store(stored, Ordering::Release);
        store.trim(bounds)?;
        metrics::gauge!(crate::telemetry::catalog::AUDIT_STORED_BYTES).set(store.stored_bytes() as f64);
        let (queue, receiver) = crossbeam_channel::bounded(AUDIT_QUEUE);
        let store = Arc::new(store);
        let writer = {
            let writer = writer::Writer::new(store.clone(), bounds);
            std::thread::Builder::new()
                .name("stemedb-audit".into())
                .spawn(move || writer.run(&receiver))
                .map_err(|source| StateError::CreateDir {
                    path: dir.to_owned(),
                    source,
                })?
        };
        Ok((Self { store, queue }, next_id, writer))
    }

    /// Queues `record` and waits until it is committed.
    pub fn append(&self, record: AuditRecord) -> impl std::future::Future<Output = Result<(), AuditError>> + use<> {
        let queue = self.queue.clone();
        async move { append(queue, record).await }
    }

    /// Returns the stored bytes (encoded records and their keys) as of the last commit.
    pub fn stored_bytes(&self) -> u64 {
        self.store.stored_bytes()
    }

    /// Returns the record `id`, if kept.
    pub fn get(&self, id: u64) -> Result<Option<AuditRecord>, StateError> {
        self.store.get(id)
    }

    /// Returns up to `limit` records about (`subject`, `predicate`), newest first.
    pub fn by_pair(&self, subject: &str, predicate: &str, limit: usize) -> Result<Vec<AuditRecord>, StateError> {
        self.store.by_pair(subject, predicate, None, limit)
    }

    /// Returns up to `limit` records about (`subject`, `predicate`) with ids below `before`,
    /// newest first: the page after one whose last record had id `before`.
    pub fn by_pair_before(
        &self,
        subject: &str,
        predicate: &str,
        before: u64,
        limit: usize,
    ) -> Result<Vec<AuditRecord>, StateError> {
        self.store.by_pair(subject, predicate, Some(before), limit)
    }
}

async fn append(queue: Sender<Pending>, record: AuditRecord) -> Result<(), AuditError> {
    let (reply, answer) = oneshot::channel();
    match queue.try_send((record, reply)) {
        Ok(()) => {}
        // A full queue makes this query wait (off the async executor), never the ingest:
        // the audit trail is another environment.
        Err(crossbeam_channel::TrySendError::Full(pending)) => {
            let sent = actix_rt::task::spawn_blocking(move || queue.send(pending).is_ok()).await;
            if !matches!(sent, Ok(true)) {
                return Err(AuditError::WriterStopped);
            }
        }
        Err(crossbeam_channel::TrySendError::Disconnected(_)) => return Err(AuditError::WriterStopped),
    }
    answer.await.map_err(|_| AuditError::WriterStopped)?
}

impl Store {
    fn stored_bytes(&self) -> u64 {
        self.stored_bytes.load(Ordering::Acquire)
    }

    /// Returns the next id and the stored bytes, from the records themselves.
    fn scan(&self) -> Result<(u64, u64), StateError> {
        let rtxn = self.env.read_txn().map_err(StateError::lmdb("begin read"))?;
        let next_id = match self.records.last(&rtxn).map_err(StateError::lmdb("read audit"))? {
            Some((key, _)) => decode_id(key)? + 1,
            None => 1,
        };
        let mut stored = 0u64;
        for entry in self.records.iter(&rtxn).map_err(StateError::lmdb("scan audit"))? {
            let (_, value) = entry.map_err(StateError::lmdb("scan audit"))?;
            stored += value.len() as u64 + RECORD_KEYS_BYTES;
        }
        Ok((next_id, stored))
    }

    fn get(&self, id: u64) -> Result<Option<AuditRecord>, StateError> {
        let txn = self.env.read_txn().map_err(StateError::lmdb("begin read"))?;
        self.records
            .get(&txn, &id.to_be_bytes())
            .map_err(StateError::lmdb("read audit record"))?
            .map(|v| rmp_serde::from_slice(v).map_err(|e| StateError::corrupt("audit record", e)))
            .transpose()
    }

    fn by_pair(
        &self,
        subject: &str,
        predicate: &str,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<AuditRecord>, StateError> {
        let txn = self.env.read_txn().map_err(StateError::lmdb("begin read"))?;
        // Ids count from 1, and u64::MAX is never reached: these bounds hold every id below
        // `before`, or every id.
        let low = pair_key(subject, predicate, 0);
        let high = pair_key(subject, predicate, before.unwrap_or(u64::MAX));
        let bounds = (
            std::ops::Bound::Included(low.as_slice()),
            std::ops::Bound::Excluded(high.as_slice()),
        );
        let mut out = Vec::new();
        let iter = self
            .by_pair
            .rev_range(&txn, &bounds)
            .map_err(StateError::lmdb("scan audit index"))?;
        for entry in iter.take(limit.min(crate::storage::state::LIST_LIMIT_MAX)) {
            let (key, _) = entry.map_err(StateError::lmdb("scan audit index"))?;
            let id = decode_id(&key[key.len().saturating_sub(8)..])?;
            if let Some(record) = self
                .records
                .get(&txn, &id.to_be_bytes())
                .map_err(StateError::lmdb("read audit record"))?
            {
                out.push(rmp_serde::from_slice(record).map_err(|e| StateError::corrupt("audit record", e))?);
            }
        }
        Ok(out)
    }
}

fn pair_key(subject: &str, predicate: &str, id: u64) -> Vec<u8> {
    let mut key = PairId::of(subject, predicate).as_bytes().to_vec();
    key.extend_from_slice(&id.to_be_bytes());
    key
}

fn decode_id(bytes: &[u8]) -> Result<u64, StateError> {
    bytes
        .try_into()
        .map(u64::from_be_bytes)
        .map_err(|_| StateError::corrupt("audit id", "not 8 bytes"))
}

#[cfg(test)]
mod tests;

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
//! and commits what is queued in one transaction, then answers each; past `audit_records_max`
//! the oldest records are deleted in the same transaction.

use std::path::Path;
use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender};
use heed::types::Bytes;
use heed::{CommitOrAbort, Database, Env, EnvOpenOptions, WithoutTls};
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use crate::protocol::Hash;
use crate::storage::state::{PairId, StateError};

/// Map size of the audit environment (it grows with the retention bound, not with the log).
const AUDIT_MAP_BYTES: usize = 1 << 30;
/// Records queued to the writer before resolvers wait.
const AUDIT_QUEUE: usize = 4096;

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
    /// The commit of the batch holding the record failed.
    #[error("audit commit failed: {0}")]
    Commit(Arc<StateError>),
}

/// The audit trail's storage, shared by the writer thread and readers.
struct Store {
    env: Env<WithoutTls>,
    records: Db,
    by_pair: Db,
}

/// The audit trail; see the module docs. Dropping it stops the writer once it has committed
/// what is queued; join the handle [`open`](Self::open) returned.
pub struct AuditLog {
    store: Arc<Store>,
    queue: Sender<Pending>,
}

impl AuditLog {
    /// Opens (creating) the audit environment in `dir` and starts its writer thread, which
    /// keeps at most `records_max` records. Returns the log, the next id, and the writer.
    pub fn open(dir: &Path, records_max: u64) -> Result<(Self, u64, JoinHandle<()>), StateError> {
        std::fs::create_dir_all(dir).map_err(|source| StateError::CreateDir {
            path: dir.to_owned(),
            source,
        })?;
        let mut options = EnvOpenOptions::new().read_txn_without_tls();
        options.map_size(AUDIT_MAP_BYTES).max_dbs(2);
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
        let next_id = {
            let rtxn = env.read_txn().map_err(StateError::lmdb("begin read"))?;
            let last = records.last(&rtxn).map_err(StateError::lmdb("read audit"))?;
            match last {
                Some((key, _)) => decode_id(key)? + 1,
                None => 1,
            }
        };
        let (queue, receiver) = crossbeam_channel::bounded(AUDIT_QUEUE);
        let store = Arc::new(Store { env, records, by_pair });
        let writer = {
            let store = store.clone();
            std::thread::Builder::new()
                .name("stemedb-audit".into())
                .spawn(move || store.write_loop(&receiver, records_max))
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
}

async fn append(queue: Sender<Pending>, record: AuditRecord) -> Result<(), AuditError> {
    {
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
}

impl AuditLog {

    /// Returns the record `id`, if kept.
    pub fn get(&self, id: u64) -> Result<Option<AuditRecord>, StateError> {
        self.store.get(id)
    }

    /// Returns up to `limit` records about (`subject`, `predicate`), newest first.
    pub fn by_pair(&self, subject: &str, predicate: &str, limit: usize) -> Result<Vec<AuditRecord>, StateError> {
        self.store.by_pair(subject, predicate, limit)
    }
}

impl Store {
    fn write_loop(&self, receiver: &Receiver<Pending>, records_max: u64) {
        while let Ok(first) = receiver.recv() {
            let mut batch = vec![first];
            batch.extend(receiver.try_iter().take(AUDIT_QUEUE));
            let outcome = self.commit(&batch, records_max).map_err(|e| AuditError::Commit(Arc::new(e)));
            for (_, reply) in batch {
                let _ = reply.send(outcome.clone());
            }
        }
    }

    fn commit(&self, batch: &[Pending], records_max: u64) -> Result<(), StateError> {
        let mut txn = self.env.write_txn().map_err(StateError::lmdb("begin audit write"))?;
        for (record, _) in batch {
            let value = rmp_serde::to_vec_named(record).map_err(|e| StateError::corrupt("audit record", e))?;
            self.records
                .put(&mut txn, &record.id.to_be_bytes(), &value)
                .map_err(StateError::lmdb("store audit record"))?;
            self.by_pair
                .put(&mut txn, &pair_key(&record.subject, &record.predicate, record.id), &[])
                .map_err(StateError::lmdb("store audit index"))?;
        }
        // Retention: the oldest go first.
        let count = self.records.len(&txn).map_err(StateError::lmdb("count audit"))?;
        for _ in records_max..count {
            let Some((key, value)) = self
                .records
                .first(&txn)
                .map_err(StateError::lmdb("read audit"))?
                .map(|(k, v)| (k.to_vec(), v.to_vec()))
            else {
                break;
            };
            let old: AuditRecord =
                rmp_serde::from_slice(&value).map_err(|e| StateError::corrupt("audit record", e))?;
            self.records
                .delete(&mut txn, &key)
                .map_err(StateError::lmdb("delete audit record"))?;
            self.by_pair
                .delete(&mut txn, &pair_key(&old.subject, &old.predicate, old.id))
                .map_err(StateError::lmdb("delete audit index"))?;
        }
        txn.commit().map_err(StateError::lmdb("commit audit"))
    }

    fn get(&self, id: u64) -> Result<Option<AuditRecord>, StateError> {
        let txn = self.env.read_txn().map_err(StateError::lmdb("begin read"))?;
        self.records
            .get(&txn, &id.to_be_bytes())
            .map_err(StateError::lmdb("read audit record"))?
            .map(|v| rmp_serde::from_slice(v).map_err(|e| StateError::corrupt("audit record", e)))
            .transpose()
    }

    fn by_pair(&self, subject: &str, predicate: &str, limit: usize) -> Result<Vec<AuditRecord>, StateError> {
        let txn = self.env.read_txn().map_err(StateError::lmdb("begin read"))?;
        let prefix = PairId::of(subject, predicate);
        let mut out = Vec::new();
        let iter = self
            .by_pair
            .rev_prefix_iter(&txn, prefix.as_bytes())
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

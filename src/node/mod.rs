//! The embedded [`Node`]: StemeDB inside a host application's actix System.
//!
//! [`Node::start`] opens the LMDB state (`<data_dir>/state`) and the local journal
//! (`<data_dir>/journal`); [`Node::start_with_log`] takes any other log backend (see
//! [`crate::log`]). Then it assembles the pipeline:
//!
//! ```text
//! submit ─▶ verification threads ─▶ Journal (GroupCommit thread: write + fdatasync)
//!   ▲           (batch verify)             │ durable ack (hash, offset) ─▶ submitter
//!   │                                      ▼
//!   │                    durable-end listener ── watch channel ──▶ IngestorActor ─▶ LMDB
//!   └──────────────── wait_indexed(offset) ◀── ingest cursor ─────────────┘
//! ```
//!
//! The ingestor and each vote-counter shard run on arbiter threads of their own: ingestion
//! never waits for the host's thread, however busy the host keeps it.
//!
//! The handle is cheap to clone. Reads (`get`, `list`) run short LMDB read transactions on the
//! caller's thread. Every queue is bounded, in entries and in bytes: a full one answers
//! [`SubmitError::Busy`], naming the [`Queue`]. The verification queue
//! (`node.verify_queue_bytes_max`) and the journal queue
//! (`journal.group_commit_queue_bytes_max`) together bound the memory that pending submissions
//! hold, whatever the offered load.
//!
//! ```no_run
//! use std::time::{Duration, Instant};
//! use stemedb::protocol::{AgentKey, Assertion, ObjectValue, now_ms};
//! use stemedb::node::{ListQuery, Node};
//!
//! #[actix::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let node = Node::start(stemedb::Config::default(), "stemedb-data")?;
//!     let key = AgentKey::from_secret_bytes(&[7; 32]);
//!     let mut claim = Assertion::new("city/paris", "population", ObjectValue::Integer(2_102_650), 0.9, now_ms());
//!     claim.sign(&key);
//!     let receipt = node.submit(claim).await?;
//!     node.wait_indexed(receipt.offset, Instant::now() + Duration::from_secs(5)).await?;
//!     let page = node.list(&ListQuery::pair("city/paris", "population"))?;
//!     assert_eq!(page.assertions[0].hash, receipt.hash);
//!     node.shutdown().await?;
//!     Ok(())
//! }
//! ```

mod checkpoint;
mod duplicates;
mod error;
mod gauges;
mod health;
mod inspect;
mod metrics_catalog;
mod pipeline;
mod proofs;
mod read;
mod receipt;
mod resolve;
mod submit;
mod write;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use actix::Arbiter;
use parking_lot::RwLock;
use tokio::sync::watch;

pub use crate::budget::{QueueFull, QueueUnit};
pub use crate::config::{
    AUDIT_BYTES_MIN, AUDIT_MAP_HEADROOM_FACTOR, AuditMode, BATCH_RECORDS_CEILING, NodeConfig,
    RECORD_STRUCT_BYTES, VERIFY_THREADS_CEILING, VOTE_SHARDS_CEILING, VotesConfig,
};
pub use crate::storage::audit::{AuditError, AuditRecord};
pub use checkpoint::{CHECKPOINT_KEY_FILE, CheckpointError, SignedCheckpoint};
pub use error::{NodeError, Queue, SubmitError, WaitError};
pub use gauges::GAUGE_SAMPLE_INTERVAL;
pub use health::Health;
pub use metrics_catalog::describe_metrics;
pub use proofs::LeafRef;
pub use resolve::{Watch, WatchError};

// The types of what a node answers: embedders and the HTTP layer use these, never the storage
// modules behind them.
pub use crate::actors::IngestStatus;
pub use crate::storage::state::tree::{InclusionProof, TILE_HEIGHT, TILE_WIDTH, TreeExtent, TreeHead};
pub use crate::storage::state::{
    EXACT_WEIGHT_BYTES, ExactWeight, HeadSummary, LIST_LIMIT_MAX, ListCursor, ListPage, ListQuery, PairId,
    RejectReason, Rejection, Snapshot, StateDigest, StateDump, StateError, StoredAssertion, StoredTrust,
    StoredVote, Summary, VoteTotals, WeightUnderflow,
};

use crate::Config;
use crate::actors::{CommitListener, Hooks, LensActor};
use crate::budget::Budget;
use crate::config::ConfigError;
use crate::lens::{LensRegistry, TrustBook, Views};
use crate::log::{LocalJournal, LogBackend};
use crate::protocol::{AgentId, Hash};
use crate::storage::audit::{AuditBounds, AuditLog};
use crate::storage::state::State;
use pipeline::{Actors, Running};
use submit::Admission;

/// Longest shutdown waits for the ingestor to apply what is durable: a healthy ingestor
/// applies tens of thousands of records a second, so a minute means it is not progressing.
/// What it has not applied stays in the log and is applied at the next start.
pub const SHUTDOWN_INGEST_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

pub use crate::log::JOURNAL_DIR;
/// The schema version of the LMDB state this build writes.
pub use crate::storage::state::SCHEMA_VERSION as STATE_SCHEMA_VERSION;

/// Subdirectory of the data directory that holds the audit trail.
pub const AUDIT_DIR: &str = "audit";
/// Subdirectory of the data directory that holds the LMDB state.
pub const STATE_DIR: &str = "state";

/// The durable acknowledgement of a submitted assertion, vote or trust change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Receipt {
    /// The record's content hash.
    pub hash: Hash,
    /// The position of its record in the log: a journal offset, or a replicated log's
    /// position (a stream sequence); pass it to [`Node::wait_indexed`].
    pub offset: u64,
    /// True if and only if the record was stored already: it was not journaled again, and
    /// `offset` is that of the stored copy (see [`Node::submit`]).
    pub duplicate: bool,
}

/// A running StemeDB node; see the [module docs](self).
#[derive(Clone)]
pub struct Node {
    inner: Arc<Inner>,
}

struct Inner {
    data_dir: PathBuf,
    /// Signs the checkpoints of the tree.
    checkpointer: Arc<checkpoint::Checkpointer>,
    /// The administrators (`votes.admins`), sorted: named in receipts.
    admins: Vec<AgentId>,
    submit_batch_records_max: usize,
    trust_default: f32,
    trust_configured: HashMap<AgentId, f32>,
    trust_book: Arc<TrustBook>,
    registry: Arc<LensRegistry>,
    views: Arc<Views>,
    views_max: usize,
    /// The validation limits: a query's names are checked against them.
    limits: crate::protocol::Limits,
    audit_mode: AuditMode,
    next_audit_id: std::sync::atomic::AtomicU64,
    status: watch::Receiver<IngestStatus>,
    running: RwLock<Option<Running>>,
    /// Its actors' mailbox depths, for the metrics.
    mailboxes: crate::telemetry::Mailboxes,
    /// When the gauges were last sampled (milliseconds since the epoch).
    sampled_ms: std::sync::atomic::AtomicU64,
    /// Resolves holding a snapshot (an LMDB reader slot) at once: half of `state.readers_max`;
    /// more wait their turn rather than run the reader table out.
    resolving: tokio::sync::Semaphore,
}

impl Node {
    /// Starts a node on `data_dir` (created if missing) with the local journal
    /// (`<data_dir>/journal`), recovering the journal and catching the state up with it in the
    /// background. Must be called inside a running actix System.
    pub fn start(config: Config, data_dir: impl AsRef<Path>) -> Result<Self, NodeError> {
        let journal = LocalJournal::new(config.journal.clone());
        Self::start_with_log(config, data_dir, journal)
    }

    /// Starts a node on `data_dir` whose log is `backend`: the local journal
    /// ([`LocalJournal`], what [`start`](Self::start) uses) or a replicated log (the
    /// `stemedb-jetstream` crate's). Must be called inside a running actix System.
    pub fn start_with_log(
        config: Config,
        data_dir: impl AsRef<Path>,
        backend: impl LogBackend + 'static,
    ) -> Result<Self, NodeError> {
        Self::start_inner(config, data_dir.as_ref(), Box::new(backend), Hooks::default())
    }

    /// [`start`](Self::start) with test-only hooks installed in the ingest actors.
    #[cfg(feature = "test-kit")]
    #[doc(hidden)]
    pub fn start_with_hooks(
        config: Config,
        data_dir: impl AsRef<Path>,
        hooks: Hooks,
    ) -> Result<Self, NodeError> {
        let journal = LocalJournal::new(config.journal.clone());
        Self::start_inner(config, data_dir.as_ref(), Box::new(journal), hooks)
    }

    fn start_inner(
        config: Config,
        data_dir: &Path,
        backend: Box<dyn LogBackend>,
        hooks: Hooks,
    ) -> Result<Self, NodeError> {
        config.validate()?;
        if Arbiter::try_current().is_none() {
            return Err(NodeError::NoSystem);
        }
        let data_dir = data_dir.to_owned();
        std::fs::create_dir_all(&data_dir).map_err(|source| NodeError::CreateDir {
            dir: data_dir.clone(),
            source,
        })?;
        // The key first: a key that cannot be used fails the start before anything is opened.
        let checkpointer = Arc::new(checkpoint::Checkpointer::open(&config.checkpoint, &data_dir)?);
        let pipeline::Storage {
            state,
            cursor,
            opened,
        } = pipeline::open(&config, &data_dir, backend)?;
        let (status_tx, status) = watch::channel(IngestStatus {
            cursor,
            ..IngestStatus::default()
        });
        let trust_configured = config.votes.trust_map().map_err(ConfigError::invalid)?;
        let admins = config.votes.admin_set().map_err(ConfigError::invalid)?;
        let mut admin_list: Vec<AgentId> = admins.iter().copied().collect();
        admin_list.sort();
        let registry = Arc::new(LensRegistry::with_builtins());
        let trust_book = Arc::new(TrustBook {
            default: config.votes.trust_default,
            configured: trust_configured.clone(),
        });
        let (views, refresher) = Views::new(
            config.node.views_max,
            config.node.views_bytes_max,
            config.node.watch_buffer,
            state.clone(),
            registry.clone(),
            trust_book.clone(),
        );
        let refresher = std::thread::Builder::new()
            .name("stemedb-views".into())
            .spawn(move || refresher.run())
            .map_err(|source| NodeError::Spawn {
                what: "view refresher",
                source,
            })?;
        let listener: CommitListener = {
            let views = views.clone();
            Arc::new(move |cursor, touched, trust_changed, learned| {
                views.on_commit(cursor, touched, trust_changed, learned)
            })
        };
        let (audit, next_audit_id, audit_writer) = AuditLog::open(
            &data_dir.join(AUDIT_DIR),
            AuditBounds {
                map_bytes: config.node.audit_map_bytes,
                bytes_max: config.node.audit_bytes_max,
                records_max: config.node.audit_records_max,
            },
        )?;
        let mailboxes = crate::telemetry::Mailboxes::default();
        let actors = Actors::start(
            &config,
            &opened.log,
            &state,
            status_tx,
            hooks,
            listener,
            &mailboxes,
        )?;
        let admission = Admission::start(
            &opened.append,
            &config.limits,
            admins,
            config.node.verify_threads(),
            Budget::new(
                config.node.submit_queue_depth_max,
                config.node.verify_queue_bytes_max,
            ),
            config.node.verify_batch_records_max,
            actors.published.clone(),
        )
        .map_err(|source| NodeError::Spawn {
            what: "verification",
            source,
        })?;
        let (checkpoint_stop, stopped) = crossbeam_channel::bounded::<()>(0);
        let checkpoint_thread = match config.checkpoint.enabled {
            false => None,
            true => {
                let (checkpointer, state) = (checkpointer.clone(), state.clone());
                let thread = std::thread::Builder::new()
                    .name("stemedb-checkpoints".into())
                    .spawn(move || checkpointer.run(state, stopped))
                    .map_err(|source| NodeError::Spawn {
                        what: "checkpointer",
                        source,
                    })?;
                Some(thread)
            }
        };
        tracing::info!(dir = %data_dir.display(), cursor, log_end = opened.log.durable_end(), "node started");
        describe_metrics();
        let node = Self {
            inner: Arc::new(Inner {
                data_dir,
                submit_batch_records_max: config.node.submit_batch_records_max,
                trust_default: config.votes.trust_default,
                trust_book,
                registry,
                views: views.clone(),
                views_max: config.node.views_max,
                limits: config.limits.clone(),
                audit_mode: config.node.audit,
                next_audit_id: std::sync::atomic::AtomicU64::new(next_audit_id),
                trust_configured,
                status,
                mailboxes,
                sampled_ms: std::sync::atomic::AtomicU64::new(0),
                resolving: tokio::sync::Semaphore::new((config.state.readers_max as usize / 2).max(1)),
                checkpointer,
                admins: admin_list,
                running: RwLock::new(Some(Running {
                    log: opened.log,
                    append: opened.append,
                    guard: opened.guard,
                    state,
                    admission,
                    _ingestor: actors.ingestor,
                    arbiters: actors.arbiters,
                    checkers: actors.checkers,
                    resolvers: actix::SyncArbiter::start(config.node.lens_threads(), || LensActor),
                    views: views.clone(),
                    refresher: Some(refresher),
                    audit: Some(audit),
                    audit_writer: Some(audit_writer),
                    checkpoint_stop: Some(checkpoint_stop),
                    checkpoint_thread,
                })),
            }),
        };
        actix::Actor::start(gauges::GaugeSampler {
            node: Arc::downgrade(&node.inner),
        });
        Ok(node)
    }

    /// Returns the data directory.
    pub fn data_dir(&self) -> &Path {
        &self.inner.data_dir
    }

    /// Returns the log's durable end: every record below it is acknowledged.
    pub fn durable_end(&self) -> Result<u64, NodeError> {
        self.with_running(|running| Ok(running.log.durable_end()))
    }

    fn with_running<R>(&self, f: impl FnOnce(&Running) -> Result<R, NodeError>) -> Result<R, NodeError> {
        let running = self.inner.running.read();
        f(running.as_ref().ok_or(NodeError::Closed)?)
    }

    fn with_state<R>(&self, f: impl FnOnce(&State) -> Result<R, NodeError>) -> Result<R, NodeError> {
        // Clone the handle out, so a read does not hold up shutdown's lock. The clone lives only
        // for this call: shutdown waits for every clone to drop before it closes LMDB.
        let state = self.with_running(|running| Ok(running.state.clone()))?;
        f(&state)
    }

    /// Shuts the node down gracefully: refuses new submissions, lets every accepted one become
    /// durable and indexed, stops the actors, and closes the log and the state. Returns
    /// once the data directory can be opened again. Later calls on any clone of this handle
    /// answer `Closed`, at once: the threads are joined and the storage closed on a blocking
    /// thread, so neither readers nor the host's executor wait for them.
    pub async fn shutdown(&self) -> Result<(), NodeError> {
        // The parts stay in place while shutdown waits: should this future be dropped midway,
        // the node's Drop still stops the threads.
        let mut in_flight = match self.inner.running.write().as_mut() {
            Some(running) => running.admission.close(),
            None => return Err(NodeError::Closed),
        };
        // Every append is queued; the log acknowledges (or drops) each exactly once.
        let _ = in_flight.wait_for(|n| *n == 0).await;
        let end = self.durable_end()?;
        let mut status = self.inner.status.clone();
        let caught_up = actix_rt::time::timeout(
            SHUTDOWN_INGEST_WAIT,
            status.wait_for(|s| s.cursor >= end || s.stalled.is_some()),
        )
        .await
        .map(|s| s.map(|s| s.stalled.clone()));
        // Taken out under the lock, which is released at once: from here on readers answer
        // `Closed` without waiting for the joins below.
        let running = self.inner.running.write().take();
        let Some(running) = running else {
            return Err(NodeError::Closed);
        };
        // Joining threads and closing LMDB block, so they run on a blocking thread rather than
        // on the host's executor; should this future be dropped, they still complete.
        actix_rt::task::spawn_blocking(move || running.stop_and_close())
            .await
            .map_err(NodeError::Teardown)?;
        tracing::info!(dir = %self.inner.data_dir.display(), end, "node shut down");
        match caught_up {
            Ok(Ok(Some(reason))) => Err(NodeError::Stalled(reason)),
            Err(_) => Err(NodeError::Stalled(format!(
                "ingestion did not reach the log end {end} within {SHUTDOWN_INGEST_WAIT:?}"
            ))),
            _ => Ok(()),
        }
    }
}

impl Drop for Inner {
    /// A node dropped without [`Node::shutdown`] still stops its ingest thread, so nothing
    /// keeps the journal or the state open; what was acknowledged is durable in the journal
    /// and is applied at the next start.
    fn drop(&mut self) {
        if let Some(mut running) = self.running.get_mut().take() {
            running.stop_threads();
        }
    }
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("data_dir", &self.inner.data_dir)
            .finish()
    }
}

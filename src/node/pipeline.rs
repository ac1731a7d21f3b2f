//! The node's moving parts: opening the storage, starting the ingest actors on their own
//! threads, and the [`Running`] set that shutdown takes down.

use std::path::Path;
use std::sync::Arc;

use actix::prelude::*;
use tokio::sync::watch;

use super::submit::Admission;
use super::{NodeError, STATE_DIR};
use crate::Config;
use crate::actors::ingest_check::{Checker, Published};
use crate::actors::{
    CommitListener, Hooks, IngestStatus, IngestorActor, LensActor, VoteCounterActor, listen_for_durable_ends,
};
use crate::config::ConfigError;
use crate::lens::Views;
use crate::log::{
    Append, JOURNAL_DIR, LocalJournal, Log, LogBackend, LogError, OpenedLog, ReadError, Rebuild,
};
use crate::storage::audit::AuditLog;
use crate::storage::state::{SCHEMA_VERSION, State, Upgrade};
use crate::telemetry::Mailboxes;

/// The parts that shutdown takes down.
pub(super) struct Running {
    /// The log the ingestor reads.
    pub(super) log: Arc<dyn Log>,
    /// Where admitted records go.
    pub(super) append: Arc<dyn Append>,
    /// What the log backend holds until the node is closed (its journal, its connection, its
    /// directory lock); dropped after the state is closed.
    pub(super) guard: Box<dyn Send + Sync>,
    pub(super) state: State,
    pub(super) admission: Admission,
    /// Held so the ingestor lives as long as the node, whatever its subscriptions do.
    pub(super) _ingestor: Addr<IngestorActor>,
    /// The ingestor's thread, then one thread per vote-counter shard.
    pub(super) arbiters: Vec<Arbiter>,
    /// The resolver pool; its threads end when the last address is dropped.
    pub(super) resolvers: Addr<LensActor>,
    /// The ingest's check threads (none if only admission writes the log); they end once the
    /// ingestor is gone, so they are joined after its arbiter.
    pub(super) checkers: Vec<std::thread::JoinHandle<()>>,
    /// The views and their refresher thread.
    pub(super) views: Arc<Views>,
    pub(super) refresher: Option<std::thread::JoinHandle<()>>,
    /// The audit trail and its writer thread.
    pub(super) audit: Option<AuditLog>,
    pub(super) audit_writer: Option<std::thread::JoinHandle<()>>,
    /// Dropped to stop the checkpointer thread, which holds the state.
    pub(super) checkpoint_stop: Option<crossbeam_channel::Sender<()>>,
    pub(super) checkpoint_thread: Option<std::thread::JoinHandle<()>>,
}

impl Running {
    /// Stops the ingestor and the shards and joins their threads, so that nothing holds the
    /// log or the state any more.
    pub(super) fn stop_threads(&mut self) {
        // The listener holds the ingestor's channel: dropping it ends the ingestor's stream.
        self.log.clear_durable_listener();
        drop(self.checkpoint_stop.take());
        if let Some(thread) = self.checkpoint_thread.take()
            && thread.join().is_err()
        {
            tracing::error!("the checkpointer panicked");
        }
        // Dropping the audit log ends its queue: the writer commits what is queued, then stops.
        drop(self.audit.take());
        if let Some(writer) = self.audit_writer.take()
            && writer.join().is_err()
        {
            tracing::error!("the audit writer panicked");
        }
        if let Some(refresher) = self.refresher.take() {
            self.views.stop_refresher();
            if refresher.join().is_err() {
                tracing::error!("the view refresher panicked");
            }
        }
        for arbiter in self.arbiters.drain(..) {
            arbiter.stop();
            if arbiter.join().is_err() {
                tracing::error!("an arbiter thread panicked");
            }
        }
        for checker in self.checkers.drain(..) {
            if checker.join().is_err() {
                tracing::error!("an ingest check thread panicked");
            }
        }
    }

    /// Stops the threads, then closes the state (waiting until no reader holds a handle) and
    /// the log. Blocks: call it off the async executor.
    pub(super) fn stop_and_close(mut self) {
        self.stop_threads();
        let Self {
            state,
            log,
            append,
            guard,
            ..
        } = self;
        state.close();
        drop(append);
        drop(log);
        drop(guard);
    }
}

/// Records read per transaction while filling the tree.
const BACKFILL_RECORDS: usize = 4096;
/// Bytes read per transaction while filling the tree (at least one record).
const BACKFILL_BYTES: usize = 4 << 20;

/// Fills the Merkle tree of a state written before the tree existed, from the log, up to the
/// ingest cursor. If the log no longer holds the records the tree lacks, the tree stays behind
/// and proofs are refused (`StateError::TreeUnavailable`); the node runs on. A transient read
/// error fails the start, to be retried.
fn backfill_tree(state: &State, log: &dyn Log, cursor: u64) -> Result<(), NodeError> {
    let mut at = state.tree_extent()?;
    if at.cursor >= cursor {
        return Ok(());
    }
    tracing::info!(
        from = at.cursor,
        to = cursor,
        "filling the Merkle tree from the log"
    );
    let mut reader = log.reader();
    while at.cursor < cursor {
        let read = match reader.read_range(at.cursor, BACKFILL_RECORDS, BACKFILL_BYTES) {
            Ok(read) => read,
            Err(ReadError::Transient(source)) => return Err(NodeError::Log(LogError::Backend(source))),
            Err(error) => {
                tracing::warn!(
                    tree = at.cursor,
                    cursor,
                    %error,
                    "the log no longer holds the records the Merkle tree lacks: proofs are refused"
                );
                return Ok(());
            }
        };
        let records: Vec<(u64, u64, &[u8])> = read
            .records
            .iter()
            .enumerate()
            .map(|(i, (offset, payload))| {
                let next = read.records.get(i + 1).map_or(read.next, |(next, _)| *next);
                (*offset, next, &payload[..])
            })
            .collect();
        let before = at.cursor;
        at = state.tree_backfill(&records)?;
        if at.cursor == before {
            break;
        }
    }
    Ok(())
}

/// The storage a node runs on: the state, and its log.
pub(super) struct Storage {
    pub(super) state: State,
    pub(super) cursor: u64,
    pub(super) opened: OpenedLog,
}

/// Opens the state, then the log of `backend` (whose recovery never cuts below the state's
/// cursor). A state of an older schema is rebuilt from the log when the log holds every record
/// from its start, intact; otherwise it must be converted in place, by command.
pub(super) fn open(
    config: &Config,
    data_dir: &Path,
    mut backend: Box<dyn LogBackend>,
) -> Result<Storage, NodeError> {
    backend.prepare(data_dir)?;
    let state = State::open_with(
        data_dir.join(STATE_DIR),
        config.state.clone(),
        |outdated| match backend.rebuild(data_dir, outdated.cursor)? {
            Rebuild::Allowed => {
                tracing::warn!(
                    from = outdated.found,
                    "state of an older schema: rebuilding it from the log"
                );
                Ok(Upgrade::Rebuild)
            }
            Rebuild::Refused { start, quarantined } => Err(NodeError::StateNeedsConversion {
                dir: data_dir.to_owned(),
                found: outdated.found,
                expected: SCHEMA_VERSION,
                journal_start: start,
                quarantined,
            }),
        },
    )?;
    let cursor = state.ingest_cursor()?;
    let opened = backend.open(data_dir, cursor)?;
    state.set_verifiable(config.checkpoint.enabled);
    state.set_learned(config.learned.settings())?;
    if config.checkpoint.enabled {
        backfill_tree(&state, opened.log.as_ref(), cursor)?;
        if state.map_rebuild()? {
            tracing::info!(cursor, "rebuilt the authenticated map from the state");
        }
    }
    Ok(Storage {
        state,
        cursor,
        opened,
    })
}

/// Converts the state of `data_dir` to this build's schema in place; while it converts it holds
/// the journal's lock, so that no node runs on the directory meanwhile. Returns the version it
/// had, or `None` if it was current already. Refuses a directory without `journal/` and
/// `state/`.
pub(super) fn convert_storage(config: &Config, data_dir: &Path) -> Result<Option<u32>, NodeError> {
    // A mistyped directory must not become a new, empty state.
    for part in [STATE_DIR, JOURNAL_DIR] {
        if !data_dir.join(part).is_dir() {
            return Err(NodeError::NotADataDir {
                dir: data_dir.to_owned(),
                missing: part,
            });
        }
    }
    let mut found = None;
    let mut journal = LocalJournal::new(config.journal.clone());
    journal.prepare(data_dir)?;
    let state = State::open_with(data_dir.join(STATE_DIR), config.state.clone(), |outdated| {
        // Opens the journal (and takes its lock) for as long as the conversion runs.
        journal.rebuild(data_dir, outdated.cursor)?;
        found = Some(outdated.found);
        Ok::<_, NodeError>(Upgrade::Convert)
    })?;
    state.sync()?;
    state.close();
    drop(journal);
    Ok(found)
}

/// The ingestor's part of the node's configuration.
fn ingestor_config(node: &crate::config::NodeConfig) -> crate::actors::IngestorConfig {
    crate::actors::IngestorConfig {
        batch_records_max: node.ingest_batch_records_max,
        batch_bytes_max: node.ingest_batch_bytes_max,
        commit_duty_percent: node.ingest_commit_duty_percent,
        retry_backoff_ms_max: node.ingest_retry_backoff_ms_max,
    }
}

/// The ingest actors, started.
pub(super) struct Actors {
    /// The ingestor.
    pub(super) ingestor: Addr<IngestorActor>,
    /// The ingestor's thread, then one thread per vote-counter shard.
    pub(super) arbiters: Vec<Arbiter>,
    /// The payloads admission hands to a log that others can write (`None` if only admission
    /// writes the log): noted so that the ingest need not check them again.
    pub(super) published: Option<Arc<Published>>,
    /// The check threads of such a log; they end once the ingestor is gone.
    pub(super) checkers: Vec<std::thread::JoinHandle<()>>,
}

impl Actors {
    /// Starts the shards and the ingestor, each on a thread of its own, and installs the log's
    /// durable-end listener, which wakes the ingestor. If others can write the log, the ingestor
    /// has every batch checked before it plans it, on check threads started here.
    pub(super) fn start(
        config: &Config,
        log: &Arc<dyn Log>,
        state: &State,
        status: watch::Sender<IngestStatus>,
        hooks: Hooks,
        listener: CommitListener,
        mailboxes: &Mailboxes,
    ) -> Result<Self, NodeError> {
        // A log that others can write is checked at ingest, on check threads.
        let (published, checker, checkers) = if log.admitted_only() {
            (None, None, Vec::new())
        } else {
            let published: Arc<Published> = Arc::default();
            let admins = config.votes.admin_set().map_err(ConfigError::invalid)?;
            let (checker, checkers) = Checker::start(
                &config.limits,
                admins,
                Arc::clone(&published),
                config.node.verify_threads(),
            )
            .map_err(|source| NodeError::Spawn {
                what: "ingest checks",
                source,
            })?;
            (Some(published), Some(checker), checkers)
        };
        let mut arbiters = vec![Arbiter::new()];
        let mut shards = Vec::with_capacity(config.votes.shards);
        for shard in 0..config.votes.shards {
            let arbiter = Arbiter::new();
            let counter = VoteCounterActor::new(shard, state.clone()).with_hooks(hooks.clone());
            shards.push(VoteCounterActor::start_in_arbiter(&arbiter.handle(), move |_| {
                counter
            }));
            arbiters.push(arbiter);
        }
        let (durable_ends, durable_spans) = listen_for_durable_ends(log, mailboxes);
        let ingestor = IngestorActor::new(
            Arc::clone(log),
            state.clone(),
            ingestor_config(&config.node),
            durable_ends,
            shards,
            status,
        )?
        .with_hooks(hooks)
        .with_checker(checker)
        .with_durable_spans(durable_spans)
        .with_commit_listener(listener)
        .with_mailboxes(mailboxes.clone());
        let ingestor = IngestorActor::start_in_arbiter(&arbiters[0].handle(), move |_| ingestor);
        Ok(Self {
            ingestor,
            arbiters,
            published,
            checkers,
        })
    }
}

impl super::Node {
    /// Converts the state in `data_dir` (no node may run on it) from an older schema to this
    /// build's, in place and in one transaction: what a node asks for when the journal no longer
    /// holds every record to rebuild the state from. Returns the version it had, or `None` if it
    /// was current. Back the directory up first: an older build cannot read the result.
    pub fn convert_state(config: &Config, data_dir: impl AsRef<Path>) -> Result<Option<u32>, NodeError> {
        config.validate()?;
        convert_storage(config, data_dir.as_ref())
    }
}

//! The node's moving parts: opening the storage, starting the ingest actors on their own
//! threads, and the [`Running`] set that shutdown takes down.

use std::path::Path;
use std::sync::Arc;

use actix::prelude::*;
use tokio::sync::watch;

use super::submit::{Admission, Sink};
use super::{JOURNAL_DIR, NodeError, STATE_DIR};
use crate::Config;
use crate::actors::{
    CommitListener, DurableBroadcaster, Hooks, IngestStatus, IngestorActor, LensActor, SubscribeCounted,
    VoteCounterActor,
};
use crate::budget::Budget;
use crate::lens::Views;
use crate::replication::{Replica, ReplicationError};
use crate::storage::audit::AuditLog;
use crate::storage::journal::{Faults, Journal, JournalError, Log, OpenOptions};
use crate::storage::state::{SCHEMA_VERSION, State, Upgrade};

/// The parts that shutdown takes down.
pub(super) struct Running {
    /// The log the ingestor reads: the journal, or the stream.
    pub(super) log: Arc<dyn Log>,
    /// The local journal, unless the log is replicated.
    pub(super) journal: Option<Journal>,
    /// The connection to the stream, if the log is replicated.
    pub(super) replica: Option<Replica>,
    /// The data directory's lock, when no journal holds one.
    pub(super) lock: Option<std::fs::File>,
    pub(super) state: State,
    pub(super) admission: Admission,
    /// Held so the ingestor lives as long as the node, whatever its subscriptions do.
    pub(super) _ingestor: Addr<IngestorActor>,
    /// The ingestor's thread, one thread per vote-counter shard, then the broadcaster's.
    pub(super) arbiters: Vec<Arbiter>,
    pub(super) _broadcaster: Addr<DurableBroadcaster>,
    /// The resolver pool; its threads end when the last address is dropped.
    pub(super) lenses: Addr<LensActor>,
    /// The views and their refresher thread.
    pub(super) views: Arc<Views>,
    pub(super) refresher: Option<std::thread::JoinHandle<()>>,
    /// The audit trail and its writer thread.
    pub(super) audit: Option<AuditLog>,
    pub(super) audit_writer: Option<std::thread::JoinHandle<()>>,
}

impl Running {
    /// Stops the ingestor, the shards and the broadcaster and joins their threads, so that nothing holds the
    /// journal or the state any more.
    pub(super) fn stop_threads(&mut self) {
        // Dropping the log ends its queue: the writer commits what is queued, then stops.
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
    }

    /// Stops the threads, then closes the state (waiting until no reader holds a handle) and
    /// the journal. Blocks: call it off the async executor.
    pub(super) fn stop_and_close(mut self) {
        self.stop_threads();
        let Self {
            journal,
            state,
            replica,
            log,
            lock,
            ..
        } = self;
        state.close();
        drop(journal);
        drop(log);
        drop(replica);
        drop(lock);
    }
}

/// The storage a node runs on: the state, and the log with what writes to it.
pub(super) struct Storage {
    pub(super) state: State,
    pub(super) cursor: u64,
    pub(super) log: Arc<dyn Log>,
    pub(super) sink: Sink,
    pub(super) journal: Option<Journal>,
    pub(super) replica: Option<Replica>,
    /// The data directory's lock, when no journal holds one (a replica of a stream).
    pub(super) lock: Option<std::fs::File>,
}

/// Opens the state and the log `config.replication` names.
pub(super) fn open(config: &Config, data_dir: &Path, faults: &Arc<dyn Faults>) -> Result<Storage, NodeError> {
    if !config.replication.is_jetstream() {
        if data_dir.join(crate::replication::STREAM_ID_FILE).exists() {
            return Err(ReplicationError::StreamReplica {
                dir: data_dir.to_owned(),
            }
            .into());
        }
        let (state, journal, cursor) = open_storage(config, data_dir, faults)?;
        return Ok(Storage {
            state,
            cursor,
            log: Arc::new(journal.clone()),
            sink: Sink::Journal(journal.clone()),
            journal: Some(journal),
            replica: None,
            lock: None,
        });
    }
    if data_dir.join(JOURNAL_DIR).exists() {
        return Err(ReplicationError::LocalJournal {
            dir: data_dir.to_owned(),
        }
        .into());
    }
    let lock = lock_data_dir(data_dir)?;
    // The stream holds every record from sequence 1: a state of an older schema is rebuilt.
    let state = State::open_with(data_dir.join(STATE_DIR), config.state.clone(), |outdated| {
        tracing::warn!(
            from = outdated.found,
            "state of an older schema: rebuilding it from the stream"
        );
        Ok::<_, NodeError>(Upgrade::Rebuild)
    })?;
    let cursor = state.ingest_cursor()?;
    let budget = Budget::new(
        config.journal.group_commit_queue_depth_max,
        config.journal.group_commit_queue_bytes_max,
    );
    let replica = Replica::connect(&config.replication, data_dir, cursor, budget)?;
    let log: Arc<dyn Log> = replica.log.clone();
    Ok(Storage {
        state,
        cursor,
        log,
        sink: Sink::Stream(replica.publisher.clone()),
        journal: None,
        replica: Some(replica),
        lock: Some(lock),
    })
}

/// Creates `data_dir` if missing and takes its lock (`data_dir/LOCK`): no two nodes run on one
/// state. The lock lasts as long as the file is open.
pub(super) fn lock_data_dir(data_dir: &Path) -> Result<std::fs::File, NodeError> {
    std::fs::create_dir_all(data_dir).map_err(|source| JournalError::Io {
        op: "create the data directory",
        path: data_dir.to_owned(),
        source,
    })?;
    Ok(crate::storage::journal::lock_dir(data_dir)?)
}

/// Opens the state, then the journal (whose recovery never cuts below the state's cursor);
/// returns them with the state's ingest cursor.
pub(super) fn open_storage(
    config: &Config,
    data_dir: &Path,
    faults: &Arc<dyn Faults>,
) -> Result<(State, Journal, u64), NodeError> {
    // The state first: its ingest cursor is a floor that journal recovery never cuts below.
    // A state of an older schema is rebuilt from the journal when the journal holds every
    // record from offset 0, intact; otherwise it must be converted in place, by command.
    let mut opened = None;
    let state = State::open_with(data_dir.join(STATE_DIR), config.state.clone(), |outdated| {
        let journal = open_journal(config, data_dir, outdated.cursor, faults)?;
        let (journal_start, quarantined) = (journal.start(), journal.quarantined_count());
        opened = Some(journal);
        if journal_start == 0 && quarantined == 0 {
            tracing::warn!(
                from = outdated.found,
                "state of an older schema: rebuilding it from the journal"
            );
            return Ok(Upgrade::Rebuild);
        }
        Err(NodeError::StateNeedsConversion {
            dir: data_dir.to_owned(),
            found: outdated.found,
            expected: SCHEMA_VERSION,
            journal_start,
            quarantined,
        })
    })?;
    let cursor = state.ingest_cursor()?;
    let journal = match opened {
        Some(journal) => journal,
        None => open_journal(config, data_dir, cursor, faults)?,
    };
    Ok((state, journal, cursor))
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
    let mut journal = None;
    let state = State::open_with(data_dir.join(STATE_DIR), config.state.clone(), |outdated| {
        journal = Some(open_journal(
            config,
            data_dir,
            outdated.cursor,
            &(Arc::new(crate::storage::journal::NoFaults) as Arc<dyn Faults>),
        )?);
        found = Some(outdated.found);
        Ok::<_, NodeError>(Upgrade::Convert)
    })?;
    state.sync()?;
    state.close();
    drop(journal);
    Ok(found)
}

/// Opens the journal, never cutting below the state's ingest `cursor`.
fn open_journal(
    config: &Config,
    data_dir: &Path,
    cursor: u64,
    faults: &Arc<dyn Faults>,
) -> Result<Journal, NodeError> {
    let options = OpenOptions {
        durable_floor: cursor,
        faults: Arc::clone(faults),
    };
    match Journal::open_with(data_dir.join(JOURNAL_DIR), config.journal.clone(), options) {
        Err(JournalError::CursorBeyondEnd { end, .. }) if cursor > end => {
            Err(NodeError::StateAheadOfJournal {
                cursor,
                journal_end: end,
            })
        }
        other => Ok(other?),
    }
}

/// The ingest actors, started.
pub(super) struct Actors {
    /// The ingestor.
    pub(super) ingestor: Addr<IngestorActor>,
    /// The ingestor's thread, one thread per vote-counter shard, then the broadcaster's.
    pub(super) arbiters: Vec<Arbiter>,
    pub(super) broadcaster: Addr<DurableBroadcaster>,
}

impl Actors {
    /// Starts the shards, the ingestor and the broadcaster, each on a thread of its own, and subscribes the
    /// ingestor to durable offsets.
    #[expect(
        clippy::too_many_arguments,
        reason = "the node's parts, each used once; a struct would only restate them"
    )]
    pub(super) fn start(
        config: &Config,
        log: &Arc<dyn Log>,
        journal: Option<&Journal>,
        state: &State,
        status: watch::Sender<IngestStatus>,
        hooks: Hooks,
        listener: CommitListener,
        mailboxes: &crate::telemetry::Mailboxes,
    ) -> Result<Self, NodeError> {
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
        let ingestor = IngestorActor::new(
            Arc::clone(log),
            state.clone(),
            config.node.clone(),
            shards,
            status,
        )?
        .with_hooks(hooks)
        .with_commit_listener(listener)
        .with_mailboxes(mailboxes.clone());
        let ingestor = IngestorActor::start_in_arbiter(&arbiters[0].handle(), move |_| ingestor);
        // Its own thread: the ingestor's wake-up must not wait for the host's thread.
        let broadcaster = Arbiter::new();
        let durable = match journal {
            Some(journal) => DurableBroadcaster::new(journal.clone()),
            None => DurableBroadcaster::for_log(log),
        };
        let durable_broadcaster =
            DurableBroadcaster::start_in_arbiter(&broadcaster.handle(), move |_| durable);
        arbiters.push(broadcaster);
        // The first subscriber of a new actor: it cannot be refused.
        durable_broadcaster.do_send(SubscribeCounted(
            ingestor.clone().recipient(),
            mailboxes.ingestor.clone(),
        ));
        Ok(Self {
            ingestor,
            arbiters,
            broadcaster: durable_broadcaster,
        })
    }
}

impl super::Node {
    /// Converts the state in `data_dir` (no node may run on it) from an older schema to this
    /// build's, in place and in one transaction: what a node asks for when the journal no longer
    /// holds every record to rebuild the state from. Returns the version it had, or `None` if it
    /// was current. Back the directory up first: an older build cannot read the result.
    pub fn convert_state(config: &Config, data_dir: impl AsRef<Path>) -> Result<Option<u32>, NodeError> {
        config.validate().map_err(NodeError::Config)?;
        convert_storage(config, data_dir.as_ref())
    }
}

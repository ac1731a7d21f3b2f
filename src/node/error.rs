//! Errors of the embedded node: starting it, submitting to it, waiting on it, reading it.

use thiserror::Error;

use crate::budget::QueueFull;
use crate::config::ConfigError;
use crate::log::{AppendError, LogError};
use crate::protocol::{AgentId, ValidationError};
use crate::storage::state::StateError;

/// The node could not start, stop or read.
#[derive(Debug, Error)]
pub enum NodeError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The data directory could not be created.
    #[error("cannot create the data directory {dir}: {source}")]
    CreateDir {
        /// The directory.
        dir: std::path::PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// [`Node::start`](super::Node::start) was called outside an actix System.
    #[error("the node must be started inside a running actix System (e.g. in #[actix::main])")]
    NoSystem,
    /// The log (the journal, or a replicated backend) could not be opened.
    #[error(transparent)]
    Log(#[from] LogError),
    /// The LMDB state failed.
    #[error(transparent)]
    State(#[from] StateError),
    /// A checkpoint could not be signed, or the checkpoint key used.
    #[error(transparent)]
    Checkpoint(#[from] super::CheckpointError),
    /// The state was written by an older build and the log no longer holds every record
    /// to rebuild it from: it must be converted in place. Nothing was changed.
    #[error(
        "the state in {dir} has schema version {found} and this build reads {expected}; the log \
         starts at position {journal_start} and has {quarantined} quarantined region(s), so the state cannot \
         be rebuilt from it. Back up the data directory, then convert the state in place: \
         `stemedb state convert {dir}`"
    )]
    StateNeedsConversion {
        /// The data directory.
        dir: std::path::PathBuf,
        /// The state's schema version.
        found: u32,
        /// The version this build reads.
        expected: u32,
        /// The first position the log holds.
        journal_start: u64,
        /// Damaged log regions set aside.
        quarantined: usize,
    },
    /// A directory given as a data directory lacks its journal or state.
    #[error("{dir} is not a StemeDB data directory: it has no {missing}/")]
    NotADataDir {
        /// The directory.
        dir: std::path::PathBuf,
        /// What it lacks.
        missing: &'static str,
    },
    /// A pipeline thread could not be spawned.
    #[error("cannot spawn {what} thread: {source}")]
    Spawn {
        /// Which thread.
        what: &'static str,
        /// The OS error.
        source: std::io::Error,
    },
    /// An actor stopped before it answered.
    #[error("the {0} actor stopped unexpectedly")]
    ActorGone(&'static str),
    /// Ingestion is held by an error and did not finish before shutdown; what it did not apply
    /// stays in the log and is applied at the next start.
    #[error("ingestion is stalled: {0}")]
    Stalled(String),
    /// Stopping the node's threads or closing its storage failed during shutdown.
    #[error("shutdown could not stop the node's threads: {0}")]
    Teardown(#[source] actix_rt::task::JoinError),
    /// A listing's `after` cursor belongs to another listing (another subject or pair): the
    /// caller's input is wrong, and asking again with it cannot succeed.
    #[error("the `after` cursor belongs to another subject or pair")]
    BadCursor,
    /// A read named a subject or predicate longer than the node's limits allow; refused
    /// before any work. [`NameTooLong::field`](crate::protocol::NameTooLong::field) says which.
    #[error(transparent)]
    NameTooLong(#[from] crate::protocol::NameTooLong),
    /// The node was shut down.
    #[error("the node is shut down")]
    Closed,
}

/// A submission that was refused or failed. Nothing refused reaches the log.
#[derive(Debug, Error)]
pub enum SubmitError {
    /// The record broke a rule of shape, limits or signatures.
    #[error("record refused: {0}")]
    Invalid(#[from] ValidationError),
    /// A trust change signed by an agent that `votes.admins` does not list.
    #[error("trust change refused: its signer {admin} is not an administrator (votes.admins)")]
    NotAdmin {
        /// The signer.
        admin: AgentId,
    },
    /// A queue of the pipeline is full, in entries or in bytes: retry later. Nothing of the
    /// submission reached the log.
    #[error("node is busy: the {queue} is full: {full}; retry later")]
    Busy {
        /// Which queue.
        queue: Queue,
        /// Which bound refused, and how full the queue was.
        full: QueueFull,
    },
    /// The submission alone is larger than a queue's whole bound (see
    /// `node.verify_queue_bytes_max` and `journal.group_commit_queue_bytes_max`): it can never
    /// be accepted as it is; split it. Nothing of it reached the log.
    #[error("submission can never fit the {queue}: {full}; split it")]
    TooLargeForQueue {
        /// Which queue.
        queue: Queue,
        /// Which bound refused.
        full: QueueFull,
    },
    /// The batch holds more records than `node.submit_batch_records_max`.
    #[error("batch of {count} records exceeds node.submit_batch_records_max = {max}")]
    BatchTooLarge {
        /// Records in the batch.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// The log could not make the record durable (storage full, I/O error, poisoned, not
    /// acknowledged by a replicated log in time, too large for it).
    #[error("log append failed: {0}")]
    Log(AppendError),
    /// The node is shut down.
    #[error("the node is shut down")]
    Closed,
}

impl SubmitError {
    /// The refusal of a reservation in `queue`: busy, or too large ever to fit.
    pub(crate) fn refused(queue: Queue, full: QueueFull) -> Self {
        if full.can_never_fit() {
            Self::TooLargeForQueue { queue, full }
        } else {
            Self::Busy { queue, full }
        }
    }
}

impl From<AppendError> for SubmitError {
    fn from(error: AppendError) -> Self {
        match error {
            AppendError::Busy(full) | AppendError::TooLargeForQueue(full) => {
                Self::refused(Queue::Append, full)
            }
            AppendError::Closed => Self::Closed,
            other => Self::Log(other),
        }
    }
}

/// A bounded queue of the submission pipeline; see [`SubmitError::Busy`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Queue {
    /// Submissions waiting for (or in) signature verification: `node.submit_queue_depth_max`
    /// and `node.verify_queue_bytes_max`.
    Verification,
    /// Verified records waiting for the log to make them durable: for the local journal,
    /// `journal.group_commit_queue_depth_max` and `journal.group_commit_queue_bytes_max`.
    Append,
}

impl std::fmt::Display for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Verification => "verification queue",
            Self::Append => "log append queue",
        })
    }
}

/// A wait for ingestion that did not succeed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum WaitError {
    /// The deadline passed first.
    #[error("timed out waiting for log position {offset} to be indexed (ingested up to {cursor})")]
    Timeout {
        /// The offset waited for.
        offset: u64,
        /// The ingest cursor when the deadline passed.
        cursor: u64,
    },
    /// Ingestion is held by an error that needs an operator.
    #[error("ingestion is stalled at {cursor}: {reason}")]
    Stalled {
        /// The ingest cursor.
        cursor: u64,
        /// Why.
        reason: String,
    },
    /// The node is shut down.
    #[error("the node is shut down")]
    Closed,
}

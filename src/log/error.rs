//! The log seam's errors: reading ([`ReadError`]), appending ([`AppendError`]), and opening or
//! maintaining a log ([`LogError`]).

use thiserror::Error;

use super::QueueFull;
use crate::storage::journal::JournalError;

/// An error of a log backend outside this crate, kept whole for its caller to inspect
/// (`downcast_ref`).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A range read that did not succeed.
#[derive(Debug, Error)]
pub enum ReadError {
    /// The bytes at the position are corrupt (and not quarantined): retrying cannot help.
    #[error("corrupt record at offset {position}: {source}")]
    Corrupt {
        /// The position.
        position: u64,
        /// What is wrong.
        source: BoxError,
    },
    /// The position is not the start of a record, or the log no longer holds it.
    #[error("offset {position} is not readable: {reason}")]
    Unreadable {
        /// The position.
        position: u64,
        /// Why.
        reason: &'static str,
    },
    /// A transient failure (I/O); the read may be retried.
    #[error(transparent)]
    Transient(BoxError),
}

/// An append the log refused or could not make durable.
#[derive(Debug, Error)]
pub enum AppendError {
    /// The append queue is full, in entries or in bytes: retry later. Nothing was queued.
    #[error("the append queue is full: {0}")]
    Busy(QueueFull),
    /// The group alone is larger than the queue's whole bound: it can never be queued as it is.
    #[error("the group can never fit the append queue: {0}")]
    TooLargeForQueue(QueueFull),
    /// One record is larger than the log stores.
    #[error("record of {bytes} bytes exceeds the log's largest record of {max} bytes")]
    RecordTooLarge {
        /// The record's encoded size.
        bytes: usize,
        /// The largest the log stores.
        max: usize,
    },
    /// The log's storage is full; appends resume when space returns.
    #[error("log storage is full: {0}")]
    StorageFull(BoxError),
    /// The log did not acknowledge the record in time (no quorum, no server): the record may or
    /// may not be stored, and resending it is safe (records are content-addressed).
    #[error("the log did not acknowledge the record: {0}")]
    NotAcknowledged(BoxError),
    /// The log cannot take the record now (a replicated log whose servers refuse or cannot be
    /// reached): nothing was stored, and a retry shortly may succeed.
    #[error("the log cannot take the record now: {0}")]
    Unavailable(BoxError),
    /// The log failed (an I/O error, a failed fsync that poisoned it).
    #[error("log append failed: {0}")]
    Failed(BoxError),
    /// The log is closed.
    #[error("the log is closed")]
    Closed,
}

impl From<JournalError> for AppendError {
    fn from(error: JournalError) -> Self {
        match error {
            JournalError::Busy { full } => Self::Busy(full),
            JournalError::TooLargeForQueue { full } => Self::TooLargeForQueue(full),
            JournalError::Closed => Self::Closed,
            JournalError::RecordSize { len, max } => Self::RecordTooLarge { bytes: len, max },
            full @ JournalError::StorageFull { .. } => Self::StorageFull(Box::new(full)),
            other => Self::Failed(Box::new(other)),
        }
    }
}

/// A log that could not be opened or maintained.
#[derive(Debug, Error)]
pub enum LogError {
    /// The local journal failed.
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// The state has applied records the log does not hold (the journal directory was
    /// replaced, or another stream was named): serving it would contradict the log.
    #[error(
        "state ingest cursor {cursor} lies beyond the log's end {end}: the log does not hold what the \
         state was built from"
    )]
    StateAhead {
        /// The state's ingest cursor.
        cursor: u64,
        /// The log's durable end.
        end: u64,
    },
    /// The data directory belongs to another kind of log.
    #[error("{dir} was built from {found}; it cannot run on {wanted}")]
    WrongKind {
        /// The data directory.
        dir: std::path::PathBuf,
        /// What it was built from.
        found: &'static str,
        /// What was asked for.
        wanted: &'static str,
    },
    /// A backend outside this crate failed; its error is kept whole.
    #[error(transparent)]
    Backend(BoxError),
}

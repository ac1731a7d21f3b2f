//! Why an ingest step failed, and how bad that is: transient (retried with a growing backoff),
//! permanent (reported stalled, retried at the longest backoff in case an operator fixes it),
//! or fatal (reported stalled; the ingestor halts until the node restarts).

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};

use crate::log::ReadError;
use crate::storage::state::{StateError, UnknownTag};

/// Why one drain step failed.
#[derive(Debug, thiserror::Error)]
pub(super) enum IngestError {
    #[error("log read failed: {0}")]
    Read(#[from] ReadError),
    #[error("state write failed: {0}")]
    State(#[from] StateError),
    #[error(
        "upgrade needed: the log record at offset {} has tag {}, which this build does not know \
         (a newer StemeDB wrote it); ingestion holds before it, and a build that knows the tag \
         resumes from it",
        .0.offset,
        .0.tag
    )]
    UnknownTag(UnknownTag),
    #[error("vote-counter shard {shard} stopped (it panicked or its thread ended)")]
    ShardGone { shard: usize },
    #[error("the apply step panicked: {0}")]
    Panicked(String),
    #[error("checking a batch failed: {0}")]
    CheckerGone(#[from] crate::actors::ingest_check::CheckerGone),
}

impl IngestError {
    /// Returns true if and only if retrying cannot help until an operator acts.
    pub(super) fn is_permanent(&self) -> bool {
        match self {
            Self::Read(ReadError::Transient(_)) | Self::State(StateError::Lmdb { .. }) => false,
            Self::Read(_) | Self::State(_) | Self::UnknownTag(_) => true,
            Self::ShardGone { .. } | Self::Panicked(_) | Self::CheckerGone(_) => true,
        }
    }

    /// Returns true if and only if the ingestor must halt: a lost shard never comes back, and
    /// after a panic the ingestor's own bookkeeping can no longer be trusted.
    pub(super) fn is_fatal(&self) -> bool {
        matches!(self, Self::ShardGone { .. } | Self::Panicked(_))
    }
}

/// Runs one step of the apply path, turning a panic into [`IngestError::Panicked`].
///
/// `AssertUnwindSafe` is sound here because nothing half-done survives the panic: an LMDB write
/// transaction interrupted by it aborts when dropped, so the state holds the last whole batch,
/// and the ingestor halts on this error rather than go on with what the step may have left in
/// its own fields.
pub(super) fn guarded<T>(step: impl FnOnce() -> Result<T, IngestError>) -> Result<T, IngestError> {
    match catch_unwind(AssertUnwindSafe(step)) {
        Ok(result) => result,
        Err(payload) => Err(IngestError::Panicked(panic_message(payload.as_ref()))),
    }
}

/// Returns the message a panic was raised with.
fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        return (*text).to_owned();
    }
    match payload.downcast_ref::<String>() {
        Some(text) => text.clone(),
        None => "(a panic payload that is not text)".to_owned(),
    }
}

//! [`Hooks`]: test-only seams into the ingest actors — faults to inject, and record tags to
//! treat as known. The default sets nothing, and no production path sets anything: the node
//! takes hooks only through its hidden `Node::start_with_hooks`.

use std::sync::Arc;

/// A hook called with one argument on an actor's thread; it may panic or block to inject a fault.
#[doc(hidden)]
pub type Hook<T> = Arc<dyn Fn(T) + Send + Sync>;

/// Test-only hooks; see the [module docs](self). Every field is empty by default.
#[doc(hidden)]
#[derive(Clone, Default)]
pub struct Hooks {
    /// Called by the ingestor before it commits a batch, with the ingest cursor: a panic here
    /// is a panic in the apply path.
    pub before_commit: Option<Hook<u64>>,
    /// Called by the ingestor after a committed batch is published, with the new cursor.
    pub after_batch: Option<Hook<u64>>,
    /// Called by a vote-counter shard before it counts a batch, with its shard number.
    pub before_tally: Option<Hook<usize>>,
    /// Record tags to apply as records that change nothing: stands in for a build that knows them.
    pub noop_record_tags: Vec<u8>,
    /// A deliberately broken build: the ingest applies every assertion as a record that
    /// changes nothing, while its cursor moves past it as if it were stored. Shows that the
    /// simulation arenas fail when the node loses writes.
    pub broken_skip_assertions: bool,
}

impl Hooks {
    pub(crate) fn call<T>(hook: &Option<Hook<T>>, argument: T) {
        if let Some(hook) = hook {
            hook(argument);
        }
    }
}

impl std::fmt::Debug for Hooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hooks")
            .field("before_commit", &self.before_commit.is_some())
            .field("after_batch", &self.after_batch.is_some())
            .field("before_tally", &self.before_tally.is_some())
            .field("noop_record_tags", &self.noop_record_tags)
            .field("broken_skip_assertions", &self.broken_skip_assertions)
            .finish()
    }
}

//! [`Hooks`]: test-only seams into the ingest actors — faults to inject, record tags to treat
//! as known, and a deliberately broken build. They exist only with the `test-kit` feature:
//! without it `Hooks` is an empty type whose methods compile to nothing, so no production path
//! carries a seam. The node takes hooks only through its hidden `Node::start_with_hooks`.

#[cfg(feature = "test-kit")]
use std::sync::Arc;

use crate::storage::state::{IngestRecord, Plan, Refused, State, StateError};

/// A hook called with one argument on an actor's thread; it may panic or block to inject a fault.
#[cfg(feature = "test-kit")]
#[doc(hidden)]
pub type Hook<T> = Arc<dyn Fn(T) + Send + Sync>;

/// Test-only hooks; see the [module docs](self). Every field is empty by default.
#[cfg(feature = "test-kit")]
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

/// Without the `test-kit` feature: no seams.
#[cfg(not(feature = "test-kit"))]
#[derive(Debug, Clone, Default)]
pub(crate) struct Hooks {
    _none: (),
}

/// The tag a deliberately broken build gives assertions, then applies as a no-op.
#[cfg(feature = "test-kit")]
const BROKEN_TAG: u8 = 0xEE;

#[cfg(feature = "test-kit")]
impl Hooks {
    fn call<T>(hook: &Option<Hook<T>>, argument: T) {
        if let Some(hook) = hook {
            hook(argument);
        }
    }

    pub(crate) fn before_commit(&self, cursor: u64) {
        Self::call(&self.before_commit, cursor);
    }

    pub(crate) fn after_batch(&self, cursor: u64) {
        Self::call(&self.after_batch, cursor);
    }

    pub(crate) fn before_tally(&self, shard: usize) {
        Self::call(&self.before_tally, shard);
    }

    /// Plans `records` against `state`, as the hooks' build would: known no-op tags, and
    /// with [`broken_skip_assertions`](Self::broken_skip_assertions) every assertion turned
    /// into a record that changes nothing.
    pub(crate) fn plan(
        &self,
        state: &State,
        mut records: Vec<IngestRecord>,
        refused: &[Refused],
    ) -> Result<Plan, StateError> {
        let mut noop = self.noop_record_tags.clone();
        if self.broken_skip_assertions {
            for record in &mut records {
                if record.payload.first() == Some(&crate::protocol::TAG_ASSERTION) {
                    let mut payload = record.payload.to_vec();
                    payload[0] = BROKEN_TAG;
                    record.payload = payload.into();
                }
            }
            noop.push(BROKEN_TAG);
        }
        state.plan_with(&records, &noop, refused)
    }
}

#[cfg(not(feature = "test-kit"))]
impl Hooks {
    #[inline(always)]
    pub(crate) fn before_commit(&self, _cursor: u64) {}

    #[inline(always)]
    pub(crate) fn after_batch(&self, _cursor: u64) {}

    #[inline(always)]
    pub(crate) fn before_tally(&self, _shard: usize) {}

    /// Plans `records` against `state`, with the verdicts of their checks.
    #[inline(always)]
    pub(crate) fn plan(&self, state: &State, records: Vec<IngestRecord>, refused: &[Refused]) -> Result<Plan, StateError> {
        state.plan_checked(&records, refused)
    }
}

#[cfg(feature = "test-kit")]
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

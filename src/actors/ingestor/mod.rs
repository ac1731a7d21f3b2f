//! [`IngestorActor`]: applies durable journal records to the LMDB state, exactly once.
//!
//! The actor runs on an arbiter of its own, the one thread that writes LMDB. It is woken by
//! the log's durable end, never by a timer (see `wake`: a watch channel that coalesces ends
//! the actor has not seen yet). Each end raises its target, and it then drains the journal in bounded batches
//! (`ingest_batch_records_max`, `ingest_batch_bytes_max`), one LMDB transaction per batch,
//! yielding to its mailbox between batches. The state commits the ingest cursor with each
//! batch, so a crash at any point resumes exactly where the state ends.
//!
//! Errors: end of log is where draining stops, not an error. A transient I/O error (journal
//! read or LMDB) is retried after a backoff that doubles from 1 ms up to
//! `ingest_retry_backoff_ms_max`, and counted. Corruption found in the journal, or a record
//! tag this build does not know, is reported in the [`IngestStatus`] and logged; ingestion
//! holds there, retrying at the longest backoff, rather than skip a record.
//!
//! Supervision: the apply path runs under `catch_unwind`. A panic in it, or a vote-counter
//! shard that stopped (a panic in the shard drops it, and its reply with it), halts the
//! ingestor: it publishes the reason as `stalled` at once, so that every waiter returns, and
//! applies nothing more until the node restarts. Should the actor itself unwind anyway, its
//! `Drop` publishes the stall.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use actix::prelude::*;
use tokio::sync::watch;

mod drain;
mod error;
mod outcome;
mod traced;
mod votes;
mod wake;

pub use wake::DurableOffset;
pub(crate) use traced::DurableSpans;
pub(crate) use wake::listen_for_durable_ends;

use drain::Drain;
use error::IngestError;
use outcome::record_outcome;
use traced::PendingSpans;

use super::hooks::Hooks;
use super::vote_counter::VoteCounterActor;
use crate::log::{Log, LogReader};
use crate::actors::ingest_check::Checker;
use crate::storage::state::{Plan, State, StateError, Tally};
use crate::telemetry::{Mailboxes, catalog};

/// Mailbox capacity: durable ends arrive through a watch channel, not the mailbox, which
/// holds only the actor's own `Drain` messages.
const MAILBOX_CAPACITY: usize = 16;
/// Name of the ingestor's journal cursor, which lets garbage collection pass applied segments.
pub const INGEST_CURSOR_NAME: &str = "ingest";
/// The journal cursor is saved (one state sync and one small fsync) once ingestion has
/// advanced this many bytes past the last save, or one collection step of the log if that is
/// less: often enough for garbage collection, rarely enough to cost nothing.
const JOURNAL_CURSOR_STRIDE_BYTES: u64 = 16 << 20;

/// Longest a commit is paced (see `NodeConfig::ingest_commit_duty_percent`).
const PACE_MAX: Duration = Duration::from_millis(10);
/// Journal bytes the ingestor may be behind and still pace its commits; further behind, it
/// commits as fast as it can.
const PACE_BACKLOG_BYTES_MAX: u64 = 64 << 10;

/// Consecutive failures of one step after which ingestion is reported stalled even though the
/// error looks transient: with backoff doubling from 1 ms, about a second of failing.
const STALL_FAILURES_MIN: u32 = 10;

/// Most announced durable ends remembered for the lag in seconds; past it, the newest entry
/// absorbs further ends (its time stays that of its first).
const ANNOUNCED_MAX: usize = 1024;

/// Where ingestion stands; published after every batch.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IngestStatus {
    /// Journal offset of the next record to apply: every record below it is applied.
    pub cursor: u64,
    /// Why ingestion is held, if it is (corruption, an unknown record tag, an error that keeps
    /// recurring, or a fault that halted the ingestor).
    pub stalled: Option<String>,
    /// Since when the oldest durable record not yet applied has been durable (as announced);
    /// `None` when caught up with every announcement.
    pub behind_since: Option<Instant>,
    /// Records applied (or refused) since the node started that lie at or past the journal's
    /// durable end at start: with the journal's count of records appended since it opened,
    /// this gives the lag in records.
    pub applied_since_start: u64,
}

/// What the ingestor needs of the node's configuration (`[node]`'s `ingest_*` fields).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IngestorConfig {
    /// Most records applied in one LMDB transaction.
    pub batch_records_max: usize,
    /// Most payload bytes applied in one LMDB transaction.
    pub batch_bytes_max: usize,
    /// Share of its time the ingest may spend committing while nearly caught up, in percent:
    /// it waits between commits to batch more; 100 disables the pacing.
    pub commit_duty_percent: u8,
    /// Longest backoff between retries of a failing step, in milliseconds.
    pub retry_backoff_ms_max: u64,
}

/// The ingestor actor.
pub struct IngestorActor {
    log: std::sync::Arc<dyn Log>,
    reader: Box<dyn LogReader>,
    state: State,
    config: IngestorConfig,
    /// The log's durable ends, until `started` takes them as a stream.
    durable_ends: Option<watch::Receiver<u64>>,
    /// The vote-counting shards, by shard number.
    shards: Vec<Addr<VoteCounterActor>>,
    status: watch::Sender<IngestStatus>,
    /// Next offset to read; equals the state's ingest cursor.
    cursor: u64,
    /// Highest durable end announced.
    target: u64,
    /// A [`Drain`] is queued or scheduled.
    drain_pending: bool,
    backoff_ms: u64,
    /// Consecutive failed steps.
    failures: u32,
    journal_cursor: u64,
    /// A fatal error halted ingestion: nothing more is applied until the node restarts.
    halted: bool,
    hooks: Hooks,
    /// When the last commit ended, and how long it took: paces the next (see
    /// `NodeConfig::ingest_commit_duty_percent`).
    last_commit: Option<(Instant, Duration)>,
    /// Told of every commit (materialized views); must return quickly.
    listener: Option<CommitListener>,
    /// Durable ends announced beyond the cursor, with when each arrived, oldest first.
    announced: VecDeque<(u64, Instant)>,
    /// The journal's durable end when the ingestor started.
    start_end: u64,
    /// See [`IngestStatus::applied_since_start`].
    applied_since_start: u64,
    /// The node's mailbox depths (its own announcements, and the shards' requests).
    mailboxes: Mailboxes,
    /// Checks every batch before it is planned, for a log that others can write.
    checker: Option<Checker>,
    /// The spans of durable ends not yet applied: the parents of the ingest commits.
    pending_spans: PendingSpans,
}

/// Told of every ingest commit: the cursor reached, the pairs touched, the agents whose trust
/// changed, and whether the learned trust model moved. Runs on the ingest thread, so it must return quickly and never block.
pub type CommitListener = std::sync::Arc<
    dyn Fn(
            u64,
            &std::collections::BTreeSet<crate::storage::state::PairId>,
            &std::collections::BTreeSet<crate::protocol::AgentId>,
            bool,
        )
        + Send
        + Sync,
>;

impl std::fmt::Debug for IngestorActor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IngestorActor")
            .field("cursor", &self.cursor)
            .field("target", &self.target)
            .finish()
    }
}

impl IngestorActor {
    /// Creates the ingestor; it resumes from the state's ingest cursor. Votes are counted by
    /// `shards` (at least one).
    pub fn new(
        log: std::sync::Arc<dyn Log>,
        state: State,
        config: IngestorConfig,
        durable_ends: watch::Receiver<u64>,
        shards: Vec<Addr<VoteCounterActor>>,
        status: watch::Sender<IngestStatus>,
    ) -> Result<Self, StateError> {
        if shards.is_empty() {
            return Err(StateError::Config(
                "the ingestor needs at least one vote-counter shard".into(),
            ));
        }
        let cursor = state.ingest_cursor()?;
        status.send_replace(IngestStatus {
            cursor,
            ..IngestStatus::default()
        });
        Ok(Self {
            reader: log.reader(),
            journal_cursor: log
                .collector()
                .and_then(|collector| collector.cursor(INGEST_CURSOR_NAME))
                .unwrap_or(0),
            start_end: log.durable_end(),
            log,
            state,
            config,
            durable_ends: Some(durable_ends),
            shards,
            status,
            cursor,
            target: cursor,
            drain_pending: false,
            backoff_ms: 0,
            failures: 0,
            halted: false,
            hooks: Hooks::default(),
            last_commit: None,
            listener: None,
            announced: VecDeque::new(),
            applied_since_start: 0,
            mailboxes: Mailboxes::default(),
            checker: None,
            pending_spans: PendingSpans::default(),
        })
    }

    /// Installs a listener told of every commit.
    pub fn with_commit_listener(mut self, listener: CommitListener) -> Self {
        self.listener = Some(listener);
        self
    }

    /// Counts its mailbox and its shards' requests in `mailboxes`.
    pub(crate) fn with_mailboxes(mut self, mailboxes: Mailboxes) -> Self {
        self.mailboxes = mailboxes;
        self
    }

    /// Has every batch checked by `checker` before it is planned (a log that others can
    /// write); `None` applies the log's records as they are (only admission writes it).
    pub(crate) fn with_checker(mut self, checker: Option<Checker>) -> Self {
        self.checker = checker;
        self
    }

    /// Takes the `ingest.pending` spans the log's listener opens in `spans` (see
    /// `listen_for_durable_ends`): each commit is then a child of the oldest it applies.
    pub(crate) fn with_durable_spans(mut self, spans: DurableSpans) -> Self {
        self.pending_spans = PendingSpans::new(spans);
        self
    }

    /// Installs test-only [`Hooks`] (faults to inject, tags to treat as known).
    #[doc(hidden)]
    #[cfg_attr(not(feature = "test-kit"), allow(private_interfaces, reason = "Hooks is empty without the test kit"))]
    pub fn with_hooks(mut self, hooks: Hooks) -> Self {
        self.hooks = hooks;
        self
    }

    fn schedule(&mut self, ctx: &mut Context<Self>, delay: Option<Duration>) {
        if self.drain_pending {
            return;
        }
        self.drain_pending = true;
        match delay {
            None => ctx.notify(Drain),
            Some(delay) => {
                ctx.notify_later(Drain, delay);
            }
        }
    }

    /// How long a batch that is not full waits before its commit, so that commits take at
    /// most their configured share of the time; see `NodeConfig::ingest_commit_duty_percent`.
    fn pace(&self) -> Option<Duration> {
        // Behind by more than a trickle: catching up comes first.
        if self.target.saturating_sub(self.cursor) >= PACE_BACKLOG_BYTES_MAX {
            return None;
        }
        let (ended, took) = self.last_commit?;
        let duty = u32::from(self.config.commit_duty_percent.clamp(1, 100));
        let rest = (took * (100 - duty) / duty).min(PACE_MAX);
        rest.checked_sub(ended.elapsed()).filter(|wait| !wait.is_zero())
    }

    /// past the journal's end at start.
    fn finish(&mut self, plan: &Plan, tallies: &[Tally], since_start: u64) -> Result<(), IngestError> {
        self.hooks.before_commit(self.cursor);
        // A child of the oldest durable end not applied yet, and so in its write's trace.
        let span = match self.pending_spans.parent() {
            Some(parent) => tracing::debug_span!(parent: parent, "ingest.commit", cursor = self.cursor),
            None => tracing::debug_span!("ingest.commit", cursor = self.cursor),
        };
        let _entered = span.enter();
        let started = Instant::now();
        let outcome = self.state.commit(plan, tallies)?;
        let took = started.elapsed();
        self.last_commit = Some((Instant::now(), took));
        metrics::histogram!(catalog::INGEST_COMMIT_SECONDS).record(took);
        self.applied_since_start += since_start;
        assert!(
            outcome.cursor > self.cursor,
            "a committed batch must advance the cursor"
        );
        self.cursor = outcome.cursor;
        self.pending_spans.applied(self.cursor, &span);
        if let Some(listener) = &self.listener {
            listener(outcome.cursor, &outcome.touched, &outcome.trust_changed, outcome.learned_changed);
        }
        while self.announced.front().is_some_and(|&(end, _)| end <= self.cursor) {
            self.announced.pop_front();
        }
        record_outcome(&outcome);
        self.save_journal_cursor();
        Ok(())
    }

    fn succeeded(&mut self, more: bool, ctx: &mut Context<Self>) {
        self.backoff_ms = 0;
        self.failures = 0;
        self.publish(None);
        self.hooks.after_batch(self.cursor);
        if more {
            self.schedule(ctx, None);
        } else if self.cursor < self.target {
            let pace = self.pace();
            self.schedule(ctx, pace);
        }
    }

    fn failed(&mut self, error: IngestError, ctx: &mut Context<Self>) {
        let _span = tracing::debug_span!("ingest.failed", cursor = self.cursor).entered();
        if error.is_fatal() {
            return self.halt(&error);
        }
        let permanent = error.is_permanent();
        self.failures = self.failures.saturating_add(1);
        let max = self.config.retry_backoff_ms_max;
        self.backoff_ms = if permanent {
            max
        } else {
            (self.backoff_ms * 2).clamp(1, max)
        };
        metrics::counter!(catalog::INGEST_RETRIES).increment(1);
        tracing::error!(%error, cursor = self.cursor, retry_ms = self.backoff_ms, "ingest step failed");
        // Reported as stalled once it is plainly not passing: waiters stop waiting, while the
        // ingestor keeps retrying in case it does pass.
        let stalled = permanent || self.failures >= STALL_FAILURES_MIN;
        self.publish(stalled.then(|| format!("at log offset {}: {error}", self.cursor)));
        self.schedule(ctx, Some(Duration::from_millis(self.backoff_ms)));
    }

    /// Stops ingestion for good (until the node restarts) and tells every waiter why.
    fn halt(&mut self, error: &IngestError) {
        self.halted = true;
        metrics::counter!(catalog::INGEST_HALTED).increment(1);
        tracing::error!(%error, cursor = self.cursor, "ingestion halted");
        self.publish(Some(format!(
            "at log offset {}: {error}; ingestion is halted until the node restarts",
            self.cursor
        )));
    }

    fn save_journal_cursor(&mut self) {
        // A log that keeps every record (a stream) has no cursor to save.
        let Some(collector) = self.log.collector() else {
            return;
        };
        let stride = JOURNAL_CURSOR_STRIDE_BYTES.min(collector.collect_step_bytes());
        if self.cursor.saturating_sub(self.journal_cursor) < stride {
            return;
        }
        // The state commits skip the meta-page sync; sync it first, so the log never lets
        // garbage collection pass records a power loss could take back out of the state.
        if let Err(error) = self.state.sync() {
            tracing::warn!(%error, "cannot sync the state before saving the ingest log cursor");
            return;
        }
        match collector.set_cursor(INGEST_CURSOR_NAME, self.cursor) {
            Ok(()) => self.journal_cursor = self.cursor,
            // Only garbage collection waits on it; the next batch tries again.
            Err(error) => return tracing::warn!(%error, "cannot save the ingest log cursor"),
        }
        // The state is durable up to the cursor just saved: retention may now let segments
        // below it go (a no-op under the default, which keeps everything).
        match collector.collect_garbage() {
            Ok(0) => {}
            Ok(removed) => tracing::info!(removed, cursor = self.cursor, "log segments collected"),
            Err(error) => tracing::warn!(%error, "log garbage collection failed"),
        }
    }

    fn publish(&self, stalled: Option<String>) {
        let status = IngestStatus {
            cursor: self.cursor,
            stalled,
            behind_since: self.announced.front().map(|&(_, at)| at),
            applied_since_start: self.applied_since_start,
        };
        self.status.send_if_modified(|current| {
            if current.stalled.is_none() && status.stalled.is_some() {
                metrics::counter!(catalog::INGEST_STALLS).increment(1);
            }
            let changed = *current != status;
            *current = status;
            changed
        });
    }
}

impl Actor for IngestorActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(MAILBOX_CAPACITY);
        if let Some(ends) = self.durable_ends.take() {
            ctx.add_stream(wake::as_stream(ends));
        }
    }
}

impl Drop for IngestorActor {
    /// A panic outside the guarded apply path unwinds through the actor and drops it: the
    /// status still says why, so that waiters return `Stalled` rather than a bare `Closed`.
    fn drop(&mut self) {
        if std::thread::panicking() && !self.halted {
            self.halt(&IngestError::Panicked("the ingestor actor unwound".to_owned()));
        }
    }
}


//! How an ingest commit joins the traces of the writes it applies, across three threads: the
//! HTTP worker's request span is the parent of the group commit's (see the journal's
//! `group_commit`), and the durable-end listener, running inside that commit, opens an
//! `ingest.pending` span for each durable end; the ingestor takes these, opens each
//! `ingest.commit` as a child of the oldest one it has not applied, and closes them once
//! applied. `ingest.pending` thus lasts from durability to application: the ingest lag of
//! that batch.
//!
//! Only `tracing` spans cross the threads; whatever subscriber is installed (OpenTelemetry
//! export, say) maps them. While `debug` spans are disabled, nothing is created, locked or
//! queued: the listener checks the level hint, an atomic load, and so does the ingestor.
//!
//! Invariant: the spans are kept oldest first, at most [`PENDING_SPANS_MAX`] of them.

use std::collections::VecDeque;
use std::sync::Arc;

use parking_lot::Mutex;
use tracing::Span;

/// Most `ingest.pending` spans held, on each side: past it, a new durable end gets none (its
/// trace then lacks the ingest commit), so that a stalled ingest holds bounded memory. As many
/// as the ingestor remembers announced ends.
pub(super) const PENDING_SPANS_MAX: usize = super::ANNOUNCED_MAX;

/// Returns true if and only if `debug` spans may be enabled: the only case in which spans
/// are carried to the ingestor.
fn tracing_debug() -> bool {
    tracing::level_enabled!(tracing::Level::DEBUG)
}

/// The `ingest.pending` spans opened by the log's listener and not yet taken by the
/// ingestor, with the durable end each belongs to.
#[derive(Debug, Clone, Default)]
pub(crate) struct DurableSpans(Arc<Mutex<VecDeque<(u64, Span)>>>);

impl DurableSpans {
    /// Notes the durable end `end`, on the log's thread, inside the span that made it durable
    /// (the group commit's): opens its `ingest.pending` span there.
    pub(super) fn note(&self, end: u64) {
        if !tracing_debug() {
            return;
        }
        let pending = tracing::debug_span!("ingest.pending", end);
        if pending.is_disabled() {
            return;
        }
        let mut spans = self.0.lock();
        if spans.len() < PENDING_SPANS_MAX {
            spans.push_back((end, pending));
        }
    }
}

/// The ingestor's side: the `ingest.pending` spans of ends not yet applied, oldest first.
#[derive(Debug, Default)]
pub(super) struct PendingSpans {
    from_log: DurableSpans,
    spans: VecDeque<(u64, Span)>,
}

impl PendingSpans {
    /// Takes its spans from `from_log`.
    pub(super) fn new(from_log: DurableSpans) -> Self {
        Self {
            from_log,
            spans: VecDeque::new(),
        }
    }

    /// Takes the spans the listener has opened since the last call, but those of ends at or
    /// below `cursor`: applied already (the end announced when the node started, say), they
    /// close at once rather than parent a commit of later records.
    pub(super) fn take(&mut self, cursor: u64) {
        if !tracing_debug() {
            return;
        }
        let mut from_log = self.from_log.0.lock();
        while let Some((end, span)) = from_log.pop_front() {
            if end > cursor && self.spans.len() < PENDING_SPANS_MAX {
                self.spans.push_back((end, span));
            }
        }
    }

    /// Returns the parent of the next ingest commit, the oldest pending span, if any.
    pub(super) fn parent(&self) -> Option<tracing::Id> {
        self.spans.front().and_then(|(_, span)| span.id())
    }

    /// Closes the spans of every end at or below `cursor`, now applied; `commit` (the commit
    /// that applied them) follows from each of them but its parent.
    pub(super) fn applied(&mut self, cursor: u64, commit: &Span) {
        let mut first = true;
        while self.spans.front().is_some_and(|&(end, _)| end <= cursor) {
            if let Some((_, span)) = self.spans.pop_front() {
                if !first {
                    commit.follows_from(&span);
                }
                first = false;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{DurableSpans, PENDING_SPANS_MAX, PendingSpans};

    #[test]
    fn nothing_is_carried_while_debug_spans_are_off() {
        // No subscriber in this test: the level hint is off, so no span is queued.
        let spans = DurableSpans::default();
        spans.note(10);
        assert!(spans.0.lock().is_empty());
        let mut pending = PendingSpans::new(spans);
        pending.take(0);
        assert_eq!(pending.parent(), None);
    }

    #[test]
    fn applied_spans_close_oldest_first_and_stay_bounded() {
        let mut pending = PendingSpans::default();
        for end in 1..=(PENDING_SPANS_MAX as u64 + 5) {
            if pending.spans.len() < PENDING_SPANS_MAX {
                pending.spans.push_back((end, tracing::Span::none()));
            }
        }
        assert_eq!(pending.spans.len(), PENDING_SPANS_MAX);
        pending.applied(3, &tracing::Span::none());
        assert_eq!(pending.spans.front().map(|&(end, _)| end), Some(4));
    }
}

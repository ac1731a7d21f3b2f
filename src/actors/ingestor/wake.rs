//! How the ingestor learns of durable ends: the log's listener, on the log's own thread,
//! raises the end in a [`watch`] channel and never blocks; the channel keeps only the latest
//! end the ingestor has not taken, so a burst of group commits costs it one wake-up. The
//! ingestor takes the ends as a stream ([`DurableOffset`]).

use std::sync::Arc;
use std::time::Instant;

use actix::prelude::*;
use tokio::sync::watch;

use super::traced::DurableSpans;
use super::{ANNOUNCED_MAX, IngestorActor};
use crate::log::Log;
use crate::telemetry::Mailboxes;

/// Installs `log`'s durable-end listener and returns the channel it raises. The listener is
/// installed before the end is read, so an end that advances in between (a stream's fetcher
/// runs already) is either read here or announced, never lost. `mailboxes.ingestor` reads 1
/// while an end waits for the ingestor.
///
/// The listener also opens each end's `ingest.pending` span in the returned [`DurableSpans`]
/// (while `debug` spans are enabled), so that the ingest commit joins the writes' traces.
pub(crate) fn listen_for_durable_ends(
    log: &Arc<dyn Log>,
    mailboxes: &Mailboxes,
) -> (watch::Receiver<u64>, DurableSpans) {
    let (ends, durable_ends) = watch::channel(0);
    let ends = Arc::new(ends);
    let spans = DurableSpans::default();
    let waiting = mailboxes.ingestor.clone();
    let noted = spans.clone();
    let raise = move |ends: &watch::Sender<u64>, end: u64| {
        noted.note(end);
        // Flagged before it is sent, so the ingestor's clear on taking it comes after.
        waiting.set_waiting();
        ends.send_if_modified(|current| {
            let raised = end > *current;
            *current = (*current).max(end);
            raised
        });
    };
    {
        let (ends, raise) = (Arc::clone(&ends), raise.clone());
        log.set_durable_listener(Box::new(move |end| raise(&ends, end)));
    }
    raise(&ends, log.durable_end());
    (durable_ends, spans)
}

/// `ends` as a stream of the latest end not taken yet; it ends when the log drops its listener.
/// The end when the node started counts as news: a restarted node has a backlog to apply
/// before anything new is appended.
pub(super) fn as_stream(mut ends: watch::Receiver<u64>) -> impl futures_util::Stream<Item = DurableOffset> {
    ends.mark_changed();
    futures_util::stream::unfold(ends, |mut ends| async move {
        ends.changed().await.ok()?;
        let end = *ends.borrow_and_update();
        Some((DurableOffset { end }, ends))
    })
}

/// A new durable end of the log: every record below `end` is durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DurableOffset {
    /// The position just past the last durable record.
    pub end: u64,
}

impl StreamHandler<DurableOffset> for IngestorActor {
    fn handle(&mut self, message: DurableOffset, ctx: &mut Self::Context) {
        // Every end announced so far is taken at once: none waits any more.
        self.mailboxes.ingestor.clear();
        self.pending_spans.take(self.cursor);
        if self.halted {
            return;
        }
        if message.end > self.target {
            self.target = message.end;
            let was_caught_up = self.announced.is_empty();
            if self.announced.len() < ANNOUNCED_MAX {
                self.announced.push_back((message.end, Instant::now()));
            } else if let Some(newest) = self.announced.back_mut() {
                newest.0 = message.end;
            }
            // Behind from now: say since when at once, not only after the next batch.
            if was_caught_up {
                let stalled = self.status.borrow().stalled.clone();
                self.publish(stalled);
            }
        }
        // While a retry waits out its backoff, a Drain is already scheduled; this is a no-op.
        if self.cursor < self.target {
            let pace = self.pace();
            self.schedule(ctx, pace);
        }
    }

    /// The log dropped its listener (the node is shutting down): the actor stays until its
    /// arbiter stops, so that a drain in progress completes.
    fn finished(&mut self, _ctx: &mut Self::Context) {}
}


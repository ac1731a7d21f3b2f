//! The refresher: the thread that resolves stale views again, turns a trust change's mark into
//! per-view marks, and reports winner changes to watchers.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use crossbeam_channel::Receiver;

use super::{ViewKey, Views, WinnerChange};
use crate::lens::{LensRegistry, Query, Resolution, ResolveError, TrustBook, resolve};
use crate::storage::state::State;

/// What the refresher is asked to do.
pub(super) enum Message {
    /// Refresh this view.
    Refresh(Arc<ViewKey>),
    /// A trust change: mark every view below its mark stale, and refresh every stale view.
    Sweep,
    /// Stop once what is queued is done.
    Stop,
}

/// The refresher's end of the views; run it on its own thread.
pub struct Refresher {
    views: Arc<Views>,
    queue: Receiver<Message>,
    state: State,
    lenses: Arc<LensRegistry>,
    trust: Arc<TrustBook>,
}

impl Refresher {
    pub(super) fn new(
        views: Arc<Views>,
        queue: Receiver<Message>,
        state: State,
        lenses: Arc<LensRegistry>,
        trust: Arc<TrustBook>,
    ) -> Self {
        Self {
            views,
            queue,
            state,
            lenses,
            trust,
        }
    }

    /// Refreshes queued views until told to stop.
    pub fn run(self) {
        while let Ok(message) = self.queue.recv() {
            match message {
                Message::Refresh(key) => self.refresh(&key),
                Message::Sweep => self.sweep(),
                Message::Stop => return,
            }
            if self.views.overflow.swap(false, Ordering::AcqRel) {
                self.sweep();
            }
        }
    }

    /// Turns a pending trust mark into per-view marks, then refreshes every stale view.
    fn sweep(&self) {
        let stale: Vec<Arc<ViewKey>> = {
            let mut table = self.views.table.lock();
            if let Some((cursor, since_ms)) = table.sweep.take() {
                for view in table.views.values_mut() {
                    if view.resolution.offset < cursor {
                        view.mark_stale(cursor, since_ms);
                    }
                }
            }
            table
                .views
                .iter()
                .filter(|(_, view)| view.stale_since.is_some())
                .map(|(key, _)| key.clone())
                .collect()
        };
        stale.iter().for_each(|key| self.refresh(key));
    }

    fn refresh(&self, key: &ViewKey) {
        let resolution = match self.resolve(key) {
            Ok(resolution) => resolution,
            Err(error) => {
                return tracing::warn!(%error, subject = %key.subject, lens = %key.lens, "view refresh failed");
            }
        };
        let mut table = self.views.table.lock();
        let Some(view) = table.views.get(key) else { return };
        if resolution.offset < view.resolution.offset {
            return;
        }
        let (old, new, offset) = (view.resolution.winner, resolution.winner, resolution.offset);
        let Some(view) = table.replace(key, resolution) else {
            return;
        };
        // Stale marks at or below the snapshot's cursor are answered by this refresh; a later
        // one queued the view again.
        if view.stale_since.is_some_and(|(cursor, _)| cursor <= offset) {
            view.stale_since = None;
        }
        if old != new
            && let Some(feed) = &view.feed
        {
            // A watcher gone in the meantime is fine: the change is recorded in the view itself.
            let _ = feed.send(WinnerChange { old, new, offset });
        }
        // The new resolution may be larger than the old.
        table.shrink();
    }

    fn resolve(&self, key: &ViewKey) -> Result<Resolution, ResolveError> {
        let lens = self.lenses.get(&key.lens)?;
        let snapshot = self.state.snapshot()?;
        resolve(
            &snapshot,
            &Query::new(key.subject.clone(), key.predicate.clone(), key.lens.clone()),
            lens.as_ref(),
            &self.trust,
        )
    }
}

//! Materialized views: the resolution of one (subject, predicate, lens), kept up to date by the
//! ingest, and the winner-change feed that their refreshes drive.
//!
//! - A view is created by `Node::watch`, or by a query that accepts a stale answer
//!   (`max_stale`); at most `node.views_max` exist.
//! - Every ingest commit reports the pairs it touched and the agents whose trust it changed
//!   ([`Views::on_commit`]): the views of those pairs (of every pair, for a trust change, since
//!   any lens may weigh trust) are marked stale and queued to the refresher thread, which
//!   resolves them again on a fresh snapshot. A view no commit touched is exact at the current
//!   cursor.
//! - The refresher is the one writer of views: when a refresh changes a view's winner, it sends
//!   one [`WinnerChange`] to the view's watchers, through a bounded broadcast channel. A watcher
//!   that falls behind is told how many changes it missed; it never holds up the ingest.
//! - A view is fresh enough for a query if it is not stale, or stale by at most the query's
//!   `max_stale` (offsets behind the cursor, or milliseconds since it went stale). A view dated
//!   in the future (the clock went back) is never used, and is counted.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crossbeam_channel::{Receiver, Sender, TrySendError};
use parking_lot::Mutex;
use tokio::sync::broadcast;

use super::{LensRegistry, Query, Resolution, ResolveError, TrustBook, resolve};
use crate::protocol::{AgentId, Hash, now_ms};
use crate::storage::state::{PairId, State};
use crate::telemetry::catalog;

/// Views queued for refresh before further marks wait for the refresher's sweep.
const REFRESH_QUEUE: usize = 4096;

/// How stale an answer a query accepts from a view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaxStale {
    /// At most this many journal bytes of records behind the ingest cursor.
    Offsets(u64),
    /// Stale for at most this many milliseconds.
    Millis(u64),
}

/// A view's identity.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ViewKey {
    /// The subject.
    pub subject: String,
    /// The predicate.
    pub predicate: String,
    /// The lens.
    pub lens: String,
}

/// A change of a view's winner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WinnerChange {
    /// The winner before.
    pub old: Option<Hash>,
    /// The winner now.
    pub new: Option<Hash>,
    /// The ingest cursor of the resolution that found the new winner.
    pub offset: u64,
}

/// What a view holds, for `Node::view_status`.
#[derive(Debug, Clone, PartialEq)]
pub struct ViewStatus {
    /// The cursor its resolution reflects.
    pub offset: u64,
    /// When it was computed (wall clock, ms).
    pub computed_ms: u64,
    /// Since when it is stale (wall clock, ms), if a commit touched its pair since.
    pub stale_since_ms: Option<u64>,
    /// Its current winner.
    pub winner: Option<Hash>,
    /// Watchers subscribed to its changes.
    pub watchers: usize,
}

/// Counters of view use.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ViewCounters {
    /// Queries answered from a view.
    pub hits: u64,
    /// Queries that accepted a view but found none fresh enough.
    pub misses: u64,
    /// Views passed over because they were dated in the future.
    pub skew_bypasses: u64,
}

struct View {
    resolution: Arc<Resolution>,
    computed_ms: u64,
    stale_since: Option<(u64, u64)>,
    feed: broadcast::Sender<WinnerChange>,
}

/// The views of a node; see the module docs.
pub struct Views {
    views: Mutex<HashMap<ViewKey, View>>,
    by_pair: Mutex<HashMap<PairId, Vec<ViewKey>>>,
    queue: Sender<Option<ViewKey>>,
    /// A mark could not be queued: the refresher sweeps every stale view.
    overflow: AtomicBool,
    views_max: usize,
    watch_buffer: usize,
    hits: AtomicU64,
    misses: AtomicU64,
    skew: AtomicU64,
}

/// The refresher's end of the views; run it on its own thread.
pub struct Refresher {
    views: Arc<Views>,
    queue: Receiver<Option<ViewKey>>,
    state: State,
    lenses: Arc<LensRegistry>,
    trust: Arc<TrustBook>,
}

impl Views {
    /// Creates the views of a node and their refresher: at most `views_max` views, each
    /// feed keeping `watch_buffer` changes for its slowest watcher.
    pub fn new(
        views_max: usize,
        watch_buffer: usize,
        state: State,
        lenses: Arc<LensRegistry>,
        trust: Arc<TrustBook>,
    ) -> (Arc<Self>, Refresher) {
        let (queue, receiver) = crossbeam_channel::bounded(REFRESH_QUEUE);
        let views = Arc::new(Self {
            views: Mutex::new(HashMap::new()),
            by_pair: Mutex::new(HashMap::new()),
            queue,
            overflow: AtomicBool::new(false),
            views_max,
            watch_buffer: watch_buffer.max(1),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            skew: AtomicU64::new(0),
        });
        let refresher = Refresher {
            views: views.clone(),
            queue: receiver,
            state,
            lenses,
            trust,
        };
        (views, refresher)
    }

    /// Tells the refresher to stop once it has done what is queued.
    pub fn stop_refresher(&self) {
        // Blocks only while the queue is full, which the running refresher drains.
        let _ = self.queue.send(None);
    }

    /// Marks the views the commit up to `cursor` touched stale, and queues them for refresh.
    pub fn on_commit(&self, cursor: u64, touched: &BTreeSet<PairId>, trust_changed: &BTreeSet<AgentId>) {
        let keys: Vec<ViewKey> = {
            let by_pair = self.by_pair.lock();
            if trust_changed.is_empty() {
                touched
                    .iter()
                    .filter_map(|p| by_pair.get(p))
                    .flatten()
                    .cloned()
                    .collect()
            } else {
                by_pair.values().flatten().cloned().collect()
            }
        };
        if keys.is_empty() {
            return;
        }
        let now = now_ms();
        let mut views = self.views.lock();
        for key in keys {
            let Some(view) = views.get_mut(&key) else { continue };
            if view.stale_since.is_none() {
                view.stale_since = Some((cursor, now));
            }
            match self.queue.try_send(Some(key)) {
                Ok(()) => {}
                Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                    self.overflow.store(true, Ordering::Release)
                }
            }
        }
    }

    /// Returns the view's resolution if it is fresh enough for `max_stale` at ingest cursor
    /// `cursor`, counting the hit, miss or skew bypass.
    pub fn lookup(&self, key: &ViewKey, max_stale: MaxStale, cursor: u64) -> Option<Resolution> {
        let views = self.views.lock();
        let found = views.get(key).and_then(|view| {
            let now = now_ms();
            if view.computed_ms > now {
                self.skew.fetch_add(1, Ordering::Relaxed);
                metrics::counter!(catalog::VIEW_SKEW_BYPASSES).increment(1);
                return None;
            }
            let fresh = match (view.stale_since, max_stale) {
                (None, _) => true,
                (Some(_), MaxStale::Offsets(behind)) => {
                    cursor.saturating_sub(view.resolution.offset) <= behind
                }
                (Some((_, since_ms)), MaxStale::Millis(ms)) => now.saturating_sub(since_ms) <= ms,
            };
            fresh.then(|| (*view.resolution).clone())
        });
        let (counter, metric) = if found.is_some() {
            (&self.hits, catalog::VIEW_HITS)
        } else {
            (&self.misses, catalog::VIEW_MISSES)
        };
        counter.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(metric).increment(1);
        found
    }

    /// Stores `resolution` as the view `key` unless it exists or the limit is reached;
    /// returns true if the view exists afterwards.
    pub fn insert(&self, key: &ViewKey, resolution: Resolution) -> bool {
        let mut views = self.views.lock();
        if views.contains_key(key) {
            return true;
        }
        if views.len() >= self.views_max {
            return false;
        }
        let (feed, _) = broadcast::channel(self.watch_buffer);
        views.insert(
            key.clone(),
            View {
                resolution: Arc::new(resolution),
                computed_ms: now_ms(),
                stale_since: None,
                feed,
            },
        );
        self.by_pair
            .lock()
            .entry(PairId::of(&key.subject, &key.predicate))
            .or_default()
            .push(key.clone());
        true
    }

    /// Queues view `key` for refresh if its resolution reflects less than `cursor`: a commit
    /// between its snapshot and its creation found no view to mark.
    pub fn refresh_if_behind(&self, key: &ViewKey, cursor: u64) {
        let mut views = self.views.lock();
        let Some(view) = views.get_mut(key) else { return };
        if view.resolution.offset < cursor {
            if view.stale_since.is_none() {
                view.stale_since = Some((cursor, now_ms()));
            }
            if self.queue.try_send(Some(key.clone())).is_err() {
                self.overflow.store(true, Ordering::Release);
            }
        }
    }

    /// Subscribes to the winner changes of view `key`, if it exists.
    pub fn subscribe(&self, key: &ViewKey) -> Option<broadcast::Receiver<WinnerChange>> {
        self.views.lock().get(key).map(|view| view.feed.subscribe())
    }

    /// Returns the status of view `key`, if it exists.
    pub fn status(&self, key: &ViewKey) -> Option<ViewStatus> {
        self.views.lock().get(key).map(|view| ViewStatus {
            offset: view.resolution.offset,
            computed_ms: view.computed_ms,
            stale_since_ms: view.stale_since.map(|(_, ms)| ms),
            winner: view.resolution.winner,
            watchers: view.feed.receiver_count(),
        })
    }

    /// Returns how many views exist, and how many watchers they have in all.
    pub fn census(&self) -> (usize, usize) {
        let views = self.views.lock();
        (
            views.len(),
            views.values().map(|view| view.feed.receiver_count()).sum(),
        )
    }

    /// Returns the counters of view use.
    pub fn counters(&self) -> ViewCounters {
        ViewCounters {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            skew_bypasses: self.skew.load(Ordering::Relaxed),
        }
    }

    /// Test support: marks view `key` stale since `since_ms` by a commit no refresh can answer,
    /// without queueing it.
    #[cfg(feature = "test-kit")]
    #[doc(hidden)]
    pub fn mark_stale_for_tests(&self, key: &ViewKey, since_ms: u64) {
        if let Some(view) = self.views.lock().get_mut(key) {
            view.stale_since = Some((u64::MAX, since_ms));
        }
    }

    /// Test support: dates view `key` at `computed_ms`, as a clock that went back would.
    #[cfg(feature = "test-kit")]
    #[doc(hidden)]
    pub fn set_computed_ms_for_tests(&self, key: &ViewKey, computed_ms: u64) {
        if let Some(view) = self.views.lock().get_mut(key) {
            view.computed_ms = computed_ms;
        }
    }
}

impl Refresher {
    /// Refreshes queued views until told to stop.
    pub fn run(self) {
        while let Ok(Some(key)) = self.queue.recv() {
            self.refresh(&key);
            if self.views.overflow.swap(false, Ordering::AcqRel) {
                let stale: Vec<ViewKey> = {
                    let views = self.views.views.lock();
                    views
                        .iter()
                        .filter(|(_, v)| v.stale_since.is_some())
                        .map(|(k, _)| k.clone())
                        .collect()
                };
                stale.iter().for_each(|key| self.refresh(key));
            }
        }
    }

    fn refresh(&self, key: &ViewKey) {
        let resolution = match self.resolve(key) {
            Ok(resolution) => resolution,
            Err(error) => {
                return tracing::warn!(%error, subject = %key.subject, lens = %key.lens, "view refresh failed");
            }
        };
        let mut views = self.views.views.lock();
        let Some(view) = views.get_mut(key) else { return };
        if resolution.offset < view.resolution.offset {
            return;
        }
        // Stale marks at or below the snapshot's cursor are answered by this refresh; a later
        // one queued the view again.
        if view
            .stale_since
            .is_some_and(|(cursor, _)| cursor <= resolution.offset)
        {
            view.stale_since = None;
        }
        let (old, new) = (view.resolution.winner, resolution.winner);
        let offset = resolution.offset;
        view.resolution = Arc::new(resolution);
        view.computed_ms = now_ms();
        if old != new {
            // No watcher is fine: the change is recorded in the view itself.
            let _ = view.feed.send(WinnerChange { old, new, offset });
        }
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

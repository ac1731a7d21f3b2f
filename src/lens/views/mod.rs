//! Materialized views: the resolution of one (subject, predicate, lens), kept up to date by the
//! ingest, and the winner-change feed that their refreshes drive.
//!
//! - A view is created by `Node::watch`, or by a query that accepts a stale answer
//!   (`max_stale`) and found candidates (no view is kept of a pair nobody asserted anything
//!   about, unless it is watched).
//! - The views are capped ([`table`]): at most `node.views_max` of them and
//!   `node.views_bytes_max` bytes by estimate. Past a cap, the least recently used view that
//!   nobody watches is evicted (a hit or a watch is a use); watched views are pinned. If every
//!   view is pinned, a new one is refused.
//! - Every ingest commit reports the pairs it touched and the agents whose trust it changed
//!   ([`Views::on_commit`]): the views of those pairs are marked stale and queued to the
//!   refresher thread, which resolves them again on a fresh snapshot. A trust change (which any
//!   lens may weigh) makes every view stale: the ingest thread records one mark, "every view
//!   below this cursor is stale since this time", and queues one sweep; the refresher turns
//!   the mark into per-view marks and refreshes them, and until then a lookup treats a view
//!   below the mark as stale. A view no commit touched is exact at the current cursor.
//! - A stale mark is answered only by a refresh whose snapshot covers its cursor.
//! - The refresher is the one writer of resolutions: when a refresh changes a view's winner, it
//!   sends one [`WinnerChange`] to the view's watchers, through a bounded broadcast ring that
//!   exists only while the view has watchers. A watcher that falls behind is told how many
//!   changes it missed; it never holds up the ingest.
//! - A view is fresh enough for a query if it is not stale, or stale by at most the query's
//!   `max_stale` (offsets behind the cursor, or milliseconds since it went stale). A view dated
//!   in the future (the clock went back) is never used, and is counted.

mod refresher;
mod table;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use crossbeam_channel::Sender;
use parking_lot::Mutex;
use tokio::sync::broadcast;

use super::{LensRegistry, Resolution, TrustBook};
use crate::protocol::{AgentId, Hash, now_ms};
use crate::storage::state::{PairId, State};
use crate::telemetry::catalog;
use refresher::Message;
pub use refresher::Refresher;
pub use table::OWNER_SHARE_DIVISOR;
use table::{Caps, Table};

/// Views queued for refresh before further marks wait for the refresher's sweep.
const REFRESH_QUEUE: usize = 4096;

/// How stale an answer a query accepts from a view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaxStale {
    /// At most this many journal bytes of records behind the ingest cursor.
    Offsets(u64),
    /// Stale for at most this many milliseconds.
    Millis(u64),
    /// Within both bounds at once.
    Both {
        /// As [`MaxStale::Offsets`].
        offsets: u64,
        /// As [`MaxStale::Millis`].
        ms: u64,
    },
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

/// How many views exist, their watchers and their estimated bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ViewCensus {
    /// Views held.
    pub views: usize,
    /// Watchers subscribed, over all views.
    pub watchers: usize,
    /// Estimated bytes the views hold.
    pub bytes: usize,
}

/// A watcher's feed of one view's winner changes. While it lives, the view is pinned (never
/// evicted); dropping it unpins the view.
pub struct Subscription {
    pub(crate) receiver: broadcast::Receiver<WinnerChange>,
    views: Weak<Views>,
    key: Arc<ViewKey>,
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription").field("key", &self.key).finish()
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        if let Some(views) = self.views.upgrade() {
            views.table.lock().unpin(&self.key);
        }
    }
}

/// The views of a node; see the module docs.
pub struct Views {
    table: Mutex<Table>,
    queue: Sender<Message>,
    /// A message could not be queued: the refresher sweeps every stale view.
    overflow: AtomicBool,
    hits: AtomicU64,
    misses: AtomicU64,
    skew: AtomicU64,
}

impl Views {
    /// Creates the views of a node and their refresher: at most `views_max` views and
    /// `views_bytes_max` bytes of them, each watched view keeping `watch_buffer` changes for
    /// its slowest watcher.
    pub fn new(
        views_max: usize,
        views_bytes_max: usize,
        watch_buffer: usize,
        state: State,
        lenses: Arc<LensRegistry>,
        trust: Arc<TrustBook>,
    ) -> (Arc<Self>, Refresher) {
        let (queue, receiver) = crossbeam_channel::bounded(REFRESH_QUEUE);
        let views = Arc::new(Self {
            table: Mutex::new(Table::new(Caps {
                views_max: views_max.max(1),
                bytes_max: views_bytes_max.max(1),
                watch_buffer: watch_buffer.max(1),
            })),
            queue,
            overflow: AtomicBool::new(false),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            skew: AtomicU64::new(0),
        });
        let refresher = Refresher::new(views.clone(), receiver, state, lenses, trust);
        (views, refresher)
    }

    /// Tells the refresher to stop once it has done what is queued.
    pub fn stop_refresher(&self) {
        // Blocks only while the queue is full, which the running refresher drains.
        let _ = self.queue.send(Message::Stop);
    }

    /// Queues `message` for the refresher, or has it sweep every stale view if the queue is
    /// full: never blocks the ingest.
    fn send(&self, message: Message) {
        if self.queue.try_send(message).is_err() {
            self.overflow.store(true, Ordering::Release);
        }
    }

    /// Marks the views the commit up to `cursor` touched stale, and queues them for refresh;
    /// after a trust change, marks every view stale at once and queues one sweep. When the
    /// learned trust model moved (`learned`), every view of the `learned` lens is stale too:
    /// its answers move with the model, whichever pairs the batch touched.
    pub fn on_commit(
        &self,
        cursor: u64,
        touched: &BTreeSet<PairId>,
        trust_changed: &BTreeSet<AgentId>,
        learned: bool,
    ) {
        let now = now_ms();
        if !trust_changed.is_empty() {
            let mut table = self.table.lock();
            // An earlier mark not yet swept keeps its time: views below it are stale since then.
            let since = table.sweep.map_or(now, |(_, since)| since);
            table.sweep = Some((cursor, since));
            drop(table);
            return self.send(Message::Sweep);
        }
        let keys: Vec<Arc<ViewKey>> = {
            let mut table = self.table.lock();
            let mut keys: Vec<Arc<ViewKey>> = touched
                .iter()
                .filter_map(|pair| table.by_pair.get(pair))
                .flatten()
                .cloned()
                .collect();
            if learned {
                let learned_views: Vec<Arc<ViewKey>> = table
                    .views
                    .keys()
                    .filter(|k| k.lens == "learned" && !keys.contains(k))
                    .cloned()
                    .collect();
                keys.extend(learned_views);
            }
            for key in &keys {
                if let Some(view) = table.views.get_mut(&**key) {
                    view.mark_stale(cursor, now);
                }
            }
            keys
        };
        for key in keys {
            self.send(Message::Refresh(key));
        }
    }

    /// Returns the view's resolution if it is fresh enough for `max_stale` at ingest cursor
    /// `cursor`, counting the hit, miss or skew bypass. A hit is a use of the view.
    pub fn lookup(&self, key: &ViewKey, max_stale: MaxStale, cursor: u64) -> Option<Resolution> {
        let mut table = self.table.lock();
        let sweep = table.sweep;
        let found = table.use_if(key, |view| {
            let now = now_ms();
            if view.computed_ms > now {
                self.skew.fetch_add(1, Ordering::Relaxed);
                metrics::counter!(catalog::VIEW_SKEW_BYPASSES).increment(1);
                return None;
            }
            // A trust change not yet swept makes the views below it stale too.
            let swept = sweep.filter(|(mark, _)| view.resolution.offset < *mark);
            let stale_ms = match (view.stale_since, swept) {
                (None, None) => None,
                (Some((_, a)), Some((_, b))) => Some(a.min(b)),
                (Some((_, ms)), None) | (None, Some((_, ms))) => Some(ms),
            };
            let fresh = match (stale_ms, max_stale) {
                (None, _) => true,
                (Some(_), MaxStale::Offsets(behind)) => {
                    cursor.saturating_sub(view.resolution.offset) <= behind
                }
                (Some(since_ms), MaxStale::Millis(ms)) => now.saturating_sub(since_ms) <= ms,
                (Some(since_ms), MaxStale::Both { offsets, ms }) => {
                    cursor.saturating_sub(view.resolution.offset) <= offsets
                        && now.saturating_sub(since_ms) <= ms
                }
            };
            fresh.then(|| (*view.resolution).clone())
        });
        drop(table);
        let (counter, metric) = if found.is_some() {
            (&self.hits, catalog::VIEW_HITS)
        } else {
            (&self.misses, catalog::VIEW_MISSES)
        };
        counter.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(metric).increment(1);
        found
    }

    /// Stores `resolution` as the view `key` unless it exists, evicting the least recently
    /// used unwatched views to make room; returns true if the view exists afterwards.
    pub fn insert(&self, key: &ViewKey, resolution: Resolution) -> bool {
        self.table.lock().insert(key, resolution, None)
    }

    /// As [`insert`](Self::insert), for a view a query of `owner` creates: one owner holds at
    /// most a [`OWNER_SHARE_DIVISOR`]th of the views, in count and
    /// bytes; past its share its own least recently used view makes room.
    pub fn insert_for(&self, key: &ViewKey, resolution: Resolution, owner: &str) -> bool {
        self.table.lock().insert(key, resolution, Some(owner))
    }

    /// Stores `resolution` as the view `key` unless it exists (as [`insert`](Self::insert))
    /// and subscribes to it, in one step, so that it cannot be evicted in between; `None` if
    /// there is no room.
    pub fn insert_and_subscribe(
        self: &Arc<Self>,
        key: &ViewKey,
        resolution: Resolution,
    ) -> Option<Subscription> {
        let mut table = self.table.lock();
        if !table.insert(key, resolution, None) {
            return None;
        }
        let (key, receiver) = table.pin(key)?;
        Some(Subscription {
            receiver,
            views: Arc::downgrade(self),
            key,
        })
    }

    /// Queues view `key` for refresh if its resolution reflects less than `cursor`: a commit
    /// between its snapshot and its creation found no view to mark.
    pub fn refresh_if_behind(&self, key: &ViewKey, cursor: u64) {
        let mut table = self.table.lock();
        let Some((key, view)) = table.views.get_key_value(key) else {
            return;
        };
        if view.resolution.offset < cursor {
            let key = key.clone();
            if let Some(view) = table.views.get_mut(&*key) {
                view.mark_stale(cursor, now_ms());
            }
            drop(table);
            self.send(Message::Refresh(key));
        }
    }

    /// Subscribes to the winner changes of view `key`, if it exists (a use of the view, which
    /// is pinned while the subscription lives).
    pub fn subscribe(self: &Arc<Self>, key: &ViewKey) -> Option<Subscription> {
        let (key, receiver) = self.table.lock().pin(key)?;
        Some(Subscription {
            receiver,
            views: Arc::downgrade(self),
            key,
        })
    }

    /// Returns the status of view `key`, if it exists.
    pub fn status(&self, key: &ViewKey) -> Option<ViewStatus> {
        self.table.lock().views.get(key).map(|view| ViewStatus {
            offset: view.resolution.offset,
            computed_ms: view.computed_ms,
            stale_since_ms: view.stale_since.map(|(_, ms)| ms),
            winner: view.resolution.winner,
            watchers: view.watchers,
        })
    }

    /// Returns how many views exist, their watchers and their estimated bytes.
    pub fn census(&self) -> ViewCensus {
        let table = self.table.lock();
        ViewCensus {
            views: table.views.len(),
            watchers: table.views.values().map(|view| view.watchers).sum(),
            bytes: table.bytes,
        }
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
        if let Some(view) = self.table.lock().views.get_mut(key) {
            view.stale_since = Some((u64::MAX, since_ms));
        }
    }

    /// Test support: dates view `key` at `computed_ms`, as a clock that went back would.
    #[cfg(feature = "test-kit")]
    #[doc(hidden)]
    pub fn set_computed_ms_for_tests(&self, key: &ViewKey, computed_ms: u64) {
        if let Some(view) = self.table.lock().views.get_mut(key) {
            view.computed_ms = computed_ms;
        }
    }
}

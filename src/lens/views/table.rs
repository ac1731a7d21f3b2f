//! The table of views, with its caps: at most `views_max` views and `views_bytes_max` bytes by
//! estimate, the least recently used unwatched view evicted first.
//!
//! Invariants, under the views' one lock:
//! - `bytes` is the sum of the views' `bytes`.
//! - A view is in `lru` (under its `used` tick) if and only if it has no watcher; a watched
//!   view is pinned and never evicted.
//! - A view has a feed (a broadcast ring) if and only if it has a watcher.
//! - `by_pair` lists each view's key under its pair, once.
//! - `owners` holds, per requester, the count and bytes of the views its queries created; one
//!   requester holds at most a [`OWNER_SHARE_DIVISOR`]th of each cap, and past its share its
//!   own least recently used view makes room, not another requester's.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use tokio::sync::broadcast;

use super::{ViewKey, WinnerChange};
use crate::lens::Resolution;
use crate::protocol::now_ms;
use crate::storage::state::PairId;
use crate::telemetry::catalog;

/// Bytes one slot of a watcher ring holds besides the change: tokio's slot keeps a position,
/// a remaining-receivers count and a lock with it.
const RING_SLOT_OVERHEAD_BYTES: usize = 32;

/// One requester (an API key, say) may hold at most this fraction (1/N) of the views, in count
/// and in bytes: four keys at their shares fill the table, and no one key can push every other
/// key's views out with views of its own.
pub const OWNER_SHARE_DIVISOR: usize = 4;

/// One view.
pub(super) struct View {
    key: Arc<ViewKey>,
    pub(super) resolution: Arc<Resolution>,
    pub(super) computed_ms: u64,
    /// The latest commit cursor not yet answered by a refresh, and since when (wall clock,
    /// ms) the view is stale: the earliest unanswered mark's time.
    pub(super) stale_since: Option<(u64, u64)>,
    /// The winner-change ring, while the view has watchers.
    pub(super) feed: Option<broadcast::Sender<WinnerChange>>,
    pub(super) watchers: usize,
    /// Its estimated bytes, counted in `Table::bytes`.
    bytes: usize,
    /// Its last use, while it is in `lru`.
    used: u64,
    /// The requester whose query created it, if one was named.
    owner: Option<Arc<str>>,
}

impl View {
    /// Marks the view stale by the commit up to `cursor`, at `now_ms`.
    pub(super) fn mark_stale(&mut self, cursor: u64, now_ms: u64) {
        self.stale_since = Some(match self.stale_since {
            Some((marked, since)) => (marked.max(cursor), since),
            None => (cursor, now_ms),
        });
    }
}

/// The caps of a table.
pub(super) struct Caps {
    pub(super) views_max: usize,
    pub(super) bytes_max: usize,
    pub(super) watch_buffer: usize,
}

/// The views of a node, by key; see the module docs.
pub(super) struct Table {
    pub(super) views: HashMap<Arc<ViewKey>, View>,
    pub(super) by_pair: HashMap<PairId, Vec<Arc<ViewKey>>>,
    /// Unwatched views by last use, oldest first.
    lru: BTreeMap<u64, Arc<ViewKey>>,
    tick: u64,
    pub(super) bytes: usize,
    caps: Caps,
    /// A trust change up to this cursor, at this time (ms), that the refresher has not yet
    /// turned into per-view marks: every view below the cursor is stale since then.
    pub(super) sweep: Option<(u64, u64)>,
    /// Per requester: the count and bytes of its views.
    owners: HashMap<Arc<str>, (usize, usize)>,
}

impl Table {
    pub(super) fn new(caps: Caps) -> Self {
        Self {
            views: HashMap::new(),
            by_pair: HashMap::new(),
            lru: BTreeMap::new(),
            tick: 0,
            bytes: 0,
            caps,
            sweep: None,
            owners: HashMap::new(),
        }
    }

    /// Records a use of unwatched view `key`: it becomes the most recently used.
    pub(super) fn touch(&mut self, key: &ViewKey) {
        let _ = self.use_if(key, |_| Some(()));
    }

    /// Looks view `key` up once: if `accept` answers it, the use is recorded (an unwatched
    /// view becomes the most recently used) and the answer returned. The read path's one
    /// hash lookup.
    pub(super) fn use_if<T>(&mut self, key: &ViewKey, accept: impl FnOnce(&View) -> Option<T>) -> Option<T> {
        let view = self.views.get_mut(key)?;
        let answer = accept(view)?;
        self.tick += 1;
        if view.watchers == 0 {
            // The entry's own key moves to the new tick: no reference count touched.
            let moved = self.lru.remove(&view.used).unwrap_or_else(|| view.key.clone());
            view.used = self.tick;
            self.lru.insert(self.tick, moved);
        }
        Some(answer)
    }

    /// Stores `resolution` as view `key`, unless it exists, evicting unwatched views least
    /// recently used first to make room; returns false if there is no room (everything left
    /// is watched, or the view alone is over the byte cap).
    pub(super) fn insert(&mut self, key: &ViewKey, resolution: Resolution, owner: Option<&str>) -> bool {
        if self.views.contains_key(key) {
            return true;
        }
        let bytes = view_bytes(key, &resolution);
        if bytes > self.caps.bytes_max {
            return false;
        }
        let owner: Option<Arc<str>> = owner.map(Arc::from);
        if let Some(owner) = &owner {
            let count_share = (self.caps.views_max / OWNER_SHARE_DIVISOR).max(1);
            let bytes_share = self.caps.bytes_max / OWNER_SHARE_DIVISOR;
            loop {
                let (count, held) = self.owners.get(owner).copied().unwrap_or_default();
                if count < count_share && held + bytes <= bytes_share.max(bytes) {
                    break;
                }
                if !self.evict_oldest_of(owner) {
                    return false;
                }
            }
        }
        while self.views.len() >= self.caps.views_max || self.bytes + bytes > self.caps.bytes_max {
            if !self.evict_oldest() {
                return false;
            }
        }
        let key = Arc::new(key.clone());
        self.tick += 1;
        let view = View {
            key: key.clone(),
            resolution: Arc::new(resolution),
            computed_ms: now_ms(),
            stale_since: None,
            feed: None,
            watchers: 0,
            bytes,
            used: self.tick,
            owner: owner.clone(),
        };
        if let Some(owner) = owner {
            let entry = self.owners.entry(owner).or_default();
            entry.0 += 1;
            entry.1 += bytes;
        }
        self.lru.insert(self.tick, key.clone());
        self.by_pair
            .entry(PairId::of(&key.subject, &key.predicate))
            .or_default()
            .push(key.clone());
        self.views.insert(key, view);
        self.bytes += bytes;
        true
    }

    /// Evicts the least recently used unwatched view; returns false if there is none.
    fn evict_oldest(&mut self) -> bool {
        let Some((_, key)) = self.lru.pop_first() else {
            return false;
        };
        self.remove_evicted(&key);
        true
    }

    /// Evicts `owner`'s least recently used unwatched view; returns false if it has none.
    fn evict_oldest_of(&mut self, owner: &Arc<str>) -> bool {
        let found = self.lru.iter().find_map(|(used, key)| {
            let view = self.views.get(key)?;
            (view.owner.as_ref() == Some(owner)).then_some(*used)
        });
        let Some(key) = found.and_then(|used| self.lru.remove(&used)) else {
            return false;
        };
        self.remove_evicted(&key);
        true
    }

    /// Removes view `key`, just taken off the LRU list, from the table and its indexes.
    fn remove_evicted(&mut self, key: &Arc<ViewKey>) {
        let Some(view) = self.views.remove(key) else {
            unreachable!("a view in the LRU list is in the table");
        };
        assert_eq!(view.watchers, 0, "a watched view was in the LRU list");
        self.bytes -= view.bytes;
        if let Some(owner) = &view.owner
            && let Some(entry) = self.owners.get_mut(owner)
        {
            entry.0 -= 1;
            entry.1 = entry.1.saturating_sub(view.bytes);
            if entry.0 == 0 {
                self.owners.remove(owner);
            }
        }
        let pair = PairId::of(&key.subject, &key.predicate);
        if let Some(keys) = self.by_pair.get_mut(&pair) {
            keys.retain(|k| k != key);
            if keys.is_empty() {
                self.by_pair.remove(&pair);
            }
        }
        metrics::counter!(catalog::VIEW_EVICTIONS).increment(1);
    }

    /// Evicts unwatched views while the table is over a cap (watched views may hold it over).
    pub(super) fn shrink(&mut self) {
        while (self.views.len() > self.caps.views_max || self.bytes > self.caps.bytes_max)
            && self.evict_oldest()
        {}
    }

    /// Adds a watcher to view `key`, creating its ring for the first; returns its receiver.
    pub(super) fn pin(&mut self, key: &ViewKey) -> Option<(Arc<ViewKey>, broadcast::Receiver<WinnerChange>)> {
        let ring = ring_bytes(self.caps.watch_buffer);
        let view = self.views.get_mut(key)?;
        if view.watchers == 0 {
            let _ = self.lru.remove(&view.used);
            let (feed, _) = broadcast::channel(self.caps.watch_buffer);
            view.feed = Some(feed);
            view.bytes += ring;
            self.bytes += ring;
        }
        view.watchers += 1;
        let receiver = view.feed.as_ref().map(broadcast::Sender::subscribe)?;
        Some((view.key.clone(), receiver))
    }

    /// Removes a watcher of view `key`; the last one's leaving drops the ring and makes the
    /// view evictable, as just used.
    pub(super) fn unpin(&mut self, key: &ViewKey) {
        let Some(view) = self.views.get_mut(key) else {
            return;
        };
        assert!(view.watchers > 0, "a view lost a watcher it did not have");
        view.watchers -= 1;
        if view.watchers == 0 {
            view.feed = None;
            let ring = ring_bytes(self.caps.watch_buffer);
            view.bytes -= ring;
            self.bytes -= ring;
            self.touch(key);
            self.shrink();
        }
    }

    /// Replaces view `key`'s resolution, recounting its bytes; returns the view.
    pub(super) fn replace(&mut self, key: &ViewKey, resolution: Resolution) -> Option<&mut View> {
        let view = self.views.get_mut(key)?;
        let ring = if view.feed.is_some() {
            ring_bytes(self.caps.watch_buffer)
        } else {
            0
        };
        let bytes = view_bytes(key, &resolution) + ring;
        self.bytes = self.bytes - view.bytes + bytes;
        view.bytes = bytes;
        view.resolution = Arc::new(resolution);
        view.computed_ms = now_ms();
        Some(view)
    }
}

/// Returns the estimated bytes of view `key` of `resolution`: the key's strings (held once,
/// shared by the table, the pair index and the LRU list), the entries that point at it, and
/// the resolution with its heap.
pub(super) fn view_bytes(key: &ViewKey, resolution: &Resolution) -> usize {
    let key_bytes =
        size_of::<ViewKey>() + key.subject.capacity() + key.predicate.capacity() + key.lens.capacity();
    let entries = size_of::<(Arc<ViewKey>, View)>() + 2 * size_of::<Arc<ViewKey>>() + size_of::<u64>();
    key_bytes + entries + size_of::<Resolution>() + resolution.heap_bytes()
}

/// Returns the bytes of a watcher ring of `watch_buffer` changes.
fn ring_bytes(watch_buffer: usize) -> usize {
    watch_buffer * (size_of::<WinnerChange>() + RING_SLOT_OVERHEAD_BYTES)
}

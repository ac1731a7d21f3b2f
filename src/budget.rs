//! [`Budget`]: a bound on what one queue holds, in entries and in bytes, shared by the
//! queue's producers and its consumer.
//!
//! A producer reserves before it enqueues and receives a [`Reservation`]. The reservation
//! travels with the item and gives its share back when it is dropped, wherever that happens:
//! once the consumer is done with the item, on an error path, or when a queue is torn down with
//! the item still in it. So a share is returned exactly once, on every path.
//!
//! Invariants:
//! - `entries <= entries_max` and `bytes <= bytes_max` at all times: a reservation is a
//!   compare-and-swap that never overshoots, and it takes both dimensions or neither.
//! - An item larger than the whole budget is refused at once ([`QueueFull::can_never_fit`]):
//!   waiting could never make room for it.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use parking_lot::{Condvar, Mutex};

/// What a queue bound counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QueueUnit {
    /// Queued items (submissions, appends).
    Entries,
    /// Bytes held by queued items.
    Bytes,
}

impl std::fmt::Display for QueueUnit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Entries => "entries",
            Self::Bytes => "bytes",
        })
    }
}

/// Why a bounded queue refused an item: which bound, what the item asked for, and what the
/// queue held at that moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct QueueFull {
    /// The bound that refused.
    pub unit: QueueUnit,
    /// What the item asked for, in `unit`.
    pub requested: usize,
    /// What the queue held, in `unit`.
    pub in_flight: usize,
    /// The bound, in `unit`.
    pub max: usize,
}

impl QueueFull {
    /// Returns true if and only if the item is larger than the whole bound, so that no amount
    /// of waiting would let it in.
    pub fn can_never_fit(&self) -> bool {
        self.requested > self.max
    }
}

impl std::fmt::Display for QueueFull {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Self {
            unit,
            requested,
            in_flight,
            max,
        } = self;
        if self.can_never_fit() {
            write!(f, "{requested} {unit} exceed the whole bound of {max} {unit}")
        } else {
            write!(
                f,
                "{in_flight} of at most {max} {unit} are held; {requested} more do not fit"
            )
        }
    }
}

/// A queue's bound in entries and in bytes; see the [module docs](self).
#[derive(Debug)]
pub struct Budget {
    entries_max: usize,
    bytes_max: usize,
    entries: AtomicUsize,
    bytes: AtomicUsize,
    /// Producers blocked in [`reserve_blocking`](Self::reserve_blocking).
    sleepers: AtomicUsize,
    wake: Mutex<()>,
    released: Condvar,
}

impl Budget {
    /// A budget of `entries_max` items and `bytes_max` bytes; both must be positive.
    pub fn new(entries_max: usize, bytes_max: usize) -> Arc<Self> {
        assert!(entries_max > 0 && bytes_max > 0, "a budget must admit something");
        Arc::new(Self {
            entries_max,
            bytes_max,
            entries: AtomicUsize::new(0),
            bytes: AtomicUsize::new(0),
            sleepers: AtomicUsize::new(0),
            wake: Mutex::new(()),
            released: Condvar::new(),
        })
    }

    /// Reserves `entries` items and `bytes` bytes, or says which bound refused.
    pub fn try_reserve(self: &Arc<Self>, entries: usize, bytes: usize) -> Result<Reservation, QueueFull> {
        take(&self.entries, entries, self.entries_max, QueueUnit::Entries)?;
        if let Err(full) = take(&self.bytes, bytes, self.bytes_max, QueueUnit::Bytes) {
            // A rollback, not a release: it wakes nobody (the caller may hold `wake`). A
            // producer that saw only this transient entry is woken by the release of the
            // reservation that holds the bytes.
            self.entries.fetch_sub(entries, Ordering::SeqCst);
            return Err(full);
        }
        Ok(Reservation {
            budget: Arc::clone(self),
            entries,
            bytes,
        })
    }

    /// Like [`try_reserve`](Self::try_reserve), but waits while the queue is full; refuses
    /// only an item that can never fit.
    pub fn reserve_blocking(
        self: &Arc<Self>,
        entries: usize,
        bytes: usize,
    ) -> Result<Reservation, QueueFull> {
        loop {
            match self.try_reserve(entries, bytes) {
                Err(full) if !full.can_never_fit() => {}
                outcome => return outcome,
            }
            let mut guard = self.wake.lock();
            // Announce the sleeper before the last check: a release that lands after the
            // check sees it and signals under the lock, so the wake-up cannot be lost.
            self.sleepers.fetch_add(1, Ordering::SeqCst);
            let outcome = self.try_reserve(entries, bytes);
            if outcome.is_err() {
                self.released.wait(&mut guard);
            }
            self.sleepers.fetch_sub(1, Ordering::SeqCst);
            if let Ok(reservation) = outcome {
                return Ok(reservation);
            }
        }
    }

    /// Returns the bound in entries.
    pub fn entries_max(&self) -> usize {
        self.entries_max
    }

    /// Returns the bound in bytes.
    pub fn bytes_max(&self) -> usize {
        self.bytes_max
    }

    /// Returns (entries, bytes) currently reserved.
    pub fn in_flight(&self) -> (usize, usize) {
        (
            self.entries.load(Ordering::SeqCst),
            self.bytes.load(Ordering::SeqCst),
        )
    }

    fn release(&self, entries: usize, bytes: usize) {
        let before_entries = self.entries.fetch_sub(entries, Ordering::SeqCst);
        let before_bytes = self.bytes.fetch_sub(bytes, Ordering::SeqCst);
        assert!(
            before_entries >= entries && before_bytes >= bytes,
            "a budget released more than was reserved"
        );
        if self.sleepers.load(Ordering::SeqCst) > 0 {
            let _guard = self.wake.lock();
            self.released.notify_all();
        }
    }
}

/// Adds `amount` to `counter` unless that would pass `max`.
fn take(counter: &AtomicUsize, amount: usize, max: usize, unit: QueueUnit) -> Result<(), QueueFull> {
    let full = |in_flight| QueueFull {
        unit,
        requested: amount,
        in_flight,
        max,
    };
    if amount > max {
        return Err(full(counter.load(Ordering::SeqCst)));
    }
    counter
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |held| {
            (held <= max - amount).then_some(held + amount)
        })
        .map(|_| ())
        .map_err(full)
}

/// A share of a [`Budget`], returned when dropped.
#[derive(Debug)]
#[must_use = "a reservation returns its share as soon as it is dropped"]
pub struct Reservation {
    budget: Arc<Budget>,
    entries: usize,
    bytes: usize,
}

impl Reservation {
    /// Moves `entries` items and `bytes` bytes of this reservation into a new one, so that each
    /// item of a group can return its own share.
    pub fn split(&mut self, entries: usize, bytes: usize) -> Reservation {
        assert!(
            entries <= self.entries && bytes <= self.bytes,
            "split beyond the reservation"
        );
        self.entries -= entries;
        self.bytes -= bytes;
        Reservation {
            budget: Arc::clone(&self.budget),
            entries,
            bytes,
        }
    }

    /// Returns the bytes this reservation holds.
    #[cfg(test)]
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.entries > 0 || self.bytes > 0 {
            self.budget.release(self.entries, self.bytes);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn reservation_returns_its_share_when_dropped() {
        let budget = Budget::new(4, 100);
        let first = budget.try_reserve(1, 60).unwrap();
        let full = budget.try_reserve(1, 41).unwrap_err();
        assert_eq!(
            full,
            QueueFull {
                unit: QueueUnit::Bytes,
                requested: 41,
                in_flight: 60,
                max: 100
            }
        );
        assert!(!full.can_never_fit());
        // The refused bytes did not keep the entry they took first.
        assert_eq!(budget.in_flight(), (1, 60));
        drop(first);
        assert_eq!(budget.in_flight(), (0, 0));
        let _again = budget.try_reserve(1, 100).unwrap();
    }

    #[test]
    fn item_larger_than_the_budget_can_never_fit() {
        let budget = Budget::new(4, 100);
        let refused = budget.reserve_blocking(1, 101).unwrap_err();
        assert!(refused.can_never_fit());
        assert_eq!(budget.try_reserve(5, 1).unwrap_err().unit, QueueUnit::Entries);
        assert_eq!(budget.in_flight(), (0, 0));
    }

    #[test]
    fn split_shares_return_separately() {
        let budget = Budget::new(4, 100);
        let mut group = budget.try_reserve(3, 90).unwrap();
        let one = group.split(1, 30);
        let two = group.split(1, 30);
        assert_eq!(group.bytes(), 30);
        drop(one);
        assert_eq!(budget.in_flight(), (2, 60));
        drop(group);
        drop(two);
        assert_eq!(budget.in_flight(), (0, 0));
    }

    #[test]
    fn blocked_producer_wakes_on_release() {
        let budget = Budget::new(1, 100);
        let held = budget.try_reserve(1, 100).unwrap();
        let waiter = {
            let budget = Arc::clone(&budget);
            std::thread::spawn(move || budget.reserve_blocking(1, 10).map(|r| r.bytes()))
        };
        drop(held);
        assert_eq!(waiter.join().unwrap().unwrap(), 10);
        assert_eq!(budget.in_flight(), (0, 0));
    }
}

//! [`Snapshot`]: one read transaction that many reads share, so that they all see one state,
//! and the ingest cursor it reflects.
//!
//! A snapshot sees whole ingest batches only: every batch commits in one transaction with the
//! cursor, and a read transaction sees a commit entirely or not at all.
//!
//! Its lifetime is bounded. LMDB may resize the map only while no transaction of the process is
//! open, and an open read transaction pins the pages it sees. So a snapshot's transaction is
//! held in a slot that the state can empty:
//! - a read after `state.snapshot_lifetime_ms_max` empties the slot and answers
//!   [`StateError::SnapshotExpired`];
//! - every ingest commit empties the slots of expired snapshots it can lock without waiting;
//! - a map resize empties every slot, after waiting only for reads in progress (each one
//!   short): a long-lived snapshot never stalls ingestion.

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use heed::{RoTxn, WithoutTls};
use parking_lot::Mutex;

use super::apply::read_cursor;
use super::asof;
use super::layout::PairId;
use super::read::{HeadSummary, ListPage, ListQuery, StoredAssertion, entries_in, get_in, heads_in, list_in};
use super::trust::get_trust;
use super::votes::{StoredVote, VoteTotals, get_totals, vote_weights_in, votes_in};
use super::{Databases, State, StateError, StoredTrust};
use crate::protocol::{AgentId, Hash};

/// The read transaction of a snapshot, or nothing once it is let go.
pub(super) struct Slot {
    txn: Mutex<Option<RoTxn<'static, WithoutTls>>>,
    taken: Instant,
}

/// The live snapshots of a state, weakly: a dropped snapshot leaves a dead entry, pruned when
/// the next one registers.
#[derive(Default)]
pub(super) struct Registry {
    slots: Mutex<Vec<Weak<Slot>>>,
}

impl Registry {
    fn register(&self, slot: &Arc<Slot>) {
        let mut slots = self.slots.lock();
        slots.retain(|s| s.strong_count() > 0);
        slots.push(Arc::downgrade(slot));
    }

    /// Lets go of the transactions of snapshots older than `lifetime` whose slot is free now.
    pub(super) fn reap_expired(&self, lifetime: Duration) {
        let slots = self.slots.lock();
        for slot in slots.iter().filter_map(Weak::upgrade) {
            if slot.taken.elapsed() > lifetime
                && let Some(mut txn) = slot.txn.try_lock()
            {
                txn.take();
            }
        }
    }

    /// Lets go of every snapshot's transaction, waiting for reads in progress; the caller keeps
    /// new snapshots from starting.
    pub(super) fn revoke_all(&self) -> usize {
        let slots = self.slots.lock();
        let mut revoked = 0;
        for slot in slots.iter().filter_map(Weak::upgrade) {
            if slot.txn.lock().take().is_some() {
                revoked += 1;
            }
        }
        revoked
    }
}

/// A consistent view of the state; see the module docs. Cheap to clone: clones share one
/// transaction.
///
/// It does not keep the state open: closing the state (a node's shutdown) lets go of every
/// snapshot's transaction, and later reads answer [`StateError::SnapshotExpired`].
#[derive(Clone)]
pub struct Snapshot {
    state: Weak<super::Inner>,
    dbs: Databases,
    lifetime: Duration,
    slot: Arc<Slot>,
    cursor: u64,
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot")
            .field("cursor", &self.cursor)
            .field("age", &self.slot.taken.elapsed())
            .finish()
    }
}

impl State {
    /// Takes a snapshot: one read transaction for many reads; see [`Snapshot`].
    pub fn snapshot(&self) -> Result<Snapshot, StateError> {
        let _guard = self.inner.resize.read();
        let txn = self
            .inner
            .env
            .clone()
            .static_read_txn()
            .map_err(StateError::lmdb("begin snapshot"))?;
        let cursor = read_cursor(&txn, &self.inner.dbs)?;
        let slot = Arc::new(Slot {
            txn: Mutex::new(Some(txn)),
            taken: Instant::now(),
        });
        self.inner.snapshots.register(&slot);
        Ok(Snapshot {
            state: Arc::downgrade(&self.inner),
            dbs: self.inner.dbs,
            lifetime: Duration::from_millis(self.inner.config.snapshot_lifetime_ms_max),
            slot,
            cursor,
        })
    }
}

impl Snapshot {
    /// Returns the ingest cursor this snapshot reflects: every journal record below it is
    /// applied, none at or above it.
    pub fn cursor(&self) -> u64 {
        self.cursor
    }

    /// Returns how long ago it was taken.
    pub fn age(&self) -> Duration {
        self.slot.taken.elapsed()
    }

    pub(super) fn read<R>(&self, f: impl FnOnce(&RoTxn<'_>, &Databases) -> Result<R, StateError>) -> Result<R, StateError> {
        let mut txn = self.slot.txn.lock();
        if self.state.strong_count() == 0 {
            txn.take();
            return Err(StateError::SnapshotExpired {
                reason: "the state is closed",
            });
        }
        if self.slot.taken.elapsed() > self.lifetime {
            txn.take();
            return Err(StateError::SnapshotExpired {
                reason: "older than state.snapshot_lifetime_ms_max",
            });
        }
        match txn.as_ref() {
            Some(txn) => f(txn, &self.dbs),
            None => Err(StateError::SnapshotExpired {
                reason: "let go for a map resize or after its lifetime",
            }),
        }
    }

    /// Returns the assertion with content hash `hash`, if stored.
    pub fn get(&self, hash: &Hash) -> Result<Option<StoredAssertion>, StateError> {
        self.read(|txn, dbs| get_in(txn, dbs, hash))
    }

    /// Lists assertions of a subject or a (subject, predicate) pair; see [`ListQuery`].
    pub fn list(&self, query: &ListQuery) -> Result<ListPage, StateError> {
        self.read(|txn, dbs| list_in(txn, dbs, query))
    }

    /// Returns up to `limit` heads of (`subject`, `predicate`) from the heads index alone,
    /// oldest first, with no record decoded.
    pub fn heads(&self, subject: &str, predicate: &str, limit: usize) -> Result<Vec<HeadSummary>, StateError> {
        self.read(|txn, dbs| heads_in(txn, dbs, &PairId::of(subject, predicate), limit))
    }

    /// Returns up to `limit` entries of (`subject`, `predicate`) from the `pairs` index: its
    /// heads, then with `history` its superseded assertions, each part oldest first.
    pub fn entries(
        &self,
        subject: &str,
        predicate: &str,
        history: bool,
        limit: usize,
    ) -> Result<Vec<HeadSummary>, StateError> {
        self.read(|txn, dbs| entries_in(txn, dbs, &PairId::of(subject, predicate), history, limit))
    }

    /// [`entries`](Self::entries) as of `end`: as the state stood with only the records
    /// journaled below `end` applied (see `asof`). `end` is capped at the snapshot's cursor.
    pub fn entries_as_of(
        &self,
        subject: &str,
        predicate: &str,
        end: u64,
        history: bool,
        limit: usize,
    ) -> Result<Vec<HeadSummary>, StateError> {
        let end = end.min(self.cursor);
        self.read(|txn, dbs| asof::entries_as_of(txn, dbs, &PairId::of(subject, predicate), end, history, limit))
    }

    /// [`vote_weights`](Self::vote_weights) as of `end` (capped at the snapshot's cursor).
    pub fn vote_weights_as_of(
        &self,
        assertion: &Hash,
        end: u64,
        limit: usize,
    ) -> Result<Vec<(AgentId, f32)>, StateError> {
        let end = end.min(self.cursor);
        self.read(|txn, dbs| asof::vote_weights_as_of(txn, dbs, assertion, end, limit))
    }

    /// `agent`'s applied trust change as of `end` (capped at the snapshot's cursor).
    pub fn trust_change_as_of(&self, agent: &AgentId, end: u64) -> Result<Option<StoredTrust>, StateError> {
        let end = end.min(self.cursor);
        self.read(|txn, dbs| asof::trust_as_of(txn, dbs, agent, end))
    }

    /// The ingest cursor the state had reached at wall-clock `ms` (capped at the snapshot's
    /// cursor; 0 if nothing was applied by then).
    pub fn cursor_at_time(&self, ms: u64) -> Result<u64, StateError> {
        Ok(self.read(|txn, dbs| asof::end_at_time(txn, dbs, ms))?.min(self.cursor))
    }

    /// Returns the totals of the live votes on `assertion`.
    pub fn vote_totals(&self, assertion: &Hash) -> Result<VoteTotals, StateError> {
        self.read(|txn, dbs| get_totals(txn, dbs, assertion))
    }

    /// Returns up to `limit` live votes on `assertion`, by voter.
    pub fn votes(&self, assertion: &Hash, limit: usize) -> Result<Vec<StoredVote>, StateError> {
        self.read(|txn, dbs| votes_in(txn, dbs, assertion, limit))
    }

    /// Returns up to `limit` (voter, weight) pairs of the live votes on `assertion`, by voter:
    /// what a lens weighs, read without decoding whole votes.
    pub fn vote_weights(&self, assertion: &Hash, limit: usize) -> Result<Vec<(AgentId, f32)>, StateError> {
        self.read(|txn, dbs| vote_weights_in(txn, dbs, assertion, limit))
    }

    /// Returns `agent`'s applied trust change, if it has one.
    pub fn trust_change(&self, agent: &AgentId) -> Result<Option<StoredTrust>, StateError> {
        self.read(|txn, dbs| get_trust(txn, dbs, agent))
    }
}

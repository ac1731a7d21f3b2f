//! The read path of a [`Node`]: resolutions with lenses (on the resolver pool, from views when
//! a query allows, audited when asked), watches of winners, views and the audit trail.

use std::sync::Arc;

use super::{HeadSummary, Node, NodeError, Snapshot};
use crate::actors::Resolve;
use crate::lens::{
    Lens, Query, Resolution, ResolveError, Subscription, ViewCounters, ViewKey, ViewStatus, WinnerChange,
};
use crate::storage::audit::AuditRecord;

use super::AuditMode;
use crate::telemetry::catalog;

/// A stream of winner changes; see [`Node::watch`]. While it lives, its view is kept (never
/// evicted); dropping it lets the view go.
#[derive(Debug)]
pub struct Watch {
    subscription: Subscription,
}

/// Why a [`Watch`] yielded no change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WatchError {
    /// The watcher fell behind: this many changes were dropped; the next is the latest ones.
    #[error("the watcher lagged and missed {0} winner changes")]
    Lagged(u64),
    /// The node shut down.
    #[error("the node is shut down")]
    Closed,
}

impl Watch {
    /// Waits for the next winner change.
    pub async fn next(&mut self) -> Result<WinnerChange, WatchError> {
        use tokio::sync::broadcast::error::RecvError;
        self.subscription
            .receiver
            .recv()
            .await
            .map_err(|error| match error {
                RecvError::Lagged(missed) => lagged(missed),
                RecvError::Closed => WatchError::Closed,
            })
    }

    /// Returns the next winner change if one is waiting.
    pub fn try_next(&mut self) -> Option<Result<WinnerChange, WatchError>> {
        use tokio::sync::broadcast::error::TryRecvError;
        match self.subscription.receiver.try_recv() {
            Ok(change) => Some(Ok(change)),
            Err(TryRecvError::Empty) => None,
            Err(TryRecvError::Lagged(missed)) => Some(Err(lagged(missed))),
            Err(TryRecvError::Closed) => Some(Err(WatchError::Closed)),
        }
    }
}

/// Counts the changes a lagging watcher missed.
fn lagged(missed: u64) -> WatchError {
    metrics::counter!(catalog::WATCH_MISSED).increment(missed);
    WatchError::Lagged(missed)
}

/// The `reason` label of a failed resolve.
fn error_reason(error: &ResolveError) -> &'static str {
    match error {
        ResolveError::UnknownLens { .. } => "unknown_lens",
        ResolveError::LensExists { .. } | ResolveError::NameTooLong(_) => "invalid",
        ResolveError::AsOfUnsupported { .. }
        | ResolveError::Unprovable(_)
        | ResolveError::ModelUnavailable(_) => "unavailable",
        ResolveError::Lens { .. } => "lens_failed",
        ResolveError::State(_) | ResolveError::Audit(_) => "storage",
        ResolveError::Closed => "closed",
        ResolveError::ViewsFull { .. } => "views_full",
    }
}

impl Node {
    /// Resolves `query`: which of the competing assertions about its (subject, predicate) wins
    /// under its lens, with every candidate's score and reason. Runs on the resolver threads
    /// (`node.lens_threads`), on a snapshot taken at the call. A subject or predicate longer
    /// than `limits.subject_bytes_max` or `limits.predicate_bytes_max` is refused
    /// ([`ResolveError::NameTooLong`]) before any work.
    ///
    /// An audited resolution is answered once its audit record is committed. If that fails,
    /// a query that asked for audit gets the error; one audited only because
    /// `node.audit = "all"` is answered without an `audit_id` (the failure is logged and
    /// counted in `stemedb_audit_write_failures_total`).
    pub async fn resolve(&self, query: Query) -> Result<Resolution, ResolveError> {
        let started = std::time::Instant::now();
        let outcome = self.resolve_audited(query).await;
        match &outcome {
            Ok((resolution, from_view)) => {
                // The lens is a registered one (an unknown name fails): a bounded label.
                let lens = resolution.lens.clone();
                let source = if *from_view { "view" } else { "computed" };
                metrics::counter!(catalog::RESOLVES, "lens" => lens.clone(), "source" => source).increment(1);
                metrics::histogram!(catalog::RESOLVE_SECONDS, "lens" => lens).record(started.elapsed());
            }
            Err(error) => {
                metrics::counter!(catalog::RESOLVE_ERRORS, "reason" => error_reason(error)).increment(1);
            }
        }
        outcome.map(|(resolution, _)| resolution)
    }

    async fn resolve_audited(&self, query: Query) -> Result<(Resolution, bool), ResolveError> {
        self.inner.limits.check_names(&query.subject, &query.predicate)?;
        let audited = query.audit || self.inner.audit_mode == AuditMode::All;
        let audit_query = audited.then(|| query.clone());
        let (mut resolution, from_view) = self.resolve_unaudited(query).await?;
        if let Some(query) = audit_query {
            match self.write_audit(&query, &resolution).await {
                Ok(id) => {
                    resolution.audit_id = Some(id);
                    metrics::counter!(catalog::AUDIT_RECORDS).increment(1);
                }
                Err(error) => {
                    metrics::counter!(catalog::AUDIT_WRITE_FAILURES).increment(1);
                    if query.audit {
                        return Err(error);
                    }
                    // Audited only by node.audit = "all": the audit trail must not decide
                    // whether a query that did not ask for it is answered.
                    tracing::warn!(%error, "audit record not written; answering without an audit id");
                }
            }
        }
        Ok((resolution, from_view))
    }

    /// Writes the audit record of `resolution`; returns its id once it is committed.
    async fn write_audit(&self, query: &Query, resolution: &Resolution) -> Result<u64, ResolveError> {
        let id = self
            .inner
            .next_audit_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let record = AuditRecord {
            id,
            at_ms: crate::protocol::now_ms(),
            requester: query.requester.clone(),
            subject: query.subject.clone(),
            predicate: query.predicate.clone(),
            lens: resolution.lens.clone(),
            history: query.history,
            as_of: query.as_of.map(|a| format!("{a:?}")),
            candidates: resolution
                .ranked
                .iter()
                .map(|s| (s.candidate.hash, s.score.value))
                .collect(),
            winner: resolution.winner,
            offset: resolution.offset,
        };
        let append = self
            .with_running(|running| Ok(running.audit.as_ref().map(|audit| audit.append(record))))
            .map_err(|_| ResolveError::Closed)?
            .ok_or(ResolveError::Closed)?;
        append.await.map_err(ResolveError::Audit)?;
        Ok(id)
    }

    /// Returns the bytes the audit trail stores (encoded records and their keys), which
    /// retention keeps within `node.audit_bytes_max`.
    pub fn audit_stored_bytes(&self) -> Result<u64, NodeError> {
        self.with_running(|running| match &running.audit {
            Some(audit) => Ok(audit.stored_bytes()),
            None => Err(NodeError::Closed),
        })
    }

    /// Returns the audit record `id`, if it is kept.
    pub fn audit(&self, id: u64) -> Result<Option<AuditRecord>, NodeError> {
        self.with_running(|running| match &running.audit {
            Some(audit) => Ok(audit.get(id)?),
            None => Err(NodeError::Closed),
        })
    }

    /// Returns up to `limit` audit records about (`subject`, `predicate`), newest first. Names
    /// longer than the node's limits are refused ([`NodeError::NameTooLong`]).
    pub fn audits(
        &self,
        subject: &str,
        predicate: &str,
        limit: usize,
    ) -> Result<Vec<AuditRecord>, NodeError> {
        self.audits_before(subject, predicate, None, limit)
    }

    /// Returns up to `limit` audit records about (`subject`, `predicate`) with ids below
    /// `before` (every id if `None`), newest first: pass the last id of a page to get the next.
    pub fn audits_before(
        &self,
        subject: &str,
        predicate: &str,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<AuditRecord>, NodeError> {
        self.inner.limits.check_names(subject, predicate)?;
        self.with_running(|running| match (&running.audit, before) {
            (Some(audit), None) => Ok(audit.by_pair(subject, predicate, limit)?),
            (Some(audit), Some(before)) => Ok(audit.by_pair_before(subject, predicate, before, limit)?),
            (None, _) => Err(NodeError::Closed),
        })
    }

    /// Resolves `query` from a fresh view (then the flag is true) or on the resolver pool.
    async fn resolve_unaudited(&self, query: Query) -> Result<(Resolution, bool), ResolveError> {
        let view = query
            .max_stale
            .and_then(|max| query.view_key().map(|key| (key, max)));
        if let Some((key, max)) = &view
            && let Some(resolution) = self.inner.views.lookup(key, *max, self.ingest_status().cursor)
        {
            return Ok((resolution, true));
        }
        let owner = query.requester.clone();
        let resolution = self.compute(query).await?;
        // No view of a pair nobody asserted anything about: it would only cost memory. A
        // named requester holds its share of the views at most.
        if let Some((key, _)) = view
            && !resolution.ranked.is_empty()
            && match &owner {
                Some(owner) => self.inner.views.insert_for(&key, resolution.clone(), owner),
                None => self.inner.views.insert(&key, resolution.clone()),
            }
        {
            self.inner
                .views
                .refresh_if_behind(&key, self.ingest_status().cursor);
        }
        Ok((resolution, false))
    }

    /// Watches the winner of (`subject`, `predicate`) under `lens`: a stream of changes, one
    /// per refresh of its view that changes the winner (creating the view if needed). A watcher
    /// that falls more than `node.watch_buffer` changes behind is told it lagged
    /// ([`WatchError::Lagged`]); it never holds up the ingest. The view is kept while a watch
    /// of it lives; when the views are at their caps and every one is watched, a new watch is
    /// refused ([`ResolveError::ViewsFull`]).
    pub async fn watch(&self, subject: &str, predicate: &str, lens: &str) -> Result<Watch, ResolveError> {
        self.inner.limits.check_names(subject, predicate)?;
        let key = ViewKey {
            subject: subject.to_owned(),
            predicate: predicate.to_owned(),
            lens: lens.to_owned(),
        };
        if let Some(subscription) = self.inner.views.subscribe(&key) {
            return Ok(Watch { subscription });
        }
        let resolution = self.compute(Query::new(subject, predicate, lens)).await?;
        // Subscribed as it is stored, before a refresh can run (so no change is missed) and
        // before an eviction could take it.
        let subscription =
            self.inner
                .views
                .insert_and_subscribe(&key, resolution)
                .ok_or(ResolveError::ViewsFull {
                    max: self.inner.views_max,
                })?;
        self.inner
            .views
            .refresh_if_behind(&key, self.ingest_status().cursor);
        Ok(Watch { subscription })
    }

    /// Returns the status of the view of (`subject`, `predicate`, `lens`), if there is one.
    pub fn view_status(&self, subject: &str, predicate: &str, lens: &str) -> Option<ViewStatus> {
        self.inner.views.status(&ViewKey {
            subject: subject.to_owned(),
            predicate: predicate.to_owned(),
            lens: lens.to_owned(),
        })
    }

    /// Returns the counters of view use: hits, misses, and views bypassed for clock skew.
    pub fn view_counters(&self) -> ViewCounters {
        self.inner.views.counters()
    }

    /// Test support: the node's views.
    #[cfg(feature = "test-kit")]
    #[doc(hidden)]
    pub fn views_for_tests(&self) -> Arc<crate::lens::Views> {
        self.inner.views.clone()
    }

    /// Resolves `query` on the resolver pool, on a snapshot taken once it is this resolve's
    /// turn (see `Inner::resolving`).
    async fn compute(&self, query: Query) -> Result<Resolution, ResolveError> {
        let lens = self.inner.registry.get(&query.lens)?;
        let _turn = self
            .inner
            .resolving
            .acquire()
            .await
            .map_err(|_| ResolveError::Closed)?;
        let (snapshot, pool) = self
            .with_running(|running| Ok((running.state.snapshot()?, running.resolvers.clone())))
            .map_err(|error| match error {
                NodeError::State(error) => ResolveError::State(error),
                _ => ResolveError::Closed,
            })?;
        let resolve = Resolve {
            snapshot,
            query,
            lens,
            trust: self.inner.trust_book.clone(),
        };
        // Counted until answered, or until this future is dropped (a timeout, a client gone).
        let _pending = self.inner.mailboxes.lens.pending();
        pool.send(resolve).await.map_err(|_| ResolveError::Closed)?
    }

    /// Registers a lens under its name, for queries to ask for; the built-ins are
    /// `recency`, `confidence` and `consensus`. A name is registered once.
    pub fn register_lens(&self, lens: Arc<dyn Lens>) -> Result<(), ResolveError> {
        self.inner.registry.register(lens)
    }

    /// Returns the names of the registered lenses, sorted.
    pub fn lenses(&self) -> Vec<String> {
        self.inner.registry.names()
    }

    /// Takes a [`Snapshot`]: one read transaction that many reads share, with the ingest cursor
    /// it reflects. It never sees part of an ingest batch. It expires after
    /// `state.snapshot_lifetime_ms_max`, or at a map resize; take a new one then.
    pub fn snapshot(&self) -> Result<Snapshot, NodeError> {
        self.with_state(|state| Ok(state.snapshot()?))
    }

    /// Returns up to `limit` heads of (`subject`, `predicate`) from the heads index alone,
    /// oldest first: hash, timestamp, offset, confidence, lifecycle and signers, with no
    /// record decoded. [`list`](Self::list) returns the assertions themselves.
    pub fn heads(&self, subject: &str, predicate: &str, limit: usize) -> Result<Vec<HeadSummary>, NodeError> {
        self.with_state(|state| Ok(state.heads(subject, predicate, limit)?))
    }
}

//! [`Health`]: one consistent look at where ingestion stands, for operators and probes.

use std::time::Instant;

use super::{IngestStatus, Node, NodeError, WaitError};

/// Where the node's ingestion stands; see [`Node::health`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    /// Journal offset of the next record to apply: every record below it is indexed.
    pub ingest_cursor: u64,
    /// The log's durable end: every record below it is acknowledged.
    pub durable_end: u64,
    /// Positions of log that are durable but not yet indexed (`durable_end - ingest_cursor`):
    /// bytes of the local journal;
    /// with a replicated log, records fetched from the stream and not yet indexed.
    pub lag_bytes: u64,
    /// Why ingestion is held, if it is: then waiters get
    /// [`WaitError::Stalled`](super::WaitError::Stalled) and the lag does not shrink.
    pub stalled: Option<String>,
}

impl Health {
    /// Returns true if and only if ingestion is not stalled.
    pub fn is_ingesting(&self) -> bool {
        self.stalled.is_none()
    }
}

impl Node {
    /// Returns where ingestion stands: cursor, durable end, lag and any stall.
    ///
    /// The cursor is read before the durable end, and both only grow, so the lag is never
    /// negative: at worst it counts records that became indexed in between.
    pub fn health(&self) -> Result<Health, NodeError> {
        let status = self.ingest_status();
        let durable_end = self.durable_end()?;
        Ok(Health {
            ingest_cursor: status.cursor,
            durable_end,
            lag_bytes: durable_end.saturating_sub(status.cursor),
            stalled: status.stalled.or(self.log_fault()?),
        })
    }

    /// Returns why the log cannot be read, if it cannot (say, a replicated log whose servers
    /// have not answered for a while); see [`Log::fault`](crate::log::Log::fault).
    pub fn log_fault(&self) -> Result<Option<String>, NodeError> {
        self.with_running(|running| Ok(running.log.fault()))
    }

    /// Waits until the record at log position `offset` is applied to the state (read-your-writes),
    /// or until `deadline`. Returns [`WaitError::Stalled`] as soon as ingestion is reported
    /// stalled (see [`health`](Self::health)), rather than wait out the deadline.
    #[tracing::instrument(level = "debug", name = "node.wait_indexed", skip(self, deadline))]
    pub async fn wait_indexed(&self, offset: u64, deadline: Instant) -> Result<(), WaitError> {
        let mut status = self.inner.status.clone();
        let wait = status.wait_for(|s| s.cursor > offset || s.stalled.is_some());
        let waited = actix_rt::time::timeout(deadline.saturating_duration_since(Instant::now()), wait)
            .await
            .map(|seen| seen.map(|status| (status.cursor, status.stalled.clone())));
        match waited {
            Ok(Ok((cursor, _))) if cursor > offset => Ok(()),
            Ok(Ok((cursor, stalled))) => Err(WaitError::Stalled {
                cursor,
                reason: stalled.unwrap_or_default(),
            }),
            Ok(Err(_)) => Err(WaitError::Closed),
            Err(_) => Err(WaitError::Timeout {
                offset,
                cursor: self.inner.status.borrow().cursor,
            }),
        }
    }

    /// Waits until everything durable when called is applied to the state, or until
    /// `deadline`; e.g. after a restart, to wait for the catch-up.
    pub async fn wait_caught_up(&self, deadline: Instant) -> Result<(), WaitError> {
        let end = self.durable_end().map_err(|_| WaitError::Closed)?;
        match end.checked_sub(1) {
            Some(last) => self.wait_indexed(last, deadline).await,
            None => Ok(()),
        }
    }

    /// Returns where ingestion stands.
    pub fn ingest_status(&self) -> IngestStatus {
        self.inner.status.borrow().clone()
    }
}

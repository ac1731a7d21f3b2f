//! [`Health`]: one consistent look at where ingestion stands, for operators and probes.

use super::{Node, NodeError};

/// Where the node's ingestion stands; see [`Node::health`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    /// Journal offset of the next record to apply: every record below it is indexed.
    pub ingest_cursor: u64,
    /// The journal's durable end: every record below it is acknowledged.
    pub durable_end: u64,
    /// Bytes of journal that are durable but not yet indexed (`durable_end - ingest_cursor`).
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
            stalled: status.stalled,
        })
    }
}

//! [`Mailboxes`]: how many messages wait for each kind of actor of a node, for the
//! `stemedb_mailbox_depth` gauge. actix does not expose its mailboxes' lengths, so senders and
//! handlers count: a request-reply message holds a [`Pending`] guard from its send until its
//! reply is taken or dropped (so an abandoned request is never left counted), and the
//! ingestor's durable end, which coalesces in a watch channel, counts 1 from the log's
//! listener raising it until the ingestor takes it. The counts belong to one node and end with it.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

/// One actor kind's count.
#[derive(Debug, Clone, Default)]
pub(crate) struct Depth(Arc<AtomicI64>);

impl Depth {
    /// Counts a message handed to the mailbox (taken later by [`taken`](Self::taken)).
    pub(crate) fn sent(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a message taken out of the mailbox.
    pub(crate) fn taken(&self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }

    /// Marks one coalescing item (the latest durable end) as waiting: the count is 1 until
    /// [`clear`](Self::clear), however many items arrive meanwhile.
    pub(crate) fn set_waiting(&self) {
        self.0.store(1, Ordering::Relaxed);
    }

    /// Marks the coalescing item as taken.
    pub(crate) fn clear(&self) {
        self.0.store(0, Ordering::Relaxed);
    }

    /// Counts a request until the returned guard is dropped.
    pub(crate) fn pending(&self) -> Pending {
        self.sent();
        Pending(self.clone())
    }

    /// Messages waiting now (never negative).
    pub(crate) fn get(&self) -> u64 {
        u64::try_from(self.0.load(Ordering::Relaxed)).unwrap_or(0)
    }
}

/// A request counted in its actor's [`Depth`] until dropped.
#[derive(Debug)]
pub(crate) struct Pending(Depth);

impl Drop for Pending {
    fn drop(&mut self) {
        self.0.taken();
    }
}

/// The depths of one node's actors.
#[derive(Debug, Clone, Default)]
pub(crate) struct Mailboxes {
    /// The ingestor's durable end not taken yet (0 or 1: ends coalesce).
    pub(crate) ingestor: Depth,
    /// Vote batches sent to the vote-counter shards and not yet answered.
    pub(crate) vote_counter: Depth,
    /// Resolves sent to the Lens actors and not yet answered.
    pub(crate) lens: Depth,
}

impl Mailboxes {
    /// Each depth with its `actor` label.
    pub(crate) fn labelled(&self) -> [(&'static str, &Depth); 3] {
        [
            ("ingestor", &self.ingestor),
            ("vote_counter", &self.vote_counter),
            ("lens", &self.lens),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::Depth;

    #[test]
    fn a_pending_request_is_counted_until_dropped_however_it_ends() {
        let depth = Depth::default();
        let first = depth.pending();
        let second = depth.pending();
        assert_eq!(depth.get(), 2);
        drop(first);
        assert_eq!(depth.get(), 1);
        // A future holding its guard, dropped before it ran (a timeout, a client gone).
        let abandoned = async move {
            let _held = second;
            std::future::pending::<()>().await;
        };
        drop(abandoned);
        assert_eq!(depth.get(), 0);
        depth.sent();
        depth.taken();
        assert_eq!(depth.get(), 0);
    }
}

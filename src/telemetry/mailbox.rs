//! [`Mailbox`]: how many messages wait for each kind of actor, for the `stemedb_mailbox_depth`
//! gauge. actix does not expose its mailboxes' lengths, so senders count what they send and
//! handlers what they take; the counts are process-wide, summed over every node.

use std::sync::atomic::{AtomicI64, Ordering};

/// An actor kind whose mailbox is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mailbox {
    /// The ingestor (durable-end announcements and its own drain steps).
    Ingestor,
    /// The vote-counter shards.
    VoteCounter,
    /// The Lens actors (resolves).
    Lens,
}

static DEPTHS: [AtomicI64; 3] = [AtomicI64::new(0), AtomicI64::new(0), AtomicI64::new(0)];

impl Mailbox {
    /// Every kind, with its label value.
    pub(crate) const ALL: [(Self, &'static str); 3] = [
        (Self::Ingestor, "ingestor"),
        (Self::VoteCounter, "vote_counter"),
        (Self::Lens, "lens"),
    ];

    fn slot(self) -> &'static AtomicI64 {
        &DEPTHS[self as usize]
    }

    /// Counts a message handed to the mailbox.
    pub(crate) fn sent(self) {
        self.slot().fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a message taken out of the mailbox (handled, or dropped unhandled).
    pub(crate) fn taken(self) {
        self.slot().fetch_sub(1, Ordering::Relaxed);
    }

    /// Messages waiting now (never negative).
    pub(crate) fn depth(self) -> u64 {
        u64::try_from(self.slot().load(Ordering::Relaxed)).unwrap_or(0)
    }
}

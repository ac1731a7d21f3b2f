//! [`GroupCommitActor`]: announces each new durable end of the journal to its subscribers.
//!
//! The group commit itself runs on the journal's dedicated thread (an fdatasync must not block
//! an arbiter). After every batch that thread tells this actor the new durable end; the actor
//! forwards it to every subscriber, e.g. the Ingestor, which is so woken by durability rather
//! than by polling. Announcements coalesce: a subscriber whose mailbox is full misses one, but
//! the next carries a larger end, and ends only grow.

use actix::prelude::*;

use crate::storage::journal::Journal;

/// Most subscribers; they are the node's own consumers, and there are few.
pub const SUBSCRIBERS_MAX: usize = 64;

/// A new durable end of the journal: every record below `end` is durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Message)]
#[rtype(result = "()")]
pub struct DurableOffset {
    /// Global offset just past the last durable record.
    pub end: u64,
}

/// Subscribe a recipient to [`DurableOffset`] announcements; it is sent the current end at once.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), SubscribeError>")]
pub struct Subscribe(pub Recipient<DurableOffset>);

/// A subscription that was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the group-commit actor already has {SUBSCRIBERS_MAX} subscribers")]
pub struct SubscribeError;

/// The group-commit actor.
#[derive(Debug)]
pub struct GroupCommitActor {
    journal: Journal,
    subscribers: Vec<Recipient<DurableOffset>>,
    end: u64,
}

impl GroupCommitActor {
    /// Creates the actor for `journal`; start it, and it installs the journal's listener.
    pub fn new(journal: Journal) -> Self {
        let end = journal.durable_end();
        Self {
            journal,
            subscribers: Vec::new(),
            end,
        }
    }
}

impl Actor for GroupCommitActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let address = ctx.address();
        self.journal.set_durable_listener(Box::new(move |end| {
            // A full mailbox drops this announcement; a later one carries a larger end.
            let _ = address.try_send(DurableOffset { end });
        }));
        // Batches committed before the listener was installed.
        self.end = self.end.max(self.journal.durable_end());
    }
}

impl Handler<DurableOffset> for GroupCommitActor {
    type Result = ();

    fn handle(&mut self, message: DurableOffset, _ctx: &mut Self::Context) {
        if message.end <= self.end {
            return;
        }
        self.end = message.end;
        self.subscribers.retain(|s| s.connected());
        for subscriber in &self.subscribers {
            let _ = subscriber.try_send(message);
        }
    }
}

impl Handler<Subscribe> for GroupCommitActor {
    type Result = Result<(), SubscribeError>;

    fn handle(&mut self, message: Subscribe, _ctx: &mut Self::Context) -> Self::Result {
        self.subscribers.retain(|s| s.connected());
        if self.subscribers.len() >= SUBSCRIBERS_MAX {
            return Err(SubscribeError);
        }
        let _ = message.0.try_send(DurableOffset { end: self.end });
        self.subscribers.push(message.0);
        Ok(())
    }
}

//! [`DurableBroadcaster`]: announces each new durable end of the journal to its subscribers.
//!
//! The group commit itself runs on the journal's dedicated thread (an fdatasync must not block
//! an arbiter). After every batch that thread tells this actor the new durable end; the actor
//! forwards it to every subscriber, e.g. the Ingestor, which is so woken by durability rather
//! than by polling. Announcements coalesce: each carries the journal's current durable end, and
//! a subscriber whose mailbox is full is marked behind and sent the latest end again shortly
//! after. One re-announce timer at most is pending for the whole actor, however many
//! announcements find a mailbox full, so a flood of durable ends cannot pile up timers.
//!
//! Start it on an arbiter of its own (the node does): the wake-up of the ingestor then never
//! waits for the host's thread, however busy the host keeps it.

use actix::prelude::*;

use std::sync::{Arc, Weak};

use crate::storage::journal::{Journal, Log, WeakJournal};
use crate::telemetry::Depth;

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

/// [`Subscribe`], with every announcement sent counted in `1`'s depth (its handler counts
/// each one taken), for the `stemedb_mailbox_depth` gauge.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), SubscribeError>")]
pub(crate) struct SubscribeCounted(pub Recipient<DurableOffset>, pub Depth);

/// A subscription that was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the group-commit actor already has {SUBSCRIBERS_MAX} subscribers")]
pub struct SubscribeError;

/// The group-commit actor.
#[derive(Debug)]
pub struct DurableBroadcaster {
    /// Weak: the log's owner decides when it closes; this actor stops when it has.
    journal: WeakLog,
    subscribers: Vec<Subscriber>,
    end: u64,
    /// Re-announce timers scheduled and not yet fired: 0 or 1.
    reannounces_pending: usize,
    /// The most re-announce timers ever pending at once.
    reannounces_pending_max: usize,
}

#[derive(Debug)]
struct Subscriber {
    recipient: Recipient<DurableOffset>,
    /// Its mailbox was full at the last announcement: it is owed the latest end.
    behind: bool,
    /// The mailbox depth that counts what it is sent, if any.
    mailbox: Option<Depth>,
}

/// A weak handle on the log announced.
#[derive(Debug)]
enum WeakLog {
    Journal(WeakJournal),
    Other(Weak<dyn Log>),
}

impl WeakLog {
    fn upgrade(&self) -> Option<Arc<dyn Log>> {
        match self {
            Self::Journal(journal) => journal.upgrade().map(|journal| Arc::new(journal) as Arc<dyn Log>),
            Self::Other(log) => log.upgrade(),
        }
    }
}

impl DurableBroadcaster {
    /// Creates the actor for `journal`; start it, and it installs the journal's listener.
    pub fn new(journal: Journal) -> Self {
        Self::with_weak(journal.durable_end(), WeakLog::Journal(journal.downgrade()))
    }

    /// Creates the actor for any [`Log`] (a replicated one); it stops once `log` is dropped.
    pub(crate) fn for_log(log: &Arc<dyn Log>) -> Self {
        Self::with_weak(log.durable_end(), WeakLog::Other(Arc::downgrade(log)))
    }

    fn with_weak(end: u64, journal: WeakLog) -> Self {
        Self {
            journal,
            subscribers: Vec::new(),
            end,
            reannounces_pending: 0,
            reannounces_pending_max: 0,
        }
    }
}

impl Actor for DurableBroadcaster {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // A weak address: the journal must not keep this actor (and so itself) alive.
        let address = ctx.address().downgrade();
        let Some(journal) = self.journal.upgrade() else {
            ctx.stop();
            return;
        };
        journal.set_durable_listener(Box::new(move |end| {
            // A full mailbox drops this announcement; the handler reads the journal's current
            // end, so the announcement that does get through carries everything.
            if let Some(address) = address.upgrade() {
                let _ = address.try_send(DurableOffset { end });
            }
        }));
        // Batches committed before the listener was installed.
        self.end = self.end.max(journal.durable_end());
    }

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        if let Some(journal) = self.journal.upgrade() {
            journal.clear_durable_listener();
        }
    }
}

/// Retries announcing to subscribers whose mailboxes were full.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
struct Reannounce;

/// Delay before retrying a full subscriber mailbox, in milliseconds: a subscriber that is
/// behind drains its mailbox within this, and retrying is cheap.
const REANNOUNCE_DELAY_MS: u64 = 1;

impl DurableBroadcaster {
    /// Sends the current end to every subscriber, or only to those `behind`; schedules the one
    /// re-announce if a mailbox was full and none is pending yet.
    fn announce(&mut self, only_behind: bool, ctx: &mut Context<Self>) {
        self.subscribers.retain(|s| s.recipient.connected());
        let message = DurableOffset { end: self.end };
        let mut missed = false;
        for subscriber in &mut self.subscribers {
            if only_behind && !subscriber.behind {
                continue;
            }
            subscriber.behind = match subscriber.recipient.try_send(message) {
                Ok(()) => {
                    if let Some(mailbox) = &subscriber.mailbox {
                        mailbox.sent();
                    }
                    false
                }
                Err(SendError::Full(_)) => true,
                // Gone: dropped by the next `retain`.
                Err(SendError::Closed(_)) => false,
            };
            missed |= subscriber.behind;
        }
        if missed && self.reannounces_pending == 0 {
            self.reannounces_pending += 1;
            self.reannounces_pending_max = self.reannounces_pending_max.max(self.reannounces_pending);
            ctx.notify_later(Reannounce, std::time::Duration::from_millis(REANNOUNCE_DELAY_MS));
        }
    }
}

impl Handler<Reannounce> for DurableBroadcaster {
    type Result = ();

    fn handle(&mut self, _message: Reannounce, ctx: &mut Self::Context) {
        self.reannounces_pending -= 1;
        self.announce(true, ctx);
    }
}

/// Test-only: how many re-announce timers are and were pending ([`ReannounceCounts`]).
#[doc(hidden)]
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "ReannounceCounts")]
pub struct GetReannounceCounts;

/// Test-only answer to [`GetReannounceCounts`].
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, MessageResponse)]
pub struct ReannounceCounts {
    /// Re-announce timers pending now.
    pub pending: usize,
    /// The most ever pending at once.
    pub pending_max: usize,
}

impl Handler<GetReannounceCounts> for DurableBroadcaster {
    type Result = ReannounceCounts;

    fn handle(&mut self, _message: GetReannounceCounts, _ctx: &mut Self::Context) -> Self::Result {
        ReannounceCounts {
            pending: self.reannounces_pending,
            pending_max: self.reannounces_pending_max,
        }
    }
}

impl Handler<DurableOffset> for DurableBroadcaster {
    type Result = ();

    fn handle(&mut self, message: DurableOffset, ctx: &mut Self::Context) {
        let Some(journal) = self.journal.upgrade() else {
            ctx.stop();
            return;
        };
        let end = message.end.max(journal.durable_end());
        if end <= self.end {
            return;
        }
        self.end = end;
        self.announce(false, ctx);
    }
}

impl Handler<Subscribe> for DurableBroadcaster {
    type Result = Result<(), SubscribeError>;

    fn handle(&mut self, message: Subscribe, ctx: &mut Self::Context) -> Self::Result {
        self.subscribe(message.0, None, ctx)
    }
}

impl Handler<SubscribeCounted> for DurableBroadcaster {
    type Result = Result<(), SubscribeError>;

    fn handle(&mut self, message: SubscribeCounted, ctx: &mut Self::Context) -> Self::Result {
        self.subscribe(message.0, Some(message.1), ctx)
    }
}

impl DurableBroadcaster {
    fn subscribe(
        &mut self,
        recipient: Recipient<DurableOffset>,
        mailbox: Option<Depth>,
        ctx: &mut Context<Self>,
    ) -> Result<(), SubscribeError> {
        self.subscribers.retain(|s| s.recipient.connected());
        if self.subscribers.len() >= SUBSCRIBERS_MAX {
            return Err(SubscribeError);
        }
        self.subscribers.push(Subscriber {
            recipient,
            behind: true,
            mailbox,
        });
        self.announce(true, ctx);
        Ok(())
    }
}

//! [`JournalActor`]: the journal behind typed messages.
//!
//! Appends never block the actor: each is queued to the group-commit thread, whose reply
//! completes the message's future once the record is durable. A full queue answers
//! [`JournalError::Busy`] rather than growing memory. Range reads are bounded positional reads
//! (at most `max_records` records and `max_bytes` bytes), short enough to run inline.

use actix::prelude::*;

use crate::storage::journal::{Journal, JournalError, RangeRead, ReadError};

/// Mailbox capacity of the journal actor: appends are queued onwards at once, so a deep
/// mailbox would only hide overload.
const MAILBOX_CAPACITY: usize = 1024;
/// Largest `max_records` of one [`ReadRange`].
pub const READ_RANGE_RECORDS_MAX: usize = 10_000;
/// Largest `max_bytes` of one [`ReadRange`]: 64 MiB bounds the memory of one reply.
pub const READ_RANGE_BYTES_MAX: usize = 64 * 1024 * 1024;

/// The journal actor.
#[derive(Debug)]
pub struct JournalActor {
    journal: Journal,
}

impl JournalActor {
    /// Wraps an open journal.
    pub fn new(journal: Journal) -> Self {
        Self { journal }
    }
}

impl Actor for JournalActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(MAILBOX_CAPACITY);
    }
}

/// Append one record; resolves to its global offset once durable.
#[derive(Debug, Message)]
#[rtype(result = "Result<u64, JournalError>")]
pub struct Append {
    /// The record payload.
    pub payload: Vec<u8>,
}

impl Handler<Append> for JournalActor {
    type Result = ResponseFuture<Result<u64, JournalError>>;

    fn handle(&mut self, message: Append, _ctx: &mut Self::Context) -> Self::Result {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let queued = self.journal.try_append(
            message.payload,
            Box::new(move |outcome| {
                let _ = tx.send(outcome);
            }),
        );
        Box::pin(async move {
            queued?;
            rx.await.map_err(|_| JournalError::Closed)?
        })
    }
}

/// Read up to `max_records` records (and about `max_bytes` bytes) starting at `from`.
#[derive(Debug, Message)]
#[rtype(result = "Result<RangeRead, ReadError>")]
pub struct ReadRange {
    /// Offset of the first record to read.
    pub from: u64,
    /// Most records to return (capped at [`READ_RANGE_RECORDS_MAX`]).
    pub max_records: usize,
    /// Stop after the record that reaches this many payload bytes.
    pub max_bytes: usize,
}

impl Handler<ReadRange> for JournalActor {
    type Result = Result<RangeRead, ReadError>;

    fn handle(&mut self, message: ReadRange, _ctx: &mut Self::Context) -> Self::Result {
        let max_records = message.max_records.min(READ_RANGE_RECORDS_MAX);
        let max_bytes = message.max_bytes.min(READ_RANGE_BYTES_MAX);
        self.journal
            .reader()
            .read_range(message.from, max_records, max_bytes)
    }
}

/// Durably set a named cursor.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), JournalError>")]
pub struct SetCursor {
    /// The consumer's name.
    pub name: String,
    /// The offset it has durably processed up to.
    pub offset: u64,
}

impl Handler<SetCursor> for JournalActor {
    type Result = Result<(), JournalError>;

    fn handle(&mut self, message: SetCursor, _ctx: &mut Self::Context) -> Self::Result {
        self.journal.set_cursor(&message.name, message.offset)
    }
}

/// Remove segments every cursor has passed; resolves to how many were removed.
#[derive(Debug, Message)]
#[rtype(result = "Result<usize, JournalError>")]
pub struct CollectGarbage;

impl Handler<CollectGarbage> for JournalActor {
    type Result = Result<usize, JournalError>;

    fn handle(&mut self, _message: CollectGarbage, _ctx: &mut Self::Context) -> Self::Result {
        self.journal.collect_garbage()
    }
}

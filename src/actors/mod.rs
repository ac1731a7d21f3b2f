//! Actors: thin typed-message fronts over the storage layer (decode, call storage, reply).
//!
//! - [`JournalActor`]: appends (durable acks with offsets), range reads, cursors.
//! - [`GroupCommitActor`]: announces each new durable end to subscribers (the Ingestor).
//!
//! The group commit itself runs on a dedicated thread owned by the journal (see
//! [`crate::storage::journal`]): an fdatasync would block an actix arbiter.

mod group_commit;
mod journal;

pub use group_commit::{DurableOffset, GroupCommitActor, SUBSCRIBERS_MAX, Subscribe, SubscribeError};
pub use journal::{
    Append, CollectGarbage, JournalActor, READ_RANGE_BYTES_MAX, READ_RANGE_RECORDS_MAX, RangeRead, ReadRange,
    SetCursor,
};

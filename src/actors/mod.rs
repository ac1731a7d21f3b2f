//! Actors: thin typed-message fronts over the storage layer (decode, call storage, reply).
//!
//! - [`JournalActor`]: appends (durable acks with offsets), range reads, cursors.
//! - [`GroupCommitActor`]: announces each new durable end to subscribers (the Ingestor).
//! - [`IngestorActor`]: applies durable records to the LMDB state, exactly once.
//! - [`VoteCounterActor`]: one per shard; counts the votes of its assertions.
//!
//! The group commit itself runs on a dedicated thread owned by the journal (see
//! [`crate::storage::journal`]): an fdatasync would block an actix arbiter.

mod group_commit;
mod hooks;
mod ingestor;
mod journal;
mod vote_counter;

pub use crate::storage::journal::RangeRead;
pub use group_commit::{DurableOffset, GroupCommitActor, SUBSCRIBERS_MAX, Subscribe, SubscribeError};
#[doc(hidden)]
pub use group_commit::{GetReannounceCounts, ReannounceCounts};
#[doc(hidden)]
pub use hooks::{Hook, Hooks};
pub use ingestor::{INGEST_CURSOR_NAME, IngestStatus, IngestorActor, SetTrust};
pub use journal::{
    Append, CollectGarbage, JournalActor, READ_RANGE_BYTES_MAX, READ_RANGE_RECORDS_MAX, ReadRange, SetCursor,
};
pub use vote_counter::{CountVotes, VoteCounterActor, shard_of};

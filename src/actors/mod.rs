//! Actors: thin typed-message fronts over the storage layer (decode, call storage, reply).
//!
//! - [`GroupCommitActor`]: announces each new durable end to subscribers (the Ingestor).
//! - [`IngestorActor`]: applies durable records to the LMDB state, exactly once.
//! - [`VoteCounterActor`]: one per shard; counts the votes of its assertions.
//!
//! The group commit itself runs on a dedicated thread owned by the journal (see
//! [`crate::storage::journal`]): an fdatasync would block an actix arbiter.

mod group_commit;
mod hooks;
mod ingestor;
mod vote_counter;

pub use group_commit::{DurableOffset, GroupCommitActor, SUBSCRIBERS_MAX, Subscribe, SubscribeError};
#[doc(hidden)]
pub use group_commit::{GetReannounceCounts, ReannounceCounts};
#[doc(hidden)]
pub use hooks::{Hook, Hooks};
pub use ingestor::{INGEST_CURSOR_NAME, IngestStatus, IngestorActor};
pub use vote_counter::{CountVotes, VoteCounterActor, shard_of};

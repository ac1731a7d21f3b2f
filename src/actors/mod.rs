//! Actors: thin typed-message fronts over the storage layer (decode, call storage, reply).
//!
//! - [`DurableBroadcaster`]: announces each new durable end to subscribers (the Ingestor).
//! - [`IngestorActor`]: applies durable records to the LMDB state, exactly once.
//! - [`VoteCounterActor`]: one per shard; counts the votes of its assertions.
//!
//! The group commit itself runs on a dedicated thread owned by the journal (see
//! [`crate::storage::journal`]): an fdatasync would block an actix arbiter.

mod durable_broadcaster;
mod hooks;
mod ingestor;
mod vote_counter;

pub use durable_broadcaster::{
    DurableBroadcaster, DurableOffset, SUBSCRIBERS_MAX, Subscribe, SubscribeError,
};
#[doc(hidden)]
pub use durable_broadcaster::{GetReannounceCounts, ReannounceCounts};
#[doc(hidden)]
pub use hooks::{Hook, Hooks};
pub use ingestor::{INGEST_CURSOR_NAME, IngestStatus, IngestorActor};
pub use vote_counter::{CountVotes, VoteCounterActor, shard_of};

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
mod lens;
mod vote_counter;

#[cfg_attr(not(feature = "test-support"), allow(unused_imports, reason = "for tests"))]
pub use durable_broadcaster::{
    DurableBroadcaster, DurableOffset, SUBSCRIBERS_MAX, Subscribe, SubscribeError,
};
#[cfg_attr(not(feature = "test-support"), allow(unused_imports, reason = "for tests"))]
pub use durable_broadcaster::{GetReannounceCounts, ReannounceCounts};
pub(crate) use durable_broadcaster::SubscribeCounted;
#[cfg_attr(not(feature = "test-support"), allow(unused_imports, reason = "for tests"))]
pub use hooks::{Hook, Hooks};
#[cfg_attr(not(feature = "test-support"), allow(unused_imports, reason = "for tests"))]
pub use ingestor::{CommitListener, INGEST_CURSOR_NAME, IngestStatus, IngestorActor};
pub use lens::{LensActor, Resolve};
#[cfg_attr(not(feature = "test-support"), allow(unused_imports, reason = "for tests"))]
pub use vote_counter::{CountVotes, VoteCounterActor, shard_of};

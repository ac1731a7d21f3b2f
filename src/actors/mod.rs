//! Actors: thin typed-message fronts over the storage layer (decode, call storage, reply).
//!
//! - [`IngestorActor`]: applies durable records to the LMDB state, exactly once.
//! - [`VoteCounterActor`]: one per shard; counts the votes of its assertions.
//!
//! The group commit itself runs on a dedicated thread owned by the journal (see
//! [`crate::storage::journal`]): an fdatasync would block an actix arbiter. The log tells the
//! ingestor of each new durable end through a watch channel (see [`IngestorActor`]).

mod hooks;
pub(crate) mod ingest_check;
mod ingestor;
mod lens;
mod vote_counter;

#[cfg(feature = "test-kit")]
pub use hooks::{Hook, Hooks};
#[cfg(not(feature = "test-kit"))]
pub(crate) use hooks::Hooks;
#[cfg_attr(not(feature = "test-kit"), allow(unused_imports, reason = "for tests"))]
pub use ingestor::{CommitListener, DurableOffset, INGEST_CURSOR_NAME, IngestStatus, IngestorActor, IngestorConfig};
pub(crate) use ingestor::listen_for_durable_ends;
pub use lens::{LensActor, Resolve};
#[cfg_attr(not(feature = "test-kit"), allow(unused_imports, reason = "for tests"))]
pub use vote_counter::{CountVotes, VoteCounterActor, shard_of};

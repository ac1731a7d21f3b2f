//! Actors: thin typed-message fronts over the storage layer (decode, call storage, reply).
//!
//! - [`JournalActor`]: appends (durable acks with offsets), range reads, cursors.
//!
//! The group commit itself runs on a dedicated thread owned by the journal (see
//! [`crate::storage::journal`]): an fdatasync would block an actix arbiter.

mod journal;

pub use journal::{Append, CollectGarbage, JournalActor, RangeRead, ReadRange, SetCursor};

//! Storage: how StemeDB lays data out on disk. Knows nothing of actors.
//!
//! - [`journal`]: the write-ahead journal (segments, recovery, group commit, readers).
//! - [`keys`]: the composite-key codec for LMDB databases.
//! - [`state`]: the queryable LMDB state (assertions, indexes, ingest cursor).

pub mod journal;
pub mod keys;
pub mod state;

//! Storage: how StemeDB lays data out on disk. Knows nothing of actors.
//!
//! - [`journal`]: the write-ahead journal (segments, recovery, group commit, readers).
//! - `state` (internal): the queryable LMDB state (assertions, indexes, votes, trust, ingest
//!   cursor). Its answers reach embedders through [`crate::node`].

internal_mod!(audit);
pub mod journal;
internal_mod!(state);

//! Storage: how StemeDB lays data out on disk. Knows nothing of actors.
//!
//! - [`journal`]: the write-ahead journal (segments, recovery, group commit, readers).
//! - [`keys`]: the composite-key codec for LMDB databases.

pub mod journal;
pub mod keys;

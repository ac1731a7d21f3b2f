//! Storage: how StemeDB lays data out on disk. Knows nothing of actors.
//!
//! - [`keys`]: the composite-key codec for LMDB databases.

pub mod keys;

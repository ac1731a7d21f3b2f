//! [`StateError`]: what can go wrong in the LMDB state layer.

use std::path::PathBuf;

use thiserror::Error;


/// An error of the LMDB state layer.
#[derive(Debug, Error)]
pub enum StateError {
    /// An LMDB operation failed.
    #[error("LMDB {op} failed: {source}")]
    Lmdb {
        /// What was being done.
        op: &'static str,
        /// The heed error.
        source: heed::Error,
    },
    /// The state directory could not be created.
    #[error("cannot create state directory {path}: {source}")]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The map is full and may not grow further.
    #[error("LMDB map is full at {map_size_bytes} bytes and state.map_size_bytes_max is {max_bytes}")]
    MapSizeLimit {
        /// The current map size.
        map_size_bytes: usize,
        /// The configured ceiling.
        max_bytes: usize,
    },
    /// The database was written by an incompatible version of StemeDB.
    #[error("state schema version is {found}; this build reads version {expected}")]
    SchemaVersion {
        /// The version stored.
        found: u32,
        /// The version this build writes.
        expected: u32,
    },
    /// The state was written by an older build, whose layout this build converts only when
    /// asked to: opening changed nothing.
    #[error(
        "state schema version is {found}; this build reads version {expected}. A node rebuilds it \
         from the journal when the journal still holds every record; otherwise convert it in place \
         with `stemedb state convert <data-dir>` (back up the data directory first)"
    )]
    SchemaOutdated {
        /// The version stored.
        found: u32,
        /// The version this build writes.
        expected: u32,
    },
    /// A snapshot can no longer be read: it outlived `state.snapshot_lifetime_ms_max`, or a map
    /// resize needed every read transaction closed. Take a new one.
    #[error("snapshot expired: {reason}; take a new one")]
    SnapshotExpired {
        /// Why.
        reason: &'static str,
    },
    /// A listing's `after` cursor is not one of this listing's positions.
    #[error("the list cursor belongs to another subject or pair")]
    BadCursor,
    /// Stored bytes do not decode: the database is damaged or was written by other software.
    #[error("stored {what} is damaged: {detail}")]
    Corrupt {
        /// Which value.
        what: &'static str,
        /// Why it does not decode.
        detail: String,
    },
    /// A journal record has a tag this build does not know: written by a newer build. It is
    /// not applied, and not rejected either, so that a build that knows it can apply it.
    #[error(
        "the journal record at offset {offset} has tag {tag}, which this build does not know \
         (written by a newer StemeDB?)"
    )]
    UnknownRecordTag {
        /// The record's journal offset.
        offset: u64,
        /// Its tag.
        tag: u8,
    },
    /// A configuration value is invalid.
    #[error("invalid state configuration: {0}")]
    Config(String),
    /// The Merkle tree does not cover the log up to the ingest cursor: the state was written
    /// before the tree existed and the log no longer holds the records it lacks. No proof is
    /// given over a tree that is not the log's; rebuild the state from a complete log.
    #[error(
        "the Merkle tree covers the log to position {tree_cursor} only, the state to {cursor}: \
         the log no longer holds the records between (rebuild the state from a complete log)"
    )]
    TreeUnavailable {
        /// The position the tree covers.
        tree_cursor: u64,
        /// The ingest cursor.
        cursor: u64,
    },
    /// A proof was asked about a leaf, record or size the tree does not have.
    #[error("not in the tree: {0}")]
    NotInTree(String),
}

impl StateError {
    pub(crate) fn lmdb(op: &'static str) -> impl FnOnce(heed::Error) -> Self {
        move |source| Self::Lmdb { op, source }
    }

    pub(crate) fn corrupt(what: &'static str, detail: impl ToString) -> Self {
        Self::Corrupt {
            what,
            detail: detail.to_string(),
        }
    }

    /// Returns true if and only if this is LMDB's "map full" error, which growing the map cures.
    pub(crate) fn is_map_full(&self) -> bool {
        matches!(
            self,
            Self::Lmdb {
                source: heed::Error::Mdb(heed::MdbError::MapFull),
                ..
            }
        )
    }
}

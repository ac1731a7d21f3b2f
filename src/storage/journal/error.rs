//! Errors of the journal.

use std::path::PathBuf;

use thiserror::Error;

use crate::budget::QueueFull;

/// Why the bytes at a position are not a valid record.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RecordDefect {
    /// Fewer bytes remain than a header needs.
    #[error("truncated header ({available} bytes)")]
    TruncatedHeader {
        /// Bytes available.
        available: usize,
    },
    /// The length field exceeds the configured maximum.
    #[error("length {len} exceeds the maximum record payload of {max} bytes")]
    LengthTooLarge {
        /// The length read.
        len: usize,
        /// The maximum.
        max: usize,
    },
    /// The payload runs past the end of the segment.
    #[error("payload of {len} bytes truncated to {available}")]
    TruncatedPayload {
        /// The length read.
        len: usize,
        /// Bytes available.
        available: usize,
    },
    /// The CRC does not match (bit rot, torn write, or a record from another offset).
    #[error("crc mismatch")]
    CrcMismatch,
    /// The CRC matched but the blake3 hash did not.
    #[error("blake3 mismatch")]
    HashMismatch,
    /// The checksums matched but the record kind is not one this format defines.
    #[error("unknown record kind {kind}")]
    UnknownKind {
        /// The kind read.
        kind: u32,
    },
}

/// An error of the journal.
#[derive(Debug, Error)]
pub enum JournalError {
    /// An I/O operation failed.
    #[error("journal I/O error: {op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The disk (or quota) is full; nothing of the failed append remains, and appends succeed
    /// again once space is freed.
    #[error("journal storage is full ({path}); the append was not written")]
    StorageFull {
        /// The segment being written.
        path: PathBuf,
    },
    /// An fsync failed earlier; the journal refuses all further appends, since retrying fsync
    /// after a failure is unsafe on Linux. Reopen the journal to recover.
    #[error("journal is poisoned by an earlier fsync failure ({reason}); reopen it to recover")]
    Poisoned {
        /// The original failure.
        reason: String,
    },
    /// A payload is empty or larger than `record_bytes_max`.
    #[error("journal record payload of {len} bytes is outside 1..={max}")]
    RecordSize {
        /// The payload length.
        len: usize,
        /// The maximum.
        max: usize,
    },
    /// Corruption was found and the policy is `stop`.
    #[error("journal corruption in segment {segment} at offset {offset} ({length} bytes): {reason}")]
    Corruption {
        /// The segment file.
        segment: PathBuf,
        /// Global offset of the bad bytes.
        offset: u64,
        /// Length of the bad region.
        length: u64,
        /// What is wrong.
        reason: String,
    },
    /// A segment is missing or out of order: the log has a hole.
    #[error(
        "journal segment gap: {previous} ends at offset {expected}, but the next segment {next} starts at {found}"
    )]
    SegmentGap {
        /// The segment before the gap.
        previous: PathBuf,
        /// Where the next segment should start.
        expected: u64,
        /// The next segment found.
        next: PathBuf,
        /// Where it starts.
        found: u64,
    },
    /// A file in the journal directory has a name that is not a segment name.
    #[error("unexpected file in journal directory: {0}")]
    UnexpectedFile(PathBuf),
    /// The configuration is invalid.
    #[error("invalid journal configuration: {0}")]
    Config(String),
    /// Another journal (in this or another process) holds the directory.
    #[error("journal directory {0} is in use by another journal (lock held)")]
    Locked(PathBuf),
    /// A cursor lies beyond the end of the log: a cursor may not pass the durable end, so at
    /// open this means the newest part of the log was lost.
    #[error("cursor at offset {cursor} is beyond the end of the journal ({end})")]
    CursorBeyondEnd {
        /// The cursor.
        cursor: u64,
        /// The durable end.
        end: u64,
    },
    /// The directory holds a journal of another format version (a journal of a version before
    /// 3 has segments but no identity file).
    #[error(
        "journal {dir} is format v{found}; this build reads and writes only format v{supported}, and does not convert journals: open it with the build that wrote it"
    )]
    FormatVersion {
        /// The journal directory.
        dir: PathBuf,
        /// The version found.
        found: u32,
        /// The version this build supports.
        supported: u32,
    },
    /// The identity file is damaged or not an identity file.
    #[error("journal identity file {path} is invalid: {reason}")]
    BadIdentity {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A segment belongs to another journal (copied in from elsewhere).
    #[error("segment {path} belongs to another journal (id {found}, this journal is {expected}); remove it")]
    ForeignSegment {
        /// The segment file.
        path: PathBuf,
        /// This journal's id.
        expected: String,
        /// The id in the segment's header.
        found: String,
    },
    /// A segment's header is damaged, names another base offset, or is of another version.
    #[error("segment {path} has a bad header: {reason}")]
    BadSegmentHeader {
        /// The segment file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Recovery would cut the log below a durable cursor (records a consumer has already
    /// processed); nothing was changed. The damage needs an operator: see `stemedb wal verify`.
    #[error(
        "journal recovery refused: the damaged tail starts at offset {at}, below the durable cursor at {cursor}; nothing was changed"
    )]
    TruncationBelowCursor {
        /// Where the truncation would start.
        at: u64,
        /// The highest durable cursor.
        cursor: u64,
    },
    /// The group-commit thread is gone (the journal was closed).
    #[error("journal is closed")]
    Closed,
    /// The append queue is full (`group_commit_queue_depth_max` or
    /// `group_commit_queue_bytes_max`); retry later. Nothing was queued.
    #[error("journal append queue is full: {full}; retry later")]
    Busy {
        /// Which bound refused, and how full the queue was.
        full: QueueFull,
    },
    /// The appends are larger than the whole append queue (`group_commit_queue_depth_max`
    /// or `group_commit_queue_bytes_max`): they can never be queued together. Nothing was
    /// queued.
    #[error("appends can never fit the journal append queue: {full}")]
    TooLargeForQueue {
        /// Which bound refused.
        full: QueueFull,
    },
}

impl JournalError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        // ENOSPC and EDQUOT both map to StorageFull.
        if source.kind() == std::io::ErrorKind::StorageFull {
            return Self::StorageFull { path: path.into() };
        }
        Self::Io {
            op,
            path: path.into(),
            source,
        }
    }
}

/// Outcome of reading at an offset that holds no record yet.
#[derive(Debug, Error)]
pub enum ReadError {
    /// The bytes at the offset are corrupt (and not quarantined).
    #[error("corrupt record at offset {offset}: {defect}")]
    Corrupt {
        /// The offset.
        offset: u64,
        /// What is wrong.
        defect: RecordDefect,
    },
    /// The offset is not the start of a record, or lies below the oldest retained segment.
    #[error("offset {offset} is not readable: {reason}")]
    BadOffset {
        /// The offset.
        offset: u64,
        /// Why.
        reason: &'static str,
    },
    /// A transient I/O error; the read may be retried.
    #[error(transparent)]
    Io(#[from] JournalError),
}

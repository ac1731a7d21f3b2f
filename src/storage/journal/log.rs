//! [`Log`]: the journal as its consumers (the ingestor) see it — the seam a replicated log
//! can later stand behind without the ingestor changing.
//!
//! The contract, which every implementation keeps:
//! - **Positions.** A record is addressed by a `u64` position; positions of successive
//!   records strictly increase, and a record's position never changes once it is durable.
//!   Gaps are allowed (batch marks and quarantined bytes lie between records).
//! - **Durability.** [`Log::durable_end`] never decreases while the log is open. Every record
//!   below it is durable (for a replicated log: acknowledged by a quorum) and reads back the
//!   same bytes, forever, until garbage collection removes it.
//! - **Range reads.** [`LogReader::read_range`] returns durable records from a position, in
//!   order, bounded in count and in bytes (at least one record if any is durable there, even
//!   one larger than the byte bound), with the position to continue from. End of log,
//!   corruption and transient I/O errors are distinct outcomes; a transient error may be
//!   retried.
//! - **Notifications.** The listener set with [`Log::set_durable_listener`] is called with
//!   the new durable end after every advance, on the log's own thread; it must not block.
//!   A consumer must tolerate coalesced calls (only the latest end matters).
//! - **Cursors.** [`Log::set_cursor`] durably records how far a named consumer has durably
//!   processed the log; it never passes the durable end. [`Log::collect_garbage`] never
//!   removes a record at or above any cursor, nor one a reader holds.

use super::Journal;
use super::error::{JournalError, ReadError};
use super::reader::{JournalReader, RangeRead};
use super::shared::DurableListener;

/// A reader of a [`Log`]; see the module docs for the contract.
pub trait LogReader: Send {
    /// Reads consecutive durable records from `from`: at most `max_records`, stopping after
    /// the record that brings the payload total to `max_bytes` or more, or at the durable end.
    fn read_range(&mut self, from: u64, max_records: usize, max_bytes: usize)
    -> Result<RangeRead, ReadError>;
}

/// A durable, ordered log of records; see the module docs for the contract.
pub trait Log: Send + Sync {
    /// Returns the position just past the last durable record.
    fn durable_end(&self) -> u64;
    /// Returns a new reader.
    fn reader(&self) -> Box<dyn LogReader>;
    /// Installs the durable-end listener (replacing any earlier one).
    fn set_durable_listener(&self, listener: DurableListener);
    /// Removes the durable-end listener.
    fn clear_durable_listener(&self);
    /// Returns the named cursor, if registered.
    fn cursor(&self, name: &str) -> Option<u64>;
    /// Durably sets the named cursor.
    fn set_cursor(&self, name: &str, offset: u64) -> Result<(), JournalError>;
    /// Removes what retention and the cursors let go; returns how many units (segments) went.
    fn collect_garbage(&self) -> Result<usize, JournalError>;
    /// Returns the bytes of progress after which a cursor update can let a unit go: a
    /// consumer saving its cursor more often gains nothing.
    fn collect_step_bytes(&self) -> u64;
}

impl LogReader for JournalReader {
    fn read_range(
        &mut self,
        from: u64,
        max_records: usize,
        max_bytes: usize,
    ) -> Result<RangeRead, ReadError> {
        JournalReader::read_range(self, from, max_records, max_bytes)
    }
}

impl Log for Journal {
    fn durable_end(&self) -> u64 {
        Journal::durable_end(self)
    }

    fn reader(&self) -> Box<dyn LogReader> {
        Box::new(Journal::reader(self))
    }

    fn set_durable_listener(&self, listener: DurableListener) {
        Journal::set_durable_listener(self, listener);
    }

    fn clear_durable_listener(&self) {
        Journal::clear_durable_listener(self);
    }

    fn cursor(&self, name: &str) -> Option<u64> {
        Journal::cursor(self, name)
    }

    fn set_cursor(&self, name: &str, offset: u64) -> Result<(), JournalError> {
        Journal::set_cursor(self, name, offset)
    }

    fn collect_garbage(&self) -> Result<usize, JournalError> {
        Journal::collect_garbage(self)
    }

    fn collect_step_bytes(&self) -> u64 {
        self.config().segment_size_bytes
    }
}

//! The log seam: how the node writes records to a durable, ordered log and reads them back,
//! whatever stands behind it.
//!
//! The engine implements it with the local journal ([`LocalJournal`], the default); a
//! replicated backend (the `stemedb-jetstream` crate's NATS JetStream stream) implements it in
//! a crate of its own. A node takes its backend as one value
//! ([`Node::start_with_log`](crate::node::Node::start_with_log)), and nothing above this module
//! knows which backend it runs on.
//!
//! The contract, which every implementation keeps:
//! - **Positions.** A record is addressed by a `u64` position; positions of successive
//!   records strictly increase, and a record's position never changes once it is durable.
//!   Gaps are allowed (batch marks and quarantined bytes lie between journal records).
//! - **Durability.** [`Log::durable_end`] never decreases while the log is open. Every record
//!   below it is durable (for a replicated log: acknowledged by a quorum) and reads back the
//!   same bytes, forever, until garbage collection removes it. An [`Append`] acknowledges a
//!   record (calls its [`AppendReply`] with its position) only once it is durable.
//! - **Range reads.** [`LogReader::read_range`] returns durable records from a position, in
//!   order, bounded in count and in bytes (at least one record if any is durable there, even
//!   one larger than the byte bound), with the position to continue from. End of log,
//!   corruption and transient errors are distinct outcomes ([`ReadError`]); a transient error
//!   may be retried.
//! - **Notifications.** The listener set with [`Log::set_durable_listener`] is called with
//!   the new durable end after every advance, on the log's own thread; it must not block.
//!   A consumer must tolerate coalesced calls (only the latest end matters).
//! - **Garbage collection.** A log that lets records go ([`Log::collector`]) never removes a
//!   record at or above any consumer's cursor, nor one a reader holds. A log without one (a
//!   stream that keeps every record for nodes that join later) returns `None`.

mod error;
mod local;

use std::path::Path;
use std::sync::Arc;

pub use crate::budget::{QueueFull, QueueUnit};
use crate::protocol::Hash;
pub use crate::storage::journal::{Acknowledge, DurableListener, RangeRead};
pub use error::{AppendError, BoxError, LogError, ReadError};
pub use local::{JOURNAL_DIR, LocalJournal};

/// Takes the lock of `data_dir` (`data_dir/LOCK`), so that no two nodes run on one state; the
/// lock lasts as long as the returned file is open. A backend without a journal of its own
/// takes it in [`LogBackend::prepare`].
pub fn lock_data_dir(data_dir: &Path) -> Result<std::fs::File, LogError> {
    Ok(crate::storage::journal::lock_dir(data_dir)?)
}

/// The file in a data directory that names the external log its state was built from (a
/// replicated backend writes it): a local journal refuses such a directory, so one state is
/// never fed by two logs.
pub const EXTERNAL_LOG_ID_FILE: &str = "stream.id";

/// A reader of a [`Log`]; see the module docs for the contract.
pub trait LogReader: Send {
    /// Reads consecutive durable records from `from`: at most `max_records`, stopping after
    /// the record that brings the payload total to `max_bytes` or more, or at the durable end.
    fn read_range(&mut self, from: u64, max_records: usize, max_bytes: usize)
    -> Result<RangeRead, ReadError>;
}

/// Garbage collection of a [`Log`]: durable consumer cursors, and removal of what lies below
/// all of them.
pub trait Collect: Send + Sync {
    /// Returns the named cursor, if registered.
    fn cursor(&self, name: &str) -> Option<u64>;
    /// Durably sets the named cursor; it never passes the durable end.
    fn set_cursor(&self, name: &str, position: u64) -> Result<(), LogError>;
    /// Removes what retention and the cursors let go; returns how many units (segments) went.
    fn collect_garbage(&self) -> Result<usize, LogError>;
    /// Returns the bytes of progress after which a cursor update can let a unit go: a
    /// consumer saving its cursor more often gains nothing.
    fn collect_step_bytes(&self) -> u64;
}

/// A durable, ordered log of records, as its consumer (the ingestor) reads it; see the module
/// docs for the contract.
pub trait Log: Send + Sync {
    /// Returns the position just past the last durable record.
    fn durable_end(&self) -> u64;
    /// Returns a new reader.
    fn reader(&self) -> Box<dyn LogReader>;
    /// Installs the durable-end listener (replacing any earlier one).
    fn set_durable_listener(&self, listener: DurableListener);
    /// Removes the durable-end listener.
    fn clear_durable_listener(&self);
    /// Returns the log's garbage collection, or `None` if it keeps every record.
    fn collector(&self) -> Option<&dyn Collect>;
    /// Returns true if and only if every record in the log passed this node's admission (a
    /// local journal, which only admission writes). A log that others can write (a shared
    /// stream) returns false, and the ingestor then checks every record as admission does
    /// (decoding, limits, signatures, the administrators of trust changes) before applying it.
    fn admitted_only(&self) -> bool;
    /// Returns how many durable records the consumer has not applied yet, given its `cursor`
    /// and the records it applied since it started (`applied_since_start`).
    fn records_behind(&self, cursor: u64, applied_since_start: u64) -> u64;
    /// Returns why the log cannot be read now, if it cannot (no server answers, say): shown
    /// in the node's health.
    fn fault(&self) -> Option<String>;
    /// Sets the gauges that describe the log itself (segments, disk bytes, damage); called
    /// with the node's other sampled gauges.
    fn record_gauges(&self);
}

/// A record verified by admission, on its way to the log.
pub struct Outgoing {
    /// Its content hash (a replicated log deduplicates resends by it).
    pub id: Hash,
    /// The encoded record.
    pub payload: Vec<u8>,
    /// It depends on an earlier record of its submission (its parent, the assertion it votes
    /// on): it must not be stored before that one is.
    pub after_previous: bool,
    /// Told the record's durable position, or why it was not stored; called exactly once
    /// unless [`Append::try_append`] refuses the group, which drops it unrun.
    pub reply: AppendReply,
}

/// Told once of the durable position of a record, or why it could not be stored. Its
/// implementations (the node's acknowledgements) also take the local journal's own outcome
/// ([`Acknowledge`]), so that the journal carries the same box, with no wrapper around it.
pub trait Reply: Acknowledge {
    /// Takes the outcome.
    fn reply(self: Box<Self>, outcome: Result<u64, AppendError>);
}

/// A boxed [`Reply`].
pub type AppendReply = Box<dyn Reply>;

/// What a bounded append queue holds: entries and bytes in flight, and its bound in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QueueUse {
    /// Records queued and not yet acknowledged.
    pub entries: usize,
    /// Their bytes.
    pub bytes: usize,
    /// The bound in bytes.
    pub bytes_max: usize,
}

/// The writing side of a log.
pub trait Append: Send + Sync {
    /// Returns the largest encoded record the log stores.
    fn record_bytes_max(&self) -> usize;
    /// Queues the records of one submission, in order and without blocking, all or none: a
    /// refusal ([`AppendError::Busy`], [`AppendError::TooLargeForQueue`], ...) drops every
    /// reply unrun.
    fn try_append(&self, records: Vec<Outgoing>) -> Result<(), AppendError>;
    /// Returns what the append queue holds.
    fn queue_use(&self) -> QueueUse;
}

/// Whether a state written by an older build may be rebuilt from the log, rather than
/// converted in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rebuild {
    /// The log holds every record from its first position, intact.
    Allowed,
    /// The log no longer holds every record.
    Refused {
        /// The first position the log holds.
        start: u64,
        /// Damaged regions set aside.
        quarantined: usize,
    },
}

/// A log opened for a node: its reading and writing sides.
pub struct OpenedLog {
    /// The log the ingestor reads.
    pub log: Arc<dyn Log>,
    /// Where admitted records go.
    pub append: Arc<dyn Append>,
    /// Held until the node has shut down, then dropped (after the state is closed): a
    /// connection, a runtime, a directory lock.
    pub guard: Box<dyn Send + Sync>,
}

/// Opens the log a node runs on; see [`Node::start_with_log`](crate::node::Node::start_with_log).
///
/// The node calls [`prepare`](Self::prepare), then opens its state, calling
/// [`rebuild`](Self::rebuild) if the state is of an older schema, then [`open`](Self::open)
/// with the state's ingest cursor.
pub trait LogBackend: Send {
    /// Readies `data_dir` (which the node has created) before the state opens: takes its lock
    /// if the backend has no journal to hold one, refuses a directory that belongs to another
    /// kind of log.
    fn prepare(&mut self, data_dir: &Path) -> Result<(), LogError>;
    /// Says whether the state, of an older schema with ingest cursor `cursor`, may be rebuilt
    /// from this log.
    fn rebuild(&mut self, data_dir: &Path, cursor: u64) -> Result<Rebuild, LogError>;
    /// Opens the log for a state whose ingest cursor is `cursor`; refuses one whose cursor lies
    /// beyond the log's end ([`LogError::StateAhead`]).
    fn open(self: Box<Self>, data_dir: &Path, cursor: u64) -> Result<OpenedLog, LogError>;
}

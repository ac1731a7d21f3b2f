//! [`ReplicationError`]: what can go wrong between a node and its JetStream stream.

use thiserror::Error;

use stemedb::budget::QueueFull;

/// A failure of the replicated log.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ReplicationError {
    /// No NATS server of `replication.servers` answered, or JetStream did not, in time.
    #[error("cannot reach the JetStream cluster at {servers}: {reason}")]
    Unreachable {
        /// The configured servers.
        servers: String,
        /// The last error seen.
        reason: String,
    },
    /// A secret or TLS file named in `[replication]` could not be read at start, or does not
    /// hold what it should (an empty password, a malformed nkey seed or credentials file).
    #[error("replication.{field} = {location}: {reason}")]
    Secret {
        /// The setting: `password_file`, `token_env`, `nkey_seed_file`, `tls_ca_file`, ...
        field: &'static str,
        /// The file's path or the environment variable's name.
        location: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A NATS server refused this node's credentials (an authorization violation: a wrong or
    /// missing user, password, token, nkey or credentials file). Not retried: the node does
    /// not start.
    #[error("the NATS servers at {servers} refused this node's credentials ({method}): {reason}")]
    AuthRefused {
        /// The configured servers.
        servers: String,
        /// The authentication the node offered, without its secret.
        method: String,
        /// The server's answer.
        reason: String,
    },
    /// The stream exists but does not fit this node's configuration.
    #[error("stream {stream} does not fit the configuration: {reason}")]
    StreamMismatch {
        /// The stream.
        stream: String,
        /// What differs.
        reason: String,
    },
    /// The data directory's state was built from another log (the local journal, or a stream
    /// of the same name that was deleted and created again): applying this stream to it would
    /// mix two histories. Nothing was changed.
    #[error(
        "the state in {dir} was built from {found}, not from stream {stream} created {created}; use an empty \
         data directory to join this stream"
    )]
    WrongLog {
        /// The data directory.
        dir: std::path::PathBuf,
        /// What the state was built from.
        found: String,
        /// The stream.
        stream: String,
        /// When the stream was created (Unix nanoseconds).
        created: i128,
    },
    /// The data directory holds a local journal: its records would be abandoned.
    #[error(
        "{dir} holds a local journal (journal/): a node with replication.mode = \"jetstream\" needs a data \
         directory of its own (an empty one joins the stream)"
    )]
    LocalJournal {
        /// The data directory.
        dir: std::path::PathBuf,
    },
    /// The state has applied records the stream does not hold.
    #[error("state ingest cursor {cursor} lies beyond the stream's end {end}")]
    StateAhead {
        /// The state's ingest cursor (the next stream sequence to apply).
        cursor: u64,
        /// One past the stream's last sequence.
        end: u64,
    },
    /// The record (with its headers) is larger than the server's `max_payload` or the
    /// stream's `max_msg_size`: it is refused, never split.
    #[error("record of {bytes} bytes exceeds the stream's largest message: {max} bytes of record fit")]
    RecordTooLarge {
        /// The record's encoded size.
        bytes: usize,
        /// The largest record that fits.
        max: usize,
    },
    /// The publish queue is full, in entries or bytes.
    #[error("the publish queue is full: {0}")]
    Busy(QueueFull),
    /// The stream did not acknowledge the record within `replication.publish_deadline_ms`,
    /// over every retry. It may still have been stored: submitting it again is safe, and is
    /// deduplicated within the stream's duplicate window.
    #[error("the stream did not acknowledge the record within {deadline_ms} ms: {reason}")]
    NotAcknowledged {
        /// The deadline.
        deadline_ms: u64,
        /// The last error seen.
        reason: String,
    },
    /// The stream refused the record for good (another stream answered, or the server refused it).
    #[error("the stream refused the record: {0}")]
    Refused(String),
    /// The node is shutting down.
    #[error("the replicated log is closed")]
    Closed,
}

impl From<ReplicationError> for stemedb::log::AppendError {
    fn from(error: ReplicationError) -> Self {
        match error {
            ReplicationError::Busy(full) => Self::Busy(full),
            ReplicationError::Closed => Self::Closed,
            ReplicationError::RecordTooLarge { bytes, max } => Self::RecordTooLarge { bytes, max },
            not_acked @ ReplicationError::NotAcknowledged { .. } => {
                Self::NotAcknowledged(Box::new(not_acked))
            }
            other => Self::Unavailable(Box::new(other)),
        }
    }
}

impl From<ReplicationError> for stemedb::log::LogError {
    fn from(error: ReplicationError) -> Self {
        match error {
            ReplicationError::StateAhead { cursor, end } => Self::StateAhead { cursor, end },
            other => Self::Backend(Box::new(other)),
        }
    }
}

//! StemeDB's replicated log: a NATS JetStream stream that every node of a cluster writes to
//! and ingests in full, behind the engine's log seam ([`stemedb::log`]).
//!
//! A node started with [`JetStream`] as its log backend
//! (`Node::start_with_log(config, dir, JetStream::new(replication, &config)?)`, or
//! `replication.mode = "jetstream"` for `stemedb serve`) keeps no journal of its own:
//! - **Writes.** A submission is verified locally, then each record is published to the
//!   stream's subject with `Nats-Msg-Id` set to its content hash. The stream's
//!   acknowledgement (PubAck) is the durable acknowledgement, and its sequence number is the
//!   record's position. A lost acknowledgement, or a "no responders" during a leader election,
//!   is retried with the same id until `replication.publish_deadline_ms`, so a resend is
//!   deduplicated by the stream. Records of one submission that depend on each other (a child
//!   and its parent, a vote and its assertion) are published in order: one waits for the
//!   other's acknowledgement.
//! - **Reads.** Every node fetches the stream from its own ingest cursor (the next stream
//!   sequence to apply) with an ordered pull consumer, into a bounded buffer that is the
//!   ingestor's [`Log`](stemedb::log::Log). The ingestor commits its cursor in the
//!   same LMDB transaction as the state, exactly as with the local journal, so a restarted node
//!   resumes where it stopped and a new node replays the stream from sequence 1.
//! - **Checks.** Any client allowed to publish on the subject can add to the stream, so the
//!   log says it is not admission's alone ([`Log::admitted_only`](stemedb::log::Log::admitted_only)
//!   is false): the ingestor checks every record as admission does (decoding, limits,
//!   signatures, the administrators of trust changes) and rejects by reason what fails; no
//!   record is applied unchecked, and none halts ingestion.
//! - **Identity.** The data directory records the stream it was built from (its name and
//!   creation time, in `stream.id`); a node refuses to apply a different stream to it.

mod config;
mod connect;
mod error;
mod log;
mod publish;
mod security;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, stream};
use tokio::runtime::Runtime;

pub use config::{ReplicationConfig, ReplicationMode};
pub use error::ReplicationError;
pub use log::FETCH_FAULT_AFTER;
pub(crate) use log::StreamLog;
pub(crate) use publish::Publisher;
pub use security::SECRET_FILE_BYTES_MAX;

use stemedb::budget::Budget;
use stemedb::config::ConfigError;
use stemedb::log::{JOURNAL_DIR, LogBackend, LogError, OpenedLog, Rebuild};

/// Since when the client has been disconnected from every server, if it is.
pub(crate) type Disconnected = Arc<parking_lot::Mutex<Option<std::time::Instant>>>;

/// The file in a data directory naming the stream its state was built from.
pub const STREAM_ID_FILE: &str = stemedb::log::EXTERNAL_LOG_ID_FILE;

/// A JetStream stream as a node's log backend; see the crate docs.
#[derive(Debug)]
pub struct JetStream {
    config: ReplicationConfig,
    /// Bounds the records published and not yet acknowledged: the journal's queue bounds
    /// (`journal.group_commit_queue_depth_max` and `_bytes_max`), which it stands in for.
    publish_entries_max: usize,
    publish_bytes_max: usize,
    /// The data directory's lock, taken by `prepare`.
    lock: Option<std::fs::File>,
}

impl JetStream {
    /// A backend for `config`, checked against the node's `engine` configuration: the fetch
    /// buffer must hold more than two ingest batches and a record, so that a full buffer is
    /// never taken whole by a batch that then leaves nothing to free it.
    pub fn new(config: ReplicationConfig, engine: &stemedb::Config) -> Result<Self, ConfigError> {
        let invalid = |reason: String| ConfigError::Invalid {
            origin: "(in memory)".to_owned(),
            reason,
        };
        config.validate().map_err(invalid)?;
        let needed = 2 * engine.node.ingest_batch_bytes_max + engine.limits.record_bytes_max;
        if config.fetch_buffer_bytes_max < needed {
            return Err(invalid(format!(
                "replication.fetch_buffer_bytes_max = {} must be at least twice node.ingest_batch_bytes_max \
                 plus limits.record_bytes_max = {needed}",
                config.fetch_buffer_bytes_max
            )));
        }
        Ok(Self {
            config,
            publish_entries_max: engine.journal.group_commit_queue_depth_max,
            publish_bytes_max: engine.journal.group_commit_queue_bytes_max,
            lock: None,
        })
    }
}

impl LogBackend for JetStream {
    fn prepare(&mut self, data_dir: &Path) -> Result<(), LogError> {
        if data_dir.join(JOURNAL_DIR).exists() {
            return Err(ReplicationError::LocalJournal {
                dir: data_dir.to_owned(),
            }
            .into());
        }
        self.lock = Some(stemedb::log::lock_data_dir(data_dir)?);
        Ok(())
    }

    fn rebuild(&mut self, _data_dir: &Path, _cursor: u64) -> Result<Rebuild, LogError> {
        // The stream holds every record from sequence 1 (it denies deletes and purges).
        tracing::warn!("state of an older schema: rebuilding it from the stream");
        Ok(Rebuild::Allowed)
    }

    fn open(self: Box<Self>, data_dir: &Path, cursor: u64) -> Result<OpenedLog, LogError> {
        let budget = Budget::new(self.publish_entries_max, self.publish_bytes_max);
        let replica = Replica::connect(&self.config, data_dir, cursor, budget)?;
        Ok(OpenedLog {
            log: replica.log.clone(),
            append: Arc::new(replica.publisher.clone()),
            guard: Box::new((replica, self.lock)),
        })
    }
}

/// Bytes a published message spends on its headers (`Nats-Msg-Id` and the header preamble)
/// beyond the record itself, rounded up.
pub const HEADER_BYTES: usize = 128;

/// A node's connection to its stream: the publisher, the fetched log, and the runtime they run
/// on (one thread of its own).
pub(crate) struct Replica {
    runtime: Option<Runtime>,
    /// The log the ingestor reads.
    pub(crate) log: Arc<StreamLog>,
    /// Where admitted records go.
    pub(crate) publisher: Publisher,
}

impl Replica {
    /// Connects to the cluster, finds (or creates) the stream, checks it against `data_dir`'s
    /// record of its stream and its ingest `cursor`, and starts fetching from `cursor`.
    /// Blocks for at most `replication.connect_timeout_ms`; returns at once, with
    /// [`ReplicationError::AuthRefused`], if a server refuses the node's credentials.
    pub(crate) fn connect(
        config: &ReplicationConfig,
        data_dir: &Path,
        cursor: u64,
        publish_budget: Arc<Budget>,
    ) -> Result<Self, ReplicationError> {
        // Secrets are read once, before anything is started: a missing file is a startup error.
        let security = security::Security::load(config)?;
        // The client's window of publishes awaiting their acks is the publish queue's: a
        // publish queued is never kept waiting for a slot by others queued after it.
        let acks_in_flight = publish_budget.entries_max().max(1);
        // Since when the client has been disconnected from every server, if it is.
        let disconnected: Disconnected = Arc::new(parking_lot::Mutex::new(None));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("stemedb-nats")
            .enable_all()
            .build()
            .map_err(|error| unreachable(config, error.to_string()))?;
        let (sender, receiver) = std::sync::mpsc::channel();
        let timeout = Duration::from_millis(config.connect_timeout_ms);
        // The last error of the attempts, for the error that reports the timeout.
        let last_error = Arc::new(parking_lot::Mutex::new(String::from("no answer")));
        let timed_out = {
            let last_error = Arc::clone(&last_error);
            move |config: &ReplicationConfig| {
                unreachable(
                    config,
                    format!("not ready within {timeout:?}: {}", last_error.lock()),
                )
            }
        };
        {
            let (config, timed_out, last_error) =
                (config.clone(), timed_out.clone(), Arc::clone(&last_error));
            let disconnected = Arc::clone(&disconnected);
            runtime.spawn(async move {
                let opening = open_stream(&config, &security, acks_in_flight, disconnected, &last_error);
                let found = tokio::time::timeout(timeout, opening).await;
                let _ = sender.send(found.unwrap_or_else(|_| Err(timed_out(&config))));
            });
        }
        let opened = receiver
            .recv_timeout(timeout + Duration::from_secs(1))
            .map_err(|_| timed_out(config))
            .and_then(|opened| opened);
        let (js, info, max_payload) = match opened {
            Ok(opened) => opened,
            Err(error) => {
                runtime.shutdown_background();
                return Err(error);
            }
        };
        let created = info.created.unix_timestamp_nanos();
        let end = info.state.last_sequence + 1;
        let checked = check_identity(data_dir, &config.stream, created, cursor).and(if cursor > end {
            Err(ReplicationError::StateAhead { cursor, end })
        } else {
            Ok(())
        });
        if let Err(error) = checked {
            runtime.shutdown_background();
            return Err(error);
        }
        let message_max = match info.config.max_message_size {
            size if size > 0 => max_payload.min(size as usize),
            _ => max_payload,
        };
        let acked = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let log = StreamLog::start(
            runtime.handle(),
            js.clone(),
            config,
            cursor,
            info.state.first_sequence,
            Arc::clone(&acked),
            disconnected,
        );
        let publisher = Publisher::new(
            runtime.handle().clone(),
            js,
            config,
            message_max.saturating_sub(HEADER_BYTES),
            publish_budget,
            acked,
        );
        if info.config.num_replicas < config.replicas {
            tracing::warn!(
                stream = %config.stream,
                replicas = info.config.num_replicas,
                configured = config.replicas,
                "the stream has fewer replicas than replication.replicas"
            );
        }
        tracing::info!(
            stream = %config.stream,
            replicas = info.config.num_replicas,
            first = info.state.first_sequence,
            last = info.state.last_sequence,
            cursor,
            "joined the JetStream stream"
        );
        Ok(Self {
            runtime: Some(runtime),
            log,
            publisher,
        })
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.log.close();
        if let Some(runtime) = self.runtime.take() {
            // Never blocks: the node may be dropped on an async thread.
            runtime.shutdown_background();
        }
    }
}

fn unreachable(config: &ReplicationConfig, reason: String) -> ReplicationError {
    ReplicationError::Unreachable {
        servers: config.servers.join(","),
        reason,
    }
}

/// Connects ([`connect::connect`]) and finds or creates the stream, retrying while the cluster
/// elects its leaders;
/// returns the context, the stream's info and the server's `max_payload`.
async fn open_stream(
    config: &ReplicationConfig,
    security: &security::Security,
    acks_in_flight: usize,
    disconnected: Disconnected,
    last_error: &parking_lot::Mutex<String>,
) -> Result<(jetstream::Context, stream::Info, usize), ReplicationError> {
    let client = connect::connect(config, security, disconnected, last_error).await?;
    let js = jetstream::ContextBuilder::new()
        .timeout(Duration::from_millis(config.ack_timeout_ms))
        .max_ack_inflight(acks_in_flight)
        .backpressure_on_inflight(true)
        .build(client.clone());
    let wanted = stream::Config {
        name: config.stream.clone(),
        subjects: vec![config.subject.clone()],
        num_replicas: config.replicas,
        storage: stream::StorageType::File,
        retention: stream::RetentionPolicy::Limits,
        discard: stream::DiscardPolicy::New,
        duplicate_window: Duration::from_millis(config.duplicate_window_ms),
        // Positions must stay gap-free and every record must stay, for nodes that join later.
        deny_delete: true,
        deny_purge: true,
        max_messages: -1,
        max_bytes: -1,
        ..Default::default()
    };
    let mut backoff = Duration::from_millis(50);
    loop {
        let attempt = async {
            let mut stream = js
                .get_or_create_stream(wanted.clone())
                .await
                .map_err(|e| e.to_string())?;
            stream.info().await.cloned().map_err(|e| e.to_string())
        };
        match attempt.await {
            Ok(info) => {
                check_stream(config, &info)?;
                return Ok((js, info, client.max_payload()));
            }
            Err(reason) => {
                tracing::warn!(%reason, stream = %config.stream, "stream not ready; retrying");
                *last_error.lock() = reason;
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
        }
    }
}

/// Refuses a stream whose subjects or retention would break the log's contract.
fn check_stream(config: &ReplicationConfig, info: &stream::Info) -> Result<(), ReplicationError> {
    let mismatch = |reason: String| ReplicationError::StreamMismatch {
        stream: config.stream.clone(),
        reason,
    };
    if info.config.subjects != [config.subject.clone()] {
        return Err(mismatch(format!(
            "it holds subjects {:?}, not only {:?}",
            info.config.subjects, config.subject
        )));
    }
    if info.config.max_messages > 0 || info.config.max_bytes > 0 || !info.config.max_age.is_zero() {
        return Err(mismatch(
            "it has a message, byte or age limit: nodes that join later could not replay it whole".into(),
        ));
    }
    if !info.config.deny_delete
        || !info.config.deny_purge
        || info.config.allow_rollup
        || info.config.sealed
        || info.config.max_messages_per_subject > 0
    {
        return Err(mismatch(
            "it allows deletes, purges or roll-ups, keeps a per-subject limit, or is sealed: records could \
             be lost or the log closed"
                .into(),
        ));
    }
    if info.config.retention != stream::RetentionPolicy::Limits {
        return Err(mismatch(
            "its retention is not `limits`: consumers would remove records".into(),
        ));
    }
    if info.config.duplicate_window < Duration::from_millis(config.publish_deadline_ms) {
        return Err(mismatch(format!(
            "its duplicate window {:?} is shorter than replication.publish_deadline_ms",
            info.config.duplicate_window
        )));
    }
    Ok(())
}

/// Checks `data_dir`'s record of the stream its state was built from, or writes it for a state
/// that has applied nothing yet.
fn check_identity(data_dir: &Path, stream: &str, created: i128, cursor: u64) -> Result<(), ReplicationError> {
    let path = data_dir.join(STREAM_ID_FILE);
    let ours = format!("stream {stream} created {created}\n");
    let wrong = |found: String| ReplicationError::WrongLog {
        dir: data_dir.to_owned(),
        found,
        stream: stream.to_owned(),
        created,
    };
    match std::fs::read_to_string(&path) {
        Ok(text) if text == ours => Ok(()),
        Ok(text) => Err(wrong(text.trim().to_owned())),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            if cursor > 0 {
                return Err(wrong("another log (it has no stream.id)".into()));
            }
            write_durably(&path, ours.as_bytes())
                .map_err(|error| wrong(format!("(cannot record the stream: {error})")))
        }
        Err(error) => Err(wrong(format!("(cannot read {}: {error})", path.display()))),
    }
}

fn write_durably(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let temporary = path.with_extension("tmp");
    let mut file = std::fs::File::create(&temporary)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&temporary, path)?;
    if let Some(parent) = path.parent() {
        std::fs::File::open(parent)?.sync_all()?;
    }
    Ok(())
}

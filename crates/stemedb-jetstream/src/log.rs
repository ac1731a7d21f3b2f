//! [`StreamLog`]: the stream as the ingestor's [`Log`]: records fetched from the node's
//! cursor into a bounded buffer, positions being stream sequences.
//!
//! A record at sequence `s` is at position `s` and the next one at `s + 1`; the stream's
//! numbering is gap-free (it denies deletes and purges), so the positions are too. The durable
//! end is one past the last sequence fetched: the stream delivers only what a quorum of its
//! replicas stored.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer};
use futures_util::StreamExt;
use parking_lot::{Mutex, RwLock};
use tokio::sync::Notify;

use super::ReplicationConfig;
use stemedb::log::{Collect, DurableListener, Log, LogReader, RangeRead, ReadError};

/// How long fetching must have failed before `Node::health` and `/v1/ready` report it: longer than a
/// leader election.
pub const FETCH_FAULT_AFTER: Duration = Duration::from_secs(15);

/// How long the consumer may deliver nothing before the stream is asked whether it holds more.
const IDLE_CHECK: Duration = Duration::from_secs(2);

/// Most messages taken from the consumer at once.
const FETCH_CHUNK_MAX: usize = 256;

/// The fetched records and what the fetcher found.
struct Fetched {
    buffer: Mutex<Buffer>,
    /// One past the last sequence fetched (or the cursor fetching started from).
    end: AtomicU64,
    listener: RwLock<Option<DurableListener>>,
    /// Signalled when the reader frees buffer space.
    space: Notify,
    bytes_max: usize,
    /// The stream no longer holds the sequence the node needs next: ingestion cannot go on.
    lost: Mutex<Option<(u64, u64)>>,
    closed: AtomicBool,
    /// One past the highest sequence acknowledged to this node's own publishes: durable too,
    /// though not fetched yet.
    acked: Arc<AtomicU64>,
    /// Since when the consumer has been failing, and why; `None` while it runs.
    failing: Mutex<Option<(Instant, String)>>,
    /// Since when the client has been disconnected from every server.
    disconnected: super::Disconnected,
}

#[derive(Default)]
struct Buffer {
    records: VecDeque<(u64, bytes::Bytes)>,
    bytes: usize,
}

/// The stream as a [`Log`]; see the module docs.
pub(crate) struct StreamLog {
    fetched: Arc<Fetched>,
}

impl StreamLog {
    /// Starts fetching `config.stream` from the node's ingest `cursor` (sequence 1 for a new
    /// node) on `runtime`. `first` is the stream's first sequence.
    pub(super) fn start(
        runtime: &tokio::runtime::Handle,
        js: jetstream::Context,
        config: &ReplicationConfig,
        cursor: u64,
        first: u64,
        acked: Arc<AtomicU64>,
        disconnected: super::Disconnected,
    ) -> Arc<Self> {
        let fetched = Arc::new(Fetched {
            buffer: Mutex::new(Buffer::default()),
            end: AtomicU64::new(cursor),
            listener: RwLock::new(None),
            space: Notify::new(),
            bytes_max: config.fetch_buffer_bytes_max,
            lost: Mutex::new(None),
            closed: AtomicBool::new(false),
            acked,
            failing: Mutex::new(None),
            disconnected,
        });
        let next = cursor.max(1);
        if first > next {
            // The stream was created with limits elsewhere, or trimmed by hand.
            lose(&fetched, next, first);
        } else {
            runtime.spawn(fetch(
                js,
                config.stream.clone(),
                config.subject.clone(),
                Arc::clone(&fetched),
                next,
            ));
        }
        Arc::new(Self { fetched })
    }

    /// Returns why fetching has failed for at least [`FETCH_FAULT_AFTER`], if it has: the
    /// node cannot learn of new records (its servers are unreachable, the stream is gone).
    pub(crate) fn fault(&self) -> Option<String> {
        if let Some(since) = *self.fetched.disconnected.lock()
            && since.elapsed() >= FETCH_FAULT_AFTER
        {
            return Some(format!(
                "fetching from the stream has failed for {} s: no NATS server of replication.servers answers",
                since.elapsed().as_secs()
            ));
        }
        let failing = self.fetched.failing.lock();
        let (since, reason) = failing.as_ref()?;
        let for_ = since.elapsed();
        (for_ >= FETCH_FAULT_AFTER).then(|| {
            format!(
                "fetching from the stream has failed for {} s: {reason}",
                for_.as_secs()
            )
        })
    }

    /// Stops fetching.
    pub(super) fn close(&self) {
        self.fetched.closed.store(true, Ordering::Release);
        self.fetched.space.notify_one();
    }
}

/// Fetches from `next` on, forever: a consumer that fails (its server died, the connection
/// moved) is created again from the next sequence needed.
async fn fetch(
    js: jetstream::Context,
    stream: String,
    subject: String,
    fetched: Arc<Fetched>,
    mut next: u64,
) {
    let mut backoff = Duration::from_millis(20);
    while !fetched.closed.load(Ordering::Acquire) {
        let consumed = consume(&js, &stream, &subject, &fetched, &mut next).await;
        // What was taken before an error is announced, even if nothing more arrives.
        announce(&fetched, next);
        match consumed {
            Ok(()) => return,
            Err(reason) => {
                tracing::warn!(%reason, next, stream = %stream, "stream consumer failed; creating it again");
                {
                    let mut failing = fetched.failing.lock();
                    match failing.as_mut() {
                        Some((_, last)) => *last = reason,
                        None => {
                            // It had been running: a new failure starts its backoff afresh.
                            *failing = Some((Instant::now(), reason));
                            backoff = Duration::from_millis(20);
                        }
                    }
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
        }
    }
}

/// Runs one ordered pull consumer from `next`; returns `Ok` once closed.
async fn consume(
    js: &jetstream::Context,
    stream: &str,
    subject: &str,
    fetched: &Fetched,
    next: &mut u64,
) -> Result<(), String> {
    let mut stream = js.get_stream(stream).await.map_err(|e| e.to_string())?;
    let consumer = stream
        .create_consumer(consumer::pull::OrderedConfig {
            filter_subject: subject.to_owned(),
            deliver_policy: consumer::DeliverPolicy::ByStartSequence {
                start_sequence: *next,
            },
            ..Default::default()
        })
        .await
        .map_err(|e| e.to_string())?;
    // Whatever has arrived is taken at once, and announced once: one wake-up of the ingestor
    // per burst, not per record.
    let mut messages = consumer
        .messages()
        .await
        .map_err(|e| e.to_string())?
        .ready_chunks(FETCH_CHUNK_MAX);
    fetched.failing.lock().take();
    loop {
        // A consumer idle while the stream holds more than the node fetched is stuck (its
        // server was lost and the client did not notice): it is created again.
        let chunk = match tokio::time::timeout(IDLE_CHECK, messages.next()).await {
            Ok(Some(chunk)) => chunk,
            Ok(None) => break,
            Err(_) => {
                let last = stream
                    .info()
                    .await
                    .map_err(|e| e.to_string())?
                    .state
                    .last_sequence;
                if last >= *next {
                    return Err(format!(
                        "the consumer delivered nothing for {IDLE_CHECK:?} while the stream holds up to {last} and \
                         this node fetched up to {}",
                        *next - 1
                    ));
                }
                continue;
            }
        };
        if fetched.closed.load(Ordering::Acquire) {
            return Ok(());
        }
        let before = *next;
        for message in chunk {
            let message = message.map_err(|e| e.to_string())?;
            let seq = message.info().map_err(|e| e.to_string())?.stream_sequence;
            if seq < *next {
                continue;
            }
            if seq > *next {
                // Gap-free by construction (deny_delete, deny_purge): a gap means the stream
                // lost records the node needs.
                *fetched.lost.lock() = Some((*next, seq));
                tracing::error!(
                    needed = *next,
                    got = seq,
                    "the stream no longer holds a record this node needs"
                );
                return Ok(());
            }
            // Bounded: wait for the ingestor to apply, and so free, what it has read.
            loop {
                let notified = fetched.space.notified();
                if fetched.buffer.lock().bytes < fetched.bytes_max || fetched.closed.load(Ordering::Acquire) {
                    break;
                }
                if *next > before {
                    announce(fetched, *next);
                }
                notified.await;
            }
            // The message's own bytes, shared with the ingest's read and its checks: no copy
            // between the fetch and the verification.
            let payload = message.message.payload.clone();
            {
                let mut buffer = fetched.buffer.lock();
                buffer.bytes += payload.len();
                buffer.records.push_back((seq, payload));
            }
            *next = seq + 1;
        }
        if *next > before {
            announce(fetched, *next);
        }
    }
    Err("the consumer's message stream ended".into())
}

/// Records that the stream no longer holds sequence `needed` (its next is `found`), and wakes
/// the ingestor so that it reads there and reports it: ingestion stalls, never skips.
fn lose(fetched: &Fetched, needed: u64, found: u64) {
    tracing::error!(
        needed,
        found,
        "the stream no longer holds a record this node needs"
    );
    *fetched.lost.lock() = Some((needed, found));
    announce(fetched, needed + 1);
}

/// Publishes the new durable end `end` and tells the listener.
fn announce(fetched: &Fetched, end: u64) {
    if fetched.end.fetch_max(end, Ordering::AcqRel) < end
        && let Some(listener) = fetched.listener.read().as_ref()
    {
        listener(end);
    }
}

struct Reader {
    fetched: Arc<Fetched>,
}

impl LogReader for Reader {
    fn read_range(
        &mut self,
        from: u64,
        max_records: usize,
        max_bytes: usize,
    ) -> Result<RangeRead, ReadError> {
        let mut buffer = self.fetched.buffer.lock();
        // Below `from` is applied (the ingestor reads on from its committed cursor): free it.
        let mut freed = false;
        while buffer.records.front().is_some_and(|(seq, _)| *seq < from) {
            if let Some((_, payload)) = buffer.records.pop_front() {
                buffer.bytes -= payload.len();
                freed = true;
            }
        }
        if freed {
            self.fetched.space.notify_one();
        }
        let mut range = RangeRead {
            records: Vec::new(),
            next: from,
            at_end: true,
        };
        let mut bytes = 0usize;
        for (seq, payload) in &buffer.records {
            if range.records.len() >= max_records || bytes >= max_bytes {
                range.at_end = false;
                break;
            }
            bytes += payload.len();
            range.records.push((*seq, payload.clone()));
            range.next = seq + 1;
        }
        drop(buffer);
        if range.records.is_empty()
            && let Some((needed, _first)) = *self.fetched.lost.lock()
            && from.max(1) >= needed
        {
            return Err(ReadError::Unreadable {
                position: needed,
                reason: "the stream no longer holds this sequence (it was trimmed or recreated)",
            });
        }
        Ok(range)
    }
}

impl Log for StreamLog {
    fn durable_end(&self) -> u64 {
        // What this node's own publishes were acknowledged up to is durable even before it is
        // fetched: waiting for the end (shutdown, readiness) waits for them to be indexed.
        let acked = self.fetched.acked.load(Ordering::Acquire);
        self.fetched.end.load(Ordering::Acquire).max(acked)
    }

    fn reader(&self) -> Box<dyn LogReader> {
        Box::new(Reader {
            fetched: Arc::clone(&self.fetched),
        })
    }

    fn set_durable_listener(&self, listener: DurableListener) {
        *self.fetched.listener.write() = Some(listener);
    }

    fn clear_durable_listener(&self) {
        self.fetched.listener.write().take();
    }

    fn admitted_only(&self) -> bool {
        // Any client allowed to publish on the stream's subject can add a record.
        false
    }

    fn collector(&self) -> Option<&dyn Collect> {
        // The stream keeps every record for nodes that join later: nothing is collected.
        None
    }

    fn records_behind(&self, cursor: u64, _applied_since_start: u64) -> u64 {
        // Positions are sequences: one record each.
        self.durable_end().saturating_sub(cursor)
    }

    fn fault(&self) -> Option<String> {
        StreamLog::fault(self)
    }

    fn record_gauges(&self) {}
}

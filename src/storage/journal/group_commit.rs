//! Group commit: appenders send through a bounded crossbeam channel to one thread, which
//! writes everything queued as one batch, issues one fdatasync, then acknowledges each
//! appender with its global offset.
//!
//! Batching needs no timer: while one fdatasync runs, new appends queue up and form the next
//! batch. A lone appender commits its own record on its own thread (see `Journal::append`),
//! holding the same writer lock, so batches never interleave. `group_commit_wait_us_max` optionally holds a
//! batch open a little longer when several appenders are already queued.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, TryRecvError};
use parking_lot::Mutex;

use super::config::JournalConfig;
use super::error::JournalError;
use super::format;
use super::writer::Writer;
use crate::budget::Reservation;

/// Told once of the outcome of an append: its global offset once durable, or the error. Every
/// `FnOnce(Result<u64, JournalError>)` closure is one; a layer above may implement it for its
/// own acknowledgement type, so that an append carries one boxed reply, never a box in a box.
pub trait Acknowledge: Send {
    /// Takes the outcome.
    fn acknowledge(self: Box<Self>, outcome: Result<u64, JournalError>);
}

impl<F: FnOnce(Result<u64, JournalError>) + Send> Acknowledge for F {
    fn acknowledge(self: Box<Self>, outcome: Result<u64, JournalError>) {
        self(outcome);
    }
}

/// Called once with the outcome of an append; see [`Acknowledge`].
pub type AppendReply = Box<dyn Acknowledge>;

/// One queued append.
pub struct AppendRequest {
    /// The record payload.
    pub payload: Vec<u8>,
    /// Where the outcome goes.
    pub reply: AppendReply,
    /// The append's share of the queue's budget: returned once the payload is written (or the
    /// request is dropped unwritten), before the reply runs.
    pub share: Reservation,
    /// The appender's span: the batch that commits the append is its child (if it is the
    /// batch's first enabled one) or follows from it.
    pub span: tracing::Span,
}

/// Starts the group-commit thread; it ends when every sender is dropped.
pub fn spawn(
    writer: Arc<Mutex<Writer>>,
    config: JournalConfig,
    requests: Receiver<AppendRequest>,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("stemedb-group-commit".into())
        .spawn(move || {
            let mut batch = Vec::new();
            while let Some(()) = collect_batch(&requests, &config, &mut batch) {
                // A lone appender may be committing its own record; the batch waits for it.
                commit(&mut writer.lock(), &mut batch);
            }
        })
}

/// How long the commit thread polls for the next append before parking, in microseconds. A
/// lone appender sends its next append within a few microseconds of its acknowledgement;
/// catching it here saves a thread wake-up, which costs tens of microseconds on a VM.
const IDLE_POLL_US_MAX: u64 = 50;

fn poll_briefly(requests: &Receiver<AppendRequest>) -> Option<AppendRequest> {
    let deadline = Instant::now() + Duration::from_micros(IDLE_POLL_US_MAX);
    loop {
        match requests.try_recv() {
            Ok(request) => return Some(request),
            Err(TryRecvError::Disconnected) => return None,
            Err(TryRecvError::Empty) if Instant::now() >= deadline => return None,
            Err(TryRecvError::Empty) => std::hint::spin_loop(),
        }
    }
}

/// Fills `batch` with the next group of requests; `None` once the channel is closed and empty.
fn collect_batch(
    requests: &Receiver<AppendRequest>,
    config: &JournalConfig,
    batch: &mut Vec<AppendRequest>,
) -> Option<()> {
    let first = match poll_briefly(requests) {
        Some(request) => request,
        None => requests.recv().ok()?,
    };
    // Encoded bytes, headers included: recovery's torn-batch window relies on this bound.
    let mut bytes = format::record_len(first.payload.len());
    batch.push(first);
    while bytes < config.group_commit_batch_bytes_max {
        match requests.try_recv() {
            Ok(request) => {
                bytes += format::record_len(request.payload.len());
                batch.push(request);
            }
            Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
        }
    }
    if batch.len() > 1 && config.group_commit_wait_us_max > 0 {
        let deadline = Instant::now() + Duration::from_micros(config.group_commit_wait_us_max);
        while bytes < config.group_commit_batch_bytes_max {
            match requests.recv_deadline(deadline) {
                Ok(request) => {
                    bytes += format::record_len(request.payload.len());
                    batch.push(request);
                }
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
            }
        }
    }
    Some(())
}

/// Writes the batch, then acknowledges each append. Each payload and its budget share are
/// dropped before its reply runs: an appender that has its answer finds its bytes free.
///
/// The batch's span is a child of the first appender's span that is enabled, so that a trace
/// (an HTTP request's, say) runs on through the commit thread; it follows from every other.
/// The parent is looked for only when the span is enabled: with tracing at `info` this costs
/// nothing per batch.
fn commit(writer: &mut Writer, batch: &mut Vec<AppendRequest>) {
    let span = tracing::debug_span!(
        parent: batch.iter().find_map(|request| request.span.id()),
        "journal.group_commit",
        appends = batch.len()
    );
    if !span.is_disabled() {
        for request in batch.iter() {
            span.follows_from(&request.span);
        }
    }
    let _entered = span.enter();
    let payloads: Vec<&[u8]> = batch.iter().map(|r| r.payload.as_slice()).collect();
    let outcome = writer.append_batch(&payloads);
    match outcome {
        Ok(offsets) => {
            for (request, offset) in batch.drain(..).zip(offsets) {
                reply_released(request, Ok(offset));
            }
        }
        Err(error) => {
            for request in batch.drain(..) {
                reply_released(request, Err(replicate(&error)));
            }
        }
    }
}

/// Drops the payload and returns the budget share, then runs the reply.
fn reply_released(request: AppendRequest, outcome: Result<u64, JournalError>) {
    let AppendRequest {
        payload,
        reply,
        share,
        span: _,
    } = request;
    drop(payload);
    drop(share);
    reply.acknowledge(outcome);
}

/// Gives each appender of a failed batch its own copy of the error.
fn replicate(error: &JournalError) -> JournalError {
    match error {
        JournalError::Io { op, path, source } => JournalError::Io {
            op,
            path: path.clone(),
            source: std::io::Error::new(source.kind(), source.to_string()),
        },
        JournalError::StorageFull { path } => JournalError::StorageFull { path: path.clone() },
        JournalError::Poisoned { reason } => JournalError::Poisoned {
            reason: reason.clone(),
        },
        JournalError::UnexpectedFile(path) => JournalError::UnexpectedFile(path.clone()),
        // The writer returns none of the others; should one appear, it is passed on as an I/O
        // failure of the append with its own text, not relabelled as a poisoning.
        other => JournalError::Io {
            op: "append",
            path: std::path::PathBuf::new(),
            source: std::io::Error::other(other.to_string()),
        },
    }
}

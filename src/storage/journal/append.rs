//! Appending: a lone appender commits on its own thread; everyone else queues to the
//! group-commit thread under the queue's [`Budget`].
//!
//! Invariants:
//! - Every queued append holds a share of the budget (one entry, its payload's bytes) from
//!   before it is sent until its payload is written or dropped. So the channel never holds
//!   more entries than were reserved, and a send after a reservation never finds it full.
//! - A group of appends ([`Journal::try_append_batch`]) is queued whole or not at all.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use crossbeam_channel::{Sender, TrySendError};

use super::Journal;
use super::error::JournalError;
use super::group_commit::{AppendReply, AppendRequest};
use crate::budget::QueueFull;

/// How long an appender polls for its acknowledgement before it parks, in microseconds: a
/// little more than one fdatasync on an SSD. Only the one appender that finds nobody else in
/// flight polls, so many appenders never compete with the commit thread for the CPU.
const ACK_POLL_US_MAX: u64 = 1000;

fn wait_polling(
    rx: &crossbeam_channel::Receiver<Result<u64, JournalError>>,
) -> Result<Result<u64, JournalError>, JournalError> {
    let deadline = Instant::now() + std::time::Duration::from_micros(ACK_POLL_US_MAX);
    loop {
        match rx.try_recv() {
            Ok(outcome) => return Ok(outcome),
            Err(crossbeam_channel::TryRecvError::Disconnected) => return Err(JournalError::Closed),
            Err(crossbeam_channel::TryRecvError::Empty) if Instant::now() >= deadline => {
                return rx.recv().map_err(|_| JournalError::Closed);
            }
            Err(crossbeam_channel::TryRecvError::Empty) => std::thread::yield_now(),
        }
    }
}

/// Counts an appender in flight for as long as it lives.
struct InFlight<'a>(&'a AtomicUsize);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The error for a refused reservation: busy, or too large ever to fit.
fn refused(full: QueueFull) -> JournalError {
    if full.can_never_fit() {
        JournalError::TooLargeForQueue { full }
    } else {
        crate::telemetry::busy("group_commit");
        JournalError::Busy { full }
    }
}

impl Journal {
    /// Appends `payload` and waits until it is durable; returns its global offset.
    ///
    /// Blocks while the append queue is full, in entries or in bytes (backpressure). See
    /// [`try_append`](Self::try_append) for a call that reports [`JournalError::Busy`] instead.
    pub fn append(&self, payload: Vec<u8>) -> Result<u64, JournalError> {
        self.check_size(&payload)?;
        let sender = self.sender()?;
        let in_flight = self.inner.waiters.fetch_add(1, Ordering::AcqRel) + 1;
        let _in_flight = InFlight(&self.inner.waiters);
        // Alone (no other appender, nothing queued, the writer idle): commit here, saving two
        // thread hand-offs. Otherwise join the group commit, which batches concurrent appends.
        if in_flight == 1
            && sender.is_empty()
            && let Some(mut writer) = self.inner.writer.try_lock()
        {
            return writer
                .append_batch(&[payload.as_slice()])
                .map(|offsets| offsets[0]);
        }
        let share = self
            .inner
            .queue
            .reserve_blocking(1, payload.len())
            .map_err(refused)?;
        let (tx, rx) = crossbeam_channel::bounded(1);
        let reply: AppendReply = Box::new(move |outcome: Result<u64, JournalError>| {
            let _ = tx.send(outcome);
        });
        // Never waits: the reserved entry guarantees a free slot (module invariant).
        sender
            .send(AppendRequest {
                payload,
                reply,
                share,
                span: tracing::Span::current(),
            })
            .map_err(|_| JournalError::Closed)?;
        let outcome = if in_flight == 1 {
            wait_polling(&rx)
        } else {
            rx.recv().map_err(|_| JournalError::Closed)
        };
        outcome?
    }

    /// Queues `payload` without blocking; `reply` is called once with the durable offset or the
    /// error. Returns [`JournalError::Busy`] when the queue is full (in entries or in bytes);
    /// then nothing is queued and `reply` is dropped unrun.
    pub fn try_append(&self, payload: Vec<u8>, reply: AppendReply) -> Result<(), JournalError> {
        self.try_append_batch(vec![(payload, reply)])
    }

    /// Queues every payload of `appends`, in order, without blocking, or none of them: each
    /// reply is called once with its payload's durable offset or the error. Returns
    /// [`JournalError::Busy`] when the group does not fit the queue now, and
    /// [`JournalError::TooLargeForQueue`] when it never could; then nothing is queued and
    /// every reply is dropped unrun.
    pub fn try_append_batch(&self, appends: Vec<(Vec<u8>, AppendReply)>) -> Result<(), JournalError> {
        let mut bytes = 0usize;
        for (payload, _) in &appends {
            self.check_size(payload)?;
            bytes = bytes.saturating_add(payload.len());
        }
        let sender = self.sender()?;
        let mut group = self
            .inner
            .queue
            .try_reserve(appends.len(), bytes)
            .map_err(refused)?;
        for (payload, reply) in appends {
            let share = group.split(1, payload.len());
            match sender.try_send(AppendRequest {
                payload,
                reply,
                share,
                span: tracing::Span::current(),
            }) {
                Ok(()) => {}
                // Unreachable while the module invariant holds; reported, never blocked on.
                Err(TrySendError::Full(_)) => {
                    let (in_flight, _) = self.inner.queue.in_flight();
                    return Err(JournalError::Busy {
                        full: QueueFull {
                            unit: crate::budget::QueueUnit::Entries,
                            requested: 1,
                            in_flight,
                            max: self.inner.config.group_commit_queue_depth_max,
                        },
                    });
                }
                Err(TrySendError::Disconnected(_)) => return Err(JournalError::Closed),
            }
        }
        Ok(())
    }

    fn sender(&self) -> Result<&Sender<AppendRequest>, JournalError> {
        self.inner.sender.as_ref().ok_or(JournalError::Closed)
    }

    fn check_size(&self, payload: &[u8]) -> Result<(), JournalError> {
        let max = self.inner.config.record_bytes_max;
        if payload.is_empty() || payload.len() > max {
            return Err(JournalError::RecordSize {
                len: payload.len(),
                max,
            });
        }
        Ok(())
    }
}

//! The write-ahead journal: the durability point of StemeDB.
//!
//! One concern per file: [`format`](mod@format) (record v2 layout), `segment` (files), `recovery`
//! (scan, truncate, quarantine), `writer` (batch write + fdatasync), `group_commit` (the
//! appender thread), [`reader`] (positional reads), `cursors` (durable consumer positions).
//!
//! Invariants:
//! - An append is acknowledged only after its bytes are durable (one fdatasync per batch).
//! - After a crash, [`Journal::open`] yields every acknowledged record: a torn tail (never
//!   acknowledged) is truncated; mid-log corruption is quarantined or, by policy, refused.
//! - A failed fsync poisons the journal: nothing more is acknowledged until it is reopened.
//! - Global offsets address records across segments; a segment is named by its base offset.

mod config;
mod cursors;
mod error;
mod faults;
pub mod format;
mod group_commit;
pub mod reader;
mod recovery;
mod segment;
mod shared;
mod writer;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::Instant;

use crossbeam_channel::{Sender, TrySendError};
use parking_lot::Mutex;

pub use config::{CorruptionPolicy, JournalConfig};
pub use cursors::{CURSOR_NAME_BYTES_MAX, CURSORS_MAX};
pub use error::{JournalError, ReadError, RecordDefect};
pub use faults::{Faults, NoFaults};
pub use group_commit::AppendReply;
pub use reader::{JournalReader, RangeRead, ReadOutcome};
pub use recovery::{Defect, QUARANTINE_DIR, Recovered, ScanReport, ScannedRecord, ScannedSegment, scan};

use group_commit::AppendRequest;
use segment::SegmentHandle;
use shared::Shared;

pub use shared::DurableListener;

/// Most concurrent appenders that poll for their acknowledgement instead of parking at once:
/// one, so a lone appender is not slowed by a thread wake-up while many appenders never
/// compete with the group-commit thread for the CPU.
const SPINNING_WAITERS_MAX: usize = 1;
/// How long a polling appender polls before it parks, in microseconds: a little more than one
/// fdatasync on an SSD.
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

/// An open journal. Clones share it; the group-commit thread stops when the last is dropped,
/// after acknowledging everything queued.
#[derive(Clone)]
pub struct Journal {
    inner: Arc<Inner>,
}

struct Inner {
    dir: PathBuf,
    config: JournalConfig,
    shared: Arc<Shared>,
    sender: Option<Sender<AppendRequest>>,
    thread: Option<JoinHandle<()>>,
    cursors: Mutex<cursors::Cursors>,
    recovered: Recovered,
    /// Appenders currently waiting in [`Journal::append`].
    waiters: AtomicUsize,
    /// The exclusive lock on the directory; released when the file closes.
    _lock: std::fs::File,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Closing the channel lets the thread drain what is queued and stop. If the last
        // handle is dropped on that very thread (inside a reply), it ends by itself instead.
        self.sender.take();
        if let Some(thread) = self.thread.take() {
            if thread.thread().id() != std::thread::current().id() {
                let _ = thread.join();
            }
        }
    }
}

impl Journal {
    /// Opens (creating if needed) the journal in `dir`, recovering it first.
    pub fn open(dir: impl AsRef<Path>, config: JournalConfig) -> Result<Self, JournalError> {
        Self::open_with_faults(dir, config, Arc::new(NoFaults))
    }

    /// Like [`open`](Self::open), with I/O fault injection; for tests.
    pub fn open_with_faults(
        dir: impl AsRef<Path>,
        config: JournalConfig,
        faults: Arc<dyn Faults>,
    ) -> Result<Self, JournalError> {
        config.validate().map_err(JournalError::Config)?;
        let dir = dir.as_ref().to_owned();
        segment::create_dir_durably(&dir)?;
        // Held for the journal's lifetime: a second writer would append at the same offsets.
        let lock = segment::lock_dir(&dir)?;
        let mut recovered = recovery::recover(&dir, &config)?;
        let cursors = cursors::Cursors::load(&dir)?;
        if let Some(max) = cursors.max().filter(|&max| max > recovered.report.end) {
            return Err(JournalError::CursorBeyondEnd {
                cursor: max,
                end: recovered.report.end,
            });
        }
        // The per-record list serves `wal` tools; an open journal needs only the count.
        recovered.report.records = Vec::new();
        let handles = recovered
            .report
            .segments
            .iter()
            .map(|s| SegmentHandle::open(s.base, s.path.clone()).map(Arc::new))
            .collect::<Result<Vec<_>, _>>()?;
        let quarantined: BTreeMap<u64, u64> =
            recovered.quarantined.iter().map(|&(o, l)| (o, o + l)).collect();
        let shared = Arc::new(Shared::new(recovered.report.end, handles, quarantined));
        let writer = writer::Writer::open(dir.clone(), config.clone(), Arc::clone(&shared), faults)?;
        let (sender, receiver) = crossbeam_channel::bounded(config.group_commit_queue_depth_max);
        let thread = group_commit::spawn(writer, config.clone(), receiver)
            .map_err(|e| JournalError::io("spawn group-commit thread", &dir, e))?;
        let cursors = Mutex::new(cursors);
        Ok(Self {
            inner: Arc::new(Inner {
                dir,
                config,
                shared,
                sender: Some(sender),
                thread: Some(thread),
                cursors,
                recovered,
                waiters: AtomicUsize::new(0),
                _lock: lock,
            }),
        })
    }

    /// Appends `payload` and waits until it is durable; returns its global offset.
    ///
    /// Blocks while the append queue is full (backpressure). See [`try_append`](Self::try_append)
    /// for a call that reports [`JournalError::Busy`] instead.
    pub fn append(&self, payload: Vec<u8>) -> Result<u64, JournalError> {
        self.check_size(&payload)?;
        let (tx, rx) = crossbeam_channel::bounded(1);
        let reply: AppendReply = Box::new(move |outcome| {
            let _ = tx.send(outcome);
        });
        self.sender()?
            .send(AppendRequest { payload, reply })
            .map_err(|_| JournalError::Closed)?;
        let waiters = self.inner.waiters.fetch_add(1, Ordering::AcqRel) + 1;
        let outcome = if waiters <= SPINNING_WAITERS_MAX {
            wait_polling(&rx)
        } else {
            rx.recv().map_err(|_| JournalError::Closed)
        };
        self.inner.waiters.fetch_sub(1, Ordering::AcqRel);
        outcome?
    }

    /// Queues `payload` without blocking; `reply` is called once with the durable offset or the
    /// error. Returns [`JournalError::Busy`] when the queue is full.
    pub fn try_append(&self, payload: Vec<u8>, reply: AppendReply) -> Result<(), JournalError> {
        self.check_size(&payload)?;
        match self.sender()?.try_send(AppendRequest { payload, reply }) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => Err(JournalError::Busy {
                depth: self.inner.config.group_commit_queue_depth_max,
            }),
            Err(TrySendError::Disconnected(_)) => Err(JournalError::Closed),
        }
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

    /// Returns a handle that does not keep the journal open.
    pub fn downgrade(&self) -> WeakJournal {
        WeakJournal {
            inner: Arc::downgrade(&self.inner),
        }
    }

    /// Returns a new reader.
    pub fn reader(&self) -> JournalReader {
        JournalReader::new(Arc::clone(&self.inner.shared))
    }

    /// Returns the global offset just past the last durable record.
    pub fn durable_end(&self) -> u64 {
        self.inner.shared.durable_end()
    }

    /// Waits until the durable end is beyond `offset`, or until `deadline`; returns the durable
    /// end at that moment (compare it with `offset` to tell which happened).
    pub fn wait_durable_beyond(&self, offset: u64, deadline: Instant) -> u64 {
        self.inner.shared.wait_durable_beyond(offset, deadline)
    }

    /// Installs a callback that receives the new durable end after every committed batch
    /// (replacing any earlier one). It runs on the group-commit thread and must not block.
    pub fn set_durable_listener(&self, listener: DurableListener) {
        self.inner.shared.set_listener(Some(listener));
    }

    /// Removes the durable-end listener, if any.
    pub fn clear_durable_listener(&self) {
        self.inner.shared.set_listener(None);
    }

    /// Returns what recovery found and did when this journal was opened.
    pub fn recovered(&self) -> &Recovered {
        &self.inner.recovered
    }

    /// Returns the number of quarantined mid-log regions found at open.
    pub fn quarantined_count(&self) -> usize {
        self.inner.recovered.quarantined.len()
    }

    /// Returns the journal directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// Durably sets the named cursor (registering it if new). A cursor cannot pass the durable
    /// end: it records what a consumer has processed, and only durable records can be read.
    pub fn set_cursor(&self, name: &str, offset: u64) -> Result<(), JournalError> {
        let end = self.durable_end();
        if offset > end {
            return Err(JournalError::CursorBeyondEnd { cursor: offset, end });
        }
        self.inner.cursors.lock().set(name, offset)
    }

    /// Returns the named cursor's offset, if registered.
    pub fn cursor(&self, name: &str) -> Option<u64> {
        self.inner.cursors.lock().get(name)
    }

    /// Deletes the oldest segments that lie wholly below every cursor and outside
    /// `retention_bytes_min`, never the active segment nor one a reader holds. Returns how many
    /// were deleted. With no cursor registered nothing is deleted.
    pub fn collect_garbage(&self) -> Result<usize, JournalError> {
        let Some(min_cursor) = self.inner.cursors.lock().min() else {
            return Ok(0);
        };
        let retained_from = self
            .durable_end()
            .saturating_sub(self.inner.config.retention_bytes_min);
        let keep_from = min_cursor.min(retained_from);
        let mut segments = self.inner.shared.segments.write();
        let mut removed = 0;
        while segments.len() > 1 {
            let end = segments[1].base;
            // One reference is this list's; any other is a reader's.
            if end > keep_from || Arc::strong_count(&segments[0]) > 1 {
                break;
            }
            let segment = segments.remove(0);
            std::fs::remove_file(&segment.path)
                .map_err(|e| JournalError::io("remove segment", &segment.path, e))?;
            // One directory fsync per removal: unlinks are not ordered among themselves, and
            // losing an older removal but keeping a newer one would leave a gap.
            segment::sync_dir(&self.inner.dir)?;
            removed += 1;
        }
        Ok(removed)
    }
}

/// A handle that does not keep the journal open: for observers (such as the GroupCommit
/// actor) that must not delay its closing.
#[derive(Clone)]
pub struct WeakJournal {
    inner: std::sync::Weak<Inner>,
}

impl WeakJournal {
    /// Returns the journal if it is still open.
    pub fn upgrade(&self) -> Option<Journal> {
        self.inner.upgrade().map(|inner| Journal { inner })
    }
}

impl std::fmt::Debug for WeakJournal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WeakJournal")
            .field("open", &(self.inner.strong_count() > 0))
            .finish()
    }
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal")
            .field("dir", &self.inner.dir)
            .field("durable_end", &self.durable_end())
            .finish()
    }
}

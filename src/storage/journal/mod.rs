//! The write-ahead journal: the durability point of StemeDB.
//!
//! One concern per file: `format` (record v3 layout), `layout` (identity file,
//! segment header and trailer), `segment` (files), `scan` (torn tail or damage), `recovery`
//! (open: cut a torn tail), `quarantine` (damage copied aside), `verify` (the full scan),
//! `writer` (batch write + fdatasync + seal), `append` (a lone appender's own commit, or the
//! queue to the group commit, bounded in entries and bytes), `group_commit` (the appender thread), `reader` (positional reads), `cursors` (durable
//! consumer positions). The log seam ([`crate::log`]) is how the node reads and appends to it.
//!
//! Invariants:
//! - An append is acknowledged only after its bytes are durable (one fdatasync per batch).
//! - After a crash, [`Journal::open`] yields every acknowledged record: a torn last batch
//!   (never acknowledged) is cut, never below a durable cursor; damage to acknowledged data is
//!   quarantined or, by policy, refused. Opening reads only the last segment.
//! - Every record's checksum is seeded with the journal's identity: nothing from another
//!   journal validates here.
//! - A failed fsync poisons the journal: nothing more is acknowledged until it is reopened.
//! - Global offsets address records across segments; a segment is named by its base offset.

mod append;
mod config;
mod cursors;
mod error;
mod faults;
internal_mod!(format);
mod group_commit;
internal_mod!(layout);
mod quarantine;
internal_mod!(reader);
mod recovery;
mod report;
mod scan;
mod segment;
mod shared;
mod verify;
mod writer;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::thread::JoinHandle;
use std::time::Instant;

use crossbeam_channel::Sender;
use parking_lot::Mutex;

pub use crate::budget::{QueueFull, QueueUnit};
pub use config::{CorruptionPolicy, JournalConfig, Retention};
pub use cursors::{CURSOR_NAME_BYTES_MAX, CURSORS_MAX};
pub use error::{JournalError, ReadError, RecordDefect};
pub use faults::{Faults, NoFaults};
pub use group_commit::{Acknowledge, AppendReply};
pub use quarantine::QUARANTINE_DIR;
pub use reader::{JournalReader, RangeRead, ReadOutcome};
pub use report::{Defect, Recovered, ScanReport, ScannedSegment};
pub use scan::ScannedRecord;
// Internals that the workspace's journal tests and the chaos arena reach with the test kit.
pub(crate) use segment::lock_dir;
pub use verify::{repair, scan, scanned_payloads};
#[cfg(feature = "test-kit")]
#[doc(hidden)]
pub use {recovery::identity, scan::SECTOR_BYTES, segment::OPEN_SEGMENT_FILES_MAX};
// The segments of a journal directory, for fault injection that damages them on purpose.
#[cfg(feature = "faults")]
#[doc(hidden)]
pub use {layout::SEGMENT_HEADER_BYTES, segment::list_segments};

use crate::budget::Budget;
use group_commit::AppendRequest;
use segment::{OpenFiles, SegmentHandle};
use shared::Shared;

pub use shared::DurableListener;

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
    /// Appenders currently in [`Journal::append`].
    waiters: AtomicUsize,
    /// The bound on what waits for, or is in, the group-commit thread's batch.
    queue: Arc<Budget>,
    /// The single writer, shared by the group-commit thread and a lone appender, which
    /// commits its own record on its own thread rather than hand it over and wait.
    writer: Arc<Mutex<writer::Writer>>,
    /// The exclusive lock on the directory; released when the file closes.
    _lock: std::fs::File,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Closing the channel lets the thread drain what is queued and stop. If the last
        // handle is dropped on that very thread (inside a reply), it ends by itself instead.
        self.sender.take();
        if let Some(thread) = self.thread.take()
            && thread.thread().id() != std::thread::current().id()
        {
            let _ = thread.join();
        }
    }
}

/// Options of [`Journal::open_with`].
#[derive(Debug, Clone)]
pub struct OpenOptions {
    /// I/O fault injection, for tests; [`NoFaults`] by default.
    pub faults: Arc<dyn Faults>,
    /// An offset a consumer outside the journal durably holds (say, the state's ingest
    /// cursor): recovery refuses to cut the log below it, as below a registered cursor.
    /// Default 0.
    pub durable_floor: u64,
}

impl Default for OpenOptions {
    fn default() -> Self {
        Self {
            faults: Arc::new(NoFaults),
            durable_floor: 0,
        }
    }
}

impl Journal {
    /// Opens (creating if needed) the journal in `dir`, recovering it first.
    pub fn open(dir: impl AsRef<Path>, config: JournalConfig) -> Result<Self, JournalError> {
        Self::open_with(dir, config, OpenOptions::default())
    }

    /// Like [`open`](Self::open), with [`OpenOptions`].
    pub fn open_with(
        dir: impl AsRef<Path>,
        config: JournalConfig,
        options: OpenOptions,
    ) -> Result<Self, JournalError> {
        let started = Instant::now();
        config.validate().map_err(JournalError::Config)?;
        let dir = dir.as_ref().to_owned();
        // A journal of another format is refused before anything is created in its directory.
        if dir.is_dir() {
            recovery::identity(&dir)?;
        }
        segment::create_dir_durably(&dir)?;
        // Held for the journal's lifetime: a second writer would append at the same offsets.
        let lock = segment::lock_dir(&dir)?;
        let id = match recovery::identity(&dir)? {
            Some(id) => id,
            None => layout::create_identity(&dir)?,
        };
        let cursors = cursors::Cursors::load(&dir)?;
        let floor = cursors.max().unwrap_or(0).max(options.durable_floor);
        let recovered = recovery::recover(&dir, &config, id, floor)?;
        let files = Arc::new(OpenFiles::default());
        let handles = recovered
            .report
            .segments
            .iter()
            .map(|s| Arc::new(SegmentHandle::new(s.base, s.path.clone(), Arc::clone(&files))))
            .collect();
        let mut quarantined: BTreeMap<u64, u64> = BTreeMap::new();
        for &(offset, length) in &recovered.quarantined {
            let end = quarantined.entry(offset).or_insert(offset);
            *end = (*end).max(offset + length);
        }
        let shared = Arc::new(Shared::new(
            recovered.report.end,
            handles,
            quarantined,
            files,
            id.seed(),
            dir.clone(),
            config.corruption_policy,
        ));
        let writer = writer::Writer::open(
            dir.clone(),
            config.clone(),
            Arc::clone(&shared),
            options.faults,
            id,
            recovered.tail,
        )?;
        let writer = Arc::new(Mutex::new(writer));
        let (sender, receiver) = crossbeam_channel::bounded(config.group_commit_queue_depth_max);
        let thread = group_commit::spawn(Arc::clone(&writer), config.clone(), receiver)
            .map_err(|e| JournalError::io("spawn group-commit thread", &dir, e))?;
        let cursors = Mutex::new(cursors);
        let queue = Budget::new(
            config.group_commit_queue_depth_max,
            config.group_commit_queue_bytes_max,
        );
        tracing::info!(
            dir = %dir.display(),
            end = recovered.report.end,
            segments = recovered.report.segments.len(),
            open_ms = started.elapsed().as_millis() as u64,
            "journal opened"
        );
        metrics::gauge!(crate::telemetry::catalog::JOURNAL_OPEN_SECONDS).set(started.elapsed().as_secs_f64());
        metrics::gauge!(crate::telemetry::catalog::JOURNAL_QUARANTINED_REGIONS)
            .set(shared.quarantined_regions() as f64);
        metrics::gauge!(crate::telemetry::catalog::JOURNAL_POISONED).set(0.0);
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
                queue,
                writer,
                _lock: lock,
            }),
        })
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
    /// (replacing any earlier one). It runs on the thread that committed the batch (the
    /// group-commit thread, or a lone appender's) and must not block.
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

    /// Returns the number of quarantined regions known at open (found then, or earlier).
    pub fn quarantined_count(&self) -> usize {
        self.inner.recovered.quarantined.len()
    }

    /// Returns the offset of the first record the journal still holds: 0 unless retention
    /// deleted older segments.
    pub fn start(&self) -> u64 {
        self.inner.shared.segments.read().first().map_or(0, |s| s.base)
    }

    /// Returns the number of segments.
    pub fn segment_count(&self) -> usize {
        self.inner.shared.segments.read().len()
    }

    /// Returns the bytes the segment files take: each sealed segment's header, records and
    /// trailer (fixed once sealed, so computed), and the active segment and any spare as their
    /// files' lengths now (preallocation included, or not where it failed).
    pub fn disk_bytes(&self) -> u64 {
        let (sealed, active) = {
            let segments = self.inner.shared.segments.read();
            let frame = (layout::SEGMENT_HEADER_BYTES + layout::SEGMENT_TRAILER_BYTES) as u64;
            let sealed: u64 = segments
                .windows(2)
                .map(|pair| pair[1].base - pair[0].base + frame)
                .sum();
            (sealed, segments.last().map(|s| s.path.clone()))
        };
        let length = |path: &Path| std::fs::metadata(path).map_or(0, |m| m.len());
        sealed + active.as_deref().map_or(0, length) + length(&segment::spare_path(&self.inner.dir))
    }

    /// Returns the group-commit queue's (entries, bytes) held and its bound in bytes.
    pub fn queue_use(&self) -> (usize, usize, usize) {
        let (entries, bytes) = self.inner.queue.in_flight();
        (entries, bytes, self.inner.queue.bytes_max())
    }

    /// Returns the number of records made durable since the journal was opened.
    pub fn appended_records(&self) -> u64 {
        self.inner.shared.appended_records()
    }

    /// Returns true if and only if the journal is poisoned: an fsync failed, and nothing more
    /// is acknowledged until it is reopened.
    pub fn is_poisoned(&self) -> bool {
        self.inner.shared.poisoned()
    }

    /// Returns the number of quarantined regions known now (at open, or found by readers since).
    pub fn quarantined_regions(&self) -> usize {
        self.inner.shared.quarantined_regions()
    }

    /// Returns the number of segment files open for reading (at most
    /// [`OPEN_SEGMENT_FILES_MAX`]; the writer's own file is not counted).
    pub fn open_file_count(&self) -> usize {
        self.inner.shared.files.count()
    }

    /// Returns the journal's configuration.
    pub fn config(&self) -> &JournalConfig {
        &self.inner.config
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

    /// Deletes the oldest segments that the retention setting lets go and that lie wholly
    /// below every cursor, never the active segment nor one a reader holds. Returns how many
    /// were deleted. With `Retention::All` (the default) or no cursor registered, nothing is.
    pub fn collect_garbage(&self) -> Result<usize, JournalError> {
        let retention = self.inner.config.retention;
        if retention == Retention::All {
            return Ok(0);
        }
        let Some(min_cursor) = self.inner.cursors.lock().min() else {
            return Ok(0);
        };
        let keep_from = match retention {
            Retention::Bytes { bytes_min } => min_cursor.min(self.durable_end().saturating_sub(bytes_min)),
            Retention::All | Retention::Age { .. } => min_cursor,
        };
        let now_ms = crate::protocol::now_ms();
        let mut segments = self.inner.shared.segments.write();
        let mut removed = 0;
        while segments.len() > 1 {
            let end = segments[1].base;
            // One reference is this list's; any other is a reader's.
            if end > keep_from || Arc::strong_count(&segments[0]) > 1 {
                break;
            }
            if let Retention::Age { days_min } = retention {
                let sealed_ms = segments[0].sealed_ms(self.inner.shared.seed)?;
                let age_ms = now_ms.saturating_sub(sealed_ms);
                if age_ms < u64::from(days_min) * MS_PER_DAY {
                    break;
                }
            }
            let segment = segments.remove(0);
            self.inner.shared.files.forget(segment.base);
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

/// Milliseconds in a day, for age retention.
const MS_PER_DAY: u64 = 24 * 60 * 60 * 1000;

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal")
            .field("dir", &self.inner.dir)
            .field("durable_end", &self.durable_end())
            .finish()
    }
}

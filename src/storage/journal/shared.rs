//! State shared by the writer, the readers and the garbage collector.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use parking_lot::{Condvar, Mutex, RwLock};

use super::config::CorruptionPolicy;
use super::error::JournalError;
use super::format::Seed;
use super::segment::{OpenFiles, SegmentHandle};

/// Shared journal state. Invariant: `durable_end <= written_end`, and every byte below
/// `durable_end` was fsynced (or existed at open, after recovery).
pub struct Shared {
    /// Global offset just past the last durable record.
    durable_end: AtomicU64,
    /// Global offset just past the last written (perhaps not yet durable) byte.
    written_end: AtomicU64,
    /// Records made durable since the journal was opened.
    appended_records: AtomicU64,
    /// Whether the writer is poisoned (a failed fsync).
    poisoned: AtomicBool,
    /// Open segments in base order; the last is the one being appended to.
    pub segments: RwLock<Vec<Arc<SegmentHandle>>>,
    /// Quarantined mid-log regions: start offset → end offset. Readers skip them.
    pub quarantined: RwLock<BTreeMap<u64, u64>>,
    /// The segment files open for reading (a bounded number).
    pub files: Arc<OpenFiles>,
    /// The journal identity's CRC seed.
    pub seed: Seed,
    /// The journal directory (quarantine reports go to its `quarantine/`).
    pub dir: PathBuf,
    /// Whether damage a reader meets in a sealed segment is quarantined.
    pub policy: CorruptionPolicy,
    /// Serializes quarantining by readers.
    quarantining: Mutex<()>,
    /// Signalled whenever `durable_end` advances.
    durable_signal: (Mutex<()>, Condvar),
    /// Called with the new durable end after each batch (e.g. to wake the GroupCommit actor).
    listener: RwLock<Option<DurableListener>>,
}

/// A callback receiving each new durable end; it must not block.
pub type DurableListener = Box<dyn Fn(u64) + Send + Sync>;

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("durable_end", &self.durable_end())
            .field("written_end", &self.written_end())
            .finish_non_exhaustive()
    }
}

impl Shared {
    pub fn new(
        end: u64,
        segments: Vec<Arc<SegmentHandle>>,
        quarantined: BTreeMap<u64, u64>,
        files: Arc<OpenFiles>,
        seed: Seed,
        dir: PathBuf,
        policy: CorruptionPolicy,
    ) -> Self {
        Self {
            files,
            seed,
            dir,
            policy,
            quarantining: Mutex::new(()),
            durable_end: AtomicU64::new(end),
            written_end: AtomicU64::new(end),
            appended_records: AtomicU64::new(0),
            poisoned: AtomicBool::new(false),
            segments: RwLock::new(segments),
            quarantined: RwLock::new(quarantined),
            durable_signal: (Mutex::new(()), Condvar::new()),
            listener: RwLock::new(None),
        }
    }

    pub fn durable_end(&self) -> u64 {
        self.durable_end.load(Ordering::Acquire)
    }

    pub fn written_end(&self) -> u64 {
        self.written_end.load(Ordering::Acquire)
    }

    pub fn set_written_end(&self, end: u64) {
        self.written_end.store(end, Ordering::Release);
    }

    /// Records made durable since the journal was opened.
    pub fn appended_records(&self) -> u64 {
        self.appended_records.load(Ordering::Acquire)
    }

    /// Returns true if and only if the writer is poisoned.
    pub fn poisoned(&self) -> bool {
        self.poisoned.load(Ordering::Acquire)
    }

    /// Marks the writer poisoned, for good.
    pub fn set_poisoned(&self) {
        self.poisoned.store(true, Ordering::Release);
        metrics::gauge!(crate::telemetry::catalog::JOURNAL_POISONED).set(1.0);
    }

    /// Returns the number of quarantined regions.
    pub fn quarantined_regions(&self) -> usize {
        self.quarantined.read().len()
    }

    /// Publishes a new durable end of a batch of `records`, and wakes every waiter.
    pub fn publish_durable(&self, end: u64, records: u64) {
        debug_assert!(end >= self.durable_end());
        self.appended_records.fetch_add(records, Ordering::AcqRel);
        {
            let _guard = self.durable_signal.0.lock();
            self.durable_end.store(end, Ordering::Release);
            self.durable_signal.1.notify_all();
        }
        if let Some(listener) = self.listener.read().as_ref() {
            listener(end);
        }
    }

    /// Quarantines the damage of the sealed segment `segment` (see `recovery::quarantine_sealed`)
    /// unless the policy is `stop`; returns true if and only if `offset` now lies in a
    /// quarantined region, so that a read there can go on past it.
    pub fn quarantine_sealed(&self, segment: &SegmentHandle, offset: u64) -> Result<bool, JournalError> {
        if self.policy == CorruptionPolicy::Stop {
            return Ok(false);
        }
        let _one_at_a_time = self.quarantining.lock();
        let covered = |quarantined: &BTreeMap<u64, u64>| {
            quarantined
                .range(..=offset)
                .next_back()
                .is_some_and(|(_, &end)| offset < end)
        };
        if covered(&self.quarantined.read()) {
            return Ok(true);
        }
        let regions =
            super::quarantine::quarantine_sealed(&self.dir, &segment.path, segment.base, self.seed)?;
        let mut quarantined = self.quarantined.write();
        for (start, length) in regions {
            let end = quarantined.entry(start).or_insert(start);
            *end = (*end).max(start + length);
        }
        metrics::gauge!(crate::telemetry::catalog::JOURNAL_QUARANTINED_REGIONS).set(quarantined.len() as f64);
        Ok(covered(&quarantined))
    }

    /// Installs (or, with `None`, removes) the durable-end listener.
    pub fn set_listener(&self, listener: Option<DurableListener>) {
        *self.listener.write() = listener;
    }

    /// Waits until the durable end exceeds `offset` or `deadline` passes; returns the durable
    /// end then.
    pub fn wait_durable_beyond(&self, offset: u64, deadline: Instant) -> u64 {
        let mut guard = self.durable_signal.0.lock();
        loop {
            let end = self.durable_end();
            if end > offset {
                return end;
            }
            if self.durable_signal.1.wait_until(&mut guard, deadline).timed_out() {
                return self.durable_end();
            }
        }
    }
}

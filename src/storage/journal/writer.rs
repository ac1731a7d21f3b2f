//! The single writer: encodes a batch (its entries, then a batch mark), writes it with one
//! call, makes it durable with one fdatasync, and seals and rolls segments between batches.
//!
//! Invariants:
//! - A failed write leaves no partial record: the segment is cut back to its length before
//!   the batch (and a torn tail after a crash is truncated by recovery anyway).
//! - A failed fdatasync poisons the writer for good: the kernel may have dropped the dirty
//!   pages, so a later successful fsync would prove nothing.
//! - Segments roll only between batches, after the previous batch is durable, so only the
//!   last segment can ever have a torn tail.
//! - The active segment is preallocated (zeros, which read as end-of-log) so that appends
//!   do not grow the file and an fdatasync has no size change to commit.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use super::config::JournalConfig;
use super::error::JournalError;
use super::faults::Faults;
use super::format::{self, JournalId};
use super::layout::{self, SEGMENT_HEADER_BYTES, SEGMENT_TRAILER_BYTES, Trailer};
use super::segment::{self, SegmentHandle};
use super::shared::Shared;
use crate::telemetry::catalog;

/// File position of the record-area position `position` (the header comes first).
const fn file_position(position: u64) -> u64 {
    SEGMENT_HEADER_BYTES as u64 + position
}

/// The journal's only writer, behind a lock shared by the group-commit thread and a lone
/// appender (see `Journal::append`).
pub struct Writer {
    dir: PathBuf,
    config: JournalConfig,
    shared: Arc<Shared>,
    file: File,
    path: PathBuf,
    segment_base: u64,
    /// Bytes of records in the active segment.
    segment_len: u64,
    id: JournalId,
    /// Entries in the active segment, for its trailer.
    segment_entries: u64,
    /// CRC chain over the active segment's records, for its trailer.
    segment_chain: u32,
    buffer: Vec<u8>,
    poisoned: Option<String>,
    faults: Arc<dyn Faults>,
    /// The spare segment being prepared in the background for the next roll.
    spare: Option<JoinHandle<Result<PathBuf, JournalError>>>,
    /// Whether a spare may be prepared: only while the active segment's own reservation
    /// succeeded (space is plentiful).
    spare_allowed: bool,
}

impl Drop for Writer {
    fn drop(&mut self) {
        // Do not leave a thread writing into the directory after the journal is closed.
        if let Some(spare) = self.spare.take() {
            let _ = spare.join();
        }
    }
}

impl Writer {
    /// Refuses all further appends, and stops readers from waiting for bytes that will never
    /// become durable.
    fn poison(&mut self, reason: String) {
        self.shared.set_written_end(self.shared.durable_end());
        self.shared.set_poisoned();
        self.poisoned = Some(reason);
    }

    /// Starts preparing the next segment once the active one is half full: early enough to be
    /// ready at the roll, late enough that a journal does not hold two segments' worth of
    /// space (and write it) before it needs to.
    fn maybe_prepare_spare(&mut self) {
        let half_full = self.segment_len >= self.config.segment_size_bytes / 2;
        if self.spare_allowed && self.spare.is_none() && half_full {
            self.spare = spawn_spare(&self.dir, file_position(self.config.segment_size_bytes));
        }
    }

    /// Waits for any spare being prepared and removes it, freeing its space.
    fn discard_spare(&mut self) {
        if let Some(spare) = self.spare.take() {
            let _ = spare.join();
        }
        segment::remove_spare(&self.dir);
    }
}

/// Starts preparing a spare segment; `None` if no thread could be started (the roll then
/// makes its segment inline).
fn spawn_spare(dir: &Path, len: u64) -> Option<JoinHandle<Result<PathBuf, JournalError>>> {
    let dir = dir.to_owned();
    std::thread::Builder::new()
        .name("stemedb-segment-spare".into())
        .spawn(move || segment::prepare_spare(&dir, len))
        .ok()
}

impl Writer {
    /// Opens the writer at the end of the log. `tail` is the open last segment's `(entries,
    /// chain)` as recovery found them, or `None` when there is no open last segment (none at
    /// all, or the last one is sealed): then a new segment starts at the end.
    pub fn open(
        dir: PathBuf,
        config: JournalConfig,
        shared: Arc<Shared>,
        faults: Arc<dyn Faults>,
        id: JournalId,
        tail: Option<(u64, u32)>,
    ) -> Result<Self, JournalError> {
        let end = shared.durable_end();
        let last = shared.segments.read().last().cloned();
        let (file, path, segment_base, (entries, chain)) = match (last, tail) {
            (Some(handle), Some(tail)) => {
                let file = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(&handle.path)
                    .map_err(|e| JournalError::io("open segment for append", &handle.path, e))?;
                (file, handle.path.clone(), handle.base, tail)
            }
            _ => {
                segment::remove_orphan(&dir, end)?;
                let (file, path) = segment::create_segment(&dir, id, end)?;
                let handle = SegmentHandle::new(end, path.clone(), Arc::clone(&shared.files));
                shared.segments.write().push(Arc::new(handle));
                (file, path, end, (0, 0))
            }
        };
        // A spare left by an earlier run is stale; its space may be needed by the active segment.
        segment::remove_spare(&dir);
        let reserved = segment::preallocate(&file, &path, file_position(config.segment_size_bytes))?;
        Ok(Self {
            segment_len: end - segment_base,
            dir,
            config,
            shared,
            file,
            path,
            segment_base,
            id,
            segment_entries: entries,
            segment_chain: chain,
            buffer: Vec::new(),
            poisoned: None,
            faults,
            spare: None,
            spare_allowed: reserved,
        })
    }

    /// Appends `payloads` durably as one batch; returns the global offset of each.
    pub fn append_batch(&mut self, payloads: &[&[u8]]) -> Result<Vec<u64>, JournalError> {
        let _span = tracing::debug_span!("journal.batch", records = payloads.len()).entered();
        let outcome = self.append_batch_inner(payloads);
        if let Err(error) = &outcome {
            // `poisoned` is a refusal by a writer poisoned before; the failure that poisons it
            // (a failed fdatasync) is `io`.
            let kind = match error {
                JournalError::StorageFull { .. } => "storage_full",
                JournalError::Poisoned { .. } => "poisoned",
                _ => "io",
            };
            metrics::counter!(catalog::JOURNAL_APPEND_ERRORS, "kind" => kind).increment(1);
        }
        outcome
    }

    fn append_batch_inner(&mut self, payloads: &[&[u8]]) -> Result<Vec<u64>, JournalError> {
        if let Some(reason) = &self.poisoned {
            return Err(JournalError::Poisoned {
                reason: reason.clone(),
            });
        }
        if self.segment_len >= self.config.segment_size_bytes {
            self.roll()?;
        }
        let start = self.segment_base + self.segment_len;
        self.buffer.clear();
        let seed = self.id.seed();
        let mut offsets = Vec::with_capacity(payloads.len());
        let mut chain = self.segment_chain;
        for payload in payloads {
            let at = start + self.buffer.len() as u64;
            offsets.push(at);
            chain = layout::chain(chain, format::encode(payload, at, seed, &mut self.buffer));
        }
        // The mark closes the batch: recovery tells a finished batch by it.
        let entries = u32::try_from(payloads.len()).unwrap_or(u32::MAX);
        let at = start + self.buffer.len() as u64;
        chain = layout::chain(
            chain,
            format::encode_mark(start, entries, at, seed, &mut self.buffer),
        );
        let written = (self.faults.before_write(&self.path, self.buffer.len())).and_then(|()| {
            self.file
                .write_all_at(&self.buffer, file_position(self.segment_len))
        });
        if let Err(error) = written {
            self.shared.set_written_end(start);
            if error.kind() == std::io::ErrorKind::StorageFull {
                // The spare's reservation is the first space to give back to the log.
                self.discard_spare();
            }
            // Cut back whatever part of the batch reached the file (durably, so that no record
            // of the failed batch can reappear after a crash), then restore the preallocation
            // if there is room again.
            if let Err(cut) = self
                .file
                .set_len(file_position(self.segment_len))
                .and_then(|()| self.file.sync_all())
            {
                self.poison(format!("could not remove a failed write: {cut}"));
            } else {
                let _ = segment::preallocate(
                    &self.file,
                    &self.path,
                    file_position(self.config.segment_size_bytes),
                );
            }
            return Err(JournalError::io("write", &self.path, error));
        }
        let end = start + self.buffer.len() as u64;
        self.shared.set_written_end(end);
        let syncing = Instant::now();
        if let Err(error) = self
            .faults
            .before_sync(&self.path)
            .and_then(|()| self.file.sync_data())
        {
            // Never mapped to StorageFull: after a failed fdatasync the journal is poisoned
            // for good, so "retry when space returns" would be a lie.
            let error = JournalError::Io {
                op: "fdatasync",
                path: self.path.clone(),
                source: error,
            };
            self.poison(error.to_string());
            return Err(error);
        }
        self.segment_len += self.buffer.len() as u64;
        self.segment_entries += payloads.len() as u64;
        self.segment_chain = chain;
        metrics::histogram!(catalog::JOURNAL_FSYNC_SECONDS).record(syncing.elapsed());
        metrics::histogram!(catalog::JOURNAL_BATCH_RECORDS).record(payloads.len() as f64);
        metrics::counter!(catalog::JOURNAL_APPENDS).increment(payloads.len() as u64);
        metrics::counter!(catalog::JOURNAL_APPEND_BYTES).increment(self.buffer.len() as u64);
        self.shared.publish_durable(end, payloads.len() as u64);
        self.maybe_prepare_spare();
        Ok(offsets)
    }

    /// Seals the active segment and starts a new one at the current end. The old one is
    /// already durable; its unused preallocated space is replaced by its trailer (durably),
    /// so that every segment but the last ends with a trailer exactly where the next begins.
    fn roll(&mut self) -> Result<(), JournalError> {
        let base = self.segment_base + self.segment_len;
        let trailer = Trailer {
            entries: self.segment_entries,
            end: base,
            sealed_ms: crate::protocol::now_ms(),
            chain: self.segment_chain,
        };
        let trailer_at = file_position(self.segment_len);
        self.file
            .write_all_at(&trailer.encode(self.id.seed()), trailer_at)
            .and_then(|()| self.file.set_len(trailer_at + SEGMENT_TRAILER_BYTES as u64))
            .and_then(|()| self.file.sync_all())
            .map_err(|e| JournalError::io("seal rolled segment", &self.path, e))?;
        // A file already at `base` can only be left by an earlier roll that failed part-way
        // (this writer holds the directory lock, and nothing durable lies at or past `base`).
        segment::remove_orphan(&self.dir, base)?;
        let spare = self.spare.take().map(JoinHandle::join);
        let (file, path, reserved) = match spare {
            Some(Ok(Ok(spare))) => {
                let (file, path) = segment::install_spare(&self.dir, &spare, self.id, base)?;
                (file, path, true)
            }
            // No spare (its preparation failed or could not start): make the segment here.
            _ => {
                let (file, path) = segment::create_segment(&self.dir, self.id, base)?;
                let reserved =
                    segment::preallocate(&file, &path, file_position(self.config.segment_size_bytes))?;
                (file, path, reserved)
            }
        };
        // Reserve the next spare only while space is plentiful: when even this segment could
        // not be reserved, a spare would only take space the log needs now.
        self.spare_allowed = reserved;
        let handle = SegmentHandle::new(base, path.clone(), Arc::clone(&self.shared.files));
        self.shared.segments.write().push(Arc::new(handle));
        self.file = file;
        self.path = path;
        self.segment_base = base;
        self.segment_len = 0;
        self.segment_entries = 0;
        self.segment_chain = 0;
        Ok(())
    }
}

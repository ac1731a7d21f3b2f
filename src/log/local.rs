//! [`LocalJournal`]: the engine's own log, the write-ahead journal in `<data_dir>/journal`,
//! behind the log seam.

use std::path::Path;
use std::sync::Arc;

use super::{
    Append, AppendError, Collect, EXTERNAL_LOG_ID_FILE, Log, LogBackend, LogError, LogReader, OpenedLog,
    Outgoing, QueueUse, RangeRead, ReadError, Rebuild,
};
use crate::storage::journal::{
    self, AppendReply, DurableListener, Faults, Journal, JournalConfig, JournalError, JournalReader,
    NoFaults, OpenOptions,
};
use crate::telemetry::catalog;

/// Subdirectory of the data directory that holds the journal.
pub const JOURNAL_DIR: &str = "journal";

/// The local write-ahead journal as a node's log: group commit and fdatasync on this machine.
/// The default backend of [`Node::start`](crate::node::Node::start).
pub struct LocalJournal {
    config: JournalConfig,
    faults: Arc<dyn Faults>,
    /// Opened early, to decide a rebuild; reused by `open`.
    opened: Option<Journal>,
}

impl LocalJournal {
    /// A journal with `config`, in `<data_dir>/journal`.
    pub fn new(config: JournalConfig) -> Self {
        Self {
            config,
            faults: Arc::new(NoFaults),
            opened: None,
        }
    }

    /// The journal with I/O faults injected into its writes and fdatasyncs: for
    /// fault-injection tests and the chaos arena, never for serving.
    #[cfg(feature = "faults")]
    pub fn with_faults(mut self, faults: Arc<dyn Faults>) -> Self {
        self.faults = faults;
        self
    }

    /// Opens the journal of `data_dir`, never cutting below the state's ingest `cursor`.
    fn open_journal(&self, data_dir: &Path, cursor: u64) -> Result<Journal, LogError> {
        let options = OpenOptions {
            durable_floor: cursor,
            faults: Arc::clone(&self.faults),
        };
        match Journal::open_with(data_dir.join(JOURNAL_DIR), self.config.clone(), options) {
            Err(JournalError::CursorBeyondEnd { end, .. }) if cursor > end => {
                Err(LogError::StateAhead { cursor, end })
            }
            other => Ok(other?),
        }
    }
}

impl LogBackend for LocalJournal {
    fn prepare(&mut self, data_dir: &Path) -> Result<(), LogError> {
        if data_dir.join(EXTERNAL_LOG_ID_FILE).exists() {
            return Err(LogError::WrongKind {
                dir: data_dir.to_owned(),
                found: "a replicated stream",
                wanted: "a local journal",
            });
        }
        Ok(())
    }

    fn rebuild(&mut self, data_dir: &Path, cursor: u64) -> Result<Rebuild, LogError> {
        let journal = self.open_journal(data_dir, cursor)?;
        let (start, quarantined) = (journal.start(), journal.quarantined_count());
        self.opened = Some(journal);
        Ok(if start == 0 && quarantined == 0 {
            Rebuild::Allowed
        } else {
            Rebuild::Refused { start, quarantined }
        })
    }

    fn open(mut self: Box<Self>, data_dir: &Path, cursor: u64) -> Result<OpenedLog, LogError> {
        let journal = match self.opened.take() {
            Some(journal) => journal,
            None => self.open_journal(data_dir, cursor)?,
        };
        Ok(OpenedLog {
            log: Arc::new(journal.clone()),
            append: Arc::new(journal.clone()),
            guard: Box::new(journal),
        })
    }
}

impl LogReader for JournalReader {
    fn read_range(
        &mut self,
        from: u64,
        max_records: usize,
        max_bytes: usize,
    ) -> Result<RangeRead, ReadError> {
        JournalReader::read_range(self, from, max_records, max_bytes).map_err(|error| match error {
            journal::ReadError::Corrupt { offset, defect } => ReadError::Corrupt {
                position: offset,
                source: Box::new(defect),
            },
            journal::ReadError::BadOffset { offset, reason } => ReadError::Unreadable {
                position: offset,
                reason,
            },
            journal::ReadError::Io(error) => ReadError::Transient(Box::new(error)),
        })
    }
}

impl Collect for Journal {
    fn cursor(&self, name: &str) -> Option<u64> {
        Journal::cursor(self, name)
    }

    fn set_cursor(&self, name: &str, position: u64) -> Result<(), LogError> {
        Ok(Journal::set_cursor(self, name, position)?)
    }

    fn collect_garbage(&self) -> Result<usize, LogError> {
        Ok(Journal::collect_garbage(self)?)
    }

    fn collect_step_bytes(&self) -> u64 {
        self.config().segment_size_bytes
    }
}

impl Log for Journal {
    fn durable_end(&self) -> u64 {
        Journal::durable_end(self)
    }

    fn reader(&self) -> Box<dyn LogReader> {
        Box::new(Journal::reader(self))
    }

    fn set_durable_listener(&self, listener: DurableListener) {
        Journal::set_durable_listener(self, listener);
    }

    fn clear_durable_listener(&self) {
        Journal::clear_durable_listener(self);
    }

    fn admitted_only(&self) -> bool {
        // Only this node's admission appends to its journal.
        true
    }

    fn collector(&self) -> Option<&dyn Collect> {
        Some(self)
    }

    fn records_behind(&self, _cursor: u64, applied_since_start: u64) -> u64 {
        // Offsets are bytes here: count records appended against records applied instead.
        self.appended_records().saturating_sub(applied_since_start)
    }

    fn fault(&self) -> Option<String> {
        // A poisoned journal still reads: its faults show in refused appends, not here.
        None
    }

    fn record_gauges(&self) {
        metrics::gauge!(catalog::JOURNAL_SEGMENTS).set(self.segment_count() as f64);
        metrics::gauge!(catalog::JOURNAL_DISK_BYTES).set(self.disk_bytes() as f64);
        metrics::gauge!(catalog::JOURNAL_QUARANTINED_REGIONS).set(self.quarantined_regions() as f64);
        metrics::gauge!(catalog::JOURNAL_POISONED).set(f64::from(u8::from(self.is_poisoned())));
    }
}

impl Append for Journal {
    fn record_bytes_max(&self) -> usize {
        self.config().record_bytes_max
    }

    fn try_append(&self, records: Vec<Outgoing>) -> Result<(), AppendError> {
        // The journal writes one submission's records in order in one group: a record that
        // depends on an earlier one is never durable without it. Each reply takes the
        // journal's outcome itself ([`Reply`] is an [`Acknowledge`]): no wrapper, no new box.
        let appends = records
            .into_iter()
            .map(|outgoing| (outgoing.payload, outgoing.reply as AppendReply))
            .collect();
        Ok(self.try_append_batch(appends)?)
    }

    fn queue_use(&self) -> QueueUse {
        let (entries, bytes, bytes_max) = Journal::queue_use(self);
        QueueUse {
            entries,
            bytes,
            bytes_max,
        }
    }
}

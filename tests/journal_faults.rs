//! Injected I/O failures: a failed fdatasync poisons the journal (nothing more is
//! acknowledged, reads go on, reopening recovers); a failed write (EIO or disk full) leaves no
//! partial record and does not poison, so appends resume when the fault clears.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use stemedb::storage::journal::{Faults, Journal, JournalConfig, JournalError, OpenOptions, ReadOutcome};
use tempfile::TempDir;

fn open_faulty(dir: &Path, switches: &Arc<Switches>) -> Result<Journal, JournalError> {
    let options = OpenOptions {
        faults: switches.clone(),
        ..OpenOptions::default()
    };
    Journal::open_with(dir, JournalConfig::default(), options)
}

#[derive(Debug, Default)]
struct Switches {
    fail_sync: AtomicBool,
    fail_write_enospc: AtomicBool,
}

impl Faults for Switches {
    fn before_write(&self, _segment: &Path, _len: usize) -> io::Result<()> {
        if self.fail_write_enospc.load(Ordering::SeqCst) {
            return Err(io::Error::from(io::ErrorKind::StorageFull));
        }
        Ok(())
    }

    fn before_sync(&self, _segment: &Path) -> io::Result<()> {
        if self.fail_sync.load(Ordering::SeqCst) {
            return Err(io::Error::other("injected EIO"));
        }
        Ok(())
    }
}

fn payload_at(journal: &Journal, offset: u64) -> Vec<u8> {
    match journal.reader().read(offset).unwrap() {
        ReadOutcome::Record { payload, .. } => payload,
        other => panic!("no record at {offset}: {other:?}"),
    }
}

#[test]
fn a_failed_fsync_poisons_the_journal_until_reopened() {
    let dir = TempDir::new().unwrap();
    let switches = Arc::new(Switches::default());
    let journal = open_faulty(dir.path(), &switches).unwrap();
    let first = journal.append(b"durable".to_vec()).unwrap();
    switches.fail_sync.store(true, Ordering::SeqCst);
    let error = journal.append(b"not acknowledged".to_vec()).unwrap_err();
    assert!(
        matches!(error, JournalError::Io { op: "fdatasync", .. }),
        "{error}"
    );
    switches.fail_sync.store(false, Ordering::SeqCst);
    // Even with the fault gone, nothing more is acknowledged: retrying fsync proves nothing.
    let error = journal.append(b"still refused".to_vec()).unwrap_err();
    assert!(matches!(error, JournalError::Poisoned { .. }), "{error}");
    assert_eq!(payload_at(&journal, first), b"durable", "reads keep working");
    drop(journal);
    let journal = Journal::open(dir.path(), JournalConfig::default()).unwrap();
    assert_eq!(payload_at(&journal, first), b"durable");
    let next = journal.append(b"after reopen".to_vec()).unwrap();
    assert_eq!(payload_at(&journal, next), b"after reopen");
}

#[test]
fn a_failed_write_leaves_nothing_and_appends_resume() {
    let dir = TempDir::new().unwrap();
    let switches = Arc::new(Switches::default());
    let journal = open_faulty(dir.path(), &switches).unwrap();
    let first = journal.append(b"one".to_vec()).unwrap();
    let end = journal.durable_end();
    switches.fail_write_enospc.store(true, Ordering::SeqCst);
    for _ in 0..3 {
        let error = journal.append(b"no room".to_vec()).unwrap_err();
        assert!(matches!(error, JournalError::StorageFull { .. }), "{error}");
    }
    assert_eq!(journal.durable_end(), end);
    assert_eq!(journal.reader().read(end).unwrap(), ReadOutcome::EndOfLog);
    switches.fail_write_enospc.store(false, Ordering::SeqCst);
    let second = journal.append(b"two".to_vec()).unwrap();
    assert_eq!(second, end, "the failed appends left no bytes behind");
    assert_eq!(
        (payload_at(&journal, first), payload_at(&journal, second)),
        (b"one".to_vec(), b"two".to_vec())
    );
}

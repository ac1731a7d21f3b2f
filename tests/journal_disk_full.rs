//! Disk full, for real: on a 1 MiB tmpfs the journal is appended to until the kernel returns
//! ENOSPC. The failing append reports `StorageFull` (not `Poisoned` or `Io`), later appends
//! keep reporting `StorageFull` while the disk stays full, every acknowledged record still
//! reads back, a reopened journal holds exactly the acknowledged records and not a byte of the
//! failed ones, and once a filler file is deleted appends succeed again and read back.
//!
//! Mounting a tmpfs needs root (CAP_SYS_ADMIN); where `mount` fails the test says so on stderr
//! and returns without checking anything.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use stemedb::storage::journal::layout::SEGMENT_HEADER_BYTES;
use stemedb::storage::journal::{Journal, JournalConfig, JournalError, ReadOutcome, format};
use stemedb_sim::Tmpfs;
use tempfile::TempDir;

/// Size of the tmpfs, as given to `mount -o size=`.
const TMPFS_SIZE: &str = "1m";
/// Bytes of the file that occupies space until the test frees it.
const FILLER_BYTES: usize = 256 * 1024;
/// Payload bytes of each record.
const RECORD_BYTES: usize = 4096;
/// More appends than a 1 MiB disk can hold: reaching this many means ENOSPC never came.
const APPENDS_MAX: usize = 1024;

fn config() -> JournalConfig {
    JournalConfig {
        // Several segments fit on the disk, so rolls happen before it is full.
        segment_size_bytes: 128 * 1024,
        ..JournalConfig::default()
    }
}

/// The payload of record `n`: distinct per record.
fn payload(n: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; RECORD_BYTES];
    for (i, byte) in bytes.iter_mut().enumerate() {
        *byte = (i.wrapping_mul(31) ^ n.wrapping_mul(131)) as u8;
    }
    bytes[..8].copy_from_slice(&(n as u64).to_le_bytes());
    bytes
}

fn assert_storage_full(result: Result<u64, JournalError>, what: &str) {
    match result {
        Err(JournalError::StorageFull { .. }) => {}
        other => panic!("{what}: expected StorageFull, got {other:?}"),
    }
}

fn assert_reads_back(journal: &Journal, acked: &[(u64, usize)]) {
    let mut reader = journal.reader();
    for &(offset, n) in acked {
        match reader.read(offset).unwrap() {
            ReadOutcome::Record {
                offset: at,
                payload: bytes,
                ..
            } => {
                assert_eq!(at, offset, "record {n}");
                assert!(
                    bytes == payload(n),
                    "record {n} at {offset} reads back different bytes"
                );
            }
            other => panic!("record {n} at {offset} reads back as {other:?}"),
        }
    }
}

/// Walks the log from offset 0 and asserts it holds exactly `acked`, contiguous, then ends.
fn assert_log_is_exactly(journal: &Journal, acked: &[(u64, usize)]) {
    let mut reader = journal.reader();
    let mut at = 0;
    for &(offset, n) in acked {
        // Only batch marks lie between records; the reader steps over them.
        match reader.read(at).unwrap() {
            ReadOutcome::Record {
                offset: found,
                payload: bytes,
                next,
            } => {
                assert_eq!(found, offset, "the log has another record before record {n}");
                assert!(
                    bytes == payload(n),
                    "record {n} at {at} reads back different bytes"
                );
                assert_eq!(next, offset + format::record_len(RECORD_BYTES) as u64);
                at = next;
            }
            other => panic!("record {n} at {at} reads back as {other:?}"),
        }
    }
    match reader.read(at) {
        Ok(ReadOutcome::EndOfLog) => {}
        other => panic!("after the acknowledged records, at {at}: {other:?}"),
    }
    // The last batch's mark closes the log.
    assert_eq!(journal.durable_end(), at + format::MARK_BYTES as u64);
}

/// Asserts that the last segment file in `dir` holds nothing but zeros at or past global
/// offset `end` (zeros are preallocated space and read as end-of-log): no byte of a failed
/// append remains. (Sealed segments end with their trailer, before `end`.)
fn assert_only_zeros_past(dir: &Path, end: u64) {
    let mut entries: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap()).collect();
    entries.retain(|e| e.path().extension().is_some_and(|x| x == "wal"));
    entries.sort_by_key(|e| e.path());
    for entry in entries.into_iter().rev().take(1) {
        let path = entry.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let Some(base) = name
            .strip_suffix(".wal")
            .and_then(|digits| digits.parse::<u64>().ok())
        else {
            continue;
        };
        let bytes = std::fs::read(&path).unwrap();
        let from =
            (SEGMENT_HEADER_BYTES + usize::try_from(end.saturating_sub(base)).unwrap()).min(bytes.len());
        if let Some(at) = bytes[from..].iter().position(|&b| b != 0) {
            panic!(
                "{name}: byte {} lies past the end of the log ({end}) and is not zero",
                from + at
            );
        }
    }
}

/// Appends until the disk is full; returns the (offset, record number) of every acknowledged
/// append, after checking that the failure is `StorageFull`.
fn fill(journal: &Journal) -> Vec<(u64, usize)> {
    let mut acked = Vec::new();
    for n in 0..APPENDS_MAX {
        match journal.append(payload(n)) {
            Ok(offset) => acked.push((offset, n)),
            Err(JournalError::StorageFull { path }) => {
                eprintln!("ENOSPC after {} records, writing {}", acked.len(), path.display());
                return acked;
            }
            Err(other) => panic!("append {n} on a filling disk: expected StorageFull, got {other:?}"),
        }
    }
    panic!("{APPENDS_MAX} appends of {RECORD_BYTES} bytes fitted on a {TMPFS_SIZE} tmpfs");
}

#[test]
fn a_full_disk_fails_appends_cleanly_and_appends_resume_once_space_is_freed() {
    let dir = TempDir::new().unwrap();
    let Some(tmpfs) = Tmpfs::mount(dir.path(), TMPFS_SIZE) else {
        eprintln!("disk-full test skipped: mounting a tmpfs was impossible (it needs root)");
        return;
    };
    eprintln!("disk-full test ran on: tmpfs size={TMPFS_SIZE}");
    let filler = tmpfs.path().join("filler");
    std::fs::write(&filler, vec![0xAB; FILLER_BYTES]).unwrap();
    let journal_dir = tmpfs.path().join("journal");

    let journal = Journal::open(&journal_dir, config()).unwrap();
    let mut acked = fill(&journal);
    assert!(
        acked.len() > 10,
        "the disk filled after only {} records",
        acked.len()
    );
    assert_reads_back(&journal, &acked);
    let end = journal.durable_end();
    for attempt in 0..3 {
        assert_storage_full(
            journal.append(payload(APPENDS_MAX)),
            &format!("retry {attempt} while full"),
        );
    }
    assert_eq!(journal.durable_end(), end, "failed appends moved the durable end");
    assert_only_zeros_past(&journal_dir, end);
    assert_reads_back(&journal, &acked);
    drop(journal);

    // Reopened while still full: exactly the acknowledged records, nothing of the failures.
    let journal = Journal::open(&journal_dir, config()).unwrap();
    assert_eq!(journal.quarantined_count(), 0);
    assert_log_is_exactly(&journal, &acked);
    assert_only_zeros_past(&journal_dir, end);
    assert_storage_full(
        journal.append(payload(APPENDS_MAX)),
        "append after reopening while full",
    );

    std::fs::remove_file(&filler).unwrap();
    let resumed_from = acked.len();
    for n in resumed_from..resumed_from + 32 {
        let offset = journal
            .append(payload(n))
            .unwrap_or_else(|e| panic!("append {n} after freeing space: {e}"));
        acked.push((offset, n));
    }
    assert_eq!(acked[resumed_from].0, end, "appends resume where the log ended");
    assert_reads_back(&journal, &acked);
    assert_log_is_exactly(&journal, &acked);
    drop(journal);

    let journal = Journal::open(&journal_dir, config()).unwrap();
    assert_eq!(journal.quarantined_count(), 0);
    assert_log_is_exactly(&journal, &acked);
    assert_only_zeros_past(&journal_dir, journal.durable_end());
    drop(journal);
    drop(tmpfs);
}

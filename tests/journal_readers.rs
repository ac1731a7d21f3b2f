#![allow(clippy::unwrap_used, clippy::expect_used)]

//! Reading the journal (format v3) and its cursors: readers follow segment rolls, tell the end
//! of the log and refuse offsets inside a record; a reader made before a roll reads the new
//! segment; cursors persist across reopening and cannot pass the durable end; garbage
//! collection under byte retention removes only segments below every cursor that no reader
//! holds, and the default retention removes nothing; empty and oversized payloads never reach
//! the log; a second journal on a directory is refused; a durability wait wakes on the commit
//! and honours its deadline. Every append of a lone appender is its own batch, closed by a
//! batch mark, which the log's offsets and its durable end account for.

use stemedb_testkit as common;

use common::journal::{payload, small_segments};

use common::journal::walk;
use stemedb::storage::journal::{Journal, JournalConfig, JournalError, ReadOutcome, Retention, format};
use tempfile::TempDir;

/// Bytes of a batch mark, which follows every entry a lone appender writes.
const MARK: u64 = format::MARK_BYTES as u64;

fn test_config() -> JournalConfig {
    JournalConfig {
        segment_size_bytes: 64 * 1024,
        record_bytes_max: 1024,
        group_commit_batch_bytes_max: 4096,
        ..JournalConfig::default()
    }
}

#[test]
fn readers_follow_segment_rolls_and_tell_end_of_log() {
    let dir = TempDir::new().unwrap();
    let journal = Journal::open(dir.path(), small_segments()).unwrap();
    let mut reader = journal.reader();
    assert_eq!(reader.read(0).unwrap(), ReadOutcome::EndOfLog);
    let offsets: Vec<u64> = (0..200).map(|n| journal.append(payload(n)).unwrap()).collect();
    assert!(journal.segment_count() >= 4);
    for (n, &offset) in offsets.iter().enumerate() {
        match reader.read(offset).unwrap() {
            ReadOutcome::Record { payload: p, .. } => assert_eq!(p, payload(n)),
            other => panic!("record {n} at {offset}: {other:?}"),
        }
    }
    assert_eq!(walk(&journal, 0).len(), 200);
    assert!(
        reader.read(offsets[5] + 1).is_err(),
        "an offset inside a record is refused"
    );
}

#[test]
fn cursors_persist_and_garbage_collection_spares_held_segments() {
    let dir = TempDir::new().unwrap();
    let config = JournalConfig {
        retention: Retention::Bytes { bytes_min: 0 },
        ..small_segments()
    };
    let journal = Journal::open(dir.path(), config.clone()).unwrap();
    let offsets: Vec<u64> = (0..300).map(|n| journal.append(payload(n)).unwrap()).collect();
    assert_eq!(
        journal.collect_garbage().unwrap(),
        0,
        "no cursor, nothing removed"
    );
    journal.set_cursor("ingest", offsets[250]).unwrap();
    let mut held = journal.reader();
    assert!(matches!(held.read(0).unwrap(), ReadOutcome::Record { .. }));
    assert_eq!(
        journal.collect_garbage().unwrap(),
        0,
        "a reader holds the first segment"
    );
    drop(held);
    let segments = journal.segment_count();
    let removed = journal.collect_garbage().unwrap();
    assert!(removed >= 2, "removed {removed}");
    assert_eq!(journal.segment_count(), segments - removed);
    assert!(journal.reader().read(0).is_err(), "offset 0 is gone");
    drop(journal);
    let journal = Journal::open(dir.path(), config).unwrap();
    assert_eq!(journal.cursor("ingest"), Some(offsets[250]));
    let tail = walk(&journal, offsets[250]);
    assert_eq!(tail.len(), 50);
    assert_eq!(tail[0], (offsets[250], payload(250)));
    drop(journal);
    // The default retention keeps everything, cursors or not.
    let journal = Journal::open(dir.path(), small_segments()).unwrap();
    journal.set_cursor("ingest", journal.durable_end()).unwrap();
    assert!(journal.segment_count() >= 2);
    assert_eq!(journal.collect_garbage().unwrap(), 0, "retention: all");
    assert_eq!(walk(&journal, offsets[250]).len(), 50);
}

#[test]
fn oversized_and_empty_payloads_are_refused_before_the_log() {
    let dir = TempDir::new().unwrap();
    let config = JournalConfig {
        record_bytes_max: 100,
        group_commit_batch_bytes_max: 100,
        ..test_config()
    };
    let journal = Journal::open(dir.path(), config).unwrap();
    assert!(matches!(
        journal.append(vec![]),
        Err(JournalError::RecordSize { len: 0, max: 100 })
    ));
    assert!(matches!(
        journal.append(vec![1; 101]),
        Err(JournalError::RecordSize { len: 101, .. })
    ));
    assert_eq!(journal.append(vec![1; 100]).unwrap(), 0);
    assert_eq!(journal.durable_end(), format::record_len(100) as u64 + MARK);
}

#[test]
fn a_reader_made_before_a_roll_reads_the_new_segment() {
    let dir = TempDir::new().unwrap();
    let journal = Journal::open(dir.path(), small_segments()).unwrap();
    let mut old = journal.reader();
    let first = journal.append(vec![7; 1500]).unwrap();
    assert!(matches!(old.read(first).unwrap(), ReadOutcome::Record { .. }));
    let offsets: Vec<u64> = (0..12).map(|_| journal.append(vec![7; 1500]).unwrap()).collect();
    assert!(journal.segment_count() >= 3);
    for offset in offsets {
        match old.read(offset).unwrap() {
            ReadOutcome::Record { payload, .. } => assert_eq!(payload, vec![7; 1500]),
            other => panic!("{offset}: {other:?}"),
        }
    }
}

#[test]
fn a_second_journal_on_the_same_directory_is_refused() {
    let dir = TempDir::new().unwrap();
    let first = Journal::open(dir.path(), test_config()).unwrap();
    let error = Journal::open(dir.path(), test_config()).unwrap_err();
    assert!(matches!(error, JournalError::Locked(_)), "{error}");
    drop(first);
    assert!(
        Journal::open(dir.path(), test_config()).is_ok(),
        "the lock dies with the journal"
    );
}

#[test]
fn a_cursor_cannot_pass_the_durable_end() {
    let dir = TempDir::new().unwrap();
    let journal = Journal::open(dir.path(), test_config()).unwrap();
    let end = {
        journal.append(payload(0)).unwrap();
        journal.durable_end()
    };
    journal.set_cursor("c", end).unwrap();
    let error = journal.set_cursor("c", end + 1).unwrap_err();
    assert!(matches!(error, JournalError::CursorBeyondEnd { .. }), "{error}");
    assert_eq!(journal.cursor("c"), Some(end));
}

#[test]
fn waiting_for_durability_wakes_on_the_append_and_honours_the_deadline() {
    use std::time::{Duration, Instant};
    let dir = TempDir::new().unwrap();
    let journal = Journal::open(dir.path(), test_config()).unwrap();
    let end = journal.durable_end();
    // Nothing is appended: the wait ends at its deadline with the end unchanged.
    assert_eq!(
        journal.wait_durable_beyond(end, Instant::now() + Duration::from_millis(20)),
        end
    );
    let appender = {
        let journal = journal.clone();
        std::thread::spawn(move || journal.append(payload(0)).unwrap())
    };
    let reached = journal.wait_durable_beyond(end, Instant::now() + Duration::from_secs(30));
    let offset = appender.join().unwrap();
    assert_eq!(offset, end);
    let entry = format::record_len(payload(0).len()) as u64;
    assert_eq!(reached, end + entry + MARK, "woken by the commit");
    drop(journal);
    let journal = Journal::open(dir.path(), test_config()).unwrap();
    assert_eq!(journal.recovered().record_count(), 1);
}

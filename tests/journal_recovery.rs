//! Journal recovery, byte by byte: a torn write at every position inside the last record is
//! truncated and appends continue; a bit flip at every byte of a middle record, and a zeroed
//! 512-byte sector, are detected every time, quarantined with a report, and every other
//! record stays intact; a record copied to another offset is rejected; a deleted middle
//! segment fails the open. Also: readers across segment rolls, cursors and garbage collection.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use stemedb::storage::journal::{
    CorruptionPolicy, Journal, JournalConfig, JournalError, QUARANTINE_DIR, ReadOutcome, format, scan,
};
use tempfile::TempDir;

/// Small segments (every test's log fits one, and preallocation stays cheap) and small
/// batches, so that the torn-batch window (batch bytes + one record, about 2 KiB here) is
/// short and damage followed by more valid records than that counts as mid-log.
fn test_config() -> JournalConfig {
    JournalConfig {
        segment_size_bytes: 64 * 1024,
        record_bytes_max: 1024,
        group_commit_batch_bytes_max: 1024,
        ..JournalConfig::default()
    }
}

/// Records after which damage is mid-log under [`test_config`]: about 4 KiB of log.
const MANY: usize = 40;

fn payload(n: usize) -> Vec<u8> {
    (0..60 + n % 7).map(|i| (i * 31 + n * 7) as u8).collect()
}

/// Writes `count` records into a fresh journal; returns the directory and their offsets.
fn journal_with(count: usize, config: &JournalConfig) -> (TempDir, Vec<u64>) {
    let dir = TempDir::new().unwrap();
    let journal = Journal::open(dir.path(), config.clone()).unwrap();
    let offsets = (0..count).map(|n| journal.append(payload(n)).unwrap()).collect();
    (dir, offsets)
}

fn only_segment(dir: &Path) -> PathBuf {
    let mut segments: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "wal"))
        .collect();
    segments.sort();
    assert_eq!(segments.len(), 1, "{segments:?}");
    segments.remove(0)
}

/// Copies the single segment of `from` into a fresh directory, with `edit` applied.
fn damaged_copy(from: &Path, edit: impl FnOnce(&mut Vec<u8>)) -> TempDir {
    let segment = only_segment(from);
    let mut bytes = std::fs::read(&segment).unwrap();
    edit(&mut bytes);
    let dir = TempDir::new().unwrap();
    std::fs::write(dir.path().join(segment.file_name().unwrap()), bytes).unwrap();
    dir
}

fn read_record(journal: &Journal, offset: u64) -> Option<(u64, Vec<u8>)> {
    match journal.reader().read(offset).unwrap() {
        ReadOutcome::Record { offset, payload, .. } => Some((offset, payload)),
        ReadOutcome::EndOfLog | ReadOutcome::NotYetDurable => None,
    }
}

/// Walks the whole log from `start`; returns (offset, payload) of every record.
fn walk(journal: &Journal, start: u64) -> Vec<(u64, Vec<u8>)> {
    let mut reader = journal.reader();
    let mut records = Vec::new();
    let mut offset = start;
    loop {
        match reader.read(offset).unwrap() {
            ReadOutcome::Record {
                offset: at,
                payload,
                next,
            } => {
                records.push((at, payload));
                offset = next;
            }
            ReadOutcome::EndOfLog => return records,
            ReadOutcome::NotYetDurable => panic!("nothing is in flight"),
        }
    }
}

#[test]
fn recovery_truncates_a_torn_write_at_every_byte_of_the_last_record() {
    let config = test_config();
    let (dir, offsets) = journal_with(5, &config);
    let last = *offsets.last().unwrap();
    let end = last + format::record_len(payload(4).len()) as u64;
    for cut in last + 1..end {
        let copy = damaged_copy(dir.path(), |bytes| bytes.truncate(cut as usize));
        let journal = Journal::open(copy.path(), config.clone()).unwrap();
        assert_eq!(journal.durable_end(), last, "cut at {cut}");
        let truncated = journal.recovered().truncated_bytes;
        assert!(
            (1..=cut - last).contains(&truncated),
            "cut at {cut}: truncated {truncated}"
        );
        let records = walk(&journal, 0);
        assert_eq!(records.len(), 4, "cut at {cut}");
        for (n, (at, bytes)) in records.iter().enumerate() {
            assert_eq!((*at, bytes), (offsets[n], &payload(n)));
        }
        let again = journal.append(b"after the tear".to_vec()).unwrap();
        assert_eq!(again, last, "appends continue where the valid log ends");
        assert_eq!(read_record(&journal, again).unwrap().1, b"after the tear");
    }
}

#[test]
fn a_bit_flip_at_every_byte_of_a_middle_record_is_quarantined() {
    let config = test_config();
    let (dir, offsets) = journal_with(MANY, &config);
    let (start, end) = (offsets[2], offsets[3]);
    for at in start..end {
        let bit = 1u8 << (at % 8);
        let copy = damaged_copy(dir.path(), |bytes| bytes[at as usize] ^= bit);
        let report = scan(copy.path(), &config).unwrap();
        assert_eq!(report.defects.len(), 1, "flip at {at} detected");
        assert_eq!(report.defects[0].offset, start);
        assert!(!report.defects[0].tail);
        let journal = Journal::open(copy.path(), config.clone()).unwrap();
        assert_eq!(journal.quarantined_count(), 1, "flip at {at}");
        let report_file = copy.path().join(QUARANTINE_DIR).join(format!("{start:020}.json"));
        let text = std::fs::read_to_string(&report_file).unwrap();
        assert!(
            text.contains("\"offset\"") && text.contains("\"reason\""),
            "{text}"
        );
        let quarantined =
            std::fs::read(copy.path().join(QUARANTINE_DIR).join(format!("{start:020}.bin"))).unwrap();
        assert_eq!(quarantined.len() as u64, end - start);
        let records = walk(&journal, 0);
        let expected: Vec<(u64, Vec<u8>)> = (0..MANY)
            .filter(|&n| n != 2)
            .map(|n| (offsets[n], payload(n)))
            .collect();
        assert_eq!(records, expected, "flip at {at}");
        // Reading at the quarantined offset lands on the next good record.
        assert_eq!(read_record(&journal, start).unwrap().0, end);
    }
}

#[test]
fn a_zeroed_sector_is_quarantined_and_records_around_it_survive() {
    let config = test_config();
    let (dir, offsets) = journal_with(40, &config);
    let (zero_from, zero_to) = (1024u64, 1536u64);
    let copy = damaged_copy(dir.path(), |bytes| {
        bytes[zero_from as usize..zero_to as usize].fill(0)
    });
    let journal = Journal::open(copy.path(), config.clone()).unwrap();
    assert_eq!(journal.quarantined_count(), 1);
    let records = walk(&journal, 0);
    let lens: Vec<u64> = (0..40)
        .map(|n| format::record_len(payload(n).len()) as u64)
        .collect();
    let intact: Vec<(u64, Vec<u8>)> = (0..40)
        .filter(|&n| offsets[n] + lens[n] <= zero_from || offsets[n] >= zero_to)
        .map(|n| (offsets[n], payload(n)))
        .collect();
    assert!(intact.len() >= 30);
    assert_eq!(records, intact);
    // Reopening finds the same region again and does not duplicate the report.
    drop(journal);
    let journal = Journal::open(copy.path(), config).unwrap();
    assert_eq!(journal.quarantined_count(), 1);
    assert_eq!(
        std::fs::read_dir(copy.path().join(QUARANTINE_DIR))
            .unwrap()
            .count(),
        2
    );
}

#[test]
fn a_record_copied_to_another_offset_is_rejected() {
    let config = test_config();
    let (dir, offsets) = journal_with(MANY, &config);
    // Records 1 and 4 have equal payload sizes (n % 7), so 1 fits exactly over 4.
    let copy = damaged_copy(dir.path(), |bytes| {
        let one = bytes[offsets[1] as usize..offsets[2] as usize].to_vec();
        bytes[offsets[4] as usize..offsets[4] as usize + one.len()].copy_from_slice(&one);
    });
    let report = scan(copy.path(), &config).unwrap();
    assert_eq!(report.defects.len(), 1);
    assert_eq!(report.defects[0].offset, offsets[4]);
    assert_eq!(report.defects[0].reason, "crc mismatch");
}

#[test]
fn mid_log_corruption_under_the_stop_policy_fails_the_open() {
    let config = JournalConfig {
        corruption_policy: CorruptionPolicy::Stop,
        ..test_config()
    };
    let (dir, offsets) = journal_with(MANY, &config);
    let copy = damaged_copy(dir.path(), |bytes| bytes[offsets[2] as usize + 45] ^= 1);
    let error = Journal::open(copy.path(), config).unwrap_err();
    assert!(
        matches!(error, JournalError::Corruption { offset, .. } if offset == offsets[2]),
        "{error}"
    );
}

fn small_segments() -> JournalConfig {
    JournalConfig {
        segment_size_bytes: 4096,
        ..JournalConfig::default()
    }
}

#[test]
fn a_deleted_middle_segment_fails_the_open() {
    let config = small_segments();
    let (dir, _) = journal_with(300, &config);
    let mut segments: Vec<PathBuf> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    segments.sort();
    assert!(segments.len() >= 4, "{segments:?}");
    std::fs::remove_file(&segments[1]).unwrap();
    let error = Journal::open(dir.path(), config).unwrap_err();
    assert!(matches!(error, JournalError::SegmentGap { .. }), "{error}");
}

#[test]
fn readers_follow_segment_rolls_and_tell_end_of_log() {
    let dir = TempDir::new().unwrap();
    let journal = Journal::open(dir.path(), small_segments()).unwrap();
    let mut reader = journal.reader();
    assert_eq!(reader.read(0).unwrap(), ReadOutcome::EndOfLog);
    let offsets: Vec<u64> = (0..200).map(|n| journal.append(payload(n)).unwrap()).collect();
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
    let config = small_segments();
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
    let removed = journal.collect_garbage().unwrap();
    assert!(removed >= 2, "removed {removed}");
    assert!(journal.reader().read(0).is_err(), "offset 0 is gone");
    drop(journal);
    let journal = Journal::open(dir.path(), config).unwrap();
    assert_eq!(journal.cursor("ingest"), Some(offsets[250]));
    let tail = walk(&journal, offsets[250]);
    assert_eq!(tail.len(), 50);
    assert_eq!(tail[0], (offsets[250], payload(250)));
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
    assert_eq!(journal.durable_end(), format::record_len(100) as u64);
}

#[test]
fn a_reader_made_before_a_roll_reads_the_new_segment() {
    let dir = TempDir::new().unwrap();
    let journal = Journal::open(dir.path(), small_segments()).unwrap();
    let mut old = journal.reader();
    let first = journal.append(vec![7; 1500]).unwrap();
    assert!(matches!(old.read(first).unwrap(), ReadOutcome::Record { .. }));
    let offsets: Vec<u64> = (0..12).map(|_| journal.append(vec![7; 1500]).unwrap()).collect();
    for offset in offsets {
        match old.read(offset).unwrap() {
            ReadOutcome::Record { payload, .. } => assert_eq!(payload, vec![7; 1500]),
            other => panic!("{offset}: {other:?}"),
        }
    }
}

#[test]
fn a_clean_reopen_truncates_nothing() {
    let config = small_segments();
    let (dir, offsets) = journal_with(50, &config);
    let journal = Journal::open(dir.path(), config).unwrap();
    assert_eq!(journal.recovered().truncated_bytes, 0);
    assert!(journal.recovered().report.defects.is_empty());
    assert_eq!(walk(&journal, 0).len(), offsets.len());
}

#[test]
fn a_torn_batch_with_surviving_later_records_is_a_tail_even_under_stop() {
    // Pages of one unacknowledged batch reach the disk in any order: here the middle of the
    // last few records is lost while the final record survives. That is a torn tail, not
    // mid-log corruption, so even the stop policy opens, and a copy of the bytes is kept.
    let config = JournalConfig {
        corruption_policy: CorruptionPolicy::Stop,
        ..test_config()
    };
    let (dir, offsets) = journal_with(MANY, &config);
    let hole = offsets[MANY - 3] as usize + 10;
    let copy = damaged_copy(dir.path(), |bytes| bytes[hole..hole + 100].fill(0));
    let journal = Journal::open(copy.path(), config).unwrap();
    assert_eq!(journal.durable_end(), offsets[MANY - 3]);
    assert_eq!(walk(&journal, 0).len(), MANY - 3);
    let kept: Vec<String> = std::fs::read_dir(copy.path().join(QUARANTINE_DIR))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(
        kept.iter()
            .any(|name| name.starts_with("tail-") && name.ends_with(".bin")),
        "{kept:?}"
    );
}

#[test]
fn lowering_record_bytes_max_keeps_acknowledged_records() {
    let config = test_config();
    let dir = TempDir::new().unwrap();
    let big = {
        let journal = Journal::open(dir.path(), config.clone()).unwrap();
        journal.append(vec![9; 1000]).unwrap()
    };
    let lower = JournalConfig {
        record_bytes_max: 100,
        group_commit_batch_bytes_max: 100,
        ..config
    };
    let journal = Journal::open(dir.path(), lower).unwrap();
    assert_eq!(journal.recovered().truncated_bytes, 0);
    assert_eq!(read_record(&journal, big).unwrap().1, vec![9; 1000]);
}

#[test]
fn a_cursor_inside_a_quarantined_region_skips_to_its_end() {
    let config = test_config();
    let (dir, offsets) = journal_with(MANY, &config);
    // Damage records 2 and 3 together: one region [offsets[2], offsets[4]).
    let copy = damaged_copy(dir.path(), |bytes| {
        bytes[offsets[2] as usize + 45] ^= 1;
        bytes[offsets[3] as usize + 45] ^= 1;
    });
    let journal = Journal::open(copy.path(), config).unwrap();
    assert_eq!(
        journal.recovered().quarantined,
        vec![(offsets[2], offsets[4] - offsets[2])]
    );
    assert_eq!(
        read_record(&journal, offsets[3]).unwrap(),
        (offsets[4], payload(4))
    );
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
    assert_eq!(
        reached,
        end + format::record_len(payload(0).len()) as u64,
        "woken by the commit"
    );
    drop(journal);
    let journal = Journal::open(dir.path(), test_config()).unwrap();
    assert_eq!(journal.recovered().record_count, 1);
}

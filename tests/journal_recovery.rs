#![allow(clippy::unwrap_used, clippy::expect_used)]

//! Journal recovery (format v3), byte by byte: a torn write at every byte of the last batch
//! (its entry and its batch mark) is truncated and appends continue; a multi-record last
//! batch with a whole sector lost in its middle is cut whole, even under the stop policy, and
//! copied aside first; a bit flip at every byte of a middle record or of its batch mark, and a
//! zeroed 512-byte sector, are detected every time, quarantined with a report, and every other
//! record stays intact; a record copied to another offset is rejected; a deleted middle
//! segment fails the open; lowering `record_bytes_max` keeps longer acknowledged records.
//!
//! Every edit of a segment's bytes goes through [`pos`]: a record's global offset is not its
//! file position, since each segment starts with a header.

use stemedb_testkit as common;

use common::journal::{only_segment, walk};
use std::path::{Path, PathBuf};

use stemedb::storage::journal::layout::{IDENTITY_FILE, SEGMENT_HEADER_BYTES};
use stemedb::storage::journal::{
    CorruptionPolicy, Journal, JournalConfig, JournalError, QUARANTINE_DIR, ReadOutcome, SECTOR_BYTES,
    format, identity, scan,
};
use tempfile::TempDir;

/// Small segments: every edited test log fits one, and preallocation stays cheap.
fn test_config() -> JournalConfig {
    JournalConfig {
        segment_size_bytes: 64 * 1024,
        record_bytes_max: 1024,
        group_commit_batch_bytes_max: 4096,
        ..JournalConfig::default()
    }
}

/// Records in a log where damage near its start is followed by many complete batches.
const MANY: usize = 40;

/// Bytes of a batch mark. One appender appending in turn makes every append its own batch, so
/// each entry is followed by a mark.
const MARK: u64 = format::MARK_BYTES as u64;

fn payload(n: usize) -> Vec<u8> {
    (0..60 + n % 7).map(|i| (i * 31 + n * 7) as u8).collect()
}

/// Bytes of the entry holding `payload(n)`, without its batch mark.
fn entry_len(n: usize) -> u64 {
    format::record_len(payload(n).len()) as u64
}

/// The file position of global offset `offset` in the first segment (base 0), where every
/// edited log of these tests lives: records start after the segment header.
fn pos(offset: u64) -> usize {
    SEGMENT_HEADER_BYTES + usize::try_from(offset).unwrap()
}

/// Writes `count` records into a fresh journal; returns the directory and their offsets.
fn journal_with(count: usize, config: &JournalConfig) -> (TempDir, Vec<u64>) {
    let dir = TempDir::new().unwrap();
    let journal = Journal::open(dir.path(), config.clone()).unwrap();
    let offsets: Vec<u64> = (0..count).map(|n| journal.append(payload(n)).unwrap()).collect();
    for n in 1..count {
        assert_eq!(
            offsets[n],
            offsets[n - 1] + entry_len(n - 1) + MARK,
            "one batch per append"
        );
    }
    (dir, offsets)
}

/// Copies the single segment of `from`, with `edit` applied, and the journal's identity file
/// into a fresh directory.
fn damaged_copy(from: &Path, edit: impl FnOnce(&mut Vec<u8>)) -> TempDir {
    let segment = only_segment(from);
    let mut bytes = std::fs::read(&segment).unwrap();
    edit(&mut bytes);
    let dir = TempDir::new().unwrap();
    std::fs::write(dir.path().join(segment.file_name().unwrap()), bytes).unwrap();
    std::fs::copy(from.join(IDENTITY_FILE), dir.path().join(IDENTITY_FILE)).unwrap();
    dir
}

fn read_record(journal: &Journal, offset: u64) -> Option<(u64, Vec<u8>)> {
    match journal.reader().read(offset).unwrap() {
        ReadOutcome::Record { offset, payload, .. } => Some((offset, payload)),
        ReadOutcome::EndOfLog | ReadOutcome::NotYetDurable => None,
    }
}

/// Names of the files in the quarantine folder of `dir`.
fn quarantine_names(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir.join(QUARANTINE_DIR))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect()
}

#[test]
fn recovery_truncates_a_torn_write_at_every_byte_of_the_last_batch() {
    // Under the stop policy, so that a tear taken for damage to acknowledged data fails too.
    let config = JournalConfig {
        corruption_policy: CorruptionPolicy::Stop,
        ..test_config()
    };
    let (dir, offsets) = journal_with(5, &config);
    let last = offsets[4];
    // The last batch: the last entry, then its mark. A cut anywhere in it, including just
    // before the mark (an entry nobody was told is durable), loses that batch only.
    let end = last + entry_len(4) + MARK;
    let expected: Vec<(u64, Vec<u8>)> = (0..4).map(|n| (offsets[n], payload(n))).collect();
    let mut wrong = Vec::new();
    for cut in last + 1..end {
        let copy = damaged_copy(dir.path(), |bytes| bytes.truncate(pos(cut)));
        let journal = match Journal::open(copy.path(), config.clone()) {
            Ok(journal) if journal.durable_end() == last => journal,
            Ok(journal) => {
                let recovered = journal.recovered();
                wrong.push(format!(
                    "cut at last + {}: end {}, quarantined {:?}",
                    cut - last,
                    journal.durable_end(),
                    recovered.quarantined
                ));
                continue;
            }
            Err(error) => {
                wrong.push(format!("cut at last + {}: {error}", cut - last));
                continue;
            }
        };
        let truncated = journal.recovered().truncated_bytes;
        assert!(
            (1..=cut - last).contains(&truncated),
            "cut at {cut}: truncated {truncated}"
        );
        assert_eq!(journal.quarantined_count(), 0, "cut at {cut}");
        assert_eq!(walk(&journal, 0), expected, "cut at {cut}");
        let again = journal.append(b"after the tear".to_vec()).unwrap();
        assert_eq!(again, last, "appends continue where the valid log ends");
        assert_eq!(read_record(&journal, again).unwrap().1, b"after the tear");
    }
    assert!(
        wrong.is_empty(),
        "tears not cut at the last batch ({last}): {wrong:#?}"
    );
}

#[test]
fn a_bit_flip_at_every_byte_of_a_middle_record_or_its_mark_is_quarantined() {
    let config = test_config();
    let (dir, offsets) = journal_with(MANY, &config);
    let (start, mark, end) = (offsets[2], offsets[2] + entry_len(2), offsets[3]);
    for at in start..end {
        let bit = 1u8 << (at % 8);
        let copy = damaged_copy(dir.path(), |bytes| bytes[pos(at)] ^= bit);
        // A flip in the entry loses the entry; a flip in its mark loses only the mark.
        let (bad, bad_end) = if at < mark { (start, mark) } else { (mark, end) };
        let report = scan(copy.path(), &config).unwrap();
        assert_eq!(report.defects.len(), 1, "flip at {at} detected");
        assert_eq!(report.defects[0].offset, bad, "flip at {at}");
        assert!(!report.defects[0].tail, "flip at {at}");
        let journal = Journal::open(copy.path(), config.clone()).unwrap();
        assert_eq!(journal.quarantined_count(), 1, "flip at {at}");
        assert_eq!(journal.recovered().truncated_bytes, 0, "flip at {at}");
        let report_file = copy.path().join(QUARANTINE_DIR).join(format!("{bad:020}.json"));
        let text = std::fs::read_to_string(&report_file).unwrap();
        assert!(
            text.contains("\"offset\"") && text.contains("\"reason\""),
            "{text}"
        );
        let quarantined =
            std::fs::read(copy.path().join(QUARANTINE_DIR).join(format!("{bad:020}.bin"))).unwrap();
        let original = std::fs::read(only_segment(dir.path())).unwrap();
        let mut flipped = original[pos(bad)..pos(bad_end)].to_vec();
        flipped[pos(at) - pos(bad)] ^= bit;
        assert_eq!(quarantined, flipped, "the damaged bytes are copied aside whole");
        let records = walk(&journal, 0);
        let expected: Vec<(u64, Vec<u8>)> = (0..MANY)
            .filter(|&n| n != 2 || at >= mark)
            .map(|n| (offsets[n], payload(n)))
            .collect();
        assert_eq!(records, expected, "flip at {at}");
        // Reading at the quarantined offset lands on the next good record.
        assert_eq!(read_record(&journal, bad).unwrap().0, end);
    }
}

#[test]
fn a_zeroed_sector_is_quarantined_and_records_around_it_survive() {
    let config = test_config();
    let (dir, offsets) = journal_with(MANY, &config);
    // File positions: a sector as the disk sees it.
    let (zero_from, zero_to) = (2 * SECTOR_BYTES, 3 * SECTOR_BYTES);
    let copy = damaged_copy(dir.path(), |bytes| bytes[zero_from..zero_to].fill(0));
    let journal = Journal::open(copy.path(), config.clone()).unwrap();
    assert_eq!(journal.quarantined_count(), 1);
    assert_eq!(journal.recovered().truncated_bytes, 0);
    let records = walk(&journal, 0);
    let intact: Vec<(u64, Vec<u8>)> = (0..MANY)
        .filter(|&n| pos(offsets[n] + entry_len(n)) <= zero_from || pos(offsets[n]) >= zero_to)
        .map(|n| (offsets[n], payload(n)))
        .collect();
    assert!(
        intact.len() >= MANY - 4 && intact.len() < MANY,
        "{}",
        intact.len()
    );
    assert_eq!(records, intact);
    // Reopening finds the same region again and does not duplicate the report.
    drop(journal);
    let journal = Journal::open(copy.path(), config).unwrap();
    assert_eq!(journal.quarantined_count(), 1);
    assert_eq!(quarantine_names(copy.path()).len(), 2);
}

#[test]
fn a_record_copied_to_another_offset_is_rejected() {
    let config = test_config();
    let (dir, offsets) = journal_with(MANY, &config);
    // Records 1 and 8 have equal payload sizes (n % 7), so entry 1 fits exactly over entry 8.
    assert_eq!(entry_len(1), entry_len(8));
    let copy = damaged_copy(dir.path(), |bytes| {
        let one = bytes[pos(offsets[1])..pos(offsets[1] + entry_len(1))].to_vec();
        bytes[pos(offsets[8])..pos(offsets[8] + entry_len(8))].copy_from_slice(&one);
    });
    let report = scan(copy.path(), &config).unwrap();
    assert_eq!(report.defects.len(), 1);
    assert_eq!(report.defects[0].offset, offsets[8]);
    assert_eq!(report.defects[0].length, entry_len(8));
    assert_eq!(report.defects[0].reason, "crc mismatch");
    assert!(!report.defects[0].tail);
}

#[test]
fn mid_log_corruption_under_the_stop_policy_fails_the_open() {
    let config = JournalConfig {
        corruption_policy: CorruptionPolicy::Stop,
        ..test_config()
    };
    let (dir, offsets) = journal_with(MANY, &config);
    // A payload byte of entry 2 (the header is 44 bytes).
    let copy = damaged_copy(dir.path(), |bytes| bytes[pos(offsets[2]) + 45] ^= 1);
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
        .filter(|p| p.extension().is_some_and(|e| e == "wal"))
        .collect();
    segments.sort();
    assert!(segments.len() >= 4, "{segments:?}");
    std::fs::remove_file(&segments[1]).unwrap();
    let error = Journal::open(dir.path(), config).unwrap_err();
    assert!(matches!(error, JournalError::SegmentGap { .. }), "{error}");
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
    // The sectors of one unacknowledged batch reach the disk in any order: here a whole sector
    // in the middle of a multi-record last batch is lost while its last entry and its mark
    // survive. That is a torn tail, not mid-log corruption, so even the stop policy opens, the
    // whole batch is cut, and a copy of its bytes is kept.
    let config = JournalConfig {
        corruption_policy: CorruptionPolicy::Stop,
        ..test_config()
    };
    let (dir, offsets) = journal_with(MANY, &config);
    let start = offsets[MANY - 1] + entry_len(MANY - 1) + MARK;
    // One appender writes one record per batch, so the batch is written here as the
    // group-commit thread writes a batch of six (entries, then one mark).
    let seed = identity(dir.path()).unwrap().unwrap().seed();
    let (mut batch, mut entries) = (Vec::new(), Vec::new());
    for n in 0..6u8 {
        entries.push(start + batch.len() as u64);
        format::encode(&[n + 1; 300], start + batch.len() as u64, seed, &mut batch);
    }
    format::encode_mark(start, 6, start + batch.len() as u64, seed, &mut batch);
    let batch_end = start + batch.len() as u64;
    let at = pos(start);
    let written = damaged_copy(dir.path(), |bytes| {
        bytes[at..at + batch.len()].copy_from_slice(&batch)
    });
    let whole = Journal::open(written.path(), config.clone()).unwrap();
    assert_eq!(whole.durable_end(), batch_end, "the batch as written is complete");
    let expected: Vec<(u64, Vec<u8>)> = (0..6u8)
        .map(|n| (entries[n as usize], vec![n + 1; 300]))
        .collect();
    assert_eq!(walk(&whole, start), expected);
    drop(whole);
    // Lose the first whole sector after the start of the batch's second entry.
    let lost = (pos(entries[1]) / SECTOR_BYTES + 1) * SECTOR_BYTES;
    assert!(
        lost + SECTOR_BYTES <= pos(entries[5]),
        "the last entry and the mark survive"
    );
    let torn = damaged_copy(written.path(), |bytes| bytes[lost..lost + SECTOR_BYTES].fill(0));
    let segment = std::fs::read(only_segment(torn.path())).unwrap();
    let journal = Journal::open(torn.path(), config).unwrap();
    assert_eq!(journal.durable_end(), start);
    assert_eq!(walk(&journal, 0).len(), MANY);
    let surviving = (0..6)
        .filter(|&n| {
            pos(entries[n]) + format::record_len(300) <= lost || pos(entries[n]) >= lost + SECTOR_BYTES
        })
        .count() as u64;
    assert!(surviving >= 3);
    assert_eq!(journal.recovered().truncated_records, surviving);
    // The whole batch, its mark too (which ends in zero bytes: its entry count's high bytes).
    assert_eq!(journal.recovered().truncated_bytes, batch_end - start);
    let names = quarantine_names(torn.path());
    let bin = names
        .iter()
        .find(|name| name.starts_with(&format!("tail-{start:020}-")) && name.ends_with(".bin"))
        .unwrap_or_else(|| panic!("{names:?}"));
    let kept = std::fs::read(torn.path().join(QUARANTINE_DIR).join(bin)).unwrap();
    assert!(
        kept == segment[pos(start)..pos(batch_end)],
        "copied aside whole first"
    );
    let after = std::fs::read(only_segment(torn.path())).unwrap();
    assert!(
        after[pos(start)..].iter().all(|&b| b == 0),
        "the batch is gone from the log"
    );
    assert_eq!(journal.append(b"next".to_vec()).unwrap(), start);
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
fn a_bit_flip_in_the_mark_of_the_last_acknowledged_batch_is_quarantined_not_cut() {
    // The mark of the last batch is acknowledged data: its entry was acknowledged once it was
    // durable. Where the mark ends a few bytes into a new sector, those bytes are zeros (the
    // high bytes of its entry count), like the preallocated space after them; a flipped bit
    // elsewhere in the mark is still damage, not lost sectors, and must not cut the entry.
    let config = test_config();
    let mut wrong = Vec::new();
    for k in 0..6 {
        let dir = TempDir::new().unwrap();
        let journal = Journal::open(dir.path(), config.clone()).unwrap();
        journal.append(payload(0)).unwrap();
        // The last entry's size puts the end of its mark `k` bytes into the log's third sector.
        let size =
            2 * SECTOR_BYTES + k - pos(journal.durable_end()) - format::record_len(0) - format::MARK_BYTES;
        let last = journal.append(vec![7; size]).unwrap();
        drop(journal);
        let mark = last + format::record_len(size) as u64;
        // Its length, CRC, kind, hash, batch start and entry count.
        for byte in [0, 5, 9, 20, 45, 52] {
            let copy = damaged_copy(dir.path(), |bytes| bytes[pos(mark) + byte] ^= 1);
            let journal = Journal::open(copy.path(), config.clone()).unwrap();
            let recovered = journal.recovered();
            let entry = read_record(&journal, last).map(|(at, bytes)| (at, bytes.len()));
            let quarantined: Vec<u64> = recovered.quarantined.iter().map(|q| q.0).collect();
            if (recovered.truncated_bytes, entry, &quarantined[..]) != (0, Some((last, size)), &[mark][..]) {
                wrong.push(format!(
                    "mark ends {k} bytes into a sector, bit flipped at mark + {byte}: truncated {} \
                     bytes, quarantined {:?}, last entry {entry:?}",
                    recovered.truncated_bytes, recovered.quarantined
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "acknowledged entries cut: {wrong:#?}");
}

#[test]
fn a_cursor_inside_a_quarantined_region_skips_to_its_end() {
    let config = test_config();
    let (dir, offsets) = journal_with(MANY, &config);
    // Damage entry 2, its mark and entry 3 (a payload byte of each): one region from entry 2
    // to the mark of entry 3, which holds the start of entry 3.
    let mark2 = offsets[2] + entry_len(2);
    let copy = damaged_copy(dir.path(), |bytes| {
        for offset in [offsets[2], mark2, offsets[3]] {
            bytes[pos(offset) + 45] ^= 1;
        }
    });
    let journal = Journal::open(copy.path(), config).unwrap();
    let region_end = offsets[3] + entry_len(3);
    assert_eq!(
        journal.recovered().quarantined,
        vec![(offsets[2], region_end - offsets[2])]
    );
    assert_eq!(
        read_record(&journal, offsets[3]).unwrap(),
        (offsets[4], payload(4))
    );
}

//! Sealed segments: opening checks only their headers and trailers, so damage inside one is
//! not seen at open; the first reader that meets it quarantines it there and then (copy aside
//! with a report, as recovery does) and reads on past it, while the `stop` policy reports it.
//! A damaged trailer makes opening scan that one segment. `scan` (behind `stemedb wal
//! verify`) reads every byte and reports a trailer that does not match its records. Segment
//! files are opened on first read, and no more than `OPEN_SEGMENT_FILES_MAX` stay open.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use stemedb_testkit as common;

use common::journal::walk;
use std::path::{Path, PathBuf};

use stemedb::storage::journal::layout::{SEGMENT_HEADER_BYTES, SEGMENT_TRAILER_BYTES};
use stemedb::storage::journal::{
    CorruptionPolicy, Journal, JournalConfig, OPEN_SEGMENT_FILES_MAX, QUARANTINE_DIR, ReadError, ReadOutcome,
    scan,
};
use tempfile::TempDir;

fn config() -> JournalConfig {
    JournalConfig {
        segment_size_bytes: 4096,
        ..JournalConfig::default()
    }
}

fn payload(n: usize) -> Vec<u8> {
    (0..200 + n % 13).map(|i| (i * 17 + n * 31 + 1) as u8).collect()
}

/// Writes `count` records; returns the directory and their offsets.
fn journal_with(count: usize) -> (TempDir, Vec<u64>) {
    let dir = TempDir::new().unwrap();
    let journal = Journal::open(dir.path(), config()).unwrap();
    let offsets = (0..count).map(|n| journal.append(payload(n)).unwrap()).collect();
    (dir, offsets)
}

fn segments(dir: &Path) -> Vec<(u64, PathBuf)> {
    let mut found: Vec<(u64, PathBuf)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "wal"))
        .map(|p| (p.file_stem().unwrap().to_str().unwrap().parse().unwrap(), p))
        .collect();
    found.sort();
    found
}

/// Flips one bit of the payload of the record at `offset`, which must lie in a sealed segment.
fn flip_in_sealed(dir: &Path, offset: u64) {
    let all = segments(dir);
    let (base, path) = all
        .iter()
        .rev()
        .find(|(base, _)| *base <= offset)
        .unwrap()
        .clone();
    assert_ne!(Some(&path), all.last().map(|(_, p)| p), "not in a sealed segment");
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[SEGMENT_HEADER_BYTES + (offset - base) as usize + 60] ^= 0x10;
    std::fs::write(&path, bytes).unwrap();
}

#[test]
fn damage_in_a_sealed_segment_is_quarantined_by_the_first_reader_that_meets_it() {
    let (dir, offsets) = journal_with(120);
    assert!(segments(dir.path()).len() >= 4);
    let victim = 5;
    flip_in_sealed(dir.path(), offsets[victim]);
    let journal = Journal::open(dir.path(), config()).unwrap();
    assert_eq!(
        journal.quarantined_count(),
        0,
        "opening does not read sealed segments"
    );
    assert_eq!(
        journal.recovered().record_count(),
        120,
        "the trailers still count every record"
    );
    let expected: Vec<(u64, Vec<u8>)> = (0..120)
        .filter(|&n| n != victim)
        .map(|n| (offsets[n], payload(n)))
        .collect();
    assert_eq!(walk(&journal, 0), expected, "every other record reads back");
    let report = dir
        .path()
        .join(QUARANTINE_DIR)
        .join(format!("{:020}.json", offsets[victim]));
    assert!(report.exists(), "a report for the damaged record");
    drop(journal);
    // The next open knows the region from its report; reads skip it at once.
    let journal = Journal::open(dir.path(), config()).unwrap();
    assert_eq!(journal.quarantined_count(), 1);
    assert_eq!(walk(&journal, 0), expected);
    // The full scan sees the damage and the trailer that no longer matches.
    let full = scan(dir.path(), &config()).unwrap();
    assert_eq!(full.defects.len(), 1);
    assert_eq!(full.defects[0].offset, offsets[victim]);
    assert_eq!(full.bad_trailers.len(), 1);
}

#[test]
fn under_the_stop_policy_a_reader_reports_damage_in_a_sealed_segment() {
    let (dir, offsets) = journal_with(120);
    flip_in_sealed(dir.path(), offsets[7]);
    let stop = JournalConfig {
        corruption_policy: CorruptionPolicy::Stop,
        ..config()
    };
    let journal = Journal::open(dir.path(), stop).unwrap();
    let error = journal.reader().read(offsets[7]).unwrap_err();
    assert!(
        matches!(error, ReadError::Corrupt { offset, .. } if offset == offsets[7]),
        "{error}"
    );
    assert!(!dir.path().join(QUARANTINE_DIR).exists(), "nothing quarantined");
}

#[test]
fn a_damaged_trailer_makes_opening_scan_that_segment() {
    let (dir, offsets) = journal_with(120);
    let (_, first) = segments(dir.path())[0].clone();
    let mut bytes = std::fs::read(&first).unwrap();
    let at = bytes.len() - SEGMENT_TRAILER_BYTES + 9;
    bytes[at] ^= 1;
    std::fs::write(&first, bytes).unwrap();
    let journal = Journal::open(dir.path(), config()).unwrap();
    assert_eq!(journal.recovered().report.bad_trailers, vec![first]);
    assert_eq!(journal.recovered().record_count(), 120);
    assert_eq!(walk(&journal, 0).len(), offsets.len());
}

#[test]
fn segment_files_open_lazily_and_at_most_a_bounded_number_stay_open() {
    let (dir, offsets) = journal_with(1000);
    let segments = segments(dir.path()).len();
    assert!(segments > 2 * OPEN_SEGMENT_FILES_MAX, "{segments} segments");
    let journal = Journal::open(dir.path(), config()).unwrap();
    assert_eq!(
        journal.open_file_count(),
        0,
        "opening opens no segment file for reading"
    );
    assert_eq!(walk(&journal, 0).len(), offsets.len());
    let open = journal.open_file_count();
    assert!((1..=OPEN_SEGMENT_FILES_MAX).contains(&open), "{open} files open");
    // Readers in two places at once share the cache, and it stays bounded.
    let (mut early, mut late) = (journal.reader(), journal.reader());
    for (a, b) in offsets.iter().zip(offsets.iter().rev()) {
        assert!(matches!(early.read(*a).unwrap(), ReadOutcome::Record { .. }));
        assert!(matches!(late.read(*b).unwrap(), ReadOutcome::Record { .. }));
        assert!(journal.open_file_count() <= OPEN_SEGMENT_FILES_MAX);
    }
}

//! Shared by the journal tests: the seed of seeded runs, the segment files of a directory, and
//! a walk of the whole log through the reader.

use std::path::{Path, PathBuf};

use stemedb::storage::journal::{Journal, ReadOutcome};

/// The seed of a seeded test: `STEMEDB_TEST_SEED` if set, else the clock; printed, so that a
/// failure can be replayed.
pub fn test_seed() -> u64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    let seed = std::env::var("STEMEDB_TEST_SEED").map_or(now.as_nanos() as u64, |s| s.parse().unwrap());
    eprintln!("STEMEDB_TEST_SEED={seed}");
    seed
}

/// The segment files of the journal in `dir`, in offset order.
pub fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut segments: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "wal"))
        .collect();
    segments.sort();
    segments
}

/// The one segment file of the journal in `dir`; fails the test if there are several.
pub fn only_segment(dir: &Path) -> PathBuf {
    let mut segments = segment_files(dir);
    assert_eq!(segments.len(), 1, "the log must fit one segment: {segments:?}");
    segments.remove(0)
}

/// Walks the log from `start` to its end with `read`, entry by entry; returns every entry as
/// (offset, payload). Nothing may be in flight.
pub fn walk(journal: &Journal, start: u64) -> Vec<(u64, Vec<u8>)> {
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

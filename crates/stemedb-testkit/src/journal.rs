//! Shared by the journal and state tests: the seed of seeded runs, small segments and sample
//! payloads, the segment files of a directory, a walk of the whole log through the reader, and
//! records laid end to end as the ingest reads them.

use std::path::{Path, PathBuf};

use stemedb::storage::journal::{Journal, JournalConfig, ReadOutcome};
use stemedb::storage::state::IngestRecord;

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

/// Segments small enough that a few hundred records fill several.
pub fn small_segments() -> JournalConfig {
    JournalConfig {
        segment_size_bytes: 4096,
        ..JournalConfig::default()
    }
}

/// Payload `n`: 60 to 66 bytes that differ from payload to payload.
pub fn payload(n: usize) -> Vec<u8> {
    (0..60 + n % 7).map(|i| (i * 31 + n * 7) as u8).collect()
}

/// `payloads` as the ingest reads them: laid end to end from `offset`, each record taking
/// `header_bytes` beyond its payload; returns the records and the offset after them.
pub fn laid_end_to_end(
    payloads: impl IntoIterator<Item = Vec<u8>>,
    offset: u64,
    header_bytes: u64,
) -> (Vec<IngestRecord>, u64) {
    let mut offset = offset;
    let records = payloads
        .into_iter()
        .map(|payload| {
            let next = offset + header_bytes + payload.len() as u64;
            let record = IngestRecord {
                offset,
                next,
                payload: payload.into(),
            };
            offset = next;
            record
        })
        .collect();
    (records, offset)
}

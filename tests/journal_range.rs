//! Range reads by record count: a range that stops at its record limit still moves past the
//! batch mark behind its last record, so a consumer that has read every record stands at the
//! durable end (the ingest, reading one record a batch, used to stop short of it, and a node
//! then never reported itself caught up).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use stemedb::storage::journal::{Journal, JournalConfig};
use tempfile::TempDir;

#[test]
fn a_range_stopped_by_its_record_limit_passes_the_batch_mark_behind_it() {
    let dir = TempDir::new().unwrap();
    let journal = Journal::open(dir.path(), JournalConfig::default()).unwrap();
    // Lone appends: each record is a batch of its own, closed by a mark.
    let offsets: Vec<u64> = (0..5u8).map(|n| journal.append(vec![n; 100]).unwrap()).collect();
    let end = journal.durable_end();
    let mut reader = journal.reader();
    for limit in [1, 2, 3] {
        let mut next = 0;
        let mut seen = Vec::new();
        while seen.len() < offsets.len() {
            let range = reader.read_range(next, limit, usize::MAX).unwrap();
            assert!(
                !range.records.is_empty(),
                "limit {limit}: an empty range at {next} before the end"
            );
            seen.extend(range.records.iter().map(|(offset, _)| *offset));
            next = range.next;
            // Past each record's mark: at the next record, or at the durable end.
            assert!(
                offsets.contains(&next) || next == end,
                "limit {limit}: stopped at {next}, inside a mark"
            );
        }
        assert_eq!(seen, offsets, "limit {limit}");
        assert_eq!(next, end, "limit {limit}: the last range ends at the durable end");
    }
}

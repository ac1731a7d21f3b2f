//! A torn last batch is still cut, and only it: a last batch of many records (written by 64
//! concurrent appenders, its size read from its batch mark) loses some of its 4 KiB pages, as
//! when a crash lets pages land out of order: the page with the mark, the first page, a
//! middle page while the mark's page lands, every other page, all but the mark's page, all but
//! the first, and random subsets. Each time the journal opens, every record acknowledged
//! before that batch is kept and reads back byte-exact, the batch is cut, the cut bytes are
//! copied aside whole (`quarantine/tail-*.bin`, with a report whose valid-record count is the
//! number of the batch's entries that survived), nothing is quarantined, appends continue at
//! the cut, and a second open changes nothing.
//!
//! Payloads are seeded pseudo-random bytes; every assertion message carries the seed. Set
//! `STEMEDB_TEST_SEED` to replay one.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use stemedb_testkit as common;

use common::journal::{only_segment, test_seed, walk};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use common::Rng;
use stemedb::storage::journal::format::{self, Decoded, Seed};
use stemedb::storage::journal::layout::{self, SEGMENT_HEADER_BYTES};
use stemedb::storage::journal::{Defect, Journal, JournalConfig, QUARANTINE_DIR, SECTOR_BYTES};
use tempfile::TempDir;

/// The unit in which a crash loses a write here: a page (Linux writes back whole pages).
const PAGE: usize = 4096;
/// Pages the last batch must span.
const PAGES_MIN: usize = 4;
const H: usize = SEGMENT_HEADER_BYTES;

/// Segments of 4 MiB: the log (at most 2.7 MiB) fits one, and an open that cuts a tail rewrites
/// only 4 MiB of preallocated zeros, not the default 64 MiB. Recovery does not depend on it.
fn config() -> JournalConfig {
    JournalConfig {
        segment_size_bytes: 4 * 1024 * 1024,
        ..JournalConfig::default()
    }
}

/// Appends one payload from each of `appenders` threads, released together; returns (offset,
/// payload) of each once acknowledged.
fn append_concurrently(journal: &Journal, appenders: usize, rng: &mut Rng) -> Vec<(u64, Vec<u8>)> {
    let barrier = std::sync::Barrier::new(appenders);
    let payloads: Vec<Vec<u8>> = (0..appenders).map(|_| rng.payload()).collect();
    std::thread::scope(|s| {
        let handles: Vec<_> = payloads
            .into_iter()
            .map(|payload| {
                let (journal, barrier) = (journal.clone(), &barrier);
                s.spawn(move || {
                    barrier.wait();
                    (journal.append(payload.clone()).unwrap(), payload)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

/// A log whose last batch holds many entries and spans at least [`PAGES_MIN`] pages.
struct Log {
    dir: TempDir,
    seed: Seed,
    /// Every acknowledged entry, as (offset, payload), in log order.
    entries: Vec<(u64, Vec<u8>)>,
    /// Where the last batch starts (the end of the mark before it).
    batch_start: u64,
    end: u64,
}

impl Log {
    fn write(rng: &mut Rng) -> Self {
        let dir = TempDir::new().unwrap();
        let journal = Journal::open(dir.path(), config()).unwrap();
        let mut entries = Vec::new();
        for _ in 0..2 {
            entries.extend(append_concurrently(&journal, 64, rng));
        }
        let seed = layout::read_identity(dir.path()).unwrap().unwrap().seed();
        let segment = only_segment(dir.path());
        let (start, count) = (1..=40)
            .find_map(|_| {
                entries.extend(append_concurrently(&journal, 64, rng));
                let end = journal.durable_end();
                let mut mark = [0u8; format::MARK_BYTES];
                let at = end - format::MARK_BYTES as u64;
                let file = File::open(&segment).unwrap();
                file.read_exact_at(&mut mark, (H as u64) + at).unwrap();
                let Ok(Decoded::Mark { start, entries, .. }) =
                    format::decode(&mark, at, seed, format::PAYLOAD_BYTES_CEILING)
                else {
                    panic!("no batch mark at the end of the log");
                };
                let pages = (H + end as usize - 1) / PAGE - (H + start as usize) / PAGE + 1;
                (entries >= 8 && pages >= PAGES_MIN).then_some((start, entries))
            })
            .expect("no batch of 8 entries over 4 pages in 40 bursts");
        entries.sort_by_key(|(offset, _)| *offset);
        let end = journal.durable_end();
        drop(journal);
        let first = entries.partition_point(|(o, _)| *o < start);
        assert_eq!(
            entries.len() - first,
            count as usize,
            "the mark counts the batch's entries"
        );
        eprintln!(
            "{} entries, the last batch: {count} entries at {start}..{end}",
            entries.len()
        );
        Self {
            dir,
            seed,
            entries,
            batch_start: start,
            end,
        }
    }

    /// The last batch's pages, as ranges of file positions within the batch.
    fn pages(&self) -> Vec<std::ops::Range<usize>> {
        let (from, to) = (H + self.batch_start as usize, H + self.end as usize);
        (from / PAGE..=(to - 1) / PAGE)
            .map(|page| (page * PAGE).max(from)..((page + 1) * PAGE).min(to))
            .collect()
    }

    /// Copies the journal with the pages `lost` of the last batch zeroed (as never written:
    /// the space was preallocated zeros); returns the directory and the damaged segment.
    fn torn_copy(&self, lost: &[usize]) -> (TempDir, Vec<u8>) {
        let pages = self.pages();
        damaged_copy(self.dir.path(), |bytes| {
            for &page in lost {
                bytes[pages[page].clone()].fill(0);
            }
        })
    }
}

/// Copies the journal in `from` into a fresh directory with `edit` applied to its segment;
/// returns the directory and the damaged segment.
fn damaged_copy(from: &Path, edit: impl FnOnce(&mut [u8])) -> (TempDir, Vec<u8>) {
    let dir = TempDir::new().unwrap();
    let identity = layout::IDENTITY_FILE;
    std::fs::copy(from.join(identity), dir.path().join(identity)).unwrap();
    let segment = only_segment(from);
    let mut bytes = std::fs::read(&segment).unwrap();
    edit(&mut bytes);
    std::fs::write(dir.path().join(segment.file_name().unwrap()), &bytes).unwrap();
    (dir, bytes)
}

/// Loses the pages `lost` of the last batch, opens the journal, and checks what recovery did.
fn check_torn(log: &Log, lost: &[usize], ctx: &str) {
    let ctx = format!("{ctx}, pages {lost:?} of {} lost", log.pages().len());
    let (dir, damaged) = log.torn_copy(lost);
    let (start, from) = (log.batch_start, H + log.batch_start as usize);
    let first = log.entries.partition_point(|(o, _)| *o < start);
    let (before, batch) = log.entries.split_at(first);

    // What survived of the batch: the records that still decode, and the last non-zero byte.
    let survives = |offset: u64| {
        format::decode(
            &damaged[H + offset as usize..],
            offset,
            log.seed,
            format::PAYLOAD_BYTES_CEILING,
        )
        .ok()
    };
    let intact = batch
        .iter()
        .filter(|(o, p)| matches!(survives(*o), Some(Decoded::Entry { payload, .. }) if payload == p));
    let mark = log.end - format::MARK_BYTES as u64;
    let mark_end = matches!(survives(mark), Some(Decoded::Mark { .. })).then_some(H + log.end as usize);
    let last_intact_end = intact
        .clone()
        .map(|(o, p)| H + *o as usize + format::record_len(p.len()))
        .max();
    let last_nonzero = damaged[from..]
        .iter()
        .rposition(|&b| b != 0)
        .map(|i| from + i + 1);
    // The cut is copied aside whole: through the last non-zero byte, and through the end of the
    // last intact record (a record may end in zero bytes, and a batch mark always does).
    let cut_to = [last_nonzero, last_intact_end, mark_end]
        .into_iter()
        .flatten()
        .max();

    let journal = Journal::open(dir.path(), config()).unwrap_or_else(|e| panic!("{ctx}: {e}"));
    let recovered = journal.recovered();
    assert!(
        recovered.quarantined.is_empty(),
        "{ctx}: {:?}",
        recovered.quarantined
    );
    let tail_files = |dir: &Path| -> Vec<PathBuf> {
        let prefix = format!("tail-{start:020}-");
        let Ok(listing) = std::fs::read_dir(dir.join(QUARANTINE_DIR)) else {
            return Vec::new();
        };
        let mut files: Vec<PathBuf> = listing.map(|e| e.unwrap().path()).collect();
        files.retain(|p| p.file_name().unwrap().to_str().unwrap().starts_with(&prefix));
        files.sort();
        files
    };
    match cut_to {
        // Every page lost: the batch left no trace, there is nothing to cut.
        None => {
            assert_eq!(recovered.truncated_bytes, 0, "{ctx}");
            assert!(
                recovered.report.defects.is_empty(),
                "{ctx}: {:?}",
                recovered.report.defects
            );
            assert!(tail_files(dir.path()).is_empty(), "{ctx}");
        }
        Some(cut_to) => {
            let valid = intact.count() as u64;
            assert_eq!(
                (recovered.truncated_bytes, recovered.truncated_records),
                ((cut_to - from) as u64, valid),
                "{ctx}: bytes and valid records cut; {:?}",
                recovered.report.defects
            );
            let [defect] = &recovered.report.defects[..] else {
                panic!("{ctx}: one defect expected: {:?}", recovered.report.defects);
            };
            let expected = (true, start, (cut_to - from) as u64, valid);
            let found = (defect.tail, defect.offset, defect.length, defect.valid_records);
            assert_eq!(found, expected, "{ctx}: {defect:?}");
            let files = tail_files(dir.path());
            let [bin, json] = &files[..] else {
                panic!("{ctx}: a tail .bin and .json expected: {files:?}");
            };
            assert!(
                bin.extension().unwrap() == "bin" && json.extension().unwrap() == "json",
                "{ctx}"
            );
            assert!(
                std::fs::read(bin).unwrap() == damaged[from..cut_to],
                "{ctx}: the bytes copied aside"
            );
            let report: Defect = serde_json::from_slice(&std::fs::read(json).unwrap()).unwrap();
            assert_eq!(&report, defect, "{ctx}: the report file");
        }
    }

    // Everything acknowledged before the batch is kept; the batch is gone from the file.
    assert_eq!(journal.durable_end(), start, "{ctx}");
    let read = walk(&journal, 0);
    let mismatch = read.iter().zip(before).position(|(got, want)| got != want);
    assert_eq!(
        (read.len(), mismatch),
        (before.len(), None),
        "{ctx}: entries read back"
    );
    let mut on_disk = vec![0u8; damaged.len() - from];
    File::open(only_segment(dir.path()))
        .unwrap()
        .read_exact_at(&mut on_disk, from as u64)
        .unwrap();
    assert!(
        on_disk.iter().all(|&b| b == 0),
        "{ctx}: bytes of the cut batch remain"
    );

    // Appends continue at the cut, and a second open finds nothing more to do.
    assert_eq!(journal.append(b"after the cut".to_vec()).unwrap(), start, "{ctx}");
    drop(journal);
    let journal = Journal::open(dir.path(), config()).unwrap();
    let recovered = journal.recovered();
    assert_eq!(recovered.truncated_bytes, 0, "{ctx}: reopened");
    assert!(
        recovered.report.defects.is_empty(),
        "{ctx}: reopened: {:?}",
        recovered.report.defects
    );
    let read = walk(&journal, 0);
    assert_eq!(read.len(), before.len() + 1, "{ctx}: reopened");
    assert_eq!(
        read.last().unwrap(),
        &(start, b"after the cut".to_vec()),
        "{ctx}: reopened"
    );
}

#[test]
fn torn_multi_record_last_batch_is_cut_and_nothing_acknowledged_before_it_is_lost() {
    let seed = test_seed();
    let mut rng = Rng::new(seed);
    let log = Log::write(&mut rng);
    let n = log.pages().len();
    assert!(n >= PAGES_MIN);
    let ctx = format!("seed {seed}");

    // Nothing lost: the control. The batch stays whole.
    let (dir, _) = log.torn_copy(&[]);
    let journal = Journal::open(dir.path(), config()).unwrap();
    assert_eq!(journal.recovered().truncated_bytes, 0, "{ctx}");
    assert!(journal.recovered().report.defects.is_empty(), "{ctx}");
    assert_eq!(journal.durable_end(), log.end, "{ctx}");
    assert!(
        walk(&journal, 0) == log.entries,
        "{ctx}: the intact log reads back"
    );
    drop(journal);

    let cases: Vec<(&str, Vec<usize>)> = vec![
        ("the mark's page lost", vec![n - 1]),
        ("the second page lost, the mark's page landed", vec![1]),
        ("the first page lost, the rest landed", vec![0]),
        (
            "every other page lost, the mark's page landed",
            (0..n - 1).rev().step_by(2).collect(),
        ),
        ("only the mark's page landed", (0..n - 1).collect()),
        ("only the first page landed", (1..n).collect()),
        ("the first and the mark's page landed", (1..n - 1).collect()),
        ("every page lost", (0..n).collect()),
    ];
    for (name, lost) in &cases {
        check_torn(&log, lost, &format!("{ctx}, {name}"));
    }
    // Random subsets of lost pages, each a nonempty proper subset or all of them.
    for round in 0..24 {
        let lost: Vec<usize> = (0..n).filter(|_| rng.index(2) == 0).collect();
        if !lost.is_empty() {
            check_torn(&log, &lost, &format!("{ctx}, random subset {round}"));
        }
    }
}

/// Zeros that belong to a record are not lost sectors. The last acknowledged batch is one
/// entry of 1,024 bytes (its length's low byte is zero) that starts at the last byte of a
/// sector, so that byte alone is a zero "sector" of its extent; a bit flipped elsewhere in the
/// entry must still be damage, quarantined, and the entry's batch must not be cut.
#[test]
fn a_bit_flip_in_an_entry_starting_with_a_zero_byte_at_a_sector_edge_is_not_a_tear() {
    let seed = test_seed();
    let mut rng = Rng::new(seed);
    let dir = TempDir::new().unwrap();
    let journal = Journal::open(dir.path(), config()).unwrap();
    let mut entries = Vec::new();
    for _ in 0..3 {
        let payload = rng.payload();
        entries.push((journal.append(payload.clone()).unwrap(), payload));
    }
    // A filler entry whose size puts the next entry's first byte at the end of a sector.
    let at = H + journal.durable_end() as usize + format::record_len(0) + format::MARK_BYTES + 1;
    let filler = vec![0xA5; 512 + (512 - at % 512) % 512];
    entries.push((journal.append(filler.clone()).unwrap(), filler));
    let payload: Vec<u8> = (0..1024).map(|_| rng.index(256) as u8).collect();
    let target = journal.append(payload.clone()).unwrap();
    entries.push((target, payload));
    let end = journal.durable_end();
    drop(journal);
    assert_eq!(
        (H + target as usize + 1) % SECTOR_BYTES,
        0,
        "the entry starts a byte before a sector"
    );

    // Bits of its CRC, kind, hash and payload.
    for (byte, mask) in [(5, 0x04), (9, 0x01), (20, 0x10), (700, 0x02)] {
        let ctx = format!("seed {seed}, bit {mask:#04x} of byte {byte} flipped");
        let (copy, _) = damaged_copy(dir.path(), |bytes| bytes[H + target as usize + byte] ^= mask);
        let journal = Journal::open(copy.path(), config()).unwrap_or_else(|e| panic!("{ctx}: {e}"));
        let recovered = journal.recovered();
        assert_eq!(
            recovered.truncated_bytes, 0,
            "{ctx}: {:?}",
            recovered.report.defects
        );
        let record = (target, format::record_len(1024) as u64);
        assert_eq!(recovered.quarantined, vec![record], "{ctx}");
        assert_eq!(journal.durable_end(), end, "{ctx}");
        assert!(
            walk(&journal, 0) == entries[..entries.len() - 1],
            "{ctx}: the entries before it"
        );
    }
}

#![allow(clippy::unwrap_used, clippy::expect_used)]
//! A flipped bit in an acknowledged record is damage, never a torn tail, wherever it lies:
//! inside the last acknowledged batch, 10, 1,000 and 10,000 records before it, and 1 MiB and
//! 8 MiB before the end of the log, in logs written by one appender (one record per batch)
//! and by 64 concurrent appenders (batches of many records), with the bit in the length,
//! CRC, kind, hash or payload. Each time the journal opens, exactly the damaged record is
//! quarantined with its bytes and a JSON report, every other acknowledged record reads back
//! byte-exact, nothing is cut, and appends continue. A node whose journal has damaged
//! records (some already indexed, some not yet) restarts, skips them, and indexes new writes.
//!
//! Payloads are seeded pseudo-random bytes of 512 to 1,535 bytes; every assertion message
//! carries the seed. Set `STEMEDB_TEST_SEED` to replay one.

use stemedb_testkit as common;

use common::deadline;

use common::journal::{only_segment, test_seed};
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::Instant;

use common::{NOW_MS, Rng, key};
use stemedb::Config;
use stemedb::node::{JOURNAL_DIR, Node};
use stemedb::protocol::{Assertion, LogRecord, ObjectValue};
use stemedb::storage::journal::format::{self, Decoded, HEADER_BYTES};
use stemedb::storage::journal::layout::{self, SEGMENT_HEADER_BYTES};
use stemedb::storage::journal::{Defect, Journal, JournalConfig, QUARANTINE_DIR, ReadOutcome};
use stemedb::storage::state::ListQuery;
use tempfile::TempDir;

/// Records per log: more than 10,000 before the last batch, and more than 8 MiB.
const RECORDS: usize = 11_200;
const MIB: u64 = 1024 * 1024;

/// Walks the whole log with `read_range`; returns every entry as (offset, payload).
fn walk(journal: &Journal) -> Vec<(u64, Vec<u8>)> {
    let mut reader = journal.reader();
    let mut records = Vec::new();
    let mut from = 0;
    loop {
        let range = reader.read_range(from, 1000, usize::MAX).unwrap();
        records.extend(
            range
                .records
                .into_iter()
                .map(|(offset, payload)| (offset, payload.to_vec())),
        );
        from = range.next;
        if range.at_end {
            return records;
        }
    }
}

/// An acknowledged log, written once per appender mode and copied for each damage case.
struct Log {
    dir: TempDir,
    segment_name: std::ffi::OsString,
    file_len: u64,
    /// The segment's header and records, up to the end of the log.
    bytes: Vec<u8>,
    /// Every acknowledged entry, as (offset, payload), in log order.
    entries: Vec<(u64, Vec<u8>)>,
    /// Offset of the last batch's first entry.
    last_batch_start: u64,
    /// Entries in the last batch.
    last_batch_entries: usize,
    end: u64,
}

/// Appends `per` payloads from each of `appenders` threads, released together, each waiting
/// for its acknowledgement; returns (offset, payload) of each.
fn append_concurrently(journal: &Journal, appenders: usize, per: usize, seed: u64) -> Vec<(u64, Vec<u8>)> {
    let barrier = std::sync::Barrier::new(appenders);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..appenders)
            .map(|t| {
                let (journal, barrier) = (journal.clone(), &barrier);
                s.spawn(move || {
                    let mut rng = Rng::new(seed ^ (t as u64 + 1).wrapping_mul(0xA076_1D64_78BD_642F));
                    barrier.wait();
                    (0..per)
                        .map(|_| {
                            let payload = rng.payload();
                            (journal.append(payload.clone()).unwrap(), payload)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap()).collect()
    })
}

/// Returns (start, entries) of the last batch of the journal in `dir` ending at `end`, from
/// its batch mark, the last record of the log.
fn last_batch(dir: &Path, end: u64) -> (u64, usize) {
    let seed = layout::read_identity(dir).unwrap().unwrap().seed();
    let mut mark = [0u8; format::MARK_BYTES];
    let at = end - format::MARK_BYTES as u64;
    let file = File::open(only_segment(dir)).unwrap();
    file.read_exact_at(&mut mark, SEGMENT_HEADER_BYTES as u64 + at)
        .unwrap();
    match format::decode(&mark, at, seed, format::PAYLOAD_BYTES_CEILING) {
        Ok(Decoded::Mark { start, entries, .. }) => (start, entries as usize),
        other => panic!("no batch mark at the end of the log: {other:?}"),
    }
}

/// Appends `RECORDS` payloads with `appenders` concurrent appenders, each waiting for its
/// acknowledgement. With several appenders, bursts of one append each follow until the last
/// batch holds at least 8 entries. Then checks the file against the acknowledgements: every
/// entry is where it was acknowledged, and the batch marks account for every entry.
fn write_log(appenders: usize, seed: u64) -> Log {
    let dir = TempDir::new().unwrap();
    let journal = Journal::open(dir.path(), JournalConfig::default()).unwrap();
    let mut entries = append_concurrently(&journal, appenders, RECORDS / appenders, seed);
    for round in 1.. {
        if appenders == 1 || last_batch(dir.path(), journal.durable_end()).1 >= 8 {
            break;
        }
        assert!(round < 100, "seed {seed}: no batch of 8 entries in 100 bursts");
        entries.extend(append_concurrently(&journal, appenders, 1, seed ^ round));
    }
    entries.sort_by_key(|(offset, _)| *offset);
    let end = journal.durable_end();
    drop(journal);

    let segment = only_segment(dir.path());
    let mut bytes = std::fs::read(&segment).unwrap();
    let file_len = bytes.len() as u64;
    bytes.truncate(SEGMENT_HEADER_BYTES + end as usize);
    let seed = layout::read_identity(dir.path()).unwrap().unwrap().seed();
    let (mut pos, mut next_entry, mut batch_start, mut batch) = (0usize, 0usize, 0u64, 0usize);
    let mut last_batch = (0, 0);
    while pos < end as usize {
        let at = &bytes[SEGMENT_HEADER_BYTES + pos..];
        match format::decode(at, pos as u64, seed, format::PAYLOAD_BYTES_CEILING).unwrap() {
            Decoded::Entry { payload, .. } => {
                assert_eq!(
                    (pos as u64, payload),
                    (entries[next_entry].0, &entries[next_entry].1[..])
                );
                next_entry += 1;
                batch += 1;
                pos += format::record_len(payload.len());
            }
            Decoded::Mark { start, entries, .. } => {
                assert_eq!((start, entries as usize), (batch_start, batch), "mark at {pos}");
                last_batch = (start, batch);
                pos += format::MARK_BYTES;
                (batch_start, batch) = (pos as u64, 0);
            }
            Decoded::End => panic!("end of log at {pos}, before the durable end {end}"),
        }
    }
    assert_eq!(
        (next_entry, batch),
        (entries.len(), 0),
        "every entry is in a marked batch"
    );
    eprintln!(
        "{appenders} appenders: {} entries, {end} bytes, last batch {} entries",
        entries.len(),
        last_batch.1
    );
    Log {
        segment_name: segment.file_name().unwrap().to_owned(),
        dir,
        file_len,
        bytes,
        entries,
        last_batch_start: last_batch.0,
        last_batch_entries: last_batch.1,
        end,
    }
}

/// Copies the journal of `log` into a fresh directory with `edit` applied to its segment;
/// returns the directory and the damaged bytes. The preallocated zeros are a sparse hole.
fn damaged_copy(log: &Log, edit: impl FnOnce(&mut [u8])) -> (TempDir, Vec<u8>) {
    let dir = TempDir::new().unwrap();
    let identity = layout::IDENTITY_FILE;
    std::fs::copy(log.dir.path().join(identity), dir.path().join(identity)).unwrap();
    let mut bytes = log.bytes.clone();
    edit(&mut bytes);
    let mut file = File::create(dir.path().join(&log.segment_name)).unwrap();
    file.write_all(&bytes).unwrap();
    file.set_len(log.file_len).unwrap();
    (dir, bytes)
}

/// The fields of a record a bit is flipped in.
const FIELDS: [&str; 5] = ["length", "crc", "kind", "hash", "payload"];

/// Returns (byte within the record, bit mask) for a flip in `field` of a record whose payload
/// is `payload_len` bytes.
fn flip_at(field: &str, payload_len: usize, rng: &mut Rng) -> (usize, u8) {
    let bit = 1u8 << rng.index(8);
    match field {
        // Bit 12 of the length (payloads are < 4 KiB, so the length grows by 4 KiB), or one
        // of its top bits (a length no record may have); neither can make it zero.
        "length" => [(1, 0x10), (3, 0x80), (3, 0x40)][rng.index(3)],
        "crc" => (4 + rng.index(4), bit),
        "kind" => (8 + rng.index(4), bit),
        "hash" => (12 + rng.index(32), bit),
        _ => (HEADER_BYTES + rng.index(payload_len), bit),
    }
}

/// The entries to damage, by index, with what they are: inside the last batch, 10, 1,000 and
/// 10,000 entries before it, and the entries 1 MiB and 8 MiB before the end.
fn targets(log: &Log) -> Vec<(String, usize)> {
    let first = log.entries.partition_point(|(o, _)| *o < log.last_batch_start);
    let at_distance = |bytes: u64| log.entries.partition_point(|(o, _)| *o <= log.end - bytes) - 1;
    let mut targets = vec![
        ("first entry of the last batch".to_owned(), first),
        ("last entry of the last batch".to_owned(), log.entries.len() - 1),
    ];
    if log.last_batch_entries > 2 {
        targets.push((
            "middle of the last batch".to_owned(),
            first + log.last_batch_entries / 2,
        ));
    }
    for before in [10, 1_000, 10_000] {
        targets.push((format!("{before} entries before the last batch"), first - before));
    }
    targets.push(("1 MiB before the end".to_owned(), at_distance(MIB)));
    targets.push(("8 MiB before the end".to_owned(), at_distance(8 * MIB)));
    let mut seen = std::collections::HashSet::new();
    targets.retain(|(_, index)| seen.insert(*index));
    targets
}

/// Flips one bit of entry `index`, opens the journal, and checks that exactly that entry is
/// quarantined and everything else is intact.
fn check_flip(log: &Log, index: usize, field: &str, rng: &mut Rng, ctx: &str) {
    let (offset, payload) = &log.entries[index];
    let (offset, record_len) = (*offset, format::record_len(payload.len()));
    let (byte, mask) = flip_at(field, payload.len(), rng);
    let ctx = format!("{ctx}, entry {index} at {offset}, {field}: byte {byte} ^ {mask:#04x}");
    let file_at = SEGMENT_HEADER_BYTES + offset as usize;
    let (dir, damaged) = damaged_copy(log, |bytes| bytes[file_at + byte] ^= mask);
    let journal =
        Journal::open(dir.path(), JournalConfig::default()).unwrap_or_else(|e| panic!("{ctx}: {e}"));

    let recovered = journal.recovered();
    assert_eq!(
        (recovered.truncated_bytes, recovered.truncated_records),
        (0, 0),
        "{ctx}: nothing is cut; {:?}",
        recovered.report.defects
    );
    assert_eq!(recovered.quarantined, vec![(offset, record_len as u64)], "{ctx}");
    let [defect] = &recovered.report.defects[..] else {
        panic!("{ctx}: one defect expected: {:?}", recovered.report.defects);
    };
    assert!(
        !defect.tail && defect.offset == offset && defect.length == record_len as u64,
        "{ctx}: {defect:?}"
    );
    let stem = dir.path().join(QUARANTINE_DIR).join(format!("{offset:020}"));
    let report: Defect =
        serde_json::from_slice(&std::fs::read(stem.with_extension("json")).unwrap()).unwrap();
    assert_eq!(&report, defect, "{ctx}: the report file");
    let copied = std::fs::read(stem.with_extension("bin")).unwrap();
    assert!(
        copied == damaged[file_at..][..record_len],
        "{ctx}: the quarantined bytes"
    );

    // Nothing in the file changed, and every other acknowledged entry reads back byte-exact.
    let (mut on_disk, segment) = (vec![0u8; damaged.len()], dir.path().join(&log.segment_name));
    File::open(segment)
        .unwrap()
        .read_exact_at(&mut on_disk, 0)
        .unwrap();
    assert!(on_disk == damaged, "{ctx}: the segment was changed");
    assert_eq!(journal.durable_end(), log.end, "{ctx}");
    let read = walk(&journal);
    assert_eq!(read.len(), log.entries.len() - 1, "{ctx}");
    let expected = log.entries.iter().enumerate().filter(|(i, _)| *i != index);
    let mismatch = read.iter().zip(expected).position(|(got, (_, want))| got != want);
    assert_eq!(mismatch, None, "{ctx}: the first entry read back wrong");
    // A read at the damaged offset goes on past it; appends continue at the end.
    let after = log.entries.get(index + 1).map(|(o, _)| *o);
    match journal.reader().read(offset).unwrap() {
        ReadOutcome::Record { offset: at, .. } => assert_eq!(Some(at), after, "{ctx}"),
        outcome => assert!(
            after.is_none() && outcome == ReadOutcome::EndOfLog,
            "{ctx}: {outcome:?}"
        ),
    }
    assert_eq!(journal.append(b"after".to_vec()).unwrap(), log.end, "{ctx}");
}

fn flips_are_quarantined(appenders: usize) {
    let started = Instant::now();
    let seed = test_seed();
    let log = write_log(appenders, seed);
    let mut rng = Rng::new(seed);
    let written = started.elapsed();
    for (n, (name, index)) in targets(&log).into_iter().enumerate() {
        for field in [FIELDS[(2 * n) % 5], FIELDS[(2 * n + 1) % 5]] {
            let ctx = format!("seed {seed}, {appenders} appenders, {name}");
            check_flip(&log, index, field, &mut rng, &ctx);
        }
    }
    eprintln!(
        "{appenders} appenders: written in {written:?}, all in {:?}",
        started.elapsed()
    );
}

#[test]
fn bit_flips_in_a_log_of_one_appender_are_quarantined_not_cut() {
    flips_are_quarantined(1);
}

#[test]
fn bit_flips_in_a_log_of_64_concurrent_appenders_are_quarantined_not_cut() {
    flips_are_quarantined(64);
}

fn claim(subject: &str, n: u64, rng: &mut Rng) -> Assertion {
    let text: String = (0..20 + rng.index(200))
        .map(|_| char::from(b'a' + rng.index(26) as u8))
        .collect();
    let mut a = Assertion::new(
        subject,
        format!("p{}", n % 7),
        ObjectValue::Text(text),
        0.5,
        NOW_MS + n,
    );
    a.sign(&key(1 + (n % 5) as u8));
    a
}

fn flip_payload_bit(journal_dir: &Path, offset: u64, payload_len: usize, rng: &mut Rng) {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(only_segment(journal_dir))
        .unwrap();
    let at = (SEGMENT_HEADER_BYTES + HEADER_BYTES + rng.index(payload_len)) as u64 + offset;
    let mut byte = [0u8];
    file.read_exact_at(&mut byte, at).unwrap();
    byte[0] ^= 1 << rng.index(8);
    file.write_all_at(&byte, at).unwrap();
}

/// Real signed assertions go through a node; more are appended to its journal directly (so
/// they are durable but not yet indexed); one bit is flipped in an indexed record and in two
/// unindexed ones, one of them right at the state's cursor. The node restarts, skips the
/// damaged records, indexes the rest, and indexes new writes, across two restarts.
#[test]
fn node_restarts_on_a_damaged_journal_and_indexes_new_writes() {
    let seed = test_seed();
    let mut rng = Rng::new(seed);
    let dir = TempDir::new().unwrap();
    let journal_dir = dir.path().join(JOURNAL_DIR);
    let indexed: Vec<Assertion> = (0..300).map(|n| claim("damage/indexed", n, &mut rng)).collect();
    let receipts = actix::System::new().block_on(async {
        let node = Node::start(Config::default(), dir.path()).unwrap();
        let receipts: Vec<_> = node
            .submit_many(indexed.clone())
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.unwrap())
            .collect();
        node.wait_indexed(receipts.iter().map(|r| r.offset).max().unwrap(), deadline())
            .await
            .unwrap();
        node.shutdown().await.unwrap();
        receipts
    });
    let journal = Journal::open(&journal_dir, Config::default().journal).unwrap();
    let pending: Vec<(Assertion, u64)> = (0..100)
        .map(|n| {
            let a = claim("damage/pending", n, &mut rng);
            let offset = journal.append(LogRecord::Assertion(a.clone()).encode()).unwrap();
            (a, offset)
        })
        .collect();
    drop(journal);
    let damaged = [
        (&indexed[150], receipts[150].offset),
        (&pending[0].0, pending[0].1),
        (&pending[57].0, pending[57].1),
    ];
    for (assertion, offset) in damaged {
        let len = LogRecord::Assertion(assertion.clone()).encode().len();
        flip_payload_bit(&journal_dir, offset, len, &mut rng);
    }
    let ctx = format!("seed {seed}");

    for restart in 0..2u64 {
        let ctx = format!("{ctx}, restart {restart}");
        actix::System::new().block_on(async {
            let node = Node::start(Config::default(), dir.path()).unwrap_or_else(|e| panic!("{ctx}: {e}"));
            node.wait_caught_up(deadline()).await.unwrap();
            for (assertion, receipt) in indexed.iter().zip(&receipts) {
                let stored = node.get(&receipt.hash).unwrap();
                assert_eq!(
                    stored.map(|s| s.assertion).as_ref(),
                    Some(assertion),
                    "{ctx}: indexed before the damage"
                );
            }
            for (n, (assertion, _)) in pending.iter().enumerate() {
                let stored = node.get(&assertion.content_hash()).unwrap();
                assert_eq!(stored.is_some(), n != 0 && n != 57, "{ctx}: pending {n}");
            }
            let fresh: Vec<Assertion> = (0..50)
                .map(|n| claim("damage/fresh", 1000 * restart + n, &mut rng))
                .collect();
            let results = node.submit_many(fresh.clone()).await.unwrap();
            let receipts: Vec<_> = results.into_iter().map(|r| r.unwrap()).collect();
            node.wait_indexed(receipts.iter().map(|r| r.offset).max().unwrap(), deadline())
                .await
                .unwrap();
            for (assertion, receipt) in fresh.iter().zip(&receipts) {
                assert_eq!(
                    node.get(&receipt.hash).unwrap().map(|s| s.assertion).as_ref(),
                    Some(assertion),
                    "{ctx}"
                );
            }
            let mut query = ListQuery::subject("damage/fresh");
            query.limit = 1000;
            assert_eq!(
                node.list(&query).unwrap().assertions.len(),
                50 * (restart as usize + 1),
                "{ctx}"
            );
            node.shutdown().await.unwrap();
        });
    }
    let journal = Journal::open(&journal_dir, Config::default().journal).unwrap();
    let quarantined: Vec<u64> = journal.recovered().quarantined.iter().map(|(o, _)| *o).collect();
    assert_eq!(quarantined, damaged.map(|(_, o)| o), "{ctx}");
    let qdir = journal_dir.join(QUARANTINE_DIR);
    let reported = |offset: u64| qdir.join(format!("{offset:020}.json")).exists();
    assert!(
        damaged.iter().all(|(_, o)| reported(*o)),
        "{ctx}: a report file is missing"
    );
    assert_eq!(journal.recovered().truncated_bytes, 0, "{ctx}");
}

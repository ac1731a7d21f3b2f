#![allow(clippy::unwrap_used, clippy::expect_used)]

//! Refusals at open that must leave the journal directory exactly as it was: every file's
//! name and bytes are compared before and after. A segment copied from another journal
//! (replacing a sealed segment, replacing the last one, or placed as the next segment) is
//! refused with `ForeignSegment`; a journal of the old format (segments and no identity file)
//! or with an identity file of another version is refused with `FormatVersion`; a torn tail
//! that would be cut below a durable cursor, or below `OpenOptions::durable_floor`, is refused
//! with `TruncationBelowCursor`. Each refusal is paired with the open that succeeds once the
//! cause is gone, so that a refusal for some other reason cannot pass.

use stemedb_testkit as common;

use common::journal::{payload, small_segments};

use common::journal::segment_files;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use stemedb::storage::journal::layout::{IDENTITY_FILE, SEGMENT_HEADER_BYTES};
use stemedb::storage::journal::{Journal, JournalConfig, JournalError, OpenOptions, format, identity, scan};
use tempfile::TempDir;

/// Writes `count` records into a new journal in `dir`; returns their offsets.
fn write_journal(dir: &Path, config: &JournalConfig, count: usize) -> Vec<u64> {
    let journal = Journal::open(dir, config.clone()).unwrap();
    (0..count).map(|n| journal.append(payload(n)).unwrap()).collect()
}

/// Every file and folder under `dir` (relative path, and the bytes of a file).
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Option<Vec<u8>>> {
    fn walk(root: &Path, dir: &Path, into: &mut BTreeMap<PathBuf, Option<Vec<u8>>>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.strip_prefix(root).unwrap().to_owned();
            if path.is_dir() {
                into.insert(name, None);
                walk(root, &path, into);
            } else {
                into.insert(name, Some(std::fs::read(&path).unwrap()));
            }
        }
    }
    let mut files = BTreeMap::new();
    walk(dir, dir, &mut files);
    files
}

/// Opens the journal in `dir`, which must fail; asserts that nothing under `dir` changed
/// (and that the directory is not empty, so the comparison means something).
fn refused(dir: &Path, config: &JournalConfig, options: OpenOptions) -> JournalError {
    let before = snapshot(dir);
    assert!(!before.is_empty());
    let error = Journal::open_with(dir, config.clone(), options).unwrap_err();
    let after = snapshot(dir);
    let names = |files: &BTreeMap<PathBuf, Option<Vec<u8>>>| files.keys().cloned().collect::<Vec<_>>();
    assert_eq!(names(&before), names(&after), "files after the refusal ({error})");
    for (name, bytes) in &before {
        assert!(
            after[name] == *bytes,
            "{} changed by the refusal ({error})",
            name.display()
        );
    }
    error
}

/// Two journals with the same records, so the same segment names and sizes: `ours` and one
/// whose segments are `foreign` to it.
fn two_journals(count: usize) -> (TempDir, TempDir) {
    let (ours, theirs) = (TempDir::new().unwrap(), TempDir::new().unwrap());
    write_journal(ours.path(), &small_segments(), count);
    write_journal(theirs.path(), &small_segments(), count);
    let names = |dir: &Path| -> Vec<_> {
        segment_files(dir)
            .iter()
            .map(|p| p.file_name().unwrap().to_owned())
            .collect()
    };
    assert_eq!(names(ours.path()), names(theirs.path()));
    assert!(segment_files(ours.path()).len() >= 3);
    (ours, theirs)
}

/// Asserts that `error` names `segment` of `ours` as belonging to `theirs`.
fn assert_foreign(error: &JournalError, segment: &Path, ours: &Path, theirs: &Path) {
    let (our_id, their_id) = (
        identity(ours).unwrap().unwrap(),
        identity(theirs).unwrap().unwrap(),
    );
    assert_ne!(our_id, their_id);
    match error {
        JournalError::ForeignSegment {
            path,
            expected,
            found,
        } => {
            assert_eq!(path.file_name(), segment.file_name(), "{error}");
            assert_eq!((expected, found), (&our_id.to_string(), &their_id.to_string()));
        }
        other => panic!("expected ForeignSegment, got {other:?}"),
    }
}

#[test]
fn a_segment_from_another_journal_replacing_one_of_ours_is_refused_and_nothing_changes() {
    let count = 150;
    // The first (sealed) segment, a middle (sealed) one, and the last (open) one.
    for which in [0, 1, usize::MAX] {
        let (ours, theirs) = two_journals(count);
        let our_segments = segment_files(ours.path());
        let index = which.min(our_segments.len() - 1);
        let target = our_segments[index].clone();
        let original = std::fs::read(&target).unwrap();
        std::fs::copy(&segment_files(theirs.path())[index], &target).unwrap();
        let error = refused(ours.path(), &small_segments(), OpenOptions::default());
        assert_foreign(&error, &target, ours.path(), theirs.path());
        // `stemedb wal verify` (the full scan) refuses it too.
        let error = scan(ours.path(), &small_segments()).unwrap_err();
        assert_foreign(&error, &target, ours.path(), theirs.path());
        // With our own segment back, the journal opens with every record.
        std::fs::write(&target, original).unwrap();
        let journal = Journal::open(ours.path(), small_segments()).unwrap();
        assert_eq!(
            journal.recovered().record_count(),
            count as u64,
            "segment {index}"
        );
    }
}

#[test]
fn a_segment_from_another_journal_placed_as_the_next_segment_is_refused_and_nothing_changes() {
    let (ours, theirs) = two_journals(150);
    // Our last segment is lost (the one before it is sealed, so our log now ends where it
    // began), and another journal's segment for that very offset is put in its place.
    let our_segments = segment_files(ours.path());
    let last = our_segments.last().unwrap().clone();
    std::fs::remove_file(&last).unwrap();
    let their_next = segment_files(theirs.path()).last().unwrap().clone();
    assert_eq!(their_next.file_name(), last.file_name());
    std::fs::copy(&their_next, &last).unwrap();
    let error = refused(ours.path(), &small_segments(), OpenOptions::default());
    assert_foreign(&error, &last, ours.path(), theirs.path());
    // Without it, the journal opens and its log ends where that segment would have started.
    std::fs::remove_file(&last).unwrap();
    let journal = Journal::open(ours.path(), small_segments()).unwrap();
    let base: u64 = last.file_stem().unwrap().to_str().unwrap().parse().unwrap();
    assert_eq!(journal.durable_end(), base);
}

#[test]
fn an_old_format_journal_is_refused_with_a_message_and_nothing_changes() {
    let dir = TempDir::new().unwrap();
    // What a journal of format v2 holds: segments of bare records and no identity file. The
    // bytes here are a v2-style record (length, CRC, blake3, payload), then preallocated zeros.
    let body = b"a record of an older journal".to_vec();
    let mut segment = Vec::new();
    segment.extend_from_slice(&(body.len() as u32).to_le_bytes());
    segment.extend_from_slice(&crc32c::crc32c(&body).to_le_bytes());
    segment.extend_from_slice(blake3::hash(&body).as_bytes());
    segment.extend_from_slice(&body);
    segment.resize(4096, 0);
    std::fs::write(dir.path().join("00000000000000000000.wal"), &segment).unwrap();
    std::fs::write(dir.path().join("cursors.json"), br#"{"ingest":0}"#).unwrap();
    let error = refused(dir.path(), &small_segments(), OpenOptions::default());
    assert!(
        matches!(
            error,
            JournalError::FormatVersion {
                found: 2,
                supported: format::FORMAT_VERSION,
                ..
            }
        ),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(
        message.contains("format v2") && message.contains("only format v3"),
        "{message}"
    );
    assert!(matches!(
        scan(dir.path(), &small_segments()),
        Err(JournalError::FormatVersion { found: 2, .. })
    ));
    // Arbitrary bytes in a `.wal` file are no journal of this format either.
    std::fs::write(dir.path().join("00000000000000000000.wal"), b"\xffnot a journal").unwrap();
    let error = refused(dir.path(), &small_segments(), OpenOptions::default());
    assert!(
        matches!(error, JournalError::FormatVersion { found: 2, .. }),
        "{error:?}"
    );
    // Once the old segment is gone, the directory takes a new journal.
    std::fs::remove_file(dir.path().join("00000000000000000000.wal")).unwrap();
    let journal = Journal::open(dir.path(), small_segments()).unwrap();
    assert_eq!(journal.append(payload(0)).unwrap(), 0);
}

#[test]
fn an_identity_file_of_another_version_is_refused_and_nothing_changes() {
    let dir = TempDir::new().unwrap();
    write_journal(dir.path(), &small_segments(), 20);
    let path = dir.path().join(IDENTITY_FILE);
    let original = std::fs::read(&path).unwrap();
    // The identity file's version field (bytes 16..20), with its checksum made to match.
    let mut newer = original.clone();
    newer[16..20].copy_from_slice(&(format::FORMAT_VERSION + 1).to_le_bytes());
    let crc = crc32c::crc32c(&newer[..newer.len() - 4]);
    let at = newer.len() - 4;
    newer[at..].copy_from_slice(&crc.to_le_bytes());
    std::fs::write(&path, &newer).unwrap();
    let error = refused(dir.path(), &small_segments(), OpenOptions::default());
    let found = format::FORMAT_VERSION + 1;
    assert!(
        matches!(error, JournalError::FormatVersion { found: f, .. } if f == found),
        "{error:?}"
    );
    std::fs::write(&path, &original).unwrap();
    assert_eq!(
        Journal::open(dir.path(), small_segments())
            .unwrap()
            .recovered()
            .record_count(),
        20
    );
}

/// Segments large enough for every record of [`torn_after`].
fn one_segment() -> JournalConfig {
    JournalConfig {
        segment_size_bytes: 64 * 1024,
        ..JournalConfig::default()
    }
}

/// A single-segment journal of 20 records, its last record torn off mid-record (the file
/// ends inside it) after `hold` registered a durable position; returns the directory and the
/// offsets, plus the end the log had before the tear.
fn torn_after(hold: impl FnOnce(&Journal, &[u64])) -> (TempDir, Vec<u64>, u64) {
    let dir = TempDir::new().unwrap();
    let (offsets, end) = {
        let journal = Journal::open(dir.path(), one_segment()).unwrap();
        let offsets: Vec<u64> = (0..20).map(|n| journal.append(payload(n)).unwrap()).collect();
        hold(&journal, &offsets);
        (offsets, journal.durable_end())
    };
    let segment = segment_files(dir.path()).remove(0);
    let bytes = std::fs::read(&segment).unwrap();
    let tear = SEGMENT_HEADER_BYTES + usize::try_from(offsets[19]).unwrap() + format::HEADER_BYTES + 10;
    std::fs::write(&segment, &bytes[..tear]).unwrap();
    (dir, offsets, end)
}

fn assert_below_cursor(error: &JournalError, at: u64, cursor: u64) {
    assert!(
        matches!(error, JournalError::TruncationBelowCursor { at: a, cursor: c } if (*a, *c) == (at, cursor)),
        "expected TruncationBelowCursor {{ at: {at}, cursor: {cursor} }}, got {error:?}: {error}"
    );
}

#[test]
fn a_tear_below_a_journal_cursor_is_refused_and_nothing_changes() {
    let (dir, offsets, end) =
        torn_after(|journal, _| journal.set_cursor("ingest", journal.durable_end()).unwrap());
    let error = refused(dir.path(), &one_segment(), OpenOptions::default());
    assert_below_cursor(&error, offsets[19], end);
    // With the cursor where the cut begins (the consumer has not applied the torn batch),
    // the same damage is cut and the journal opens.
    let (dir, offsets, _) = torn_after(|journal, offsets| journal.set_cursor("ingest", offsets[19]).unwrap());
    let before = snapshot(dir.path());
    let journal = Journal::open(dir.path(), one_segment()).unwrap();
    assert_eq!(journal.durable_end(), offsets[19]);
    assert!(journal.recovered().truncated_bytes > 0);
    assert_eq!(journal.cursor("ingest"), Some(offsets[19]));
    // The comparison `refused` makes does see a cut (and the copy set aside).
    assert_ne!(snapshot(dir.path()), before);
}

#[test]
fn a_tear_below_the_durable_floor_is_refused_and_nothing_changes() {
    let (dir, offsets, end) = torn_after(|_, _| ());
    let floor = |durable_floor| OpenOptions {
        durable_floor,
        ..OpenOptions::default()
    };
    let error = refused(dir.path(), &one_segment(), floor(end));
    assert_below_cursor(&error, offsets[19], end);
    // A floor inside the torn record is above the cut too.
    let error = refused(dir.path(), &one_segment(), floor(offsets[19] + 1));
    assert_below_cursor(&error, offsets[19], offsets[19] + 1);
    // A floor at the cut lets it happen.
    let journal = Journal::open_with(dir.path(), one_segment(), floor(offsets[19])).unwrap();
    assert_eq!(journal.durable_end(), offsets[19]);
    assert!(journal.recovered().truncated_bytes > 0);
}

/// Appends a record whose payload carries, `prefix` bytes in, a whole record encoded with
/// `seed` for the offset where it would sit, then flips a bit in the outer record's length so
/// that recovery must resynchronize through the payload. Returns what the reopened journal
/// holds (offset of each record) and the offset of the embedded record.
fn smuggle(seed_of: impl FnOnce(&Journal) -> format::Seed) -> (Vec<u64>, u64) {
    let dir = TempDir::new().unwrap();
    let config = one_segment();
    let (outer, inner) = {
        let journal = Journal::open(dir.path(), config.clone()).unwrap();
        for n in 0..5 {
            journal.append(payload(n)).unwrap();
        }
        let outer = journal.durable_end();
        let prefix = 16;
        let inner = outer + format::HEADER_BYTES as u64 + prefix as u64;
        let mut carried = vec![0xA5; prefix];
        let seed = seed_of(&journal);
        format::encode(b"a record someone tried to slip in", inner, seed, &mut carried);
        // One mark after it, so that the slipped-in record would even end a complete batch.
        let mark_at = inner + (carried.len() - prefix) as u64;
        format::encode_mark(inner, 1, mark_at, seed, &mut carried);
        assert_eq!(journal.append(carried).unwrap(), outer);
        for n in 5..40 {
            journal.append(payload(n)).unwrap();
        }
        (outer, inner)
    };
    let segment = segment_files(dir.path()).remove(0);
    let mut bytes = std::fs::read(&segment).unwrap();
    bytes[SEGMENT_HEADER_BYTES + outer as usize + 2] ^= 0x40;
    std::fs::write(&segment, bytes).unwrap();
    let journal = Journal::open(dir.path(), config).unwrap();
    let mut reader = journal.reader();
    let range = reader.read_range(0, 1000, usize::MAX).unwrap();
    (range.records.iter().map(|(offset, _)| *offset).collect(), inner)
}

#[test]
fn a_record_hidden_in_a_payload_never_passes_without_the_journal_identity() {
    // Crafted without this journal's identity (which a submitter never sees): rejected.
    let other = format::JournalId::from_bytes([0x5A; format::JournalId::BYTES]).seed();
    let (offsets, inner) = smuggle(|_| other);
    assert!(!offsets.contains(&inner), "the smuggled record was accepted");
    assert_eq!(
        offsets.len(),
        40,
        "every record but the damaged one (of 41) is read back"
    );
    // The control: crafted with the identity itself, the same bytes would pass, so the
    // identity is what keeps them out.
    let (offsets, inner) = smuggle(|journal| journal.recovered().id.unwrap().seed());
    assert!(
        offsets.contains(&inner),
        "the control must resynchronize into the payload"
    );
}

//! Recovery on open, and the full scan behind `stemedb wal verify`.
//!
//! [`recover`] reads only what a crash can have touched: the last segment. Sealed segments
//! are checked by their header and trailer (two small reads each), so opening costs the same
//! for a day of history as for ten years, and memory does not grow with the number of
//! records. In the last segment a torn last batch is cut (copied aside whole first, with a
//! report of how many valid records it held) and damage to acknowledged data is quarantined
//! or, under the `stop` policy, refused (see `scan` for how the two are told apart).
//!
//! Every check runs before any file changes: a foreign or damaged segment header, a missing
//! or out-of-order segment, or a cut that would go below a durable cursor fails the open and
//! leaves the directory as it was.
//!
//! [`scan`] reads every byte of every segment and changes nothing; it also compares each
//! sealed segment with its trailer.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::config::{CorruptionPolicy, JournalConfig};
use super::error::JournalError;
use super::format::JournalId;
use super::layout::{self, HeaderProblem, SEGMENT_HEADER_BYTES, SEGMENT_TRAILER_BYTES, Trailer};
use super::scan::{self, SegmentScan};
use super::segment::{self, sync_dir};

pub use super::scan::ScannedRecord;

/// Name of the folder, inside the journal directory, holding quarantined bytes and reports.
pub const QUARANTINE_DIR: &str = "quarantine";

/// A region of bad bytes found by a scan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Defect {
    /// The segment file.
    pub segment: PathBuf,
    /// Global offset of the first bad byte.
    pub offset: u64,
    /// Length of the bad region, in bytes.
    pub length: u64,
    /// What is wrong at `offset`.
    pub reason: String,
    /// True if and only if it is a torn last batch, which recovery cuts; otherwise it is
    /// damage to acknowledged data, which recovery quarantines.
    pub tail: bool,
    /// Valid entries inside the region (a torn tail may hold some of its unfinished batch).
    #[serde(default)]
    pub valid_records: u64,
}

/// A segment as found on disk.
#[derive(Debug, Clone)]
pub struct ScannedSegment {
    /// Global offset of its first record.
    pub base: u64,
    /// The file.
    pub path: PathBuf,
    /// File length, in bytes.
    pub file_len: u64,
    /// Bytes of its record area (global offsets `base..base + data_len`); for the last,
    /// unsealed segment, up to the end of the log.
    pub data_len: u64,
    /// Its trailer, if it is sealed and the trailer is intact.
    pub trailer: Option<Trailer>,
}

/// Everything a scan found.
#[derive(Debug, Clone, Default)]
pub struct ScanReport {
    /// The segments, in order.
    pub segments: Vec<ScannedSegment>,
    /// Every valid entry, in order (full scans only; recovery does not list them).
    pub records: Vec<ScannedRecord>,
    /// Every defect, in order.
    pub defects: Vec<Defect>,
    /// Sealed segments whose trailer is missing, damaged, or disagrees with their records.
    pub bad_trailers: Vec<PathBuf>,
    /// Valid entries in the log.
    pub entries: u64,
    /// Global offset just past the last valid record (where appends continue).
    pub end: u64,
}

/// What recovery found and did.
#[derive(Debug, Clone, Default)]
pub struct Recovered {
    /// What was found; `records` is empty.
    pub report: ScanReport,
    /// Bytes of torn tail cut (preallocated zeros after them are not counted).
    pub truncated_bytes: u64,
    /// Valid records the cut tail held (copied aside, not acknowledged).
    pub truncated_records: u64,
    /// Damaged regions quarantined (found now or in earlier runs), as (offset, length).
    pub quarantined: Vec<(u64, u64)>,
    /// Valid entries in the log: the trailers' counts plus the last segment's.
    pub record_count: u64,
    /// The journal's identity.
    pub id: Option<JournalId>,
    /// The last segment's state for the writer: `(entries, chain)` of its records, or `None`
    /// when there is no open last segment (none at all, or the last one is sealed).
    pub(crate) tail: Option<(u64, u32)>,
}

/// Reads a journal's identity, refusing a journal of an older format (segments but no
/// identity file). `None` for a directory without a journal yet.
pub fn identity(dir: &Path) -> Result<Option<JournalId>, JournalError> {
    match layout::read_identity(dir)? {
        Some(id) => Ok(Some(id)),
        None if segment::list_segments(dir)?.is_empty() => Ok(None),
        // Format v2 and earlier had no identity file.
        None => Err(JournalError::FormatVersion {
            dir: dir.to_owned(),
            found: 2,
            supported: super::format::FORMAT_VERSION,
        }),
    }
}

fn open_file(path: &Path) -> Result<(File, u64), JournalError> {
    let file = File::open(path).map_err(|e| JournalError::io("open segment", path, e))?;
    let len = file
        .metadata()
        .map_err(|e| JournalError::io("stat segment", path, e))?
        .len();
    Ok((file, len))
}

fn header_error(path: &Path, id: JournalId, problem: HeaderProblem) -> JournalError {
    let reason = match problem {
        HeaderProblem::Foreign(found) => {
            return JournalError::ForeignSegment {
                path: path.to_owned(),
                expected: id.to_string(),
                found: found.to_string(),
            };
        }
        HeaderProblem::Blank => "blank header".to_owned(),
        HeaderProblem::Damaged(why) => why.to_owned(),
        HeaderProblem::Version(version) => format!(
            "format version {version}, expected {}",
            super::format::FORMAT_VERSION
        ),
        HeaderProblem::Base(base) => format!("header says base offset {base}, unlike its name"),
    };
    JournalError::BadSegmentHeader {
        path: path.to_owned(),
        reason,
    }
}

/// Checks a sealed segment by header and trailer only; its trailer, if intact and consistent.
fn check_sealed(path: &Path, base: u64, id: JournalId) -> Result<ScannedSegment, JournalError> {
    let (file, file_len) = open_file(path)?;
    let overhead = (SEGMENT_HEADER_BYTES + SEGMENT_TRAILER_BYTES) as u64;
    let mut header = [0u8; SEGMENT_HEADER_BYTES];
    let got = segment::read_full_at(&file, path, 0, &mut header)?;
    layout::check_header(&header[..got], id, base).map_err(|p| header_error(path, id, p))?;
    if file_len < overhead {
        return Err(JournalError::BadSegmentHeader {
            path: path.to_owned(),
            reason: format!("{file_len} bytes is too short for a sealed segment"),
        });
    }
    let data_len = file_len - overhead;
    let mut bytes = [0u8; SEGMENT_TRAILER_BYTES];
    segment::read_full_at(&file, path, file_len - SEGMENT_TRAILER_BYTES as u64, &mut bytes)?;
    let trailer = Trailer::decode(&bytes, id.seed()).filter(|t| Some(t.end) == base.checked_add(data_len));
    Ok(ScannedSegment {
        base,
        path: path.to_owned(),
        file_len,
        data_len,
        trailer,
    })
}

/// What the last segment holds.
struct Tail {
    segment: ScannedSegment,
    /// The scan of its record area; `None` if it is sealed.
    scan: Option<SegmentScan>,
    bytes: Vec<u8>,
    /// Its header is blank: a crash interrupted its creation (nothing was written to it).
    blank: bool,
}

fn read_tail(path: &Path, base: u64, id: JournalId, collect: bool) -> Result<Tail, JournalError> {
    let bytes = std::fs::read(path).map_err(|e| JournalError::io("read segment", path, e))?;
    let file_len = bytes.len() as u64;
    let mut segment = ScannedSegment {
        base,
        path: path.to_owned(),
        file_len,
        data_len: 0,
        trailer: None,
    };
    match layout::check_header(&bytes, id, base) {
        Ok(()) => {}
        Err(HeaderProblem::Blank) if bytes.iter().all(|&b| b == 0) => {
            return Ok(Tail {
                segment,
                scan: None,
                bytes,
                blank: true,
            });
        }
        Err(problem) => return Err(header_error(path, id, problem)),
    }
    let overhead = SEGMENT_HEADER_BYTES + SEGMENT_TRAILER_BYTES;
    if bytes.len() >= overhead {
        let data_len = (bytes.len() - overhead) as u64;
        let trailer = Trailer::decode(&bytes[bytes.len() - SEGMENT_TRAILER_BYTES..], id.seed())
            .filter(|t| Some(t.end) == base.checked_add(data_len));
        if trailer.is_some() {
            segment.data_len = data_len;
            segment.trailer = trailer;
            // Sealed just before a crash, before its successor was made.
            let scan = collect.then(|| {
                scan::scan_records(
                    &bytes[SEGMENT_HEADER_BYTES..bytes.len() - SEGMENT_TRAILER_BYTES],
                    base,
                    id.seed(),
                    false,
                    true,
                )
            });
            return Ok(Tail {
                segment,
                scan,
                bytes,
                blank: false,
            });
        }
    }
    let scan = scan::scan_records(&bytes[SEGMENT_HEADER_BYTES..], base, id.seed(), true, collect);
    Ok(Tail {
        segment,
        scan: Some(scan),
        bytes,
        blank: false,
    })
}

fn check_contiguous(previous: Option<&ScannedSegment>, base: u64, path: &Path) -> Result<(), JournalError> {
    if let Some(previous) = previous {
        let expected = previous.base + previous.data_len;
        if base != expected {
            return Err(JournalError::SegmentGap {
                previous: previous.path.clone(),
                expected,
                next: path.to_owned(),
                found: base,
            });
        }
    }
    Ok(())
}

fn defect(segment: &Path, raw: &scan::RawDefect, tail: bool) -> Defect {
    Defect {
        segment: segment.to_owned(),
        offset: raw.offset,
        length: raw.length,
        reason: raw.reason.clone(),
        tail,
        valid_records: 0,
    }
}

/// Classifies the last segment's defects: the torn tail (at most one, merged) and the rest.
fn classify_tail(tail: &Tail, scan: &SegmentScan, id: JournalId) -> (Vec<Defect>, Option<Defect>) {
    let path = &tail.segment.path;
    let Some(cut) = scan.torn_from() else {
        return (
            scan.defects.iter().map(|d| defect(path, d, false)).collect(),
            None,
        );
    };
    let data = &tail.bytes[SEGMENT_HEADER_BYTES..];
    let from = (cut - tail.segment.base) as usize;
    // The cut runs to the last non-zero byte: zeros after it are preallocated space. It also
    // runs at least to the end of the last valid record, which may itself end in zero bytes (a
    // batch mark always does: its entry count is a little-endian u32): stopping at the last
    // non-zero byte would copy that record aside without its end, and `count_valid` would not
    // count it.
    let last_non_zero = data[from..]
        .iter()
        .rposition(|&b| b != 0)
        .map_or(from, |i| from + i + 1);
    let to = last_non_zero.max((scan.records_end - tail.segment.base) as usize);
    let mid = scan
        .defects
        .iter()
        .filter(|d| d.offset < cut)
        .map(|d| defect(path, d, false))
        .collect();
    let reason = scan.defects.iter().find(|d| d.offset >= cut).map_or_else(
        || "unfinished batch (no batch mark)".to_owned(),
        |d| d.reason.clone(),
    );
    let torn = Defect {
        segment: path.clone(),
        offset: cut,
        length: (to - from) as u64,
        reason,
        tail: true,
        valid_records: scan::count_valid(&data[from..to], cut, id.seed()),
    };
    (mid, Some(torn))
}

/// Scans the journal in `dir` without changing anything: every byte of every segment.
pub fn scan(dir: &Path, _config: &JournalConfig) -> Result<ScanReport, JournalError> {
    let mut report = ScanReport::default();
    let Some(id) = identity(dir)? else {
        return Ok(report);
    };
    let listed = segment::list_segments(dir)?;
    for (index, (base, path)) in listed.iter().enumerate() {
        check_contiguous(report.segments.last(), *base, path)?;
        if index + 1 < listed.len() {
            let sealed = check_sealed(path, *base, id)?;
            let bytes = std::fs::read(path).map_err(|e| JournalError::io("read segment", path, e))?;
            let data = &bytes[SEGMENT_HEADER_BYTES..bytes.len() - SEGMENT_TRAILER_BYTES];
            let found = scan::scan_records(data, *base, id.seed(), false, true);
            let matches = sealed.trailer.is_some_and(|t| {
                t.entries == found.entries && t.chain == found.chain && t.end == base + data.len() as u64
            });
            if !matches {
                report.bad_trailers.push(path.clone());
            }
            report.entries += found.entries;
            report.records.extend(found.records);
            report
                .defects
                .extend(found.defects.iter().map(|d| defect(path, d, false)));
            report.segments.push(sealed);
            continue;
        }
        let mut tail = read_tail(path, *base, id, true)?;
        let Some(found) = tail.scan.take() else {
            report.segments.push(tail.segment);
            continue;
        };
        let (mid, torn) = if tail.segment.trailer.is_some() {
            (
                found.defects.iter().map(|d| defect(path, d, false)).collect(),
                None,
            )
        } else {
            classify_tail(&tail, &found, id)
        };
        let end = torn.as_ref().map_or_else(|| found.end(), |t| t.offset);
        if tail.segment.trailer.is_none() {
            tail.segment.data_len = end - base;
        }
        report.entries += found.records.iter().filter(|r| r.offset < end).count() as u64;
        report
            .records
            .extend(found.records.into_iter().filter(|r| r.offset < end));
        report.defects.extend(mid);
        report.defects.extend(torn);
        report.segments.push(tail.segment);
    }
    report.end = report.segments.last().map_or(0, |s| s.base + s.data_len);
    Ok(report)
}

/// Recovers the journal of identity `id` in `dir` (see the module docs). `floor` is the
/// highest offset some consumer durably holds (its cursor): nothing below it may be cut.
pub fn recover(
    dir: &Path,
    config: &JournalConfig,
    id: JournalId,
    floor: u64,
) -> Result<Recovered, JournalError> {
    let listed = segment::list_segments(dir)?;
    let mut recovered = Recovered {
        id: Some(id),
        ..Recovered::default()
    };
    let mut mid: Vec<Defect> = Vec::new();
    let mut torn = None;
    let mut tail_state = None;
    let mut blank_tail = None;
    for (index, (base, path)) in listed.iter().enumerate() {
        check_contiguous(recovered.report.segments.last(), *base, path)?;
        if index + 1 < listed.len() {
            let sealed = check_sealed(path, *base, id)?;
            match sealed.trailer {
                Some(trailer) => recovered.record_count += trailer.entries,
                None => {
                    // Without its trailer a sealed segment must be read to be trusted: this
                    // one segment, not the history.
                    tracing::warn!(segment = %path.display(), "sealed segment without a valid trailer; scanning it");
                    let bytes = std::fs::read(path).map_err(|e| JournalError::io("read segment", path, e))?;
                    let data = &bytes[SEGMENT_HEADER_BYTES..bytes.len() - SEGMENT_TRAILER_BYTES];
                    let found = scan::scan_records(data, *base, id.seed(), false, false);
                    recovered.record_count += found.entries;
                    mid.extend(found.defects.iter().map(|d| defect(path, d, false)));
                    recovered.report.bad_trailers.push(path.clone());
                }
            }
            recovered.report.segments.push(sealed);
            continue;
        }
        let mut tail = read_tail(path, *base, id, false)?;
        if tail.blank {
            blank_tail = Some(path.clone());
            tail_state = Some((0, 0));
        } else if let Some(found) = tail.scan.take() {
            let (found_mid, found_torn) = classify_tail(&tail, &found, id);
            let end = found_torn.as_ref().map_or_else(|| found.end(), |t| t.offset);
            tail.segment.data_len = end - base;
            let (entries, chain) = match &found_torn {
                // The writer continues the chain over what is kept: rescan the kept part.
                Some(_) => {
                    let kept =
                        &tail.bytes[SEGMENT_HEADER_BYTES..SEGMENT_HEADER_BYTES + (end - base) as usize];
                    let again = scan::scan_records(kept, *base, id.seed(), false, false);
                    (again.entries, again.chain)
                }
                None => (found.entries, found.chain),
            };
            recovered.record_count += entries;
            tail_state = Some((entries, chain));
            mid.extend(found_mid);
            torn = found_torn;
        } else if let Some(trailer) = tail.segment.trailer {
            recovered.record_count += trailer.entries;
        }
        recovered.report.segments.push(tail.segment);
    }
    recovered.report.end = recovered
        .report
        .segments
        .last()
        .map_or(0, |s| s.base + s.data_len);
    // Every check first; nothing below changes a file until all have passed.
    if let Some(torn) = &torn {
        if torn.offset < floor {
            return Err(JournalError::TruncationBelowCursor {
                at: torn.offset,
                cursor: floor,
            });
        }
    }
    if floor > recovered.report.end {
        return Err(JournalError::CursorBeyondEnd {
            cursor: floor,
            end: recovered.report.end,
        });
    }
    if config.corruption_policy == CorruptionPolicy::Stop {
        if let Some(defect) = mid.first() {
            return Err(JournalError::Corruption {
                segment: defect.segment.clone(),
                offset: defect.offset,
                length: defect.length,
                reason: defect.reason.clone(),
            });
        }
    }
    for defect in &mid {
        quarantine(dir, defect)?;
    }
    if let Some(defect) = &torn {
        // Usually the remains of an unacknowledged batch, but keep a copy whatever it is.
        let stem = format!("tail-{:020}-{}", defect.offset, crate::protocol::now_ms());
        copy_aside(dir, defect, &stem)?;
        let keep = SEGMENT_HEADER_BYTES as u64
            + (defect.offset - recovered.report.segments.last().map_or(0, |s| s.base));
        cut(&defect.segment, keep, defect.length)?;
        recovered.truncated_bytes = defect.length;
        recovered.truncated_records = defect.valid_records;
    }
    if let Some(path) = blank_tail {
        rewrite_header(&path, id, recovered.report.segments.last().map_or(0, |s| s.base))?;
    }
    recovered.quarantined = known_quarantine(dir, &mid)?;
    recovered.report.defects = mid;
    recovered.report.defects.extend(torn);
    recovered.report.entries = recovered.record_count;
    recovered.tail = tail_state.filter(|_| {
        recovered
            .report
            .segments
            .last()
            .is_some_and(|s| s.trailer.is_none())
    });
    Ok(recovered)
}

/// Quarantines every mid-log defect a full scan finds, in sealed segments too (which opening
/// does not read), then recovers: `stemedb wal repair`.
pub fn repair(dir: &Path, config: &JournalConfig) -> Result<Vec<Defect>, JournalError> {
    let report = scan(dir, config)?;
    let mid: Vec<Defect> = report.defects.into_iter().filter(|d| !d.tail).collect();
    if config.corruption_policy == CorruptionPolicy::Quarantine {
        for defect in &mid {
            quarantine(dir, defect)?;
        }
    }
    Ok(mid)
}

/// Bytes of zeros written per call when cutting a torn tail.
const CUT_CHUNK_BYTES: usize = 1 << 20;

/// Cuts a torn tail by overwriting its `length` bytes at file position `at` with zeros (which
/// read as end-of-log), durably. Everything after them is zero already, so the segment keeps
/// its preallocated size, and a cut costs the tail's bytes, not a new segment's worth.
fn cut(path: &Path, at: u64, length: u64) -> Result<(), JournalError> {
    let file = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| JournalError::io("open for truncation", path, e))?;
    let zeros = vec![0u8; CUT_CHUNK_BYTES.min(usize::try_from(length).unwrap_or(CUT_CHUNK_BYTES))];
    let mut done = 0u64;
    while done < length {
        let n = (length - done).min(zeros.len() as u64) as usize;
        file.write_all_at(&zeros[..n], at + done)
            .map_err(|e| JournalError::io("cut torn tail", path, e))?;
        done += n as u64;
    }
    file.sync_data()
        .map_err(|e| JournalError::io("fsync after truncation", path, e))
}

fn rewrite_header(path: &Path, id: JournalId, base: u64) -> Result<(), JournalError> {
    let file = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| JournalError::io("open segment", path, e))?;
    file.write_all_at(&layout::encode_header(id, base), 0)
        .and_then(|()| file.sync_all())
        .map_err(|e| JournalError::io("rewrite blank segment header", path, e))
}

/// Returns every quarantined region: those of `found` and those reported by earlier runs
/// (for sealed segments, which opening does not rescan), as (offset, length), in order.
fn known_quarantine(dir: &Path, found: &[Defect]) -> Result<Vec<(u64, u64)>, JournalError> {
    let mut regions: Vec<(u64, u64)> = found.iter().map(|d| (d.offset, d.length)).collect();
    let qdir = dir.join(QUARANTINE_DIR);
    let entries = match std::fs::read_dir(&qdir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(regions),
        Err(e) => return Err(JournalError::io("list quarantine", &qdir, e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| JournalError::io("list quarantine", &qdir, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        // Reports of mid-log regions are named by offset alone; torn tails start with "tail-".
        if name.starts_with("tail-") || !name.ends_with(".json") {
            continue;
        }
        let path = entry.path();
        let bytes = std::fs::read(&path).map_err(|e| JournalError::io("read quarantine report", &path, e))?;
        match serde_json::from_slice::<Defect>(&bytes) {
            Ok(defect) if !defect.tail => regions.push((defect.offset, defect.length)),
            Ok(_) => {}
            Err(error) => {
                tracing::warn!(report = %path.display(), %error, "unreadable quarantine report ignored")
            }
        }
    }
    regions.sort_unstable();
    regions.dedup();
    Ok(regions)
}

/// Copies a mid-log region aside with a JSON report; idempotent across reopenings.
fn quarantine(dir: &Path, defect: &Defect) -> Result<(), JournalError> {
    copy_aside(dir, defect, &format!("{:020}", defect.offset))
}

fn copy_aside(dir: &Path, defect: &Defect, stem: &str) -> Result<(), JournalError> {
    let qdir = dir.join(QUARANTINE_DIR);
    let report_path = qdir.join(format!("{stem}.json"));
    if report_path.exists() {
        return Ok(());
    }
    segment::create_dir_durably(&qdir)?;
    let (file, _) = open_file(&defect.segment)?;
    let base = segment::parse_segment_name(
        defect
            .segment
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default(),
    )
    .ok_or_else(|| JournalError::UnexpectedFile(defect.segment.clone()))?;
    let length =
        usize::try_from(defect.length).map_err(|_| JournalError::UnexpectedFile(defect.segment.clone()))?;
    let mut bytes = vec![0u8; length];
    let at = SEGMENT_HEADER_BYTES as u64 + (defect.offset - base);
    let read = segment::read_full_at(&file, &defect.segment, at, &mut bytes)?;
    bytes.truncate(read);
    let bin_path = qdir.join(format!("{stem}.bin"));
    write_durably(&bin_path, &bytes)?;
    let json = serde_json::to_vec_pretty(defect).map_err(|e| JournalError::Config(e.to_string()))?;
    write_durably(&report_path, &json)?;
    sync_dir(&qdir)
}

fn write_durably(path: &Path, bytes: &[u8]) -> Result<(), JournalError> {
    use std::io::Write;
    let mut file = std::fs::File::create(path).map_err(|e| JournalError::io("create", path, e))?;
    file.write_all(bytes)
        .map_err(|e| JournalError::io("write", path, e))?;
    file.sync_all().map_err(|e| JournalError::io("fsync", path, e))
}

/// Scans one sealed segment and quarantines every defect in it (copy aside with a report);
/// returns the regions as (offset, length). Opening does not read sealed segments, so a reader
/// that meets damage in one calls this, at the cost of one segment, not the history.
pub(crate) fn quarantine_sealed(
    dir: &Path,
    path: &Path,
    base: u64,
    seed: super::format::Seed,
) -> Result<Vec<(u64, u64)>, JournalError> {
    let bytes = std::fs::read(path).map_err(|e| JournalError::io("read segment", path, e))?;
    let Some(data) = bytes.get(SEGMENT_HEADER_BYTES..bytes.len().saturating_sub(SEGMENT_TRAILER_BYTES))
    else {
        return Ok(Vec::new());
    };
    let found = scan::scan_records(data, base, seed, false, false);
    let mut regions = Vec::with_capacity(found.defects.len());
    for raw in &found.defects {
        let defect = defect(path, raw, false);
        tracing::warn!(segment = %path.display(), offset = defect.offset, length = defect.length, reason = %defect.reason, "quarantining damage in a sealed segment");
        quarantine(dir, &defect)?;
        regions.push((defect.offset, defect.length));
    }
    Ok(regions)
}

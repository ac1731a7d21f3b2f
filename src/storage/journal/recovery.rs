//! Scanning and recovery of the journal on open.
//!
//! [`scan`] reads every segment and classifies each defect it finds:
//! - a *torn tail*: a bad record (or stray bytes) at the end of the last segment with nothing
//!   valid after it — the remains of an unacknowledged write; recovery truncates it;
//! - *mid-log corruption*: bad bytes followed by valid records (later in the segment, or in a
//!   later segment). Recovery never truncates it: under the `quarantine` policy the bytes are
//!   copied to `quarantine/` with a JSON report and skipped; under `stop` the open fails.
//!
//! After a defect the scan resynchronizes at the next position where a valid record starts;
//! the offset-seeded CRC plus the blake3 hash make a false resynchronization practically
//! impossible. Segments must be contiguous: a missing or out-of-order segment fails the open.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::config::{CorruptionPolicy, JournalConfig};
use super::error::{JournalError, RecordDefect};
use super::format::{self, Decoded};
use super::segment::{self, sync_dir};

/// Name of the folder, inside the journal directory, holding quarantined bytes and reports.
pub const QUARANTINE_DIR: &str = "quarantine";

/// A region of bad bytes found by a scan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Defect {
    /// The segment file.
    pub segment: PathBuf,
    /// Global offset of the first bad byte.
    pub offset: u64,
    /// Length of the bad region, in bytes.
    pub length: u64,
    /// What is wrong at `offset`.
    pub reason: String,
    /// True if and only if it lies in the last segment with nothing valid after it (a torn
    /// tail, which recovery truncates).
    pub tail: bool,
}

/// One valid record found by a scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScannedRecord {
    /// Global offset of the record.
    pub offset: u64,
    /// Payload length, in bytes.
    pub payload_len: usize,
}

/// A segment as scanned.
#[derive(Debug, Clone)]
pub struct ScannedSegment {
    /// Global offset of its first byte.
    pub base: u64,
    /// The file.
    pub path: PathBuf,
    /// File length, in bytes.
    pub len: u64,
}

/// Everything a scan found.
#[derive(Debug, Clone, Default)]
pub struct ScanReport {
    /// The segments, in order.
    pub segments: Vec<ScannedSegment>,
    /// Every valid record, in order.
    pub records: Vec<ScannedRecord>,
    /// Every defect, in order.
    pub defects: Vec<Defect>,
    /// Global offset just past the last valid record (where appends continue).
    pub end: u64,
}

/// Scans the journal in `dir` without changing anything.
pub fn scan(dir: &Path, config: &JournalConfig) -> Result<ScanReport, JournalError> {
    let listed = segment::list_segments(dir)?;
    let mut report = ScanReport::default();
    for (index, (base, path)) in listed.iter().enumerate() {
        if let Some(previous) = report.segments.last() {
            let expected = previous.base + previous.len;
            if *base != expected {
                return Err(JournalError::SegmentGap {
                    previous: previous.path.clone(),
                    expected,
                    next: path.clone(),
                    found: *base,
                });
            }
        }
        let bytes = std::fs::read(path).map_err(|e| JournalError::io("read segment", path, e))?;
        // A crafted name near u64::MAX would make offsets wrap.
        if base.checked_add(bytes.len() as u64 + 1).is_none() {
            return Err(JournalError::UnexpectedFile(path.clone()));
        }
        let last = index + 1 == listed.len();
        scan_segment(&bytes, *base, path, last, &mut report);
        report.segments.push(ScannedSegment {
            base: *base,
            path: path.clone(),
            len: bytes.len() as u64,
        });
    }
    classify_torn_batch(&mut report, torn_batch_window_bytes(config));
    // Appends continue after the last valid record, and never before the last segment: bytes
    // of earlier segments cannot be truncated, so their defects are all mid-log.
    let after_last_record = report
        .records
        .last()
        .map_or(0, |r| r.offset + format::record_len(r.payload_len) as u64);
    let last_base = report.segments.last().map_or(0, |s| s.base);
    report.end = after_last_record.max(last_base);
    Ok(report)
}

/// The most bytes one group-commit batch can span: its byte budget plus the one record that
/// may overshoot it.
fn torn_batch_window_bytes(config: &JournalConfig) -> u64 {
    (config.group_commit_batch_bytes_max + format::record_len(config.record_bytes_max)) as u64
}

/// Reclassifies the damage at the end of the last segment.
///
/// One batch is written with one call and made durable with one fdatasync, and only then is
/// the next batch written; so a crash can tear only the last batch, and its pages may reach
/// the disk in any order — a lost page can be followed by surviving records of the same,
/// never-acknowledged batch. The earliest defect of the last segment after which every valid
/// record lies within one batch window is therefore a torn tail: it and everything after it
/// are cut (and copied aside first). Damage followed by more than a batch of valid records is
/// mid-log corruption.
fn classify_torn_batch(report: &mut ScanReport, window_bytes: u64) {
    let Some(last) = report.segments.last() else {
        return;
    };
    let last_end = last.base + last.len;
    let torn_at = report.defects.iter().position(|d| {
        d.offset >= last.base
            && report
                .records
                .iter()
                .rev()
                .take_while(|r| r.offset > d.offset)
                .all(|r| r.offset + format::record_len(r.payload_len) as u64 <= d.offset + window_bytes)
    });
    let Some(index) = torn_at else { return };
    let offset = report.defects[index].offset;
    let tail_len = report
        .defects
        .iter()
        .skip(index)
        .map(|d| d.offset + d.length)
        .max()
        .unwrap_or(last_end);
    let mut defect = report.defects[index].clone();
    defect.length = tail_len.max(offset) - offset;
    defect.tail = true;
    report.defects.truncate(index);
    report.defects.push(defect);
    report.records.retain(|r| r.offset < offset);
}

fn scan_segment(bytes: &[u8], base: u64, path: &Path, last: bool, report: &mut ScanReport) {
    // Lengths are bounded by the format's ceiling, not the configured maximum: lowering the
    // setting must never turn acknowledged records into "corruption".
    let payload_max = format::PAYLOAD_BYTES_CEILING;
    let mut pos = 0usize;
    while pos < bytes.len() {
        let offset = base + pos as u64;
        let defect: Option<RecordDefect> = match format::decode(&bytes[pos..], offset, payload_max) {
            Ok(Decoded::Record(payload)) => {
                report.records.push(ScannedRecord {
                    offset,
                    payload_len: payload.len(),
                });
                pos += format::record_len(payload.len());
                continue;
            }
            // Zeros to the end of the last segment: preallocated space, the common case.
            Ok(Decoded::End) if last && bytes[pos..].iter().all(|&b| b == 0) => break,
            Ok(Decoded::End) => None,
            Err(defect) => Some(defect),
        };
        let next = find_next_record(bytes, base, pos + 1);
        let stop = next.unwrap_or(bytes.len());
        let all_zero = bytes[pos..stop].iter().all(|&b| b == 0);
        // Zero bytes up to the end of the last segment are preallocated space, not damage.
        if !(all_zero && next.is_none() && last) {
            let reason = defect
                .as_ref()
                .map_or_else(|| "zeroed bytes (zero length)".to_owned(), ToString::to_string);
            // A defect ends at its last non-zero byte: zeros after it are preallocated space.
            let damaged = bytes[pos..stop]
                .iter()
                .rposition(|&b| b != 0)
                .map_or(stop - pos, |i| i + 1);
            let length = if next.is_some() { stop - pos } else { damaged };
            report.defects.push(Defect {
                segment: path.to_owned(),
                offset,
                length: length as u64,
                reason,
                tail: last && next.is_none(),
            });
        }
        pos = stop;
    }
}

/// Returns the first position at or after `from` where a valid record starts.
fn find_next_record(bytes: &[u8], base: u64, from: usize) -> Option<usize> {
    (from..bytes.len()).find(|&pos| {
        matches!(
            format::decode(&bytes[pos..], base + pos as u64, format::PAYLOAD_BYTES_CEILING),
            Ok(Decoded::Record(_))
        )
    })
}

/// What recovery did.
#[derive(Debug, Clone, Default)]
pub struct Recovered {
    /// The scan it acted on.
    pub report: ScanReport,
    /// Bytes of torn tail truncated (preallocated zeros after them are not counted).
    pub truncated_bytes: u64,
    /// Mid-log regions quarantined, as (offset, length).
    pub quarantined: Vec<(u64, u64)>,
    /// Valid records found (the open journal drops the per-record list of the report).
    pub record_count: usize,
}

/// Scans the journal, truncates a torn tail and quarantines (or, by policy, refuses)
/// mid-log corruption.
pub fn recover(dir: &Path, config: &JournalConfig) -> Result<Recovered, JournalError> {
    let report = scan(dir, config)?;
    let mut recovered = Recovered::default();
    for defect in report.defects.iter().filter(|d| !d.tail) {
        if config.corruption_policy == CorruptionPolicy::Stop {
            return Err(JournalError::Corruption {
                segment: defect.segment.clone(),
                offset: defect.offset,
                length: defect.length,
                reason: defect.reason.clone(),
            });
        }
        quarantine(dir, &report, defect)?;
        recovered.quarantined.push((defect.offset, defect.length));
    }
    let torn: Vec<&Defect> = report.defects.iter().filter(|d| d.tail).collect();
    for defect in &torn {
        // Usually the remains of an unacknowledged batch, but bit rot looks the same: keep a copy.
        keep_torn_tail(dir, &report, defect)?;
    }
    if let (false, Some(last)) = (torn.is_empty(), report.segments.last()) {
        let keep = report.end.saturating_sub(last.base).min(last.len);
        if keep < last.len {
            let file = OpenOptions::new()
                .write(true)
                .open(&last.path)
                .map_err(|e| JournalError::io("open for truncation", &last.path, e))?;
            file.set_len(keep)
                .map_err(|e| JournalError::io("truncate torn tail", &last.path, e))?;
            file.sync_all()
                .map_err(|e| JournalError::io("fsync after truncation", &last.path, e))?;
            recovered.truncated_bytes = report.defects.iter().filter(|d| d.tail).map(|d| d.length).sum();
        }
    }
    recovered.record_count = report.records.len();
    recovered.report = report;
    Ok(recovered)
}

/// Copies a torn tail aside before it is truncated; named by offset and time, since later
/// records will reuse its offsets.
fn keep_torn_tail(dir: &Path, report: &ScanReport, defect: &Defect) -> Result<(), JournalError> {
    let stem = format!("tail-{:020}-{}", defect.offset, crate::protocol::now_ms());
    copy_aside(dir, report, defect, &stem)
}

/// Copies a mid-log region aside with a JSON report; idempotent across reopenings.
fn quarantine(dir: &Path, report: &ScanReport, defect: &Defect) -> Result<(), JournalError> {
    copy_aside(dir, report, defect, &format!("{:020}", defect.offset))
}

fn copy_aside(dir: &Path, report: &ScanReport, defect: &Defect, stem: &str) -> Result<(), JournalError> {
    let qdir = dir.join(QUARANTINE_DIR);
    let report_path = qdir.join(format!("{stem}.json"));
    if report_path.exists() {
        return Ok(());
    }
    segment::create_dir_durably(&qdir)?;
    let Some(segment) = report.segments.iter().find(|s| s.path == defect.segment) else {
        return Ok(());
    };
    let mut bytes = vec![0u8; defect.length as usize];
    let handle = segment::SegmentHandle::open(segment.base, segment.path.clone())?;
    let read = handle.read_at(defect.offset - segment.base, &mut bytes)?;
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

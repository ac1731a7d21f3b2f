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
        let last = index + 1 == listed.len();
        scan_segment(&bytes, *base, path, last, config.record_bytes_max, &mut report);
        report.segments.push(ScannedSegment {
            base: *base,
            path: path.clone(),
            len: bytes.len() as u64,
        });
    }
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

fn scan_segment(
    bytes: &[u8],
    base: u64,
    path: &Path,
    last: bool,
    payload_max: usize,
    report: &mut ScanReport,
) {
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
        let next = find_next_record(bytes, base, pos + 1, payload_max);
        let stop = next.unwrap_or(bytes.len());
        let all_zero = bytes[pos..stop].iter().all(|&b| b == 0);
        // Zero bytes up to the end of the last segment are preallocated space, not damage.
        if !(all_zero && next.is_none() && last) {
            let reason = defect
                .as_ref()
                .map_or_else(|| "zeroed bytes (zero length)".to_owned(), ToString::to_string);
            report.defects.push(Defect {
                segment: path.to_owned(),
                offset,
                length: (stop - pos) as u64,
                reason,
                tail: last && next.is_none(),
            });
        }
        pos = stop;
    }
}

/// Returns the first position at or after `from` where a valid record starts.
fn find_next_record(bytes: &[u8], base: u64, from: usize, payload_max: usize) -> Option<usize> {
    (from..bytes.len()).find(|&pos| {
        matches!(
            format::decode(&bytes[pos..], base + pos as u64, payload_max),
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
    let torn = report.defects.iter().any(|d| d.tail);
    if let (true, Some(last)) = (torn, report.segments.last()) {
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
    recovered.report = report;
    Ok(recovered)
}

/// Copies a mid-log region aside with a JSON report; idempotent across reopenings.
fn quarantine(dir: &Path, report: &ScanReport, defect: &Defect) -> Result<(), JournalError> {
    let qdir = dir.join(QUARANTINE_DIR);
    let stem = format!("{:020}", defect.offset);
    let report_path = qdir.join(format!("{stem}.json"));
    if report_path.exists() {
        return Ok(());
    }
    std::fs::create_dir_all(&qdir).map_err(|e| JournalError::io("create quarantine dir", &qdir, e))?;
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

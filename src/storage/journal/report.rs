//! What scans and recovery report: defects, segments, and what recovery did.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::format::JournalId;
use super::layout::Trailer;
use super::scan::ScannedRecord;

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
    /// The journal's identity.
    pub id: Option<JournalId>,
    /// The last segment's state for the writer: `(entries, chain)` of its records, or `None`
    /// when there is no open last segment (none at all, or the last one is sealed).
    pub(crate) tail: Option<(u64, u32)>,
}

impl Recovered {
    /// Returns the valid entries in the log: the trailers' counts plus the last segment's.
    pub fn record_count(&self) -> u64 {
        self.report.entries
    }
}

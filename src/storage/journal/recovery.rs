//! Recovery on open.
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

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::config::{CorruptionPolicy, JournalConfig};
use super::error::JournalError;
use super::format::JournalId;
use super::layout::{self, HeaderProblem, SEGMENT_HEADER_BYTES, SEGMENT_TRAILER_BYTES, Trailer};
use super::quarantine;
use super::scan::{self, SegmentScan};
use super::segment;

pub use super::report::{Defect, Recovered, ScanReport, ScannedSegment};

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

pub(super) fn open_file(path: &Path) -> Result<(File, u64), JournalError> {
    let file = File::open(path).map_err(|e| JournalError::io("open segment", path, e))?;
    let len = file
        .metadata()
        .map_err(|e| JournalError::io("stat segment", path, e))?
        .len();
    Ok((file, len))
}

pub(super) fn header_error(path: &Path, id: JournalId, problem: HeaderProblem) -> JournalError {
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
pub(super) fn check_sealed(path: &Path, base: u64, id: JournalId) -> Result<ScannedSegment, JournalError> {
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
pub(super) struct Tail {
    pub(super) segment: ScannedSegment,
    /// The scan of its record area; `None` if it is sealed.
    pub(super) scan: Option<SegmentScan>,
    pub(super) bytes: Vec<u8>,
    /// Its header is blank: a crash interrupted its creation (nothing was written to it).
    pub(super) blank: bool,
}

/// Bytes the last segment is read in.
const TAIL_CHUNK_BYTES: usize = 1 << 20;

/// Reads the last segment up to the end of its last chunk holding a non-zero byte; returns
/// those bytes and the file's length. The zeros after them are preallocated space (a batch
/// always ends with its non-zero mark), so they are not held: memory at open follows what the
/// last segment holds, not its preallocated size.
fn read_written(path: &Path) -> Result<(Vec<u8>, u64), JournalError> {
    let (file, len) = open_file(path)?;
    let mut kept = Vec::new();
    let mut chunk = vec![0u8; TAIL_CHUNK_BYTES];
    let mut at = 0u64;
    while at < len {
        let want = usize::try_from(len - at).map_or(chunk.len(), |left| left.min(chunk.len()));
        let got = segment::read_full_at(&file, path, at, &mut chunk[..want])?;
        if got == 0 {
            break;
        }
        if chunk[..got].iter().any(|&b| b != 0) {
            // Zero chunks skipped before this one are part of the data after all.
            kept.resize(usize::try_from(at).unwrap_or(usize::MAX), 0);
            kept.extend_from_slice(&chunk[..got]);
        }
        at += got as u64;
    }
    Ok((kept, len))
}

pub(super) fn read_tail(path: &Path, base: u64, id: JournalId, collect: bool) -> Result<Tail, JournalError> {
    let (bytes, file_len) = read_written(path)?;
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
    // A sealed segment ends with its (non-zero) trailer, so it is held whole.
    if bytes.len() as u64 == file_len && bytes.len() >= overhead {
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

pub(super) fn check_contiguous(
    previous: Option<&ScannedSegment>,
    base: u64,
    path: &Path,
) -> Result<(), JournalError> {
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

pub(super) fn defect(segment: &Path, raw: &scan::RawDefect, tail: bool) -> Defect {
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
pub(super) fn classify_tail(tail: &Tail, scan: &SegmentScan, id: JournalId) -> (Vec<Defect>, Option<Defect>) {
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

/// What recovery will do, decided before any file changes.
#[derive(Default)]
struct Plan {
    /// Damage to acknowledged data: quarantined (or, under `stop`, refused).
    mid: Vec<Defect>,
    /// The torn tail to cut, if any.
    torn: Option<Defect>,
    /// The open last segment's `(entries, chain)`, for the writer.
    tail_state: Option<(u64, u32)>,
    /// A last segment whose header a crash left blank.
    blank_tail: Option<PathBuf>,
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
    let mut plan = Plan::default();
    for (index, (base, path)) in listed.iter().enumerate() {
        check_contiguous(recovered.report.segments.last(), *base, path)?;
        let segment = if index + 1 < listed.len() {
            plan_sealed(path, *base, id, &mut recovered, &mut plan)?
        } else {
            plan_tail(path, *base, id, &mut recovered, &mut plan)?
        };
        recovered.report.segments.push(segment);
    }
    recovered.report.end = recovered
        .report
        .segments
        .last()
        .map_or(0, |s| s.base + s.data_len);
    // Every check first; nothing changes a file until all have passed.
    check_plan(&plan, recovered.report.end, config, floor)?;
    carry_out(dir, id, &plan, &mut recovered)?;
    recovered.quarantined = quarantine::known(dir, &plan.mid)?;
    let open_tail = recovered
        .report
        .segments
        .last()
        .is_some_and(|s| s.trailer.is_none());
    recovered.tail = plan.tail_state.filter(|_| open_tail);
    recovered.report.defects = plan.mid;
    recovered.report.defects.extend(plan.torn);
    Ok(recovered)
}

/// Checks a sealed segment by header and trailer; a segment whose trailer is damaged must be
/// read to be trusted (this one segment, not the history), and its damage is planned.
fn plan_sealed(
    path: &Path,
    base: u64,
    id: JournalId,
    recovered: &mut Recovered,
    plan: &mut Plan,
) -> Result<ScannedSegment, JournalError> {
    let sealed = check_sealed(path, base, id)?;
    if let Some(trailer) = sealed.trailer {
        recovered.report.entries += trailer.entries;
        return Ok(sealed);
    }
    tracing::warn!(segment = %path.display(), "sealed segment without a valid trailer; scanning it");
    let (found, _) = scan_sealed(path, base, id.seed(), false)?;
    recovered.report.entries += found.entries;
    plan.mid
        .extend(found.defects.iter().map(|d| defect(path, d, false)));
    recovered.report.bad_trailers.push(path.to_owned());
    Ok(sealed)
}

/// Reads the sealed segment at `path` whole and scans its record area (between header and
/// trailer); returns the scan and the area's length. A file too short for a header and a
/// trailer has an empty area.
pub(super) fn scan_sealed(
    path: &Path,
    base: u64,
    seed: super::format::Seed,
    collect: bool,
) -> Result<(SegmentScan, u64), JournalError> {
    let bytes = std::fs::read(path).map_err(|e| JournalError::io("read segment", path, e))?;
    let data = bytes
        .get(SEGMENT_HEADER_BYTES..bytes.len().saturating_sub(SEGMENT_TRAILER_BYTES))
        .unwrap_or_default();
    Ok((
        scan::scan_records(data, base, seed, false, collect),
        data.len() as u64,
    ))
}

/// Scans the last segment and plans what happens to its torn tail and its damage.
fn plan_tail(
    path: &Path,
    base: u64,
    id: JournalId,
    recovered: &mut Recovered,
    plan: &mut Plan,
) -> Result<ScannedSegment, JournalError> {
    let mut tail = read_tail(path, base, id, false)?;
    if tail.blank {
        plan.blank_tail = Some(path.to_owned());
        plan.tail_state = Some((0, 0));
    } else if let Some(found) = tail.scan.take() {
        let (mid, torn) = classify_tail(&tail, &found, id);
        let end = torn.as_ref().map_or_else(|| found.end(), |t| t.offset);
        tail.segment.data_len = end - base;
        let (entries, chain) = match &torn {
            // The writer continues the chain over what is kept: rescan the kept part.
            Some(_) => {
                let kept = &tail.bytes[SEGMENT_HEADER_BYTES..SEGMENT_HEADER_BYTES + (end - base) as usize];
                let again = scan::scan_records(kept, base, id.seed(), false, false);
                (again.entries, again.chain)
            }
            None => (found.entries, found.chain),
        };
        recovered.report.entries += entries;
        plan.tail_state = Some((entries, chain));
        plan.mid.extend(mid);
        plan.torn = torn;
    } else if let Some(trailer) = tail.segment.trailer {
        recovered.report.entries += trailer.entries;
    }
    Ok(tail.segment)
}

/// Refuses a plan that would cut below `floor`, a `floor` past the end, or (under `stop`) any
/// damage to acknowledged data.
fn check_plan(plan: &Plan, end: u64, config: &JournalConfig, floor: u64) -> Result<(), JournalError> {
    if let Some(torn) = plan.torn.as_ref().filter(|t| t.offset < floor) {
        return Err(JournalError::TruncationBelowCursor {
            at: torn.offset,
            cursor: floor,
        });
    }
    if floor > end {
        return Err(JournalError::CursorBeyondEnd { cursor: floor, end });
    }
    match plan.mid.first() {
        Some(defect) if config.corruption_policy == CorruptionPolicy::Stop => Err(JournalError::Corruption {
            segment: defect.segment.clone(),
            offset: defect.offset,
            length: defect.length,
            reason: defect.reason.clone(),
        }),
        _ => Ok(()),
    }
}

/// Quarantines the damage, copies aside and cuts the torn tail, and mends a blank header.
fn carry_out(dir: &Path, id: JournalId, plan: &Plan, recovered: &mut Recovered) -> Result<(), JournalError> {
    for defect in &plan.mid {
        quarantine::quarantine(dir, defect)?;
    }
    let last_base = recovered.report.segments.last().map_or(0, |s| s.base);
    if let Some(defect) = &plan.torn {
        // Usually the remains of an unacknowledged batch, but keep a copy whatever it is.
        let stem = format!("tail-{:020}-{}", defect.offset, crate::protocol::now_ms());
        quarantine::copy_aside(dir, defect, &stem)?;
        cut(
            &defect.segment,
            SEGMENT_HEADER_BYTES as u64 + (defect.offset - last_base),
            defect.length,
        )?;
        recovered.truncated_bytes = defect.length;
        recovered.truncated_records = defect.valid_records;
    }
    if let Some(path) = &plan.blank_tail {
        rewrite_header(path, id, last_base)?;
    }
    Ok(())
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

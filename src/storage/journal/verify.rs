//! The full scan behind `stemedb wal verify`, and `stemedb wal repair`.
//!
//! [`scan`] reads every byte of every segment and changes nothing; it classifies the last
//! segment's defects as recovery would, and compares each sealed segment with its trailer.

use std::path::Path;

use super::config::{CorruptionPolicy, JournalConfig};
use super::error::JournalError;
use super::format::{self, Decoded, PAYLOAD_BYTES_CEILING};
use super::layout::SEGMENT_HEADER_BYTES;
use super::quarantine;
use super::recovery::{
    Defect, ScanReport, check_contiguous, check_sealed, classify_tail, defect, identity, read_tail,
    scan_sealed,
};
use super::segment;

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
            let (found, data_len) = scan_sealed(path, *base, id.seed(), true)?;
            let matches = sealed.trailer.is_some_and(|t| {
                t.entries == found.entries && t.chain == found.chain && t.end == base + data_len
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

/// Reads the payloads of up to `limit` of `report`'s records at offsets from `from` on, in
/// order: what `stemedb wal inspect` lists. `report` comes from [`scan`] of the same `dir`.
/// Each record is read again from its segment and checked; one that no longer decodes (the
/// directory changed since the scan) is [`JournalError::Corruption`].
pub fn scanned_payloads(
    dir: &Path,
    report: &ScanReport,
    from: u64,
    limit: usize,
) -> Result<Vec<(u64, Vec<u8>)>, JournalError> {
    let Some(id) = identity(dir)? else {
        return Ok(Vec::new());
    };
    let mut loaded: Option<(u64, Vec<u8>)> = None;
    let mut out = Vec::new();
    for record in report.records.iter().filter(|r| r.offset >= from).take(limit) {
        let Some(segment) = report.segments.iter().rev().find(|s| s.base <= record.offset) else {
            continue;
        };
        if loaded.as_ref().is_none_or(|(base, _)| *base != segment.base) {
            let bytes = std::fs::read(&segment.path)
                .map_err(|source| JournalError::io("read segment", &segment.path, source))?;
            loaded = Some((segment.base, bytes));
        }
        let Some((base, bytes)) = &loaded else { continue };
        let at = usize::try_from(record.offset - base)
            .ok()
            .and_then(|delta| delta.checked_add(SEGMENT_HEADER_BYTES))
            .and_then(|at| bytes.get(at..));
        match at.map(|bytes| format::decode(bytes, record.offset, id.seed(), PAYLOAD_BYTES_CEILING)) {
            Some(Ok(Decoded::Entry { payload, .. })) => out.push((record.offset, payload.to_vec())),
            _ => {
                return Err(JournalError::Corruption {
                    segment: segment.path.clone(),
                    offset: record.offset,
                    length: format::record_len(record.payload_len) as u64,
                    reason: "the record changed since the scan".into(),
                });
            }
        }
    }
    Ok(out)
}

/// Quarantines every mid-log defect a full scan finds, in sealed segments too (which opening
/// does not read), then recovers: `stemedb wal repair`.
pub fn repair(dir: &Path, config: &JournalConfig) -> Result<Vec<Defect>, JournalError> {
    let report = scan(dir, config)?;
    let mid: Vec<Defect> = report.defects.into_iter().filter(|d| !d.tail).collect();
    if config.corruption_policy == CorruptionPolicy::Quarantine {
        for defect in &mid {
            quarantine::quarantine(dir, defect)?;
        }
    }
    Ok(mid)
}

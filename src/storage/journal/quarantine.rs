//! Quarantine: damaged bytes copied aside, whole, with a JSON report, into `quarantine/` of
//! the journal directory, before anything skips or cuts them.
//!
//! A region of damage to acknowledged data is named by its offset (`<offset:020>.{bin,json}`),
//! so quarantining is idempotent across reopenings, and its report tells later opens (which do
//! not rescan sealed segments) to skip it. A cut torn tail is named `tail-<offset>-<ms>`, since
//! later records reuse its offsets.

use std::path::Path;

use super::error::JournalError;
use super::format::Seed;
use super::layout::SEGMENT_HEADER_BYTES;
use super::recovery::{Defect, defect, open_file};
use super::segment::{self, sync_dir};

/// Name of the folder, inside the journal directory, holding quarantined bytes and reports.
pub const QUARANTINE_DIR: &str = "quarantine";

/// Returns every quarantined region: those of `found` and those reported by earlier runs
/// (for sealed segments, which opening does not rescan), as (offset, length), in order.
pub(super) fn known(dir: &Path, found: &[Defect]) -> Result<Vec<(u64, u64)>, JournalError> {
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
pub(super) fn quarantine(dir: &Path, defect: &Defect) -> Result<(), JournalError> {
    copy_aside(dir, defect, &format!("{:020}", defect.offset))
}

pub(super) fn copy_aside(dir: &Path, defect: &Defect, stem: &str) -> Result<(), JournalError> {
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
    seed: Seed,
) -> Result<Vec<(u64, u64)>, JournalError> {
    let (found, _) = super::recovery::scan_sealed(path, base, seed, false)?;
    let mut regions = Vec::with_capacity(found.defects.len());
    for raw in &found.defects {
        let defect = defect(path, raw, false);
        tracing::warn!(segment = %path.display(), offset = defect.offset, length = defect.length, reason = %defect.reason, "quarantining damage in a sealed segment");
        quarantine(dir, &defect)?;
        regions.push((defect.offset, defect.length));
    }
    Ok(regions)
}

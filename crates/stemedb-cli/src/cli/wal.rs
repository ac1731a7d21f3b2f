//! `stemedb wal verify|inspect`: read-only examination of a journal directory.
//!
//! `verify` and `inspect` change nothing: no truncation, no quarantine. `verify` reads every
//! byte, checks each sealed segment against its trailer, and exits 1 if it finds any defect,
//! torn tail included. `repair` quarantines damage in sealed segments (which opening does not
//! read) and runs the recovery that opening does.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};

use stemedb::protocol::Hash;
use stemedb::storage::journal::{Journal, QUARANTINE_DIR, ScanReport, scan, scanned_payloads};
use stemedb_server::ServerConfig as Config;

use super::CliError;

/// Bytes of a payload shown by `inspect`.
const PAYLOAD_PREVIEW_BYTES: usize = 16;

/// `stemedb wal` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum WalCommand {
    /// Check every record of every segment; report defects; exit 1 on any.
    Verify(VerifyArgs),
    /// List records: offset, length, blake3 of the payload, and its first bytes.
    Inspect(InspectArgs),
    /// Run recovery: truncate a torn tail, quarantine mid-log corruption (per the configured
    /// policy), and report what was done. This is what opening the journal does.
    Repair(VerifyArgs),
}

/// Arguments of `stemedb wal verify`.
#[derive(Debug, Args)]
pub(crate) struct VerifyArgs {
    /// The journal directory.
    dir: PathBuf,
}

/// Arguments of `stemedb wal inspect`.
#[derive(Debug, Args)]
pub(crate) struct InspectArgs {
    /// The journal directory.
    dir: PathBuf,
    /// First global offset to list (records at or after it).
    #[arg(long, default_value_t = 0)]
    from: u64,
    /// Most records to list.
    #[arg(long, default_value_t = 100)]
    limit: usize,
}

/// Runs `stemedb wal ...`.
pub(crate) fn run(command: &WalCommand, config: &Config) -> Result<(), CliError> {
    match command {
        WalCommand::Verify(args) => verify(&args.dir, config),
        WalCommand::Inspect(args) => inspect(args, config),
        WalCommand::Repair(args) => repair(&args.dir, config),
    }
}

fn scan_dir(dir: &Path, config: &Config) -> Result<ScanReport, CliError> {
    if !dir.is_dir() {
        return Err(CliError::Input(format!("{} is not a directory", dir.display())));
    }
    scan(dir, &config.journal).map_err(|e| CliError::Input(e.to_string()))
}

fn verify(dir: &Path, config: &Config) -> Result<(), CliError> {
    let report = scan_dir(dir, config)?;
    let bytes: u64 = report.segments.iter().map(|s| s.file_len).sum();
    println!(
        "{}: {} segment(s), {} bytes, {} valid record(s), end offset {}",
        dir.display(),
        report.segments.len(),
        bytes,
        report.records.len(),
        report.end
    );
    for path in &report.bad_trailers {
        println!(
            "trailer mismatch: segment {} (missing, damaged, or unlike its records)",
            path.display()
        );
    }
    for defect in &report.defects {
        let report_path = dir
            .join(QUARANTINE_DIR)
            .join(format!("{:020}.json", defect.offset));
        let kind = match (defect.tail, report_path.exists()) {
            (true, _) => "torn tail",
            (false, true) => "mid-log corruption (already quarantined)",
            (false, false) => "mid-log corruption",
        };
        let held = if defect.tail {
            format!(
                " ({} valid record(s) of an unfinished batch)",
                defect.valid_records
            )
        } else {
            String::new()
        };
        println!(
            "{kind}: segment {} offset {} length {}: {}{held}",
            defect.segment.display(),
            defect.offset,
            defect.length,
            defect.reason
        );
    }
    let problems = report.defects.len() + report.bad_trailers.len();
    if problems == 0 {
        println!("ok: no defects");
        Ok(())
    } else {
        Err(CliError::Input(format!(
            "{problems} defect(s) found in {}",
            dir.display()
        )))
    }
}

fn inspect(args: &InspectArgs, config: &Config) -> Result<(), CliError> {
    let report = scan_dir(&args.dir, config)?;
    let payloads = scanned_payloads(&args.dir, &report, args.from, args.limit)
        .map_err(|e| CliError::Input(e.to_string()))?;
    println!("{:>20}  {:>10}  {:<64}  payload", "offset", "len", "blake3");
    for (offset, payload) in &payloads {
        let preview = hex::encode(&payload[..payload.len().min(PAYLOAD_PREVIEW_BYTES)]);
        let more = if payload.len() > PAYLOAD_PREVIEW_BYTES {
            "…"
        } else {
            ""
        };
        println!(
            "{:>20}  {:>10}  {}  {preview}{more}",
            offset,
            payload.len(),
            Hash::of(payload)
        );
    }
    Ok(())
}

fn repair(dir: &Path, config: &Config) -> Result<(), CliError> {
    scan_dir(dir, config)?;
    // Sealed segments first (opening reads only the last one), then the recovery of an open.
    let sealed = stemedb::storage::journal::repair(dir, &config.journal)
        .map_err(|e| CliError::Input(e.to_string()))?;
    for defect in &sealed {
        println!(
            "quarantined offset {} length {}: {}",
            defect.offset, defect.length, defect.reason
        );
    }
    let journal = Journal::open(dir, config.journal.clone()).map_err(|e| CliError::Input(e.to_string()))?;
    let recovered = journal.recovered();
    println!(
        "{}: truncated {} byte(s) of torn tail ({} valid record(s) of an unfinished batch, copied to {QUARANTINE_DIR}/); quarantined {} region(s); log ends at offset {}",
        dir.display(),
        recovered.truncated_bytes,
        recovered.truncated_records,
        recovered.quarantined.len(),
        journal.durable_end()
    );
    for (offset, length) in &recovered.quarantined {
        println!("quarantined offset {offset} length {length}");
    }
    Ok(())
}

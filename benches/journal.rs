//! Journal benchmark: durable appends per second and p50/p99 acknowledgement latency of
//! 256-byte records for 1, 8, 64 and 256 concurrent appender threads, for StemeDB's journal
//! and for the `okaywal` crate side by side (with the ratio stemedb/okaywal), plus the raw
//! fdatasync rate of the same disk (write 256 bytes + `File::sync_data` in a loop), both
//! appending to a growing file and overwriting a pre-written one (no file-size update to sync).
//!
//! Every append waits until its record is durable: `Journal::append` for StemeDB and
//! `EntryWriter::commit` for okaywal; both group-commit concurrent appenders into one fsync.
//! Each cell runs every appender thread for a fixed duration; appends/s is total appends over
//! elapsed time, and the percentiles come from the merged per-append latency samples.
//! Timings are printed, never asserted.
//!
//! Run with `cargo bench --bench journal`. Environment:
//! - `STEMEDB_BENCH_SECS`: seconds per cell (default 2);
//! - `STEMEDB_BENCH_ROUNDS`: rounds per cell, alternating the peers (default 3); rows show the
//!   median round and the median of the per-round ratios;
//! - `STEMEDB_BENCH_DIR`: directory for the temporary logs (default the cargo target tmp
//!   dir); it must be on the disk under test, not a tmpfs.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::fs::OpenOptions;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use okaywal::{Entry, EntryId, LogManager, SegmentReader, WriteAheadLog};
use stemedb::storage::journal::{Journal, JournalConfig};
use tempfile::TempDir;

/// Payload size of every record, in bytes.
const RECORD_BYTES: usize = 256;
/// Concurrent appender counts, one table row each.
const APPENDERS: [usize; 4] = [1, 8, 64, 256];
/// Default seconds per cell.
const SECS_DEFAULT: f64 = 2.0;
/// Default rounds per cell; each row shows the median round and the median ratio.
const ROUNDS_DEFAULT: usize = 3;
/// Targets for the stemedb/okaywal throughput ratio, by appender count.
const RATIO_TARGETS: [(usize, f64); 3] = [(256, 2.0), (64, 1.3), (1, 1.0)];

/// What one cell measured.
struct CellResult {
    appends: usize,
    elapsed: Duration,
    p50: Duration,
    p99: Duration,
}

impl CellResult {
    /// Builds the result from merged latency samples (in nanoseconds).
    fn new(mut samples: Vec<u64>, elapsed: Duration) -> Self {
        samples.sort_unstable();
        Self {
            appends: samples.len(),
            elapsed,
            p50: percentile(&samples, 50),
            p99: percentile(&samples, 99),
        }
    }

    fn rate(&self) -> f64 {
        self.appends as f64 / self.elapsed.as_secs_f64()
    }
}

/// Nearest-rank percentile of sorted nanosecond samples.
fn percentile(sorted: &[u64], pct: usize) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (sorted.len() * pct).div_ceil(100).max(1);
    Duration::from_nanos(sorted[rank - 1])
}

/// The no-op okaywal manager: nothing to recover, and checkpointing has no storage behind it.
#[derive(Debug)]
struct NoopManager;

impl LogManager for NoopManager {
    fn recover(&mut self, _entry: &mut Entry<'_>) -> io::Result<()> {
        Ok(())
    }

    fn checkpoint_to(
        &mut self,
        _last_checkpointed_id: EntryId,
        _checkpointed_entries: &mut SegmentReader,
        _wal: &WriteAheadLog,
    ) -> io::Result<()> {
        Ok(())
    }
}

/// Runs `threads` appenders for `duration`; `append` is called once per durable append with
/// a fresh 256-byte payload. Returns the merged latencies and the elapsed wall time.
fn run_cell<F>(threads: usize, duration: Duration, append: F) -> CellResult
where
    F: Fn(Vec<u8>) + Send + Sync + 'static,
{
    let append = Arc::new(append);
    let barrier = Arc::new(Barrier::new(threads + 1));
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let append = Arc::clone(&append);
            let barrier = Arc::clone(&barrier);
            std::thread::Builder::new()
                .name(format!("appender-{t}"))
                .spawn(move || {
                    let payload = vec![(t % 251) as u8; RECORD_BYTES];
                    let mut samples = Vec::with_capacity(64 * 1024);
                    barrier.wait();
                    let deadline = Instant::now() + duration;
                    loop {
                        let start = Instant::now();
                        if start >= deadline {
                            break;
                        }
                        append(payload.clone());
                        samples.push(start.elapsed().as_nanos() as u64);
                    }
                    samples
                })
                .expect("spawn appender thread")
        })
        .collect();
    barrier.wait();
    let start = Instant::now();
    let mut merged = Vec::new();
    for handle in handles {
        merged.extend(handle.join().expect("appender thread panicked"));
    }
    CellResult::new(merged, start.elapsed())
}

/// One cell against a fresh StemeDB journal with the default config.
fn bench_stemedb(base: &Path, threads: usize, duration: Duration) -> CellResult {
    let dir = TempDir::new_in(base).expect("create stemedb temp dir");
    let journal = Journal::open(dir.path(), JournalConfig::default()).expect("open journal");
    let appender = journal.clone();
    let result = run_cell(threads, duration, move |payload| {
        appender.append(payload).expect("stemedb append");
    });
    // Dropping the last clone joins the group-commit thread before the directory goes.
    drop(journal);
    result
}

/// One cell against a fresh okaywal log with the default configuration.
fn bench_okaywal(base: &Path, threads: usize, duration: Duration) -> CellResult {
    let dir = TempDir::new_in(base).expect("create okaywal temp dir");
    let log = WriteAheadLog::recover(dir.path(), NoopManager).expect("open okaywal");
    let appender = log.clone();
    let result = run_cell(threads, duration, move |payload| {
        let mut entry = appender.begin_entry().expect("okaywal begin_entry");
        entry.write_chunk(&payload).expect("okaywal write_chunk");
        entry.commit().expect("okaywal commit");
    });
    // run_cell has dropped every other handle, so shutdown does not wait forever.
    log.shutdown().expect("okaywal shutdown");
    result
}

/// Bytes pre-written for the overwrite-in-place fdatasync variant; writes wrap around in it.
const OVERWRITE_SPAN_BYTES: u64 = 1 << 20;

/// The disk's raw rate: one thread writing 256 bytes then `sync_data`, in a loop. With
/// `overwrite`, the writes go into an already written and synced 1 MiB file (wrapping around),
/// so fdatasync need not persist a new file size; otherwise each write appends (grows the file).
fn bench_fdatasync(base: &Path, duration: Duration, overwrite: bool) -> CellResult {
    let dir = TempDir::new_in(base).expect("create fdatasync temp dir");
    let path = dir.path().join("fdatasync.bin");
    let file = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .open(&path)
        .expect("open fdatasync file");
    if overwrite {
        file.write_all_at(&vec![0_u8; OVERWRITE_SPAN_BYTES as usize], 0)
            .expect("pre-write");
        file.sync_all().expect("fsync pre-written file");
    }
    let payload = vec![0xA5_u8; RECORD_BYTES];
    let mut samples = Vec::with_capacity(64 * 1024);
    let mut offset = 0_u64;
    let begin = Instant::now();
    let deadline = begin + duration;
    loop {
        let start = Instant::now();
        if start >= deadline {
            break;
        }
        file.write_all_at(&payload, offset).expect("write");
        file.sync_data().expect("fdatasync");
        samples.push(start.elapsed().as_nanos() as u64);
        offset += RECORD_BYTES as u64;
        if overwrite && offset + RECORD_BYTES as u64 > OVERWRITE_SPAN_BYTES {
            offset = 0;
        }
    }
    CellResult::new(samples, begin.elapsed())
}

/// Seconds per cell from `STEMEDB_BENCH_SECS`, else the default.
fn cell_duration() -> Duration {
    let secs = std::env::var("STEMEDB_BENCH_SECS")
        .ok()
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0)
        .unwrap_or(SECS_DEFAULT);
    Duration::from_secs_f64(secs)
}

/// Base directory from `STEMEDB_BENCH_DIR`, else cargo's target tmp dir (created if missing).
fn bench_dir() -> PathBuf {
    let dir = std::env::var_os("STEMEDB_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")));
    std::fs::create_dir_all(&dir).expect("create bench dir");
    dir
}

/// Rounds per cell from `STEMEDB_BENCH_ROUNDS` (default 3); the table shows medians.
fn bench_rounds() -> usize {
    std::env::var("STEMEDB_BENCH_ROUNDS")
        .ok()
        .and_then(|s| s.trim().parse::<usize>().ok())
        .filter(|&r| r > 0)
        .unwrap_or(ROUNDS_DEFAULT)
}

/// The median of `values` (upper median for an even count).
fn median_f64(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// The round with the median throughput.
fn median_cell(cells: &mut [CellResult]) -> &CellResult {
    cells.sort_by(|a, b| a.rate().total_cmp(&b.rate()));
    &cells[cells.len() / 2]
}

/// Formats a latency in microseconds.
fn micros(d: Duration) -> String {
    format!("{:.0}", d.as_secs_f64() * 1e6)
}

fn print_header(dir: &Path, duration: Duration) {
    let nproc = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!("journal benchmark: durable appends, each waits for fdatasync");
    println!(
        "machine: nproc = {nproc}; record size: {RECORD_BYTES} B; {:.1} s per cell; medians of {} rounds",
        duration.as_secs_f64(),
        bench_rounds()
    );
    println!("bench dir: {}", dir.display());
    println!();
}

fn print_row(threads: usize, stemedb: &CellResult, okaywal: &CellResult, ratio: f64) {
    for (system, cell) in [("stemedb", stemedb), ("okaywal", okaywal)] {
        let us = |d: Duration| d.as_secs_f64() * 1e6;
        common::emit(
            "journal",
            system,
            "appends",
            threads,
            cell.rate(),
            us(cell.p50),
            us(cell.p99),
        );
    }
    println!(
        "{threads:>9} | {:>12.0} {:>9} {:>9} | {:>12.0} {:>9} {:>9} | {:>6.2}",
        stemedb.rate(),
        micros(stemedb.p50),
        micros(stemedb.p99),
        okaywal.rate(),
        micros(okaywal.p50),
        micros(okaywal.p99),
        ratio,
    );
}

fn main() {
    let duration = cell_duration();
    let dir = bench_dir();
    print_header(&dir, duration);

    for (overwrite, label) in [(false, "append"), (true, "overwrite")] {
        let raw = bench_fdatasync(&dir, duration, overwrite);
        println!(
            "raw fdatasync ({label:>9}; 1 thread, write {RECORD_BYTES} B + sync_data): {:>6.0} syncs/s, \
             p50 {} us, p99 {} us",
            raw.rate(),
            micros(raw.p50),
            micros(raw.p99)
        );
    }
    println!();
    println!(
        "{:>9} | {:>12} {:>9} {:>9} | {:>12} {:>9} {:>9} | {:>6}",
        "", "stemedb", "", "", "okaywal", "", "", "ratio"
    );
    println!(
        "{:>9} | {:>12} {:>9} {:>9} | {:>12} {:>9} {:>9} | {:>6}",
        "appenders", "appends/s", "p50 us", "p99 us", "appends/s", "p50 us", "p99 us", "s/o"
    );
    println!("{}", "-".repeat(82));
    let rounds = bench_rounds();
    let mut ratios = Vec::new();
    for threads in APPENDERS {
        // Alternate the peers round by round, so that a noisy stretch hits both.
        let mut stemedb = Vec::new();
        let mut okaywal = Vec::new();
        let mut round_ratios = Vec::new();
        for _ in 0..rounds {
            let s = bench_stemedb(&dir, threads, duration);
            let o = bench_okaywal(&dir, threads, duration);
            round_ratios.push(s.rate() / o.rate());
            stemedb.push(s);
            okaywal.push(o);
        }
        let ratio = median_f64(&mut round_ratios);
        print_row(
            threads,
            median_cell(&mut stemedb),
            median_cell(&mut okaywal),
            ratio,
        );
        ratios.push((threads, ratio));
    }
    println!();
    for (threads, target) in RATIO_TARGETS {
        if let Some((_, ratio)) = ratios.iter().find(|(t, _)| *t == threads) {
            println!("median ratio at {threads} appenders: {ratio:.2} (target >= {target:.1})");
        }
    }
}

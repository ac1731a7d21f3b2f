//! Journal open benchmark: how long `Journal::open` takes, and how much memory it peaks at,
//! for journals of 0.1 GB and 1 GB of history (and 10 GB on request). Opening reads only the
//! last segment and checks each sealed segment's header and trailer, so both figures should
//! stay flat as history grows; the table ends with the largest-over-smallest ratios and a
//! one-line verdict.
//!
//! Each journal is built first (64 KiB records appended through `Journal::try_append` with a
//! bounded number in flight, default config: 64 MiB segments) so that its last segment is
//! about half full, then opened once and closed to settle it. Every measured open runs in a
//! child process (this binary re-executed), which times `Journal::open` until it returns and
//! then reads its peak RSS (`VmHWM` in `/proc/self/status`): the peak is that open's alone,
//! plus the process's start. A baseline child that only starts shows that start cost. Rounds
//! alternate the sizes; the table shows medians. The page cache is warm (the journals were
//! just written, and caches are not dropped): cold opens add the disk reads of the headers,
//! trailers and last segment. Columns: size of history, segments, bytes in the last segment,
//! open time, peak RSS, peak RSS over the baseline, and the segment files held open for reading
//! right after the open (opened lazily: 0). Timings are printed, never asserted.
//!
//! Run with `cargo bench --bench journal_open`. Environment:
//! - `STEMEDB_BENCH_ROUNDS`: child opens per size (default 5);
//! - `STEMEDB_BENCH_DIR`: directory for the temporary journals (default the system temp
//!   dir); a size that would not fit in its free space is skipped with a message;
//! - `STEMEDB_BENCH_OPEN_10GB=1`: also build and open a 10 GB journal.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use stemedb::storage::journal::{AppendReply, Journal, JournalConfig, JournalError};
use tempfile::TempDir;

/// Payload of every record built, in bytes.
const PAYLOAD_BYTES: usize = 64 * 1024;
/// Most appends in flight while building: enough to keep every batch full, few enough that
/// the queued payloads stay small (16 MiB) and the tail's fill is controlled.
const IN_FLIGHT_MAX: usize = 256;
/// Default child opens per size.
const ROUNDS_DEFAULT: usize = 5;
/// Journal sizes (label, bytes of history); the last only with `STEMEDB_BENCH_OPEN_10GB=1`.
const SIZES: [(&str, u64); 3] = [
    ("0.1 GB", 100_000_000),
    ("1 GB", 1_000_000_000),
    ("10 GB", 10_000_000_000),
];
/// Set in a child process: the journal directory to open, or [`BASELINE`].
const CHILD_ENV: &str = "STEMEDB_BENCH_OPEN_CHILD";
/// [`CHILD_ENV`] value of a child that only starts and reports its memory.
const BASELINE: &str = "-";
/// Free space kept beyond a journal's own estimate, in bytes.
const FREE_MARGIN_BYTES: u64 = 256 << 20;
/// Largest open-time and peak-RSS ratios (largest size over smallest) still called flat.
const FLAT_RATIO_MAX: f64 = 1.5;

const MIB: f64 = 1024.0 * 1024.0;

/// Appends in flight, and the first error any of them met.
#[derive(Default)]
struct InFlight {
    state: Mutex<(usize, Option<String>)>,
    changed: Condvar,
}

impl InFlight {
    /// Waits for a free slot and takes it.
    fn acquire(&self) {
        let mut state = self.state.lock().unwrap();
        while state.0 >= IN_FLIGHT_MAX {
            state = self.changed.wait(state).unwrap();
        }
        state.0 += 1;
    }

    /// Frees a slot, keeping the first error.
    fn release(&self, error: Option<String>) {
        let mut state = self.state.lock().unwrap();
        state.0 -= 1;
        if state.1.is_none() {
            state.1 = error;
        }
        self.changed.notify_all();
    }

    /// Waits until nothing is in flight; panics on any error an append met.
    fn drain(&self) {
        let mut state = self.state.lock().unwrap();
        while state.0 > 0 {
            state = self.changed.wait(state).unwrap();
        }
        if let Some(error) = &state.1 {
            panic!("append failed while building: {error}");
        }
    }
}

/// Appends 64 KiB records to `journal`, pipelined, while `more(journal, appended)` holds;
/// returns once all are durable.
fn fill(journal: &Journal, mut more: impl FnMut(&Journal, u64) -> bool) {
    let in_flight = Arc::new(InFlight::default());
    let mut appended = 0_u64;
    while more(journal, appended) {
        in_flight.acquire();
        let payload = vec![(appended % 251) as u8 + 1; PAYLOAD_BYTES];
        let done = Arc::clone(&in_flight);
        let reply: AppendReply = Box::new(
            move |outcome: Result<u64, stemedb::storage::journal::JournalError>| {
                done.release(outcome.err().map(|e| e.to_string()))
            },
        );
        match journal.try_append(payload, reply) {
            Ok(()) => appended += 1,
            // The reply was dropped unanswered: give its slot back and retry.
            Err(JournalError::Busy { .. }) => {
                in_flight.release(None);
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(error) => panic!("try_append: {error}"),
        }
    }
    in_flight.drain();
}

/// A journal built for the bench, as the settling open found it.
struct Built {
    label: &'static str,
    bytes_target: u64,
    dir: TempDir,
    segments: usize,
    /// Global offset of the log's end: bytes of history.
    end: u64,
    /// Bytes of records in the last (unsealed) segment.
    tail: u64,
    took: Duration,
}

/// Last segment's base offset, as recovery found it at open.
fn tail_base(journal: &Journal) -> u64 {
    journal.recovered().report.segments.last().map_or(0, |s| s.base)
}

/// Sealed segments for a journal of about `bytes`: it then holds that many plus half a tail.
fn sealed_for(bytes: u64, config: &JournalConfig) -> u64 {
    (bytes / config.segment_size_bytes).max(1)
}

/// Builds a journal of about `bytes` in a temp dir under `base`: `sealed_for` full segments,
/// then a last segment about half full.
fn build(base: &Path, label: &'static str, bytes: u64) -> Built {
    let config = JournalConfig::default();
    let sealed = sealed_for(bytes, &config) as usize;
    let dir = TempDir::with_prefix_in("journal-open-", base).expect("create journal temp dir");
    let started = Instant::now();
    {
        // Until the roll past the last sealed segment; what was in flight lands in the tail.
        let journal = Journal::open(dir.path(), config.clone()).expect("open journal to build");
        fill(&journal, |j, _| j.segment_count() <= sealed);
    }
    {
        // Reopened, recovery names the tail's base: top it up to half full.
        let journal = Journal::open(dir.path(), config.clone()).expect("reopen journal to build");
        let want = tail_base(&journal) + config.segment_size_bytes / 2;
        let record = (PAYLOAD_BYTES + stemedb::storage::journal::format::HEADER_BYTES) as u64;
        let records = want.saturating_sub(journal.durable_end()).div_ceil(record);
        fill(&journal, |_, appended| appended < records);
    }
    let took = started.elapsed();
    // An open and close with no append leaves no spare segment behind for the first child.
    let journal = Journal::open(dir.path(), config).expect("settle journal");
    let (segments, end) = (journal.segment_count(), journal.durable_end());
    let tail = end - tail_base(&journal);
    drop(journal);
    Built {
        label,
        bytes_target: bytes,
        dir,
        segments,
        end,
        tail,
        took,
    }
}

/// Bytes free to an unprivileged writer in the file system holding `dir`.
fn free_bytes(dir: &Path) -> u64 {
    let stat = rustix::fs::statvfs(dir).expect("statvfs bench dir");
    stat.f_bavail.saturating_mul(stat.f_frsize)
}

/// Disk space a journal of about `bytes` needs: its segments (each may run one batch over),
/// the preallocated tail, a spare segment, and a margin.
fn space_needed(bytes: u64, config: &JournalConfig) -> u64 {
    let segment = config.segment_size_bytes + config.group_commit_batch_bytes_max as u64;
    (sealed_for(bytes, config) + 2) * segment + FREE_MARGIN_BYTES
}

/// Peak resident set size of this process so far, in KiB (`VmHWM`).
fn vm_hwm_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .expect("a VmHWM line");
    line.split_whitespace()
        .nth(1)
        .and_then(|kib| kib.parse().ok())
        .expect("a VmHWM figure")
}

/// The child's work: open the journal in `target` (or nothing, for [`BASELINE`]) and print
/// what it measured as `key=value` pairs on one line.
fn child(target: &str) {
    if target == BASELINE {
        println!("hwm_kib={}", vm_hwm_kib());
        return;
    }
    let started = Instant::now();
    let journal = Journal::open(target, JournalConfig::default()).expect("open journal in child");
    let open_us = started.elapsed().as_micros();
    let hwm_kib = vm_hwm_kib();
    let (segments, files) = (journal.segment_count(), journal.open_file_count());
    drop(journal);
    println!("open_us={open_us} hwm_kib={hwm_kib} segments={segments} files={files}");
}

/// What one child reported.
struct ChildReport(HashMap<String, u64>);

impl ChildReport {
    fn get(&self, key: &str) -> u64 {
        *self
            .0
            .get(key)
            .unwrap_or_else(|| panic!("child did not report {key}"))
    }
}

/// Runs this binary as a child on `target` and parses its report.
fn run_child(target: &str) -> ChildReport {
    let exe = std::env::current_exe().expect("current exe");
    let output = Command::new(exe)
        .env(CHILD_ENV, target)
        .output()
        .expect("run child");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "child on {target} failed ({}): {stdout}{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let line = stdout.lines().last().unwrap_or_default();
    let pairs = line.split_whitespace().filter_map(|pair| pair.split_once('='));
    let parsed = pairs.map(|(k, v)| (k.to_owned(), v.parse().expect("a numeric figure")));
    ChildReport(parsed.collect())
}

/// The median of `values` (upper median for an even count).
fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Rounds from `STEMEDB_BENCH_ROUNDS`, else the default.
fn bench_rounds() -> usize {
    let rounds = std::env::var("STEMEDB_BENCH_ROUNDS").ok();
    let rounds = rounds.and_then(|s| s.trim().parse::<usize>().ok());
    rounds.filter(|&r| r > 0).unwrap_or(ROUNDS_DEFAULT)
}

/// Base directory from `STEMEDB_BENCH_DIR`, else the system temp dir (created if missing).
fn bench_dir() -> PathBuf {
    let dir = std::env::var_os("STEMEDB_BENCH_DIR").map_or_else(std::env::temp_dir, PathBuf::from);
    std::fs::create_dir_all(&dir).expect("create bench dir");
    dir
}

/// One table row: a journal and the medians of its child opens.
struct Row {
    built: Built,
    open_ms: f64,
    hwm_mib: f64,
    files: u64,
}

fn print_table(rows: &[Row], baseline_mib: f64) {
    println!(
        "{:>8} | {:>8} {:>8} {:>8} | {:>8} {:>12} {:>13} {:>11}",
        "journal", "GB", "segments", "tail MiB", "open ms", "peak RSS MiB", "over base MiB", "files open"
    );
    println!("{}", "-".repeat(90));
    for row in rows {
        let b = &row.built;
        println!(
            "{:>8} | {:>8.2} {:>8} {:>8.1} | {:>8.1} {:>12.1} {:>13.1} {:>11}",
            b.label,
            b.end as f64 / 1e9,
            b.segments,
            b.tail as f64 / MIB,
            row.open_ms,
            row.hwm_mib,
            row.hwm_mib - baseline_mib,
            row.files,
        );
    }
}

fn print_flatness(rows: &[Row]) {
    let (Some(small), Some(large)) = (rows.first(), rows.last()) else {
        println!("no journal was built: nothing to compare");
        return;
    };
    if rows.len() < 2 {
        println!(
            "only one size was built ({}): no flatness figures",
            small.built.label
        );
        return;
    }
    let history = large.built.end as f64 / small.built.end as f64;
    let time = large.open_ms / small.open_ms;
    let rss = large.hwm_mib / small.hwm_mib;
    println!(
        "flatness, {} over {} ({history:.0}x the history): open time {time:.2}x, peak RSS {rss:.2}x",
        large.built.label, small.built.label
    );
    let flat = time <= FLAT_RATIO_MAX && rss <= FLAT_RATIO_MAX;
    let verdict = if flat { "flat" } else { "NOT flat" };
    println!(
        "verdict: {verdict}: open time and peak memory {} with history (both ratios {} {FLAT_RATIO_MAX})",
        if flat { "do not grow" } else { "grow" },
        if flat { "<=" } else { "not all <=" },
    );
}

fn main() {
    if let Some(target) = std::env::var_os(CHILD_ENV) {
        child(&target.to_string_lossy());
        return;
    }
    let dir = bench_dir();
    let rounds = bench_rounds();
    let with_10gb = std::env::var("STEMEDB_BENCH_OPEN_10GB").is_ok_and(|v| v.trim() == "1");
    let config = JournalConfig::default();
    let nproc = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!("journal open benchmark: Journal::open time and peak RSS of the opening process");
    println!(
        "machine: nproc = {nproc}; segments of {} MiB; records of {} KiB; medians of {rounds} child opens",
        config.segment_size_bytes >> 20,
        PAYLOAD_BYTES >> 10
    );
    println!("bench dir: {}", dir.display());
    println!("page cache: warm (journals just written; caches are not dropped)");
    println!();

    let mut built = Vec::new();
    for (index, (label, bytes)) in SIZES.into_iter().enumerate() {
        if index == SIZES.len() - 1 && !with_10gb {
            println!("{label}: skipped (set STEMEDB_BENCH_OPEN_10GB=1 to build it)");
            continue;
        }
        let (need, free) = (space_needed(bytes, &config), free_bytes(&dir));
        if need > free {
            println!(
                "{label}: skipped: needs about {:.1} GB free in {}, {:.1} GB available",
                need as f64 / 1e9,
                dir.display(),
                free as f64 / 1e9
            );
            continue;
        }
        let b = build(&dir, label, bytes);
        let secs = b.took.as_secs_f64();
        println!(
            "{label}: built {:.2} GB (target {:.2}) in {} segments in {secs:.1} s ({:.0} MB/s)",
            b.end as f64 / 1e9,
            b.bytes_target as f64 / 1e9,
            b.segments,
            b.end as f64 / 1e6 / secs
        );
        built.push(b);
    }
    println!();

    // Round by round, so that a noisy stretch hits every size alike.
    let mut baseline = Vec::new();
    let mut samples: Vec<(Vec<f64>, Vec<f64>, u64)> = built.iter().map(|_| Default::default()).collect();
    for _ in 0..rounds {
        baseline.push(run_child(BASELINE).get("hwm_kib") as f64 / 1024.0);
        for (b, (open_ms, hwm_mib, files)) in built.iter().zip(&mut samples) {
            let report = run_child(&b.dir.path().to_string_lossy());
            assert_eq!(
                report.get("segments"),
                b.segments as u64,
                "segments seen by the child"
            );
            open_ms.push(report.get("open_us") as f64 / 1e3);
            hwm_mib.push(report.get("hwm_kib") as f64 / 1024.0);
            *files = (*files).max(report.get("files"));
        }
    }
    let baseline_mib = median(baseline);
    let rows: Vec<Row> = built
        .into_iter()
        .zip(samples)
        .map(|(built, (open_ms, hwm_mib, files))| Row {
            built,
            open_ms: median(open_ms),
            hwm_mib: median(hwm_mib),
            files,
        })
        .collect();
    println!("baseline: a child that only starts peaks at {baseline_mib:.1} MiB RSS");
    println!();
    print_table(&rows, baseline_mib);
    println!();
    print_flatness(&rows);
    // Dropping each TempDir removes its journal.
    let removed = rows.len();
    drop(rows);
    println!("removed {removed} temporary journals");
}

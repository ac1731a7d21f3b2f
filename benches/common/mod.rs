//! Scaffolding shared by the end-to-end benchmarks (`ingest`, `votes`, `resolve`,
//! `audit_ingest`, `http`): per-cell results and percentiles, process and machine CPU from
//! `/proc`, thread spawning, the environment, the workloads of more than one benchmark, and
//! the HTTP load generator.

#![allow(dead_code)]

pub mod assertions;
pub mod contest;
pub mod load;
pub mod meter;

use std::path::PathBuf;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use stemedb::node::{Receipt, SubmitError};

/// Longest a cell waits, once every submission is acknowledged, for the ingest to index it.
pub const INDEX_DEADLINE: Duration = Duration::from_secs(120);

/// Clock ticks per second in `/proc` (`USER_HZ`, fixed at 100 by the Linux ABI).
const USER_HZ: u64 = 100;

/// What one cell measured.
pub struct CellResult {
    /// Ack latencies in nanoseconds, sorted.
    pub samples: Vec<u64>,
    /// Clock start to the last ack, and to everything indexed (or counted).
    pub acked: Duration,
    pub elapsed: Duration,
    pub busy_retries: u64,
    /// Process CPU time (all threads) over `elapsed`.
    pub cpu: Duration,
    /// Syncs and allocations over `elapsed`, where the cell counted them.
    pub metered: meter::Metered,
}

impl CellResult {
    pub fn new(mut done: Submitted, acked: Duration, elapsed: Duration, cpu: Duration) -> Self {
        done.samples.sort_unstable();
        let (samples, busy_retries) = (done.samples, done.busy_retries);
        Self {
            samples,
            acked,
            elapsed,
            busy_retries,
            cpu,
            metered: meter::Metered::default(),
        }
    }

    /// The cell with what its [`meter::Meter`] counted.
    pub fn metered(mut self, metered: meter::Metered) -> Self {
        self.metered = metered;
        self
    }

    /// Process CPU time per record, in microseconds (all threads, the whole cell).
    pub fn cpu_us(&self) -> f64 {
        self.cpu.as_secs_f64() * 1e6 / self.samples.len().max(1) as f64
    }

    pub fn rate(&self) -> f64 {
        self.samples.len() as f64 / self.elapsed.as_secs_f64()
    }

    /// Nearest-rank percentile of the ack latencies, in microseconds.
    pub fn us(&self, pct: usize) -> f64 {
        let rank = (self.samples.len() * pct).div_ceil(100).max(1);
        self.samples.get(rank - 1).map_or(0.0, |&ns| ns as f64 / 1e3)
    }

    /// Process CPU over the cell, in percent of one core.
    pub fn cpu_pct(&self) -> f64 {
        100.0 * self.cpu.as_secs_f64() / self.elapsed.as_secs_f64()
    }
}

/// Reads whitespace-separated tick counts from a `/proc` line, as durations.
fn ticks(fields: &str) -> Vec<Duration> {
    let parse = |t: &str| t.parse::<u64>().expect("a tick count");
    let ticks = fields.split_whitespace().map(parse);
    ticks.map(|t| Duration::from_millis(t * 1000 / USER_HZ)).collect()
}

/// CPU time of this process so far, all threads (exited ones included); 10 ms resolution.
pub fn process_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("read /proc/self/stat");
    // Fields 3.. follow the command name, which may hold spaces; utime and stime are 14, 15.
    let after_name = &stat[stat.rfind(')').expect("a command name") + 2..];
    let fields: Vec<&str> = after_name.split(' ').collect();
    ticks(&fields[11..13].join(" ")).iter().sum()
}

/// Busy and stolen CPU time of the whole machine so far (`/proc/stat`, all cores).
pub fn machine_cpu() -> (Duration, Duration) {
    let stat = std::fs::read_to_string("/proc/stat").expect("read /proc/stat");
    // cpu user nice system idle iowait irq softirq steal ...
    let t = ticks(&stat.lines().next().expect("a cpu line")[3..]);
    (t[0] + t[1] + t[2] + t[5] + t[6], t[7])
}

/// What the submitting (or voting) tasks of one cell did, merged.
#[derive(Default)]
pub struct Submitted {
    pub samples: Vec<u64>,
    pub offset_max: u64,
    pub busy_retries: u64,
}

/// Spawns a named thread running `work`.
pub fn spawn<T: Send + 'static>(name: String, work: impl FnOnce() -> T + Send + 'static) -> JoinHandle<T> {
    let builder = std::thread::Builder::new().name(name);
    builder.spawn(work).expect("spawn thread")
}

/// A `usize` from environment variable `name`, if set and valid.
pub fn env_usize(name: &str) -> Option<usize> {
    std::env::var(name).ok().and_then(|s| s.trim().parse().ok())
}

/// Base directory from `STEMEDB_BENCH_DIR`, else cargo's target tmp dir (created if missing).
pub fn bench_dir() -> PathBuf {
    let dir = std::env::var_os("STEMEDB_BENCH_DIR");
    let dir = dir.map_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")), PathBuf::from);
    std::fs::create_dir_all(&dir).expect("create bench dir");
    dir
}

/// Appends one result to the file `$STEMEDB_BENCH_RESULTS` names (one JSON object a line), for
/// `stemedb bench`, which runs the benchmarks as one suite; does nothing when it is unset.
/// `bench` is the benchmark, `system` the store (stemedb, or its peer), `case` what was done.
pub fn emit(bench: &str, system: &str, case: &str, concurrency: usize, per_s: f64, p50_us: f64, p99_us: f64) {
    let Some(path) = std::env::var_os("STEMEDB_BENCH_RESULTS") else {
        return;
    };
    let line = serde_json::json!({
        "bench": bench, "system": system, "case": case, "concurrency": concurrency,
        "per_s": per_s, "p50_us": p50_us, "p99_us": p99_us,
    });
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .expect("open the results file");
    std::io::Write::write_all(&mut file, format!("{line}\n").as_bytes()).expect("write a result");
}

/// One row of the table: a number of concurrent tasks, each peer's median cell, their ratio.
pub struct Row {
    /// Concurrent submitting (or voting) tasks.
    pub tasks: usize,
    /// StemeDB's median cell.
    pub stemedb: CellResult,
    /// SQLite's median cell.
    pub sqlite: CellResult,
    /// StemeDB's rate over SQLite's.
    pub ratio: f64,
}

/// Prints the table; `tasks` names the first column ("submitters"), `unit` what is counted.
pub fn print_table(rows: &[Row], tasks: &str, unit: &str) {
    let rate = format!("{unit:.6}/s");
    println!("{:>17} | {:<50} | {:<36} |", "", "stemedb", "sqlite");
    println!(
        "{tasks:<10}      N | {rate:>8}   acks/s  p50 us  p99 us busy cpu% cpu us | {rate:>8}  p50 us  p99 us cpu% cpu us | ratio"
    );
    println!("{}", "-".repeat(117));
    let bench = if unit == "votes" { "votes" } else { "ingest" };
    for row in rows {
        let (n, s, q, ratio) = (row.tasks, &row.stemedb, &row.sqlite, row.ratio);
        emit(bench, "stemedb", unit, n, s.rate(), s.us(50), s.us(99));
        emit(bench, "sqlite", unit, n, q.rate(), q.us(50), q.us(99));
        let (acks, len) = (s.samples.len() as f64 / s.acked.as_secs_f64(), s.samples.len());
        let (s50, s99, q50, q99) = (s.us(50), s.us(99), q.us(50), q.us(99));
        let (s_cpu, q_cpu, busy) = (s.cpu_pct(), q.cpu_pct(), s.busy_retries);
        let (s_us, q_us) = (s.cpu_us(), q.cpu_us());
        let (s, q) = (s.rate(), q.rate());
        println!(
            "{n:>10} {len:>6} | {s:>8.0} {acks:>8.0} {s50:>7.0} {s99:>7.0} {busy:>4} {s_cpu:>4.0} {s_us:>6.1} | \
             {q:>8.0} {q50:>7.0} {q99:>7.0} {q_cpu:>4.0} {q_us:>6.1} | {ratio:>5.2}"
        );
    }
    print_costs(rows, tasks, unit);
    let total = |cell: fn(&Row) -> &CellResult| {
        let secs: f64 = rows.iter().map(|r| cell(r).elapsed.as_secs_f64()).sum();
        (rows.iter().map(|r| cell(r).samples.len()).sum::<usize>(), secs)
    };
    let ((n, s_secs), (_, q_secs)) = (total(|r| &r.stemedb), total(|r| &r.sqlite));
    let (s, q) = (n as f64 / s_secs, n as f64 / q_secs);
    let ratio = s / q;
    println!("total: {n} {unit}; stemedb {s:.0}/s, sqlite {q:.0}/s, ratio {ratio:.2}");
}

/// Prints what each indexed write cost in syncs (fdatasync, fsync, msync) and allocations, for
/// both peers (see [`meter`]).
fn print_costs(rows: &[Row], tasks: &str, unit: &str) {
    println!(
        "per write ({unit}), over the clocked part, on every thread: syncs; allocations; bytes allocated"
    );
    println!("{tasks:<10}      N | stemedb   syncs  allocs    bytes | sqlite    syncs  allocs    bytes");
    for row in rows {
        let (s, q) = (&row.stemedb, &row.sqlite);
        let (n, len) = (row.tasks, s.samples.len());
        let (s_syncs, s_allocs, s_bytes) = s.metered.per(len);
        let (q_syncs, q_allocs, q_bytes) = q.metered.per(q.samples.len());
        let (s_syncs, q_syncs) = (meter::show(s_syncs), meter::show(q_syncs));
        println!(
            "{n:>10} {len:>6} |         {s_syncs:>6} {s_allocs:>7.1} {s_bytes:>8.0} |           {q_syncs:>6} {q_allocs:>7.1} {q_bytes:>8.0}"
        );
    }
}

/// Most `Busy` answers one submission retries before the bench gives up on it.
pub const BUSY_RETRIES_MAX: u64 = 10_000;
/// Wait before retrying a `Busy` answer.
pub const BUSY_BACKOFF: Duration = Duration::from_millis(1);

/// A store under test, as the submitting tasks see it.
pub trait Peer<T>: Clone + 'static {
    /// Submits one record and resolves once it is durable; returns its journal offset (0 for
    /// SQLite) and how many `Busy` answers were retried.
    async fn submit_one(&self, record: T) -> (u64, u64);
}

/// Retries `submit` (a StemeDB submission; `what` names it) while it answers `Busy`; returns
/// the receipt's offset and the retries.
pub async fn retry_busy<F, Fut>(what: &str, mut submit: F) -> (u64, u64)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Receipt, SubmitError>>,
{
    let mut retries = 0;
    loop {
        match submit().await {
            Ok(receipt) => return (receipt.offset, retries),
            Err(SubmitError::Busy { .. }) if retries < BUSY_RETRIES_MAX => {
                retries += 1;
                actix_rt::time::sleep(BUSY_BACKOFF).await;
            }
            Err(error) => panic!("stemedb {what} failed after {retries} retries: {error}"),
        }
    }
}

/// Runs one task per share on this actix System thread, each submitting its share one record
/// at a time; resolves once every record is acknowledged.
pub async fn run_tasks<T: 'static, P: Peer<T>>(peer: &P, shares: Vec<Vec<T>>) -> Submitted {
    let task = |peer: P, share: Vec<T>| async move {
        let mut out = Submitted::default();
        for record in share {
            let start = Instant::now();
            let (offset, busy_retries) = peer.submit_one(record).await;
            out.samples.push(start.elapsed().as_nanos() as u64);
            out.offset_max = out.offset_max.max(offset);
            out.busy_retries += busy_retries;
        }
        out
    };
    let spawn = |share| actix::spawn(task(peer.clone(), share));
    let tasks: Vec<_> = shares.into_iter().map(spawn).collect();
    let mut all = Submitted::default();
    for task in tasks {
        let done = task.await.expect("a submitting task panicked");
        all.samples.extend(done.samples);
        all.offset_max = all.offset_max.max(done.offset_max);
        all.busy_retries += done.busy_retries;
    }
    all
}

/// Describes the build: the curve25519 backend signature checks run on, and whether the
/// build targets this CPU (`RUSTFLAGS="-C target-cpu=native"`) or any x86-64.
pub fn build_line() -> String {
    let native = cfg!(all(target_feature = "avx512ifma", target_feature = "avx512vl"))
        || cfg!(target_feature = "avx2");
    let build = if native {
        "native (built for this CPU's features)"
    } else {
        "portable (default)"
    };
    format!(
        "build: {build}; curve25519 backend: {}",
        stemedb::protocol::curve25519_backend()
    )
}

/// One row of the learned trust model's cost (issue 26): `cell(learned)` runs one cell with
/// `[learned]` on or off; `rounds` of both, alternating which goes first; prints the medians,
/// the median of the per-round ratios, the time one `item` costs more, and what the median
/// cells allocated per `item` (see [`meter`]).
pub fn learned_cost_row(
    concurrency: usize,
    writers: &str,
    item: &str,
    rounds: usize,
    mut cell: impl FnMut(bool) -> CellResult,
) {
    let (mut on, mut off, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        for learned in [round % 2 == 0, round % 2 != 0] {
            let result = cell(learned);
            if learned {
                on.push(result)
            } else {
                off.push(result)
            }
        }
        ratios.push(on[round].rate() / off[round].rate());
    }
    let median = |mut cells: Vec<CellResult>| {
        cells.sort_by(|a, b| a.rate().total_cmp(&b.rate()));
        cells.swap_remove(cells.len() / 2)
    };
    ratios.sort_by(f64::total_cmp);
    let (on, off, ratio) = (median(on), median(off), ratios[ratios.len() / 2]);
    let (on_allocs, off_allocs) = (
        on.metered.per(on.samples.len()),
        off.metered.per(off.samples.len()),
    );
    println!(
        "  {concurrency:>4} {writers}: on {:>8.0}/s, off {:>8.0}/s, ratio {ratio:.3} (target >= 0.9); {:.1} us more per {item}; \
         allocations per {item} on {:.1} ({:.0} B), off {:.1} ({:.0} B)",
        on.rate(),
        off.rate(),
        (1.0 / on.rate() - 1.0 / off.rate()) * 1e6,
        on_allocs.1,
        on_allocs.2,
        off_allocs.1,
        off_allocs.2,
    );
}

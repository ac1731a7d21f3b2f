//! Audit cost benchmark (issue 12): does writing an audit record for every resolution slow the
//! ingest? The same ingest runs three ways, each on a fresh node, in alternating rounds:
//!
//! - **alone**: `STEMEDB_BENCH_ASSERTIONS` signed assertions (default 20,000; the `ingest`
//!   benchmark's workload) from 64 submitters, one at a time each, awaiting the durable ack;
//!   throughput = N / (start to `wait_indexed` of the last).
//! - **resolving**: the same, while `CALLERS` tasks resolve the `resolve` benchmark's contest
//!   (20 candidates × 100 votes, consensus lens, computed on a fresh snapshot each time) at an
//!   offered `STEMEDB_BENCH_RESOLVE_RATE` resolves/s in all (default 1,000; a caller that falls
//!   behind skips ticks rather than bursting), with `node.audit = "requested"` and queries that
//!   do not ask: no audit records.
//! - **audited**: the same with `node.audit = "all"`: every resolution writes an audit record,
//!   committed (with an fsync, in the audit trail's own LMDB environment) before it answers.
//!
//! The target: **audited ≥ 0.9 × resolving**, the same offered read load with and without its
//! audit writes. `audited / alone` is printed beside it, the whole cost of the read load.
//! Figures are medians over `STEMEDB_BENCH_ROUNDS` rounds (default 3). Run with
//! `cargo bench --bench audit_ingest`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::assertions::{shares, workload};
use common::contest::{Contest, PREDICATE, SUBJECT};
use common::{CellResult, bench_dir, env_usize, process_cpu, run_tasks};

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use stemedb::lens::Query;
use stemedb::node::{AuditMode, Node};
use stemedb::protocol::Assertion;
use tempfile::TempDir;
use tokio::time::MissedTickBehavior;

const ASSERTIONS_DEFAULT: usize = 20_000;
const SUBMITTERS: usize = 64;
const ROUNDS_DEFAULT: usize = 3;
const RESOLVE_RATE_DEFAULT: usize = 1000;
const CALLERS: usize = 8;
const INDEX_DEADLINE: Duration = Duration::from_secs(120);
const RATIO_TARGET: f64 = 0.9;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Alone,
    Resolving,
    Audited,
}

impl Mode {
    const ALL: [Mode; 3] = [Mode::Alone, Mode::Resolving, Mode::Audited];

    fn name(self) -> &'static str {
        match self {
            Mode::Alone => "alone",
            Mode::Resolving => "resolving",
            Mode::Audited => "audited",
        }
    }
}

/// What the resolving callers of one cell did while the ingest ran.
#[derive(Default)]
struct Reads {
    latencies: Vec<Duration>,
    audited: usize,
}

struct Cell {
    ingest: CellResult,
    reads: Reads,
}

impl Cell {
    fn resolve_rate(&self) -> f64 {
        self.reads.latencies.len() as f64 / self.ingest.elapsed.as_secs_f64()
    }

    fn resolve_p99_us(&self) -> f64 {
        let mut sorted = self.reads.latencies.clone();
        sorted.sort();
        let rank = (sorted.len() * 99).div_ceil(100).max(1);
        sorted.get(rank - 1).map_or(0.0, |d| d.as_secs_f64() * 1e6)
    }
}

/// One caller: resolves the contest every `period` until `stop`.
async fn resolver(node: Node, period: Duration, stop: Arc<AtomicBool>) -> Reads {
    let query = Query::new(SUBJECT, PREDICATE, "consensus");
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let mut reads = Reads::default();
    loop {
        ticker.tick().await;
        if stop.load(Ordering::Acquire) {
            return reads;
        }
        let start = Instant::now();
        let resolution = node.resolve(query.clone()).await.unwrap();
        reads.latencies.push(start.elapsed());
        reads.audited += usize::from(resolution.audit_id.is_some());
    }
}

fn run_cell(mode: Mode, contest: &Contest, assertions: &[Assertion], rate: usize) -> Cell {
    let dir = TempDir::new_in(bench_dir()).unwrap();
    let mut config = contest.config();
    if mode == Mode::Audited {
        config.node.audit = AuditMode::All;
    }
    let shares = shares(assertions, assertions.len(), SUBMITTERS);
    actix::System::new().block_on(async move {
        let node = Node::start(config, dir.path()).unwrap();
        contest.load(&node).await;
        let stop = Arc::new(AtomicBool::new(false));
        let period = Duration::from_secs_f64(CALLERS as f64 / rate as f64);
        let callers: Vec<_> = match mode {
            Mode::Alone => Vec::new(),
            Mode::Resolving | Mode::Audited => (0..CALLERS)
                .map(|_| actix::spawn(resolver(node.clone(), period, stop.clone())))
                .collect(),
        };
        let (start, cpu) = (Instant::now(), process_cpu());
        let done = run_tasks(&node, shares).await;
        let acked = start.elapsed();
        let indexed = node.wait_indexed(done.offset_max, Instant::now() + INDEX_DEADLINE);
        indexed.await.unwrap();
        let (elapsed, cpu) = (start.elapsed(), process_cpu() - cpu);
        stop.store(true, Ordering::Release);
        let mut reads = Reads::default();
        for caller in callers {
            let done = caller.await.unwrap();
            reads.latencies.extend(done.latencies);
            reads.audited += done.audited;
        }
        if mode == Mode::Audited {
            assert_eq!(reads.audited, reads.latencies.len(), "every resolution audited");
            assert!(reads.audited > 0, "audit records were written during the ingest");
        } else {
            assert_eq!(reads.audited, 0);
        }
        node.shutdown().await.unwrap();
        Cell {
            ingest: CellResult::new(done, acked, elapsed, cpu),
            reads,
        }
    })
}

fn median_by(cells: &mut [Cell], key: impl Fn(&Cell) -> f64) -> &Cell {
    cells.sort_by(|a, b| key(a).total_cmp(&key(b)));
    &cells[cells.len() / 2]
}

fn main() {
    let count = env_usize("STEMEDB_BENCH_ASSERTIONS").unwrap_or(ASSERTIONS_DEFAULT);
    let rounds = env_usize("STEMEDB_BENCH_ROUNDS").unwrap_or(ROUNDS_DEFAULT).max(1);
    let rate = env_usize("STEMEDB_BENCH_RESOLVE_RATE")
        .unwrap_or(RESOLVE_RATE_DEFAULT)
        .max(1);
    println!(
        "audit cost benchmark: ingest of {count} assertions from {SUBMITTERS} submitters, alone, \
         and under {rate} offered cold resolves/s without and with an audit record each; \
         {rounds} rounds, medians"
    );
    println!("{}", common::build_line());
    let contest = Contest::new();
    let assertions = workload(count);
    let mut cells: Vec<Vec<Cell>> = Mode::ALL.iter().map(|_| Vec::new()).collect();
    for round in 0..rounds {
        // Rotate the order so that no mode always runs first (on a cold page cache) or last.
        for i in 0..Mode::ALL.len() {
            let m = (round + i) % Mode::ALL.len();
            cells[m].push(run_cell(Mode::ALL[m], &contest, &assertions, rate));
        }
    }
    println!(
        "mode       | ingest/s | ack p50 us | ack p99 us | cpu us/rec | resolves/s | resolve p99 us | audited"
    );
    println!("{}", "-".repeat(101));
    let mut rates = Vec::new();
    for (mode, cells) in Mode::ALL.iter().zip(&mut cells) {
        let m = median_by(cells, |c| c.ingest.rate());
        rates.push(m.ingest.rate());
        println!(
            "{:<10} | {:>8.0} | {:>10.0} | {:>10.0} | {:>10.1} | {:>10.0} | {:>14.0} | {:>7}",
            mode.name(),
            m.ingest.rate(),
            m.ingest.us(50),
            m.ingest.us(99),
            m.ingest.cpu_us(),
            m.resolve_rate(),
            m.resolve_p99_us(),
            m.reads.audited
        );
    }
    println!(
        "audited/resolving: {:.3} (target >= {RATIO_TARGET}); audited/alone: {:.3}; resolving/alone: {:.3}",
        rates[2] / rates[1],
        rates[2] / rates[0],
        rates[1] / rates[0]
    );
}

//! Ingest benchmark (issue 4): end-to-end embedded ingest of signed assertions, durable then
//! indexed, at 1, 64 and 1,000 concurrent submitters, for StemeDB and a SQLite peer doing the
//! same job, side by side in one run, with the ratio stemedb/sqlite (median of alternating rounds).
//!
//! **Workload**, signed before any clock starts: assertion `i` is subject `entity/{i % 1000}`,
//! predicate `p{(i / 1000) % 4}`, object `Integer(i)`, `timestamp_ms = now_ms()` at signing, one
//! signature by key `AgentKey::from_secret_bytes(&[i % 256; 32])`; ~150 bytes encoded. Both peers
//! get the same assertions, dealt round-robin to the same **submitters**: async tasks on one actix
//! System thread, each submitting one assertion at a time and awaiting its ack (latency: submit
//! call to ack, queueing included). Each cell has a fresh data directory.
//!
//! **StemeDB** (`Config::default()`): `node.submit(a)`; the node's verification threads (one per
//! core) check shape, limits and signatures, batch-verifying what submissions wait (up to 256);
//! the journal acks once the record is fdatasync'ed (group commit). `Busy` is retried after 1 ms
//! and counted. After the last ack, `node.wait_indexed(max offset)` waits until LMDB holds all
//! (by hash, subject, subject+predicate). Throughput = N / (start to `wait_indexed` returning);
//! `acks/s` = N / (start to the last ack).
//!
//! **SQLite** (bundled, `journal_mode=WAL`, `synchronous=FULL`): table `assertions(hash BLOB
//! PRIMARY KEY, subject, predicate, timestamp_ms, record BLOB)`, indexed on `(subject,
//! timestamp_ms)` and `(subject, predicate, timestamp_ms)`. A submit goes to verification threads
//! (one per core) running `validate_assertion` (the same checks, one signature at a time, as a
//! typical application does) and encoding the record for ONE writer thread, which inserts what
//! is pending (up to 1,000) in one transaction (`INSERT OR IGNORE`), commits (WAL fsync), then
//! acks each. Rows are indexed at commit: throughput = N / (start to the last ack).
//!
//! **Fairness.** Same durability (an fsync before each ack), indexes, submitters and verification
//! parallelism; every signature checked before storage. A verification pool rather than a thread
//! per submitter keeps latencies comparable (with 1,000 threads on 2 cores, the wait for a core
//! would fall outside the clock). Batch verification is StemeDB's own; the calibration lines show
//! its worth. Setup and shutdown are outside the clock. `cpu%` is the process's CPU over the cell
//! (200 = two cores busy); well below the machine's total, a cell waits on fsyncs or hand-offs.
//!
//! Run with `cargo bench --bench ingest`. Environment: `STEMEDB_BENCH_ASSERTIONS` (N at 64 and
//! 1,000 submitters, default 20,000; the fsync-bound 1-submitter cell runs N/10),
//! `STEMEDB_BENCH_ROUNDS` (default 3), `STEMEDB_BENCH_DIR` (default the cargo target tmp dir; it
//! must be on the disk under test, not a tmpfs).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::assertions::{ingest_cell, shares, workload};
use common::meter::Meter;
use common::{
    CellResult, Peer, Row, bench_dir, env_usize, machine_cpu, print_table, process_cpu, run_tasks, spawn,
};

use std::alloc::System;
use std::path::Path;
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender};
use rusqlite::{Connection, params};
use stemedb::node::{Node, NodeConfig};
use stemedb::protocol::{Assertion, Limits};
use stemedb::protocol::{now_ms, validate_assertion, validate_assertions};
use tempfile::TempDir;
use tokio::sync::oneshot;

/// Concurrent submitter counts, one table row each.
const SUBMITTERS: [usize; 3] = [1, 64, 1000];
/// Default N: assertions per cell at 64 and 1,000 submitters.
const ASSERTIONS_DEFAULT: usize = 20_000;

/// Counts every allocation, for the per-write costs (see `common::meter`).
#[global_allocator]
static GLOBAL: &stats_alloc::StatsAlloc<System> = &common::meter::ALLOCATOR;
/// The 1-submitter cell runs N/this: each of its assertions waits for an fsync of its own.
const SOLO_DIVISOR: usize = 10;
const ROUNDS_DEFAULT: usize = 3;
/// Most rows per SQLite transaction: the writer drains up to this many pending submissions.
const SQLITE_TXN_RECORDS_MAX: usize = 1000;
/// Capacity of the SQLite peer's queues: above the submitters, each with one request in flight.
const SQLITE_QUEUE_DEPTH_MAX: usize = 4096;
/// Assertions per calibration run, and its batch size: the node's `verify_batch_records_max`.
const CALIBRATION_RECORDS: usize = 8192;
const CALIBRATION_BATCH: usize = 256;
/// Targets from issue 4, at 64 and 1,000 submitters (printed, never asserted).
const THROUGHPUT_TARGET: f64 = 50_000.0;
const RATIO_TARGET: f64 = 1.7;
/// A submission to the SQLite peer: the assertion and where its ack goes.
type SqliteRequest = (Assertion, oneshot::Sender<()>);
/// A verified submission on its way to the SQLite writer, with its content hash and record.
type SqliteJob = ([u8; 32], Assertion, Vec<u8>, oneshot::Sender<()>);

/// The SQLite peer's front: the queue to its verification threads.
#[derive(Clone)]
struct SqlitePeer(Sender<SqliteRequest>);

impl Peer<Assertion> for SqlitePeer {
    async fn submit_one(&self, assertion: Assertion) -> (u64, u64) {
        let (ack, acked) = oneshot::channel();
        let queued = self.0.try_send((assertion, ack));
        queued.expect("the queue holds more than one request per submitter");
        acked.await.expect("sqlite writer dropped an ack");
        (0, 0)
    }
}

/// Opens a SQLite database at `path` with the schema and durability settings of the docs.
fn sqlite_open(path: &Path) -> Connection {
    let conn = Connection::open(path).expect("open sqlite");
    let mode = conn.query_row("PRAGMA journal_mode=WAL", [], |row| row.get::<_, String>(0));
    assert_eq!(mode.expect("set journal mode"), "wal");
    conn.execute_batch(
        "PRAGMA synchronous=FULL;
         CREATE TABLE assertions(hash BLOB PRIMARY KEY, subject TEXT NOT NULL, predicate TEXT NOT NULL,
                                 timestamp_ms INTEGER NOT NULL, record BLOB NOT NULL);
         CREATE INDEX by_subject ON assertions(subject, timestamp_ms);
         CREATE INDEX by_subject_predicate ON assertions(subject, predicate, timestamp_ms);",
    )
    .expect("create sqlite schema");
    conn
}

/// A SQLite verification thread: validates each request (shape, limits, signature) and encodes
/// its record for the writer.
fn sqlite_verifier(requests: Receiver<SqliteRequest>, jobs: Sender<SqliteJob>) {
    let limits = Limits::default();
    while let Ok((assertion, ack)) = requests.recv() {
        let hash = validate_assertion(&assertion, &limits, now_ms()).expect("valid assertion");
        let record = assertion.to_record_bytes();
        jobs.send((*hash.as_bytes(), assertion, record, ack))
            .expect("sqlite writer gone");
    }
}

/// The one SQLite writer: takes up to `SQLITE_TXN_RECORDS_MAX` pending jobs, inserts them in
/// one transaction, commits, then acks each. Returns the connection once every sender is gone.
fn sqlite_writer(mut conn: Connection, jobs: Receiver<SqliteJob>) -> Connection {
    const INSERT: &str = "INSERT OR IGNORE INTO assertions(hash, subject, predicate, timestamp_ms, record)
                          VALUES (?1, ?2, ?3, ?4, ?5)";
    let mut batch = Vec::with_capacity(SQLITE_TXN_RECORDS_MAX);
    while let Ok(first) = jobs.recv() {
        batch.push(first);
        batch.extend(jobs.try_iter().take(SQLITE_TXN_RECORDS_MAX - 1));
        let txn = conn.transaction().expect("begin");
        {
            let mut insert = txn.prepare_cached(INSERT).expect("prepare insert");
            for (hash, a, record, _) in &batch {
                let row = params![hash, a.subject, a.predicate, a.timestamp_ms as i64, record];
                insert.execute(row).expect("insert");
            }
        }
        txn.commit().expect("commit");
        for (_, _, _, ack) in batch.drain(..) {
            let _ = ack.send(());
        }
    }
    conn
}

/// One cell against a fresh SQLite database.
fn bench_sqlite(base: &Path, shares: Vec<Vec<Assertion>>) -> CellResult {
    let dir = TempDir::new_in(base).expect("create sqlite temp dir");
    let expected = shares.iter().map(Vec::len).sum::<usize>() as i64;
    let conn = sqlite_open(&dir.path().join("bench.sqlite"));
    let (jobs, queue) = crossbeam_channel::bounded(SQLITE_QUEUE_DEPTH_MAX);
    let writer = spawn("sqlite-writer".into(), move || sqlite_writer(conn, queue));
    let (requests, incoming) = crossbeam_channel::bounded(SQLITE_QUEUE_DEPTH_MAX);
    let mut verifiers = Vec::new();
    for index in 0..NodeConfig::default().verify_threads() {
        let (incoming, jobs) = (incoming.clone(), jobs.clone());
        let verify = move || sqlite_verifier(incoming, jobs);
        verifiers.push(spawn(format!("sqlite-verify-{index}"), verify));
    }
    drop((jobs, incoming));
    let peer = SqlitePeer(requests);
    let (done, elapsed, cpu, metered) = actix::System::new().block_on(async move {
        let meter = Meter::start();
        let (start, cpu) = (Instant::now(), process_cpu());
        let done = run_tasks(&peer, shares).await;
        let (elapsed, cpu) = (start.elapsed(), process_cpu() - cpu);
        (done, elapsed, cpu, meter.stop())
    });
    // The peer went with the System's future: the verifiers, then the writer, run dry.
    for verifier in verifiers {
        verifier.join().expect("sqlite verifier panicked");
    }
    let conn = writer.join().expect("sqlite writer panicked");
    let count = |row: &rusqlite::Row<'_>| row.get::<_, i64>(0);
    let stored = conn.query_row("SELECT COUNT(*) FROM assertions", [], count);
    assert_eq!(
        stored.expect("count"),
        expected,
        "sqlite must store every assertion"
    );
    CellResult::new(done, elapsed, elapsed, cpu).metered(metered)
}

/// Prints what signature checks cost with one thread per core at once, the machine's ceiling for
/// that step alone: one at a time (as the SQLite peer does; a batch of one is verified singly)
/// and in batches of 256 (as StemeDB does when enough submissions wait).
fn print_calibration(workload: &[Assertion]) {
    let sample = &workload[..CALIBRATION_RECORDS.min(workload.len())];
    let cores = NodeConfig::default().verify_threads();
    for batch in [1, CALIBRATION_BATCH] {
        let check = || {
            for chunk in sample.chunks(batch) {
                let verdicts = validate_assertions(chunk, &Limits::default(), now_ms());
                assert!(verdicts.iter().all(Result::is_ok));
            }
        };
        let start = Instant::now();
        std::thread::scope(|scope| (0..cores).for_each(|_| drop(scope.spawn(check))));
        let us = start.elapsed().as_secs_f64() * 1e6 / (sample.len() * cores) as f64;
        println!(
            "signature checks in batches of {batch:>3} on {cores} threads: {us:>4.1} us per assertion = {:.0}/s",
            1e6 / us
        );
    }
    println!();
}

/// Runs every round of one row, alternating which peer goes first, so that a noisy stretch of
/// the machine hits both.
fn run_row(dir: &Path, rounds: usize, workload: &[Assertion], count: usize, submitters: usize) -> Row {
    let (mut stemedb, mut sqlite, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        for stemedb_turn in [round % 2 == 0, round % 2 != 0] {
            let shares = shares(workload, count, submitters);
            if stemedb_turn {
                stemedb.push(ingest_cell(dir, shares));
            } else {
                sqlite.push(bench_sqlite(dir, shares));
            }
        }
        ratios.push(stemedb[round].rate() / sqlite[round].rate());
    }
    ratios.sort_by(f64::total_cmp);
    let ratio = ratios[ratios.len() / 2];
    let median = |mut cells: Vec<CellResult>| {
        cells.sort_by(|a, b| a.rate().total_cmp(&b.rate()));
        cells.swap_remove(cells.len() / 2)
    };
    let (stemedb, sqlite) = (median(stemedb), median(sqlite));
    Row {
        tasks: submitters,
        stemedb,
        sqlite,
        ratio,
    }
}

/// The learned trust model's cost (issue 26): the node with `[learned]` on against off, on
/// the same assertions (each signer's claim is an answer), alternating which goes first;
/// medians and the median of the per-round ratios.
fn learned_cost(dir: &Path, rounds: usize, workload: &[Assertion], count: usize) {
    println!(
        "learned trust model: stemedb with [learned] on against off, {count} assertions ({} at 1 submitter), medians of {rounds} rounds",
        count / SOLO_DIVISOR
    );
    for submitters in SUBMITTERS {
        // The 1-submitter cell, fsync-bound, runs N/SOLO_DIVISOR as in the main table.
        let count = count / if submitters == 1 { SOLO_DIVISOR } else { 1 };
        common::learned_cost_row(submitters, "submitters", "assertion", rounds, |learned| {
            let start = move |dir: &Path| {
                let mut config = stemedb::Config::default();
                config.learned.enabled = learned;
                Node::start(config, dir).expect("start node")
            };
            common::assertions::ingest_cell_with(dir, start, shares(workload, count, submitters))
        });
    }
}

fn main() {
    let (began, machine_began, process_began) = (Instant::now(), machine_cpu(), process_cpu());
    let count = env_usize("STEMEDB_BENCH_ASSERTIONS").filter(|&n| n >= SOLO_DIVISOR);
    let count = count.unwrap_or(ASSERTIONS_DEFAULT);
    let rounds = env_usize("STEMEDB_BENCH_ROUNDS").filter(|&r| r > 0);
    let rounds = rounds.unwrap_or(ROUNDS_DEFAULT);
    let dir = bench_dir();
    let nproc = std::thread::available_parallelism().map_or(0, |n| n.get());
    let (dir_name, (target, ratio)) = (dir.display(), (THROUGHPUT_TARGET, RATIO_TARGET));
    println!("ingest benchmark: signed assertions, durable ack then indexed; stemedb vs sqlite (WAL, FULL)");
    println!("machine: nproc = {nproc}; medians of {rounds} rounds; bench dir: {dir_name}");
    println!("{}", common::build_line());
    println!("targets at 64 and 1000 submitters: stemedb >= {target:.0} assertions/s, ratio >= {ratio:.1}");
    let workload = workload(count);
    print_calibration(&workload);
    let learned = std::env::var("STEMEDB_BENCH_LEARNED").unwrap_or_default();
    if learned != "only" {
        let mut rows = Vec::new();
        for submitters in SUBMITTERS {
            let n = count / if submitters == 1 { SOLO_DIVISOR } else { 1 };
            rows.push(run_row(&dir, rounds, &workload, n, submitters));
        }
        print_table(&rows, "submitters", "assertions");
    }
    if learned != "0" {
        learned_cost(&dir, rounds, &workload, count);
    }
    let wall = began.elapsed().as_secs_f64();
    let (busy, steal) = machine_cpu();
    let others = (busy - machine_began.0).saturating_sub(process_cpu() - process_began);
    let others_pct = others.as_secs_f64() / wall * 100.0;
    let steal_pct = (steal - machine_began.1).as_secs_f64() / wall * 100.0;
    println!(
        "total bench time {wall:.1} s; meanwhile other processes used {others_pct:.0}% of a core and the \
         hypervisor stole {steal_pct:.0}% (both should be near 0)"
    );
}

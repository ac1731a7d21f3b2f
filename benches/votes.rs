//! Votes benchmark (issue 5): signed votes end-to-end, durable then counted, at 1, 64 and 1,000
//! concurrent voters, for StemeDB and a SQLite peer doing the same job, side by side in one run,
//! with the ratio stemedb/sqlite (median of alternating rounds).
//!
//! **Workload**, signed before any clock starts: 100 assertions, and N votes on them by 1,000 voter
//! keys. Vote `i` is voter `i % 1000`'s vote `j = i / 1000`, timestamped `now_ms() - N/1000 + j` (a
//! voter's votes grow newer), weight `0.5 * (1 + i % 200)` (in (0, 100]; halves keep float sums
//! exact). A quarter of the votes (`j % 4 == 1`) re-vote the voter's previous assertion, newer and
//! with another weight: they replace its live vote (count kept, weight adjusted); the others go to
//! assertions the voter has not voted on yet. Both peers get the same votes, dealt to the same
//! **voter tasks** on one actix System thread, each casting one vote at a time and awaiting its ack
//! (latency: cast call to ack, queueing included); voter `v` goes to task `v % tasks`, in order, so
//! with 1,000 tasks a task is a voter. Each cell has a fresh data directory, with the assertions
//! stored (and, for StemeDB, indexed) before the clock starts.
//!
//! **StemeDB** (`Config::default()`): `node.cast_vote(v)`; verification threads (one per core)
//! check shape, limits and signature, batch-verifying what waits (up to 256); the journal acks once
//! the record is fdatasync'ed (group commit). `Busy` is retried after 1 ms and counted. After the
//! last ack, `node.wait_indexed(max offset)` waits until LMDB holds the live votes and exact totals
//! (the ingestor checks that the assertion is stored; vote-counter shards fold the votes in).
//! Throughput = N / (start to `wait_indexed` returning); `acks/s` = N / (start to the last ack).
//!
//! **SQLite** (bundled, `journal_mode=WAL`, `synchronous=FULL`): tables `votes(assertion, voter,
//! weight REAL, timestamp_ms, hash, record, PRIMARY KEY(assertion, voter))`, `totals(assertion
//! PRIMARY KEY, count, weight REAL)` and `assertions(hash PRIMARY KEY, record)`. A cast goes to
//! verification threads (one per core) running `validate_vote` (the same checks, one signature at
//! a time, as a typical application does), then to ONE writer thread, which takes what is pending
//! (up to 1,000) into one transaction and, per vote: checks that the assertion is stored; reads the
//! live (assertion, voter) row; inserts it if absent (count + 1, weight + w), replaces it if the
//! new vote is newer by (timestamp, hash) (weight + difference), else does nothing; then commits
//! (WAL fsync) and acks each. Rows count at commit: throughput = N / (start to the last ack).
//!
//! **Fairness.** Same durability (an fsync before each ack), rows, totals, replace rule, voter tasks
//! and verification parallelism; every signature checked before storage. StemeDB does more: exact
//! weight sums (384-bit fixed point; SQLite's REAL rounds) and each vote stored twice (journal,
//! then LMDB, whose commits fsync too). A verification pool rather than a thread per voter keeps
//! latencies comparable (with 1,000 threads on 2 cores, the wait for a core would fall outside the
//! clock). Batch verification is StemeDB's own; the calibration lines show its worth. Setup, the
//! check of every assertion's totals against a recount of the votes (both peers) and shutdown are
//! outside the clock. `cpu%` is the process's CPU over the cell (200 = two cores busy); well below
//! the machine's total, a cell waits on fsyncs or hand-offs.
//!
//! Run with `cargo bench --bench votes`. Environment: `STEMEDB_BENCH_VOTES` (N at 64 and 1,000
//! voters, default 50,000; the fsync-bound 1-voter cell runs N/10), `STEMEDB_BENCH_ROUNDS` (default
//! 3), `STEMEDB_BENCH_DIR` (default the cargo target tmp dir; it must be on the disk under test,
//! not a tmpfs).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::{
    CellResult, Peer, Row, bench_dir, env_usize, machine_cpu, print_table, process_cpu, retry_busy,
    run_tasks, spawn,
};

use common::meter::Meter;
use std::alloc::System;
use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use stemedb::node::{Node, NodeConfig};
use stemedb::protocol::{AgentKey, Assertion, Hash, Limits, LogRecord, ObjectValue, Vote};
use stemedb::protocol::{now_ms, validate_records, validate_vote};
use tempfile::TempDir;
use tokio::sync::oneshot;

/// Concurrent voter tasks, one table row each.
const VOTERS: [usize; 3] = [1, 64, 1000];
/// Default N: votes per cell at 64 and 1,000 voters.
const VOTES_DEFAULT: usize = 50_000;

/// Counts every allocation, for the per-vote costs (see `common::meter`).
#[global_allocator]
static GLOBAL: &stats_alloc::StatsAlloc<System> = &common::meter::ALLOCATOR;
/// The 1-voter cell runs N/this: each of its votes waits for an fsync of its own.
const SOLO_DIVISOR: usize = 10;
const ROUNDS_DEFAULT: usize = 3;
/// Distinct voter keys, and the assertions they vote on.
const VOTER_KEYS: usize = 1000;
const ASSERTIONS: usize = 100;
/// One vote in this many replaces the voter's previous one: the second of each run of this many,
/// so that the short 1-voter cell replaces votes too.
const REVOTE_EVERY: usize = 4;
/// Most votes per SQLite transaction: the writer drains up to this many pending casts.
const SQLITE_TXN_VOTES_MAX: usize = 1000;
/// Capacity of the SQLite peer's queues: above the voter tasks, each with one cast in flight.
const SQLITE_QUEUE_DEPTH_MAX: usize = 4096;
/// Retries of one `Busy` cast before the benchmark gives up, and the pause before each
/// (tokio's timer has millisecond granularity).
/// Longest `wait_indexed` may take, for the assertions before the clock or the votes after it.
const INDEX_DEADLINE: Duration = Duration::from_secs(120);
/// Votes per calibration run, and its batch size: the node's `verify_batch_records_max`.
const CALIBRATION_VOTES: usize = 8192;
const CALIBRATION_BATCH: usize = 256;
/// Target from issue 5, at 1,000 voters (printed, never asserted).
const THROUGHPUT_TARGET: f64 = 50_000.0;
/// The assertions and the votes on them.
type Workload = (Vec<Assertion>, Vec<Vote>);

/// Signs the assertions and `count` votes of the module docs.
fn workload(count: usize) -> Workload {
    let author = AgentKey::from_secret_bytes(&[0xa5; 32]);
    let mut assertions = Vec::with_capacity(ASSERTIONS);
    for i in 0..ASSERTIONS {
        let object = ObjectValue::Integer(i as i64);
        let mut a = Assertion::new(format!("topic/{i:03}"), "score", object, 0.9, now_ms());
        assertions.push(a.sign(&author).clone());
    }
    let hashes: Vec<Hash> = assertions.iter().map(Assertion::content_hash).collect();
    let key = |k: usize| AgentKey::from_secret_bytes(Hash::of(&k.to_le_bytes()).as_bytes());
    let keys: Vec<AgentKey> = (0..VOTER_KEYS).map(key).collect();
    let base_ms = now_ms() - count.div_ceil(VOTER_KEYS) as u64;
    // Per voter: the assertion of its last vote, and how many distinct ones it voted on.
    let (mut last, mut votes) = (vec![(0, 0); VOTER_KEYS], Vec::with_capacity(count));
    for i in 0..count {
        let (voter, j) = (i % VOTER_KEYS, i / VOTER_KEYS);
        let (previous, distinct) = last[voter];
        let (revote, fresh) = (j % REVOTE_EVERY == 1, (voter + distinct) % ASSERTIONS);
        let target = if revote { previous } else { fresh };
        last[voter] = (target, distinct + usize::from(!revote));
        let (weight, timestamp_ms) = (0.5 * (1 + i % 200) as f32, base_ms + j as u64);
        votes.push(Vote::sign(&keys[voter], hashes[target], weight, timestamp_ms));
    }
    (assertions, votes)
}

/// Deals the first `count` votes to `tasks` shares, each voter to one share, in order.
fn shares(votes: &[Vote], count: usize, tasks: usize) -> Vec<Vec<Vote>> {
    let mut shares = vec![Vec::new(); tasks];
    for (i, vote) in votes[..count].iter().enumerate() {
        shares[(i % VOTER_KEYS) % tasks].push(vote.clone());
    }
    shares
}

/// Vote totals by assertion: the number of live votes and their weight sum.
type Totals = HashMap<Hash, (u64, f64)>;

/// Recounts `shares`: the live vote of a voter on an assertion is its newest by (timestamp,
/// hash); weight sums are exact, since weights are halves.
fn recount(shares: &[Vec<Vote>]) -> Totals {
    let mut live: HashMap<(Hash, [u8; 32]), (u64, Hash, f32)> = HashMap::new();
    for vote in shares.iter().flatten() {
        let new = (vote.timestamp_ms, vote.content_hash(), vote.weight);
        let slot = live
            .entry((vote.assertion, *vote.voter.as_bytes()))
            .or_insert(new);
        if (new.0, new.1) > (slot.0, slot.1) {
            *slot = new;
        }
    }
    let mut totals = Totals::new();
    for ((assertion, _), (_, _, weight)) in live {
        let total = totals.entry(assertion).or_default();
        *total = (total.0 + 1, total.1 + f64::from(weight));
    }
    totals
}

impl Peer<Vote> for Node {
    async fn submit_one(&self, record: Vote) -> (u64, u64) {
        // `cast_vote` consumes the record even when it answers Busy, hence the clone.
        retry_busy("cast_vote", || self.cast_vote(record.clone())).await
    }
}

/// One cell against a fresh StemeDB node with the default config.
fn bench_stemedb(base: &Path, assertions: Vec<Assertion>, shares: Vec<Vec<Vote>>) -> CellResult {
    bench_stemedb_with(base, assertions, shares, true)
}

/// [`bench_stemedb`], with the learned trust model on or off.
fn bench_stemedb_with(
    base: &Path,
    assertions: Vec<Assertion>,
    shares: Vec<Vec<Vote>>,
    learned: bool,
) -> CellResult {
    let dir = TempDir::new_in(base).expect("create stemedb temp dir");
    let expected = recount(&shares);
    actix::System::new().block_on(async move {
        let mut config = stemedb::Config::default();
        config.learned.enabled = learned;
        let node = Node::start(config, dir.path()).expect("start node");
        let receipts = node.submit_many(assertions).await.expect("submit assertions");
        let last = receipts
            .into_iter()
            .map(|r| r.expect("assertion stored").offset)
            .max();
        let stored = node.wait_indexed(last.expect("assertions"), Instant::now() + INDEX_DEADLINE);
        stored.await.expect("assertions indexed");
        let meter = Meter::start();
        let (start, cpu) = (Instant::now(), process_cpu());
        let done = run_tasks(&node, shares).await;
        let acked = start.elapsed();
        let indexed = node.wait_indexed(done.offset_max, Instant::now() + INDEX_DEADLINE);
        indexed.await.expect("wait_indexed");
        let (elapsed, cpu) = (start.elapsed(), process_cpu() - cpu);
        let metered = meter.stop();
        let counts = node.counts().expect("counts");
        assert_eq!(
            counts,
            (ASSERTIONS as u64, 0),
            "stored assertions, rejected records"
        );
        let totals = |h: &Hash| node.vote_totals(h).map(|t| (*h, (t.count, t.weight_f64())));
        let found: Result<Totals, _> = expected.keys().map(totals).collect();
        assert_eq!(found.expect("vote totals"), expected, "stemedb totals vs recount");
        node.shutdown().await.expect("shutdown");
        CellResult::new(done, acked, elapsed, cpu).metered(metered)
    })
}

/// A cast to the SQLite peer: the vote and where its ack goes.
type SqliteRequest = (Vote, oneshot::Sender<()>);
/// A verified vote on its way to the SQLite writer, with its content hash and record.
type SqliteJob = (Hash, Vote, Vec<u8>, oneshot::Sender<()>);

/// The SQLite peer's front: the queue to its verification threads.
#[derive(Clone)]
struct SqlitePeer(Sender<SqliteRequest>);

impl Peer<Vote> for SqlitePeer {
    async fn submit_one(&self, vote: Vote) -> (u64, u64) {
        let (ack, acked) = oneshot::channel();
        let queued = self.0.try_send((vote, ack));
        queued.expect("the queue holds more than one cast per voter task");
        acked.await.expect("sqlite writer dropped an ack");
        (0, 0)
    }
}

/// Opens a SQLite database at `path` with the schema and durability of the docs; stores
/// `assertions`.
fn sqlite_open(path: &Path, assertions: &[Assertion]) -> Connection {
    let mut conn = Connection::open(path).expect("open sqlite");
    let mode = conn.query_row("PRAGMA journal_mode=WAL", [], |row| row.get::<_, String>(0));
    assert_eq!(mode.expect("set journal mode"), "wal");
    conn.execute_batch(
        "PRAGMA synchronous=FULL;
         CREATE TABLE assertions(hash BLOB PRIMARY KEY, record BLOB NOT NULL);
         CREATE TABLE votes(assertion BLOB NOT NULL, voter BLOB NOT NULL, weight REAL NOT NULL,
                            timestamp_ms INTEGER NOT NULL, hash BLOB NOT NULL, record BLOB NOT NULL,
                            PRIMARY KEY(assertion, voter));
         CREATE TABLE totals(assertion BLOB PRIMARY KEY, count INTEGER NOT NULL, weight REAL NOT NULL);",
    )
    .expect("create sqlite schema");
    let txn = conn.transaction().expect("begin");
    for a in assertions {
        let (hash, record) = (a.content_hash(), a.to_record_bytes());
        let insert = "INSERT INTO assertions(hash, record) VALUES (?1, ?2)";
        txn.execute(insert, params![hash.as_bytes(), record])
            .expect("insert assertion");
    }
    txn.commit().expect("commit assertions");
    conn
}

/// A SQLite verification thread: validates each vote (shape, limits, signature) and encodes its
/// record for the writer.
fn sqlite_verifier(requests: Receiver<SqliteRequest>, jobs: Sender<SqliteJob>) {
    let limits = Limits::default();
    while let Ok((vote, ack)) = requests.recv() {
        let hash = validate_vote(&vote, &limits, now_ms()).expect("valid vote");
        let record = vote.to_record_bytes();
        jobs.send((hash, vote, record, ack)).expect("sqlite writer gone");
    }
}

/// Counts one vote in `txn` as the module docs say; returns false if its assertion is unknown.
fn sqlite_count(txn: &Transaction<'_>, hash: &Hash, vote: &Vote, record: &[u8]) -> rusqlite::Result<bool> {
    const KNOWN: &str = "SELECT 1 FROM assertions WHERE hash = ?1";
    const LIVE: &str = "SELECT timestamp_ms, hash, weight FROM votes WHERE assertion = ?1 AND voter = ?2";
    const INSERT: &str = "INSERT INTO votes(assertion, voter, weight, timestamp_ms, hash, record)
                          VALUES (?1, ?2, ?3, ?4, ?5, ?6)";
    const REPLACE: &str = "UPDATE votes SET weight = ?3, timestamp_ms = ?4, hash = ?5, record = ?6
                           WHERE assertion = ?1 AND voter = ?2";
    const ADD: &str = "INSERT INTO totals(assertion, count, weight) VALUES (?1, 1, ?2) ON CONFLICT(assertion)
                       DO UPDATE SET count = count + 1, weight = weight + excluded.weight";
    const ADJUST: &str = "UPDATE totals SET weight = weight + ?2 WHERE assertion = ?1";
    let (assertion, voter) = (vote.assertion.as_bytes(), vote.voter.as_bytes());
    if !txn.prepare_cached(KNOWN)?.exists([assertion])? {
        return Ok(false);
    }
    let read = |row: &rusqlite::Row<'_>| Ok((row.get(0)?, row.get(1)?, row.get(2)?));
    let mut live = txn.prepare_cached(LIVE)?;
    let live: Option<(i64, [u8; 32], f64)> = live.query_row([assertion, voter], read).optional()?;
    let weight = f64::from(vote.weight);
    let key = (vote.timestamp_ms as i64, *hash.as_bytes());
    let row = params![assertion, voter, weight, key.0, hash.as_bytes(), record];
    match live {
        None => {
            txn.prepare_cached(INSERT)?.execute(row)?;
            txn.prepare_cached(ADD)?.execute(params![assertion, weight])?;
        }
        Some((timestamp_ms, live_hash, live_weight)) if key > (timestamp_ms, live_hash) => {
            txn.prepare_cached(REPLACE)?.execute(row)?;
            txn.prepare_cached(ADJUST)?
                .execute(params![assertion, weight - live_weight])?;
        }
        Some(_) => {}
    }
    Ok(true)
}

/// The one SQLite writer: takes up to `SQLITE_TXN_VOTES_MAX` pending jobs, counts them in one
/// transaction, commits, then acks each. Returns the connection and the number of votes about
/// unknown assertions once every sender is gone.
fn sqlite_writer(mut conn: Connection, jobs: Receiver<SqliteJob>) -> (Connection, usize) {
    let (mut batch, mut unknown) = (Vec::with_capacity(SQLITE_TXN_VOTES_MAX), 0);
    while let Ok(first) = jobs.recv() {
        batch.push(first);
        batch.extend(jobs.try_iter().take(SQLITE_TXN_VOTES_MAX - 1));
        let txn = conn.transaction().expect("begin");
        for (hash, vote, record, _) in &batch {
            unknown += usize::from(!sqlite_count(&txn, hash, vote, record).expect("count vote"));
        }
        txn.commit().expect("commit");
        for (_, _, _, ack) in batch.drain(..) {
            let _ = ack.send(());
        }
    }
    (conn, unknown)
}

/// One cell against a fresh SQLite database.
fn bench_sqlite(base: &Path, assertions: &[Assertion], shares: Vec<Vec<Vote>>) -> CellResult {
    let dir = TempDir::new_in(base).expect("create sqlite temp dir");
    let expected = recount(&shares);
    let conn = sqlite_open(&dir.path().join("bench.sqlite"), assertions);
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
    let (conn, unknown) = writer.join().expect("sqlite writer panicked");
    assert_eq!(unknown, 0, "every vote is about a stored assertion");
    let read = |row: &rusqlite::Row<'_>| {
        let count = u64::try_from(row.get::<_, i64>(1)?).expect("a non-negative count");
        Ok((Hash::from_bytes(row.get(0)?), (count, row.get(2)?)))
    };
    let mut totals = conn.prepare("SELECT * FROM totals").expect("prepare");
    let found: rusqlite::Result<Totals> = totals.query_map([], read).expect("scan").collect();
    assert_eq!(found.expect("totals row"), expected, "sqlite totals vs recount");
    CellResult::new(done, elapsed, elapsed, cpu).metered(metered)
}

/// Prints what vote signature checks cost with one thread per core at once, the machine's
/// ceiling for that step alone: one at a time (as the SQLite peer does) and in batches of 256
/// (as StemeDB does when enough casts wait).
fn print_calibration(votes: &[Vote]) {
    let sample = votes.iter().take(CALIBRATION_VOTES).cloned();
    let sample: Vec<LogRecord> = sample.map(LogRecord::Vote).collect();
    let cores = NodeConfig::default().verify_threads();
    for batch in [1, CALIBRATION_BATCH] {
        let check = || {
            for chunk in sample.chunks(batch) {
                let verdicts = validate_records(chunk, &Limits::default(), now_ms());
                assert!(verdicts.iter().all(Result::is_ok));
            }
        };
        let start = Instant::now();
        std::thread::scope(|scope| (0..cores).for_each(|_| drop(scope.spawn(check))));
        let us = start.elapsed().as_secs_f64() * 1e6 / (sample.len() * cores) as f64;
        println!(
            "vote checks in batches of {batch:>3} on {cores} threads: {us:>4.1} us per vote = {:.0}/s",
            1e6 / us
        );
    }
    println!();
}

/// Runs every round of one row, alternating which peer goes first, so that a noisy stretch of
/// the machine hits both.
fn run_row(dir: &Path, rounds: usize, (assertions, votes): &Workload, count: usize, voters: usize) -> Row {
    let (mut stemedb, mut sqlite, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        for stemedb_turn in [round % 2 == 0, round % 2 != 0] {
            let shares = shares(votes, count, voters);
            if stemedb_turn {
                stemedb.push(bench_stemedb(dir, assertions.clone(), shares));
            } else {
                sqlite.push(bench_sqlite(dir, assertions, shares));
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
        tasks: voters,
        stemedb,
        sqlite,
        ratio,
    }
}

/// The learned trust model's cost (issue 26): the node with `[learned]` on against off, on
/// the same votes, alternating which goes first; medians and the median of the per-round
/// ratios, and the time one vote costs more.
fn learned_cost(dir: &Path, rounds: usize, (assertions, votes): &Workload, count: usize) {
    println!(
        "learned trust model: stemedb with [learned] on against off, {count} votes ({} at 1 voter), medians of {rounds} rounds",
        count / SOLO_DIVISOR
    );
    for voters in VOTERS {
        // The 1-voter cell, fsync-bound, runs N/SOLO_DIVISOR as in the main table.
        let count = count / if voters == 1 { SOLO_DIVISOR } else { 1 };
        common::learned_cost_row(voters, "voters", "vote", rounds, |learned| {
            bench_stemedb_with(dir, assertions.clone(), shares(votes, count, voters), learned)
        });
    }
}

fn main() {
    let (began, machine_began, process_began) = (Instant::now(), machine_cpu(), process_cpu());
    let count = env_usize("STEMEDB_BENCH_VOTES").filter(|&n| n >= SOLO_DIVISOR);
    let count = count.unwrap_or(VOTES_DEFAULT);
    let rounds = env_usize("STEMEDB_BENCH_ROUNDS").filter(|&r| r > 0);
    let rounds = rounds.unwrap_or(ROUNDS_DEFAULT);
    let dir = bench_dir();
    let nproc = std::thread::available_parallelism().map_or(0, |n| n.get());
    let (dir_name, target) = (dir.display(), THROUGHPUT_TARGET);
    println!("votes benchmark: signed votes, durable ack then counted; stemedb vs sqlite (WAL, FULL)");
    println!("machine: nproc = {nproc}; medians of {rounds} rounds; bench dir: {dir_name}");
    println!("{}", common::build_line());
    println!("target at 1000 voters: stemedb >= {target:.0} votes/s");
    let workload = workload(count);
    print_calibration(&workload.1);
    let learned = std::env::var("STEMEDB_BENCH_LEARNED").unwrap_or_default();
    if learned != "only" {
        let mut rows = Vec::new();
        for voters in VOTERS {
            let n = count / if voters == 1 { SOLO_DIVISOR } else { 1 };
            rows.push(run_row(&dir, rounds, &workload, n, voters));
        }
        print_table(&rows, "voters", "votes");
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

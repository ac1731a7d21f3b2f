//! Resolve benchmark (issue 12): one (subject, predicate) with 20 competing assertions and 100
//! live votes on each (100 voters, each voting on every candidate, with configured trust
//! factors), resolved by the `consensus` lens: vote weight × voter trust, summed per candidate,
//! ranked. StemeDB against a SQLite peer answering the same question with one indexed SQL query,
//! measured in the same run.
//!
//! - **Latency**: one caller resolving `STEMEDB_BENCH_RESOLVES` times in a row (default 2,000);
//!   p50/p99/p99.9 of each call, from the call to the answer.
//! - **Throughput**: `CALLERS` callers at once, the same number of calls in all.
//! - **StemeDB cold**: `Node::resolve` takes a snapshot and runs the lens on the resolver pool
//!   (one thread per core): reads the heads, each candidate's vote totals, its live votes and each
//!   voter's trust, and ranks.
//! - **StemeDB warm**: the same query with `max_stale = Offsets(0)`, answered from the
//!   materialized view of the pair (fresh: no commit touched it).
//! - **Cold + audit**: cold, with an audit record written (and committed) per resolve.
//! - **SQLite** (bundled, WAL): `assertions(hash PK, subject, predicate, ts)` indexed on
//!   `(subject, predicate)`, `votes(assertion, voter, weight)` keyed by `(assertion, voter)`,
//!   `trust(agent PK, factor)`; the query joins them, sums `weight × coalesce(factor, default)`
//!   per assertion and orders by score, timestamp, hash. One connection per calling thread.
//!
//! Both answers are checked to name the same winner. Run with `cargo bench --bench resolve`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::contest::{CANDIDATES, Contest, PREDICATE, SUBJECT, TRUST_DEFAULT, VOTERS};
use common::{bench_dir, env_usize};

use std::time::{Duration, Instant};

use rusqlite::{Connection, params};
use stemedb::lens::{MaxStale, Query};
use stemedb::node::Node;
use stemedb::protocol::Hash;
use tempfile::TempDir;

const RESOLVES_DEFAULT: usize = 2000;
const CALLERS: usize = 8;

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let at = ((sorted.len() as f64 * p / 100.0) as usize).min(sorted.len() - 1);
    sorted[at].as_secs_f64() * 1e6
}

struct Measured {
    p50: f64,
    p99: f64,
    p999: f64,
    rate: f64,
}

fn summarize(mut latencies: Vec<Duration>, rate: f64) -> Measured {
    latencies.sort();
    Measured {
        p50: percentile(&latencies, 50.0),
        p99: percentile(&latencies, 99.0),
        p999: percentile(&latencies, 99.9),
        rate,
    }
}

/// Times `resolves` calls of `query` from one caller, then from `CALLERS` at once.
async fn measure(node: &Node, query: &Query, resolves: usize) -> Measured {
    let mut latencies = Vec::with_capacity(resolves);
    for _ in 0..resolves {
        let start = Instant::now();
        let resolution = node.resolve(query.clone()).await.unwrap();
        latencies.push(start.elapsed());
        assert_eq!(resolution.ranked.len(), CANDIDATES);
    }
    let start = Instant::now();
    let tasks: Vec<_> = (0..CALLERS)
        .map(|_| {
            let (node, query) = (node.clone(), query.clone());
            actix::spawn(async move {
                for _ in 0..resolves / CALLERS {
                    node.resolve(query.clone()).await.unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let rate = (resolves / CALLERS * CALLERS) as f64 / start.elapsed().as_secs_f64();
    summarize(latencies, rate)
}

fn bench_stemedb(work: &Contest, resolves: usize) -> (Measured, Measured, Measured, Hash) {
    let dir = TempDir::new_in(bench_dir()).unwrap();
    actix::System::new().block_on(async {
        let node = Node::start(work.config(), dir.path()).unwrap();
        work.load(&node).await;
        let query = Query::new(SUBJECT, PREDICATE, "consensus");
        let winner = node.resolve(query.clone()).await.unwrap().winner.unwrap();
        let cold = measure(&node, &query, resolves).await;
        // Warm: answered from the materialized view (made by the first call).
        let mut warm_query = query.clone();
        warm_query.max_stale = Some(MaxStale::Offsets(0));
        node.resolve(warm_query.clone()).await.unwrap();
        let warm = measure(&node, &warm_query, resolves).await;
        assert!(
            node.view_counters().hits >= resolves as u64,
            "warm resolves come from the view"
        );
        // Cold with an audit record each.
        let mut audited = query.clone();
        audited.audit = true;
        let audit = measure(&node, &audited, resolves).await;
        node.shutdown().await.unwrap();
        (cold, warm, audit, winner)
    })
}

const SQLITE_QUERY: &str = "SELECT a.hash, SUM(v.weight * COALESCE(t.factor, ?3)) AS score \
     FROM assertions a LEFT JOIN votes v ON v.assertion = a.hash LEFT JOIN trust t ON t.agent = v.voter \
     WHERE a.subject = ?1 AND a.predicate = ?2 \
     GROUP BY a.hash ORDER BY score DESC, a.ts DESC, a.hash DESC";

fn sqlite_resolve(conn: &Connection) -> Vec<u8> {
    let mut stmt = conn.prepare_cached(SQLITE_QUERY).unwrap();
    let mut rows = stmt
        .query(params![SUBJECT, PREDICATE, f64::from(TRUST_DEFAULT)])
        .unwrap();
    let first: Vec<u8> = rows.next().unwrap().unwrap().get(0).unwrap();
    let mut count = 1;
    while rows.next().unwrap().is_some() {
        count += 1;
    }
    assert_eq!(count, CANDIDATES);
    first
}

fn bench_sqlite(work: &Contest, resolves: usize) -> (Measured, Hash) {
    let dir = TempDir::new_in(bench_dir()).unwrap();
    let path = dir.path().join("resolve.db");
    let mut conn = Connection::open(&path).unwrap();
    conn.execute_batch(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;
         CREATE TABLE assertions(hash BLOB PRIMARY KEY, subject TEXT, predicate TEXT, ts INTEGER);
         CREATE INDEX by_pair ON assertions(subject, predicate);
         CREATE TABLE votes(assertion BLOB, voter BLOB, weight REAL, PRIMARY KEY(assertion, voter));
         CREATE TABLE trust(agent BLOB PRIMARY KEY, factor REAL);",
    )
    .unwrap();
    let txn = conn.transaction().unwrap();
    for a in &work.claims {
        txn.execute(
            "INSERT INTO assertions VALUES (?1, ?2, ?3, ?4)",
            params![
                a.content_hash().as_bytes().to_vec(),
                a.subject,
                a.predicate,
                a.timestamp_ms as i64
            ],
        )
        .unwrap();
    }
    for v in &work.votes {
        txn.execute(
            "INSERT INTO votes VALUES (?1, ?2, ?3)",
            params![
                v.assertion.as_bytes().to_vec(),
                v.voter.as_bytes().to_vec(),
                f64::from(v.weight)
            ],
        )
        .unwrap();
    }
    for (key, factor) in &work.trust {
        txn.execute(
            "INSERT INTO trust VALUES (?1, ?2)",
            params![key.agent_id().as_bytes().to_vec(), f64::from(*factor)],
        )
        .unwrap();
    }
    txn.commit().unwrap();
    let winner = Hash::from_bytes(sqlite_resolve(&conn).try_into().unwrap());
    let mut latencies = Vec::with_capacity(resolves);
    for _ in 0..resolves {
        let start = Instant::now();
        sqlite_resolve(&conn);
        latencies.push(start.elapsed());
    }
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let start = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..threads {
            let path = &path;
            scope.spawn(move || {
                let conn = Connection::open(path).unwrap();
                for _ in 0..resolves / threads {
                    sqlite_resolve(&conn);
                }
            });
        }
    });
    let rate = (resolves / threads * threads) as f64 / start.elapsed().as_secs_f64();
    (summarize(latencies, rate), winner)
}

fn main() {
    let resolves = env_usize("STEMEDB_BENCH_RESOLVES")
        .unwrap_or(RESOLVES_DEFAULT)
        .max(CALLERS);
    println!(
        "resolve benchmark: consensus over {CANDIDATES} candidates x {VOTERS} votes; {resolves} resolves; \
         stemedb cold, warm (view) and audited vs sqlite (one indexed query)"
    );
    println!("{}", common::build_line());
    let work = Contest::new();
    let (stemedb, warm, audited, s_winner) = bench_stemedb(&work, resolves);
    let (sqlite, q_winner) = bench_sqlite(&work, resolves);
    assert_eq!(s_winner, q_winner, "both peers name the same winner");
    println!("peer            | p50 us | p99 us | p99.9 us | resolves/s");
    println!("{}", "-".repeat(58));
    for (name, m) in [
        ("stemedb cold", &stemedb),
        ("stemedb warm", &warm),
        ("cold + audit", &audited),
        ("sqlite", &sqlite),
    ] {
        println!(
            "{name:<15} | {:>6.0} | {:>6.0} | {:>8.0} | {:>10.0}",
            m.p50, m.p99, m.p999, m.rate
        );
        let (system, case) = match name {
            "sqlite" => ("sqlite", "cold"),
            "cold + audit" => ("stemedb", "cold audited"),
            ours => ("stemedb", ours.trim_start_matches("stemedb ")),
        };
        common::emit("resolve", system, case, CALLERS, m.rate, m.p50, m.p99);
    }
    println!(
        "cold/sqlite: throughput {:.2}, p99 {:.2} (targets: cold p99 <= 1000 us, throughput >= 2x sqlite); \
         warm: p99 {:.0} us, {:.0}/s (targets: p99 <= 100 us, >= 100000/s)",
        stemedb.rate / sqlite.rate,
        sqlite.p99 / stemedb.p99,
        warm.p99,
        warm.rate
    );
}

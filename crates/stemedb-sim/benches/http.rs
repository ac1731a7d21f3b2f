//! HTTP benchmark: the API over real HTTP/1.1 on loopback at 64 keep-alive connections, against
//! the embedded node doing the same work in the same run, with the ratio http/embedded (median
//! of per-round ratios; the order of the peers alternates between rounds).
//!
//! **Server**: `stemedb_server::start` in the node's actix System on `127.0.0.1:0`, signals off,
//! `HttpConfig::default()` (one worker per core, auth, CORS, the in-flight admission and the
//! request timeout all on the path) but for the per-key rate limit, raised to
//! `RATE_LIMIT`/s with bursts of as many (the default 5,000/s would be the bottleneck being
//! measured). API keys (roles read and write) whose agents are the workload's 256 signing keys,
//! `KEY_AGENTS_MAX` to a key; every request carries the key of its signers as
//! `Authorization: Bearer`, and a batch holds one key's signers. Each ingest cell has a fresh node
//! and data directory (`Config::default()`).
//!
//! **Client** (`common::load`): 64 tasks on one client thread of its own, each with its own
//! keep-alive connection, one request in flight each. Every request (headers and JSON body) is
//! built before the clock starts; answers are read whole and checked. Client and server share
//! the machine: `client us/req` is the client thread's CPU per request, inside `cpu us/item`
//! (the whole process's). 503 and 429 answers are retried after 1 ms and counted.
//!
//! **Rows**:
//! - *embedded ingest*: 64 submitting tasks, `node.submit` one assertion at a time (the 64-
//!   submitter cell of `benches/ingest.rs`), N of the `common::assertions` workload.
//! - *http single*: the same N, one `POST /v1/assertions` each (answered once durable).
//! - *http batch*: the same N in `POST /v1/assertions/batch` requests of `STEMEDB_BENCH_BATCH`.
//!   Ingest rates are N / (clock start to `node.wait_indexed(greatest offset answered)`): durable
//!   and indexed, as in `benches/ingest.rs`; `req/s` counts requests to the last answer. Its
//!   embedded peers are the embedded ingest (the ratio) and, to show what HTTP itself
//!   costs, *embedded submit_many*: the same batches, `node.submit_many` from 64 tasks.
//! - *resolve warm / cold*: on the node of the batch cell (N assertions, 4,000 pairs of about
//!   N/4,000 candidates, no votes), `GET /v1/resolve?subject&predicate&lens=consensus` cycling
//!   over the pairs; *warm* adds `max_stale_offsets=0`, answered from the pair's materialized
//!   view (every view made before the clock); *cold* computes on the resolver pool each time.
//!   The embedded peers call `node.resolve` with the same queries from 64 tasks.
//!
//! Run with `cargo bench --bench http`. Environment: `STEMEDB_BENCH_ASSERTIONS` (N, default
//! 40,000), `STEMEDB_BENCH_BATCH` (assertions per batch request, 1..=1000, default 100),
//! `STEMEDB_BENCH_RESOLVES` (warm resolves per cell, default 200,000; cold cells run a quarter),
//! `STEMEDB_BENCH_ROUNDS` (default 5), `STEMEDB_BENCH_HTTP_WORKERS` (default 0: one per core),
//! `STEMEDB_BENCH_DIR` (default the cargo target tmp dir), `STEMEDB_BENCH_METRICS=1` (record
//! metrics into the Prometheus recorder `stemedb serve` installs; by default none is installed,
//! and every metric is a no-op).

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../../benches/common/mod.rs"]
mod common;
#[path = "http/work.rs"]
mod work;
use common::assertions::shares;
use common::load::{self, Cell};
use common::{INDEX_DEADLINE, env_usize, machine_cpu, process_cpu, run_tasks};
use work::{Work, deal, query};

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use stemedb::lens::Query;
use stemedb::node::Node;
use stemedb::protocol::Assertion;
use stemedb_server::ServerConfig as Config;
use stemedb_server::keys::KeyStore;
use stemedb_server::{Api, Stopper, start};
use tempfile::TempDir;

const CONNECTIONS: usize = 64;
const ASSERTIONS_DEFAULT: usize = 40_000;
const BATCH_DEFAULT: usize = 100;
const RESOLVES_DEFAULT: usize = 200_000;
/// Cold cells run the warm cells' resolves divided by this.
const COLD_DIVISOR: usize = 4;
const ROUNDS_DEFAULT: usize = 5;
/// The per-key rate limit and burst for the bench (requests/s).
const RATE_LIMIT: u32 = 100_000_000;
const LENS: &str = "consensus";
/// Targets (on this 2-core machine, client included); printed, never asserted.
const BATCH_RATIO_TARGET: f64 = 0.7;
const SINGLE_TARGET: f64 = 20_000.0;
const RESOLVE_TARGET: f64 = 50_000.0;

/// The rows, in table order.
const ROWS: [&str; 8] = [
    "embedded ingest, 64 submitters",
    "http POST one assertion, 64 conns",
    "embedded batch, 64 tasks",
    "http POST batch, 64 conns",
    "embedded resolve warm, 64 tasks",
    "http GET resolve warm, 64 conns",
    "embedded resolve cold, 64 tasks",
    "http GET resolve cold, 64 conns",
];
const EMBEDDED_INGEST: usize = 0;
const SINGLE: usize = 1;
const EMBEDDED_BATCH: usize = 2;
const BATCH: usize = 3;
const EMBEDDED_WARM: usize = 4;
const WARM: usize = 5;
const EMBEDDED_COLD: usize = 6;
const COLD: usize = 7;

/// A fresh node in `dir` serving HTTP on a free loopback port; returns it and the address.
fn serve(work: &Work, dir: &Path) -> (Node, SocketAddr, Stopper) {
    let mut config = Config::default();
    config.http.bind = "127.0.0.1:0".to_owned();
    config.http.workers = work.workers;
    config.http.rate_per_s = RATE_LIMIT;
    config.http.rate_burst = RATE_LIMIT;
    let node = Node::start(config.engine(), dir).expect("start node");
    let (keys, _) = KeyStore::open(work.keys_dir.path()).expect("open key store");
    let api = Api::new(node.clone(), Arc::new(keys), config.http).expect("valid [http] configuration");
    let server = start(api, false).expect("start the HTTP server");
    let handle = server.stopper.clone();
    actix::spawn(async move { server.running.await.expect("the HTTP server failed") });
    (node, server.addrs[0], handle)
}

/// Waits until `offset` is indexed, then checks the node holds `expected` assertions.
async fn settle(node: &Node, offset: u64, expected: usize) {
    let indexed = node.wait_indexed(offset, Instant::now() + INDEX_DEADLINE);
    indexed.await.expect("wait_indexed");
    let counts = node.counts().expect("counts");
    assert_eq!(counts, (expected as u64, 0), "stored and rejected");
}

fn embedded_ingest(work: &Work) -> Cell {
    let dir = TempDir::new_in(&work.base).expect("create temp dir");
    let shares = shares(&work.assertions, work.assertions.len(), CONNECTIONS);
    actix::System::new().block_on(async move {
        let node = Node::start(stemedb::Config::default(), dir.path()).expect("start node");
        let (start, cpu) = (Instant::now(), process_cpu());
        let done = run_tasks(&node, shares).await;
        let answered = start.elapsed();
        settle(&node, done.offset_max, work.assertions.len()).await;
        let (elapsed, cpu) = (start.elapsed(), process_cpu() - cpu);
        node.shutdown().await.expect("shutdown");
        let retries = done.busy_retries;
        Cell {
            retries,
            ..Cell::embedded(done.samples, answered, elapsed, cpu)
        }
    })
}

/// Runs `task` on each share, each in a task of its own on this System thread; returns their
/// latency samples, merged, and the greatest offset they returned.
async fn run_shares<T, F, Fut>(shares: Vec<T>, task: F) -> (Vec<u64>, u64)
where
    F: Fn(T) -> Fut,
    Fut: Future<Output = (Vec<u64>, u64)> + 'static,
{
    let tasks: Vec<_> = shares
        .into_iter()
        .map(|share| actix::spawn(task(share)))
        .collect();
    let (mut samples, mut offset_max) = (Vec::new(), 0);
    for task in tasks {
        let (done, offset) = task.await.expect("a task panicked");
        samples.extend(done);
        offset_max = offset_max.max(offset);
    }
    (samples, offset_max)
}

/// The embedded peer of the batch row: `node.submit_many` with the same batches, from 64 tasks.
fn embedded_batches(work: &Work) -> Cell {
    let dir = TempDir::new_in(&work.base).expect("create temp dir");
    let batches: Vec<Vec<Assertion>> = work.assertions.chunks(work.batch).map(<[_]>::to_vec).collect();
    let shares = deal(&batches);
    actix::System::new().block_on(async move {
        let node = Node::start(stemedb::Config::default(), dir.path()).expect("start node");
        let (start, cpu) = (Instant::now(), process_cpu());
        let task = |share: Vec<Vec<Assertion>>| {
            let node = node.clone();
            async move {
                let (mut samples, mut offset_max) = (Vec::with_capacity(share.len()), 0);
                for batch in share {
                    let begun = Instant::now();
                    let results = node.submit_many(batch).await.expect("no Busy at this depth");
                    samples.push(begun.elapsed().as_nanos() as u64);
                    let offsets = results.into_iter().map(|r| r.expect("accepted").offset);
                    offset_max = offsets.fold(offset_max, u64::max);
                }
                (samples, offset_max)
            }
        };
        let (samples, offset_max) = run_shares(shares, task).await;
        let answered = start.elapsed();
        settle(&node, offset_max, work.assertions.len()).await;
        let (elapsed, cpu) = (start.elapsed(), process_cpu() - cpu);
        node.shutdown().await.expect("shutdown");
        Cell {
            items: work.assertions.len(),
            ..Cell::embedded(samples, answered, elapsed, cpu)
        }
    })
}

/// Sends `requests` over HTTP and waits until the `items` assertions they carry are indexed.
async fn http_ingest(
    node: &Node,
    addr: SocketAddr,
    requests: &[Vec<u8>],
    check: load::Check,
    items: usize,
) -> Cell {
    let shares = deal(requests);
    let cpu = process_cpu();
    let load = load::run(addr, shares, check).await.expect("the client thread");
    settle(node, load.offset_max, items).await;
    let (elapsed, cpu) = (load.started.elapsed(), process_cpu() - cpu);
    Cell::from_load(load, items, elapsed, cpu)
}

async fn http_resolves(addr: SocketAddr, requests: &[Vec<u8>]) -> Cell {
    let shares = deal(requests);
    let cpu = process_cpu();
    let load = load::run(addr, shares, load::check_resolution)
        .await
        .expect("the client thread");
    let (elapsed, cpu) = (load.finished - load.started, process_cpu() - cpu);
    Cell::from_load(load, requests.len(), elapsed, cpu)
}

async fn embedded_resolves(node: &Node, count: usize, warm: bool) -> Cell {
    let shares = deal(&(0..count).map(|i| query(i, warm)).collect::<Vec<_>>());
    let (start, cpu) = (Instant::now(), process_cpu());
    let task = |share: Vec<Query>| {
        let node = node.clone();
        async move {
            let mut samples = Vec::with_capacity(share.len());
            for query in share {
                let start = Instant::now();
                let resolution = node.resolve(query).await.expect("resolve");
                samples.push(start.elapsed().as_nanos() as u64);
                assert!(resolution.winner.is_some());
            }
            (samples, 0)
        }
    };
    let (samples, _) = run_shares(shares, task).await;
    let (elapsed, cpu) = (start.elapsed(), process_cpu() - cpu);
    Cell::embedded(samples, elapsed, elapsed, cpu)
}

/// A fresh served node taking the single POSTs.
fn http_single(work: &Work) -> Cell {
    let dir = TempDir::new_in(&work.base).expect("create temp dir");
    actix::System::new().block_on(async move {
        let (node, addr, handle) = serve(work, dir.path());
        let (check, items) = (load::check_receipt, work.singles.len());
        let cell = http_ingest(&node, addr, &work.singles, check, items).await;
        handle.stop().await;
        node.shutdown().await.expect("shutdown");
        cell
    })
}

/// A fresh served node taking the batches, then answering the resolves (HTTP and embedded,
/// `http_first` says which goes first); returns the batch, warm and cold cells.
fn http_batch_and_resolves(work: &Work, http_first: bool) -> [(usize, Cell); 5] {
    let dir = TempDir::new_in(&work.base).expect("create temp dir");
    actix::System::new().block_on(async move {
        let (node, addr, handle) = serve(work, dir.path());
        let (check, items) = (load::check_batch, work.assertions.len());
        let batch = http_ingest(&node, addr, &work.batches, check, items).await;
        for i in 0..work.pairs() {
            node.resolve(query(i, true)).await.expect("make a view");
        }
        let hits = node.view_counters().hits;
        let (mut cells, cold) = (vec![(BATCH, batch)], work.cold.len());
        for http in [http_first, !http_first] {
            if http {
                cells.push((WARM, http_resolves(addr, &work.warm).await));
            } else {
                cells.push((EMBEDDED_WARM, embedded_resolves(&node, work.resolves, true).await));
            }
        }
        let hits = node.view_counters().hits - hits;
        assert!(
            hits >= 2 * work.resolves as u64,
            "warm resolves come from the views"
        );
        for http in [http_first, !http_first] {
            if http {
                cells.push((COLD, http_resolves(addr, &work.cold).await));
            } else {
                cells.push((EMBEDDED_COLD, embedded_resolves(&node, cold, false).await));
            }
        }
        handle.stop().await;
        node.shutdown().await.expect("shutdown");
        cells.try_into().ok().expect("five cells")
    })
}

/// One round: every cell once; even rounds measure the embedded peers first.
fn run_round(work: &Work, round: usize, cells: &mut [Vec<Cell>; 8]) {
    let embedded_first = round.is_multiple_of(2);
    if embedded_first {
        cells[EMBEDDED_INGEST].push(embedded_ingest(work));
        cells[EMBEDDED_BATCH].push(embedded_batches(work));
    }
    cells[SINGLE].push(http_single(work));
    for (row, cell) in http_batch_and_resolves(work, !embedded_first) {
        cells[row].push(cell);
    }
    if !embedded_first {
        cells[EMBEDDED_INGEST].push(embedded_ingest(work));
        cells[EMBEDDED_BATCH].push(embedded_batches(work));
    }
}

fn median(values: impl Iterator<Item = f64>) -> f64 {
    let mut values: Vec<f64> = values.collect();
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() {
    let (began, machine_began, process_began) = (Instant::now(), machine_cpu(), process_cpu());
    let count = env_usize("STEMEDB_BENCH_ASSERTIONS").filter(|&n| n >= CONNECTIONS);
    let count = count.unwrap_or(ASSERTIONS_DEFAULT);
    let batch = env_usize("STEMEDB_BENCH_BATCH").filter(|b| (1..=1000).contains(b));
    let batch = batch.unwrap_or(BATCH_DEFAULT);
    let resolves = env_usize("STEMEDB_BENCH_RESOLVES").filter(|&r| r >= CONNECTIONS * COLD_DIVISOR);
    let resolves = resolves.unwrap_or(RESOLVES_DEFAULT);
    let rounds = env_usize("STEMEDB_BENCH_ROUNDS")
        .filter(|&r| r > 0)
        .unwrap_or(ROUNDS_DEFAULT);
    let workers = env_usize("STEMEDB_BENCH_HTTP_WORKERS").unwrap_or(0);
    let metrics = std::env::var_os("STEMEDB_BENCH_METRICS").is_some_and(|v| v == "1");
    if metrics {
        metrics::set_global_recorder(stemedb_server::prometheus_recorder()).expect("install the recorder");
    }
    let nproc = std::thread::available_parallelism().map_or(0, |n| n.get());
    let work = Work::new(count, batch, resolves, workers);
    let mut config = Config::default().http;
    config.workers = workers;
    println!(
        "http benchmark: the API over HTTP/1.1 on loopback at {CONNECTIONS} keep-alive connections vs the embedded node"
    );
    println!(
        "machine: nproc = {nproc}; medians of {rounds} rounds; bench dir: {}; client: one thread, in this process",
        work.base.display()
    );
    println!("{}", common::build_line());
    println!(
        "metrics: {}",
        if metrics {
            "recorded (the Prometheus recorder of serve)"
        } else {
            "no recorder (no-ops)"
        }
    );
    println!(
        "server: {} workers; per-key rate limit raised to {RATE_LIMIT}/s, burst {RATE_LIMIT} (default {}/s, burst {}); \
         auth, admission and timeouts as configured by default",
        config.workers(),
        Config::default().http.rate_per_s,
        Config::default().http.rate_burst
    );
    let (pairs, per_pair) = (work.pairs(), count.div_ceil(work.pairs()));
    println!(
        "ingest: N = {count} signed assertions per cell, batches of {batch}; resolve: {pairs} pairs of ~{per_pair} \
         candidates, lens {LENS}, {resolves} warm and {} cold resolves per cell",
        resolves / COLD_DIVISOR
    );
    let mut cells: [Vec<Cell>; 8] = Default::default();
    for round in 0..rounds {
        run_round(&work, round, &mut cells);
    }
    let ratio = |http: usize, embedded: usize| {
        let per_round = cells[http].iter().zip(&cells[embedded]);
        median(per_round.map(|(h, e)| h.rate() / e.rate()))
    };
    let ratios = [
        ratio(SINGLE, EMBEDDED_INGEST),
        ratio(BATCH, EMBEDDED_INGEST),
        ratio(BATCH, EMBEDDED_BATCH),
        ratio(WARM, EMBEDDED_WARM),
        ratio(COLD, EMBEDDED_COLD),
    ];
    let rows: Vec<Cell> = cells
        .into_iter()
        .map(|mut row| {
            row.sort_by(|a, b| a.rate().total_cmp(&b.rate()));
            row.swap_remove(row.len() / 2)
        })
        .collect();
    println!();
    let names = ROWS.map(|name| name.replace("batch", &format!("batch of {batch}")));
    load::print_table(&names, &rows);
    for (name, cell) in names.iter().zip(&rows) {
        let system = if name.starts_with("http") {
            "stemedb http"
        } else {
            "stemedb embedded"
        };
        let case = name
            .split(',')
            .next()
            .unwrap_or(name)
            .trim_start_matches("http ")
            .trim_start_matches("embedded ");
        common::emit(
            "http",
            system,
            case,
            CONNECTIONS,
            cell.rate(),
            cell.us(50),
            cell.us(99),
        );
    }
    println!(
        "http/embedded (median of per-round ratios): single POSTs {:.2}, batched {:.2} (of embedded ingest), \
         {:.2} (of embedded batches); resolves warm {:.2}, cold {:.2}",
        ratios[0], ratios[1], ratios[2], ratios[3], ratios[4]
    );
    let verdict = |met: bool| if met { "met" } else { "MISSED" };
    let (single, warm) = (rows[SINGLE].rate(), rows[WARM].rate());
    println!(
        "targets (2 cores, client included): batched >= {BATCH_RATIO_TARGET}x embedded ingest: {:.2} {}; \
         single POSTs >= {SINGLE_TARGET:.0}/s: {single:.0} {}; resolves >= {RESOLVE_TARGET:.0}/s: warm {warm:.0} {}",
        ratios[1],
        verdict(ratios[1] >= BATCH_RATIO_TARGET),
        verdict(single >= SINGLE_TARGET),
        verdict(warm >= RESOLVE_TARGET),
    );
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

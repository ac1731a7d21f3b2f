//! Replicated ingest against JetStream's raw publish rate (issue 16), on a 3-server JetStream
//! cluster on loopback (R3 file streams), in one run:
//! - **raw**: `submitters` tasks each publish their share of the ingest workload's encoded
//!   records (the same bytes a node publishes, with the same `Nats-Msg-Id`), one at a time,
//!   each awaiting its PubAck: what JetStream alone sustains for these payloads;
//! - **replicated**: a StemeDB node with `replication.mode = "jetstream"` ingests the same
//!   assertions from `submitters` tasks: verified, published, acknowledged, then fetched back
//!   and indexed on the writing node (the cell ends once the last one is indexed).
//!
//! - **local**: the same assertions into a node on its local journal (the default), for the
//!   CPU a record costs a node that trusts its log;
//! - **follower**: a new node on the replicated cell's stream replays it from sequence 1: it
//!   only fetches, checks (every record is verified again: the stream is a log others can
//!   write) and applies.
//!
//! Each cell gets a fresh stream, so no cell deduplicates against another. Rounds alternate
//! raw and replicated; the table has each one's median, and the ratio replicated/raw (the
//! median of the per-round ratios; target at least 0.7). The CPU table puts the CPU per
//! applied record of the writing node and of the follower beside the local node's (process
//! CPU, client tasks included for the writer and the local node; target at most 1.5×).
//!
//! Run with `cargo bench --bench replication` (needs `nats-server`). Environment:
//! `STEMEDB_BENCH_ASSERTIONS` (default 20,000), `STEMEDB_BENCH_ROUNDS` (default 3),
//! `STEMEDB_BENCH_DIR`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../../benches/common/mod.rs"]
mod common;
use common::assertions::{ingest_cell_with, shares, workload};
use common::{CellResult, Submitted, bench_dir, build_line, emit, env_usize, process_cpu};

use std::time::{Duration, Instant};

use async_nats::jetstream;
use stemedb::protocol::{Assertion, LogRecord};
use stemedb_jetstream::ReplicationMode;
use stemedb_server::ServerConfig as Config;
use stemedb_sim::NatsCluster;

const SUBMITTERS: [usize; 2] = [64, 1000];
const ASSERTIONS_DEFAULT: usize = 20_000;
const ROUNDS_DEFAULT: usize = 3;
const RATIO_TARGET: f64 = 0.7;
/// Most CPU per applied record a replicated node may spend, as a multiple of a local node's.
const CPU_RATIO_TARGET: f64 = 1.5;

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn stream_config(name: &str) -> jetstream::stream::Config {
    jetstream::stream::Config {
        name: name.to_owned(),
        subjects: vec![format!("{name}.log")],
        num_replicas: 3,
        storage: jetstream::stream::StorageType::File,
        duplicate_window: Duration::from_secs(120),
        deny_delete: true,
        deny_purge: true,
        ..Default::default()
    }
}

/// The raw cell: each share's encoded records published one at a time, awaiting each PubAck.
fn raw_cell(urls: &[String], stream: &str, shares: Vec<Vec<Assertion>>) -> CellResult {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let addrs: Vec<async_nats::ServerAddr> = urls.iter().map(|u| u.parse().unwrap()).collect();
        let client = async_nats::connect(addrs).await.unwrap();
        let js = jetstream::ContextBuilder::new()
            .timeout(Duration::from_secs(2))
            .max_ack_inflight(16_384)
            .backpressure_on_inflight(true)
            .build(client);
        // A cluster just started elects its meta leader first.
        let started = Instant::now();
        while let Err(error) = js.create_stream(stream_config(stream)).await {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "cannot create {stream}: {error}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let subject = format!("{stream}.log");
        let shares: Vec<Vec<(String, bytes::Bytes)>> = shares
            .into_iter()
            .map(|share| {
                share
                    .into_iter()
                    .map(|a| {
                        (
                            a.content_hash().to_string(),
                            LogRecord::Assertion(a).encode().into(),
                        )
                    })
                    .collect()
            })
            .collect();
        let (start, cpu) = (Instant::now(), process_cpu());
        let tasks: Vec<_> = shares
            .into_iter()
            .map(|share| {
                let (js, subject) = (js.clone(), subject.clone());
                tokio::spawn(async move {
                    let mut samples = Vec::with_capacity(share.len());
                    for (id, payload) in share {
                        let sent = Instant::now();
                        let message = jetstream::message::PublishMessage::build()
                            .payload(payload)
                            .message_id(id);
                        let ack = js.send_publish(subject.clone(), message).await.unwrap();
                        ack.await.unwrap();
                        samples.push(sent.elapsed().as_nanos() as u64);
                    }
                    samples
                })
            })
            .collect();
        let mut done = Submitted::default();
        for task in tasks {
            done.samples.extend(task.await.unwrap());
        }
        let elapsed = start.elapsed();
        CellResult::new(done, elapsed, elapsed, process_cpu() - cpu)
    })
}

fn replicated_config(urls: &[String], stream: &str) -> Config {
    let mut config = Config::default();
    config.replication.mode = ReplicationMode::Jetstream;
    config.replication.servers = urls.to_vec();
    config.replication.stream = stream.to_owned();
    config.replication.subject = format!("{stream}.log");
    config.replication.replicas = 3;
    config
}

/// The follower cell: a new node on `config`'s stream, which holds `count` records at
/// sequences 1..=count, replays and applies all of them; returns the process CPU it took
/// (from the node's start to the last record indexed).
fn follower_cell(base: &std::path::Path, config: &Config, count: usize) -> Duration {
    let dir = tempfile::TempDir::new_in(base).unwrap();
    actix::System::new().block_on(async move {
        let cpu = process_cpu();
        let node = config.start_node(dir.path()).expect("start the follower");
        let deadline = Instant::now() + Duration::from_secs(600);
        node.wait_indexed(count as u64, deadline)
            .await
            .expect("the follower indexes the stream");
        let cpu = process_cpu() - cpu;
        assert_eq!(
            node.counts().expect("counts"),
            (count as u64, 0),
            "stored and rejected"
        );
        node.shutdown().await.expect("shutdown");
        cpu
    })
}

fn main() {
    let count = env_usize("STEMEDB_BENCH_ASSERTIONS").unwrap_or(ASSERTIONS_DEFAULT);
    let rounds = env_usize("STEMEDB_BENCH_ROUNDS").unwrap_or(ROUNDS_DEFAULT).max(1);
    let base = bench_dir();
    let nats_dir = tempfile::TempDir::new_in(&base).unwrap();
    let cluster = NatsCluster::start(nats_dir.path(), 3, None).expect("start a 3-server JetStream cluster");
    let urls = cluster.urls();
    println!(
        "replication bench: {count} assertions a cell, {rounds} rounds, 3 nats-servers (R3, file), loopback"
    );
    println!("build: {}", build_line());
    let all = workload(count);
    let mut stream = 0usize;
    let mut next_stream = || {
        stream += 1;
        format!("BENCH{stream}")
    };
    let mut table = Vec::new();
    let mut cpu_table = Vec::new();
    for submitters in SUBMITTERS {
        let (mut raw, mut replicated, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
        let (mut local_cpu, mut writer_cpu, mut follower_cpu) = (Vec::new(), Vec::new(), Vec::new());
        let (mut writer_ratios, mut follower_ratios) = (Vec::new(), Vec::new());
        for round in 0..rounds {
            let servers = cluster.cpu_time();
            let r = raw_cell(&urls, &next_stream(), shares(&all, count, submitters));
            let raw_servers = cluster.cpu_time() - servers;
            let config = replicated_config(&urls, &next_stream());
            let servers = cluster.cpu_time();
            let start = |dir: &std::path::Path| config.start_node(dir).expect("start node");
            let s = ingest_cell_with(&base, start, shares(&all, count, submitters));
            let replicated_servers = cluster.cpu_time() - servers;
            let per = |cpu: Duration| cpu.as_secs_f64() * 1e6 / count as f64;
            println!(
                "  {submitters:>4} submitters, round {round}: raw {:.0}/s, replicated {:.0}/s, ratio {:.3}; CPU µs/record: \
                 servers {:.0} (raw) and {:.0} (replicated), client {:.0} (raw), node {:.0} (replicated)",
                r.rate(),
                s.rate(),
                s.rate() / r.rate(),
                per(raw_servers),
                per(replicated_servers),
                r.cpu_us(),
                s.cpu_us(),
            );
            let follower = per(follower_cell(&base, &config, count));
            let local_start = |dir: &std::path::Path| Config::default().start_node(dir).expect("start node");
            let local = ingest_cell_with(&base, local_start, shares(&all, count, submitters)).cpu_us();
            println!(
                "  {submitters:>4} submitters, round {round}: CPU µs/applied record: local node {local:.1}, \
                 writing node {:.1} ({:.2}x), follower {follower:.1} ({:.2}x)",
                s.cpu_us(),
                s.cpu_us() / local,
                follower / local,
            );
            writer_ratios.push(s.cpu_us() / local);
            follower_ratios.push(follower / local);
            local_cpu.push(local);
            writer_cpu.push(s.cpu_us());
            follower_cpu.push(follower);
            ratios.push(s.rate() / r.rate());
            raw.push(r);
            replicated.push(s);
        }
        cpu_table.push((
            submitters,
            median(&mut local_cpu),
            median(&mut writer_cpu),
            median(&mut writer_ratios),
            median(&mut follower_cpu),
            median(&mut follower_ratios),
        ));
        raw.sort_by(|a, b| a.rate().total_cmp(&b.rate()));
        replicated.sort_by(|a, b| a.rate().total_cmp(&b.rate()));
        let ratio = median(&mut ratios);
        table.push((
            submitters,
            raw.swap_remove(rounds / 2),
            replicated.swap_remove(rounds / 2),
            ratio,
        ));
    }
    println!();
    println!(
        "submitters | raw publishes/s  p50 us  p99 us | replicated ingest/s  p50 us  p99 us cpu us | ratio"
    );
    println!("{}", "-".repeat(100));
    for (submitters, raw, replicated, ratio) in &table {
        emit(
            "replication",
            "jetstream",
            "publish",
            *submitters,
            raw.rate(),
            raw.us(50),
            raw.us(99),
        );
        emit(
            "replication",
            "stemedb",
            "ingest",
            *submitters,
            replicated.rate(),
            replicated.us(50),
            replicated.us(99),
        );
        println!(
            "{submitters:>10} | {:>15.0} {:>7.0} {:>7.0} | {:>19.0} {:>7.0} {:>7.0} {:>6.1} | {ratio:>5.3}{}",
            raw.rate(),
            raw.us(50),
            raw.us(99),
            replicated.rate(),
            replicated.us(50),
            replicated.us(99),
            replicated.cpu_us(),
            if *ratio >= RATIO_TARGET {
                ""
            } else {
                "  (below the 0.7 target)"
            }
        );
    }
    println!();
    println!(
        "submitters | CPU µs per applied record: local node | writing node  (x local) | follower  (x local) | medians"
    );
    println!("{}", "-".repeat(100));
    for (submitters, local, writer, writer_ratio, follower, follower_ratio) in cpu_table {
        let mark = |ratio: f64| {
            if ratio <= CPU_RATIO_TARGET {
                ""
            } else {
                " (over 1.5x)"
            }
        };
        println!(
            "{submitters:>10} | {local:>37.1} | {writer:>12.1} {writer_ratio:>9.2}x{} | {follower:>8.1} {follower_ratio:>8.2}x{}",
            mark(writer_ratio),
            mark(follower_ratio),
        );
    }
    drop(cluster);
}

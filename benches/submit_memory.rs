//! Submission memory benchmark (issue 10): offer about 1 GiB of valid signed submissions at
//! once, from many tasks, to a node whose verification and journal queues have byte budgets;
//! count what is accepted and what is refused as `Busy`, and compare the process's peak RSS with
//! the budgets.
//!
//! **Workload**, generated and signed lazily, one batch at a time per task, so that the
//! generator never holds more than the batch it is about to submit: `TASKS` async tasks on one
//! actix System thread; task `t` submits batches `t, t + TASKS, ...` of `BATCH_RECORDS`
//! assertions until `OFFERED_BYTES` have been offered in all. Assertion `n` is subject
//! `memory/{n}`, predicate `text`, a `RECORD_TEXT_BYTES` text object (the 8-digit number `n`,
//! repeated), one signature by one of 16 keys. A batch answered `Busy` is dropped and counted,
//! never retried: the point is what the node holds while it refuses the excess.
//!
//! **Node**: `Config::default()` with `node.verify_queue_bytes_max` and
//! `journal.group_commit_queue_bytes_max` set to `BUDGET_BYTES` each. After the last answer,
//! `wait_indexed` waits until LMDB holds everything accepted, inside the measurement.
//!
//! **Memory**: the baseline is VmHWM (peak resident set, `/proc/self/status`) just before the
//! node starts; the peak is VmHWM after everything accepted is indexed. A sampler thread reads
//! RssAnon and RssFile every millisecond to tell heap from mapped files (LMDB's map and the
//! binary). `constant = peak - baseline - budgets`: what the node holds beyond its queues
//! (verification batches in flight, the group-commit batch being written, the ingestor's read
//! and LMDB write buffers, allocator slack) and the pages of LMDB's map the ingestor touched.
//! Those mapped file pages (RssFile) grow with the state, not with the offered load, and the
//! kernel may reclaim them; the heap (RssAnon) is what the budgets bound.
//!
//! Run with `cargo bench --bench submit_memory`. Environment: `STEMEDB_BENCH_OFFERED_MIB`
//! (default 1024), `STEMEDB_BENCH_DIR` (default the cargo target tmp dir).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::{bench_dir, env_usize};

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use stemedb::Config;
use stemedb::node::{Node, Queue, SubmitError};
use stemedb::protocol::{AgentKey, Assertion, ObjectValue, now_ms};
use tempfile::TempDir;

/// Concurrent submitting tasks.
const TASKS: usize = 512;
/// Assertions per submitted batch.
const BATCH_RECORDS: usize = 8;
/// Text bytes of each assertion's object: ~48 KiB keeps the record count near 22,000 per GiB.
const RECORD_TEXT_BYTES: usize = 48 * 1024;
/// Default offered load, in MiB.
const OFFERED_MIB_DEFAULT: usize = 1024;
/// Budget of each of the two queues.
const BUDGET_BYTES: usize = 64 << 20;
/// Signing keys the workload cycles through.
const KEYS: usize = 16;
/// LMDB map size the state opens with: room for the whole offered load, so that the run
/// measures the queues and not the growth of a full map (address space, not memory).
const STATE_MAP_BYTES: usize = 8 << 30;
/// Longest `wait_indexed` may take once every batch is answered.
const INDEX_DEADLINE: Duration = Duration::from_secs(600);
/// Period of the RSS sampler.
const SAMPLE_PERIOD: Duration = Duration::from_millis(1);
const MIB: f64 = (1 << 20) as f64;

/// A field of `/proc/self/status`, in bytes (the kernel reports kB).
fn status_bytes(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    let line = status
        .lines()
        .find(|l| l.starts_with(field))
        .expect("status field");
    let kb: u64 = line[field.len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .expect("kB");
    kb * 1024
}

/// Peaks of RssAnon and RssFile, sampled by a thread until `stop`.
#[derive(Default)]
struct Sampler {
    anon_max: AtomicU64,
    file_max: AtomicU64,
    stop: AtomicBool,
}

impl Sampler {
    fn start() -> (Arc<Self>, std::thread::JoinHandle<()>) {
        let sampler = Arc::new(Self::default());
        let thread = common::spawn("rss-sampler".into(), {
            let sampler = Arc::clone(&sampler);
            move || {
                while !sampler.stop.load(Ordering::Relaxed) {
                    sampler
                        .anon_max
                        .fetch_max(status_bytes("RssAnon:"), Ordering::Relaxed);
                    sampler
                        .file_max
                        .fetch_max(status_bytes("RssFile:"), Ordering::Relaxed);
                    std::thread::sleep(SAMPLE_PERIOD);
                }
            }
        });
        (sampler, thread)
    }
}

/// The `n`th assertion of the workload, signed.
fn assertion(n: usize, keys: &[AgentKey]) -> Assertion {
    let text = format!("{n:08}").repeat(RECORD_TEXT_BYTES / 8);
    let object = ObjectValue::Text(text);
    let mut a = Assertion::new(format!("memory/{n}"), "text", object, 0.5, now_ms());
    a.sign(&keys[n % KEYS]);
    a
}

/// What the tasks saw.
#[derive(Default, Clone, Copy)]
struct Outcome {
    batches: usize,
    accepted_records: usize,
    busy_verification: usize,
    busy_journal: usize,
    offset_max: u64,
}

/// Task `task`: submits its batches, one at a time, until `batches` in all are offered.
async fn submit_share(node: Node, keys: Arc<Vec<AgentKey>>, task: usize, batches: usize) -> Outcome {
    let mut out = Outcome::default();
    for batch in (task..batches).step_by(TASKS) {
        let first = batch * BATCH_RECORDS;
        let records = (first..first + BATCH_RECORDS)
            .map(|n| assertion(n, &keys))
            .collect();
        out.batches += 1;
        match node.submit_many(records).await {
            Ok(results) => {
                for result in results {
                    let receipt = result.expect("a valid assertion is journaled");
                    out.accepted_records += 1;
                    out.offset_max = out.offset_max.max(receipt.offset);
                }
            }
            Err(SubmitError::Busy {
                queue: Queue::Verification,
                ..
            }) => out.busy_verification += 1,
            Err(SubmitError::Busy {
                queue: Queue::Append, ..
            }) => out.busy_journal += 1,
            Err(other) => panic!("submission failed: {other}"),
        }
    }
    out
}

/// Starts the node, runs every task, waits until the accepted records are indexed.
fn run(dir: &std::path::Path, batches: usize) -> Outcome {
    let mut config = Config::default();
    config.node.verify_queue_bytes_max = BUDGET_BYTES;
    config.journal.group_commit_queue_bytes_max = BUDGET_BYTES;
    config.state.map_size_bytes_initial = STATE_MAP_BYTES;
    actix::System::new().block_on(async move {
        let node = Node::start(config, dir).expect("start node");
        let keys = Arc::new(
            (0..KEYS)
                .map(|k| AgentKey::from_secret_bytes(&[k as u8 + 1; 32]))
                .collect(),
        );
        let spawn = |task| actix::spawn(submit_share(node.clone(), Arc::clone(&keys), task, batches));
        let tasks: Vec<_> = (0..TASKS).map(spawn).collect();
        let mut all = Outcome::default();
        for task in tasks {
            let done = task.await.expect("a submitting task panicked");
            all.batches += done.batches;
            all.accepted_records += done.accepted_records;
            all.busy_verification += done.busy_verification;
            all.busy_journal += done.busy_journal;
            all.offset_max = all.offset_max.max(done.offset_max);
        }
        if all.accepted_records > 0 {
            let indexed = node.wait_indexed(all.offset_max, Instant::now() + INDEX_DEADLINE);
            indexed.await.expect("wait_indexed");
        }
        let (stored, rejected) = node.counts().expect("counts");
        assert_eq!(
            (stored, rejected),
            (all.accepted_records as u64, 0),
            "stored and rejected"
        );
        node.shutdown().await.expect("shutdown");
        all
    })
}

fn main() {
    let offered_mib = env_usize("STEMEDB_BENCH_OFFERED_MIB").unwrap_or(OFFERED_MIB_DEFAULT);
    let keys = vec![AgentKey::from_secret_bytes(&[1; 32])];
    let record_bytes = assertion(0, &keys).to_record_bytes().len();
    let batch_bytes = record_bytes * BATCH_RECORDS;
    let batches = (offered_mib << 20).div_ceil(batch_bytes);
    let dir = TempDir::new_in(bench_dir()).expect("create bench temp dir");
    println!(
        "submit_memory benchmark: {TASKS} tasks offer {batches} batches of {BATCH_RECORDS} x {record_bytes}-byte \
         assertions at once; budgets: verify {} MiB + journal {} MiB; dir {}",
        BUDGET_BYTES >> 20,
        BUDGET_BYTES >> 20,
        dir.path().display()
    );
    let baseline = status_bytes("VmHWM:");
    let (sampler, sampler_thread) = Sampler::start();
    let started = Instant::now();
    let outcome = run(dir.path(), batches);
    let elapsed = started.elapsed();
    let peak = status_bytes("VmHWM:");
    sampler.stop.store(true, Ordering::Relaxed);
    sampler_thread.join().expect("sampler");
    print_report(&outcome, record_bytes, baseline, peak, &sampler, elapsed);
}

fn print_report(o: &Outcome, record_bytes: usize, baseline: u64, peak: u64, s: &Sampler, elapsed: Duration) {
    let mib = |bytes: f64| bytes / MIB;
    let offered = mib((o.batches * BATCH_RECORDS * record_bytes) as f64);
    let accepted = mib((o.accepted_records * record_bytes) as f64);
    let budgets = mib((2 * BUDGET_BYTES) as f64);
    let (peak, baseline) = (mib(peak as f64), mib(baseline as f64));
    let constant = peak - baseline - budgets;
    let busy = o.busy_verification + o.busy_journal;
    let (anon, file) = (
        mib(s.anon_max.load(Ordering::Relaxed) as f64),
        mib(s.file_max.load(Ordering::Relaxed) as f64),
    );
    println!(
        "offered MiB | accepted MiB | batches | busy (verify/journal) | peak RSS MiB | baseline MiB | budgets MiB | peak - baseline - budgets MiB"
    );
    println!("{}", "-".repeat(136));
    println!(
        "{offered:>11.0} | {accepted:>12.0} | {:>7} | {busy:>6} ({:>5}/{:>5})  | {peak:>12.0} | {baseline:>12.1} | {budgets:>11.0} | {constant:>29.0}",
        o.batches, o.busy_verification, o.busy_journal
    );
    println!(
        "peak RssAnon {anon:.0} MiB, peak RssFile {file:.0} MiB (sampled every {SAMPLE_PERIOD:?}); \
         (peak - baseline) / offered = {:.3}, / budgets = {:.2}; {:.1} s\n\
         heap: peak RssAnon - baseline - budgets = {:.0} MiB (ingest read, decode and LMDB dirty pages of one \
         ingest batch, the group-commit batch, verification batches); mapped: RssFile is LMDB's data.mdb \
         (clean page cache the kernel faults in around each page read; reclaimable, grows with the state)",
        (peak - baseline) / offered,
        (peak - baseline) / budgets,
        elapsed.as_secs_f64(),
        anon - baseline - budgets
    );
}

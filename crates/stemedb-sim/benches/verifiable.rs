//! Verifiable history benchmark (issue 25), every peer measured in the same run:
//!
//! 1. **Ingest, tree and map on against off** (`checkpoint.enabled`): end to end (64
//!    submitters, signed assertions from submit to indexed, as `benches/ingest.rs`), and the
//!    ingest thread alone (a fresh state catching up on the same journal of assertions and
//!    votes: plan, tally and commit, no signature checks or fsync waits). Alternating rounds,
//!    medians, ratio on/off.
//! 2. **Inclusion proofs over HTTP**: 64 keep-alive connections asking
//!    `GET /v1/proofs/inclusion?index=I` for random leaves of a tree of the ingested records;
//!    proofs/s, p50, p99 (client on the same 2 cores).
//! 3. **A receipt for 20 candidates × 100 votes** (100 voters each voting on every candidate,
//!    some with trust changes): its size, and the time to answer `resolve_verifiable` (the
//!    resolution and its receipt) and to build the receipt alone; p50, p99.
//! 4. **Offline verification of that receipt** (`stemedb::receipt::verify`): p50, p99; and the
//!    floor under it, batch-verifying the receipt's Ed25519 signatures alone.
//! 5. **Sizes** of a checkpoint, an inclusion proof, a consistency proof and the receipts.
//!
//! Run: `cargo bench -p stemedb-sim --bench verifiable`. Environment: `STEMEDB_BENCH_ASSERTIONS`
//! (default 20,000), `STEMEDB_BENCH_ROUNDS` (default 3), `STEMEDB_BENCH_PROOFS` (default
//! 200,000), `STEMEDB_BENCH_RECEIPTS` (default 200), `STEMEDB_BENCH_DIR`,
//! `STEMEDB_BENCH_SECTIONS` (default `ingest,catchup,proofs,receipts`; sizes print with
//! `proofs`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../../benches/common/mod.rs"]
mod common;
use common::assertions::{ingest_cell_with, shares, workload};
use common::load;
use common::{bench_dir, env_usize, process_cpu};

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use stemedb::lens::Query;
use stemedb::node::Node;
use stemedb::protocol::{AgentKey, LogRecord};
use stemedb::protocol::{
    Assertion, ObjectValue, RecordKind, SignatureCheck, TrustChange, Vote, verify_batch,
};
use stemedb::receipt::{Receipt, verify};
use stemedb_server::ServerConfig as Config;
use stemedb_server::keys::{KeyStore, Role};
use stemedb_server::{Api, start};
use tempfile::TempDir;

const SUBMITTERS: usize = 64;
const CONNECTIONS: usize = 64;
/// Targets, printed, never asserted.
const INGEST_RATIO_TARGET: f64 = 0.9;
const PROOFS_TARGET: f64 = 20_000.0;
const RECEIPT_P99_TARGET_MS: f64 = 5.0;

fn engine(enabled: bool) -> stemedb::Config {
    let mut config = stemedb::Config::default();
    config.checkpoint.enabled = enabled;
    config
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn percentile(sorted: &[f64], pct: usize) -> f64 {
    sorted[(sorted.len() * pct / 100).min(sorted.len() - 1)]
}

fn key(n: u32) -> AgentKey {
    let mut seed = [7u8; 32];
    seed[..4].copy_from_slice(&n.to_be_bytes());
    AgentKey::from_secret_bytes(&seed)
}

/// Section 1a: end to end, alternating on and off.
fn ingest_end_to_end(base: &Path, count: usize, rounds: usize) -> (f64, f64) {
    let records = workload(count);
    let (mut on, mut off) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        for enabled in [round % 2 == 0, round % 2 != 0] {
            let cell = ingest_cell_with(
                base,
                |dir| Node::start(engine(enabled), dir).expect("start node"),
                shares(&records, count, SUBMITTERS),
            );
            match enabled {
                true => on.push(cell.rate()),
                false => off.push(cell.rate()),
            }
        }
    }
    (median(on), median(off))
}

/// A journal of `count` assertions, each with a vote, written once (tree off).
fn build_journal(base: &Path, count: usize) -> TempDir {
    let dir = TempDir::new_in(base).unwrap();
    let records = workload(count);
    actix::System::new().block_on(async {
        let node = Node::start(engine(false), dir.path()).unwrap();
        let mut last = 0;
        for chunk in records.chunks(1000) {
            let receipts: Vec<_> = node
                .submit_many(chunk.to_vec())
                .await
                .unwrap()
                .into_iter()
                .map(Result::unwrap)
                .collect();
            let votes: Vec<Vote> = receipts
                .iter()
                .enumerate()
                .map(|(i, r)| Vote::sign(&key(i as u32 % 50), r.hash, 1.0, stemedb::protocol::now_ms()))
                .collect();
            last = receipts.iter().map(|r| r.offset).max().unwrap_or(last);
            node.wait_indexed(last, Instant::now() + Duration::from_secs(600))
                .await
                .unwrap();
            let cast = node.cast_votes(votes).await.unwrap();
            last = cast.into_iter().map(|r| r.unwrap().offset).max().unwrap_or(last);
        }
        node.wait_indexed(last, Instant::now() + Duration::from_secs(600))
            .await
            .unwrap();
        node.shutdown().await.unwrap();
    });
    dir
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &to.join(entry.file_name()));
        } else {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}

/// Section 1b: a fresh state catching up on the journal; records/s on and off.
fn ingest_catch_up(base: &Path, journal: &Path, records: usize, rounds: usize) -> (f64, f64, f64, f64) {
    let (mut on, mut off, mut on_cpu, mut off_cpu) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        for enabled in [round % 2 == 0, round % 2 != 0] {
            let dir = TempDir::new_in(base).unwrap();
            copy_dir(
                &journal.join(stemedb::node::JOURNAL_DIR),
                &dir.path().join(stemedb::node::JOURNAL_DIR),
            );
            let (elapsed, cpu) = actix::System::new().block_on(async {
                let (start, cpu) = (Instant::now(), process_cpu());
                let node = Node::start(engine(enabled), dir.path()).unwrap();
                node.wait_caught_up(Instant::now() + Duration::from_secs(600))
                    .await
                    .unwrap();
                let out = (start.elapsed(), process_cpu() - cpu);
                node.shutdown().await.unwrap();
                out
            });
            let (rate, cpu_us) = (
                records as f64 / elapsed.as_secs_f64(),
                cpu.as_secs_f64() * 1e6 / records as f64,
            );
            match enabled {
                true => (on.push(rate), on_cpu.push(cpu_us)),
                false => (off.push(rate), off_cpu.push(cpu_us)),
            };
        }
    }
    (median(on), median(off), median(on_cpu), median(off_cpu))
}

/// Sections 2 and 5a: inclusion proofs over HTTP, on the journal's records.
fn proofs_over_http(base: &Path, journal: &Path, proofs: usize) -> (f64, f64, f64, usize, usize, usize) {
    let dir = TempDir::new_in(base).unwrap();
    copy_dir(journal, dir.path());
    let keys_dir = TempDir::new_in(base).unwrap();
    actix::System::new().block_on(async move {
        let mut config = Config::default();
        config.http.bind = "127.0.0.1:0".to_owned();
        config.http.rate_per_s = 100_000_000;
        config.http.rate_burst = 100_000_000;
        let node = Node::start(config.engine(), dir.path()).unwrap();
        node.wait_caught_up(Instant::now() + Duration::from_secs(600))
            .await
            .unwrap();
        let (keys, _) = KeyStore::open(keys_dir.path()).unwrap();
        let token = keys.create_key("bench", vec![Role::Read], Vec::new()).unwrap().0;
        let api = Api::new(node.clone(), Arc::new(keys), config.http).unwrap();
        let server = start(api, false).unwrap();
        let (addr, stopper) = (server.addrs[0], server.stopper.clone());
        actix::spawn(async move { server.running.await.expect("the HTTP server") });
        let size = node.tree_head().unwrap().size;
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let requests: Vec<Vec<u8>> = (0..proofs)
            .map(|_| load::get(&format!("/v1/proofs/inclusion?index={}", next() % size), &token))
            .collect();
        let mut shares: Vec<Vec<Vec<u8>>> = vec![Vec::new(); CONNECTIONS];
        for (i, request) in requests.into_iter().enumerate() {
            shares[i % CONNECTIONS].push(request);
        }
        fn check(body: &[u8]) -> Option<u64> {
            body.starts_with(b"{\"index\":").then_some(0)
        }
        let done = load::run(addr, shares, check).await.unwrap();
        let elapsed = done.finished - done.started;
        let mut samples: Vec<f64> = done.samples.iter().map(|ns| *ns as f64 / 1000.0).collect();
        samples.sort_by(f64::total_cmp);
        let rate = proofs as f64 / elapsed.as_secs_f64();
        let proof = node
            .inclusion_proof(stemedb::node::LeafRef::Index(size / 3), None)
            .unwrap();
        let consistency = node.consistency_proof(size / 3, None).unwrap();
        let note = node.sign_checkpoint().unwrap().note;
        stopper.stop().await;
        node.shutdown().await.unwrap();
        (
            rate,
            percentile(&samples, 50),
            percentile(&samples, 99),
            proof.path.len() * 32,
            consistency.len() * 32,
            note.len(),
        )
    })
}

/// Sections 3 and 4: a pair with `candidates` candidates and `voters` voters voting on each.
fn receipts(base: &Path, candidates: usize, voters: usize, runs: usize) -> ReceiptFigures {
    let dir = TempDir::new_in(base).unwrap();
    let admin = key(999_999);
    let mut config = engine(true);
    config.votes.admins = vec![admin.agent_id().to_string()];
    actix::System::new().block_on(async move {
        let node = Node::start(config, dir.path()).unwrap();
        let now = stemedb::protocol::now_ms();
        let mut last = 0;
        let mut hashes = Vec::new();
        for c in 0..candidates {
            let mut a = Assertion::new(
                "city:paris",
                "population",
                ObjectValue::Integer(c as i64),
                0.5,
                now + c as u64,
            );
            a.sign(&key(10_000 + c as u32));
            let r = node.submit(a).await.unwrap();
            hashes.push(r.hash);
            last = last.max(r.offset);
        }
        node.wait_indexed(last, Instant::now() + Duration::from_secs(60))
            .await
            .unwrap();
        for v in 0..voters {
            let votes: Vec<Vote> = hashes
                .iter()
                .enumerate()
                .map(|(c, h)| Vote::sign(&key(v as u32), *h, 1.0 + ((v + c) % 5) as f32, now))
                .collect();
            let cast = node.cast_votes(votes).await.unwrap();
            last = last.max(cast.into_iter().map(|r| r.unwrap().offset).max().unwrap());
            if v % 10 == 0 {
                let change = TrustChange::sign(&admin, key(v as u32).agent_id(), 0.5 + (v % 3) as f32, now);
                last = last.max(node.submit_trust(change).await.unwrap().offset);
            }
        }
        node.wait_indexed(last, Instant::now() + Duration::from_secs(60))
            .await
            .unwrap();
        let query = Query::new("city:paris", "population", "consensus");
        let (mut answer, mut resolve, mut check) = (Vec::new(), Vec::new(), Vec::new());
        let mut receipt: Option<Receipt> = None;
        for _ in 0..runs {
            let start = Instant::now();
            node.resolve(query.clone()).await.unwrap();
            resolve.push(start.elapsed().as_secs_f64() * 1e3);
            let start = Instant::now();
            let (_, built) = node.resolve_verifiable(query.clone()).await.unwrap();
            answer.push(start.elapsed().as_secs_f64() * 1e3);
            receipt = Some(built);
        }
        let receipt = receipt.unwrap();
        let verifier = node.checkpoint_verifier();
        for _ in 0..runs {
            let start = Instant::now();
            verify(&receipt, &verifier).unwrap();
            check.push(start.elapsed().as_secs_f64() * 1e3);
        }
        // The floor under verification: the receipt's signatures, batch-verified.
        let records: Vec<LogRecord> = receipt
            .records
            .iter()
            .map(|r| LogRecord::decode(&r.bytes).unwrap())
            .collect();
        let hashes: Vec<_> = records.iter().map(LogRecord::content_hash).collect();
        let checks: Vec<SignatureCheck<'_>> = records
            .iter()
            .zip(&hashes)
            .flat_map(|(record, hash)| match record {
                LogRecord::Assertion(a) => a
                    .signatures
                    .iter()
                    .map(|s| SignatureCheck {
                        agent: &s.agent,
                        kind: RecordKind::Assertion,
                        content_hash: hash,
                        signature: &s.signature,
                    })
                    .collect::<Vec<_>>(),
                LogRecord::Vote(v) => vec![SignatureCheck {
                    agent: &v.voter,
                    kind: RecordKind::Vote,
                    content_hash: hash,
                    signature: &v.signature,
                }],
                LogRecord::Trust(t) => vec![SignatureCheck {
                    agent: &t.admin,
                    kind: RecordKind::Trust,
                    content_hash: hash,
                    signature: &t.signature,
                }],
            })
            .collect();
        let mut floor = Vec::new();
        for _ in 0..runs.min(50) {
            let start = Instant::now();
            assert!(verify_batch(&checks).iter().all(|ok| *ok));
            floor.push(start.elapsed().as_secs_f64() * 1e3);
        }
        let bytes = serde_json::to_vec(&receipt).unwrap().len();
        node.shutdown().await.unwrap();
        for v in [&mut answer, &mut resolve, &mut check, &mut floor] {
            v.sort_by(f64::total_cmp);
        }
        ReceiptFigures {
            records: receipt.records.len(),
            bytes,
            answer: (percentile(&answer, 50), percentile(&answer, 99)),
            resolve: (percentile(&resolve, 50), percentile(&resolve, 99)),
            verify: (percentile(&check, 50), percentile(&check, 99)),
            signatures: (percentile(&floor, 50), percentile(&floor, 99)),
        }
    })
}

struct ReceiptFigures {
    records: usize,
    bytes: usize,
    answer: (f64, f64),
    resolve: (f64, f64),
    verify: (f64, f64),
    signatures: (f64, f64),
}

fn main() {
    let count = env_usize("STEMEDB_BENCH_ASSERTIONS").unwrap_or(20_000);
    let rounds = env_usize("STEMEDB_BENCH_ROUNDS").unwrap_or(3);
    let proofs = env_usize("STEMEDB_BENCH_PROOFS").unwrap_or(200_000);
    let runs = env_usize("STEMEDB_BENCH_RECEIPTS").unwrap_or(200);
    let base = bench_dir();
    println!(
        "verifiable history benchmark: {count} assertions, {rounds} rounds, {proofs} proofs, {runs} receipts"
    );

    let sections = std::env::var("STEMEDB_BENCH_SECTIONS")
        .unwrap_or_else(|_| "ingest,catchup,proofs,receipts".to_owned());
    let run = |name: &str| sections.split(',').any(|s| s == name);
    if run("ingest") {
        let (on, off) = ingest_end_to_end(&base, count, rounds);
        println!(
            "ingest end to end, {SUBMITTERS} submitters: on {on:.0}/s, off {off:.0}/s, on/off {:.3} (target >= {INGEST_RATIO_TARGET})",
            on / off
        );
    }
    let journal = build_journal(&base, count);
    if run("catchup") {
        let (on, off, on_cpu, off_cpu) = ingest_catch_up(&base, journal.path(), 2 * count, rounds);
        println!(
            "ingest thread alone (catch-up of {} records): on {on:.0}/s, off {off:.0}/s, on/off {:.3}; CPU {on_cpu:.1} vs {off_cpu:.1} us/record",
            2 * count,
            on / off
        );
    }
    if !run("proofs") {
        return;
    }
    let (rate, p50, p99, inclusion_bytes, consistency_bytes, note_bytes) =
        proofs_over_http(&base, journal.path(), proofs);
    println!(
        "inclusion proofs over HTTP, {CONNECTIONS} connections: {rate:.0}/s (target >= {PROOFS_TARGET}), p50 {p50:.0} us, p99 {p99:.0} us"
    );
    for (candidates, voters) in [(20, 100), (20, 5)].into_iter().filter(|_| run("receipts")) {
        let f = receipts(&base, candidates, voters, runs);
        println!(
            "receipt, {candidates} candidates x {voters} votes each ({} records, {} bytes JSON): answer with receipt p50 {:.2} ms p99 {:.2} ms; \
             resolve alone p50 {:.2} ms p99 {:.2} ms; so the receipt p50 {:.2} ms p99 {:.2} ms (target p99 <= {RECEIPT_P99_TARGET_MS} ms); \
             offline verify p50 {:.2} ms p99 {:.2} ms (target p99 <= {RECEIPT_P99_TARGET_MS} ms), of which its signatures alone p50 {:.2} ms",
            f.records,
            f.bytes,
            f.answer.0,
            f.answer.1,
            f.resolve.0,
            f.resolve.1,
            f.answer.0 - f.resolve.0,
            f.answer.1 - f.resolve.1,
            f.verify.0,
            f.verify.1,
            f.signatures.0,
        );
    }
    println!(
        "sizes: checkpoint note {note_bytes} B; inclusion proof {inclusion_bytes} B of hashes; consistency proof {consistency_bytes} B of hashes"
    );
}

//! The ingest benchmarks' workload of signed assertions, StemeDB as a [`Peer`] submitting
//! them, and one ingest cell.

use std::path::Path;
use std::time::Instant;

use stemedb::node::Node;
use stemedb::protocol::{AgentId, AgentKey, Assertion, ObjectValue, now_ms};
use tempfile::TempDir;

use super::meter::Meter;
use super::{CellResult, Peer, process_cpu, retry_busy, run_tasks};

/// Distinct subjects, predicates per subject and signing keys of the workload.
pub const SUBJECTS: usize = 1000;
pub const PREDICATES: usize = 4;
pub const KEYS: usize = 256;

/// The agent ids of the workload's signing keys.
pub fn agents() -> Vec<AgentId> {
    let key = |k: usize| AgentKey::from_secret_bytes(&[k as u8; 32]).agent_id();
    (0..KEYS).map(key).collect()
}

/// Signs `count` assertions: assertion `i` is subject `entity/{i % 1000}`, predicate
/// `p{(i / 1000) % 4}`, object `Integer(i)`, `timestamp_ms = now_ms()` at signing, one signature
/// by key `AgentKey::from_secret_bytes(&[i % 256; 32])`; ~150 bytes encoded.
pub fn workload(count: usize) -> Vec<Assertion> {
    let key = |k: usize| AgentKey::from_secret_bytes(&[k as u8; 32]);
    let keys: Vec<AgentKey> = (0..KEYS).map(key).collect();
    let timestamp_ms = now_ms();
    let mut all = Vec::with_capacity(count);
    for i in 0..count {
        let subject = format!("entity/{:06}", i % SUBJECTS);
        let predicate = format!("p{}", (i / SUBJECTS) % PREDICATES);
        let object = ObjectValue::Integer(i as i64);
        let mut a = Assertion::new(subject, predicate, object, 0.9, timestamp_ms);
        a.sign(&keys[i % KEYS]);
        all.push(a);
    }
    all
}

/// Deals the first `count` assertions round-robin to `submitters` shares.
pub fn shares(workload: &[Assertion], count: usize, submitters: usize) -> Vec<Vec<Assertion>> {
    let mut shares = vec![Vec::new(); submitters];
    for (i, a) in workload[..count].iter().enumerate() {
        shares[i % submitters].push(a.clone());
    }
    shares
}

impl Peer<Assertion> for Node {
    async fn submit_one(&self, record: Assertion) -> (u64, u64) {
        // `submit` consumes the record even when it answers Busy, hence the clone.
        retry_busy("submit", || self.submit(record.clone())).await
    }
}

/// One ingest cell against a fresh StemeDB node with the default config in a new directory
/// under `base`: the shares submitted concurrently, then waited for until indexed.
pub fn ingest_cell(base: &Path, shares: Vec<Vec<Assertion>>) -> CellResult {
    ingest_cell_with(
        base,
        |dir| Node::start(stemedb::Config::default(), dir).expect("start node"),
        shares,
    )
}

/// [`ingest_cell`] on a node that `start` starts on a directory (say, on a replicated log).
pub fn ingest_cell_with(
    base: &Path,
    start: impl FnOnce(&Path) -> Node,
    shares: Vec<Vec<Assertion>>,
) -> CellResult {
    let dir = TempDir::new_in(base).expect("create stemedb temp dir");
    let expected = shares.iter().map(Vec::len).sum::<usize>() as u64;
    actix::System::new().block_on(async move {
        let node = start(dir.path());
        let meter = Meter::start();
        let (start, cpu) = (Instant::now(), process_cpu());
        let done = run_tasks(&node, shares).await;
        let acked = start.elapsed();
        let indexed = node.wait_indexed(done.offset_max, Instant::now() + super::INDEX_DEADLINE);
        indexed.await.expect("wait_indexed");
        let (elapsed, cpu) = (start.elapsed(), process_cpu() - cpu);
        let metered = meter.stop();
        let counts = node.counts().expect("counts");
        assert_eq!(counts, (expected, 0), "stored and rejected");
        node.shutdown().await.expect("shutdown");
        CellResult::new(done, acked, elapsed, cpu).metered(metered)
    })
}

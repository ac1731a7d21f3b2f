//! The ingest benchmarks' workload of signed assertions, and StemeDB as a [`Peer`] submitting
//! them.

use stemedb::node::Node;
use stemedb::protocol::{AgentId, AgentKey, Assertion, ObjectValue, now_ms};

use super::{Peer, retry_busy};

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

//! The HTTP bench's workload: its sizes and every request, built once before any clock.

use std::path::PathBuf;

use stemedb::lens::{MaxStale, Query};
use stemedb::protocol::Assertion;
use stemedb_server::keys::{KeyStore, Role};
use tempfile::TempDir;

use super::common::assertions::{PREDICATES, SUBJECTS, agents, workload};
use super::common::bench_dir;
use super::common::load;
use super::{COLD_DIVISOR, CONNECTIONS, LENS};

/// The sizes of a run and its requests, built once (every server opens the same key store).
pub struct Work {
    pub base: PathBuf,
    pub keys_dir: TempDir,
    pub workers: usize,
    pub assertions: Vec<Assertion>,
    pub batch: usize,
    pub singles: Vec<Vec<u8>>,
    pub batches: Vec<Vec<u8>>,
    pub warm: Vec<Vec<u8>>,
    pub cold: Vec<Vec<u8>>,
    pub resolves: usize,
}

/// The `i`th (subject, predicate) pair of the workload.
fn pair(i: usize) -> (String, String) {
    let subject = format!("entity/{:06}", i % SUBJECTS);
    (subject, format!("p{}", (i / SUBJECTS) % PREDICATES))
}

fn get_resolve(i: usize, token: &str, warm: bool) -> Vec<u8> {
    let (subject, predicate) = pair(i);
    let subject = subject.replace('/', "%2F");
    let stale = if warm { "&max_stale_offsets=0" } else { "" };
    let query = format!("subject={subject}&predicate={predicate}&lens={LENS}{stale}");
    load::get(&format!("/v1/resolve?{query}"), token)
}

pub fn query(i: usize, warm: bool) -> Query {
    let (subject, predicate) = pair(i);
    let mut query = Query::new(subject, predicate, LENS);
    query.max_stale = warm.then_some(MaxStale::Offsets(0));
    query
}

impl Work {
    pub fn new(count: usize, batch: usize, resolves: usize, workers: usize) -> Self {
        let base = bench_dir();
        let keys_dir = TempDir::new_in(&base).expect("create key store dir");
        let (keys, _) = KeyStore::open(keys_dir.path()).expect("open key store");
        let roles = vec![Role::Read, Role::Write];
        let (token, _) = keys.create_key("bench", roles, agents()).expect("create key");
        let assertions = workload(count);
        let json = |a: &Assertion| serde_json::to_vec(a).expect("serialize an assertion");
        let singles = assertions
            .iter()
            .map(|a| load::post("/v1/assertions", &token, &json(a)))
            .collect();
        let json = |a: &[Assertion]| serde_json::to_vec(a).expect("serialize a batch");
        let batches = assertions
            .chunks(batch)
            .map(|chunk| load::post("/v1/assertions/batch", &token, &json(chunk)))
            .collect();
        let warm = (0..resolves).map(|i| get_resolve(i, &token, true)).collect();
        let cold = (0..resolves / COLD_DIVISOR)
            .map(|i| get_resolve(i, &token, false))
            .collect();
        Self {
            base,
            keys_dir,
            workers,
            batch,
            assertions,
            singles,
            batches,
            warm,
            cold,
            resolves,
        }
    }

    /// The distinct pairs the workload covers.
    pub fn pairs(&self) -> usize {
        self.assertions.len().min(SUBJECTS * PREDICATES)
    }
}

/// Deals `items` round-robin to `CONNECTIONS` shares (cloned: before the clock).
pub fn deal<T: Clone>(items: &[T]) -> Vec<Vec<T>> {
    let mut shares = vec![Vec::new(); CONNECTIONS];
    for (i, item) in items.iter().enumerate() {
        shares[i % CONNECTIONS].push(item.clone());
    }
    shares
}

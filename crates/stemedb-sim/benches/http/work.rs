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
use stemedb_server::keys::KEY_AGENTS_MAX;

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
        // A key has at most KEY_AGENTS_MAX agents: the workload's signers are split over keys,
        // and each request carries the key of its signers.
        let tokens: Vec<String> = agents()
            .chunks(KEY_AGENTS_MAX)
            .map(|group| {
                let roles = vec![Role::Read, Role::Write];
                keys.create_key("bench", roles, group.to_vec())
                    .expect("create key")
                    .0
            })
            .collect();
        let token = tokens[0].clone();
        // Derived once: deriving the 256 signers per assertion cost minutes of setup.
        let group: std::collections::HashMap<_, usize> = agents()
            .into_iter()
            .enumerate()
            .map(|(i, agent)| (agent, i / KEY_AGENTS_MAX))
            .collect();
        let group_of = |a: &Assertion| group[&a.signatures[0].agent];
        let assertions = workload(count);
        let groups: Vec<usize> = assertions.iter().map(group_of).collect();
        let json = |a: &Assertion| serde_json::to_vec(a).expect("serialize an assertion");
        let singles = assertions
            .iter()
            .zip(&groups)
            .map(|(a, g)| load::post("/v1/assertions", &tokens[*g], &json(a)))
            .collect();
        let json = |a: &[Assertion]| serde_json::to_vec(a).expect("serialize a batch");
        // Batches of one key's signers each, in workload order within the key.
        let batches = (0..tokens.len())
            .flat_map(|g| {
                let mine: Vec<Assertion> = assertions
                    .iter()
                    .zip(&groups)
                    .filter(|(_, group)| **group == g)
                    .map(|(a, _)| a.clone())
                    .collect();
                let token = &tokens[g];
                mine.chunks(batch)
                    .map(|chunk| load::post("/v1/assertions/batch", token, &json(chunk)))
                    .collect::<Vec<_>>()
            })
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

//! Shared by the node's SIGKILL tests (`ingest_crash`, `votes_crash`): the node configuration,
//! environment numbers, and a set comparison that names differences.

use std::collections::BTreeSet;

use stemedb::Config;
use stemedb::node::JOURNAL_DIR;
use stemedb::storage::journal::Journal;

/// The key number of the one administrator of the crash tests' nodes (`votes.admins`).
pub const ADMIN_KEY: u8 = 250;

/// The configuration of every node in the crash tests: small segments, so the journal rolls
/// often; key `ADMIN_KEY` is the administrator.
pub fn config() -> Config {
    let mut config = Config::default();
    config.journal.segment_size_bytes = 256 * 1024;
    config.votes.admins = vec![crate::key(ADMIN_KEY).agent_id().to_string()];
    config
}

/// The number in environment variable `name`, if set; panics on a malformed one.
pub fn env_u64(name: &str) -> Option<u64> {
    let parse = |v: String| v.parse().unwrap_or_else(|e| panic!("{name}={v:?}: {e}"));
    std::env::var(name).ok().map(parse)
}

/// Panics, naming a few differences, unless `found` equals `expected`.
pub fn assert_same<T: Ord + std::fmt::Debug>(
    what: &str,
    found: &BTreeSet<T>,
    expected: &BTreeSet<T>,
    ctx: &str,
) {
    let missing: Vec<_> = expected.difference(found).take(3).collect();
    let unexpected: Vec<_> = found.difference(expected).take(3).collect();
    let (found, expected) = (found.len(), expected.len());
    assert!(
        missing.is_empty() && unexpected.is_empty(),
        "{ctx}: {what}: {found} found, {expected} expected; missing e.g. {missing:?}; \
         unexpected e.g. {unexpected:?}"
    );
}

/// Opens the journal of the node directory `dir` (once the node is shut down) and hands every
/// record from offset 0 to `apply` as (offset, payload), in order; asserts the log has no
/// quarantined damage and that the walk reaches the durable end. Returns that end.
pub fn replay_journal_records(dir: &std::path::Path, ctx: &str, mut apply: impl FnMut(u64, &[u8])) -> u64 {
    let journal = Journal::open(dir.join(JOURNAL_DIR), config().journal).unwrap();
    assert_eq!(journal.quarantined_count(), 0, "{ctx}: damaged mid-log");
    let (mut reader, mut end) = (journal.reader(), 0);
    // Range reads step over batch marks, so the walk ends at the durable end.
    loop {
        let range = reader
            .read_range(end, 1024, 1 << 20)
            .unwrap_or_else(|e| panic!("{ctx}: the walk stopped at {end} with {e}"));
        for (offset, payload) in &range.records {
            apply(*offset, payload);
        }
        end = range.next;
        if range.at_end {
            break;
        }
    }
    assert_eq!(end, journal.durable_end(), "{ctx}: the walk ends early");
    end
}

/// Returns the size and root of the Merkle tree of the journal of `dir` (no node running on
/// it), rebuilt from its records: what a node's tree head must equal after every restart.
pub fn journal_tree(dir: &std::path::Path, ctx: &str) -> (u64, stemedb::protocol::merkle::MerkleHash) {
    let mut leaves = Vec::new();
    replay_journal_records(dir, ctx, |_, payload| {
        leaves.push(stemedb::protocol::merkle::leaf_hash(payload))
    });
    (leaves.len() as u64, stemedb::protocol::merkle::root_of(&leaves))
}

/// Returns the digest of a fresh state fed the journal of `dir` (no node running on it), in
/// batches of 500 records: what a node's state must equal after every restart, its learned
/// trust model included.
pub fn journal_state_digest(dir: &std::path::Path, ctx: &str) -> stemedb::storage::state::StateDigest {
    use stemedb::storage::state::{IngestRecord, State, StateConfig};
    let mut records: Vec<(u64, Vec<u8>)> = Vec::new();
    let end = replay_journal_records(dir, ctx, |offset, payload| {
        records.push((offset, payload.to_vec()))
    });
    let fresh = tempfile::TempDir::new().unwrap();
    let state = State::open(fresh.path(), StateConfig::default()).unwrap();
    let nexts: Vec<u64> = records.iter().skip(1).map(|(o, _)| *o).chain([end]).collect();
    let records: Vec<IngestRecord> = records
        .into_iter()
        .zip(nexts)
        .map(|((offset, payload), next)| IngestRecord {
            offset,
            next,
            payload: payload.into(),
        })
        .collect();
    for batch in records.chunks(500) {
        state
            .apply(batch)
            .unwrap_or_else(|e| panic!("{ctx}: a fresh state refused the journal: {e}"));
    }
    state.digest().unwrap()
}

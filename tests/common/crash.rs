//! Shared by the node's SIGKILL tests (`ingest_crash`, `votes_crash`): the node configuration,
//! environment numbers, and a set comparison that names differences.

use std::collections::BTreeSet;

use stemedb::Config;

/// The key number of the one administrator of the crash tests' nodes (`votes.admins`).
pub const ADMIN_KEY: u8 = 250;

/// The configuration of every node in the crash tests: small segments, so the journal rolls
/// often; key `ADMIN_KEY` is the administrator.
pub fn config() -> Config {
    let mut config = Config::default();
    config.journal.segment_size_bytes = 256 * 1024;
    config.votes.admins = vec![crate::common::key(ADMIN_KEY).agent_id().to_string()];
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

//! Supervised ingestion: faults in the apply path never leave a waiter hanging.
//!
//! Faults are injected through the node's test-only hooks. A panic in the apply path or in a
//! vote-counter shard halts ingestion with the reason published as `stalled`, and waiters
//! return `Stalled` well before their deadline; `health()` reports the same. A journal record
//! with a tag this build does not know stalls ingestion without rejecting the record, and a
//! build that knows the tag (here: a hook that treats it as a no-op record) resumes from that
//! very record and indexes what follows.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use stemedb_testkit as common;

use common::deadline;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use common::{NOW_MS, key};
use stemedb::Config;
use stemedb::actors::Hooks;
use stemedb::node::{JOURNAL_DIR, Node, NodeError, WaitError};
use stemedb::protocol::{Assertion, LogRecord, ObjectValue, Vote};
use stemedb::storage::journal::{Journal, JournalConfig};
use tempfile::TempDir;

/// A tag no build of StemeDB uses yet.
const FUTURE_TAG: u8 = 200;

fn assertion(subject: &str, value: i64) -> Assertion {
    let mut a = Assertion::new(subject, "population", ObjectValue::Integer(value), 0.5, NOW_MS);
    a.sign(&key(1));
    a
}

/// Runs `test` against a node on `dir` started with `hooks`, inside a fresh actix System.
fn with_node<F, Fut>(dir: &TempDir, hooks: Hooks, test: F)
where
    F: FnOnce(Node) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    actix::System::new().block_on(async {
        let node = Node::start_with_hooks(Config::default(), dir.path(), hooks).unwrap();
        test(node).await;
    });
}

/// Asserts that waiting for `offset` ends in `Stalled` (not a timeout, not `Closed`); returns
/// the reason.
async fn expect_stalled(node: &Node, offset: u64) -> String {
    match node.wait_indexed(offset, deadline()).await {
        Err(WaitError::Stalled { reason, .. }) => reason,
        other => panic!("expected Stalled waiting for offset {offset}, got {other:?}"),
    }
}

#[test]
fn injected_apply_panic_stalls_ingestion_with_its_reason() {
    let dir = TempDir::new().unwrap();
    let armed = Arc::new(AtomicBool::new(false));
    let fault = armed.clone();
    let hooks = Hooks {
        before_commit: Some(Arc::new(move |_cursor| {
            if fault.load(Ordering::SeqCst) {
                panic!("injected fault in the apply path");
            }
        })),
        ..Hooks::default()
    };
    with_node(&dir, hooks, |node| async move {
        let first = node.submit(assertion("city/a", 1)).await.unwrap();
        node.wait_indexed(first.offset, deadline()).await.unwrap();
        armed.store(true, Ordering::SeqCst);
        let second = node.submit(assertion("city/b", 2)).await.unwrap();
        let reason = expect_stalled(&node, second.offset).await;
        assert!(reason.contains("injected fault in the apply path"), "{reason}");
        assert!(reason.contains("halted"), "{reason}");
        let health = node.health().unwrap();
        assert_eq!(
            health.ingest_cursor, second.offset,
            "the first record stays applied"
        );
        assert_eq!(health.stalled.as_deref(), Some(reason.as_str()));
        assert!(health.lag_bytes > 0);
        assert!(node.get(&second.hash).unwrap().is_none());
        // Halted for good: a later record is acknowledged but never applied, and its waiter
        // returns at once too.
        let third = node.submit(assertion("city/c", 3)).await.unwrap();
        expect_stalled(&node, third.offset).await;
        assert!(matches!(node.shutdown().await, Err(NodeError::Stalled(_))));
    });
    // The panic cost nothing durable: a restart without the fault applies everything.
    with_node(&dir, Hooks::default(), |node| async move {
        node.wait_caught_up(deadline()).await.unwrap();
        assert_eq!(node.counts().unwrap(), (3, 0));
        node.shutdown().await.unwrap();
    });
}

#[test]
fn panicked_vote_shard_halts_ingestion_permanently() {
    let dir = TempDir::new().unwrap();
    let hooks = Hooks {
        before_tally: Some(Arc::new(|shard| panic!("injected fault in vote shard {shard}"))),
        ..Hooks::default()
    };
    with_node(&dir, hooks, |node| async move {
        let claim = node.submit(assertion("city/a", 1)).await.unwrap();
        node.wait_indexed(claim.offset, deadline()).await.unwrap();
        let vote = node
            .cast_vote(Vote::sign(&key(2), claim.hash, 1.0, NOW_MS))
            .await
            .unwrap();
        let reason = expect_stalled(&node, vote.offset).await;
        assert!(reason.contains("vote-counter shard"), "{reason}");
        assert!(reason.contains("halted until the node restarts"), "{reason}");
        let health = node.health().unwrap();
        assert_eq!(health.ingest_cursor, vote.offset);
        assert_eq!(health.stalled.as_deref(), Some(reason.as_str()));
        assert!(matches!(node.shutdown().await, Err(NodeError::Stalled(_))));
    });
    with_node(&dir, Hooks::default(), |node| async move {
        node.wait_caught_up(deadline()).await.unwrap();
        assert_eq!(
            node.vote_totals(&assertion("city/a", 1).content_hash())
                .unwrap()
                .count,
            1
        );
        node.shutdown().await.unwrap();
    });
}

#[test]
fn health_reports_cursor_durable_end_and_lag() {
    let dir = TempDir::new().unwrap();
    with_node(&dir, Hooks::default(), |node| async move {
        let empty = node.health().unwrap();
        assert_eq!(
            (empty.ingest_cursor, empty.durable_end, empty.lag_bytes),
            (0, 0, 0)
        );
        assert!(empty.is_ingesting());
        let receipt = node.submit(assertion("city/a", 1)).await.unwrap();
        node.wait_indexed(receipt.offset, deadline()).await.unwrap();
        let health = node.health().unwrap();
        assert_eq!(health.durable_end, node.durable_end().unwrap());
        assert_eq!(health.ingest_cursor, health.durable_end);
        assert_eq!(health.lag_bytes, 0);
        assert_eq!(health.stalled, None);
        node.shutdown().await.unwrap();
        assert!(matches!(node.health(), Err(NodeError::Closed)));
    });
}

#[test]
fn unknown_tag_stalls_ingestion_until_a_build_that_knows_it_resumes() {
    let dir = TempDir::new().unwrap();
    let before = assertion("city/a", 1);
    with_node(&dir, Hooks::default(), |node| async move {
        let receipt = node.submit(before).await.unwrap();
        node.wait_indexed(receipt.offset, deadline()).await.unwrap();
        node.shutdown().await.unwrap();
    });
    // A newer build wrote a record of a kind this build does not know, then an assertion.
    let after = assertion("city/b", 2);
    let (unknown_at, after_at) = {
        let journal = Journal::open(dir.path().join(JOURNAL_DIR), JournalConfig::default()).unwrap();
        let unknown_at = journal.append(vec![FUTURE_TAG, 0x90]).unwrap();
        let after_at = journal
            .append(LogRecord::Assertion(after.clone()).encode())
            .unwrap();
        (unknown_at, after_at)
    };
    with_node(&dir, Hooks::default(), |node| async move {
        let reason = expect_stalled(&node, after_at).await;
        assert!(reason.contains(&format!("tag {FUTURE_TAG}")), "{reason}");
        assert!(reason.contains(&format!("offset {unknown_at}")), "{reason}");
        let health = node.health().unwrap();
        assert_eq!(health.ingest_cursor, unknown_at, "held at the unknown record");
        assert_eq!(health.stalled.as_deref(), Some(reason.as_str()));
        assert!(health.lag_bytes > 0);
        // Held, not rejected: nothing is recorded against the record.
        assert_eq!(node.counts().unwrap(), (1, 0));
        assert!(matches!(node.shutdown().await, Err(NodeError::Stalled(_))));
    });
    // The "upgrade": a build that knows the tag (as a record that changes nothing).
    let upgraded = Hooks {
        noop_record_tags: vec![FUTURE_TAG],
        ..Hooks::default()
    };
    let after_hash = after.content_hash();
    with_node(&dir, upgraded, |node| async move {
        // It resumes from the held record (its own thread may be past it already).
        let cursor = node.ingest_status().cursor;
        assert!(cursor >= unknown_at, "resumes from the same record: {cursor}");
        node.wait_indexed(after_at, deadline()).await.unwrap();
        assert_eq!(node.get(&after_hash).unwrap().unwrap().offset, after_at);
        let health = node.health().unwrap();
        assert_eq!((health.lag_bytes, health.stalled), (0, None));
        assert_eq!(node.counts().unwrap(), (2, 0));
        node.shutdown().await.unwrap();
    });
}

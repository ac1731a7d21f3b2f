//! Byte budgets: the journal append queue (`journal.group_commit_queue_bytes_max`) and the
//! verification queue (`node.verify_queue_bytes_max`) refuse what does not fit with `Busy`
//! (naming the queue), refuse what can never fit with `TooLargeForQueue`, journal nothing of a
//! refused submission, and accept again once the queue has drained.
//!
//! The journal test holds the group-commit thread inside an acknowledgement (a reply that waits
//! for the test's signal), so the queue's content is known exactly: no timing is involved.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use stemedb_testkit as common;

use std::time::{Duration, Instant};

use common::{NOW_MS, key, with_node};
use crossbeam_channel::{RecvTimeoutError, bounded};
use stemedb::Config;
use stemedb::node::{Queue, QueueFull, QueueUnit, RECORD_STRUCT_BYTES, SubmitError};
use stemedb::protocol::{Assertion, ObjectValue};
use stemedb::storage::journal::{AppendReply, Journal, JournalConfig, JournalError};
use tempfile::TempDir;

/// Longest any wait in these tests may take before it counts as a failure.
const WAIT: Duration = Duration::from_secs(30);

/// A reply that forwards the outcome to the returned receiver.
fn forwarding() -> (
    AppendReply,
    crossbeam_channel::Receiver<Result<u64, JournalError>>,
) {
    let (tx, rx) = bounded(1);
    (
        Box::new(move |outcome| {
            let _ = tx.send(outcome);
        }),
        rx,
    )
}

#[test]
fn journal_queue_over_its_byte_budget_is_busy_until_it_drains() {
    let dir = TempDir::new().unwrap();
    let config = JournalConfig {
        record_bytes_max: 2000,
        group_commit_batch_bytes_max: 2000,
        group_commit_queue_bytes_max: 3000,
        ..JournalConfig::default()
    };
    let journal = Journal::open(dir.path(), config).unwrap();
    // The first append's reply holds the group-commit thread until the test lets it go.
    let (entered_tx, entered) = bounded(1);
    let (release, released) = bounded::<()>(1);
    let holding: AppendReply = Box::new(
        move |outcome: Result<u64, stemedb::storage::journal::JournalError>| {
            outcome.expect("first append");
            entered_tx.send(()).unwrap();
            let _ = released.recv_timeout(WAIT);
        },
    );
    journal.try_append(vec![1; 1000], holding).unwrap();
    entered
        .recv_timeout(WAIT)
        .expect("the commit thread runs the first reply");

    // The first append's share came back before its reply ran; the second now waits in the queue.
    let (reply, second) = forwarding();
    journal.try_append(vec![2; 2000], reply).unwrap();
    let (reply, refused) = forwarding();
    match journal.try_append(vec![3; 1001], reply) {
        Err(JournalError::Busy { full }) => assert_eq!(
            full,
            QueueFull {
                unit: QueueUnit::Bytes,
                requested: 1001,
                in_flight: 2000,
                max: 3000
            }
        ),
        other => panic!("expected Busy, got {other:?}"),
    }
    // Nothing was queued: the refused reply was dropped unrun.
    assert!(matches!(
        refused.recv_timeout(WAIT),
        Err(RecvTimeoutError::Disconnected)
    ));
    // A group larger than the whole budget can never fit, busy or not.
    let (a, _) = forwarding();
    let (b, _) = forwarding();
    let group = vec![(vec![4; 1600], a), (vec![5; 1600], b)];
    match journal.try_append_batch(group) {
        Err(JournalError::TooLargeForQueue { full }) => assert!(full.can_never_fit(), "{full}"),
        other => panic!("expected TooLargeForQueue, got {other:?}"),
    }

    release.send(()).unwrap();
    let second = second.recv_timeout(WAIT).unwrap().unwrap();
    // Drained: the same append is accepted now, and lands after the second.
    let (reply, third) = forwarding();
    journal.try_append(vec![3; 1001], reply).unwrap();
    assert!(third.recv_timeout(WAIT).unwrap().unwrap() > second);
}

/// A config whose verification queue holds two of [`big_assertion`]'s records but not three.
fn small_budgets() -> Config {
    let mut config = Config::default();
    config.limits.record_bytes_max = 16 * 1024;
    config.journal.record_bytes_max = 16 * 1024 + 1;
    config.node.verify_queue_bytes_max = 16 * 1024 + RECORD_STRUCT_BYTES;
    config.node.verify_threads = 1;
    config
}

/// A valid assertion with a 6 KiB text object, numbered `n`.
fn big_assertion(n: u64) -> Assertion {
    let text = format!("{n:06}").repeat(1024);
    let mut a = Assertion::new("big", "text", ObjectValue::Text(text), 0.5, NOW_MS + n);
    a.sign(&key(1));
    a
}

#[test]
fn submission_larger_than_the_verification_budget_is_refused_whole() {
    with_node(small_budgets(), |node| async move {
        let three: Vec<Assertion> = (0..3).map(big_assertion).collect();
        match node.submit_many(three.clone()).await {
            Err(SubmitError::TooLargeForQueue { queue, full }) => {
                assert_eq!((queue, full.unit), (Queue::Verification, QueueUnit::Bytes));
                assert!(full.requested > full.max);
            }
            other => panic!("expected TooLargeForQueue, got {other:?}"),
        }
        assert_eq!(node.durable_end().unwrap(), 0, "nothing of it was journaled");
        // Split, each part fits.
        let first = node.submit_many(three[..2].to_vec()).await.unwrap();
        let last = node.submit_many(three[2..].to_vec()).await.unwrap();
        let offset = last[0].as_ref().unwrap().offset;
        assert!(first.iter().all(Result::is_ok));
        node.wait_indexed(offset, Instant::now() + WAIT).await.unwrap();
        assert_eq!(node.counts().unwrap(), (3, 0));
        node.shutdown().await.unwrap();
    });
}

#[test]
fn submission_larger_than_the_journal_budget_journals_nothing() {
    let mut config = small_budgets();
    config.node.verify_queue_bytes_max = 1 << 20;
    config.journal.group_commit_queue_bytes_max = config.journal.record_bytes_max;
    with_node(config, |node| async move {
        // Each record fits alone; together the three exceed the journal queue.
        let three: Vec<Assertion> = (0..3).map(big_assertion).collect();
        match node.submit_many(three.clone()).await {
            Err(SubmitError::TooLargeForQueue { queue, full }) => {
                assert_eq!((queue, full.unit), (Queue::Append, QueueUnit::Bytes));
            }
            other => panic!("expected TooLargeForQueue, got {other:?}"),
        }
        assert_eq!(node.durable_end().unwrap(), 0, "nothing of it was journaled");
        let receipt = node.submit(three[0].clone()).await.unwrap();
        node.wait_indexed(receipt.offset, Instant::now() + WAIT)
            .await
            .unwrap();
        assert_eq!(node.counts().unwrap(), (1, 0));
        node.shutdown().await.unwrap();
    });
}

#[test]
fn concurrent_submissions_over_budget_are_busy_and_none_is_journaled() {
    with_node(small_budgets(), |node| async move {
        let claims: Vec<Assertion> = (0..64).map(big_assertion).collect();
        // Every task makes its submission before any of them awaits an answer.
        let tasks: Vec<_> = claims
            .iter()
            .cloned()
            .map(|claim| {
                actix::spawn({
                    let node = node.clone();
                    async move { node.submit(claim).await }
                })
            })
            .collect();
        let mut accepted = Vec::new();
        let mut busy = Vec::new();
        for (claim, task) in claims.iter().zip(tasks) {
            match task.await.unwrap() {
                Ok(receipt) => accepted.push(receipt),
                Err(SubmitError::Busy { full, .. }) => {
                    assert!(!full.can_never_fit(), "{full}");
                    busy.push(claim.clone());
                }
                Err(other) => panic!("only acks and Busy: {other}"),
            }
        }
        assert!(
            !busy.is_empty(),
            "64 simultaneous submissions into room for two must refuse some"
        );
        let last = accepted.iter().map(|r| r.offset).max().expect("some accepted");
        node.wait_indexed(last, Instant::now() + WAIT).await.unwrap();
        assert_eq!(node.counts().unwrap(), (accepted.len() as u64, 0));
        for claim in &busy {
            assert!(
                node.get(&claim.content_hash()).unwrap().is_none(),
                "a Busy one was journaled"
            );
        }
        // Drained: one at a time, every refused submission is accepted.
        for claim in busy {
            let receipt = node.submit(claim).await.expect("accepted once drained");
            node.wait_indexed(receipt.offset, Instant::now() + WAIT)
                .await
                .unwrap();
        }
        assert_eq!(node.counts().unwrap(), (claims.len() as u64, 0));
        node.shutdown().await.unwrap();
    });
}

//! The embedded node end to end: submissions are validated and verified before the journal,
//! become durable, are applied by the ingestor, and are found by hash, by subject and by
//! (subject, predicate); records the ingestor refuses are kept with their reason; the node
//! shuts down gracefully and reopens with the same state.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use stemedb_testkit as common;

use common::deadline;

use std::collections::HashSet;

use common::{NOW_MS, key, with_node};
use stemedb::Config;
use stemedb::node::{Node, Receipt, SubmitError};
use stemedb::protocol::{Assertion, Hash, ObjectValue, Signature, TextField, ValidationError};
use stemedb::storage::state::{ListQuery, RejectReason};
use tempfile::TempDir;

fn assertion(subject: &str, predicate: &str, value: i64, key_n: u8) -> Assertion {
    let mut a = Assertion::new(
        subject,
        predicate,
        ObjectValue::Integer(value),
        0.5,
        NOW_MS + value as u64,
    );
    a.sign(&key(key_n));
    a
}

async fn submit_indexed(node: &Node, assertion: Assertion) -> Receipt {
    let receipt = node.submit(assertion).await.unwrap();
    node.wait_indexed(receipt.offset, deadline()).await.unwrap();
    receipt
}

#[test]
fn submitted_assertion_is_found_by_hash_subject_and_pair() {
    with_node(Config::default(), |node| async move {
        let claim = assertion("city/paris", "population", 2_102_650, 1);
        let receipt = submit_indexed(&node, claim.clone()).await;
        assert_eq!(receipt.hash, claim.content_hash());
        let stored = node.get(&receipt.hash).unwrap().expect("stored");
        assert_eq!(stored.assertion, claim);
        assert_eq!(stored.offset, receipt.offset);
        let by_subject = node.list(&ListQuery::subject("city/paris")).unwrap();
        assert_eq!(by_subject.assertions.len(), 1);
        let by_pair = node.list(&ListQuery::pair("city/paris", "population")).unwrap();
        assert_eq!(by_pair.assertions[0].hash, receipt.hash);
        assert!(
            node.list(&ListQuery::pair("city/paris", "area"))
                .unwrap()
                .assertions
                .is_empty()
        );
        node.shutdown().await.unwrap();
    });
}

#[test]
fn hundred_submitters_of_hundred_assertions_are_all_indexed() {
    with_node(Config::default(), |node| async move {
        let submitters: Vec<_> = (0..100u8)
            .map(|s| {
                let node = node.clone();
                actix::spawn(async move {
                    let mut receipts = Vec::new();
                    for i in 0..100 {
                        let subject = format!("submitter/{s}");
                        let claim = assertion(&subject, &format!("p{}", i % 10), i, s);
                        receipts.push((claim.clone(), node.submit(claim).await.unwrap()));
                    }
                    receipts
                })
            })
            .collect();
        let mut all = Vec::new();
        for submitter in submitters {
            all.extend(submitter.await.unwrap());
        }
        assert_eq!(all.len(), 10_000);
        let last = all.iter().map(|(_, r)| r.offset).max().unwrap();
        node.wait_indexed(last, deadline()).await.unwrap();
        for (claim, receipt) in &all {
            assert_eq!(node.get(&receipt.hash).unwrap().unwrap().assertion, *claim);
        }
        for s in 0..100u8 {
            let mut query = ListQuery::subject(format!("submitter/{s}"));
            query.limit = 1000;
            let page = node.list(&query).unwrap();
            assert_eq!(page.assertions.len(), 100, "subject {s}");
            for p in 0..10 {
                let page = node
                    .list(&ListQuery::pair(format!("submitter/{s}"), format!("p{p}")))
                    .unwrap();
                assert_eq!(page.assertions.len(), 10, "subject {s} predicate p{p}");
            }
        }
        assert_eq!(node.counts().unwrap(), (10_000, 0));
        node.shutdown().await.unwrap();
    });
}

#[test]
fn awkward_names_are_stored_and_found() {
    let limits = stemedb::protocol::Limits::default();
    let names = [
        ("a:b", "c"),
        ("a", "b:c"),
        ("user:42:profile", "name:first"),
        ("🦀 crab 🦀", "émoji✓"),
        ("مرحبا بالعالم", "עברית"),
        (
            &*"s".repeat(limits.subject_bytes_max),
            &*"p".repeat(limits.predicate_bytes_max),
        ),
        (&*"é".repeat(limits.subject_bytes_max / 2), "x"),
    ];
    let names: Vec<(String, String)> = names
        .iter()
        .map(|(s, p)| (s.to_string(), p.to_string()))
        .collect();
    with_node(Config::default(), |node| async move {
        let mut hashes = Vec::new();
        for (i, (subject, predicate)) in names.iter().enumerate() {
            hashes.push(
                submit_indexed(&node, assertion(subject, predicate, i as i64, 3))
                    .await
                    .hash,
            );
        }
        for ((subject, predicate), hash) in names.iter().zip(&hashes) {
            let by_subject = node.list(&ListQuery::subject(subject.clone())).unwrap();
            let found: Vec<Hash> = by_subject.assertions.iter().map(|s| s.hash).collect();
            assert_eq!(found, vec![*hash], "subject {subject:?}");
            let by_pair = node
                .list(&ListQuery::pair(subject.clone(), predicate.clone()))
                .unwrap();
            assert_eq!(by_pair.assertions.len(), 1, "pair ({subject:?}, {predicate:?})");
            assert_eq!(by_pair.assertions[0].assertion.predicate, *predicate);
        }
        // "a:b"/"c" and "a"/"b:c" share bytes but never an index entry.
        assert!(
            node.list(&ListQuery::pair("a:b", "b:c"))
                .unwrap()
                .assertions
                .is_empty()
        );
        node.shutdown().await.unwrap();
    });
}

#[test]
fn over_limit_and_bad_signatures_are_refused_before_the_journal() {
    with_node(Config::default(), |node| async move {
        let limits = stemedb::protocol::Limits::default();
        let long_subject = assertion(&"s".repeat(limits.subject_bytes_max + 1), "p", 1, 1);
        let long_predicate = assertion("s", &"p".repeat(limits.predicate_bytes_max + 1), 1, 1);
        let control = assertion("line\nbreak", "p", 1, 1);
        let mut tampered = assertion("s", "p", 1, 1);
        tampered.confidence = 0.75;
        let mut forged = assertion("s", "p", 2, 1);
        forged.signatures[0].signature = Signature::from_bytes([7; 64]);
        let good = assertion("s", "p", 3, 1);
        let end_before = node.durable_end().unwrap();
        let results = node
            .submit_many(vec![
                long_subject,
                long_predicate,
                control,
                tampered,
                forged,
                good.clone(),
            ])
            .await
            .unwrap();
        assert!(matches!(
            results[0],
            Err(SubmitError::Invalid(ValidationError::TooLong {
                field: TextField::Subject,
                ..
            }))
        ));
        assert!(matches!(
            results[1],
            Err(SubmitError::Invalid(ValidationError::TooLong {
                field: TextField::Predicate,
                ..
            }))
        ));
        assert!(matches!(
            results[2],
            Err(SubmitError::Invalid(ValidationError::ControlCharacter { .. }))
        ));
        assert!(matches!(
            results[3],
            Err(SubmitError::Invalid(ValidationError::BadSignature { .. }))
        ));
        assert!(matches!(
            results[4],
            Err(SubmitError::Invalid(ValidationError::BadSignature { .. }))
        ));
        let receipt = results[5].as_ref().unwrap();
        node.wait_indexed(receipt.offset, deadline()).await.unwrap();
        // Only the good record reached the journal: it starts where the journal ended, and the
        // journal ends right after it.
        assert_eq!(receipt.offset, end_before);
        let dump = node.dump().unwrap();
        assert_eq!(dump.assertions.len(), 1);
        assert_eq!(dump.ingest_cursor, node.durable_end().unwrap());
        assert!(dump.rejected.is_empty());
        node.shutdown().await.unwrap();
    });
}

#[test]
fn unknown_parent_is_rejected_with_reason_and_ingestion_continues() {
    with_node(Config::default(), |node| async move {
        let root = submit_indexed(&node, assertion("doc", "title", 1, 1)).await;
        let mut orphan = assertion("doc", "title", 2, 1);
        orphan.parent = Some(Hash::of(b"nobody"));
        orphan.signatures.clear();
        orphan.sign(&key(1));
        let mut mismatched = assertion("doc", "author", 3, 1);
        mismatched.parent = Some(root.hash);
        mismatched.signatures.clear();
        mismatched.sign(&key(1));
        let mut child = assertion("doc", "title", 4, 1);
        child.parent = Some(root.hash);
        child.signatures.clear();
        child.sign(&key(1));
        let results = node
            .submit_many(vec![orphan.clone(), mismatched, child.clone()])
            .await
            .unwrap();
        let receipts: Vec<Receipt> = results.into_iter().map(Result::unwrap).collect();
        node.wait_indexed(receipts[2].offset, deadline()).await.unwrap();
        let rejections = node.rejections(0, 10).unwrap();
        assert_eq!(rejections.len(), 2);
        assert_eq!(rejections[0].offset, receipts[0].offset);
        assert_eq!(rejections[0].hash, Some(orphan.content_hash()));
        assert_eq!(
            rejections[0].reason,
            RejectReason::UnknownParent {
                parent: Hash::of(b"nobody")
            }
        );
        assert_eq!(
            rejections[1].reason,
            RejectReason::ParentMismatch { parent: root.hash }
        );
        assert!(node.get(&receipts[0].hash).unwrap().is_none());
        // The child after them was applied: it supersedes the root.
        assert!(node.get(&child.content_hash()).unwrap().is_some());
        assert_eq!(
            node.successors(&root.hash, 10).unwrap(),
            vec![child.content_hash()]
        );
        node.shutdown().await.unwrap();
    });
}

#[test]
fn heads_hide_superseded_assertions_and_history_shows_them() {
    with_node(Config::default(), |node| async move {
        let mut parent = submit_indexed(&node, assertion("page", "body", 1, 2)).await.hash;
        let mut chain = vec![parent];
        for version in 2..=5 {
            let mut next = assertion("page", "body", version, 2);
            next.parent = Some(parent);
            next.signatures.clear();
            next.sign(&key(2));
            parent = submit_indexed(&node, next).await.hash;
            chain.push(parent);
        }
        let heads = node.list(&ListQuery::pair("page", "body")).unwrap();
        assert_eq!(
            heads.assertions.iter().map(|s| s.hash).collect::<Vec<_>>(),
            vec![parent]
        );
        // History lists the heads, then the superseded versions, each part oldest first.
        let mut expected = vec![parent];
        expected.extend(&chain[..chain.len() - 1]);
        let chain = expected;
        let mut query = ListQuery::pair("page", "body");
        query.history = true;
        let history = node.list(&query).unwrap();
        assert_eq!(
            history.assertions.iter().map(|s| s.hash).collect::<Vec<_>>(),
            chain
        );
        // Paging through the history two at a time yields the same sequence.
        query.limit = 2;
        let mut paged = Vec::new();
        loop {
            let page = node.list(&query).unwrap();
            paged.extend(page.assertions.iter().map(|s| s.hash));
            match page.next {
                Some(next) => query.after = Some(next),
                None => break,
            }
        }
        assert_eq!(paged, chain);
        node.shutdown().await.unwrap();
    });
}

#[test]
fn resubmitted_assertion_is_stored_once() {
    with_node(Config::default(), |node| async move {
        let claim = assertion("dup", "p", 1, 4);
        let first = submit_indexed(&node, claim.clone()).await;
        let end = node.durable_end().unwrap();
        let second = submit_indexed(&node, claim.clone()).await;
        assert_eq!(first.hash, second.hash);
        // Stored already: answered with the stored copy, not journaled again.
        assert!(!first.duplicate && second.duplicate);
        assert_eq!(first.offset, second.offset);
        assert_eq!(node.durable_end().unwrap(), end);
        assert_eq!(node.list(&ListQuery::subject("dup")).unwrap().assertions.len(), 1);
        assert_eq!(node.get(&first.hash).unwrap().unwrap().offset, first.offset);
        assert_eq!(node.counts().unwrap(), (1, 0));
        node.shutdown().await.unwrap();
    });
}

#[test]
fn full_pipeline_answers_busy_and_loses_nothing_accepted() {
    let mut config = Config::default();
    config.node.submit_queue_depth_max = 1;
    config.node.verify_threads = 1;
    with_node(config, |node| async move {
        let claims: Vec<Assertion> = (0..500).map(|i| assertion("busy", "p", i, 5)).collect();
        let futures: Vec<_> = claims.iter().cloned().map(|c| node.submit(c)).collect();
        let results = futures_join_all(futures).await;
        let accepted: Vec<&Receipt> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
        let busy = results
            .iter()
            .filter(|r| matches!(r, Err(SubmitError::Busy { .. })))
            .count();
        assert_eq!(
            accepted.len() + busy,
            claims.len(),
            "only acks and busy answers: {results:?}"
        );
        assert!(
            busy > 0,
            "a queue of depth 1 under 500 simultaneous submissions must refuse some"
        );
        let last = accepted.iter().map(|r| r.offset).max().unwrap();
        node.wait_indexed(last, deadline()).await.unwrap();
        for receipt in &accepted {
            assert!(node.get(&receipt.hash).unwrap().is_some());
        }
        node.shutdown().await.unwrap();
    });
}

/// Polls all futures concurrently on this task and returns their outputs in order.
async fn futures_join_all<F: std::future::Future>(futures: Vec<F>) -> Vec<F::Output> {
    let handles: Vec<_> = futures.into_iter().map(Box::pin).collect();
    let mut outputs = Vec::with_capacity(handles.len());
    let mut pending: Vec<_> = handles.into_iter().map(Some).collect();
    let mut done: Vec<Option<F::Output>> = (0..pending.len()).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut all_done = true;
        for (slot, out) in pending.iter_mut().zip(done.iter_mut()) {
            if let Some(future) = slot {
                match future.as_mut().poll(cx) {
                    std::task::Poll::Ready(value) => {
                        *out = Some(value);
                        *slot = None;
                    }
                    std::task::Poll::Pending => all_done = false,
                }
            }
        }
        if all_done {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
    outputs.extend(done.into_iter().map(Option::unwrap));
    outputs
}

#[test]
fn shutdown_flushes_and_restart_serves_the_same_state() {
    let dir = TempDir::new().unwrap();
    let hashes: HashSet<Hash> = actix::System::new().block_on(async {
        let node = Node::start(Config::default(), dir.path()).unwrap();
        let claims: Vec<Assertion> = (0..200).map(|i| assertion("restart", "p", i, 6)).collect();
        let results = node.submit_many(claims).await.unwrap();
        // No wait_indexed: shutdown itself must let the ingestor finish.
        node.shutdown().await.unwrap();
        assert!(matches!(
            node.submit(assertion("late", "p", 1, 6)).await,
            Err(SubmitError::Closed)
        ));
        results.into_iter().map(|r| r.unwrap().hash).collect()
    });
    actix::System::new().block_on(async {
        let node = Node::start(Config::default(), dir.path()).unwrap();
        let dump = node.dump().unwrap();
        assert_eq!(
            dump.ingest_cursor,
            node.durable_end().unwrap(),
            "caught up before the restart"
        );
        let stored: HashSet<Hash> = dump.assertions.iter().map(|s| s.hash).collect();
        assert_eq!(stored, hashes);
        node.shutdown().await.unwrap();
    });
}

#[test]
fn node_outside_a_system_is_refused() {
    let dir = TempDir::new().unwrap();
    let error = Node::start(Config::default(), dir.path()).unwrap_err();
    assert!(matches!(error, stemedb::node::NodeError::NoSystem), "{error}");
}

#[test]
fn shutdown_releases_the_directory_for_a_restart_in_the_same_system() {
    let dir = TempDir::new().unwrap();
    actix::System::new().block_on(async {
        let mut hashes = Vec::new();
        for round in 0..3 {
            let node = Node::start(Config::default(), dir.path()).unwrap();
            hashes.push(
                submit_indexed(&node, assertion("again", "p", round, 7))
                    .await
                    .hash,
            );
            node.shutdown().await.unwrap();
        }
        let node = Node::start(Config::default(), dir.path()).unwrap();
        for hash in &hashes {
            assert!(node.get(hash).unwrap().is_some());
        }
        node.shutdown().await.unwrap();
    });
}

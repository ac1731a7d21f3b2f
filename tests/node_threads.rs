//! The node's threads are its own: ingestion does not wait on the host's actix thread, and
//! shutdown neither blocks that thread while it joins the node's threads nor blocks readers.
//!
//! Each test blocks something on purpose and is bounded by deadlines on both sides, so that a
//! regression fails the test instead of hanging it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use stemedb_testkit as common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use common::{NOW_MS, key};
use stemedb::Config;
use stemedb::actors::Hooks;
use stemedb::node::{Node, NodeError};
use stemedb::protocol::{Assertion, ObjectValue};
use tempfile::TempDir;

/// Longest any wait in these tests may take before it counts as a failure.
const WAIT: Duration = Duration::from_secs(20);

fn assertion(subject: &str, value: i64) -> Assertion {
    let mut a = Assertion::new(subject, "population", ObjectValue::Integer(value), 0.5, NOW_MS);
    a.sign(&key(1));
    a
}

#[test]
fn ingest_proceeds_while_the_host_thread_is_blocked() {
    let dir = TempDir::new().unwrap();
    actix::System::new().block_on(async {
        let node = Node::start(Config::default(), dir.path()).unwrap();
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        let remote = node.clone();
        let helper = std::thread::spawn(move || {
            let outcome = actix::System::new().block_on(async move {
                let receipt = remote
                    .submit(assertion("city/a", 1))
                    .await
                    .map_err(|e| e.to_string())?;
                let deadline = Instant::now() + WAIT;
                remote
                    .wait_indexed(receipt.offset, deadline)
                    .await
                    .map_err(|e| e.to_string())
            });
            let _ = done_tx.send(outcome);
        });
        // Block the host's thread, and with it every actor on the host's arbiter, until the
        // helper has submitted and seen its record indexed (or given up at its deadline).
        let outcome = done_rx.recv_timeout(WAIT * 2).expect("the helper reports");
        helper.join().unwrap();
        assert_eq!(outcome, Ok(()), "ingestion must not depend on the host's thread");
        node.shutdown().await.unwrap();
    });
}

#[test]
fn shutdown_joins_threads_off_the_host_thread_without_blocking_readers() {
    let dir = TempDir::new().unwrap();
    // Once armed, the ingestor's thread blocks after its next batch until released (or until
    // the deadline), so that shutdown's join of that thread takes as long as the test wants.
    let armed = Arc::new(AtomicBool::new(false));
    let (release, blocked) = mpsc::channel::<()>();
    let blocked = Arc::new(Mutex::new(Some(blocked)));
    let hooks = Hooks {
        after_batch: Some(Arc::new({
            let armed = armed.clone();
            move |_cursor| {
                if armed.load(Ordering::SeqCst)
                    && let Some(blocked) = blocked.lock().unwrap().take()
                {
                    let _ = blocked.recv_timeout(WAIT);
                }
            }
        })),
        ..Hooks::default()
    };
    actix::System::new().block_on(async move {
        let node = Node::start_with_hooks(Config::default(), dir.path(), hooks).unwrap();
        armed.store(true, Ordering::SeqCst);
        let receipt = node.submit(assertion("city/a", 1)).await.unwrap();
        node.wait_indexed(receipt.offset, Instant::now() + WAIT)
            .await
            .unwrap();
        let finished = Arc::new(AtomicBool::new(false));
        let shutdown = actix::spawn({
            let (node, finished) = (node.clone(), finished.clone());
            async move {
                let outcome = node.shutdown().await;
                finished.store(true, Ordering::SeqCst);
                outcome
            }
        });
        // Runs on the host's thread: it gets to run only if shutdown does not block that thread.
        let deadline = Instant::now() + WAIT;
        while node.durable_end().is_ok() {
            assert!(Instant::now() < deadline, "shutdown never took the node down");
            actix_rt::task::yield_now().await;
        }
        assert!(
            !finished.load(Ordering::SeqCst),
            "the host's thread ran only after shutdown had joined the blocked ingest thread"
        );
        // A reader on another thread is answered at once, while the join is still waiting.
        let (answer_tx, answer) = mpsc::channel();
        let reader = std::thread::spawn({
            let node = node.clone();
            move || answer_tx.send(node.get(&receipt.hash)).unwrap()
        });
        let read = answer
            .recv_timeout(WAIT / 4)
            .expect("a reader is not blocked by shutdown");
        assert!(matches!(read, Err(NodeError::Closed)), "{read:?}");
        reader.join().unwrap();
        assert!(
            !finished.load(Ordering::SeqCst),
            "the ingest thread is still blocked"
        );
        release.send(()).unwrap();
        let outcome = actix_rt::time::timeout(WAIT, shutdown)
            .await
            .expect("shutdown ends");
        outcome.unwrap().unwrap();
    });
}

//! The node's threads are its own: ingestion does not wait on the host's actix thread, and
//! shutdown neither blocks that thread while it joins the node's threads nor blocks readers.
//!
//! Each test blocks something on purpose and is bounded by deadlines on both sides, so that a
//! regression fails the test instead of hanging it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::{NOW_MS, key};
use stemedb::Config;
use stemedb::node::Node;
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

//! Retention runs in the node: with `retention = { keep = "bytes", bytes_min = N }` a long
//! ingest keeps the number of journal segments bounded (the ingestor saves its journal cursor
//! once its state is durable, then collects what lies below both the cursor and the newest N
//! bytes), every assertion stays readable from the state, and the node restarts on the
//! collected journal. Under the default (`keep = "all"`) no segment is ever removed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use stemedb_testkit as common;

use common::deadline;

use std::path::Path;

use common::{NOW_MS, key};
use stemedb::Config;
use stemedb::node::LeafRef;
use stemedb::node::{JOURNAL_DIR, Node};
use stemedb::protocol::merkle::verify_inclusion;
use stemedb::protocol::{Assertion, ObjectValue};
use stemedb::storage::journal::Retention;
use tempfile::TempDir;

/// Segment size of these tests: small, so that a short ingest spans many segments.
const SEGMENT_BYTES: u64 = 64 * 1024;
/// Bytes of newest log that byte retention keeps.
const KEEP_BYTES: u64 = 256 * 1024;
/// Rounds of submissions, and assertions per round (about 30 KiB of log per round).
const ROUNDS: usize = 60;
const PER_ROUND: usize = 100;

fn config(retention: Retention) -> Config {
    let mut config = Config::default();
    config.journal.segment_size_bytes = SEGMENT_BYTES;
    config.journal.retention = retention;
    config
}

fn claims(round: usize) -> Vec<Assertion> {
    let key = key(3);
    (0..PER_ROUND)
        .map(|i| {
            let object = ObjectValue::Text(format!("{round}-{i}-{}", "x".repeat(120)));
            let mut claim = Assertion::new(format!("s/{round}/{i}"), "p", object, 0.5, NOW_MS + i as u64);
            claim.sign(&key);
            claim
        })
        .collect()
}

fn segment_count(data_dir: &Path) -> usize {
    std::fs::read_dir(data_dir.join(JOURNAL_DIR))
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "wal"))
        .count()
}

/// Ingests `ROUNDS` rounds; returns the most segments seen after any round, the durable end,
/// and one assertion hash of every round.
fn ingest(data_dir: &Path, config: Config) -> (usize, u64, Vec<stemedb::protocol::Hash>) {
    actix::System::new().block_on(async {
        let node = Node::start(config, data_dir).unwrap();
        let (mut most, mut hashes) = (0, Vec::new());
        for round in 0..ROUNDS {
            let receipts = node.submit_many(claims(round)).await.unwrap();
            let last = receipts.iter().map(|r| r.as_ref().unwrap().offset).max().unwrap();
            node.wait_indexed(last, deadline()).await.unwrap();
            hashes.push(receipts[0].as_ref().unwrap().hash);
            most = most.max(segment_count(data_dir));
        }
        for hash in &hashes {
            assert!(node.get(hash).unwrap().is_some(), "{hash} is stored");
        }
        let end = node.durable_end().unwrap();
        node.shutdown().await.unwrap();
        (most, end, hashes)
    })
}

#[test]
fn byte_retention_keeps_the_segment_count_bounded_during_a_long_ingest() {
    let dir = TempDir::new().unwrap();
    let (most, end, hashes) = ingest(
        dir.path(),
        config(Retention::Bytes {
            bytes_min: KEEP_BYTES,
        }),
    );
    let history_segments = (end / SEGMENT_BYTES) as usize;
    // The newest KEEP_BYTES, the segment being applied, the active one, and one cursor step of
    // lag (the cursor is saved once per segment of progress).
    let bound = (KEEP_BYTES / SEGMENT_BYTES) as usize + 4;
    assert!(
        history_segments > 3 * bound,
        "the ingest must outgrow the bound: {history_segments} segments of history"
    );
    assert!(
        most <= bound,
        "at most {bound} segments, saw {most} ({history_segments} of history)"
    );
    // The node restarts on the collected journal, and the state still holds everything.
    actix::System::new().block_on(async {
        let node = Node::start(
            config(Retention::Bytes {
                bytes_min: KEEP_BYTES,
            }),
            dir.path(),
        )
        .unwrap();
        node.wait_caught_up(deadline()).await.unwrap();
        for hash in &hashes {
            assert!(node.get(hash).unwrap().is_some(), "{hash} survives the restart");
        }
        // Retention never removes the tree: the first record's bytes are gone from the
        // journal, its leaf is not, and its inclusion proof still verifies; and an answer about
        // its pair is still proven (receipts read the state, not the journal).
        let head = node.tree_head().unwrap();
        assert!(
            node.leaf_record(0).unwrap().is_none(),
            "the first record was collected"
        );
        let first = node.inclusion_proof(LeafRef::Content(hashes[0]), None).unwrap();
        verify_inclusion(&first.leaf, first.index, head.size, &first.path, &head.root).unwrap();
        let stored = node.get(&hashes[0]).unwrap().unwrap().assertion;
        let query = stemedb::lens::Query::new(stored.subject.clone(), stored.predicate.clone(), "recency");
        let (_, proven) = node.resolve_verifiable(query).await.unwrap();
        stemedb::receipt::verify(&proven, &node.checkpoint_verifier()).unwrap();
        let receipt = node.submit(claims(ROUNDS).remove(0)).await.unwrap();
        node.wait_indexed(receipt.offset, deadline()).await.unwrap();
        node.shutdown().await.unwrap();
    });
}

#[test]
fn the_default_retention_keeps_every_segment() {
    let dir = TempDir::new().unwrap();
    let (most, end, _) = ingest(dir.path(), config(Retention::default()));
    assert!(end / SEGMENT_BYTES >= 10, "{end} bytes of history");
    assert!(most >= 10, "{most} segments");
    assert_eq!(segment_count(dir.path()), most, "nothing was removed");
    let first = dir.path().join(JOURNAL_DIR).join(format!("{:020}.wal", 0));
    assert!(first.exists(), "the oldest segment is kept");
}

//! `Node::state_digest`: nodes that applied the same log up to the same cursor have the same
//! digest, however they batched it; any change to the state changes it; and
//! `stemedb state digest DIR` prints it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use stemedb_testkit as common;

use common::deadline;

use std::path::Path;

use common::{NOW_MS, key};
use stemedb::Config;
use stemedb::node::{JOURNAL_DIR, Node, StateDigest};
use stemedb::protocol::{Assertion, Hash, ObjectValue, Vote};
use tempfile::TempDir;

/// Writes assertions, votes (re-votes included) and a stray vote that is rejected.
async fn populate(node: &Node) {
    let mut hashes = Vec::new();
    for n in 0..40u8 {
        let mut claim = Assertion::new(
            format!("s{}", n % 5),
            "p",
            ObjectValue::Integer(i64::from(n)),
            0.5,
            NOW_MS + u64::from(n),
        );
        claim.sign(&key(1 + n % 3));
        hashes.push(node.submit(claim).await.unwrap().hash);
    }
    for (i, target) in hashes.iter().enumerate().take(10) {
        node.cast_vote(Vote::sign(&key(9), *target, 1.0, NOW_MS + i as u64))
            .await
            .unwrap();
        node.cast_vote(Vote::sign(&key(9), *target, 2.0, NOW_MS + 100 + i as u64))
            .await
            .unwrap();
    }
    node.cast_vote(Vote::sign(&key(9), Hash::of(b"nowhere"), 1.0, NOW_MS))
        .await
        .unwrap();
    node.wait_caught_up(deadline()).await.unwrap();
}

fn copy_journal(from: &Path, to: &Path) {
    let (from, to) = (from.join(JOURNAL_DIR), to.join(JOURNAL_DIR));
    std::fs::create_dir_all(&to).unwrap();
    for entry in std::fs::read_dir(&from).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if path.is_file() && name != "LOCK" && !name.ends_with(".tmp") {
            std::fs::copy(&path, to.join(name)).unwrap();
        }
    }
}

/// Starts a node on `dir` with ingest batches of at most `batch` records, lets it apply its
/// journal, and returns its digest.
async fn digest_of(dir: &Path, batch: usize) -> StateDigest {
    let mut config = Config::default();
    config.node.ingest_batch_records_max = batch;
    let node = Node::start(config, dir).unwrap();
    node.wait_caught_up(deadline()).await.unwrap();
    let digest = node.state_digest().unwrap();
    node.shutdown().await.unwrap();
    digest
}

#[test]
fn replicas_of_one_log_agree_however_they_batch_and_any_change_shows() {
    let source = TempDir::new().unwrap();
    let (one, many) = (TempDir::new().unwrap(), TempDir::new().unwrap());
    actix::System::new().block_on(async {
        let node = Node::start(Config::default(), source.path()).unwrap();
        populate(&node).await;
        let original = node.state_digest().unwrap();
        assert_eq!(original.cursor, node.ingest_status().cursor);
        assert_eq!(
            original,
            node.state_digest().unwrap(),
            "reading twice changes nothing"
        );
        node.shutdown().await.unwrap();

        copy_journal(source.path(), one.path());
        copy_journal(source.path(), many.path());
        let batched_by_one = digest_of(one.path(), 1).await;
        let batched_by_many = digest_of(many.path(), 1000).await;
        assert_eq!(batched_by_one, original, "one record a batch");
        assert_eq!(batched_by_many, original, "a thousand records a batch");

        // One more vote: a different state, a different digest.
        let node = Node::start(Config::default(), one.path()).unwrap();
        let target = node
            .list(&stemedb::node::ListQuery::pair("s0", "p"))
            .unwrap()
            .assertions[0]
            .hash;
        let receipt = node
            .cast_vote(Vote::sign(&key(8), target, 1.0, NOW_MS))
            .await
            .unwrap();
        node.wait_indexed(receipt.offset, deadline()).await.unwrap();
        let changed = node.state_digest().unwrap();
        node.shutdown().await.unwrap();
        assert_ne!(changed.hash, original.hash);
        assert!(changed.cursor > original.cursor);
    });
    // The command prints the same digest.
    let output = assert_cmd::Command::cargo_bin("stemedb")
        .unwrap()
        .args(["state", "digest"])
        .arg(many.path())
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let printed = String::from_utf8(output.stdout).unwrap();
    let source_digest = actix::System::new().block_on(digest_of(source.path(), 256));
    assert_eq!(
        printed.trim(),
        format!("{} cursor {}", source_digest.hash, source_digest.cursor)
    );
}

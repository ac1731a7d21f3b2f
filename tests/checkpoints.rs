//! Signed checkpoints (issue 25): the node's key is made at first start (mode 0600, its
//! verifier key written next to it), checkpoints are C2SP signed notes of the tree head that
//! verify with that key, kept as the tree grows; a key others may read, or one for another
//! origin, is refused; and a node whose data directory is replaced by an older copy refuses to
//! sign, while a client that saw a later checkpoint catches a rolled-back node by its
//! consistency proof.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use stemedb_testkit as common;

use common::{NOW_MS, deadline, key};
use stemedb::Config;
use stemedb::node::{CHECKPOINT_KEY_FILE, CheckpointError, Node, NodeError};
use stemedb::protocol::merkle::{ProofError, verify_consistency};
use stemedb::protocol::note::{Checkpoint, NoteError, NoteVerifier};
use stemedb::protocol::{Assertion, ObjectValue};
use tempfile::TempDir;

fn config(key_file: Option<PathBuf>) -> Config {
    let mut config = Config::default();
    config.checkpoint.key_file = key_file;
    config.checkpoint.origin = "example.org/stemedb-test".to_owned();
    config.checkpoint.interval_ms = 10;
    config
}

async fn write(node: &Node, from: u64, count: u64, subject: &str) {
    let mut last = 0;
    for i in from..from + count {
        let mut a = Assertion::new(subject, "p", ObjectValue::Integer(i as i64), 0.5, NOW_MS + i);
        a.sign(&key(1));
        last = node.submit(a).await.unwrap().offset;
    }
    node.wait_indexed(last, deadline()).await.unwrap();
}

fn run<F: std::future::Future<Output = ()>>(f: impl FnOnce() -> F) {
    actix::System::new().block_on(f());
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[test]
fn checkpoints_are_signed_notes_of_the_tree_kept_as_it_grows_with_a_private_key() {
    let (root, identity) = (TempDir::new().unwrap(), TempDir::new().unwrap());
    let dir = root.path().join("data");
    let key_file = identity.path().join("node.key");
    let config = config(Some(key_file.clone()));
    run(|| async {
        let node = Node::start(config.clone(), &dir).unwrap();
        write(&node, 0, 50, "s").await;
        let verifier = node.checkpoint_verifier();
        assert_eq!(verifier.name(), "example.org/stemedb-test");
        let published = std::fs::read_to_string(identity.path().join("node.key.pub")).unwrap();
        assert_eq!(NoteVerifier::parse(&published).unwrap(), verifier);
        let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the key is the owner's alone");
        let signed = node.sign_checkpoint().unwrap();
        let head = node.tree_head().unwrap();
        let opened = Checkpoint::open(&signed.note, &verifier).unwrap();
        assert_eq!(
            (opened.size, opened.root, opened.origin.as_str()),
            (head.size, head.root, verifier.name())
        );
        assert_eq!(opened, signed.checkpoint);
        // A flipped byte anywhere in the note is caught, by name.
        for at in 0..signed.note.len() {
            let mut bytes = signed.note.clone().into_bytes();
            bytes[at] ^= 0x01;
            let Ok(tampered) = String::from_utf8(bytes) else {
                continue;
            };
            let refused = Checkpoint::open(&tampered, &verifier);
            assert!(refused.is_err(), "a flip at byte {at} passed: {tampered:?}");
        }
        // Another key's verifier finds no signature of its own.
        let other = NoteVerifier::parse(&published.replace("example.org", "example.com")).unwrap_err();
        assert!(matches!(other, NoteError::BadKey(_)), "{other}");
        // The checkpointer keeps one as the tree grows.
        write(&node, 50, 20, "s").await;
        let grown = node.tree_head().unwrap().size;
        let kept = node.wait_checkpoint(grown, deadline()).await.unwrap();
        let kept = kept.unwrap_or_else(|| panic!("no checkpoint of size {grown}"));
        assert_eq!(
            kept.checkpoint.size, grown,
            "the checkpointer keeps the tree as it grew"
        );
        Checkpoint::open(&kept.note, &verifier).unwrap();
        let older = node.checkpoint(Some(grown - 1)).unwrap().unwrap();
        assert!(
            older.checkpoint.size < grown,
            "a past checkpoint is kept and found by size"
        );
        node.shutdown().await.unwrap();
    });
    // Group or others may read the key: refused at start, naming it.
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o640)).unwrap();
    let refused = Node::start(config.clone(), &dir).unwrap_err();
    assert!(
        matches!(refused, NodeError::Checkpoint(CheckpointError::Key { .. })),
        "{refused}"
    );
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    // A key made for another origin: refused.
    let mut other = config.clone();
    other.checkpoint.origin = "example.org/another".to_owned();
    let refused = Node::start(other, &dir).unwrap_err();
    assert!(refused.to_string().contains("is for origin"), "{refused}");
}

#[test]
fn a_node_rolled_back_to_an_older_copy_refuses_to_sign_and_a_client_catches_it() {
    let (root, identity) = (TempDir::new().unwrap(), TempDir::new().unwrap());
    let (dir, copy) = (root.path().join("data"), root.path().join("copy"));
    // The key outside the data directory: the node itself sees the rollback.
    let outside = config(Some(identity.path().join("node.key")));
    // The key inside it (the default): the copy brings its old key state back, and only a
    // client that kept a checkpoint can tell.
    let inside = config(None);
    for (config, ctx) in [(outside, "key outside"), (inside, "key inside")] {
        let _ = std::fs::remove_dir_all(&dir);
        let _ = std::fs::remove_dir_all(&copy);
        let _ = std::fs::remove_file(identity.path().join("node.key.latest"));
        let seen = std::sync::Arc::new(std::sync::Mutex::new(None));
        let (config2, config3, seen2) = (config.clone(), config.clone(), seen.clone());
        let (d, c) = (dir.clone(), copy.clone());
        run(|| async move {
            let (dir, copy) = (&d, &c);
            let node = Node::start(config2, dir).unwrap();
            write(&node, 0, 30, "s").await;
            node.sign_checkpoint().unwrap();
            node.shutdown().await.unwrap();
            copy_dir(dir, copy);
            let node = Node::start(config3, dir).unwrap();
            write(&node, 30, 30, "s").await;
            // The checkpoint a client saw.
            let seen_checkpoint = node.sign_checkpoint().unwrap();
            *seen2.lock().unwrap() = Some((seen_checkpoint, node.checkpoint_verifier()));
            node.shutdown().await.unwrap();
        });
        let (seen, verifier) = seen.lock().unwrap().take().unwrap();
        // The data directory goes back to the copy; the log then takes other records.
        std::fs::remove_dir_all(&dir).unwrap();
        copy_dir(&copy, &dir);
        let d = dir.clone();
        run(|| async move {
            let node = Node::start(config, &d).unwrap();
            let key_inside = d.join(CHECKPOINT_KEY_FILE).exists();
            assert_eq!(key_inside, ctx == "key inside", "{ctx}: where the key is");
            let refused = node.sign_checkpoint();
            if ctx == "key outside" {
                let refused = refused.unwrap_err();
                let named = matches!(
                    refused,
                    NodeError::Checkpoint(CheckpointError::Inconsistent { .. })
                );
                assert!(named, "{ctx}: {refused}");
            }
            write(&node, 1000, 60, "forked").await;
            let now = node.tree_head().unwrap();
            assert!(
                now.size > seen.checkpoint.size,
                "{ctx}: the forked log grew past the seen size"
            );
            if ctx == "key outside" {
                let refused = node.sign_checkpoint().unwrap_err();
                assert!(
                    matches!(
                        refused,
                        NodeError::Checkpoint(CheckpointError::Inconsistent { .. })
                    ),
                    "{ctx}"
                );
            } else {
                let signed = node.sign_checkpoint().unwrap();
                let next = Checkpoint::open(&signed.note, &verifier).unwrap();
                // The client asks for the consistency proof from what it saw: it does not hold.
                let proof = node
                    .consistency_proof(seen.checkpoint.size, Some(next.size))
                    .unwrap();
                let caught = verify_consistency(
                    seen.checkpoint.size,
                    next.size,
                    &seen.checkpoint.root,
                    &next.root,
                    &proof,
                );
                assert_eq!(caught, Err(ProofError::OldRootMismatch), "{ctx}");
            }
            node.shutdown().await.unwrap();
        });
    }
}

//! The Merkle tree over the log (issue 25): every journal record is a leaf, in log order,
//! rejected ones and resubmissions included; the node's root equals the root of the journal's
//! records rebuilt by this test; every inclusion proof (by index and by content hash) and
//! consistency proof the node serves verifies against those roots; the tiles are the leaves and
//! the level-8 subtrees; the tree size at a log position counts the records below it; the tree
//! survives a restart; and a state that lost its tree (as one written before the tree existed)
//! gets it back from the journal when the node opens.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use stemedb_testkit as common;

use common::crash::replay_journal_records;
use common::{NOW_MS, deadline, key};
use stemedb::Config;
use stemedb::node::{LeafRef, Node, NodeError, STATE_DIR, StateError};
use stemedb::protocol::merkle::{MerkleHash, leaf_hash, root_of, verify_consistency, verify_inclusion};
use stemedb::protocol::{Assertion, Hash, LogRecord, ObjectValue, Vote};
use stemedb::storage::state::State;
use tempfile::TempDir;

fn claim(i: u64) -> Assertion {
    let mut a = Assertion::new(
        format!("city/{}", i % 7),
        "population",
        ObjectValue::Integer(i as i64),
        0.5,
        NOW_MS + i,
    );
    a.sign(&key((i % 3) as u8 + 1));
    a
}

/// Writes 450 assertions (every tenth resubmitted, every 25th an orphan child the ingest
/// rejects) and a vote on each tenth; returns the content hashes of what was written.
async fn write_history(node: &Node) -> Vec<Hash> {
    let mut written = Vec::new();
    let mut last = 0;
    for i in 0..450u64 {
        let a = claim(i);
        let receipt = node.submit(a.clone()).await.unwrap();
        written.push(receipt.hash);
        last = last.max(receipt.offset);
        if i % 10 == 0 {
            // The resend is answered as a duplicate once indexed; before, it is a second leaf.
            let again = node.submit(a.clone()).await.unwrap();
            last = last.max(again.offset);
            let vote = Vote::sign(&key(9), receipt.hash, 1.0 + (i % 50) as f32, NOW_MS + i);
            let cast = node.cast_vote(vote).await.unwrap();
            written.push(cast.hash);
            last = last.max(cast.offset);
        }
        if i % 25 == 0 {
            let mut orphan = claim(10_000 + i);
            orphan.parent = Some(Hash::from_bytes([7; 32]));
            orphan.signatures.clear();
            orphan.sign(&key(1));
            let receipt = node.submit(orphan).await.unwrap();
            last = last.max(receipt.offset);
        }
    }
    node.wait_indexed(last, deadline()).await.unwrap();
    written
}

/// The journal's records, as (offset, leaf hash, content hash if it decodes).
fn journal_leaves(dir: &std::path::Path) -> Vec<(u64, MerkleHash, Option<Hash>)> {
    let mut leaves = Vec::new();
    replay_journal_records(dir, "tree", |offset, payload| {
        let content = LogRecord::decode(payload).ok().map(|r| r.content_hash());
        leaves.push((offset, leaf_hash(payload), content));
    });
    leaves
}

fn check_tree(node: &Node, leaves: &[(u64, MerkleHash, Option<Hash>)], written: &[Hash]) {
    let hashes: Vec<MerkleHash> = leaves.iter().map(|(_, h, _)| *h).collect();
    let head = node.tree_head().unwrap();
    assert_eq!(head.size, hashes.len() as u64, "one leaf per journal record");
    assert_eq!(head.root, root_of(&hashes), "the root is the journal's");
    for (index, (offset, leaf, _)) in leaves.iter().enumerate() {
        let index = index as u64;
        let proof = node.inclusion_proof(LeafRef::Index(index), None).unwrap();
        assert_eq!(
            (proof.leaf, proof.offset, proof.size),
            (*leaf, *offset, head.size)
        );
        verify_inclusion(leaf, index, head.size, &proof.path, &head.root).unwrap();
        assert_eq!(
            node.tree_size_at(*offset).unwrap(),
            index,
            "the size at leaf {index}'s record"
        );
    }
    for hash in written {
        let first = leaves
            .iter()
            .position(|(_, _, c)| c.as_ref() == Some(hash))
            .unwrap() as u64;
        let size = (first + 1 + (first % 5)).min(head.size);
        let proof = node.inclusion_proof(LeafRef::Content(*hash), Some(size)).unwrap();
        assert_eq!(proof.index, first, "a record's first leaf");
        let root = root_of(&hashes[..size as usize]);
        verify_inclusion(&proof.leaf, proof.index, size, &proof.path, &root).unwrap();
    }
    for old in (0..=head.size).step_by(7) {
        for new in [old, old + 1, old + 130, head.size] {
            let new = new.min(head.size);
            let proof = node.consistency_proof(old, Some(new)).unwrap();
            let (old_root, new_root) = (root_of(&hashes[..old as usize]), root_of(&hashes[..new as usize]));
            assert_eq!(node.tree_root(new).unwrap(), new_root);
            verify_consistency(old, new, &old_root, &new_root, &proof).unwrap();
        }
    }
    // Tiles: level 0 holds the leaves, level 1 the roots of each 256 leaves.
    let first_tile = node.tile(0, 0, None).unwrap();
    assert_eq!(first_tile, hashes[..256.min(hashes.len())].to_vec());
    let second_tile = node.tile(0, 1, None).unwrap();
    assert_eq!(second_tile, hashes[256..512.min(hashes.len())].to_vec());
    let upper = node.tile(1, 0, None).unwrap();
    let expected: Vec<MerkleHash> = hashes.chunks_exact(256).map(root_of).collect();
    assert_eq!(upper, expected);
    assert!(
        node.tile(0, 1, Some(256)).unwrap().is_empty(),
        "a tile past the size is empty"
    );
    // Requests beyond the tree are refused, by name.
    let beyond = node.inclusion_proof(LeafRef::Index(head.size), None).unwrap_err();
    assert!(
        matches!(beyond, NodeError::State(StateError::NotInTree(_))),
        "{beyond}"
    );
    let unknown = node
        .inclusion_proof(LeafRef::Content(Hash::from_bytes([3; 32])), None)
        .unwrap_err();
    assert!(
        matches!(unknown, NodeError::State(StateError::NotInTree(_))),
        "{unknown}"
    );
    let too_big = node.consistency_proof(head.size + 1, None).unwrap_err();
    assert!(
        matches!(too_big, NodeError::State(StateError::NotInTree(_))),
        "{too_big}"
    );
}

fn run<F: std::future::Future<Output = ()>>(f: impl FnOnce() -> F) {
    actix::System::new().block_on(f());
}

#[test]
fn the_tree_is_the_journals_and_serves_proofs_across_restarts_and_a_lost_tree_is_refilled() {
    let dir = TempDir::new().unwrap();
    let written = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let out = written.clone();
    let path = dir.path().to_owned();
    run(|| async move {
        let node = Node::start(Config::default(), &path).unwrap();
        *out.lock().unwrap() = write_history(&node).await;
        node.shutdown().await.unwrap();
    });
    let written = written.lock().unwrap().clone();
    let leaves = journal_leaves(dir.path());
    assert!(
        leaves.len() > 512,
        "{} records: enough for two full tiles",
        leaves.len()
    );
    let check = |dir: &std::path::Path| {
        let (leaves, written) = (leaves.clone(), written.clone());
        run(|| async move {
            let node = Node::start(Config::default(), dir).unwrap();
            check_tree(&node, &leaves, &written);
            node.shutdown().await.unwrap();
        });
    };
    check(dir.path());
    // A state without its tree: the node refills it from the journal at open.
    let state = State::open(dir.path().join(STATE_DIR), Config::default().state).unwrap();
    state.forget_tree().unwrap();
    let unavailable = state.tree_head().unwrap_err();
    assert!(
        matches!(unavailable, StateError::TreeUnavailable { tree_cursor: 0, .. }),
        "{unavailable}"
    );
    state.close();
    check(dir.path());
}

//! Who may supersede: a successor must share at least one signer with its parent. A foreign
//! agent's successor is rejected as `not_parent_author` (stored with that reason, and the
//! parent stays a head), while a successor signed by any of the parent's co-signers, alone or
//! together with others, is accepted.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use stemedb_testkit as common;

use common::deadline;

use common::{Claim, key};
use stemedb::Config;
use stemedb::node::Node;
use stemedb::protocol::{AgentKey, Assertion, Hash, ObjectValue};
use stemedb::storage::state::{ListQuery, RejectReason};
use tempfile::TempDir;

fn claim(value: i64, parent: Option<Hash>, signers: &[AgentKey]) -> Assertion {
    let claim = Claim::new("doc/1", "title", ObjectValue::Integer(value));
    claim.at(value as u64).parent(parent).signed_with(signers)
}

#[test]
fn a_foreign_successor_is_rejected_and_a_co_signers_is_accepted() {
    let dir = TempDir::new().unwrap();
    actix::System::new().block_on(async {
        let node = Node::start(Config::default(), dir.path()).unwrap();
        let root = node.submit(claim(1, None, &[key(1), key(2)])).await.unwrap();
        node.wait_indexed(root.offset, deadline()).await.unwrap();
        let foreign = claim(2, Some(root.hash), &[key(3)]);
        let co_signer = claim(3, Some(root.hash), &[key(2)]);
        let joint = claim(4, Some(root.hash), &[key(3), key(1)]);
        let results = node
            .submit_many(vec![foreign.clone(), co_signer.clone(), joint.clone()])
            .await
            .unwrap();
        let receipts: Vec<_> = results.into_iter().map(Result::unwrap).collect();
        node.wait_indexed(receipts[2].offset, deadline()).await.unwrap();
        let rejections = node.rejections(0, 10).unwrap();
        assert_eq!(rejections.len(), 1, "{rejections:?}");
        assert_eq!(rejections[0].offset, receipts[0].offset);
        assert_eq!(rejections[0].hash, Some(foreign.content_hash()));
        assert_eq!(
            rejections[0].reason,
            RejectReason::NotParentAuthor { parent: root.hash }
        );
        assert_eq!(rejections[0].reason.code(), "not_parent_author");
        assert!(node.get(&foreign.content_hash()).unwrap().is_none());
        let mut successors = node.successors(&root.hash, 10).unwrap();
        successors.sort();
        let mut expected = vec![co_signer.content_hash(), joint.content_hash()];
        expected.sort();
        assert_eq!(successors, expected);
        let heads: Vec<Hash> = node
            .list(&ListQuery::pair("doc/1", "title"))
            .unwrap()
            .assertions
            .iter()
            .map(|s| s.hash)
            .collect();
        assert!(
            !heads.contains(&root.hash),
            "the authors' successors replace the root"
        );
        assert!(!heads.contains(&foreign.content_hash()));
        node.shutdown().await.unwrap();
    });
}

#[test]
fn a_foreign_retraction_cannot_take_an_assertion_out_of_the_heads() {
    let dir = TempDir::new().unwrap();
    actix::System::new().block_on(async {
        let node = Node::start(Config::default(), dir.path()).unwrap();
        let root = node.submit(claim(1, None, &[key(1)])).await.unwrap();
        node.wait_indexed(root.offset, deadline()).await.unwrap();
        let mut retraction = claim(2, Some(root.hash), &[]);
        retraction.lifecycle = stemedb::protocol::Lifecycle::Retracted;
        retraction.sign(&key(9));
        let receipt = node.submit(retraction).await.unwrap();
        node.wait_indexed(receipt.offset, deadline()).await.unwrap();
        let heads = node.list(&ListQuery::pair("doc/1", "title")).unwrap();
        assert_eq!(heads.assertions.len(), 1);
        assert_eq!(
            heads.assertions[0].hash, root.hash,
            "the author's assertion is still the head"
        );
        assert_eq!(node.rejections(0, 10).unwrap().len(), 1);
        node.shutdown().await.unwrap();
    });
}

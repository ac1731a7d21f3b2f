//! The audit trail: an audited resolution's record reads back by id and by pair, with its
//! query, candidates, scores, winner, requester and offset; unaudited ones leave none unless
//! `node.audit = "all"`; retention keeps the newest `audit_records_max`; records and ids
//! survive a restart.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use stemedb_testkit as common;

use std::time::{Duration, Instant};

use common::{Claim, with_node};
use stemedb::Config;
use stemedb::lens::Query;
use stemedb::node::{AuditMode, Node};
use stemedb::protocol::ObjectValue;
use tempfile::TempDir;

const WAIT: Duration = Duration::from_secs(60);

async fn two_claims(node: &Node) {
    let mut last = 0;
    for (value, ts, signer) in [(1, 10, 1u8), (2, 20, 2)] {
        let claim = Claim::new("city/paris", "mayor", ObjectValue::Integer(value)).at(ts);
        last = node.submit(claim.signed(&[signer])).await.unwrap().offset;
    }
    node.wait_indexed(last, Instant::now() + WAIT).await.unwrap();
}

fn audited(lens: &str) -> Query {
    let mut query = Query::new("city/paris", "mayor", lens);
    query.audit = true;
    query.requester = Some("auditor-7".into());
    query
}

#[test]
fn an_audited_resolution_reads_back_by_id_and_by_pair() {
    with_node(Config::default(), |node| async move {
        two_claims(&node).await;
        let plain = node
            .resolve(Query::new("city/paris", "mayor", "recency"))
            .await
            .unwrap();
        assert_eq!(plain.audit_id, None);
        let resolution = node.resolve(audited("recency")).await.unwrap();
        let id = resolution.audit_id.expect("audited");
        let record = node.audit(id).unwrap().expect("kept");
        assert_eq!(record.id, id);
        assert_eq!(record.requester.as_deref(), Some("auditor-7"));
        assert_eq!(
            (
                record.subject.as_str(),
                record.predicate.as_str(),
                record.lens.as_str()
            ),
            ("city/paris", "mayor", "recency")
        );
        assert_eq!(record.winner, resolution.winner);
        assert_eq!(record.offset, resolution.offset);
        let candidates: Vec<_> = resolution
            .ranked
            .iter()
            .map(|s| (s.candidate.hash, s.score.value))
            .collect();
        assert_eq!(record.candidates, candidates);
        let second = node
            .resolve(audited("confidence"))
            .await
            .unwrap()
            .audit_id
            .unwrap();
        assert!(second > id);
        let by_pair = node.audits("city/paris", "mayor", 10).unwrap();
        assert_eq!(
            by_pair.iter().map(|r| r.id).collect::<Vec<_>>(),
            vec![second, id],
            "newest first"
        );
        assert!(node.audits("city/paris", "area", 10).unwrap().is_empty());
        assert!(node.audit(second + 100).unwrap().is_none());
        node.shutdown().await.unwrap();
    });
}

#[test]
fn mode_all_audits_every_resolution_and_retention_keeps_the_newest() {
    let mut config = Config::default();
    config.node.audit = AuditMode::All;
    config.node.audit_records_max = 3;
    with_node(config, |node| async move {
        two_claims(&node).await;
        let mut ids = Vec::new();
        for _ in 0..5 {
            let resolution = node
                .resolve(Query::new("city/paris", "mayor", "recency"))
                .await
                .unwrap();
            ids.push(resolution.audit_id.expect("every resolution is audited"));
        }
        let kept: Vec<u64> = node
            .audits("city/paris", "mayor", 10)
            .unwrap()
            .iter()
            .map(|r| r.id)
            .collect();
        assert_eq!(kept, vec![ids[4], ids[3], ids[2]]);
        assert!(node.audit(ids[0]).unwrap().is_none(), "the oldest are deleted");
        assert!(node.audit(ids[4]).unwrap().is_some());
        node.shutdown().await.unwrap();
    });
}

#[test]
fn audit_records_and_ids_survive_a_restart() {
    let dir = TempDir::new().unwrap();
    let first = actix::System::new().block_on(async {
        let node = Node::start(Config::default(), dir.path()).unwrap();
        two_claims(&node).await;
        let id = node.resolve(audited("recency")).await.unwrap().audit_id.unwrap();
        node.shutdown().await.unwrap();
        id
    });
    actix::System::new().block_on(async {
        let node = Node::start(Config::default(), dir.path()).unwrap();
        assert_eq!(node.audit(first).unwrap().unwrap().id, first);
        let next = node.resolve(audited("recency")).await.unwrap().audit_id.unwrap();
        assert!(next > first, "ids keep growing across restarts");
        node.shutdown().await.unwrap();
    });
}

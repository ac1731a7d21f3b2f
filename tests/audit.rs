//! The audit trail: an audited resolution's record reads back by id and by pair, with its
//! query, candidates, scores, winner, requester and offset; unaudited ones leave none unless
//! `node.audit = "all"`; retention keeps the newest `audit_records_max`; records and ids
//! survive a restart. Retention by bytes keeps the store within `audit_bytes_max` under a
//! flood of large unique audits, and a store over a lowered budget is trimmed at open; a
//! record larger than the budget is refused with a typed error, which fails only the queries
//! that asked for audit; names past the configured limits are refused before anything is
//! stored.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use stemedb_testkit as common;

use std::time::{Duration, Instant};

use common::{Claim, with_node};
use stemedb::Config;
use stemedb::lens::{MaxStale, Query, ResolveError};
use stemedb::node::{AUDIT_BYTES_MIN, AuditMode, Node, NodeError};
use stemedb::protocol::{NAME_BYTES_CEILING, NameTooLong, ObjectValue};
use stemedb::storage::audit::AuditError;
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

/// A query about a unique pair with maximal names, audited: a record of about 2 KiB.
fn large_unique(i: usize) -> Query {
    let subject = format!("{i:08}{}", "s".repeat(NAME_BYTES_CEILING - 8));
    let predicate = format!("{i:08}{}", "p".repeat(NAME_BYTES_CEILING - 8));
    let mut query = Query::new(subject, predicate, "recency");
    query.audit = true;
    query
}

/// Resolves `count` large unique audited queries from `first` on; returns their audit ids.
async fn flood(node: &Node, first: usize, count: usize) -> Vec<u64> {
    let mut ids = Vec::new();
    for i in first..first + count {
        let resolution = node.resolve(large_unique(i)).await.unwrap();
        ids.push(resolution.audit_id.expect("every audit is accepted"));
    }
    ids
}

#[test]
fn audit_bytes_stay_within_budget_under_large_unique_audits_and_a_lowered_budget_trims_at_open() {
    let dir = TempDir::new().unwrap();
    let mut config = Config::default();
    config.node.audit_bytes_max = 4 * AUDIT_BYTES_MIN;
    config.node.audit_map_bytes = 1 << 20;
    let budget = config.node.audit_bytes_max;
    // 600 records of ~2 KiB: over four times the budget, and past the 1 MiB map with no
    // retention by bytes.
    let ids = actix::System::new().block_on(async {
        let node = Node::start(config.clone(), dir.path()).unwrap();
        let ids = flood(&node, 0, 600).await;
        let stored = node.audit_stored_bytes().unwrap();
        assert!(
            stored <= budget,
            "{stored} stored bytes exceed the budget {budget}"
        );
        for id in &ids[590..] {
            assert!(node.audit(*id).unwrap().is_some(), "the newest are kept");
        }
        assert!(node.audit(ids[0]).unwrap().is_none(), "the oldest went first");
        let newest = node.audit(ids[599]).unwrap().expect("the newest is kept");
        assert_eq!(newest.subject, large_unique(599).subject);
        node.shutdown().await.unwrap();
        ids
    });
    // The budget lowered: the store is trimmed at open, keeps the newest, and keeps accepting.
    config.node.audit_bytes_max = AUDIT_BYTES_MIN;
    actix::System::new().block_on(async {
        let node = Node::start(config.clone(), dir.path()).unwrap();
        let stored = node.audit_stored_bytes().unwrap();
        assert!(
            stored <= AUDIT_BYTES_MIN,
            "{stored} stored bytes after a trim at open"
        );
        assert!(
            node.audit(ids[599]).unwrap().is_some(),
            "the trim keeps the newest"
        );
        let more = flood(&node, 600, 200).await;
        assert!(more[0] > ids[599], "ids keep growing");
        assert!(node.audit_stored_bytes().unwrap() <= AUDIT_BYTES_MIN);
        assert!(node.audit(more[199]).unwrap().is_some());
        node.shutdown().await.unwrap();
    });
}

#[test]
fn a_record_over_the_budget_fails_only_the_queries_that_asked_for_audit() {
    let mut config = Config::default();
    config.node.audit = AuditMode::All;
    config.node.audit_bytes_max = AUDIT_BYTES_MIN;
    with_node(config, |node| async move {
        two_claims(&node).await;
        let mut huge = Query::new("city/paris", "mayor", "recency");
        huge.requester = Some("r".repeat(usize::try_from(AUDIT_BYTES_MIN).unwrap()));
        // Audited only because node.audit = "all": answered, without an audit id.
        let answered = node.resolve(huge.clone()).await.unwrap();
        assert_eq!(answered.audit_id, None);
        assert!(answered.winner.is_some());
        // Asked for audit: the typed error.
        huge.audit = true;
        match node.resolve(huge).await {
            Err(ResolveError::Audit(AuditError::TooLarge { bytes, max })) => {
                assert!(bytes > max);
                assert_eq!(max, AUDIT_BYTES_MIN);
            }
            other => panic!("expected TooLarge, got {other:?}"),
        }
        assert_eq!(node.audit_stored_bytes().unwrap(), 0, "nothing was stored");
        // The store keeps accepting records that fit.
        let fits = node.resolve(audited("recency")).await.unwrap();
        assert!(fits.audit_id.is_some());
        node.shutdown().await.unwrap();
    });
}

#[test]
fn names_past_the_configured_limits_are_refused_before_anything_is_stored() {
    let mut config = Config::default();
    config.limits.subject_bytes_max = 32;
    config.limits.predicate_bytes_max = 16;
    with_node(config, |node| async move {
        let long_subject = "s".repeat(33);
        let mut query = Query::new(long_subject.clone(), "mayor", "recency");
        query.audit = true;
        query.max_stale = Some(MaxStale::Offsets(u64::MAX));
        match node.resolve(query).await {
            Err(ResolveError::NameTooLong(NameTooLong { field, bytes, max })) => {
                assert_eq!((field, bytes, max), ("subject", 33, 32));
            }
            other => panic!("expected NameTooLong, got {other:?}"),
        }
        let mut query = Query::new("city/paris", "p".repeat(17), "recency");
        query.audit = true;
        match node.resolve(query).await {
            Err(ResolveError::NameTooLong(error)) => assert_eq!(error.field, "predicate"),
            other => panic!("expected NameTooLong, got {other:?}"),
        }
        match node.watch(&long_subject, "mayor", "recency").await {
            Err(ResolveError::NameTooLong(error)) => assert_eq!(error.field, "subject"),
            other => panic!("expected NameTooLong, got {other:?}"),
        }
        match node.audits(&long_subject, "mayor", 10) {
            Err(NodeError::NameTooLong(error)) => assert_eq!((error.field, error.max), ("subject", 32)),
            other => panic!("expected NameTooLong, got {other:?}"),
        }
        assert_eq!(node.audit_stored_bytes().unwrap(), 0, "no audit record");
        assert!(
            node.view_status(&long_subject, "mayor", "recency").is_none(),
            "no view"
        );
        assert_eq!(node.view_counters().misses, 0, "refused before any view lookup");
        // Names at the limits are fine.
        let mut query = Query::new("s".repeat(32), "p".repeat(16), "recency");
        query.audit = true;
        assert!(node.resolve(query).await.unwrap().audit_id.is_some());
        node.shutdown().await.unwrap();
    });
}

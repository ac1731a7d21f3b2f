//! What a read key can make the server keep is bounded, over real HTTP:
//! - audited resolves of long, unique pairs keep the audit store within
//!   `node.audit_bytes_max` (oldest first) inside a small map, so every key's audited resolve
//!   keeps working, before and after a restart (issue 23, class 1);
//! - resolves that accept a view create views only for pairs that exist, one key holds at most
//!   its share of `node.views_max`, and another key can still watch (issue 23, class 2).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use stemedb_testkit as common;

use awc::http::StatusCode;
use common::http::{Served, with_server, with_server_in};
use common::{NOW_MS, key};
use futures_util::StreamExt;
use stemedb::config::AUDIT_BYTES_MIN;
use stemedb::protocol::{Assertion, NAME_BYTES_CEILING, ObjectValue};
use stemedb_server::ServerConfig as Config;
use stemedb_server::keys::Role;

fn claim(subject: &str, value: i64) -> Assertion {
    let mut a = Assertion::new(subject, "p", ObjectValue::Integer(value), 0.5, NOW_MS);
    a.sign(&key(1));
    a
}

/// An audited resolve of `subject`/`p` by `token`: its audit id, which must read back.
async fn audited(s: &Served, token: &str, subject: &str) -> u64 {
    let answer = s
        .get(
            &format!("/v1/resolve?subject={subject}&predicate=p&audit=true"),
            token,
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
    let id = answer.body["audit_id"].as_u64().expect("an audit id");
    let record = s.get(&format!("/v1/audit/{id}"), token).await;
    assert_eq!(record.status, StatusCode::OK, "{:?}", record.body);
    id
}

#[test]
fn a_flood_of_long_unique_audits_keeps_the_store_in_budget_and_audit_working_across_a_restart() {
    let dir = tempfile::TempDir::new().unwrap();
    let mut config = Config::default();
    config.node.audit_bytes_max = 4 * AUDIT_BYTES_MIN;
    config.node.audit_map_bytes = 1 << 20;
    let budget = config.node.audit_bytes_max;
    with_server_in(dir.path(), config.clone(), |s| async move {
        let writer = s.key(&[Role::Read, Role::Write], &[&key(1)]);
        let answer = s.post("/v1/assertions", &writer, &claim("kept", 1)).await;
        assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
        let first = audited(&s, &writer, "kept").await;
        // A read key floods: 600 audited resolves of unique pairs with the longest names
        // allowed, about 2 KiB a record: over four times the budget, and past the 1 MiB map
        // if retention counted records.
        let reader = s.key(&[Role::Read], &[]);
        for i in 0..600 {
            let subject = format!("{i:08}{}", "s".repeat(NAME_BYTES_CEILING - 8));
            let predicate = format!("{i:08}{}", "p".repeat(NAME_BYTES_CEILING - 8));
            let answer = s
                .get(
                    &format!("/v1/resolve?subject={subject}&predicate={predicate}&audit=true"),
                    &reader,
                )
                .await;
            assert_eq!(answer.status, StatusCode::OK, "resolve {i}: {:?}", answer.body);
        }
        let stored = s.node.audit_stored_bytes().unwrap();
        assert!(stored <= budget, "{stored} audit bytes over the budget {budget}");
        // The oldest went first; the writer's audits and plain resolves keep working.
        let gone = s.get(&format!("/v1/audit/{first}"), &writer).await;
        assert_eq!(gone.status, StatusCode::NOT_FOUND, "{:?}", gone.body);
        audited(&s, &writer, "kept").await;
        let plain = s.get("/v1/resolve?subject=kept&predicate=p", &reader).await;
        assert_eq!(plain.status, StatusCode::OK, "{:?}", plain.body);
        assert!(plain.body["audit_id"].is_null(), "{:?}", plain.body);
    });
    // After a restart on the same map, audited resolves of any key still work.
    with_server_in(dir.path(), config, |s| async move {
        let reader = s.key(&[Role::Read], &[]);
        let id = audited(&s, &reader, "kept").await;
        assert!(id > 600, "ids keep growing across the restart: {id}");
        let stored = s.node.audit_stored_bytes().unwrap();
        assert!(stored <= budget, "{stored} audit bytes over the budget {budget}");
    });
}

#[test]
fn one_key_holds_its_share_of_the_views_only_for_pairs_that_exist_and_others_can_watch() {
    let mut config = Config::default();
    config.node.views_max = 64;
    let share = config.node.views_max / 4;
    with_server(config, |s| async move {
        let writer = s.key(&[Role::Read, Role::Write], &[&key(1)]);
        let batch: Vec<Assertion> = (0..200).map(|i| claim(&format!("pair-{i}"), i)).collect();
        let answer = s.post("/v1/assertions/batch?wait=indexed", &writer, &batch).await;
        assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
        let views = || s.node.views_for_tests().census().views;
        // A read key resolves 200 pairs that exist and 200 that do not, each accepting a view.
        let reader = s.key(&[Role::Read], &[]);
        for i in 0..200 {
            for subject in [format!("pair-{i}"), format!("absent-{i}")] {
                let path = format!("/v1/resolve?subject={subject}&predicate=p&max_stale_ms=60000");
                let answer = s.get(&path, &reader).await;
                assert_eq!(answer.status, StatusCode::OK, "{subject}: {:?}", answer.body);
            }
        }
        let held = views();
        assert!(
            (1..=share).contains(&held),
            "the reader holds {held} views, its share is {share}"
        );
        assert!(
            s.node.view_status("absent-199", "p", "consensus").is_none(),
            "no view for a pair nobody asserted"
        );
        assert!(s.node.view_status("pair-199", "p", "consensus").is_some());
        // Another key still gets views of its own, and its watch opens with the current winner.
        for i in 0..8 {
            let path = format!("/v1/resolve?subject=pair-{i}&predicate=p&max_stale_ms=60000");
            let answer = s.get(&path, &writer).await;
            assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
        }
        assert!(views() > held, "the writer's views were refused");
        let mut feed = s
            .client
            .get(format!("{}/v1/watch?subject=pair-0&predicate=p", s.base))
            .insert_header(("Authorization", format!("Bearer {writer}")))
            .send()
            .await
            .unwrap();
        assert_eq!(feed.status(), StatusCode::OK);
        let first = actix_rt::time::timeout(std::time::Duration::from_secs(30), feed.next())
            .await
            .unwrap();
        assert!(first.unwrap().unwrap().starts_with(b"event: current"));
        assert!(views() <= 64);
    });
}

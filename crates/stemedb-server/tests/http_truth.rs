//! Every answer tells the truth, over real HTTP:
//! - with `wait=indexed`, a record the ingest refused is answered with its refusal (422 or
//!   409 and the reason), one by one in a batch, never as `"indexed": true`;
//! - a resend of a stored record is answered as a duplicate with the stored offset, and is
//!   not journaled again;
//! - an input error is a 4xx, never a 5xx with `Retry-After` (a cursor from another listing);
//! - the API speaks HTTP as clients expect: 405 with `Allow` for a method a route lacks, and
//!   requests the document allows (an empty `after`, both `as_of` bounds) are served.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use stemedb_testkit as common;

use std::time::{Duration, Instant};

use awc::http::StatusCode;
use common::http::with_server;
use common::{NOW_MS, key};
use serde_json::{Value, json};
use stemedb::protocol::{Assertion, Hash, ObjectValue, Vote};
use stemedb_server::ServerConfig as Config;
use stemedb_server::keys::Role;

fn claim(subject: &str, signer: u8, value: i64) -> Assertion {
    let mut a = Assertion::new(subject, "p", ObjectValue::Integer(value), 0.5, NOW_MS);
    a.sign(&key(signer));
    a
}

#[test]
fn writes_the_ingest_refuses_are_answered_with_their_refusal_when_waiting_for_the_index() {
    with_server(Config::default(), |s| async move {
        let writer = s.key(&[Role::Read, Role::Write], &[&key(1), &key(2)]);
        // A vote on an assertion nobody stored.
        let ghost = Hash::from_bytes([7; 32]);
        let vote = Vote::sign(&key(1), ghost, 1.0, NOW_MS);
        let answer = s.post("/v1/votes?wait=indexed", &writer, &vote).await;
        assert_eq!(
            answer.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{:?}",
            answer.body
        );
        assert_eq!(answer.field(), Some("assertion"));
        assert!(answer.body["detail"].as_str().unwrap().contains("unknown"));
        // A successor of an unknown parent.
        let mut orphan = claim("truth", 1, 1);
        orphan.parent = Some(ghost);
        orphan.signatures.clear();
        orphan.sign(&key(1));
        let answer = s.post("/v1/assertions?wait=indexed", &writer, &orphan).await;
        assert_eq!(
            answer.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{:?}",
            answer.body
        );
        assert_eq!(answer.field(), Some("parent"));
        // A successor by someone who did not sign the parent.
        let parent = claim("truth", 1, 2);
        let answer = s.post("/v1/assertions?wait=indexed", &writer, &parent).await;
        assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
        let mut usurper = claim("truth", 2, 3);
        usurper.parent = Some(parent.content_hash());
        usurper.signatures.clear();
        usurper.sign(&key(2));
        let answer = s.post("/v1/assertions?wait=indexed", &writer, &usurper).await;
        assert_eq!(answer.status, StatusCode::CONFLICT, "{:?}", answer.body);
        // None of them reads back; the parent does.
        for hash in [orphan.content_hash(), usurper.content_hash()] {
            let path = format!("/v1/assertions/{hash}");
            assert_eq!(s.get(&path, &writer).await.status, StatusCode::NOT_FOUND);
        }
        let path = format!("/v1/assertions/{}", parent.content_hash());
        assert_eq!(s.get(&path, &writer).await.status, StatusCode::OK);
        // A batch answers item by item: the good vote indexed, the bad one refused.
        let good = Vote::sign(&key(1), parent.content_hash(), 1.0, NOW_MS);
        let bad = Vote::sign(&key(2), ghost, 1.0, NOW_MS);
        let answer = s
            .post("/v1/votes/batch?wait=indexed", &writer, &[good, bad])
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
        let items = answer.body["items"].as_array().unwrap();
        assert_eq!(items[0]["receipt"]["indexed"], json!(true), "{items:?}");
        assert_eq!(items[1]["error"]["status"], json!(422), "{items:?}");
        assert_eq!(items[1]["error"]["field"], json!("assertion"), "{items:?}");
        assert_eq!(answer.body["accepted"], json!(1));
        assert_eq!(answer.body["refused"], json!(1));
    });
}

#[test]
fn a_resent_assertion_is_a_duplicate_with_the_stored_offset_and_is_not_journaled_again() {
    with_server(Config::default(), |s| async move {
        let writer = s.key(&[Role::Read, Role::Write], &[&key(1)]);
        let assertion = claim("resend", 1, 1);
        let first = s.post("/v1/assertions?wait=indexed", &writer, &assertion).await;
        assert_eq!(first.status, StatusCode::OK, "{:?}", first.body);
        assert_eq!(first.body["duplicate"], json!(false));
        let end = s.node.durable_end().unwrap();
        for wait in ["", "?wait=indexed"] {
            let again = s
                .post(&format!("/v1/assertions{wait}"), &writer, &assertion)
                .await;
            assert_eq!(again.status, StatusCode::OK, "{:?}", again.body);
            assert_eq!(again.body["duplicate"], json!(true));
            assert_eq!(again.body["indexed"], json!(true));
            assert_eq!(again.body["offset"], first.body["offset"]);
            assert_eq!(again.body["hash"], first.body["hash"]);
        }
        let batch = s
            .post(
                "/v1/assertions/batch",
                &writer,
                &[assertion.clone(), claim("resend", 1, 2)],
            )
            .await;
        assert_eq!(batch.body["items"][0]["receipt"]["duplicate"], json!(true));
        assert_eq!(batch.body["items"][1]["receipt"]["duplicate"], json!(false));
        // Only the new one reached the journal.
        let grown = s.node.durable_end().unwrap() - end;
        let one = batch.body["items"][1]["receipt"]["offset"].as_u64().unwrap();
        assert!(one >= end, "the new record is after the first");
        assert!(grown > 0);
        s.node
            .wait_caught_up(Instant::now() + Duration::from_secs(60))
            .await
            .unwrap();
        let (assertions, _) = s.node.counts().unwrap();
        assert_eq!(assertions, 2);
        assert!(s.node.rejections(0, 10).unwrap().is_empty());
    });
}

#[test]
fn an_input_error_is_never_answered_as_overload() {
    with_server(Config::default(), |s| async move {
        let writer = s.key(&[Role::Read, Role::Write], &[&key(1)]);
        for (subject, value) in [("a", 1), ("a", 2), ("b", 3)] {
            let mut a = Assertion::new(
                subject,
                format!("p{value}"),
                ObjectValue::Integer(value),
                0.5,
                NOW_MS,
            );
            a.sign(&key(1));
            let answer = s.post("/v1/assertions?wait=indexed", &writer, &a).await;
            assert_eq!(answer.status, StatusCode::OK);
        }
        let page = s.get("/v1/assertions?subject=a&limit=1", &writer).await;
        let next = page.body["next"].as_str().unwrap().to_owned();
        let answer = s
            .get(&format!("/v1/assertions?subject=b&after={next}"), &writer)
            .await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{:?}", answer.body);
        assert_eq!(answer.retry_after, None);
        assert_eq!(answer.field(), Some("after"));
        // An empty `after` is the first page.
        let answer = s.get("/v1/assertions?subject=a&after=", &writer).await;
        assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
        assert_eq!(answer.body["assertions"].as_array().unwrap().len(), 2);
    });
}

#[test]
fn a_method_a_route_lacks_is_405_with_allow_and_both_as_of_bounds_are_served() {
    with_server(Config::default(), |s| async move {
        let reader = s.key(&[Role::Read], &[]);
        let cases = [
            ("POST", "/v1/health", "GET"),
            ("DELETE", "/v1/assertions", "GET, POST"),
            ("PUT", "/v1/assertions/00", "GET"),
            ("GET", "/v1/keys/abc", "DELETE"),
            ("POST", "/v1/resolve", "GET"),
            ("PATCH", "/v1/audit/1", "GET"),
        ];
        for (method, path, allow) in cases {
            let answer = s.send(method, path, Some(&reader), None, Vec::new()).await;
            assert_eq!(answer.status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
            assert_eq!(answer.allow.as_deref(), Some(allow), "{method} {path}");
            assert_eq!(answer.content_type, "application/problem+json");
        }
        assert_eq!(
            s.get("/v1/nothing/here", &reader).await.status,
            StatusCode::NOT_FOUND
        );
        let answer = s
            .get(
                "/v1/resolve?subject=s&predicate=p&as_of_offset=5&as_of_ms=1",
                &reader,
            )
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
        assert_eq!(answer.body["winner"], Value::Null);
    });
}

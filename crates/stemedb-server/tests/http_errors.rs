//! Every error status of the HTTP API, over real HTTP, as `application/problem+json`: 400,
//! 401, 403, 404, 413 (one byte over), 415, 422 (naming the field and the limit, a batch one
//! item over), 429 (a rate-limited burst, a spent quota) with `Retry-After`; and no 500.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use stemedb_testkit as common;

use awc::http::StatusCode;
use common::http::{Answer, Served, with_server};
use common::{NOW_MS, key};
use serde_json::json;
use stemedb::protocol::{Assertion, ObjectValue};
use stemedb_server::ServerConfig as Config;
use stemedb_server::keys::Role;

const BODY_MAX: usize = 4096;

fn claim(text: &str) -> Assertion {
    let mut a = Assertion::new("s", "p", ObjectValue::Text(text.to_owned()), 0.5, NOW_MS);
    a.sign(&key(1));
    a
}

fn assert_problem(answer: &Answer, status: StatusCode) {
    assert_eq!(answer.status, status, "{:?}", answer.body);
    assert_eq!(answer.content_type, "application/problem+json");
    assert_eq!(answer.body["status"], status.as_u16());
    assert!(
        answer.body["type"]
            .as_str()
            .unwrap()
            .starts_with("urn:stemedb:problem:")
    );
    assert!(!answer.body["detail"].as_str().unwrap().is_empty());
}

/// A signed assertion whose JSON body is exactly `len` bytes.
fn body_of_len(len: usize) -> Vec<u8> {
    let base = serde_json::to_vec(&claim("")).unwrap().len();
    // Each character of text adds one byte; the signature's length does not change.
    let body = serde_json::to_vec(&claim(&"x".repeat(len - base))).unwrap();
    assert_eq!(body.len(), len);
    body
}

fn config() -> Config {
    let mut config = Config::default();
    config.http.body_bytes_max = BODY_MAX;
    config.http.batch_records_max = 3;
    config
}

async fn post_raw(s: &Served, token: &str, body: Vec<u8>) -> Answer {
    s.send(
        "POST",
        "/v1/assertions",
        Some(token),
        Some("application/json"),
        body,
    )
    .await
}

#[test]
fn malformed_unauthenticated_forbidden_missing_too_large_and_unsupported_requests() {
    with_server(config(), |s| async move {
        let writer = s.key(&[Role::Read, Role::Write], &[&key(1)]);
        // 400: not JSON; a malformed hash; a bad query parameter.
        assert_problem(
            &post_raw(&s, &writer, b"{\"subject\":".to_vec()).await,
            StatusCode::BAD_REQUEST,
        );
        assert_problem(
            &s.get("/v1/assertions/xyz", &writer).await,
            StatusCode::BAD_REQUEST,
        );
        assert_problem(
            &s.get("/v1/resolve?subject=s&predicate=p&as_of_offset=-1", &writer)
                .await,
            StatusCode::BAD_REQUEST,
        );
        assert_problem(
            &s.get("/v1/assertions?subject=s&after=zz", &writer).await,
            StatusCode::BAD_REQUEST,
        );
        // 401: no key, a garbage key, a well-formed unknown key.
        let none = s
            .send("GET", "/v1/resolve?subject=s&predicate=p", None, None, Vec::new())
            .await;
        assert_problem(&none, StatusCode::UNAUTHORIZED);
        assert_problem(
            &s.get("/v1/resolve?subject=s&predicate=p", "nonsense").await,
            StatusCode::UNAUTHORIZED,
        );
        let unknown = format!("sdb_0123456789abcdef_{}", "0".repeat(64));
        assert_problem(
            &s.get("/v1/resolve?subject=s&predicate=p", &unknown).await,
            StatusCode::UNAUTHORIZED,
        );
        // 403: a read-only key writes.
        let reader = s.key(&[Role::Read], &[&key(1)]);
        assert_problem(
            &s.post("/v1/assertions", &reader, &claim("a")).await,
            StatusCode::FORBIDDEN,
        );
        // 404: an unknown assertion, audit record, lens, key and route.
        let missing = stemedb::protocol::Hash::of(b"nothing");
        assert_problem(
            &s.get(&format!("/v1/assertions/{missing}"), &writer).await,
            StatusCode::NOT_FOUND,
        );
        assert_problem(
            &s.get(&format!("/v1/assertions/{missing}/votes"), &writer).await,
            StatusCode::NOT_FOUND,
        );
        assert_problem(&s.get("/v1/audit/12345", &writer).await, StatusCode::NOT_FOUND);
        assert_problem(
            &s.get("/v1/resolve?subject=s&predicate=p&lens=nope", &writer)
                .await,
            StatusCode::NOT_FOUND,
        );
        let gone = s
            .send(
                "DELETE",
                "/v1/keys/ffffffffffffffff",
                Some(&s.admin),
                None,
                Vec::new(),
            )
            .await;
        assert_problem(&gone, StatusCode::NOT_FOUND);
        assert_problem(&s.get("/v2/everything", &writer).await, StatusCode::NOT_FOUND);
        // 413: one byte over the body limit; exactly at it is read (and answered on its merits).
        let at = post_raw(&s, &writer, body_of_len(BODY_MAX)).await;
        assert_eq!(at.status, StatusCode::OK, "{:?}", at.body);
        let over = post_raw(&s, &writer, body_of_len(BODY_MAX + 1)).await;
        assert_problem(&over, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(over.body["limit"], BODY_MAX);
        // 415: the right bytes with the wrong content type, or none.
        let body = serde_json::to_vec(&claim("b")).unwrap();
        let text = s
            .send(
                "POST",
                "/v1/assertions",
                Some(&writer),
                Some("text/plain"),
                body.clone(),
            )
            .await;
        assert_problem(&text, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        let untyped = s.send("POST", "/v1/assertions", Some(&writer), None, body).await;
        assert_problem(&untyped, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    });
}

#[test]
fn invalid_records_name_their_field_and_limit_and_a_batch_one_over_is_refused() {
    with_server(config(), |s| async move {
        let writer = s.key(&[Role::Read, Role::Write], &[&key(1)]);
        // Confidence out of range: signed as it is, refused by validation.
        let mut sure = Assertion::new("s", "p", ObjectValue::Integer(1), 1.5, NOW_MS);
        sure.sign(&key(1));
        let answer = s.post("/v1/assertions", &writer, &sure).await;
        assert_problem(&answer, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(answer.field(), Some("confidence"));
        // A subject over its limit names the field and the limit.
        let mut long = Assertion::new("s".repeat(1025), "p", ObjectValue::Integer(1), 0.5, NOW_MS);
        long.sign(&key(1));
        let answer = s.post("/v1/assertions", &writer, &long).await;
        assert_problem(&answer, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            (answer.field(), answer.body["limit"].as_u64()),
            (Some("subject"), Some(1024))
        );
        // An unknown field, and a missing one, are named.
        let mut value = serde_json::to_value(claim("c")).unwrap();
        value["colour"] = json!("blue");
        let answer = s.post("/v1/assertions", &writer, &value).await;
        assert_problem(&answer, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(answer.field(), Some("colour"));
        let answer = s
            .post("/v1/custodial/assertions", &s.admin, &json!({"subject": "s"}))
            .await;
        assert_problem(&answer, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(answer.field(), Some("predicate"));
        // A batch at the limit is taken; one item over is refused whole, naming the limit.
        let batch: Vec<Assertion> = (0..3).map(|i| claim(&format!("b{i}"))).collect();
        assert_eq!(
            s.post("/v1/assertions/batch", &writer, &batch).await.status,
            StatusCode::OK
        );
        let before = s.node.durable_end().unwrap();
        let over: Vec<Assertion> = (0..4).map(|i| claim(&format!("o{i}"))).collect();
        let answer = s.post("/v1/assertions/batch", &writer, &over).await;
        assert_problem(&answer, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            (answer.field(), answer.body["limit"].as_u64()),
            (Some("records"), Some(3))
        );
        assert_eq!(
            s.node.durable_end().unwrap(),
            before,
            "nothing of it was journaled"
        );
        // Out-of-range paging.
        let answer = s.get("/v1/assertions?subject=s&limit=0", &writer).await;
        assert_problem(&answer, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(answer.field(), Some("limit"));
    });
}

#[test]
fn a_burst_over_the_rate_limit_and_a_spent_quota_are_429_with_retry_after() {
    let mut config = config();
    config.http.rate_per_s = 1;
    config.http.rate_burst = 6;
    config.http.quota_records_per_day = 2;
    with_server(config, |s| async move {
        let writer = s.key(&[Role::Read, Role::Write], &[&key(1)]);
        // Quota: two records a day; a refused record does not count; the third is refused
        // (rate: 4 of the burst of 6 used).
        let mut sure = Assertion::new("s", "p", ObjectValue::Integer(1), 1.5, NOW_MS);
        sure.sign(&key(1));
        assert_eq!(
            s.post("/v1/assertions", &writer, &sure).await.status,
            StatusCode::UNPROCESSABLE_ENTITY
        );
        for text in ["q1", "q2"] {
            assert_eq!(
                s.post("/v1/assertions", &writer, &claim(text)).await.status,
                StatusCode::OK
            );
        }
        let spent = s.post("/v1/assertions", &writer, &claim("q3")).await;
        assert_problem(&spent, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(spent.body["type"], "urn:stemedb:problem:quota-exceeded");
        assert!(spent.retry_after.unwrap().parse::<u64>().unwrap() >= 1);
        // The burst: the 2 requests left of it pass, then the bucket is empty. (A token is
        // added each second, so on a machine slow enough one more may pass; never fewer.)
        let mut passed = 0;
        let limited = loop {
            let answer = s.get("/v1/resolve?subject=s&predicate=p", &writer).await;
            if answer.status != StatusCode::OK {
                break answer;
            }
            passed += 1;
            assert!(passed < 20, "the rate limit never refused");
        };
        assert!(passed >= 2, "the burst passed: {passed}");
        assert_problem(&limited, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(limited.body["type"], "urn:stemedb:problem:rate-limited");
        assert!(limited.retry_after.as_ref().unwrap().parse::<u64>().unwrap() >= 1);
        // Another key has its own bucket.
        let other = s.key(&[Role::Read], &[]);
        assert_eq!(
            s.get("/v1/resolve?subject=s&predicate=p", &other).await.status,
            StatusCode::OK
        );
    });
}

//! The winner feed as Server-Sent Events over real HTTP: a client sees the current winner,
//! then a winner change caused by new votes. And the OpenAPI document: every route in it is
//! served, and no other method is served on its paths.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use stemedb_testkit as common;

use std::time::Duration;

use awc::http::StatusCode;
use common::http::with_server;
use common::{NOW_MS, key};
use futures_util::StreamExt;
use serde_json::Value;
use stemedb::protocol::{Assertion, ObjectValue, Vote};
use stemedb_server::ServerConfig as Config;
use stemedb_server::keys::Role;

const WAIT: Duration = Duration::from_secs(60);

/// Reads the stream until an event named `name` arrives; returns its data.
async fn next_event<S>(stream: &mut S, buffer: &mut String, name: &str) -> Value
where
    S: futures_util::Stream<Item = Result<actix_web::web::Bytes, awc::error::PayloadError>> + Unpin,
{
    loop {
        while let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            let mut event = None;
            let mut data = None;
            for line in block.lines() {
                if let Some(rest) = line.strip_prefix("event: ") {
                    event = Some(rest.to_owned());
                } else if let Some(rest) = line.strip_prefix("data: ") {
                    data = Some(rest.to_owned());
                }
            }
            if event.as_deref() == Some(name) {
                return serde_json::from_str(&data.unwrap()).unwrap();
            }
        }
        let chunk = actix_rt::time::timeout(WAIT, stream.next())
            .await
            .expect("an event in time")
            .expect("the stream stays open")
            .unwrap();
        buffer.push_str(std::str::from_utf8(&chunk).unwrap());
    }
}

#[test]
fn an_sse_client_sees_the_current_winner_then_a_change() {
    with_server(Config::default(), |s| async move {
        let writer = s.key(&[Role::Read, Role::Write], &[&key(1), &key(2), &key(40)]);
        let mut hashes = Vec::new();
        for (value, signer) in [(1, 1), (2, 2)] {
            let mut a = Assertion::new(
                "city/paris",
                "mayor",
                ObjectValue::Integer(value),
                0.5,
                NOW_MS + value as u64,
            );
            a.sign(&key(signer));
            let answer = s.post("/v1/assertions?wait=indexed", &writer, &a).await;
            hashes.push(answer.body["hash"].as_str().unwrap().to_owned());
        }
        let mut response = s
            .client
            .get(format!(
                "{}/v1/watch?subject=city/paris&predicate=mayor&lens=consensus",
                s.base
            ))
            .insert_header(("Authorization", format!("Bearer {writer}")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            response.headers().get("content-type").unwrap(),
            "text/event-stream"
        );
        let mut buffer = String::new();
        // No votes: a tie, won by the later claim.
        let current = next_event(&mut response, &mut buffer, "current").await;
        assert_eq!(current["new"], hashes[1]);
        // A vote for the earlier claim flips it.
        let vote = Vote::sign(&key(40), hashes[0].parse().unwrap(), 3.0, NOW_MS + 10);
        assert_eq!(s.post("/v1/votes", &writer, &vote).await.status, StatusCode::OK);
        let change = next_event(&mut response, &mut buffer, "winner").await;
        assert_eq!(
            (change["old"].as_str(), change["new"].as_str()),
            (Some(hashes[1].as_str()), Some(hashes[0].as_str()))
        );
        assert!(change["offset"].as_u64().unwrap() > 0);
    });
}

/// Fills a documented path's parameters with placeholder values.
fn concrete(path: &str) -> String {
    path.replace("{hash}", &"0".repeat(64)).replace("{id}", "1")
}

/// Whether a documented operation `method` of another path template matches `url` (as
/// `GET /v1/assertions/{hash}` matches `/v1/assertions/batch`).
fn matched_by_another(paths: &serde_json::Map<String, Value>, method: &str, url: &str) -> bool {
    paths.iter().any(|(template, operations)| {
        let (t, u): (Vec<&str>, Vec<&str>) = (template.split('/').collect(), url.split('/').collect());
        operations.get(method).is_some()
            && t.len() == u.len()
            && t.iter().zip(&u).all(|(t, u)| t == u || t.starts_with('{'))
    })
}

#[test]
fn every_route_in_the_openapi_document_is_served_and_only_those() {
    with_server(Config::default(), |s| async move {
        let doc = s.send("GET", "/v1/openapi.json", None, None, Vec::new()).await;
        assert_eq!(doc.status, StatusCode::OK);
        assert_eq!(doc.body["openapi"], "3.1.0");
        let paths = doc.body["paths"].as_object().unwrap();
        let mut documented = 0;
        for (path, operations) in paths {
            let url = concrete(path);
            for method in ["get", "post", "delete", "put", "patch"] {
                if path == "/v1/watch" && method == "get" {
                    continue; // An endless stream; served, as the SSE test shows.
                }
                let answer = s
                    .send(
                        &method.to_uppercase(),
                        &url,
                        Some(&s.admin),
                        Some("application/json"),
                        b"{}".to_vec(),
                    )
                    .await;
                // No route took it: 405 with the route's methods (or 404 for no route at all).
                let unrouted = (answer.status == StatusCode::NOT_FOUND
                    && answer.body["detail"] == "no such route")
                    || answer.status == StatusCode::METHOD_NOT_ALLOWED;
                if operations.get(method).is_some() {
                    documented += 1;
                    assert!(!unrouted, "{method} {path} is documented but not served");
                    assert_ne!(
                        answer.status,
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "{method} {path}"
                    );
                } else if !matched_by_another(paths, method, &url) {
                    assert!(
                        unrouted,
                        "{method} {path} is served ({}) but not documented",
                        answer.status
                    );
                }
            }
        }
        // Writes (7), reads (3), resolve and audit (3, watch skipped), ops (4: health, ready,
        // the document, metrics), keys and agents (4), the verifiable log (7: two checkpoint
        // names, its key, inclusion by index and by hash, consistency, tiles).
        assert_eq!(documented, 28, "the document's operations");
    });
}

//! The API mounted in a host's own actix-web `App` (`stemedb_server::configure`), over real
//! HTTP on loopback: the host's routes keep answering as the host wrote them (its own JSON
//! limit, its own 404), the API answers under `/v1` with its own limits and problem+json, and a
//! write through the mounted API is indexed by the host's node.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use actix_web::{App, HttpResponse, HttpServer, web};
use stemedb_server::keys::KeyStore;
use stemedb_server::{Api, HttpConfig, configure};
use stemedb_testkit::deadline;

#[actix::test]
async fn the_api_mounts_beside_a_host_route_and_keeps_its_settings_to_itself() {
    let dir = tempfile::TempDir::new().unwrap();
    let node = stemedb::Node::start(stemedb::Config::default(), dir.path().join("data")).unwrap();
    let (keys, token) = KeyStore::open(&dir.path().join("api")).unwrap();
    let token = std::fs::read_to_string(token.unwrap()).unwrap().trim().to_owned();
    let config = HttpConfig {
        body_bytes_max: 4096,
        ..HttpConfig::default()
    };
    let api = web::Data::new(Api::new(node.clone(), Arc::new(keys), config).unwrap());
    let server = HttpServer::new(move || {
        App::new()
            // The host's own route takes bodies larger than the API's limit.
            .route(
                "/echo",
                web::post().to(|body: web::Bytes| async move { HttpResponse::Ok().body(body) }),
            )
            .configure(configure(api.clone()))
    })
    .workers(1)
    .bind("127.0.0.1:0")
    .unwrap();
    let base = format!("http://{}", server.addrs()[0]);
    let server = server.run();
    let handle = server.handle();
    actix::spawn(server);
    let client = awc::Client::default();

    let big = "x".repeat(16 * 1024);
    let mut echoed = client
        .post(format!("{base}/echo"))
        .send_body(big.clone())
        .await
        .unwrap();
    assert_eq!(echoed.status(), 200);
    assert_eq!(echoed.body().await.unwrap().len(), big.len());

    // The host's 404 is actix-web's, not a problem document.
    let missing = client.get(format!("{base}/nowhere")).send().await.unwrap();
    assert_eq!(missing.status(), 404);
    assert!(
        missing
            .headers()
            .get("content-type")
            .is_none_or(|v| v != "application/problem+json")
    );

    // Under /v1: the API's limit (413 problem+json) and its 404.
    let mut too_big = client
        .post(format!("{base}/v1/custodial/assertions"))
        .bearer_auth(&token)
        .insert_header(("content-type", "application/json"))
        .send_body(big)
        .await
        .unwrap();
    assert_eq!(too_big.status(), 413);
    let problem: serde_json::Value = too_big.json().await.unwrap();
    assert_eq!(problem["status"], 413, "{problem}");
    let unknown = client.get(format!("{base}/v1/nowhere")).send().await.unwrap();
    assert_eq!(unknown.status(), 404);
    assert_eq!(
        unknown.headers().get("content-type").unwrap(),
        "application/problem+json"
    );

    // A write through the mounted API lands in the host's node.
    let claim = serde_json::json!({
        "subject": "city/paris", "predicate": "mayor", "object": {"text": "A"}, "confidence": 0.9
    });
    let mut written = client
        .post(format!("{base}/v1/custodial/assertions"))
        .bearer_auth(&token)
        .send_json(&claim)
        .await
        .unwrap();
    assert_eq!(written.status(), 200);
    let receipt: serde_json::Value = written.json().await.unwrap();
    node.wait_indexed(receipt["offset"].as_u64().unwrap(), deadline())
        .await
        .unwrap();
    assert_eq!(node.counts().unwrap(), (1, 0));

    handle.stop(true).await;
    node.shutdown().await.unwrap();
}

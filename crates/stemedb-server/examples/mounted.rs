//! The HTTP API mounted in a host's own actix-web `App`, next to a route of the host's.
//!
//! ```sh
//! cargo run -p stemedb-server --example mounted [DATA_DIR]
//! ```
//!
//! The host serves `/hello` itself and mounts StemeDB's API under `/v1` with
//! `stemedb_server::configure`. The example then asks both over loopback (the host's route,
//! the API's health, an authenticated write with the development admin key, and an unknown
//! path under `/v1`, which the API answers with problem+json), prints what came back, and
//! stops. It exits non-zero if any answer is not what a host should see.

use std::error::Error;
use std::sync::Arc;
use std::time::Duration;

use actix_web::{App, HttpServer, web};
use stemedb_server::keys::KeyStore;
use stemedb_server::{Api, HttpConfig, configure};

#[actix::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let scratch = tempfile::TempDir::new()?;
    let data_dir = std::env::args()
        .nth(1)
        .map_or_else(|| scratch.path().to_owned(), std::path::PathBuf::from);
    let node = stemedb::Node::start(stemedb::Config::default(), data_dir.join("data"))?;
    let (keys, token) = KeyStore::open(&data_dir.join("api"))?;
    let api = web::Data::new(Api::new(node.clone(), Arc::new(keys), HttpConfig::default())?);

    let server = HttpServer::new(move || {
        App::new()
            .route("/hello", web::get().to(|| async { "hello from the host" }))
            .configure(configure(api.clone()))
    })
    .workers(1)
    .bind("127.0.0.1:0")?;
    let base = format!("http://{}", server.addrs()[0]);
    let server = server.run();
    let handle = server.handle();
    actix::spawn(server);

    let client = awc::Client::builder().timeout(Duration::from_secs(10)).finish();
    let mut hello = client.get(format!("{base}/hello")).send().await?;
    let hello = String::from_utf8(hello.body().await?.to_vec())?;
    println!("GET /hello -> {hello}");
    check(hello == "hello from the host", "the host's own route answers")?;

    let health = client.get(format!("{base}/v1/health")).send().await?;
    println!("GET /v1/health -> {}", health.status());
    check(health.status().is_success(), "the mounted API answers /v1/health")?;

    if let Some(token) = token {
        let token = std::fs::read_to_string(token)?.trim().to_owned();
        let claim = serde_json::json!({
            "subject": "city/paris", "predicate": "population",
            "object": { "integer": 2_102_650 }, "confidence": 0.9,
        });
        let mut written = client
            .post(format!("{base}/v1/custodial/assertions"))
            .bearer_auth(token)
            .send_json(&claim)
            .await?;
        let body: serde_json::Value = written.json().await?;
        println!("POST /v1/custodial/assertions -> {} {body}", written.status());
        check(
            written.status().is_success(),
            "an authenticated write through the mounted API",
        )?;
    }

    let missing = client.get(format!("{base}/v1/no-such-route")).send().await?;
    let content_type = missing
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    println!("GET /v1/no-such-route -> {} ({content_type})", missing.status());
    check(
        missing.status() == 404 && content_type.starts_with("application/problem+json"),
        "an unknown path under /v1 is the API's problem+json 404",
    )?;

    handle.stop(true).await;
    node.shutdown().await?;
    println!("stopped");
    Ok(())
}

fn check(ok: bool, what: &str) -> Result<(), Box<dyn Error>> {
    if ok {
        Ok(())
    } else {
        Err(format!("not so: {what}").into())
    }
}

//! Overload over real HTTP: far more concurrent requests than the byte budgets allow are
//! refused with 503 and `Retry-After` (never 500, never absorbed), memory stays bounded (the
//! peak RSS is printed), every acknowledged record is stored, and the server serves again as
//! soon as the load drops.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use stemedb_testkit as common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use actix_web::web::Bytes;
use awc::http::StatusCode;
use common::http::with_server;
use common::{NOW_MS, key};
use stemedb::protocol::{Assertion, Hash, ObjectValue};
use stemedb_server::ServerConfig as Config;
use stemedb_server::keys::Role;

/// Concurrent connections, and requests each sends one after another.
const CONNECTIONS: usize = 500;
const REQUESTS_EACH: usize = 16;
/// Bytes of each request's text object.
const TEXT_BYTES: usize = 48 * 1024;
/// Distinct bodies, shared by the requests (so the client's own memory stays small).
const BODIES: usize = 64;

/// The process's peak resident set so far (`VmHWM`), in KiB.
fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn far_more_requests_than_the_budgets_get_503_with_bounded_memory_then_the_server_recovers() {
    let mut config = Config::default();
    config.node.verify_queue_bytes_max = 1 << 20;
    config.journal.group_commit_queue_bytes_max = 4 << 20;
    config.http.inflight_bytes_max = 2 << 20;
    config.http.rate_per_s = 1_000_000;
    config.http.rate_burst = 1_000_000;
    with_server(config, |s| async move {
        let writer = s.key(&[Role::Write], &[&key(1)]);
        let bodies: Vec<(Hash, Bytes)> = (0..BODIES)
            .map(|i| {
                let text = format!("{i:04}{}", "x".repeat(TEXT_BYTES));
                let mut a = Assertion::new("load", "p", ObjectValue::Text(text), 0.5, NOW_MS + i as u64);
                a.sign(&key(1));
                (a.content_hash(), Bytes::from(serde_json::to_vec(&a).unwrap()))
            })
            .collect();
        let offered_mib = (CONNECTIONS * REQUESTS_EACH * bodies[0].1.len()) >> 20;
        let before_kib = peak_rss_kib();
        let url = format!("{}/v1/assertions", s.base);
        let tasks: Vec<_> = (0..CONNECTIONS)
            .map(|c| {
                let (client, url, writer, bodies) = (
                    common::http::client(),
                    url.clone(),
                    writer.clone(),
                    bodies.clone(),
                );
                actix::spawn(async move {
                    let mut seen = Vec::new();
                    for r in 0..REQUESTS_EACH {
                        let (hash, body) = &bodies[(c * REQUESTS_EACH + r) % BODIES];
                        let response = client
                            .post(&url)
                            .insert_header(("Authorization", format!("Bearer {writer}")))
                            .insert_header(("Content-Type", "application/json"))
                            .send_body(body.clone())
                            .await;
                        let Ok(mut response) = response else {
                            seen.push((None, *hash, false));
                            continue;
                        };
                        let retry_after = response.headers().contains_key("retry-after");
                        let _ = response.body().await;
                        seen.push((Some(response.status()), *hash, retry_after));
                    }
                    seen
                })
            })
            .collect();
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        let mut acknowledged = Vec::new();
        for task in tasks {
            for (status, hash, retry_after) in task.await.unwrap() {
                let name = status.map_or("connection error".to_owned(), |s| s.as_u16().to_string());
                *counts.entry(name).or_default() += 1;
                match status {
                    Some(StatusCode::OK) => acknowledged.push(hash),
                    Some(StatusCode::SERVICE_UNAVAILABLE) => assert!(retry_after, "503 without Retry-After"),
                    other => panic!("unexpected answer under overload: {other:?}"),
                }
            }
        }
        let peak_kib = peak_rss_kib();
        println!(
            "overload: {} requests ({offered_mib} MiB offered) from {CONNECTIONS} connections: {counts:?}; \
             peak RSS {} MiB (before the load {} MiB)",
            CONNECTIONS * REQUESTS_EACH,
            peak_kib >> 10,
            before_kib >> 10
        );
        assert!(
            counts.get("503").copied().unwrap_or(0) > 0,
            "the budgets refused some: {counts:?}"
        );
        assert!(!acknowledged.is_empty(), "some got through: {counts:?}");
        // Bounded: the growth stays well below what was offered.
        let grown_mib = (peak_kib.saturating_sub(before_kib)) >> 10;
        assert!(
            (grown_mib as usize) < offered_mib / 2,
            "grew {grown_mib} MiB of {offered_mib} MiB offered"
        );
        // Everything acknowledged is stored, and the load gone, a request is served at once.
        s.node
            .wait_caught_up(Instant::now() + Duration::from_secs(120))
            .await
            .unwrap();
        for hash in &acknowledged {
            assert!(s.node.get(hash).unwrap().is_some());
        }
        let mut after = Assertion::new("load", "after", ObjectValue::Integer(1), 0.5, NOW_MS);
        after.sign(&key(1));
        assert_eq!(
            s.post("/v1/assertions", &writer, &after).await.status,
            StatusCode::OK
        );
    });
}

//! Hostile clients over real HTTP: no key can take what the others share.
//! - A key that may not post a body is refused before its body is read, so sockets that
//!   declare a megabyte and send nothing hold none of the body budget; a key that may post
//!   holds at most its share; a body that does not arrive in time is answered 408.
//! - A revoked key's open winner feed ends within a tick; one key cannot take every feed
//!   slot; a departed client's slot is freed promptly.
//! - Requests without a valid key are limited per peer address; audit records do not show
//!   other keys' ids to a read key; a problem never echoes a huge input back whole.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use stemedb_testkit as common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use awc::http::StatusCode;
use common::http::{Served, with_server};
use common::{NOW_MS, key};
use futures_util::StreamExt;
use stemedb::protocol::{Assertion, ObjectValue};
use stemedb_server::ServerConfig as Config;
use stemedb_server::keys::Role;

const WAIT: Duration = Duration::from_secs(30);

fn claim(subject: &str, value: i64) -> Assertion {
    let mut a = Assertion::new(subject, "p", ObjectValue::Integer(value), 0.5, NOW_MS);
    a.sign(&key(1));
    a
}

/// Opens `count` connections that each send the head of a `POST /v1/assertions` declaring
/// `declared` body bytes with `token`, and no body. Returns the sockets.
fn declare_bodies(base: &str, token: &str, count: usize, declared: usize) -> Vec<TcpStream> {
    let addr = base.trim_start_matches("http://");
    (0..count)
        .map(|_| {
            let mut socket = TcpStream::connect(addr).unwrap();
            let head = format!(
                "POST /v1/assertions HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
                 Content-Type: application/json\r\nContent-Length: {declared}\r\n\r\n"
            );
            socket.write_all(head.as_bytes()).unwrap();
            socket
        })
        .collect()
}

/// The status line of what `socket` is answered, read within [`WAIT`].
fn status_of(socket: &mut TcpStream) -> String {
    socket.set_read_timeout(Some(WAIT)).unwrap();
    let mut answer = vec![0; 12];
    socket.read_exact(&mut answer).unwrap();
    String::from_utf8_lossy(&answer).into_owned()
}

async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    actix_rt::task::spawn_blocking(work).await.unwrap()
}

#[test]
fn a_key_that_may_not_post_holds_no_body_budget_and_a_writer_holds_only_its_share() {
    let mut config = Config::default();
    config.http.body_timeout_ms = 2_000;
    config.http.inflight_bytes_max = 8 << 20;
    config.http.inflight_bytes_per_key_max = 2 << 20;
    with_server(config, |s| async move {
        let reader = s.key(&[Role::Read], &[]);
        let greedy = s.key(&[Role::Write], &[&key(2)]);
        let writer = s.key(&[Role::Read, Role::Write], &[&key(1)]);
        // 64 sockets of a read key, each declaring 1 MiB: refused at once with 403.
        let base = s.base.clone();
        let mut held = blocking(move || {
            let mut sockets = declare_bodies(&base, &reader, 64, 1 << 20);
            let statuses: Vec<String> = sockets.iter_mut().map(status_of).collect();
            (sockets, statuses)
        })
        .await;
        assert!(held.1.iter().all(|s| s.contains("403")), "{:?}", held.1);
        // Unauthenticated sockets: 401 at once.
        let base = s.base.clone();
        let anonymous = blocking(move || {
            let mut sockets = declare_bodies(&base, "sdb_0_0", 8, 1 << 20);
            sockets.iter_mut().map(status_of).collect::<Vec<_>>()
        })
        .await;
        assert!(anonymous.iter().all(|s| s.contains("401")), "{anonymous:?}");
        // A writer key that declares 8 MiB over 8 sockets holds its 2 MiB share at most...
        let base = s.base.clone();
        let greedy_sockets = blocking(move || declare_bodies(&base, &greedy, 8, 1 << 20)).await;
        // ...so another writer is served throughout.
        for value in 0..20 {
            let answer = s.post("/v1/assertions", &writer, &claim("fair", value)).await;
            assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
        }
        // The greedy sockets: two admitted then timed out (408), the rest refused (503).
        let statuses = blocking(move || {
            let mut sockets = greedy_sockets;
            sockets.iter_mut().map(status_of).collect::<Vec<_>>()
        })
        .await;
        let timed_out = statuses.iter().filter(|s| s.contains("408")).count();
        let refused = statuses.iter().filter(|s| s.contains("503")).count();
        assert_eq!((timed_out, refused), (2, 6), "{statuses:?}");
        held.0.clear();
    });
}

async fn open_feed(
    s: &Served,
    token: &str,
    subject: &str,
) -> Result<
    awc::ClientResponse<
        impl futures_util::Stream<Item = Result<actix_web::web::Bytes, awc::error::PayloadError>> + Unpin,
    >,
    StatusCode,
> {
    let response = s
        .client
        .get(format!("{}/v1/watch?subject={subject}&predicate=p", s.base))
        .insert_header(("Authorization", format!("Bearer {token}")))
        .send()
        .await
        .unwrap();
    match response.status() {
        StatusCode::OK => Ok(response),
        other => Err(other),
    }
}

#[test]
fn a_revoked_keys_open_feed_ends_within_a_second_or_two() {
    with_server(Config::default(), |s| async move {
        let (token, info) = s.keys.create_key("feed", vec![Role::Read], Vec::new()).unwrap();
        let mut feed = open_feed(&s, &token, "revoked").await.unwrap();
        // The `current` event arrives; then the key is revoked.
        let first = actix_rt::time::timeout(WAIT, feed.next()).await.unwrap();
        assert!(first.unwrap().unwrap().starts_with(b"event: current"));
        s.keys.revoke(&info.id).unwrap();
        let revoked = Instant::now();
        loop {
            match actix_rt::time::timeout(WAIT, feed.next())
                .await
                .expect("the feed ends")
            {
                None | Some(Err(_)) => break,
                Some(Ok(_keep_alive)) => continue,
            }
        }
        let took = revoked.elapsed();
        assert!(
            took < Duration::from_secs(5),
            "the feed ended {took:?} after the revocation"
        );
        assert_eq!(
            open_feed(&s, &token, "revoked").await.err(),
            Some(StatusCode::UNAUTHORIZED)
        );
    });
}

#[test]
fn one_key_cannot_take_every_feed_slot_and_a_departed_client_frees_its_slot() {
    let mut config = Config::default();
    config.http.watchers_max = 4;
    config.http.watchers_per_key_max = 2;
    with_server(config, |s| async move {
        let a = s.key(&[Role::Read], &[]);
        let b = s.key(&[Role::Read], &[]);
        let first = open_feed(&s, &a, "x").await.unwrap();
        let _second = open_feed(&s, &a, "y").await.unwrap();
        assert_eq!(
            open_feed(&s, &a, "z").await.err(),
            Some(StatusCode::TOO_MANY_REQUESTS)
        );
        // Another key still gets its feeds.
        let _b1 = open_feed(&s, &b, "x").await.unwrap();
        let _b2 = open_feed(&s, &b, "y").await.unwrap();
        // The whole server is full now.
        let c = s.key(&[Role::Read], &[]);
        assert_eq!(
            open_feed(&s, &c, "x").await.err(),
            Some(StatusCode::SERVICE_UNAVAILABLE)
        );
        // Key a's first client hangs up: its slot comes back within a few seconds.
        drop(first);
        let left = Instant::now();
        let reopened = loop {
            match open_feed(&s, &a, "z").await {
                Ok(feed) => break feed,
                Err(status) => {
                    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
                    assert!(left.elapsed() < WAIT, "the slot was never freed");
                    actix_rt::time::sleep(Duration::from_millis(100)).await;
                }
            }
        };
        let took = left.elapsed();
        assert!(
            took < Duration::from_secs(5),
            "the slot came back {took:?} after the client left"
        );
        drop(reopened);
    });
}

#[test]
fn unauthenticated_requests_are_limited_per_peer_and_keys_are_still_served() {
    let mut config = Config::default();
    config.http.unauthenticated_rate_per_s = 1;
    config.http.unauthenticated_rate_burst = 5;
    with_server(config, |s| async move {
        let reader = s.key(&[Role::Read], &[]);
        let mut statuses = Vec::new();
        for _ in 0..20 {
            let answer = s
                .send("GET", "/v1/resolve?subject=s&predicate=p", None, None, Vec::new())
                .await;
            if answer.status == StatusCode::TOO_MANY_REQUESTS {
                assert!(answer.retry_after.is_some());
            }
            statuses.push(answer.status.as_u16());
        }
        assert!(statuses.iter().take(5).all(|s| *s == 401), "{statuses:?}");
        assert!(
            statuses.iter().skip(5).filter(|s| **s == 429).count() >= 10,
            "{statuses:?}"
        );
        // Wrong keys count as unauthenticated too.
        let wrong = s.get("/v1/health", "sdb_00_00").await;
        assert_eq!(wrong.status, StatusCode::TOO_MANY_REQUESTS);
        // A valid key is served.
        let answer = s.get("/v1/resolve?subject=s&predicate=p", &reader).await;
        assert_eq!(answer.status, StatusCode::OK);
    });
}

#[test]
fn audit_records_hide_other_keys_and_problems_do_not_echo_huge_inputs() {
    with_server(Config::default(), |s| async move {
        let alice = s.key(&[Role::Read], &[]);
        let bob = s.key(&[Role::Read], &[]);
        let answer = s
            .get("/v1/resolve?subject=s&predicate=p&audit=true", &alice)
            .await;
        let id = answer.body["audit_id"].as_u64().unwrap();
        let path = format!("/v1/audit/{id}");
        let own = s.get(&path, &alice).await;
        assert!(own.body["requester"].as_str().unwrap().starts_with("api-key:"));
        let other = s.get(&path, &bob).await;
        assert_eq!(other.body["requester"], "(another API key)");
        let listed = s.get("/v1/audit?subject=s&predicate=p", &bob).await;
        assert_eq!(listed.body["records"][0]["requester"], "(another API key)");
        let admin = s.get(&path, &s.admin).await;
        assert_eq!(admin.body["requester"], own.body["requester"]);
        // A 20 KB bad hash in the path: the problem stays short.
        let huge = "z".repeat(20_000);
        let answer = s.get(&format!("/v1/assertions/{huge}"), &alice).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST);
        let detail = answer.body["detail"].as_str().unwrap();
        assert!(detail.len() <= 512, "{} bytes", detail.len());
        assert!(detail.ends_with('…'));
    });
}

#[test]
fn query_names_past_the_record_limits_are_422_and_nothing_is_stored() {
    with_server(Config::default(), |s| async move {
        let reader = s.key(&[Role::Read], &[]);
        let long = "s".repeat(1025);
        for path in [
            format!("/v1/resolve?subject={long}&predicate=p&audit=true"),
            format!("/v1/resolve?subject=s&predicate={long}&max_stale_ms=1000"),
            format!("/v1/audit?subject={long}&predicate=p"),
            format!("/v1/assertions?subject={long}"),
            format!("/v1/watch?subject={long}&predicate=p"),
        ] {
            let answer = s.get(&path, &reader).await;
            assert_eq!(
                answer.status,
                StatusCode::UNPROCESSABLE_ENTITY,
                "{path:.40}: {:?}",
                answer.body
            );
            assert!(
                matches!(answer.field(), Some("subject" | "predicate")),
                "{:?}",
                answer.body
            );
            assert_eq!(answer.body["limit"], 1024);
        }
        assert_eq!(s.node.audit_stored_bytes().unwrap(), 0);
        assert_eq!(s.node.view_status(&long, "p", "consensus"), None);
        // At the limit, served.
        let at = "s".repeat(1024);
        let answer = s
            .get(
                &format!("/v1/resolve?subject={at}&predicate=p&audit=true"),
                &reader,
            )
            .await;
        assert_eq!(answer.status, StatusCode::OK);
    });
}

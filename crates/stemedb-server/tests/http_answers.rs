//! Answers are bounded, over real HTTP: a long list is cut to `http.response_bytes_max` and
//! pages on; clients that ask for large answers and never read them hold at most their key's
//! share of the outbound budget (others are served throughout), and their connections are cut
//! once `http.send_timeout_ms` has passed, which gives the share back.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use stemedb_testkit as common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use awc::http::StatusCode;
use common::http::with_server;
use common::{NOW_MS, key};
use stemedb::protocol::{Assertion, ObjectValue};
use stemedb_server::ServerConfig as Config;
use stemedb_server::keys::Role;

const WAIT: Duration = Duration::from_secs(30);
/// Assertions in the listing, and the bytes of each one's text.
const ASSERTIONS: usize = 300;
const TEXT_BYTES: usize = 60 * 1024;

/// A connection that asks `path` with `token` and reads only the status line, through a
/// receive buffer of 4 KiB: the server's answer stalls in flight.
fn stalled_get(addr: SocketAddr, path: &str, token: &str) -> (TcpStream, String) {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.connect(&addr.into()).unwrap();
    let mut stream: TcpStream = socket.into();
    let head = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    let mut status = vec![0; 12];
    stream.read_exact(&mut status).unwrap();
    (stream, String::from_utf8_lossy(&status).into_owned())
}

#[test]
fn long_lists_page_and_unread_answers_hold_only_their_keys_share_until_the_send_timeout() {
    let mut config = Config::default();
    config.http.response_bytes_max = 4 << 20;
    config.http.outbound_bytes_per_key_max = 8 << 20;
    config.http.outbound_bytes_max = 16 << 20;
    config.http.send_timeout_ms = 2_000;
    with_server(config, |s| async move {
        let writer = s.key(&[Role::Read, Role::Write], &[&key(1)]);
        let stalled_key = s.key(&[Role::Read], &[]);
        let other = s.key(&[Role::Read], &[]);
        for batch in 0..ASSERTIONS / 10 {
            let records: Vec<Assertion> = (0..10)
                .map(|i| {
                    let n = batch * 10 + i;
                    let text = format!("{n:04}{}", "x".repeat(TEXT_BYTES));
                    let mut a =
                        Assertion::new("big", format!("p{n:04}"), ObjectValue::Text(text), 0.5, NOW_MS);
                    a.sign(&key(1));
                    a
                })
                .collect();
            let answer = s
                .post("/v1/assertions/batch?wait=indexed", &writer, &records)
                .await;
            assert_eq!(answer.status, StatusCode::OK);
            assert_eq!(answer.body["accepted"], 10);
        }
        // Paging: every page fits, and together they hold every assertion once.
        let mut seen = std::collections::BTreeSet::new();
        let mut after = String::new();
        let mut pages = 0;
        loop {
            let answer = s
                .get(
                    &format!("/v1/assertions?subject=big&limit=1000&after={after}"),
                    &other,
                )
                .await;
            assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
            let bytes = serde_json::to_vec(&answer.body).unwrap().len();
            assert!(bytes <= (4 << 20) + 4096, "a page of {bytes} bytes");
            pages += 1;
            for item in answer.body["assertions"].as_array().unwrap() {
                assert!(seen.insert(item["hash"].as_str().unwrap().to_owned()));
            }
            match answer.body["next"].as_str() {
                Some(next) => after = next.to_owned(),
                None => break,
            }
        }
        assert_eq!(seen.len(), ASSERTIONS);
        assert!(pages >= 5, "{pages} pages");
        // Stalled readers: two 4 MiB answers fill the key's 8 MiB share; the third is refused.
        let addr: SocketAddr = s.base.trim_start_matches("http://").parse().unwrap();
        let path = "/v1/assertions?subject=big&limit=1000";
        let token = stalled_key.clone();
        let (held, statuses) = actix_rt::task::spawn_blocking(move || {
            let mut held = Vec::new();
            let mut statuses = Vec::new();
            for _ in 0..3 {
                let (stream, status) = stalled_get(addr, path, &token);
                held.push(stream);
                statuses.push(status);
            }
            (held, statuses)
        })
        .await
        .unwrap();
        assert!(statuses[..2].iter().all(|s| s.contains("200")), "{statuses:?}");
        assert!(statuses[2].contains("503"), "{statuses:?}");
        // Another key is served meanwhile.
        let answer = s.get(path, &other).await;
        assert_eq!(answer.status, StatusCode::OK);
        // The send timeout cuts the stalled connections, which frees the share.
        let stalled_at = Instant::now();
        loop {
            let answer = s.get("/v1/assertions?subject=big&limit=1000", &stalled_key).await;
            if answer.status == StatusCode::OK {
                break;
            }
            assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
            assert!(stalled_at.elapsed() < WAIT, "the stalled answers were never cut");
            actix_rt::time::sleep(Duration::from_millis(200)).await;
        }
        let took = stalled_at.elapsed();
        println!("stalled answers freed after {took:?} (send timeout 2 s)");
        assert!(took < Duration::from_secs(15), "freed after {took:?}");
        drop(held);
    });
}

#[test]
fn the_audit_list_is_cut_to_the_answer_limit_and_pages_on_below_its_last_id() {
    let mut config = Config::default();
    config.http.response_bytes_max = 64 * 1024;
    with_server(config, |s| async move {
        let reader = s.key(&[Role::Read], &[]);
        const AUDITS: usize = 400;
        for _ in 0..AUDITS {
            let answer = s
                .get("/v1/resolve?subject=audited&predicate=p&audit=true", &reader)
                .await;
            assert_eq!(answer.status, StatusCode::OK);
        }
        let mut ids = Vec::new();
        let mut before = String::new();
        loop {
            let answer = s
                .get(
                    &format!("/v1/audit?subject=audited&predicate=p&limit=1000{before}"),
                    &reader,
                )
                .await;
            assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
            let bytes = serde_json::to_vec(&answer.body).unwrap().len();
            assert!(bytes <= 64 * 1024 + 4096, "a page of {bytes} bytes");
            let records = answer.body["records"].as_array().unwrap();
            ids.extend(records.iter().map(|r| r["id"].as_u64().unwrap()));
            match answer.body["next"].as_u64() {
                Some(next) => before = format!("&before={next}"),
                None => break,
            }
        }
        // Every record once, newest first, over more than one page.
        assert_eq!(ids.len(), AUDITS);
        assert!(ids.windows(2).all(|w| w[0] > w[1]));
        // A full page says where the next starts too.
        let page = s
            .get("/v1/audit?subject=audited&predicate=p&limit=10", &reader)
            .await;
        assert_eq!(page.body["records"].as_array().unwrap().len(), 10);
        assert_eq!(page.body["next"], page.body["records"][9]["id"]);
    });
}

//! `stemedb serve` as users run it: on first start it writes a development admin key to a
//! 0600 file and prints its path; SIGTERM and SIGINT stop it gracefully (exit 0) and what it
//! acknowledged is there after a restart. And a full disk answers 507, then writes resume once
//! space returns, with every acknowledged record present.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use stemedb_testkit as common;

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::Instant;

use awc::http::StatusCode;
use common::http::{Served, client};
use serde_json::{Value, json};
use stemedb_server::ServerConfig as Config;
use stemedb_sim::Tmpfs;

/// Starts `stemedb serve` on `dir`; returns the child, its stdout, the lines it printed up to
/// the serving line, and the base URL.
/// The caller waits for the child, in `stop`.
fn serve(dir: &std::path::Path) -> (Child, BufReader<ChildStdout>, Vec<String>, String) {
    serve_with(dir, &[])
}

/// [`serve`] with extra arguments before `serve` (such as `--config FILE`).
#[allow(clippy::zombie_processes)]
fn serve_with(
    dir: &std::path::Path,
    before: &[&str],
) -> (Child, BufReader<ChildStdout>, Vec<String>, String) {
    let mut child = Command::new(assert_cmd::cargo::cargo_bin("stemedb"))
        .args(before)
        .args(["serve", "--bind", "127.0.0.1:0", "--data-dir"])
        .arg(dir)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut lines = Vec::new();
    loop {
        let mut line = String::new();
        assert!(
            stdout.read_line(&mut line).unwrap() > 0,
            "serve exited early: {lines:?}"
        );
        lines.push(line.trim().to_owned());
        if let Some(at) = line.find("serving http://") {
            let url = line[at + "serving ".len()..].split_whitespace().next().unwrap();
            let base = url.trim_end_matches("/v1").to_owned();
            return (child, stdout, lines, base);
        }
    }
}

/// Sends `signal` and waits for a clean exit; returns what was printed after the serving line.
fn stop(mut child: Child, mut stdout: BufReader<ChildStdout>, signal: i32) -> String {
    let pid = i32::try_from(child.id()).unwrap();
    // SAFETY: signalling our own child process.
    #[allow(unsafe_code)]
    let sent = unsafe { libc::kill(pid, signal) };
    assert_eq!(sent, 0);
    let status = child.wait().unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
    assert!(status.success(), "serve exited with {status}: {rest}");
    rest
}

async fn request(method: &str, url: String, token: &str, body: Option<Value>) -> (StatusCode, Value) {
    let method = awc::http::Method::from_bytes(method.as_bytes()).unwrap();
    let request = client()
        .request(method, url)
        .insert_header(("Authorization", format!("Bearer {token}")));
    let mut response = match body {
        Some(body) => request.send_json(&body).await.unwrap(),
        None => request.send().await.unwrap(),
    };
    let bytes = response.body().await.unwrap();
    (
        response.status(),
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

#[test]
fn serve_writes_a_private_admin_key_stops_on_signals_and_keeps_what_it_acknowledged() {
    let dir = tempfile::TempDir::new().unwrap();
    let data = dir.path().join("data");
    let (child, stdout, lines, base) = serve(&data);
    let token_path = data.join("api/admin.token");
    assert!(lines[0].contains(&token_path.display().to_string()), "{lines:?}");
    let mode = std::fs::metadata(&token_path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let token = std::fs::read_to_string(&token_path).unwrap().trim().to_owned();
    let claim =
        json!({"subject": "city/paris", "predicate": "mayor", "object": {"text": "A"}, "confidence": 0.9});
    let (status, receipt) = actix::System::new().block_on(request(
        "POST",
        format!("{base}/v1/custodial/assertions"),
        &token,
        Some(claim),
    ));
    assert_eq!(status, StatusCode::OK, "{receipt}");
    let hash = receipt["hash"].as_str().unwrap().to_owned();
    let rest = stop(child, stdout, libc::SIGTERM);
    assert!(rest.contains("stopped"), "{rest}");
    // Restarted: no new admin key, the record is there; SIGINT stops it too.
    let (child, stdout, lines, base) = serve(&data);
    assert!(!lines.iter().any(|l| l.contains("first start")), "{lines:?}");
    let (status, stored) = actix::System::new().block_on(request(
        "GET",
        format!("{base}/v1/assertions/{hash}"),
        &token,
        None,
    ));
    assert_eq!(status, StatusCode::OK, "{stored}");
    assert_eq!(stored["assertion"]["object"]["text"], "A");
    assert!(stop(child, stdout, libc::SIGINT).contains("stopped"));
}

/// Writes a file of zeros on the tmpfs until the disk is full.
fn fill(path: &std::path::Path) {
    use std::io::Write;
    let mut file = std::fs::File::create(path).unwrap();
    let chunk = vec![0u8; 64 * 1024];
    while file.write_all(&chunk).is_ok() {}
    let _ = file.sync_all();
}

async fn post_claim(s: &Served, n: usize) -> (StatusCode, Value) {
    let text = format!("{n:06}{}", "x".repeat(16 * 1024));
    let body = json!({"subject": "s", "predicate": "p", "object": {"text": text}, "confidence": 0.5});
    let answer = s.post("/v1/custodial/assertions", &s.admin, &body).await;
    (answer.status, answer.body)
}

#[test]
fn a_full_disk_answers_507_and_writes_resume_once_space_returns() {
    let dir = tempfile::TempDir::new().unwrap();
    let Some(tmpfs) = Tmpfs::mount(dir.path(), "48m") else {
        eprintln!("skipped: a tmpfs cannot be mounted here (needs root)");
        return;
    };
    let mut config = Config::default();
    config.journal.segment_size_bytes = 256 * 1024;
    config.state.map_size_bytes_initial = 16 << 20;
    let filler = tmpfs.path().join("filler");
    common::http::with_server_in(tmpfs.path(), config, |s| async move {
        fill(&filler);
        let mut acknowledged = Vec::new();
        let mut full = None;
        for n in 0..2000 {
            let (status, body) = post_claim(&s, n).await;
            assert_ne!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
            match status {
                StatusCode::OK => acknowledged.push(body["hash"].as_str().unwrap().parse().unwrap()),
                StatusCode::INSUFFICIENT_STORAGE => {
                    full = Some(body);
                    break;
                }
                other => panic!("unexpected {other}: {body}"),
            }
        }
        let full = full.expect("the disk filled up within 2000 writes");
        assert_eq!(full["type"], "urn:stemedb:problem:storage-full");
        // Space returns: writes resume (the journal retries on the next append).
        std::fs::remove_file(&filler).unwrap();
        let deadline = Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let (status, body) = post_claim(&s, 9999).await;
            if status == StatusCode::OK {
                acknowledged.push(body["hash"].as_str().unwrap().parse().unwrap());
                break;
            }
            assert!(
                Instant::now() < deadline,
                "writes did not resume: {status} {body}"
            );
        }
        s.node
            .wait_caught_up(Instant::now() + std::time::Duration::from_secs(60))
            .await
            .unwrap();
        for hash in &acknowledged {
            assert!(
                s.node.get(hash).unwrap().is_some(),
                "acknowledged {hash} is missing"
            );
        }
    });
    drop(tmpfs);
}

async fn get_text(url: String) -> (StatusCode, String) {
    let mut response = client().get(url).send().await.unwrap();
    let bytes = response.body().await.unwrap();
    (response.status(), String::from_utf8_lossy(&bytes).into_owned())
}

#[test]
fn metrics_are_served_on_the_api_address_or_on_their_own() {
    // The default: /metrics on the API's address, in the Prometheus text format.
    let dir = tempfile::TempDir::new().unwrap();
    let (child, stdout, _, base) = serve(dir.path());
    actix::System::new().block_on(async {
        let (status, text) = get_text(format!("{base}/metrics")).await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            text.contains("# TYPE stemedb_journal_appends_total counter"),
            "{text}"
        );
        assert!(text.contains("stemedb_build_info{"), "{text}");
    });
    stop(child, stdout, libc::SIGTERM);

    // `telemetry.metrics_bind`: on a port of their own, and not on the API's.
    let dir = tempfile::TempDir::new().unwrap();
    let config = dir.path().join("stemedb.toml");
    std::fs::write(
        &config,
        "[telemetry]\nmetrics_bind = \"127.0.0.1:0\"\nlog_format = \"json\"\n",
    )
    .unwrap();
    let data = dir.path().join("data");
    let (child, stdout, lines, base) = serve_with(&data, &["--config", config.to_str().unwrap()]);
    let metrics = lines
        .iter()
        .find_map(|line| line.strip_prefix("metrics at "))
        .unwrap_or_else(|| panic!("no metrics address printed: {lines:?}"))
        .to_owned();
    actix::System::new().block_on(async {
        let (status, text) = get_text(metrics.clone()).await;
        assert_eq!(status, StatusCode::OK);
        assert!(text.contains("stemedb_ingest_lag_bytes 0"), "{text}");
        let (status, _) = get_text(format!("{base}/metrics")).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "not on the API's address");
    });
    stop(child, stdout, libc::SIGTERM);

    // `telemetry.metrics = false`: nowhere.
    let dir = tempfile::TempDir::new().unwrap();
    let config = dir.path().join("stemedb.toml");
    std::fs::write(&config, "[telemetry]\nmetrics = false\n").unwrap();
    let (child, stdout, _, base) =
        serve_with(&dir.path().join("data"), &["--config", config.to_str().unwrap()]);
    actix::System::new().block_on(async {
        let (status, _) = get_text(format!("{base}/metrics")).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    });
    stop(child, stdout, libc::SIGTERM);
}

#[test]
fn a_busy_port_is_one_clear_line_and_leaves_nothing_behind() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let output = Command::new(assert_cmd::cargo::cargo_bin("stemedb"))
        .args(["serve", "--bind", &addr.to_string(), "--data-dir"])
        .arg(&data)
        .env("RUST_LOG", "warn")
        .env("RUST_BACKTRACE", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(!stderr.contains("panicked"), "{stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|line| !line.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(lines[0].contains(&format!("cannot listen on {addr}")), "{stderr}");
    assert!(lines[0].contains("in use"), "{stderr}");
    assert!(!data.exists(), "serve wrote {} before it bound", data.display());
    drop(busy);
}

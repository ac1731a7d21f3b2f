//! Replication under failure, as users run it: a 3-server JetStream cluster on loopback and 3
//! `stemedb serve` nodes on it (child processes), written to and voted through, all three, under
//! load. The stream leader is SIGKILLed, then a StemeDB node, then a stream follower, each
//! restarted. Afterwards every acknowledged assertion and vote is on every node, a new empty
//! node catches up from sequence 1, and all four state digests are equal at the stream's end.
//! The longest pause in acknowledged writes is printed.
//!
//! Needs `nats-server` (Debian package `nats-server`; `.ci/run` installs it).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use stemedb_testkit as common;

use std::cell::RefCell;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::rc::Rc;
use std::time::{Duration, Instant};

use common::http::client;
use serde_json::{Value, json};
use stemedb_sim::NatsCluster;
use tempfile::TempDir;

const STREAM: &str = "STEMEDB";
/// Writers per node.
const WRITERS: usize = 6;
/// Acknowledged writes between two steps of the scenario.
const STEP_ACKS: usize = 300;
/// Longest a step may wait for its acknowledgements, or a node for its catch-up.
const STEP_TIMEOUT: Duration = Duration::from_secs(120);

/// A `stemedb serve` child.
struct Served {
    child: Child,
    base: String,
    token: String,
}

impl Drop for Served {
    /// A failing test leaves no node running.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn node_config(dir: &Path, index: usize, urls: &[String]) -> PathBuf {
    let path = dir.join(format!("node{index}.toml"));
    let servers: Vec<String> = urls.iter().map(|u| format!("{u:?}")).collect();
    let text = format!(
        "[replication]\nmode = \"jetstream\"\nservers = [{}]\nstream = \"{STREAM}\"\nreplicas = 3\nack_timeout_ms = 1000\n\n[http]\nrate_per_s = 1000000\nrate_burst = 1000000\n",
        servers.join(", ")
    );
    std::fs::write(&path, text).unwrap();
    path
}

#[allow(clippy::zombie_processes)]
fn serve(data_dir: &Path, config: &Path) -> Served {
    let mut child = Command::new(assert_cmd::cargo::cargo_bin("stemedb"))
        .arg("--config")
        .arg(config)
        .args(["serve", "--bind", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut seen = Vec::new();
    let base = loop {
        let mut line = String::new();
        assert!(
            stdout.read_line(&mut line).unwrap() > 0,
            "serve exited early: {seen:?}"
        );
        if let Some(at) = line.find("serving http://") {
            let url = line[at + "serving ".len()..].split_whitespace().next().unwrap();
            break url.trim_end_matches("/v1").to_owned();
        }
        seen.push(line);
    };
    // Drained, so the child never blocks on a full pipe.
    std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
    let token = std::fs::read_to_string(data_dir.join("api/admin.token"))
        .unwrap()
        .trim()
        .to_owned();
    Served { child, base, token }
}

fn signal(served: &mut Served, signal: i32) {
    let pid = i32::try_from(served.child.id()).unwrap();
    // SAFETY: signalling our own child process.
    #[allow(unsafe_code)]
    let sent = unsafe { libc::kill(pid, signal) };
    assert_eq!(sent, 0);
    let status = served.child.wait().unwrap();
    if signal == libc::SIGTERM {
        assert!(status.success(), "serve exited with {status}");
    }
}

/// What the writers had acknowledged.
struct Acked {
    /// Assertion hashes.
    assertions: Vec<String>,
    /// (assertion hash, vote hash).
    votes: Vec<(String, String)>,
    /// When the last write was acknowledged, and the longest gap between two.
    last: Option<Instant>,
    longest_pause: Duration,
    /// Requests that were not acknowledged (refused, timed out, node down).
    failed: usize,
    stop: bool,
    /// The count of acknowledged writes, for those waiting on it.
    acks: tokio::sync::watch::Sender<usize>,
}

impl Default for Acked {
    fn default() -> Self {
        Self {
            assertions: Vec::new(),
            votes: Vec::new(),
            last: None,
            longest_pause: Duration::ZERO,
            failed: 0,
            stop: false,
            acks: tokio::sync::watch::Sender::new(0),
        }
    }
}

impl Acked {
    fn count(&self) -> usize {
        self.assertions.len() + self.votes.len()
    }

    fn ack(&mut self) {
        let now = Instant::now();
        if let Some(last) = self.last {
            self.longest_pause = self.longest_pause.max(now - last);
        }
        self.last = Some(now);
        self.acks.send_replace(self.count());
    }
}

async fn post(base: &str, token: &str, path: &str, body: Value) -> Option<Value> {
    let mut response = client()
        .post(format!("{base}/v1/{path}"))
        .insert_header(("Authorization", format!("Bearer {token}")))
        .timeout(Duration::from_secs(30))
        .send_json(&body)
        .await
        .ok()?;
    if !response.status().is_success() {
        return None;
    }
    serde_json::from_slice(&response.body().await.ok()?).ok()
}

async fn get(base: &str, token: &str, path: &str) -> (u16, Value) {
    let mut response = client()
        .get(format!("{base}/v1/{path}"))
        .insert_header(("Authorization", format!("Bearer {token}")))
        .send()
        .await
        .unwrap();
    let body = response.body().limit(1 << 24).await.unwrap();
    (
        response.status().as_u16(),
        serde_json::from_slice(&body).unwrap_or(Value::Null),
    )
}

/// One writer: a claim, then a vote on it, over and over, through node `node`.
async fn writer(
    nodes: Rc<RefCell<Vec<(String, String)>>>,
    node: usize,
    id: usize,
    acked: Rc<RefCell<Acked>>,
) {
    let mut n = 0u64;
    while !acked.borrow().stop {
        n += 1;
        let (base, token) = nodes.borrow()[node].clone();
        let claim = json!({
            "subject": format!("w{node}-{id}"), "predicate": "p",
            "object": {"integer": n}, "confidence": 0.5,
        });
        let Some(receipt) = post(&base, &token, "custodial/assertions", claim).await else {
            acked.borrow_mut().failed += 1;
            // A client's retry pause (the node may be down), not a wait for an event.
            actix_rt::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let hash = receipt["hash"].as_str().unwrap().to_owned();
        {
            let mut acked = acked.borrow_mut();
            acked.assertions.push(hash.clone());
            acked.ack();
        }
        let vote = json!({"assertion": hash, "weight": 1.0 + (n % 3) as f64});
        match post(&base, &token, "custodial/votes", vote).await {
            Some(receipt) => {
                let mut acked = acked.borrow_mut();
                acked
                    .votes
                    .push((hash, receipt["hash"].as_str().unwrap().to_owned()));
                acked.ack();
            }
            None => acked.borrow_mut().failed += 1,
        }
    }
}

async fn wait_acks(acked: &Rc<RefCell<Acked>>, more: usize, step: &str) {
    let (target, mut acks) = {
        let acked = acked.borrow();
        (acked.count() + more, acked.acks.subscribe())
    };
    let resumed = actix_rt::time::timeout(STEP_TIMEOUT, acks.wait_for(|n| *n >= target)).await;
    assert!(matches!(resumed, Ok(Ok(_))), "{step}: writes did not resume");
}

/// SIGKILLs JetStream server `index` (`role` names it), then restarts it; writes must go on
/// after each.
async fn kill_and_restart(cluster: &mut NatsCluster, index: usize, role: &str, acked: &Rc<RefCell<Acked>>) {
    println!(
        "SIGKILL stream {role} n{index} at {} acknowledged writes",
        acked.borrow().count()
    );
    cluster.kill(index).unwrap();
    wait_acks(acked, STEP_ACKS, &format!("after the {role}'s loss")).await;
    cluster.restart(index).unwrap();
    wait_acks(acked, STEP_ACKS, &format!("after the {role}'s restart")).await;
}

/// Returns the stream's info once it has a leader. The cluster announces no election to a
/// client, so this asks again until one is reported (within `STEP_TIMEOUT`).
async fn stream_info(js: &async_nats::jetstream::Context) -> async_nats::jetstream::stream::Info {
    let started = Instant::now();
    loop {
        if let Ok(mut stream) = js.get_stream(STREAM).await
            && let Ok(info) = stream.info().await
            && info.cluster.as_ref().is_some_and(|c| c.leader.is_some())
        {
            return info.clone();
        }
        assert!(started.elapsed() < STEP_TIMEOUT, "the stream has no leader");
        actix_rt::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until the node at `base` has applied the stream up to `end`. The API has no wait on a
/// position another node wrote, so this asks `/v1/ready` again until it reports `end` (within
/// `STEP_TIMEOUT`, failing at once if the node reports a stall).
async fn wait_applied(base: &str, token: &str, end: u64) {
    let started = Instant::now();
    loop {
        let (_, body) = get(base, token, "ready").await;
        if body["cursor"].as_u64() == Some(end) {
            return;
        }
        assert!(body["stalled"].is_null(), "{base} stalled: {body}");
        assert!(
            started.elapsed() < STEP_TIMEOUT,
            "{base} did not catch up to {end}: {body}"
        );
        actix_rt::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Checks that every acknowledged assertion and vote is on the node at `base`.
async fn assert_holds(base: &str, token: &str, acked: &Acked) {
    for hash in &acked.assertions {
        let (status, _) = get(base, token, &format!("assertions/{hash}")).await;
        assert_eq!(status, 200, "{base} lacks acknowledged assertion {hash}");
    }
    for (assertion, vote) in &acked.votes {
        let (status, body) = get(base, token, &format!("assertions/{assertion}/votes?limit=100")).await;
        assert_eq!(status, 200);
        let votes = body["votes"].as_array().unwrap();
        assert!(
            votes.iter().any(|v| v["hash"].as_str() == Some(vote)),
            "{base} lacks acknowledged vote {vote} on {assertion}: {body}"
        );
    }
}

fn digest(config: &Path, dir: &Path) -> String {
    let output = Command::new(assert_cmd::cargo::cargo_bin("stemedb"))
        .arg("--config")
        .arg(config)
        .args(["state", "digest"])
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

#[test]
fn every_acknowledged_write_survives_leader_follower_and_node_kills_on_every_replica() {
    let tmp = TempDir::new().unwrap();
    let mut cluster = NatsCluster::start(&tmp.path().join("nats"), 3, None).unwrap();
    let urls = cluster.urls();
    let dirs: Vec<PathBuf> = (0..4).map(|i| tmp.path().join(format!("node{i}"))).collect();
    let configs: Vec<PathBuf> = (0..4).map(|i| node_config(tmp.path(), i, &urls)).collect();
    let mut served: Vec<Served> = (0..3).map(|i| serve(&dirs[i], &configs[i])).collect();

    let (acked, pause) = actix_rt::System::new().block_on(async {
        let addrs: Vec<async_nats::ServerAddr> = urls.iter().map(|u| u.parse().unwrap()).collect();
        let js = async_nats::jetstream::new(async_nats::connect(addrs).await.unwrap());
        let nodes = Rc::new(RefCell::new(
            served
                .iter()
                .map(|s| (s.base.clone(), s.token.clone()))
                .collect::<Vec<_>>(),
        ));
        let acked = Rc::new(RefCell::new(Acked::default()));
        let mut writers = Vec::new();
        for node in 0..3 {
            for id in 0..WRITERS {
                writers.push(actix_rt::spawn(writer(nodes.clone(), node, id, acked.clone())));
            }
        }
        wait_acks(&acked, STEP_ACKS, "warm-up").await;

        let leader = stream_info(&js).await.cluster.unwrap().leader.unwrap();
        let leader = cluster.index_of(&leader).unwrap();
        kill_and_restart(&mut cluster, leader, "leader", &acked).await;

        println!(
            "SIGKILL StemeDB node 2 at {} acknowledged writes",
            acked.borrow().count()
        );
        signal(&mut served[2], libc::SIGKILL);
        wait_acks(&acked, STEP_ACKS, "with node 2 down").await;
        served[2] = serve(&dirs[2], &configs[2]);
        nodes.borrow_mut()[2] = (served[2].base.clone(), served[2].token.clone());
        wait_acks(&acked, STEP_ACKS, "after node 2's restart").await;

        let info = stream_info(&js).await;
        let leader = info.cluster.unwrap().leader.unwrap();
        let follower = (0..cluster.len())
            .find(|&i| Some(i) != cluster.index_of(&leader))
            .unwrap();
        kill_and_restart(&mut cluster, follower, "follower", &acked).await;

        acked.borrow_mut().stop = true;
        for writer in writers {
            writer.await.unwrap();
        }
        let end = stream_info(&js).await.state.last_sequence + 1;
        let nodes = nodes.borrow().clone();
        for node in &nodes {
            wait_applied(&node.0, &node.1, end).await;
        }
        let acked = acked.take();
        for node in &nodes {
            assert_holds(&node.0, &node.1, &acked).await;
        }
        // A new, empty node replays the stream from sequence 1.
        served.push(serve(&dirs[3], &configs[3]));
        wait_applied(&served[3].base, &served[3].token, end).await;
        assert_holds(&served[3].base, &served[3].token, &acked).await;
        println!(
            "{} assertions and {} votes acknowledged ({} requests not), stream end {end}",
            acked.assertions.len(),
            acked.votes.len(),
            acked.failed
        );
        (acked.count(), acked.longest_pause)
    });
    println!(
        "longest write pause: {} ms over {acked} acknowledged writes",
        pause.as_millis()
    );

    for node in &mut served {
        signal(node, libc::SIGTERM);
    }
    let digests: Vec<String> = (0..4).map(|i| digest(&configs[i], &dirs[i])).collect();
    for (i, digest) in digests.iter().enumerate() {
        println!("node {i}: {digest}");
    }
    if digests.iter().any(|d| d != &digests[0]) {
        // Kept for diagnosis: the nodes' data directories and the servers' stores and logs.
        drop(cluster);
        let kept = tmp.keep();
        panic!(
            "digests differ: {digests:?}; the data directories are kept in {}",
            kept.display()
        );
    }
    drop(cluster);
}

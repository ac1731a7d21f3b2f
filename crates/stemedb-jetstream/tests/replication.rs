//! A node whose log is a JetStream stream (`replication.mode = "jetstream"`), against a real
//! `nats-server` on loopback: writes are acknowledged with stream sequences and indexed; a
//! second node replays the stream from sequence 1 to the same digest; a restarted node
//! catches up from its cursor; a record too large for the stream is refused by name; a data
//! directory built from another log is refused; records a plain NATS client publishes straight
//! to the stream (forged, unauthorized, NaN, undecodable, unknown) are rejected by reason on
//! every node, and ingestion goes on.
//!
//! Needs `nats-server` (Debian package `nats-server`; `.ci/run` installs it).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use stemedb_testkit as common;

use common::deadline;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{NOW_MS, key};
use stemedb::log::{AppendError, LogError};
use stemedb::node::{Node, NodeError, SubmitError};
use stemedb::protocol::{Assertion, ObjectValue, Vote};
use stemedb_jetstream::{ReplicationError, ReplicationMode};
use stemedb_server::ServerConfig as Config;
use stemedb_server::StartError;
use stemedb_sim::NatsCluster;
use tempfile::TempDir;

/// Asserts that starting a node failed with `ReplicationError::$pattern`; returns the error.
macro_rules! assert_refused {
    ($started:expr, $pattern:pat) => {{
        let refused = $started.unwrap_err();
        let replication = match &refused {
            StartError::Node(NodeError::Log(LogError::Backend(backend))) => {
                backend.downcast_ref::<ReplicationError>()
            }
            _ => None,
        };
        assert!(matches!(replication, Some($pattern)), "{refused}");
        refused
    }};
}

fn config(cluster: &NatsCluster, stream: &str) -> Config {
    let mut config = Config::default();
    config.replication.mode = ReplicationMode::Jetstream;
    config.replication.servers = cluster.urls();
    config.replication.stream = stream.to_owned();
    config.replication.replicas = cluster.len();
    config
}

/// Claim `n`, on pair `n / 2 % 7`: claims `2k` and `2k + 1` share their pair and their signer,
/// so the second may supersede the first.
fn claim(n: u64, parent: Option<stemedb::protocol::Hash>) -> Assertion {
    let mut claim = Assertion::new(
        format!("s{}", n / 2 % 7),
        "p",
        ObjectValue::Integer(n as i64),
        0.5,
        NOW_MS + n,
    );
    claim.parent = parent;
    claim.sign(&key(1 + (n / 2 % 3) as u8));
    claim
}

/// Writes `count` assertions (each second one superseding the one before, in the same
/// submission) and a vote on each; returns the last position acknowledged.
async fn write(node: &Node, from: u64, count: u64) -> u64 {
    let mut last = 0;
    for n in (from..from + count).step_by(2) {
        let parent = claim(n, None);
        let child = claim(n + 1, Some(parent.content_hash()));
        let receipts = node.submit_many(vec![parent, child]).await.unwrap();
        let receipts: Vec<_> = receipts.into_iter().map(Result::unwrap).collect();
        assert!(
            receipts[0].offset < receipts[1].offset,
            "a parent precedes its child"
        );
        let votes = receipts
            .iter()
            .map(|r| Vote::sign(&key(9), r.hash, 1.0 + (n % 4) as f32, NOW_MS + n))
            .collect();
        for vote in node.cast_votes(votes).await.unwrap() {
            last = last.max(vote.unwrap().offset);
        }
    }
    last
}

async fn start(config: Config, dir: &Path) -> Node {
    config.start_node(dir).unwrap()
}

#[actix::test]
async fn nodes_on_one_stream_index_the_same_state_and_catch_up_from_their_cursors() {
    let tmp = TempDir::new().unwrap();
    let cluster = NatsCluster::start(&tmp.path().join("nats"), 1, None).unwrap();
    let config = config(&cluster, "CATCHUP");
    let (a_dir, b_dir, c_dir) = (tmp.path().join("a"), tmp.path().join("b"), tmp.path().join("c"));

    let a = start(config.clone(), &a_dir).await;
    let last = write(&a, 0, 40).await;
    // 40 assertions and 40 votes: positions are the stream's sequences 1..=80.
    assert_eq!(last, 80);
    a.wait_indexed(last, deadline()).await.unwrap();
    let (assertions, rejections) = a.counts().unwrap();
    assert_eq!(
        (assertions, rejections),
        (40, 0),
        "no child was ingested before its parent"
    );

    // A new, empty node replays the stream from sequence 1.
    let b = start(config.clone(), &b_dir).await;
    b.wait_indexed(last, deadline()).await.unwrap();
    assert_eq!(b.state_digest().unwrap(), a.state_digest().unwrap());

    // A stops; B writes on; A restarts and catches up from its cursor.
    a.shutdown().await.unwrap();
    let last = write(&b, 40, 20).await;
    assert_eq!(last, 120);
    b.wait_indexed(last, deadline()).await.unwrap();
    let a = start(config.clone(), &a_dir).await;
    assert_eq!(
        a.ingest_status().cursor,
        81,
        "A resumes from its committed cursor"
    );
    a.wait_indexed(last, deadline()).await.unwrap();
    let digest = b.state_digest().unwrap();
    assert_eq!(a.state_digest().unwrap(), digest);
    assert_eq!(digest.cursor, 121);

    // Any node serves writes and reads: C joins, writes, and A sees it.
    let c = start(config.clone(), &c_dir).await;
    let last = write(&c, 60, 2).await;
    a.wait_indexed(last, deadline()).await.unwrap();
    c.wait_indexed(last, deadline()).await.unwrap();
    assert_eq!(a.state_digest().unwrap(), c.state_digest().unwrap());
    assert_ne!(a.state_digest().unwrap(), digest);

    for node in [a, b, c] {
        node.shutdown().await.unwrap();
    }
}

#[actix::test]
async fn a_record_too_large_for_the_stream_is_refused_by_name_and_nothing_is_published() {
    let tmp = TempDir::new().unwrap();
    let cluster = NatsCluster::start(&tmp.path().join("nats"), 1, Some(16 * 1024)).unwrap();
    let node = start(config(&cluster, "LIMITS"), &tmp.path().join("a")).await;
    let small = node.submit(claim(1, None)).await.unwrap();
    assert_eq!(small.offset, 1);

    let mut big = Assertion::new("s", "p", ObjectValue::Text("x".repeat(20_000)), 0.5, NOW_MS);
    big.sign(&key(1));
    let refused = node.submit(big).await.unwrap_err();
    match &refused {
        SubmitError::Log(AppendError::RecordTooLarge { bytes, max }) => {
            assert!(*bytes > 20_000 && *max < 16 * 1024, "{refused}");
        }
        other => panic!("expected RecordTooLarge, got {other:?}"),
    }
    assert!(refused.to_string().contains("exceeds the log's largest record"));
    // Nothing was published: the next record takes the next sequence.
    let next = node.submit(claim(2, None)).await.unwrap();
    assert_eq!(next.offset, 2);
    node.shutdown().await.unwrap();
}

#[actix::test]
async fn a_data_directory_built_from_another_log_is_refused_and_left_unchanged() {
    let tmp = TempDir::new().unwrap();
    let cluster = NatsCluster::start(&tmp.path().join("nats"), 1, None).unwrap();
    let dir = tmp.path().join("a");
    let node = start(config(&cluster, "FIRST"), &dir).await;
    let receipt = node.submit(claim(1, None)).await.unwrap();
    node.wait_indexed(receipt.offset, deadline()).await.unwrap();
    node.shutdown().await.unwrap();

    // Another stream.
    let mut second = config(&cluster, "SECOND");
    second.replication.subject = "second.log".into();
    assert_refused!(second.start_node(&dir), ReplicationError::WrongLog { .. });

    // A directory of the local journal: its records would be abandoned.
    let local = tmp.path().join("local");
    let node = Node::start(stemedb::Config::default(), &local).unwrap();
    let receipt = node.submit(claim(1, None)).await.unwrap();
    node.wait_indexed(receipt.offset, deadline()).await.unwrap();
    node.shutdown().await.unwrap();
    assert_refused!(
        config(&cluster, "FIRST").start_node(&local),
        ReplicationError::LocalJournal { .. }
    );
    assert!(!local.join(stemedb_jetstream::STREAM_ID_FILE).exists());

    // A replica opened as a local node: its positions are stream sequences, not journal offsets.
    let refused = Node::start(stemedb::Config::default(), &dir).unwrap_err();
    assert!(
        matches!(refused, NodeError::Log(LogError::WrongKind { .. })),
        "{refused}"
    );
    assert!(
        !dir.join(stemedb::node::JOURNAL_DIR).exists(),
        "nothing was created"
    );

    // The first stream still opens it, and only one node at a time.
    let node = start(config(&cluster, "FIRST"), &dir).await;
    assert_eq!(node.ingest_status().cursor, 2);
    let refused = config(&cluster, "FIRST").start_node(&dir).unwrap_err();
    assert!(refused.to_string().contains("lock"), "{refused}");
    node.shutdown().await.unwrap();
}

#[actix::test]
async fn an_unreachable_cluster_is_a_named_error_within_the_connect_timeout() {
    let tmp = TempDir::new().unwrap();
    let mut config = Config::default();
    config.replication.mode = ReplicationMode::Jetstream;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    config.replication.servers = vec![format!("nats://127.0.0.1:{port}")];
    config.replication.connect_timeout_ms = 500;
    let started = Instant::now();
    assert_refused!(
        config.start_node(tmp.path()),
        ReplicationError::Unreachable { .. }
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}

#[actix::test]
async fn a_stream_the_cluster_cannot_create_is_refused_with_the_server_s_reason() {
    let tmp = TempDir::new().unwrap();
    let cluster = NatsCluster::start(&tmp.path().join("nats"), 1, None).unwrap();
    let mut config = config(&cluster, "TOOMANY");
    // Three replicas on a single server.
    config.replication.replicas = 3;
    config.replication.connect_timeout_ms = 2_000;
    let refused = assert_refused!(
        config.start_node(&tmp.path().join("a")),
        ReplicationError::Unreachable { .. }
    );
    let message = refused.to_string();
    assert!(
        message.contains("replicas"),
        "the server's reason is reported: {message}"
    );
}

#[actix::test]
async fn a_stream_that_could_lose_records_is_refused() {
    let tmp = TempDir::new().unwrap();
    let cluster = NatsCluster::start(&tmp.path().join("nats"), 1, None).unwrap();
    let addrs: Vec<async_nats::ServerAddr> = cluster.urls().iter().map(|u| u.parse().unwrap()).collect();
    let js = async_nats::jetstream::new(async_nats::connect(addrs).await.unwrap());
    // Created by someone else: deletes allowed, as JetStream's default.
    js.create_stream(async_nats::jetstream::stream::Config {
        name: "LOOSE".into(),
        subjects: vec!["stemedb.log".into()],
        duplicate_window: Duration::from_secs(120),
        ..Default::default()
    })
    .await
    .unwrap();
    let mut config = config(&cluster, "LOOSE");
    config.replication.connect_timeout_ms = 2_000;
    let refused = assert_refused!(
        config.start_node(&tmp.path().join("a")),
        ReplicationError::StreamMismatch { .. }
    );
    assert!(refused.to_string().contains("deletes"), "{refused}");
}

/// Polls `condition` until it holds or `within` passes: for a state that time itself brings
/// about (a fault reported once it has lasted `FETCH_FAULT_AFTER`), which no event announces.
async fn eventually(within: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    let started = Instant::now();
    while !condition() {
        assert!(started.elapsed() < within, "{what} within {within:?}");
        actix_rt::time::sleep(Duration::from_millis(100)).await;
    }
}

#[actix::test]
async fn a_replica_that_cannot_fetch_from_its_stream_reports_it_and_recovers() {
    let tmp = TempDir::new().unwrap();
    let mut cluster = NatsCluster::start(&tmp.path().join("nats"), 1, None).unwrap();
    let node = start(config(&cluster, "FAULT"), &tmp.path().join("a")).await;
    let receipt = node.submit(claim(1, None)).await.unwrap();
    node.wait_indexed(receipt.offset, deadline()).await.unwrap();
    assert_eq!(node.health().unwrap().stalled, None);

    cluster.kill(0).unwrap();
    let within = stemedb_jetstream::FETCH_FAULT_AFTER + Duration::from_secs(30);
    eventually(within, "the fetch fault is reported", || {
        node.health().unwrap().stalled.is_some()
    })
    .await;
    let reason = node.health().unwrap().stalled.unwrap();
    assert!(reason.contains("fetching from the stream has failed"), "{reason}");

    cluster.restart(0).unwrap();
    // The publisher retries until the server is back; once the write is indexed, the node
    // fetches again, and the fault has cleared.
    let receipt = node.submit(claim(2, None)).await.unwrap();
    assert_eq!(receipt.offset, 2);
    node.wait_indexed(receipt.offset, deadline()).await.unwrap();
    assert_eq!(node.health().unwrap().stalled, None);
    node.shutdown().await.unwrap();
}

/// Publishes `payload` on the stream's subject with a plain NATS client, as any client allowed
/// to publish there could; returns its stream sequence.
async fn publish_foreign(js: &async_nats::jetstream::Context, payload: Vec<u8>) -> u64 {
    js.publish("stemedb.log", payload.into())
        .await
        .unwrap()
        .await
        .unwrap()
        .sequence
}

#[actix::test]
async fn foreign_records_on_the_stream_are_rejected_on_every_node_and_ingestion_goes_on() {
    use stemedb::protocol::{LogRecord, TrustChange};
    let tmp = TempDir::new().unwrap();
    let cluster = NatsCluster::start(&tmp.path().join("nats"), 3, None).unwrap();
    let mut config = config(&cluster, "FOREIGN");
    let admin = key(6);
    config.votes.admins = vec![admin.agent_id().to_string()];
    let a = start(config.clone(), &tmp.path().join("a")).await;
    let good = claim(0, None);
    let receipt = a.submit(good.clone()).await.unwrap();
    a.wait_indexed(receipt.offset, deadline()).await.unwrap();

    let client = async_nats::connect(cluster.urls()[0].as_str()).await.unwrap();
    let js = async_nats::jetstream::new(client);
    let mut forged = claim(2, None);
    forged.object = ObjectValue::Integer(-1);
    let mut impostor = Vote::sign(&key(3), good.content_hash(), 1.0, NOW_MS);
    impostor.voter = key(4).agent_id();
    let usurper = TrustChange::sign(&key(5), key(1).agent_id(), 0.0, NOW_MS);
    let nan = Vote::sign(&key(3), good.content_hash(), f32::NAN, NOW_MS);
    let foreign = [
        (LogRecord::Assertion(forged).encode(), "invalid"),
        (LogRecord::Vote(impostor).encode(), "invalid"),
        (LogRecord::Trust(usurper).encode(), "not_admin"),
        (LogRecord::Vote(nan).encode(), "invalid"),
        (vec![1, 0xc1, 0xff], "undecodable"),
        (vec![0x42, 1, 2, 3], "unknown_tag"),
    ];
    let mut sequences = Vec::new();
    for (payload, code) in foreign {
        sequences.push((publish_foreign(&js, payload).await, code));
    }

    // A real write after them is indexed on every node, a new one replaying from sequence 1.
    let b = start(config.clone(), &tmp.path().join("b")).await;
    let later = claim(4, None);
    let receipt = a.submit(later.clone()).await.unwrap();
    for node in [&a, &b] {
        node.wait_indexed(receipt.offset, deadline()).await.unwrap();
        assert_eq!(node.health().unwrap().stalled, None);
        assert!(node.get(&later.content_hash()).unwrap().is_some());
        for (sequence, code) in &sequences {
            let rejection = node.rejection(*sequence).unwrap().expect("rejected");
            assert_eq!(
                rejection.reason.code(),
                *code,
                "at {sequence}: {}",
                rejection.reason
            );
        }
        assert_eq!(node.trust(&key(1).agent_id()).unwrap(), 1.0);
        assert!(node.votes(&good.content_hash(), 10).unwrap().is_empty());
    }
    assert_eq!(a.state_digest().unwrap(), b.state_digest().unwrap());
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}

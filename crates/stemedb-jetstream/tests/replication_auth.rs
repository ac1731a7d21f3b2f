//! A 3-server JetStream cluster whose `nats-server` confs require authentication, with users
//! and permissions (`NatsUser::stemedb_node`: publish on the stream's subject and the
//! JetStream API requests a node needs, stream deletes and purges denied), on loopback:
//! - a node logging in with a password from a file, and one with an nkey seed file, start,
//!   and a write through either is indexed on both;
//! - a node with a wrong password, with no credentials, or with an unknown nkey is refused at
//!   start with `ReplicationError::AuthRefused` ("authorization violation"), well within
//!   `replication.connect_timeout_ms`, not after it;
//! - a plain client logged in as a user without publish permission on the subject cannot add
//!   to the stream: the server answers with a permissions violation and the stream's last
//!   sequence stays;
//! - the node's own user cannot delete or purge the stream.
//!
//! Needs `nats-server` (Debian package `nats-server`; `.ci/run` installs it).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use stemedb_testkit as common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{NOW_MS, deadline, key};
use stemedb::log::LogError;
use stemedb::node::NodeError;
use stemedb::protocol::{Assertion, LogRecord, ObjectValue};
use stemedb_jetstream::{ReplicationError, ReplicationMode};
use stemedb_server::ServerConfig as Config;
use stemedb_server::StartError;
use stemedb_sim::{NatsCluster, NatsOptions, NatsUser};
use tempfile::TempDir;

const STREAM: &str = "AUTH";
const SUBJECT: &str = "stemedb.log";
const NODE_PASSWORD: &str = "node-secret-1";
const READER_PASSWORD: &str = "reader-secret-2";
/// The connect timeout of the nodes that are refused: a refusal must come well before it.
const CONNECT_TIMEOUT_MS: u64 = 8_000;
/// How much later than the connect timeout a refusal may come on a loaded machine (the node
/// waits one second past it for the connecting thread).
const REFUSAL_MARGIN: Duration = Duration::from_secs(2);
/// The JetStream API timeout of the plain clients: a denied request gets no answer, so this
/// is how long each denied request takes.
const CLIENT_REQUEST_TIMEOUT: Duration = Duration::from_secs(1);

/// A cluster requiring authentication, the node user's password file and an nkey seed file.
struct AuthCluster {
    cluster: NatsCluster,
    password_file: PathBuf,
    nkey_seed_file: PathBuf,
}

impl AuthCluster {
    /// Three servers with three users: `node` (password) and an nkey user with a node's
    /// permissions, and `reader`, who may read the stream's info but not publish on it.
    fn start(dir: &Path) -> Self {
        let nkey = nkeys::KeyPair::new_user();
        let reader = NatsUser {
            publish_allow: vec![format!("$JS.API.STREAM.INFO.{STREAM}")],
            subscribe_allow: vec!["_INBOX.>".into()],
            ..NatsUser::password("reader", READER_PASSWORD)
        };
        let options = NatsOptions {
            users: vec![
                NatsUser::password("node", NODE_PASSWORD).stemedb_node(STREAM, SUBJECT),
                NatsUser::nkey(&nkey.public_key()).stemedb_node(STREAM, SUBJECT),
                reader,
            ],
            ..NatsOptions::default()
        };
        let cluster = NatsCluster::start_with(&dir.join("nats"), 3, &options).unwrap();
        let password_file = dir.join("node.password");
        std::fs::write(&password_file, format!("{NODE_PASSWORD}\n")).unwrap();
        let nkey_seed_file = dir.join("node.nk");
        std::fs::write(&nkey_seed_file, nkey.seed().unwrap()).unwrap();
        Self {
            cluster,
            password_file,
            nkey_seed_file,
        }
    }

    /// A node's config, without credentials.
    fn config(&self) -> Config {
        let mut config = Config::default();
        config.replication.mode = ReplicationMode::Jetstream;
        config.replication.servers = self.cluster.urls();
        config.replication.stream = STREAM.to_owned();
        config.replication.subject = SUBJECT.to_owned();
        config.replication.replicas = self.cluster.len();
        config.replication.connect_timeout_ms = CONNECT_TIMEOUT_MS;
        config
    }

    /// A node's config logging in as `node` with the password file.
    fn node_config(&self) -> Config {
        let mut config = self.config();
        config.replication.user = Some("node".into());
        config.replication.password_file = Some(self.password_file.clone());
        config
    }

    /// A plain client logged in as `user`, and the events it receives (permission violations
    /// arrive as `Event::ServerError`).
    async fn client(
        &self,
        user: &str,
        password: &str,
    ) -> (
        async_nats::jetstream::Context,
        tokio::sync::mpsc::UnboundedReceiver<async_nats::Event>,
    ) {
        let (events, received) = tokio::sync::mpsc::unbounded_channel();
        let addrs: Vec<async_nats::ServerAddr> =
            self.cluster.urls().iter().map(|u| u.parse().unwrap()).collect();
        let client = async_nats::ConnectOptions::with_user_and_password(user.into(), password.into())
            .event_callback(move |event| {
                let events = events.clone();
                async move {
                    let _ = events.send(event);
                }
            })
            .connect(addrs)
            .await
            .unwrap();
        let js = async_nats::jetstream::ContextBuilder::new()
            .timeout(CLIENT_REQUEST_TIMEOUT)
            .build(client);
        (js, received)
    }
}

/// Returns the `ReplicationError` that refused a node's start.
fn replication_error(started: Result<stemedb::Node, StartError>) -> ReplicationError {
    let refused = match started {
        Ok(_) => panic!("the node started"),
        Err(refused) => refused,
    };
    match &refused {
        StartError::Node(NodeError::Log(LogError::Backend(backend))) => backend
            .downcast_ref::<ReplicationError>()
            .cloned()
            .unwrap_or_else(|| panic!("not a replication error: {refused}")),
        _ => panic!("not a replication error: {refused}"),
    }
}

/// Waits until `events` brings a permissions violation for a publish on `subject`.
async fn permission_violation(
    events: &mut tokio::sync::mpsc::UnboundedReceiver<async_nats::Event>,
    subject: &str,
) {
    let wanted = format!("permissions violation for publish to \"{subject}\"").to_lowercase();
    let until = tokio::time::Instant::from_std(deadline());
    loop {
        let event = tokio::time::timeout_at(until, events.recv())
            .await
            .unwrap_or_else(|_| panic!("no permissions violation for {subject}"))
            .unwrap();
        if let async_nats::Event::ServerError(error) = &event
            && error.to_string().to_lowercase().contains(&wanted)
        {
            return;
        }
    }
}

fn claim(n: u64) -> Assertion {
    let mut claim = Assertion::new(
        "city:paris",
        "population",
        ObjectValue::Integer(n as i64),
        0.5,
        NOW_MS + n,
    );
    claim.sign(&key(1));
    claim
}

async fn last_sequence(js: &async_nats::jetstream::Context) -> u64 {
    js.get_stream(STREAM)
        .await
        .unwrap()
        .info()
        .await
        .unwrap()
        .state
        .last_sequence
}

#[actix::test]
async fn nodes_with_the_right_credentials_start_and_index_each_others_writes() {
    let tmp = TempDir::new().unwrap();
    let auth = AuthCluster::start(tmp.path());
    let by_password = auth.node_config().start_node(&tmp.path().join("a")).unwrap();
    let mut nkey_config = auth.config();
    nkey_config.replication.nkey_seed_file = Some(auth.nkey_seed_file.clone());
    let by_nkey = nkey_config.start_node(&tmp.path().join("b")).unwrap();

    let first = by_password.submit(claim(1)).await.unwrap();
    let second = by_nkey.submit(claim(2)).await.unwrap();
    assert_eq!((first.offset, second.offset), (1, 2));
    for node in [&by_password, &by_nkey] {
        node.wait_indexed(second.offset, deadline()).await.unwrap();
    }
    assert_eq!(
        by_password.state_digest().unwrap(),
        by_nkey.state_digest().unwrap()
    );
    by_password.shutdown().await.unwrap();
    by_nkey.shutdown().await.unwrap();
}

#[actix::test]
async fn nodes_with_wrong_or_no_credentials_are_refused_at_start_within_the_connect_timeout() {
    let tmp = TempDir::new().unwrap();
    let auth = AuthCluster::start(tmp.path());
    let wrong_password = tmp.path().join("wrong.password");
    std::fs::write(&wrong_password, "not-the-password").unwrap();
    let stranger_seed = tmp.path().join("stranger.nk");
    std::fs::write(&stranger_seed, nkeys::KeyPair::new_user().seed().unwrap()).unwrap();

    let mut wrong = auth.node_config();
    wrong.replication.password_file = Some(wrong_password);
    let mut stranger = auth.config();
    stranger.replication.nkey_seed_file = Some(stranger_seed);
    let cases = [
        ("a wrong password", wrong, "user \"node\""),
        ("no credentials", auth.config(), "no credentials"),
        ("an unknown nkey", stranger, "nkey U"),
    ];
    for (index, (case, config, method)) in cases.into_iter().enumerate() {
        let started = Instant::now();
        let error = replication_error(config.start_node(&tmp.path().join(format!("refused-{index}"))));
        let elapsed = started.elapsed();
        let message = error.to_string();
        assert!(
            matches!(&error, ReplicationError::AuthRefused { method: offered, .. } if offered.starts_with(method)),
            "{case}: {message}"
        );
        assert!(message.contains("authorization violation"), "{case}: {message}");
        assert!(
            elapsed < Duration::from_millis(CONNECT_TIMEOUT_MS) + REFUSAL_MARGIN,
            "{case}: refused after {elapsed:?}"
        );
        println!("{case}: refused in {elapsed:?}: {message}");
    }

    // A missing password file is a startup error naming the setting and the path.
    let mut missing = auth.node_config();
    let absent = tmp.path().join("absent.password");
    missing.replication.password_file = Some(absent.clone());
    match replication_error(missing.start_node(&tmp.path().join("missing"))) {
        ReplicationError::Secret { field, location, .. } => {
            assert_eq!((field, location), ("password_file", absent.display().to_string()));
        }
        other => panic!("expected Secret, got {other}"),
    }
}

#[actix::test]
async fn a_user_without_publish_permission_cannot_add_to_the_stream() {
    let tmp = TempDir::new().unwrap();
    let auth = AuthCluster::start(tmp.path());
    let node = auth.node_config().start_node(&tmp.path().join("a")).unwrap();
    let receipt = node.submit(claim(1)).await.unwrap();
    node.wait_indexed(receipt.offset, deadline()).await.unwrap();

    let (js, mut events) = auth.client("reader", READER_PASSWORD).await;
    let before = last_sequence(&js).await;
    assert_eq!(before, receipt.offset);
    // A valid, signed record: only the permission stands in its way.
    let record = LogRecord::Assertion(claim(2)).encode();
    let published = match js.publish(SUBJECT, record.into()).await {
        Ok(ack) => ack.await.map(|_| ()).map_err(|error| error.to_string()),
        Err(error) => Err(error.to_string()),
    };
    assert!(
        published.is_err(),
        "the stream acknowledged a publish without permission"
    );
    permission_violation(&mut events, SUBJECT).await;
    assert_eq!(last_sequence(&js).await, before, "the stream did not grow");
    node.shutdown().await.unwrap();
}

#[actix::test]
async fn the_node_user_cannot_delete_or_purge_the_stream() {
    let tmp = TempDir::new().unwrap();
    let auth = AuthCluster::start(tmp.path());
    let node = auth.node_config().start_node(&tmp.path().join("a")).unwrap();
    let receipt = node.submit(claim(1)).await.unwrap();
    node.wait_indexed(receipt.offset, deadline()).await.unwrap();

    let (js, mut events) = auth.client("node", NODE_PASSWORD).await;
    assert!(
        js.delete_stream(STREAM).await.is_err(),
        "the node user deleted the stream"
    );
    permission_violation(&mut events, &format!("$JS.API.STREAM.DELETE.{STREAM}")).await;
    let purged = js.get_stream(STREAM).await.unwrap().purge().await;
    assert!(purged.is_err(), "the node user purged the stream");
    permission_violation(&mut events, &format!("$JS.API.STREAM.PURGE.{STREAM}")).await;
    assert_eq!(
        last_sequence(&js).await,
        receipt.offset,
        "the stream keeps its records"
    );

    // The node goes on writing to it.
    let next = node.submit(claim(2)).await.unwrap();
    assert_eq!(next.offset, receipt.offset + 1);
    node.shutdown().await.unwrap();
}

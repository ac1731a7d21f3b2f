//! Replication over TLS, against a real 3-server JetStream cluster whose client connections
//! require TLS, with a certificate from a test CA made by `openssl` for 127.0.0.1:
//! - a node that trusts the CA (`tls_required`, `tls_ca_file`) starts, and its write is
//!   indexed;
//! - a node that does not trust it, and one that asks for no TLS (the servers require it, so
//!   the client upgrades and meets the same certificate), are refused at start within
//!   `replication.connect_timeout_ms`, the error naming the certificate.
//!
//! Needs `nats-server` and `openssl` (Debian packages; `.ci/run` installs them).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use stemedb_testkit as common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{NOW_MS, deadline, key};
use stemedb::protocol::{Assertion, ObjectValue};
use stemedb_jetstream::ReplicationMode;
use stemedb_server::ServerConfig as Config;
use stemedb_sim::{NatsCluster, NatsOptions, NatsTls};
use tempfile::TempDir;

/// The connect timeout of the nodes that are refused.
const CONNECT_TIMEOUT_MS: u64 = 5_000;
/// How much later than the connect timeout a refusal may come on a loaded machine.
const REFUSAL_MARGIN: Duration = Duration::from_secs(3);

/// Runs `openssl` with `args` in `dir`; panics with its output if it fails.
fn openssl(dir: &Path, args: &[&str]) {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl (Debian package openssl)");
    assert!(
        output.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A test CA, and a certificate it issued for 127.0.0.1: (CA, certificate, key) files.
fn certificates(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut ca = vec!["req", "-x509"];
    ca.extend(ec);
    ca.extend([
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=stemedb test CA",
    ]);
    ca.extend([
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign",
    ]);
    openssl(dir, &ca);
    let mut request = vec!["req"];
    request.extend(ec);
    request.extend([
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    openssl(dir, &request);
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "server.ext",
        ],
    );
    (dir.join("ca.pem"), dir.join("server.pem"), dir.join("server.key"))
}

fn config(cluster: &NatsCluster) -> Config {
    let mut config = Config::default();
    config.replication.mode = ReplicationMode::Jetstream;
    config.replication.servers = cluster.urls();
    config.replication.stream = "TLS".to_owned();
    config.replication.replicas = cluster.len();
    config.replication.connect_timeout_ms = CONNECT_TIMEOUT_MS;
    config
}

fn claim(n: i64) -> Assertion {
    let mut claim = Assertion::new("tls", "p", ObjectValue::Integer(n), 0.5, NOW_MS);
    claim.sign(&key(1));
    claim
}

#[actix::test]
async fn a_node_that_trusts_the_servers_ca_replicates_over_tls_and_others_are_refused() {
    let tmp = TempDir::new().unwrap();
    let (ca, cert, key_file) = certificates(tmp.path());
    let options = NatsOptions {
        tls: Some(NatsTls {
            cert_file: cert,
            key_file,
            verify_clients_ca_file: None,
        }),
        ..NatsOptions::default()
    };
    let cluster = NatsCluster::start_with(&tmp.path().join("nats"), 3, &options).unwrap();

    let mut trusted = config(&cluster);
    trusted.replication.tls_required = true;
    trusted.replication.tls_ca_file = Some(ca);
    let node = trusted.start_node(&tmp.path().join("a")).unwrap();
    let receipt = node.submit(claim(1)).await.unwrap();
    node.wait_indexed(receipt.offset, deadline()).await.unwrap();
    assert!(node.get(&claim(1).content_hash()).unwrap().is_some());
    node.shutdown().await.unwrap();

    // Without the CA, the servers' certificate is not trusted; without TLS, the servers
    // refuse the connection.
    let mut untrusting = config(&cluster);
    untrusting.replication.tls_required = true;
    for (index, (case, config)) in [("no CA", untrusting), ("no TLS", config(&cluster))]
        .into_iter()
        .enumerate()
    {
        let started = Instant::now();
        let refused = config.start_node(&tmp.path().join(format!("refused-{index}")));
        let elapsed = started.elapsed();
        match refused {
            Ok(node) => {
                let _ = node.shutdown().await;
                panic!("{case}: the node started");
            }
            Err(error) => {
                println!("{case}: refused in {elapsed:?}: {error}");
                assert!(error.to_string().contains("certificate"), "{case}: {error}");
            }
        }
        assert!(
            elapsed < Duration::from_millis(CONNECT_TIMEOUT_MS) + REFUSAL_MARGIN,
            "{case}: refused after {elapsed:?}"
        );
    }
}

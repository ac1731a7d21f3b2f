//! `stemedb proof verify` and `stemedb checkpoint compare` against real servers over loopback
//! (issue 25): a receipt fetched with `proof=true` verifies offline with the node's key and is
//! refused, by name, when tampered with or checked with another node's key; three nodes, two
//! fed the same log and one fed a different one, are compared: the two agree (also when one is
//! ahead), the third is named as diverged, with different roots at the same size.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use stemedb::protocol::{Assertion, ObjectValue, Vote};
use stemedb_server::ServerConfig as Config;
use stemedb_server::keys::{ADMIN_TOKEN_FILE, KeyStore};
use stemedb_server::{Api, start};
use stemedb_testkit as common;

use common::cli::stemedb;
use common::{NOW_MS, deadline, key};

/// A node serving its API on a loopback port.
struct Served {
    node: stemedb::node::Node,
    base: String,
    token: String,
    stopper: stemedb_server::Stopper,
}

async fn serve(dir: &std::path::Path) -> Served {
    let mut config = Config::default();
    config.http.bind = "127.0.0.1:0".to_owned();
    let node = config.start_node(&dir.join("data")).unwrap();
    let (keys, _) = KeyStore::open(&dir.join("api")).unwrap();
    let token = std::fs::read_to_string(dir.join("api").join(ADMIN_TOKEN_FILE))
        .unwrap()
        .trim()
        .to_owned();
    let server = start(
        Api::new(node.clone(), Arc::new(keys), config.http.clone()).unwrap(),
        false,
    )
    .unwrap();
    let base = format!("http://{}", server.addrs[0]);
    let stopper = server.stopper.clone();
    actix::spawn(server.running);
    Served {
        node,
        base,
        token,
        stopper,
    }
}

fn claim(subject: &str, i: u64) -> Assertion {
    let mut a = Assertion::new(
        subject,
        "population",
        ObjectValue::Integer(i as i64),
        0.5,
        NOW_MS + i,
    );
    a.sign(&key((i % 4) as u8 + 1));
    a
}

async fn write(node: &stemedb::node::Node, records: &[Assertion], votes: bool) {
    let mut last = 0;
    for a in records {
        let receipt = node.submit(a.clone()).await.unwrap();
        last = last.max(receipt.offset);
        if votes {
            let vote = Vote::sign(&key(30), receipt.hash, 1.0 + (receipt.offset % 7) as f32, NOW_MS);
            last = last.max(node.cast_vote(vote).await.unwrap().offset);
        }
    }
    node.wait_indexed(last, deadline()).await.unwrap();
}

/// Runs `stemedb` with `args` off the executor; returns (success, stdout + stderr).
async fn cli(args: Vec<String>) -> (bool, String) {
    actix_rt::task::spawn_blocking(move || {
        let out = stemedb().args(&args).output().unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    })
    .await
    .unwrap()
}

#[test]
fn receipts_verify_offline_and_a_diverged_node_is_named() {
    let root = tempfile::TempDir::new().unwrap();
    let path = root.path().to_owned();
    actix::System::new().block_on(async move {
        let (a, b, c) = (
            serve(&path.join("a")).await,
            serve(&path.join("b")).await,
            serve(&path.join("c")).await,
        );
        let shared: Vec<Assertion> = (0..40).map(|i| claim("city:paris", i)).collect();
        let forked: Vec<Assertion> = (0..40)
            .map(|i| claim(if i < 20 { "city:paris" } else { "city:rome" }, i))
            .collect();
        write(&a.node, &shared, true).await;
        write(&c.node, &shared, true).await;
        write(&b.node, &forked, true).await;

        // A receipt over HTTP, verified offline.
        let client = awc::Client::default();
        let url = format!(
            "{}/v1/resolve?subject=city:paris&predicate=population&proof=true",
            a.base
        );
        let mut response = client
            .get(url)
            .insert_header(("Authorization", format!("Bearer {}", a.token)))
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success(), "{}", response.status());
        let body = response.body().limit(64 << 20).await.unwrap();
        let answer: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert!(answer["receipt"].is_object(), "{answer}");
        let file = path.join("answer.json");
        std::fs::write(&file, &body).unwrap();
        let key_a = a.node.checkpoint_verifier().to_string();
        let (ok, out) = cli(vec![
            "proof".into(),
            "verify".into(),
            file.display().to_string(),
            "--key".into(),
            key_a.clone(),
        ])
        .await;
        assert!(ok, "{out}");
        let winner = answer["winner"].as_str().unwrap();
        assert!(out.contains(&format!("winner {winner}")), "{out}");
        // The key from the node's .pub file works too.
        let pub_file = path.join("a/data/checkpoint.key.pub");
        let (ok, out) = cli(vec![
            "proof".into(),
            "verify".into(),
            file.display().to_string(),
            "--key".into(),
            pub_file.display().to_string(),
        ])
        .await;
        assert!(ok, "{out}");
        // Tampered: another score. Checked with another node's key.
        let mut tampered = answer.clone();
        let score = tampered["receipt"]["result"]["ranked"][0]["score"]
            .as_f64()
            .unwrap();
        tampered["receipt"]["result"]["ranked"][0]["score"] = serde_json::json!(score + 0.5);
        let bad = path.join("tampered.json");
        std::fs::write(&bad, serde_json::to_vec(&tampered).unwrap()).unwrap();
        let (ok, out) = cli(vec![
            "proof".into(),
            "verify".into(),
            bad.display().to_string(),
            "--key".into(),
            key_a.clone(),
        ])
        .await;
        assert!(!ok && out.contains("the answer differs from the replay"), "{out}");
        let key_b = b.node.checkpoint_verifier().to_string();
        let (ok, out) = cli(vec![
            "proof".into(),
            "verify".into(),
            file.display().to_string(),
            "--key".into(),
            key_b,
        ])
        .await;
        assert!(!ok && out.contains("checkpoint"), "{out}");

        // Compare: a and c agree; then a is ahead of c, and they still agree.
        let compare = |urls: Vec<&Served>| {
            let mut args = vec!["checkpoint".to_owned(), "compare".to_owned()];
            args.extend(urls.iter().map(|s| s.base.clone()));
            for s in &urls {
                args.push("--token".into());
                args.push(s.token.clone());
            }
            cli(args)
        };
        let (ok, out) = compare(vec![&a, &c]).await;
        assert!(ok && out.contains("consistent: 2 node(s)"), "{out}");
        write(&a.node, &[claim("city:paris", 100)], false).await;
        let (ok, out) = compare(vec![&a, &c]).await;
        assert!(ok, "a node ahead is consistent: {out}");
        // b was fed another log: named, with different roots at c's size.
        let (ok, out) = compare(vec![&a, &b, &c]).await;
        assert!(!ok, "{out}");
        assert!(out.contains(&format!("DIVERGED: {}", b.base)), "{out}");
        assert!(
            !out.contains(&format!("DIVERGED: {}", a.base))
                && !out.contains(&format!("DIVERGED: {}", c.base)),
            "{out}"
        );
        assert!(out.contains("different roots at the same size"), "{out}");
        assert!(out.contains("not consistent from size"), "{out}");
        for s in [a, b, c] {
            s.stopper.stop().await;
            s.node.shutdown().await.unwrap();
        }
    });
}

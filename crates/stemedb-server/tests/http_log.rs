//! The verifiable log over real HTTP (issue 25): the signed checkpoint verifies with the served
//! key; inclusion and consistency proofs verify against the signed roots; the hash tiles are
//! the tree's; requests outside the tree are 404 and malformed ones 400; and an independent
//! implementation from another ecosystem — Go's `golang.org/x/mod/sumdb/tlog` and `note`, run
//! by `scripts/tlog-verify/main.go` — verifies the checkpoints, the tiles, the inclusion proofs
//! of records it hashes itself, and the consistency proof, while refusing a flipped bit.
//!
//! Needs Go and x/mod: `apt-get install -y golang-go golang-golang-x-mod-dev` (CI installs
//! them); without them the test fails, naming that command.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use stemedb_testkit as common;

use std::path::PathBuf;
use std::process::Command;

use awc::http::StatusCode;
use common::http::{Served, with_server};
use common::{NOW_MS, deadline, key};
use stemedb::protocol::merkle::{MerkleHash, leaf_hash, root_of, verify_consistency, verify_inclusion};
use stemedb::protocol::note::{Checkpoint, NoteVerifier};
use stemedb::protocol::{Assertion, ObjectValue};
use stemedb_server::ServerConfig as Config;
use stemedb_server::keys::Role;

/// The GOPATH where Debian's golang-golang-x-mod-dev puts x/mod.
const GOPATH: &str = "/usr/share/gocode";

async fn write(s: &Served, from: u64, count: u64) {
    let mut last = 0;
    for i in from..from + count {
        let mut a = Assertion::new(
            format!("s{}", i % 11),
            "p",
            ObjectValue::Integer(i as i64),
            0.5,
            NOW_MS + i,
        );
        a.sign(&key(1));
        last = s.node.submit(a).await.unwrap().offset;
    }
    s.node.wait_indexed(last, deadline()).await.unwrap();
}

fn unhex(value: &serde_json::Value) -> MerkleHash {
    hex::decode(value.as_str().unwrap()).unwrap().try_into().unwrap()
}

fn path_of(body: &serde_json::Value) -> Vec<MerkleHash> {
    body["path"].as_array().unwrap().iter().map(unhex).collect()
}

#[test]
fn the_log_is_served_verifiably_and_go_tlog_verifies_it() {
    with_server(Config::default(), |s| async move {
        let reader = s.key(&[Role::Read], &[]);
        let key_text = String::from_utf8(s.get("/v1/checkpoint/key", &reader).await.raw).unwrap();
        let verifier = NoteVerifier::parse(&key_text).unwrap();
        assert_eq!(verifier, s.node.checkpoint_verifier());
        write(&s, 0, 300).await;
        let first = s.get("/v1/checkpoint", &reader).await;
        assert_eq!(first.status, StatusCode::OK);
        assert!(
            first.content_type.starts_with("text/plain"),
            "{}",
            first.content_type
        );
        let old_note = String::from_utf8(first.raw).unwrap();
        let old = Checkpoint::open(&old_note, &verifier).unwrap();
        write(&s, 300, 400).await;
        let now_note = String::from_utf8(s.get("/v1/log/checkpoint", &reader).await.raw).unwrap();
        let now = Checkpoint::open(&now_note, &verifier).unwrap();
        assert!(
            now.size >= 700 && old.size >= 300 && old.size < now.size,
            "{} then {}",
            old.size,
            now.size
        );
        // Every leaf's bytes, through the node: the roots are theirs.
        let records: Vec<Vec<u8>> = (0..now.size)
            .map(|i| s.node.leaf_record(i).unwrap().unwrap().to_vec())
            .collect();
        let leaves: Vec<MerkleHash> = records.iter().map(|r| leaf_hash(r)).collect();
        assert_eq!(root_of(&leaves), now.root);
        assert_eq!(root_of(&leaves[..old.size as usize]), old.root);
        // Inclusion by index and by content hash, consistency, tiles.
        for index in [0, 1, 255, 256, 511, now.size - 1] {
            let body = s
                .get(
                    &format!("/v1/proofs/inclusion?index={index}&size={}", now.size),
                    &reader,
                )
                .await
                .body;
            assert_eq!(unhex(&body["leaf_hash"]), leaves[index as usize]);
            verify_inclusion(
                &leaves[index as usize],
                index,
                now.size,
                &path_of(&body),
                &now.root,
            )
            .unwrap();
        }
        let stored = s
            .node
            .list(&stemedb::node::ListQuery::subject("s3"))
            .unwrap()
            .assertions[0]
            .clone();
        let body = s
            .get(&format!("/v1/proofs/inclusion/{}", stored.hash), &reader)
            .await
            .body;
        let (index, size) = (body["index"].as_u64().unwrap(), body["size"].as_u64().unwrap());
        assert_eq!(unhex(&body["root"]), s.node.tree_root(size).unwrap());
        verify_inclusion(
            &unhex(&body["leaf_hash"]),
            index,
            size,
            &path_of(&body),
            &unhex(&body["root"]),
        )
        .unwrap();
        let body = s
            .get(
                &format!("/v1/proofs/consistency?old={}&new={}", old.size, now.size),
                &reader,
            )
            .await
            .body;
        verify_consistency(old.size, now.size, &old.root, &now.root, &path_of(&body)).unwrap();
        let tile = s.get("/v1/log/tile/0/000", &reader).await;
        assert_eq!(tile.status, StatusCode::OK);
        assert_eq!(tile.raw, leaves[..256].concat());
        let partial = s.get("/v1/log/tile/0/002.p/5", &reader).await;
        assert_eq!(partial.raw, leaves[512..517].concat());
        let upper = s.get("/v1/log/tile/1/000.p/2", &reader).await;
        assert_eq!(
            upper.raw,
            [root_of(&leaves[..256]), root_of(&leaves[256..512])].concat()
        );
        // Outside the tree: 404; malformed: 400 or 404 naming the form; no key: 401.
        let far = now.size + 1_000;
        for path in [
            format!("/v1/proofs/inclusion?index={far}"),
            format!("/v1/proofs/consistency?old={far}"),
            format!("/v1/proofs/inclusion/{}", "ab".repeat(32)),
            "/v1/log/tile/0/x001/000".to_owned(),
            "/v1/log/tile/0/3".to_owned(),
            "/v1/log/tile/0/000.p/0".to_owned(),
        ] {
            assert_eq!(
                s.get(&path, &reader).await.status,
                StatusCode::NOT_FOUND,
                "{path}"
            );
        }
        for path in [
            "/v1/proofs/inclusion",
            "/v1/proofs/inclusion?index=x",
            "/v1/proofs/inclusion/zz",
        ] {
            assert_eq!(
                s.get(path, &reader).await.status,
                StatusCode::BAD_REQUEST,
                "{path}"
            );
        }
        let anonymous = s.send("GET", "/v1/checkpoint", None, None, Vec::new()).await;
        assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);

        // Go's tlog and note packages verify it all.
        let dir = tempfile::TempDir::new().unwrap();
        let old_file = dir.path().join("old.note");
        std::fs::write(&old_file, &old_note).unwrap();
        let records_file = dir.path().join("records");
        let lines: String = [0, 1, 2, 255, 256, 257, old.size - 1, old.size, now.size - 1]
            .iter()
            .map(|&i| format!("{i} {}\n", hex::encode(&records[i as usize])))
            .collect();
        std::fs::write(&records_file, lines).unwrap();
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/tlog-verify/main.go");
        let (base, token, key_text) = (s.base.clone(), reader.clone(), key_text.trim().to_owned());
        let output = actix_web::rt::task::spawn_blocking(move || {
            Command::new("go")
                .arg("run")
                .arg(&script)
                .args(["-url", &base, "-token", &token, "-key", &key_text])
                .arg("-records")
                .arg(&records_file)
                .arg("-old")
                .arg(&old_file)
                .env("GO111MODULE", "off")
                .env("GOPATH", GOPATH)
                .env("GOFLAGS", "")
                .output()
        })
        .await
        .unwrap()
        .unwrap_or_else(|e| {
            panic!("cannot run go ({e}): apt-get install -y golang-go golang-golang-x-mod-dev")
        });
        let (stdout, stderr) = (
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
        );
        assert!(output.status.success(), "Go's tlog refused: {stdout}{stderr}");
        assert!(
            stdout.starts_with("ok:") && stdout.contains("9 inclusion proofs verified"),
            "{stdout}"
        );
        eprintln!("{stdout}");
    });
}

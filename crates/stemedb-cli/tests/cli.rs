//! The `stemedb` binary, run for real: `keygen`, `sign assertion|vote|trust` and `verify`.
//! What `sign` prints verifies with the library and with `stemedb verify`; a tampered copy
//! fails with a clear message and a non-zero exit. A trust change is signed and verified only
//! when the configuration lists its signer in `votes.admins`, as a node requires.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use stemedb_testkit as common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::cli::{admins_config, keygen, stemedb};
use predicates::prelude::PredicateBooleanExt;
use stemedb::protocol::{
    Assertion, Limits, TrustChange, Vote, now_ms, validate_assertion, validate_trust, validate_vote,
};
use tempfile::TempDir;

fn sign_assertion(keys: &[&Path], extra: &[&str]) -> String {
    let mut cmd = stemedb();
    cmd.args([
        "sign",
        "assertion",
        "--subject",
        "city:paris",
        "--predicate",
        "population",
    ]);
    for key in keys {
        cmd.arg("--key").arg(key);
    }
    let out = cmd.args(extra).assert().success();
    String::from_utf8(out.get_output().stdout.clone()).unwrap()
}

fn verify(input: &str) -> assert_cmd::assert::Assert {
    stemedb().arg("verify").write_stdin(input.to_owned()).assert()
}

#[test]
fn keygen_writes_a_private_key_file_and_refuses_to_overwrite() {
    let dir = TempDir::new().unwrap();
    let (path, agent) = keygen(&dir, "agent.key");
    assert_eq!(agent.len(), 64, "prints the agent id: {agent}");
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let before = std::fs::read(&path).unwrap();
    stemedb()
        .arg("keygen")
        .arg("--out")
        .arg(&path)
        .assert()
        .code(1)
        .stderr(predicates::str::contains("already exists; refusing to overwrite"));
    assert_eq!(
        std::fs::read(&path).unwrap(),
        before,
        "the existing key is untouched"
    );
}

#[test]
fn signed_assertion_verifies_with_library_and_cli() {
    let dir = TempDir::new().unwrap();
    let (key, agent) = keygen(&dir, "a.key");
    let json = sign_assertion(&[&key], &["--integer", "2102650", "--confidence", "0.9"]);
    let assertion = Assertion::from_json(json.trim()).unwrap();
    let hash = validate_assertion(&assertion, &Limits::default(), now_ms()).unwrap();
    assert_eq!(assertion.signatures[0].agent.to_string(), agent);
    verify(&json)
        .success()
        .stdout(predicates::str::contains(format!("valid assertion {hash}")))
        .stdout(predicates::str::contains(agent));
}

#[test]
fn tampered_assertion_fails_verification_clearly() {
    let dir = TempDir::new().unwrap();
    let (key, _) = keygen(&dir, "a.key");
    let json = sign_assertion(&[&key], &["--integer", "2102650", "--confidence", "0.9"]);
    for (from, to) in [
        ("2102650", "2102651"),
        ("0.9", "0.8"),
        ("\"active\"", "\"retracted\""),
        ("paris", "lyon"),
    ] {
        assert!(json.contains(from), "fixture contains {from}");
        let tampered = json.replace(from, to);
        assert!(
            Assertion::from_json(tampered.trim())
                .map(|a| validate_assertion(&a, &Limits::default(), now_ms()).is_err())
                .unwrap()
        );
        verify(&tampered)
            .code(1)
            .stderr(predicates::str::contains("invalid record: signature of agent"))
            .stderr(predicates::str::contains("does not verify"));
    }
}

#[test]
fn cosigned_assertion_with_parent_and_lifecycle() {
    let dir = TempDir::new().unwrap();
    let (a, agent_a) = keygen(&dir, "a.key");
    let (b, agent_b) = keygen(&dir, "b.key");
    let parent = Assertion::from_json(sign_assertion(&[&a], &["--text", "x"]).trim()).unwrap();
    let parent_hash = parent.content_hash().to_string();
    let json = sign_assertion(
        &[&a, &b],
        &[
            "--ref",
            "city/london",
            "--lifecycle",
            "deprecated",
            "--parent",
            &parent_hash,
            "--pretty",
        ],
    );
    let assertion = Assertion::from_json(&json).unwrap();
    assert_eq!(assertion.signatures.len(), 2);
    assert_eq!(assertion.parent, Some(parent.content_hash()));
    verify(&json)
        .success()
        .stdout(predicates::str::contains("2 signature(s)"))
        .stdout(predicates::str::contains(agent_a).and(predicates::str::contains(agent_b)));
}

#[test]
fn signed_vote_verifies_and_a_tampered_weight_fails() {
    let dir = TempDir::new().unwrap();
    let (key, agent) = keygen(&dir, "v.key");
    let target = "ab".repeat(32);
    let out = stemedb()
        .args(["sign", "vote", "--assertion", &target, "--weight", "2.5", "--key"])
        .arg(&key)
        .assert()
        .success();
    let json = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    let vote = Vote::from_json(json.trim()).unwrap();
    assert_eq!(vote.voter.to_string(), agent);
    assert!(validate_vote(&vote, &Limits::default(), now_ms()).is_ok());
    verify(&json)
        .success()
        .stdout(predicates::str::contains("valid vote"));
    verify(&json.replace("2.5", "25.0"))
        .code(1)
        .stderr(predicates::str::contains("does not verify"));
}

/// Runs `stemedb --config CONFIG sign trust --key KEY ARGS...`.
fn sign_trust(config: &Path, key: &Path, args: &[&str]) -> assert_cmd::assert::Assert {
    let mut cmd = stemedb();
    cmd.arg("--config").arg(config);
    cmd.args(["sign", "trust", "--key"]).arg(key).args(args).assert()
}

/// Runs `stemedb --config CONFIG verify` on `input`.
fn verify_with(config: &Path, input: &str) -> assert_cmd::assert::Assert {
    let mut cmd = stemedb();
    cmd.arg("--config").arg(config);
    cmd.arg("verify").write_stdin(input.to_owned()).assert()
}

#[test]
fn signed_trust_change_verifies_and_a_tampered_one_fails() {
    let dir = TempDir::new().unwrap();
    let (admin_key, admin) = keygen(&dir, "admin.key");
    let (_, rated) = keygen(&dir, "rated.key");
    let (_, other) = keygen(&dir, "other.key");
    let config = admins_config(&dir, "admins.toml", &[&admin]);
    let timestamp_ms = now_ms() - 1000;
    let when = timestamp_ms.to_string();
    let args = ["--agent", &rated, "--factor", "2.5", "--timestamp-ms", &when];
    let out = sign_trust(&config, &admin_key, &args).success();
    let json = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    let change = TrustChange::from_json(json.trim()).unwrap();
    assert_eq!(change.admin.to_string(), admin);
    assert_eq!(change.agent.to_string(), rated);
    assert_eq!((change.factor, change.timestamp_ms), (2.5, timestamp_ms));
    let hash = validate_trust(&change, &Limits::default(), now_ms()).unwrap();
    verify_with(&config, &json)
        .success()
        .stdout(predicates::str::contains(format!(
            "valid trust change {hash}: administrator {admin} sets the trust factor of agent {rated} to 2.5"
        )));
    for (from, to) in [
        ("\"factor\":2.5", "\"factor\":25.0"),
        (rated.as_str(), other.as_str()),
        (&*format!("\"timestamp_ms\":{timestamp_ms}"), "\"timestamp_ms\":0"),
    ] {
        assert!(json.contains(from), "fixture contains {from}");
        verify_with(&config, &json.replace(from, to))
            .code(1)
            .stderr(predicates::str::contains(format!(
                "invalid record: signature of agent {admin}"
            )))
            .stderr(predicates::str::contains("does not verify"));
    }
}

#[test]
fn trust_change_by_a_non_admin_is_refused_by_sign_and_verify() {
    let dir = TempDir::new().unwrap();
    let (admin_key, admin) = keygen(&dir, "admin.key");
    let (outsider_key, outsider) = keygen(&dir, "outsider.key");
    let (_, rated) = keygen(&dir, "rated.key");
    let config = admins_config(&dir, "admins.toml", &[&admin]);
    sign_trust(&config, &outsider_key, &["--agent", &rated, "--factor", "2"])
        .code(1)
        .stdout(predicates::str::is_empty())
        .stderr(predicates::str::contains(format!(
            "trust change signed by {outsider}, who is not listed in votes.admins (1 administrator(s) configured)"
        )));
    // The built-in configuration lists no administrators: sign says so rather than printing a
    // change that no node on it would admit.
    stemedb()
        .args(["sign", "trust", "--agent", &rated, "--factor", "2", "--key"])
        .arg(&admin_key)
        .assert()
        .code(1)
        .stdout(predicates::str::is_empty())
        .stderr(predicates::str::contains("(0 administrator(s) configured)"))
        .stderr(predicates::str::contains("pass --config"));
    // A validly signed change is still refused by verify under a configuration whose
    // administrators do not include its signer.
    let out = sign_trust(&config, &admin_key, &["--agent", &rated, "--factor", "2"]).success();
    let json = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    let others = admins_config(&dir, "others.toml", &[&outsider]);
    verify_with(&others, &json)
        .code(1)
        .stderr(predicates::str::contains(format!(
            "trust change signed by {admin}, who is not listed in votes.admins"
        )));
    verify(&json)
        .code(1)
        .stderr(predicates::str::contains("(0 administrator(s) configured)"));
    verify_with(&config, &json).success();
}

#[test]
fn trust_factor_out_of_range_is_refused_by_sign() {
    let dir = TempDir::new().unwrap();
    let (admin_key, admin) = keygen(&dir, "admin.key");
    let (_, rated) = keygen(&dir, "rated.key");
    let config = admins_config(&dir, "admins.toml", &[&admin]);
    for (factor, message) in [
        ("-1", "trust factor -1 is outside [0, 1000]"),
        ("-0", "trust factor -0 is outside [0, 1000]"),
        ("1000.5", "trust factor 1000.5 is outside [0, 1000]"),
        ("NaN", "trust factor NaN is not a finite number"),
        ("inf", "trust factor inf is not a finite number"),
    ] {
        sign_trust(&config, &admin_key, &["--agent", &rated, "--factor", factor])
            .code(1)
            .stdout(predicates::str::is_empty())
            .stderr(predicates::str::contains(format!("invalid record: {message}")));
    }
    for factor in ["0", "1000"] {
        sign_trust(&config, &admin_key, &["--agent", &rated, "--factor", factor]).success();
    }
    // An agent id that is not 64 hex digits is a usage error, named by clap.
    sign_trust(&config, &admin_key, &["--agent", "abc", "--factor", "1"])
        .code(2)
        .stderr(predicates::str::contains(
            "invalid value 'abc' for '--agent <AGENT>'",
        ));
}

#[test]
fn over_limit_input_is_refused_with_the_named_rule() {
    let dir = TempDir::new().unwrap();
    let (key, _) = keygen(&dir, "a.key");
    stemedb()
        .args([
            "sign",
            "assertion",
            "--predicate",
            "p",
            "--bool",
            "true",
            "--subject",
        ])
        .arg("s".repeat(1025))
        .arg("--key")
        .arg(&key)
        .assert()
        .code(1)
        .stderr(predicates::str::contains(
            "subject is 1025 bytes; the limit is 1024 bytes",
        ));
    stemedb()
        .args([
            "sign",
            "vote",
            "--assertion",
            &"00".repeat(32),
            "--weight",
            "0",
            "--key",
        ])
        .arg(&key)
        .assert()
        .code(1)
        .stderr(predicates::str::contains("vote weight 0 is outside (0, 100]"));
}

#[test]
fn config_file_limits_apply_and_bad_config_is_reported() {
    let dir = TempDir::new().unwrap();
    let (key, _) = keygen(&dir, "a.key");
    let config = dir.path().join("tight.toml");
    std::fs::write(&config, "[limits]\nsubject_bytes_max = 4\n").unwrap();
    stemedb()
        .arg("--config")
        .arg(&config)
        .args([
            "sign",
            "assertion",
            "--subject",
            "city:paris",
            "--predicate",
            "p",
            "--bool",
            "true",
            "--key",
        ])
        .arg(&key)
        .assert()
        .code(1)
        .stderr(predicates::str::contains("the limit is 4 bytes"));
    std::fs::write(&config, "[limits]\nsubjct_bytes_max = 4\n").unwrap();
    stemedb()
        .arg("--config")
        .arg(&config)
        .args(["verify"])
        .write_stdin("{}")
        .assert()
        .code(1)
        .stderr(predicates::str::contains("subjct_bytes_max"));
}

#[test]
fn key_file_readable_by_others_is_refused() {
    let dir = TempDir::new().unwrap();
    let (key, _) = keygen(&dir, "a.key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    stemedb()
        .args(["sign", "vote", "--assertion", &"00".repeat(32), "--key"])
        .arg(&key)
        .assert()
        .code(1)
        .stderr(predicates::str::contains("accessible by other users (mode 0644)"));
}

#[test]
fn malformed_input_is_reported_not_panicked_on() {
    verify("not json")
        .code(1)
        .stderr(predicates::str::contains("input is not JSON"));
    verify("{\"subject\": 5}")
        .code(1)
        .stderr(predicates::str::contains("malformed JSON"));
    let dir = TempDir::new().unwrap();
    let (key, _) = keygen(&dir, "a.key");
    let json = sign_assertion(&[&key], &["--bool", "true"]);
    verify(&json.replacen('{', "{\"sneaky\":true,", 1))
        .code(1)
        .stderr(predicates::str::contains("unknown field `sneaky`"));
}

#[test]
fn wal_verify_reports_corruption_and_inspect_lists_records() {
    use stemedb::storage::journal::Journal;
    use stemedb::storage::journal::layout::SEGMENT_HEADER_BYTES;
    // Small batches, so that damage followed by a few KiB of records is mid-log rather than a
    // torn last batch.
    let root = TempDir::new().unwrap();
    let config_path = root.path().join("small.toml");
    std::fs::write(
        &config_path,
        "[limits]\nrecord_bytes_max = 1024\n[journal]\nrecord_bytes_max = 1025\ngroup_commit_batch_bytes_max = 1025\nsegment_size_bytes = 65536\n",
    )
    .unwrap();
    let config = stemedb::Config::load(Some(&config_path)).unwrap();
    let dir = root.path().join("journal");
    let offsets: Vec<u64> = {
        let journal = Journal::open(&dir, config.journal.clone()).unwrap();
        (0..40u8).map(|n| journal.append(vec![n; 50]).unwrap()).collect()
    };
    let stemedb = || {
        let mut cmd = stemedb();
        cmd.arg("--config").arg(&config_path);
        cmd
    };
    stemedb()
        .args(["wal", "verify"])
        .arg(&dir)
        .assert()
        .success()
        .stdout(
            predicates::str::contains("40 valid record(s)").and(predicates::str::contains("ok: no defects")),
        );
    stemedb()
        .args([
            "wal",
            "inspect",
            "--from",
            &offsets[3].to_string(),
            "--limit",
            "1",
        ])
        .arg(&dir)
        .assert()
        .success()
        .stdout(
            predicates::str::contains(format!("{}", offsets[3])).and(predicates::str::contains("0303030303")),
        );
    let segment = dir.join(format!("{:020}.wal", 0));
    let mut bytes = std::fs::read(&segment).unwrap();
    bytes[SEGMENT_HEADER_BYTES + offsets[2] as usize + 50] ^= 0x10;
    std::fs::write(&segment, &bytes).unwrap();
    stemedb()
        .args(["wal", "verify"])
        .arg(&dir)
        .assert()
        .code(1)
        .stdout(predicates::str::contains("mid-log corruption: segment"))
        .stdout(predicates::str::contains(format!("offset {}", offsets[2])))
        .stderr(predicates::str::contains("1 defect(s) found"));
    stemedb()
        .args(["wal", "repair"])
        .arg(&dir)
        .assert()
        .success()
        .stdout(predicates::str::contains("quarantined 1 region(s)"));
    stemedb()
        .args(["wal", "inspect"])
        .arg(&dir)
        .assert()
        .success()
        .stdout(predicates::str::contains(offsets[39].to_string()));
}

#[test]
fn wal_verify_and_repair_reach_damage_in_sealed_segments() {
    use stemedb::storage::journal::Journal;
    use stemedb::storage::journal::layout::SEGMENT_HEADER_BYTES;
    // Small segments: the damage lies in a sealed segment, which opening does not read.
    let root = TempDir::new().unwrap();
    let config_path = root.path().join("small.toml");
    std::fs::write(&config_path, "[journal]\nsegment_size_bytes = 4096\n").unwrap();
    let config = stemedb::Config::load(Some(&config_path)).unwrap();
    let dir = root.path().join("journal");
    let offsets: Vec<u64> = {
        let journal = Journal::open(&dir, config.journal.clone()).unwrap();
        (0..100u8)
            .map(|n| journal.append(vec![n; 200]).unwrap())
            .collect()
    };
    let segment = dir.join(format!("{:020}.wal", 0));
    let mut bytes = std::fs::read(&segment).unwrap();
    bytes[SEGMENT_HEADER_BYTES + offsets[3] as usize + 100] ^= 0x01;
    std::fs::write(&segment, &bytes).unwrap();
    let stemedb = || {
        let mut cmd = stemedb();
        cmd.arg("--config").arg(&config_path);
        cmd
    };
    stemedb()
        .args(["wal", "verify"])
        .arg(&dir)
        .assert()
        .code(1)
        .stdout(predicates::str::contains("trailer mismatch: segment"))
        .stdout(predicates::str::contains(format!(
            "mid-log corruption: segment {}",
            segment.display()
        )))
        .stdout(predicates::str::contains(format!("offset {}", offsets[3])));
    stemedb()
        .args(["wal", "repair"])
        .arg(&dir)
        .assert()
        .success()
        .stdout(predicates::str::contains(format!(
            "quarantined offset {}",
            offsets[3]
        )));
    stemedb()
        .args(["wal", "verify"])
        .arg(&dir)
        .assert()
        .code(1)
        .stdout(predicates::str::contains(
            "mid-log corruption (already quarantined)",
        ));
}

//! Trust changes through the journal: an administrator listed in `votes.admins` signs a
//! `TrustChange`; anyone else is refused at submission and nothing reaches the journal. An
//! admitted change is journaled, applied by the ingestor, read back by `trust()` and survives a
//! restart; bad factors and forged signatures are refused before the journal; the newest change
//! by (timestamp, content hash) wins in every order of arrival, so replay is deterministic; the
//! signature is domain-separated from votes, and the JSON form refuses unknown fields. What
//! `stemedb sign trust` prints is such a change, and a node whose configuration (the same file
//! the CLI read) lists its signer admits and applies it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use stemedb_testkit as common;

use common::deadline;

use common::{NOW_MS, key};
use stemedb::Config;
use stemedb::node::{Node, SubmitError};
use stemedb::protocol::{
    Limits, LogRecord, RecordKind, TRUST_FACTOR_MAX, TrustChange, ValidationError, signing_message,
    validate_trust,
};
use stemedb::storage::state::{IngestRecord, State, StateConfig};
use tempfile::TempDir;

const ADMIN: u8 = 77;
const OUTSIDER: u8 = 78;
const RATED: u8 = 79;

/// A configuration whose only administrator is key `ADMIN`.
fn admin_config() -> Config {
    let mut config = Config::default();
    config.votes.admins = vec![key(ADMIN).agent_id().to_string()];
    config.votes.trust_default = 0.5;
    config
}

#[test]
fn trust_change_by_a_non_admin_is_refused_at_submission_and_never_journaled() {
    let dir = TempDir::new().unwrap();
    let rated = key(RATED).agent_id();
    actix::System::new().block_on(async {
        let node = Node::start(admin_config(), dir.path()).unwrap();
        let end = node.durable_end().unwrap();
        let change = TrustChange::sign(&key(OUTSIDER), rated, 7.0, NOW_MS);
        match node.submit_trust(change).await {
            Err(SubmitError::NotAdmin { admin }) => assert_eq!(admin, key(OUTSIDER).agent_id()),
            other => panic!("a non-admin's trust change must be refused, got {other:?}"),
        }
        assert_eq!(node.durable_end().unwrap(), end, "nothing reached the journal");
        assert_eq!(node.trust(&rated).unwrap(), 0.5, "the default stands");
        // Control: the administrator's change does reach the journal.
        let change = TrustChange::sign(&key(ADMIN), rated, 7.0, NOW_MS);
        let receipt = node.submit_trust(change).await.unwrap();
        assert!(node.durable_end().unwrap() > end);
        node.wait_indexed(receipt.offset, deadline()).await.unwrap();
        assert_eq!(node.trust(&rated).unwrap(), 7.0);
        node.shutdown().await.unwrap();
    });
}

#[test]
fn trust_change_signed_by_the_cli_is_admitted_by_a_node_listing_its_signer() {
    let dir = TempDir::new().unwrap();
    let (admin_key, admin) = common::cli::keygen(&dir, "admin.key");
    let rated = key(RATED).agent_id();
    let config_path = common::cli::admins_config(&dir, "admins.toml", &[&admin]);
    let out = common::cli::stemedb()
        .arg("--config")
        .arg(&config_path)
        .args(["sign", "trust", "--factor", "4.25", "--agent"])
        .arg(rated.to_string())
        .arg("--timestamp-ms")
        .arg(NOW_MS.to_string())
        .arg("--key")
        .arg(&admin_key)
        .assert()
        .success();
    let json = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    let change = TrustChange::from_json(json.trim()).unwrap();
    assert_eq!(change.admin.to_string(), admin);
    assert_eq!(
        (change.agent, change.factor, change.timestamp_ms),
        (rated, 4.25, NOW_MS)
    );
    let config = Config::load(Some(&config_path)).unwrap();
    actix::System::new().block_on(async {
        let node = Node::start(config, dir.path().join("data")).unwrap();
        let receipt = node.submit_trust(change.clone()).await.unwrap();
        assert_eq!(receipt.hash, change.content_hash());
        node.wait_indexed(receipt.offset, deadline()).await.unwrap();
        assert_eq!(node.trust(&rated).unwrap(), 4.25);
        node.shutdown().await.unwrap();
    });
}

#[test]
fn with_no_admins_configured_every_trust_change_is_refused() {
    let dir = TempDir::new().unwrap();
    actix::System::new().block_on(async {
        let node = Node::start(Config::default(), dir.path()).unwrap();
        let change = TrustChange::sign(&key(ADMIN), key(RATED).agent_id(), 1.0, NOW_MS);
        let refused = node.submit_trust(change).await;
        assert!(
            matches!(refused, Err(SubmitError::NotAdmin { .. })),
            "{refused:?}"
        );
        assert_eq!(node.durable_end().unwrap(), 0);
        node.shutdown().await.unwrap();
    });
}

#[test]
fn admin_trust_change_is_journaled_applied_and_survives_a_restart() {
    let dir = TempDir::new().unwrap();
    let rated = key(RATED).agent_id();
    let configured = key(OUTSIDER).agent_id();
    let mut config = admin_config();
    config.votes.trust.insert(configured.to_string(), 0.25);
    actix::System::new().block_on(async {
        let node = Node::start(config.clone(), dir.path()).unwrap();
        assert_eq!(node.trust(&configured).unwrap(), 0.25, "config is the default");
        let newer = TrustChange::sign(&key(ADMIN), rated, 3.0, NOW_MS + 1);
        let older = TrustChange::sign(&key(ADMIN), rated, 9.0, NOW_MS);
        let overriding = TrustChange::sign(&key(ADMIN), configured, TRUST_FACTOR_MAX, NOW_MS);
        let mut last = 0;
        for change in [newer.clone(), older, overriding] {
            let receipt = node.submit_trust(change.clone()).await.unwrap();
            assert_eq!(
                receipt.hash,
                change.content_hash(),
                "the receipt names the change"
            );
            last = receipt.offset;
        }
        node.wait_indexed(last, deadline()).await.unwrap();
        assert_eq!(
            node.trust(&rated).unwrap(),
            3.0,
            "the newer change wins, whatever the order"
        );
        assert_eq!(
            node.trust(&configured).unwrap(),
            TRUST_FACTOR_MAX,
            "a change overrides config"
        );
        let dump = node.dump().unwrap();
        assert_eq!(dump.trust.len(), 2);
        assert!(dump.trust.iter().any(|t| t.change == newer));
        node.shutdown().await.unwrap();
        let node = Node::start(config, dir.path()).unwrap();
        node.wait_caught_up(deadline()).await.unwrap();
        assert_eq!(node.trust(&rated).unwrap(), 3.0, "trust survives a restart");
        assert_eq!(node.trust(&configured).unwrap(), TRUST_FACTOR_MAX);
        node.shutdown().await.unwrap();
    });
}

#[test]
fn bad_factors_and_forged_signatures_are_refused_before_the_journal() {
    let dir = TempDir::new().unwrap();
    let rated = key(RATED).agent_id();
    actix::System::new().block_on(async {
        let node = Node::start(admin_config(), dir.path()).unwrap();
        let admin = key(ADMIN);
        for factor in [f32::NAN, f32::INFINITY, -1.0, -0.0, TRUST_FACTOR_MAX * 1.01, 1e9] {
            let refused = node
                .submit_trust(TrustChange::sign(&admin, rated, factor, NOW_MS))
                .await;
            let invalid = matches!(
                refused,
                Err(SubmitError::Invalid(
                    ValidationError::TrustFactorNotFinite { .. }
                        | ValidationError::TrustFactorOutOfRange { .. }
                ))
            );
            assert!(invalid, "factor {factor}: {refused:?}");
        }
        let mut forged = TrustChange::sign(&admin, rated, 1.0, NOW_MS);
        forged.factor = 2.0;
        let refused = node.submit_trust(forged).await;
        assert!(
            matches!(
                refused,
                Err(SubmitError::Invalid(ValidationError::BadSignature { .. }))
            ),
            "{refused:?}"
        );
        let future = common::NOW_MS.max(stemedb::protocol::now_ms()) + 24 * 3600 * 1000;
        let refused = node
            .submit_trust(TrustChange::sign(&admin, rated, 1.0, future))
            .await;
        assert!(
            matches!(
                refused,
                Err(SubmitError::Invalid(ValidationError::TimestampInFuture { .. }))
            ),
            "{refused:?}"
        );
        assert_eq!(node.durable_end().unwrap(), 0, "nothing reached the journal");
        node.shutdown().await.unwrap();
    });
}

#[test]
fn a_vote_signature_never_passes_as_a_trust_signature() {
    let admin = key(ADMIN);
    let change = TrustChange::sign(&admin, key(RATED).agent_id(), 1.0, NOW_MS);
    let hash = change.content_hash();
    assert_ne!(
        signing_message(RecordKind::Trust, &hash),
        signing_message(RecordKind::Vote, &hash)
    );
    assert!(signing_message(RecordKind::Trust, &hash).starts_with(b"stemedb/v1/trust\0"));
    let mut replayed = change.clone();
    replayed.signature = stemedb::protocol::sign(&admin, RecordKind::Vote, &hash);
    let verdict = validate_trust(&replayed, &Limits::default(), NOW_MS);
    assert!(
        matches!(verdict, Err(ValidationError::BadSignature { .. })),
        "{verdict:?}"
    );
    assert_eq!(validate_trust(&change, &Limits::default(), NOW_MS), Ok(hash));
}

#[test]
fn trust_change_round_trips_and_its_json_refuses_unknown_fields() {
    let change = TrustChange::sign(&key(ADMIN), key(RATED).agent_id(), 12.5, NOW_MS);
    let payload = LogRecord::Trust(change.clone()).encode();
    assert_eq!(payload[0], 3, "trust records carry tag 3");
    assert_eq!(
        LogRecord::decode(&payload).unwrap(),
        LogRecord::Trust(change.clone())
    );
    let json = change.to_json().unwrap();
    assert_eq!(TrustChange::from_json(&json).unwrap(), change);
    let extra = json.replacen('{', "{\"role\":\"root\",", 1);
    assert!(TrustChange::from_json(&extra).is_err());
    let mut bytes = change.to_record_bytes();
    bytes.push(0);
    assert!(
        TrustChange::from_record_bytes(&bytes).is_err(),
        "trailing bytes are refused"
    );
}

#[test]
fn admins_must_be_agent_ids() {
    let mut config = Config::default();
    config.votes.admins = vec!["not-an-agent".into()];
    let error = config.validate().unwrap_err();
    assert!(error.to_string().contains("votes.admins"), "{error}");
    let parsed = Config::from_toml(
        &format!("[votes]\nadmins = [\"{}\"]\n", key(ADMIN).agent_id()),
        "test",
    )
    .unwrap();
    assert_eq!(parsed.votes.admin_set().unwrap().len(), 1);
}

/// Three changes of one agent (two tied on timestamp) and one of another: every one of the 24
/// orders, applied one record per batch or all in one batch, ends with the same trust table.
#[test]
fn newest_trust_change_wins_in_every_order() {
    let admin = key(ADMIN);
    let (a, b) = (key(RATED).agent_id(), key(OUTSIDER).agent_id());
    let changes = [
        TrustChange::sign(&admin, a, 1.0, 10),
        TrustChange::sign(&admin, a, 2.0, 20),
        TrustChange::sign(&admin, a, 3.0, 20),
        TrustChange::sign(&admin, b, 4.0, 5),
    ];
    let tied_winner = changes[1..3]
        .iter()
        .max_by_key(|c| (c.timestamp_ms, c.content_hash()))
        .unwrap()
        .factor;
    let mut orders = vec![vec![]];
    for _ in 0..changes.len() {
        let grown = orders.iter().flat_map(|order: &Vec<usize>| {
            (0..changes.len())
                .filter(|i| !order.contains(i))
                .map(|i| [order.clone(), vec![i]].concat())
        });
        orders = grown.collect();
    }
    assert_eq!(orders.len(), 24);
    for order in &orders {
        for one_batch in [false, true] {
            let dir = TempDir::new().unwrap();
            let state = State::open(dir.path(), StateConfig::default()).unwrap();
            let records: Vec<IngestRecord> = order
                .iter()
                .enumerate()
                .map(|(i, &c)| IngestRecord {
                    offset: i as u64 * 100,
                    next: (i as u64 + 1) * 100,
                    payload: LogRecord::Trust(changes[c].clone()).encode().into(),
                })
                .collect();
            match one_batch {
                true => drop(state.apply(&records).unwrap()),
                false => records.chunks(1).for_each(|r| drop(state.apply(r).unwrap())),
            }
            assert_eq!(state.trust(&a).unwrap(), Some(tied_winner), "order {order:?}");
            assert_eq!(state.trust(&b).unwrap(), Some(4.0), "order {order:?}");
            // Replaying the whole batch changes nothing.
            let again = state.apply(&records).unwrap();
            assert_eq!(again.skipped, records.len());
            assert_eq!(state.trust(&a).unwrap(), Some(tied_winner));
        }
    }
}

#[test]
fn batch_validation_names_a_bad_trust_signature_alone() {
    let admin = key(ADMIN);
    let good = TrustChange::sign(&admin, key(RATED).agent_id(), 2.0, NOW_MS);
    let mut forged = TrustChange::sign(&admin, key(OUTSIDER).agent_id(), 2.0, NOW_MS);
    forged.agent = key(RATED).agent_id();
    let records = vec![
        LogRecord::Assertion(common::signed_assertion()),
        LogRecord::Trust(good.clone()),
        LogRecord::Vote(common::signed_vote()),
        LogRecord::Trust(forged),
    ];
    let verdicts = stemedb::protocol::validate_records(&records, &Limits::default(), NOW_MS);
    assert!(verdicts[..3].iter().all(Result::is_ok), "{verdicts:?}");
    assert_eq!(verdicts[1], Ok(good.content_hash()));
    let bad = &verdicts[3];
    assert!(
        matches!(bad, Err(ValidationError::BadSignature { agent, .. }) if *agent == admin.agent_id()),
        "{bad:?}"
    );
}

//! The HTTP API over real HTTP on loopback: signed and custodial writes (single and batch),
//! votes, trust changes, reads by hash, by subject and by pair with paging, votes and totals,
//! resolve and audit, and API keys: a foreign agent is refused, a revoked key at once.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use stemedb_testkit as common;

use awc::http::StatusCode;
use common::http::with_server;
use common::{Claim, NOW_MS, key};
use serde_json::{Value, json};
use stemedb::protocol::{Assertion, Hash, ObjectValue, TrustChange, Vote};
use stemedb_server::ServerConfig as Config;
use stemedb_server::keys::Role;

fn claim(value: i64, signer: u8) -> Assertion {
    let claim = Claim::new("city/paris", "mayor", ObjectValue::Integer(value));
    claim.at(value as u64).signed(&[signer])
}

fn hash_of(answer: &Value) -> Hash {
    answer["hash"].as_str().unwrap().parse().unwrap()
}

#[test]
fn signed_writes_read_back_by_hash_subject_and_pair_with_votes_and_resolution() {
    with_server(Config::default(), |s| async move {
        let writer = s.key(&[Role::Read, Role::Write], &[&key(1), &key(2), &key(3)]);
        // One signed assertion, read-your-writes.
        let one = s.post("/v1/assertions?wait=indexed", &writer, &claim(1, 1)).await;
        assert_eq!(one.status, StatusCode::OK, "{:?}", one.body);
        assert_eq!(one.body["indexed"], true);
        let a = hash_of(&one.body);
        let got = s.get(&format!("/v1/assertions/{a}"), &writer).await;
        assert_eq!(got.status, StatusCode::OK);
        assert_eq!(
            serde_json::from_value::<Assertion>(got.body["assertion"].clone()).unwrap(),
            claim(1, 1)
        );
        // A batch: one item with a broken signature is refused alone.
        let mut broken = claim(3, 3);
        broken.confidence = 0.75;
        let batch = s
            .post(
                "/v1/assertions/batch?wait=indexed",
                &writer,
                &vec![claim(2, 2), broken],
            )
            .await;
        assert_eq!(batch.status, StatusCode::OK, "{:?}", batch.body);
        assert_eq!(
            (batch.body["accepted"].as_u64(), batch.body["refused"].as_u64()),
            (Some(1), Some(1))
        );
        assert_eq!(batch.body["items"][1]["error"]["status"], 422);
        assert_eq!(batch.body["items"][1]["error"]["field"], "signatures");
        let b = hash_of(&batch.body["items"][0]["receipt"]);
        // Listing by pair, a page at a time, and by subject.
        let page = s
            .get(
                "/v1/assertions?subject=city/paris&predicate=mayor&limit=1",
                &writer,
            )
            .await;
        assert_eq!(page.body["assertions"].as_array().unwrap().len(), 1);
        let next = page.body["next"].as_str().unwrap().to_owned();
        let rest = s
            .get(
                &format!("/v1/assertions?subject=city/paris&predicate=mayor&limit=10&after={next}"),
                &writer,
            )
            .await;
        assert_eq!(rest.body["assertions"].as_array().unwrap().len(), 1);
        assert!(rest.body.get("next").is_none());
        let all = s.get("/v1/assertions?subject=city/paris", &writer).await;
        assert_eq!(all.body["assertions"].as_array().unwrap().len(), 2);
        // Votes, single and batch; then their totals.
        let voter = s.key(&[Role::Read, Role::Write], &[&key(40), &key(41)]);
        let vote = s
            .post("/v1/votes", &voter, &Vote::sign(&key(40), a, 2.0, NOW_MS + 10))
            .await;
        assert_eq!(vote.status, StatusCode::OK, "{:?}", vote.body);
        let votes = s
            .post(
                "/v1/votes/batch?wait=indexed",
                &voter,
                &vec![Vote::sign(&key(41), a, 1.5, NOW_MS + 11)],
            )
            .await;
        assert_eq!(votes.body["accepted"], 1);
        let tallied = s.get(&format!("/v1/assertions/{a}/votes"), &voter).await;
        assert_eq!(tallied.body["totals"], json!({"count": 2, "weight": 3.5}));
        assert_eq!(tallied.body["votes"].as_array().unwrap().len(), 2);
        // Resolution three ways; consensus follows the votes, recency the later claim.
        let consensus = s
            .get(
                "/v1/resolve?subject=city/paris&predicate=mayor&lens=consensus",
                &writer,
            )
            .await;
        assert_eq!(consensus.body["winner"], a.to_string());
        assert_eq!(consensus.body["ranked"].as_array().unwrap().len(), 2);
        let recency = s
            .get(
                "/v1/resolve?subject=city/paris&predicate=mayor&lens=recency",
                &writer,
            )
            .await;
        assert_eq!(recency.body["winner"], b.to_string());
        // As of the first assertion's offset, only it existed.
        let first = one.body["offset"].as_u64().unwrap();
        let then = s
            .get(
                &format!("/v1/resolve?subject=city/paris&predicate=mayor&lens=recency&as_of_offset={first}"),
                &writer,
            )
            .await;
        assert_eq!(then.body["winner"], a.to_string());
        // Audited, then read back by id and by pair.
        let audited = s
            .get(
                "/v1/resolve?subject=city/paris&predicate=mayor&audit=true",
                &writer,
            )
            .await;
        let id = audited.body["audit_id"].as_u64().unwrap();
        let record = s.get(&format!("/v1/audit/{id}"), &writer).await;
        assert_eq!(record.status, StatusCode::OK);
        assert_eq!(record.body["winner"], a.to_string());
        assert!(record.body["requester"].as_str().unwrap().starts_with("api-key:"));
        let by_pair = s
            .get("/v1/audit?subject=city/paris&predicate=mayor", &writer)
            .await;
        assert_eq!(by_pair.body["records"][0]["id"], id);
    });
}

#[test]
fn custodial_agents_sign_plain_records_and_keys_submit_only_as_their_own_agents() {
    with_server(Config::default(), |s| async move {
        // The development admin key signs as its custodial agent.
        let plain = json!({"subject": "city/paris", "predicate": "mayor", "object": {"text": "A"}, "confidence": 0.9});
        let made = s
            .post("/v1/custodial/assertions?wait=indexed", &s.admin, &plain)
            .await;
        assert_eq!(made.status, StatusCode::OK, "{:?}", made.body);
        let hash = hash_of(&made.body);
        let stored = s.node.get(&hash).unwrap().unwrap();
        assert_eq!(stored.assertion.signatures[0].agent, s.custodial);
        let voted = s
            .post(
                "/v1/custodial/votes?wait=indexed",
                &s.admin,
                &json!({"assertion": hash.to_string(), "weight": 2.0}),
            )
            .await;
        assert_eq!(voted.status, StatusCode::OK, "{:?}", voted.body);
        assert_eq!(s.node.vote_totals(&hash).unwrap().count, 1);
        // A new custodial agent, bound to a new key.
        let agent = s.post("/v1/agents", &s.admin, &json!(null)).await;
        assert_eq!(agent.status, StatusCode::OK, "{:?}", agent.body);
        let agent = agent.body["agent"].as_str().unwrap().to_owned();
        let created = s
            .post(
                "/v1/keys",
                &s.admin,
                &json!({"label": "bot", "roles": ["write"], "agents": [agent]}),
            )
            .await;
        assert_eq!(created.status, StatusCode::OK, "{:?}", created.body);
        let bot = created.body["token"].as_str().unwrap().to_owned();
        // Everything before is indexed (each write waited for it): the count starts here.
        let before = s.node.counts().unwrap();
        assert_eq!(
            s.post("/v1/custodial/assertions", &bot, &plain).await.status,
            StatusCode::OK
        );
        // Foreign agents: signed by someone else, or a custodial agent of another key.
        let foreign = s.post("/v1/assertions", &bot, &claim(5, 9)).await;
        assert_eq!(foreign.status, StatusCode::FORBIDDEN);
        assert_eq!(foreign.content_type, "application/problem+json");
        let not_mine = json!({"subject": "s", "predicate": "p", "object": {"integer": 1}, "confidence": 0.5, "agent": s.custodial.to_string()});
        assert_eq!(
            s.post("/v1/custodial/assertions", &bot, &not_mine).await.status,
            StatusCode::FORBIDDEN
        );
        let vote = s
            .post("/v1/votes", &bot, &Vote::sign(&key(9), hash, 1.0, NOW_MS))
            .await;
        assert_eq!(vote.status, StatusCode::FORBIDDEN);
        // A write-only key may not read; only admins manage keys.
        assert_eq!(s.get("/v1/keys", &bot).await.status, StatusCode::FORBIDDEN);
        assert_eq!(
            s.get(&format!("/v1/assertions/{hash}"), &bot).await.status,
            StatusCode::FORBIDDEN
        );
        s.node
            .wait_caught_up(std::time::Instant::now() + std::time::Duration::from_secs(30))
            .await
            .unwrap();
        assert_eq!(
            s.node.counts().unwrap().0,
            before.0 + 1,
            "only the bot's own record was stored"
        );
        // Revoked: refused at once.
        let id = created.body["key"]["id"].as_str().unwrap().to_owned();
        let revoked = s
            .send(
                "DELETE",
                &format!("/v1/keys/{id}"),
                Some(&s.admin),
                None,
                Vec::new(),
            )
            .await;
        assert_eq!(revoked.status, StatusCode::OK);
        assert_eq!(revoked.body["revoked"], true);
        let refused = s.post("/v1/custodial/assertions", &bot, &plain).await;
        assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
        assert!(refused.body["detail"].as_str().unwrap().contains("revoked"));
        let listed = s.get("/v1/keys", &s.admin).await;
        assert_eq!(listed.body["keys"].as_array().unwrap().len(), 2);
        assert!(!listed.body.to_string().contains("secret"));
    });
}

#[test]
fn trust_changes_need_the_admin_role_and_an_administrator_agent() {
    let admin = key(60);
    let mut config = Config::default();
    config.votes.admins = vec![admin.agent_id().to_string()];
    with_server(config, |s| async move {
        let change = TrustChange::sign(&admin, key(40).agent_id(), 0.25, NOW_MS);
        // Write role only: 403.
        let writer = s.key(&[Role::Write], &[&admin]);
        assert_eq!(
            s.post("/v1/trust", &writer, &change).await.status,
            StatusCode::FORBIDDEN
        );
        // Admin role, but signed by an agent the node does not list: 403 from the node.
        let other = key(61);
        let rogue = s.key(&[Role::Admin], &[&other]);
        let refused = s
            .post(
                "/v1/trust",
                &rogue,
                &TrustChange::sign(&other, key(40).agent_id(), 5.0, NOW_MS),
            )
            .await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN);
        assert!(
            refused.body["detail"]
                .as_str()
                .unwrap()
                .contains("not an administrator")
        );
        // Both: admitted and applied.
        let ops = s.key(&[Role::Admin], &[&admin]);
        let admitted = s.post("/v1/trust?wait=indexed", &ops, &change).await;
        assert_eq!(admitted.status, StatusCode::OK, "{:?}", admitted.body);
        assert_eq!(s.node.trust(&key(40).agent_id()).unwrap(), 0.25);
    });
}

//! The key routes over real HTTP, against a real key store on disk: a new key's limits are
//! refused with 422 naming the field; the last admin key cannot be revoked (409) until another
//! exists; a save that fails answers 503 and changes nothing (the key does not work, the revoke
//! does not take effect); and a revoked key is listed and answered "revoked" through its grace
//! period, then gone after a restart. How authentication fares during a save, and the file
//! modes refused at open, are proved on the store itself (`src/keys/tests.rs`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::cell::RefCell;
use std::path::Path;
use std::rc::Rc;

use stemedb_testkit as common;

use awc::http::StatusCode;
use common::http::{Answer, Served, with_server, with_server_in};
use common::key;
use serde_json::{Value, json};
use stemedb::protocol::{AgentId, now_ms};
use stemedb_server::ServerConfig as Config;
use stemedb_server::keys::{KEY_AGENTS_MAX, KEYS_FILE, REVOKED_KEY_GRACE_MS};

async fn delete(s: &Served, path: &str, token: &str) -> Answer {
    s.send("DELETE", path, Some(token), None, Vec::new()).await
}

fn assert_problem(answer: &Answer, status: StatusCode, field: Option<&str>) {
    assert_eq!(answer.status, status, "{:?}", answer.body);
    assert_eq!(answer.content_type, "application/problem+json");
    assert_eq!(answer.field(), field, "{:?}", answer.body);
}

/// The ids of the listed keys.
async fn listed(s: &Served) -> Vec<String> {
    let list = s.get("/v1/keys", &s.admin).await;
    assert_eq!(list.status, StatusCode::OK, "{:?}", list.body);
    let keys = list.body["keys"].as_array().unwrap();
    keys.iter()
        .map(|k| k["id"].as_str().unwrap().to_owned())
        .collect()
}

/// Makes a key over HTTP; returns its token and id.
async fn made(s: &Served, token: &str, roles: &[&str]) -> (String, String) {
    let answer = s
        .post("/v1/keys", token, &json!({"label": "t", "roles": roles}))
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
    let id = answer.body["key"]["id"].as_str().unwrap().to_owned();
    (answer.body["token"].as_str().unwrap().to_owned(), id)
}

#[test]
fn a_key_with_too_many_agents_or_a_duplicate_is_refused_naming_the_field() {
    with_server(Config::default(), |s| async move {
        let agents: Vec<AgentId> = (0..=KEY_AGENTS_MAX).map(|n| key(n as u8).agent_id()).collect();
        let body = |roles: Value, agents: &[AgentId]| json!({"label": "l", "roles": roles, "agents": agents});
        let many = s
            .post("/v1/keys", &s.admin, &body(json!(["write"]), &agents))
            .await;
        assert_problem(&many, StatusCode::UNPROCESSABLE_ENTITY, Some("agents"));
        assert_eq!(many.body["limit"], KEY_AGENTS_MAX);
        let roles = s
            .post("/v1/keys", &s.admin, &body(json!(["read", "write", "read"]), &[]))
            .await;
        assert_problem(&roles, StatusCode::UNPROCESSABLE_ENTITY, Some("roles"));
        let twice = [agents[0], agents[1], agents[0]];
        let twice = s
            .post("/v1/keys", &s.admin, &body(json!(["write"]), &twice))
            .await;
        assert_problem(&twice, StatusCode::UNPROCESSABLE_ENTITY, Some("agents"));
        assert_eq!(listed(&s).await.len(), 1, "nothing refused was stored");
        let at_limit = s
            .post(
                "/v1/keys",
                &s.admin,
                &body(json!(["write"]), &agents[..KEY_AGENTS_MAX]),
            )
            .await;
        assert_eq!(at_limit.status, StatusCode::OK, "{:?}", at_limit.body);
    });
}

#[test]
fn the_last_admin_key_cannot_be_revoked_until_another_exists() {
    with_server(Config::default(), |s| async move {
        let first = listed(&s).await.remove(0);
        let refused = delete(&s, &format!("/v1/keys/{first}"), &s.admin).await;
        assert_problem(&refused, StatusCode::CONFLICT, None);
        assert_eq!(refused.body["type"], "urn:stemedb:problem:conflict");
        assert_eq!(
            s.get("/v1/keys", &s.admin).await.status,
            StatusCode::OK,
            "still an admin"
        );
        // A key without the admin role does not count.
        made(&s, &s.admin, &["read", "write"]).await;
        let refused = delete(&s, &format!("/v1/keys/{first}"), &s.admin).await;
        assert_problem(&refused, StatusCode::CONFLICT, None);
        let (second, second_id) = made(&s, &s.admin, &["admin"]).await;
        let revoked = delete(&s, &format!("/v1/keys/{first}"), &second).await;
        assert_eq!(revoked.status, StatusCode::OK, "{:?}", revoked.body);
        assert_eq!(revoked.body["revoked"], true);
        assert!(revoked.body["revoked_ms"].as_u64().is_some());
        assert_problem(&s.get("/v1/keys", &s.admin).await, StatusCode::UNAUTHORIZED, None);
        let refused = delete(&s, &format!("/v1/keys/{second_id}"), &second).await;
        assert_problem(&refused, StatusCode::CONFLICT, None);
        // The OpenAPI document says so.
        let doc = s.send("GET", "/v1/openapi.json", None, None, Vec::new()).await;
        assert!(doc.body["paths"]["/v1/keys/{id}"]["delete"]["responses"]["409"].is_object());
    });
}

#[test]
fn a_failed_save_answers_503_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let tmp = dir.path().join("api").join("keys.json.tmp");
    with_server_in(dir.path(), Config::default(), |s| async move {
        let (reader, reader_id) = made(&s, &s.admin, &["read"]).await;
        let before = listed(&s).await;
        // A directory where the store writes its temporary file: every save fails.
        std::fs::create_dir(&tmp).unwrap();
        let create = s
            .post("/v1/keys", &s.admin, &json!({"label": "t", "roles": ["read"]}))
            .await;
        assert_problem(&create, StatusCode::SERVICE_UNAVAILABLE, None);
        assert!(create.body["detail"].as_str().unwrap().contains("keys.json.tmp"));
        let revoke = delete(&s, &format!("/v1/keys/{reader_id}"), &s.admin).await;
        assert_problem(&revoke, StatusCode::SERVICE_UNAVAILABLE, None);
        let agent = s.post("/v1/agents", &s.admin, &json!({})).await;
        assert_problem(&agent, StatusCode::SERVICE_UNAVAILABLE, None);
        assert_eq!(listed(&s).await, before);
        // The reader still authenticates (403 for lacking admin, not 401 for being revoked).
        assert_problem(&s.get("/v1/keys", &reader).await, StatusCode::FORBIDDEN, None);
        std::fs::remove_dir(&tmp).unwrap();
        let revoke = delete(&s, &format!("/v1/keys/{reader_id}"), &s.admin).await;
        assert_eq!(revoke.status, StatusCode::OK, "{:?}", revoke.body);
        assert_problem(&s.get("/v1/keys", &reader).await, StatusCode::UNAUTHORIZED, None);
    });
}

/// Sets the revocation time of key `id` in the store in `dir` to `revoked_ms`.
fn backdate_revocation(dir: &Path, id: &str, revoked_ms: u64) {
    let path = dir.join("api").join(KEYS_FILE);
    let mut file: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let keys = file["keys"].as_array_mut().unwrap();
    let stored = keys.iter_mut().find(|k| k["id"] == id).unwrap();
    stored["revoked_ms"] = json!(revoked_ms);
    std::fs::write(&path, serde_json::to_vec(&file).unwrap()).unwrap();
}

#[test]
fn a_revoked_key_is_kept_through_its_grace_period_then_pruned() {
    let dir = tempfile::tempdir().unwrap();
    let revoked = Rc::new(RefCell::new(Vec::new()));
    let out = Rc::clone(&revoked);
    with_server_in(dir.path(), Config::default(), |s| async move {
        for _ in 0..2 {
            let (token, id) = made(&s, &s.admin, &["read"]).await;
            assert_eq!(
                delete(&s, &format!("/v1/keys/{id}"), &s.admin).await.status,
                StatusCode::OK
            );
            out.borrow_mut().push((token, id));
        }
    });
    let [(old, old_id), (recent, recent_id)] = <[_; 2]>::try_from(revoked.take()).unwrap();
    backdate_revocation(dir.path(), &old_id, now_ms() - REVOKED_KEY_GRACE_MS - 1);
    with_server_in(dir.path(), Config::default(), |s| async move {
        let ids = listed(&s).await;
        assert!(!ids.contains(&old_id), "{ids:?}");
        assert!(ids.contains(&recent_id), "{ids:?}");
        let gone = s.get("/v1/keys", &old).await;
        assert_problem(&gone, StatusCode::UNAUTHORIZED, None);
        assert_eq!(gone.body["detail"], "unknown API key");
        let kept = s.get("/v1/keys", &recent).await;
        assert_eq!(kept.body["detail"], "the API key was revoked");
    });
}

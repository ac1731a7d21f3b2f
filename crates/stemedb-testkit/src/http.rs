//! A node with its HTTP API on a loopback port, and a small client for the HTTP tests.

use std::sync::Arc;
use std::time::Duration;

use awc::http::StatusCode;
use serde_json::Value;
use stemedb::node::Node;
use stemedb::protocol::{AgentId, AgentKey};
use stemedb_server::ServerConfig as Config;
use stemedb_server::keys::{ADMIN_TOKEN_FILE, KeyStore, Role};
use stemedb_server::{Api, start};

/// A running server and what the tests need of it.
pub struct Served {
    /// The node behind it.
    pub node: Node,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// The development admin key (all roles, bound to `custodial`).
    pub admin: String,
    /// The custodial agent of the admin key.
    pub custodial: AgentId,
    /// The key store.
    pub keys: Arc<KeyStore>,
    /// The HTTP client.
    pub client: awc::Client,
}

/// An answer: status, `Retry-After` and content type if any, and the body as JSON (or
/// `Value::Null` when it is not JSON).
#[derive(Debug)]
pub struct Answer {
    /// The status.
    pub status: StatusCode,
    /// The `Retry-After` header, if any.
    pub retry_after: Option<String>,
    /// The `Content-Type` header, or empty.
    pub content_type: String,
    /// The `Allow` header, if any.
    pub allow: Option<String>,
    /// The body as JSON, or `Value::Null`.
    pub body: Value,
    /// The body's bytes.
    pub raw: Vec<u8>,
}

impl Answer {
    /// The problem's `field`, if the body is a problem naming one.
    pub fn field(&self) -> Option<&str> {
        self.body.get("field").and_then(Value::as_str)
    }
}

/// A client with no connection limit and a generous timeout.
pub fn client() -> awc::Client {
    awc::Client::builder()
        .connector(awc::Connector::new().limit(0))
        .timeout(Duration::from_secs(60))
        .finish()
}

/// Starts a node on a temporary directory with `config` (its `http.bind` replaced by an
/// ephemeral loopback port), serves it, runs `test`, then stops both.
pub fn with_server<F, Fut>(config: Config, test: F)
where
    F: FnOnce(Served) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let dir = tempfile::TempDir::new().unwrap();
    with_server_in(dir.path(), config, test);
}

/// As [`with_server`], with the node's data and the keys in `dir`; `dir` may hold them from an
/// earlier run.
pub fn with_server_in<F, Fut>(dir: &std::path::Path, mut config: Config, test: F)
where
    F: FnOnce(Served) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    config.http.bind = "127.0.0.1:0".to_owned();
    actix::System::new().block_on(async {
        let node = config.start_node(&dir.join("data")).unwrap();
        let (keys, token_path) = KeyStore::open(&dir.join("api")).unwrap();
        // A store opened again keeps the admin token of its first start.
        let token_path = token_path.unwrap_or_else(|| dir.join("api").join(ADMIN_TOKEN_FILE));
        let admin = std::fs::read_to_string(token_path).unwrap().trim().to_owned();
        let custodial = keys.authenticate(&admin).unwrap().info.agents[0];
        let keys = Arc::new(keys);
        let server = start(
            Api::new(node.clone(), keys.clone(), config.http.clone()).unwrap(),
            false,
        )
        .unwrap();
        let base = format!("http://{}", server.addrs[0]);
        let stopper = server.stopper.clone();
        actix::spawn(server.running);
        test(Served {
            node: node.clone(),
            base,
            admin,
            custodial,
            keys,
            client: client(),
        })
        .await;
        stopper.stop().await;
        node.shutdown().await.unwrap();
    });
}

impl Served {
    /// Makes a key with `roles` bound to `agents`; returns its token.
    pub fn key(&self, roles: &[Role], agents: &[&AgentKey]) -> String {
        let agents = agents.iter().map(|k| k.agent_id()).collect();
        self.keys.create_key("test", roles.to_vec(), agents).unwrap().0
    }

    /// Sends `method` `path` with `token` (if any) and a raw body of `content_type`.
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> Answer {
        let method = awc::http::Method::from_bytes(method.as_bytes()).unwrap();
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.insert_header(("Authorization", format!("Bearer {token}")));
        }
        if let Some(content_type) = content_type {
            request = request.insert_header(("Content-Type", content_type));
        }
        let mut response = request.send_body(body).await.unwrap();
        let bytes = response.body().limit(64 << 20).await.unwrap();
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        Answer {
            status: response.status(),
            retry_after: header("retry-after"),
            content_type: header("content-type").unwrap_or_default(),
            allow: header("allow"),
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            raw: bytes.to_vec(),
        }
    }

    /// GETs `path` with `token`.
    pub async fn get(&self, path: &str, token: &str) -> Answer {
        self.send("GET", path, Some(token), None, Vec::new()).await
    }

    /// POSTs `body` as JSON to `path` with `token`.
    pub async fn post(&self, path: &str, token: &str, body: &impl serde::Serialize) -> Answer {
        let bytes = serde_json::to_vec(body).unwrap();
        self.send("POST", path, Some(token), Some("application/json"), bytes)
            .await
    }
}

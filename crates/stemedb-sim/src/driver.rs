//! [`Driver`]: how the simulated agents reach the node: the embedded API, or the HTTP API of
//! a running `stemedb serve`. Both answer the same questions with the same types, so an arena
//! is written once.

use std::time::{Duration, Instant};

use serde_json::json;

use super::SimError;

mod feed;
pub use feed::{Change, Feed};
use stemedb::lens::{AsOf, Query};
use stemedb::node::{Node, SubmitError};
use stemedb::protocol::{AgentId, Assertion, Hash, TrustChange, Vote};
use stemedb_server::types::{CreatedKey, ResolutionBody, StoredAssertionBody, VotesBody, WriteReceipt};

/// An acknowledged write: durable, at this journal offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ack {
    /// The record's content hash.
    pub hash: Hash,
    /// Its journal offset.
    pub offset: u64,
}

/// A write the node refused, by kind: the arenas expect some kinds (a fault they injected)
/// and fail on the others.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Overloaded: retry later (503, `Busy`).
    Busy,
    /// The disk is full (507, `StorageFull`).
    Full,
    /// The journal is poisoned, closed or failing (5xx, `Journal`, `Closed`).
    Unavailable(String),
    /// The record itself was refused (4xx, `Invalid`, ...).
    Invalid(String),
    /// Over HTTP with `wait=indexed`: journaled, then refused by the ingest (a problem of type
    /// `rejected`). The embedded driver acknowledges such a record, and the ingest refuses it
    /// later.
    Rejected(String),
}

/// What a resolution answered, as the arenas compare it.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// The winner.
    pub winner: Option<Hash>,
    /// Every candidate, best first.
    pub ranked: Vec<Hash>,
    /// The ingest cursor it reflects.
    pub offset: u64,
}

/// The node under test.
pub enum Driver {
    /// The embedded API of a node in this process.
    Embedded(Node),
    /// The HTTP API at `base` (`http://host:port`), with a key bound to the agents.
    Http {
        /// The base URL.
        base: String,
        /// The bearer token of reads (the first key's).
        token: String,
        /// The token of each agent's key: a key has at most
        /// [`KEY_AGENTS_MAX`](stemedb_server::keys::KEY_AGENTS_MAX) agents, so a run with more
        /// makes several keys.
        writers: std::collections::HashMap<AgentId, String>,
        /// The client.
        client: awc::Client,
    },
}

/// How long one HTTP call may take.
const HTTP_TIMEOUT: Duration = Duration::from_secs(30);

fn http_client() -> awc::Client {
    awc::Client::builder()
        .timeout(HTTP_TIMEOUT)
        .disable_redirects()
        .finish()
}

fn refusal(error: SubmitError) -> Refusal {
    match error {
        SubmitError::Busy { .. } => Refusal::Busy,
        SubmitError::Log(stemedb::log::AppendError::StorageFull(_)) => Refusal::Full,
        SubmitError::Log(_) | SubmitError::Closed => Refusal::Unavailable(error.to_string()),
        other => Refusal::Invalid(other.to_string()),
    }
}

fn http_refusal(status: u16, body: &[u8]) -> Refusal {
    let text = String::from_utf8_lossy(body)
        .chars()
        .take(300)
        .collect::<String>();
    match status {
        429 => Refusal::Busy,
        503 if text.contains("busy") || text.contains("Busy") => Refusal::Busy,
        507 => Refusal::Full,
        409 | 422 if text.contains("urn:stemedb:problem:rejected") => Refusal::Rejected(text),
        500..=599 => Refusal::Unavailable(format!("{status}: {text}")),
        _ => Refusal::Invalid(format!("{status}: {text}")),
    }
}

impl Driver {
    /// Connects to the HTTP API at `base` with the admin token `admin`, and creates a key
    /// (read and write) bound to `agents`, for the run.
    pub async fn http(base: &str, admin: &str, agents: &[AgentId]) -> Result<Self, SimError> {
        let client = http_client();
        let base = base.trim_end_matches('/').trim_end_matches("/v1").to_owned();
        let mut writers = std::collections::HashMap::new();
        let mut first = None;
        for chunk in agents.chunks(stemedb_server::keys::KEY_AGENTS_MAX) {
            let token = Self::create_key(&client, &base, admin, chunk).await?;
            writers.extend(chunk.iter().map(|agent| (*agent, token.clone())));
            first.get_or_insert(token);
        }
        let token = match first {
            Some(token) => token,
            None => Self::create_key(&client, &base, admin, &[]).await?,
        };
        Ok(Self::Http {
            base,
            token,
            writers,
            client,
        })
    }

    /// Creates a key (read and write) bound to `agents`; returns its token.
    async fn create_key(
        client: &awc::Client,
        base: &str,
        admin: &str,
        agents: &[AgentId],
    ) -> Result<String, SimError> {
        let mut response = client
            .post(format!("{base}/v1/keys"))
            .bearer_auth(admin)
            .send_json(&json!({"label": "stemedb sim", "roles": ["read", "write"], "agents": agents}))
            .await
            .map_err(|e| SimError::Http(format!("POST /v1/keys: {e}")))?;
        let body = response
            .body()
            .limit(1 << 20)
            .await
            .map_err(|e| SimError::Http(e.to_string()))?;
        if !response.status().is_success() {
            return Err(SimError::Http(format!(
                "POST /v1/keys answered {}: {}",
                response.status(),
                String::from_utf8_lossy(&body)
            )));
        }
        let created: CreatedKey = serde_json::from_slice(&body).map_err(|e| SimError::Http(e.to_string()))?;
        Ok(created.token)
    }

    /// Writes `body` to `path` (with `?wait=indexed`: over HTTP every write is read back after
    /// it is indexed, so there is nothing else to wait for).
    async fn post(
        &self,
        path: &str,
        signer: Option<&AgentId>,
        body: &impl serde::Serialize,
    ) -> Result<Result<Ack, Refusal>, SimError> {
        let Self::Http {
            base,
            token,
            writers,
            client,
        } = self
        else {
            return Err(SimError::Http("not an HTTP driver".into()));
        };
        let token = signer.and_then(|agent| writers.get(agent)).unwrap_or(token);
        let mut response = client
            .post(format!("{base}{path}?wait=indexed"))
            .bearer_auth(token)
            .send_json(body)
            .await
            .map_err(|e| SimError::Http(format!("POST {path}: {e}")))?;
        let bytes = response
            .body()
            .limit(1 << 20)
            .await
            .map_err(|e| SimError::Http(e.to_string()))?;
        if !response.status().is_success() {
            return Ok(Err(http_refusal(response.status().as_u16(), &bytes)));
        }
        let receipt: WriteReceipt =
            serde_json::from_slice(&bytes).map_err(|e| SimError::Http(e.to_string()))?;
        Ok(Ok(Ack {
            hash: receipt.hash,
            offset: receipt.offset,
        }))
    }

    /// Reads `path` as JSON; `None` on 404.
    async fn get_json<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<Option<T>, SimError> {
        let Self::Http {
            base, token, client, ..
        } = self
        else {
            return Err(SimError::Http("not an HTTP driver".into()));
        };
        let mut response = client
            .get(format!("{base}{path}"))
            .bearer_auth(token)
            .send()
            .await
            .map_err(|e| SimError::Http(format!("GET {path}: {e}")))?;
        let bytes = response
            .body()
            .limit(16 << 20)
            .await
            .map_err(|e| SimError::Http(e.to_string()))?;
        match response.status().as_u16() {
            404 => Ok(None),
            200 => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| SimError::Http(e.to_string())),
            status => Err(SimError::Http(format!(
                "GET {path} answered {status}: {}",
                String::from_utf8_lossy(&bytes)
            ))),
        }
    }

    /// Submits an assertion; the outer error is the driver's own failure.
    pub async fn submit(&self, assertion: &Assertion) -> Result<Result<Ack, Refusal>, SimError> {
        match self {
            Self::Embedded(node) => Ok(node
                .submit(assertion.clone())
                .await
                .map(|r| Ack {
                    hash: r.hash,
                    offset: r.offset,
                })
                .map_err(refusal)),
            Self::Http { .. } => {
                let signer = assertion.signatures.first().map(|s| &s.agent);
                self.post("/v1/assertions", signer, assertion).await
            }
        }
    }

    /// Casts a vote.
    pub async fn vote(&self, vote: &Vote) -> Result<Result<Ack, Refusal>, SimError> {
        match self {
            Self::Embedded(node) => Ok(node
                .cast_vote(vote.clone())
                .await
                .map(|r| Ack {
                    hash: r.hash,
                    offset: r.offset,
                })
                .map_err(refusal)),
            Self::Http { .. } => self.post("/v1/votes", Some(&vote.voter), vote).await,
        }
    }

    /// Submits a trust change (its admin must be listed in the node's `votes.admins`; over
    /// HTTP the key needs the admin role too).
    pub async fn trust(&self, change: &TrustChange) -> Result<Result<Ack, Refusal>, SimError> {
        match self {
            Self::Embedded(node) => Ok(node
                .submit_trust(change.clone())
                .await
                .map(|r| Ack {
                    hash: r.hash,
                    offset: r.offset,
                })
                .map_err(refusal)),
            Self::Http { .. } => self.post("/v1/trust", Some(&change.admin), change).await,
        }
    }

    /// Waits until every write acknowledged so far is indexed, or `deadline`.
    pub async fn wait_caught_up(&self, deadline: Instant) -> Result<(), SimError> {
        match self {
            Self::Embedded(node) => node.wait_caught_up(deadline).await.map_err(|e| match e {
                stemedb::node::WaitError::Timeout { offset, cursor } => SimError::Timeout(format!(
                    "the ingest did not reach offset {offset} (at {cursor}) by the deadline"
                )),
                other => SimError::Node(other.to_string()),
            }),
            // Every HTTP write waited until it was indexed.
            Self::Http { .. } => Ok(()),
        }
    }

    /// Returns the stored assertion `hash`, if indexed.
    pub async fn get(&self, hash: &Hash) -> Result<Option<Assertion>, SimError> {
        match self {
            Self::Embedded(node) => node
                .get(hash)
                .map(|found| found.map(|s| s.assertion))
                .map_err(|e| SimError::Node(e.to_string())),
            Self::Http { .. } => Ok(self
                .get_json::<StoredAssertionBody>(&format!("/v1/assertions/{hash}"))
                .await?
                .map(|body| body.assertion)),
        }
    }

    /// Returns the (count, weight) of the live votes on `hash`.
    pub async fn vote_totals(&self, hash: &Hash) -> Result<(u64, f64), SimError> {
        match self {
            Self::Embedded(node) => node
                .vote_totals(hash)
                .map(|t| (t.count, t.weight.to_f64()))
                .map_err(|e| SimError::Node(e.to_string())),
            Self::Http { .. } => {
                let body: Option<VotesBody> = self
                    .get_json(&format!("/v1/assertions/{hash}/votes?limit=1"))
                    .await?;
                Ok(body.map_or((0, 0.0), |b| (b.totals.count, b.totals.weight)))
            }
        }
    }

    /// Returns the hashes of the live votes on `hash` (one per voter), up to 1,000.
    pub async fn live_votes(&self, hash: &Hash) -> Result<Vec<Hash>, SimError> {
        match self {
            Self::Embedded(node) => node
                .votes(hash, 1000)
                .map(|votes| votes.iter().map(|v| v.hash).collect())
                .map_err(|e| SimError::Node(e.to_string())),
            Self::Http { .. } => {
                let body: Option<VotesBody> = self
                    .get_json(&format!("/v1/assertions/{hash}/votes?limit=1000"))
                    .await?;
                Ok(body.map_or_else(Vec::new, |b| b.votes.iter().map(|v| v.hash).collect()))
            }
        }
    }

    /// Resolves (`subject`, `predicate`) with `lens`, now or as of an offset.
    pub async fn resolve(
        &self,
        subject: &str,
        predicate: &str,
        lens: &str,
        as_of: Option<u64>,
        history: bool,
    ) -> Result<Answer, SimError> {
        match self {
            Self::Embedded(node) => {
                let mut query = Query::new(subject, predicate, lens);
                query.as_of = as_of.map(AsOf::Offset);
                query.history = history;
                let resolution = node
                    .resolve(query)
                    .await
                    .map_err(|e| SimError::Node(e.to_string()))?;
                Ok(Answer {
                    winner: resolution.winner,
                    ranked: resolution.ranked.iter().map(|s| s.candidate.hash).collect(),
                    offset: resolution.offset,
                })
            }
            Self::Http { .. } => {
                let mut query = url_query(&[("subject", subject), ("predicate", predicate), ("lens", lens)]);
                if let Some(offset) = as_of {
                    query.push_str(&format!("&as_of_offset={offset}"));
                }
                if history {
                    query.push_str("&history=true");
                }
                let body: ResolutionBody = self
                    .get_json(&format!("/v1/resolve?{query}"))
                    .await?
                    .ok_or_else(|| SimError::Http("GET /v1/resolve answered 404".into()))?;
                Ok(Answer {
                    winner: body.winner,
                    ranked: body.ranked.iter().map(|s| s.hash).collect(),
                    offset: body.offset,
                })
            }
        }
    }

    /// Watches the winner of (`subject`, `predicate`) under `lens`.
    pub async fn watch(&self, subject: &str, predicate: &str, lens: &str) -> Result<Feed, SimError> {
        match self {
            Self::Embedded(node) => node
                .watch(subject, predicate, lens)
                .await
                .map(Feed::Embedded)
                .map_err(|e| SimError::Node(e.to_string())),
            Self::Http {
                base, token, client, ..
            } => {
                let query = url_query(&[("subject", subject), ("predicate", predicate), ("lens", lens)]);
                let response = client
                    .get(format!("{base}/v1/watch?{query}"))
                    .bearer_auth(token)
                    .timeout(Duration::from_secs(24 * 3600))
                    .send()
                    .await
                    .map_err(|e| SimError::Http(format!("GET /v1/watch: {e}")))?;
                if !response.status().is_success() {
                    return Err(SimError::Http(format!(
                        "GET /v1/watch answered {}",
                        response.status()
                    )));
                }
                Ok(Feed::Http {
                    body: Box::pin(response),
                    buffer: Vec::new(),
                })
            }
        }
    }
}

/// Percent-encodes query parameters.
fn url_query(pairs: &[(&str, &str)]) -> String {
    let mut out = String::new();
    for (i, (key, value)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(key);
        out.push('=');
        for byte in value.bytes() {
            if byte.is_ascii_alphanumeric() || b"-_.~".contains(&byte) {
                out.push(byte as char);
            } else {
                out.push_str(&format!("%{byte:02X}"));
            }
        }
    }
    out
}

//! The client of a node's HTTP API (`/v1`): one bounded call per tool, and the winner feed.
//!
//! Every call has a deadline and reads at most [`ANSWER_BYTES_MAX`] bytes of the answer; an
//! error answer becomes a [`CallError`] carrying the node's problem document.

use std::fmt;
use std::time::Duration;

use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderValue};
use serde::Deserialize;
use serde_json::Value;

use crate::error::{CallError, McpError};
use crate::session::ApiToken;

/// Longest wait for a whole answer: the node's default `request_timeout_ms` (10 s) plus a
/// margin, so the node's own 503 arrives before this bridge gives up.
const CALL_TIMEOUT_MS: u64 = 15_000;

/// Longest wait for a TCP connection to the node: it is usually on loopback.
const CONNECT_TIMEOUT_MS: u64 = 5_000;

/// Longest silence on any one read: the winner feed sends a keep-alive every 15 s, so three
/// missed keep-alives mean the feed is gone.
const READ_IDLE_TIMEOUT_MS: u64 = 45_000;

/// Most bytes read of one answer: the node's default `response_bytes_max` (8 MiB), so a page
/// the node sends whole is read whole, and nothing bigger is buffered.
pub(crate) const ANSWER_BYTES_MAX: usize = 8 << 20;

/// Most bytes of a non-problem error answer quoted back in a tool error.
const ANSWER_EXCERPT_BYTES_MAX: usize = 512;

/// A problem document (`application/problem+json`, RFC 9457) as the node answers it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Problem {
    /// The kind, `urn:stemedb:problem:<kind>`.
    #[serde(rename = "type", default)]
    pub kind: String,
    /// A short summary of the kind.
    #[serde(default)]
    pub title: String,
    /// The HTTP status.
    #[serde(default)]
    pub status: u16,
    /// What went wrong with this request.
    #[serde(default)]
    pub detail: String,
    /// The request field at fault, if one is.
    #[serde(default)]
    pub field: Option<String>,
    /// Seconds to wait before retrying, when the node said.
    #[serde(default)]
    pub retry_after_s: Option<u64>,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (HTTP {}, {}): {}",
            self.title, self.status, self.kind, self.detail
        )?;
        if let Some(field) = &self.field {
            write!(f, "; field `{field}`")?;
        }
        if let Some(seconds) = self.retry_after_s {
            write!(f, "; retry after {seconds} s")?;
        }
        Ok(())
    }
}

/// A node's HTTP API, e.g. `http://127.0.0.1:7410/v1`. Cheap to clone (one connection pool).
#[derive(Debug, Clone)]
pub struct NodeClient {
    http: reqwest::Client,
    /// The API's base URL, without a trailing slash.
    base: String,
}

impl NodeClient {
    /// A client of the API at `api` (`http://host:port/v1`). Only plain `http://` is
    /// supported: the node's API serves plain HTTP, on loopback by default.
    pub fn new(api: &str) -> Result<Self, McpError> {
        let base = api.trim_end_matches('/').to_owned();
        let url = reqwest::Url::parse(&base).map_err(|e| McpError::ApiUrl {
            url: api.to_owned(),
            reason: e.to_string(),
        })?;
        if url.scheme() != "http" || url.query().is_some() {
            return Err(McpError::ApiUrl {
                url: api.to_owned(),
                reason: "expected http://HOST:PORT/v1 (plain HTTP, no query)".to_owned(),
            });
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_millis(CONNECT_TIMEOUT_MS))
            .read_timeout(Duration::from_millis(READ_IDLE_TIMEOUT_MS))
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Self { http, base })
    }

    /// The API's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// `GET {base}{path}?{query}` with the key; the JSON answer.
    pub(crate) async fn get(
        &self,
        path: &str,
        query: &[(&str, String)],
        token: &ApiToken,
    ) -> Result<Value, CallError> {
        let url = format!("{}{path}", self.base);
        let request = self.http.get(&url).query(query);
        self.call(url, request, token).await
    }

    /// `POST {base}{path}?{query}` of `body` with the key; the JSON answer.
    pub(crate) async fn post(
        &self,
        path: &str,
        query: &[(&str, String)],
        body: &Value,
        token: &ApiToken,
    ) -> Result<Value, CallError> {
        let url = format!("{}{path}", self.base);
        let request = self.http.post(&url).query(query).json(body);
        self.call(url, request, token).await
    }

    /// Opens the winner feed `GET {base}/watch?...`: the answer once its status is known (an
    /// error answer is read and returned as a [`CallError`]); its body is the event stream.
    pub(crate) async fn open_watch(
        &self,
        query: &[(&str, String)],
        token: &ApiToken,
    ) -> Result<reqwest::Response, CallError> {
        let url = format!("{}/watch", self.base);
        let request = self
            .http
            .get(&url)
            .query(query)
            .header(ACCEPT, HeaderValue::from_static("text/event-stream"));
        let send = request.header(AUTHORIZATION, token.header()).send();
        let response = tokio::time::timeout(Duration::from_millis(CALL_TIMEOUT_MS), send)
            .await
            .map_err(|_| unreachable(&url, "no answer within the call timeout"))?
            .map_err(|e| unreachable(&url, &e.to_string()))?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status().as_u16();
        let body = read_bounded(&url, response).await?;
        Err(error_answer(status, &body))
    }

    async fn call(
        &self,
        url: String,
        request: reqwest::RequestBuilder,
        token: &ApiToken,
    ) -> Result<Value, CallError> {
        let request = request
            .header(AUTHORIZATION, token.header())
            .timeout(Duration::from_millis(CALL_TIMEOUT_MS));
        let response = request
            .send()
            .await
            .map_err(|e| unreachable(&url, &describe(&e)))?;
        let status = response.status();
        let body = read_bounded(&url, response).await?;
        if !status.is_success() {
            return Err(error_answer(status.as_u16(), &body));
        }
        serde_json::from_slice(&body).map_err(|e| CallError::Decode(e.to_string()))
    }
}

/// Reads a whole answer, refusing one longer than [`ANSWER_BYTES_MAX`] as soon as it is.
async fn read_bounded(url: &str, mut response: reqwest::Response) -> Result<Vec<u8>, CallError> {
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| unreachable(url, &describe(&e)))?
    {
        if body.len() + chunk.len() > ANSWER_BYTES_MAX {
            return Err(CallError::TooLarge {
                limit_bytes: ANSWER_BYTES_MAX,
            });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The error an error answer stands for: its problem document, or an excerpt of whatever it is.
pub(crate) fn error_answer(status: u16, body: &[u8]) -> CallError {
    match serde_json::from_slice::<Problem>(body) {
        Ok(problem) if !problem.title.is_empty() || !problem.detail.is_empty() => CallError::Problem(problem),
        _ => {
            let excerpt = &body[..body.len().min(ANSWER_EXCERPT_BYTES_MAX)];
            CallError::Status {
                status,
                body: String::from_utf8_lossy(excerpt).into_owned(),
            }
        }
    }
}

fn unreachable(url: &str, reason: &str) -> CallError {
    CallError::Unreachable {
        url: url.to_owned(),
        reason: reason.to_owned(),
    }
}

/// A reqwest error with its causes (its own message alone is often just "error sending
/// request").
fn describe(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    if error.is_timeout() {
        text.push_str(" (timed out)");
    }
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problem_answer_is_read_as_problem() {
        let body = br#"{"type":"urn:stemedb:problem:forbidden","title":"Forbidden","status":403,"detail":"the key may not submit as this agent","field":"agent"}"#;
        let CallError::Problem(problem) = error_answer(403, body) else {
            panic!("not a problem: {:?}", error_answer(403, body));
        };
        assert_eq!(problem.status, 403);
        assert_eq!(
            problem.to_string(),
            "Forbidden (HTTP 403, urn:stemedb:problem:forbidden): the key may not submit as \
             this agent; field `agent`"
        );
    }

    #[test]
    fn other_error_answer_is_quoted_and_cut() {
        let body = vec![b'x'; 10_000];
        let CallError::Status { status, body } = error_answer(502, &body) else {
            panic!("not a status error");
        };
        assert_eq!(status, 502);
        assert_eq!(body.len(), ANSWER_EXCERPT_BYTES_MAX);
    }

    #[test]
    fn api_address_must_be_plain_http() {
        assert!(NodeClient::new("https://example.com/v1").is_err());
        assert!(NodeClient::new("not a url").is_err());
        let node = NodeClient::new("http://127.0.0.1:7410/v1/");
        assert_eq!(
            node.map(|n| n.base).ok().as_deref(),
            Some("http://127.0.0.1:7410/v1")
        );
    }
}

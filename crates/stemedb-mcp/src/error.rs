//! The two error types: [`McpError`] stops the server (it cannot start or serve), [`CallError`]
//! fails one call and goes back to the client as a tool error with its text.

use rmcp::model::{CallToolResult, ContentBlock};
use thiserror::Error;

use crate::node::Problem;

/// Why the MCP server could not start or stopped serving.
#[derive(Debug, Error)]
pub enum McpError {
    /// The node's API address is not an `http://` URL this bridge can call.
    #[error("the node's API address {url:?} is not usable: {reason}")]
    ApiUrl {
        /// The address given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An API token that cannot be sent in a header.
    #[error("the API token is not usable: {0}")]
    Token(String),
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client: {0}")]
    Client(#[from] reqwest::Error),
    /// The streamable HTTP listener could not be opened.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The MCP session over stdio failed.
    #[error("the MCP session failed: {0}")]
    Session(String),
}

/// Why one call to the node failed. Each becomes a tool error (or, for resources, a JSON-RPC
/// error) whose text says what failed.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum CallError {
    /// The node answered with a problem (`application/problem+json`).
    #[error("{0}")]
    Problem(Problem),
    /// The node answered an error status without a problem document.
    #[error("the node answered HTTP {status}: {body}")]
    Status {
        /// The HTTP status.
        status: u16,
        /// The start of the answer, at most `ANSWER_EXCERPT_BYTES_MAX` bytes.
        body: String,
    },
    /// The node could not be reached, or did not answer in time.
    #[error("cannot reach the node at {url}: {reason}")]
    Unreachable {
        /// The URL called (without the token, which travels in a header).
        url: String,
        /// What failed.
        reason: String,
    },
    /// The answer was longer than this bridge reads.
    #[error("the node's answer is longer than {limit_bytes} bytes; ask for less (a smaller limit)")]
    TooLarge {
        /// The limit.
        limit_bytes: usize,
    },
    /// The answer was not the JSON this bridge expects.
    #[error("the node's answer is not the expected JSON: {0}")]
    Decode(String),
    /// The session has no API key to call the node with.
    #[error(
        "this MCP session has no StemeDB API key: over HTTP send `Authorization: Bearer sdb_...` \
         with the initialize request; over stdio start `stemedb mcp` with --token-file or \
         STEMEDB_TOKEN"
    )]
    NoKey,
    /// A request of an HTTP session carried a different key than the session is bound to.
    #[error("this MCP session is bound to another API key; start a new session to use this one")]
    KeyMismatch,
    /// The tool's arguments are not usable (checked before calling the node).
    #[error("{0}")]
    Input(String),
}

impl CallError {
    /// The tool result reporting this failure: `is_error: true`, one text block with the
    /// message (for a problem: title, status, detail and the field at fault).
    pub fn to_tool_result(&self) -> CallToolResult {
        CallToolResult::error(vec![ContentBlock::text(self.to_string())])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem() -> Problem {
        Problem {
            kind: "urn:stemedb:problem:rejected".to_owned(),
            title: "Rejected".to_owned(),
            status: 422,
            detail: "vote for an unknown assertion".to_owned(),
            field: Some("assertion".to_owned()),
            ..Problem::default()
        }
    }

    #[test]
    fn problem_becomes_tool_error_with_its_text() {
        let result = CallError::Problem(problem()).to_tool_result();
        assert_eq!(result.is_error, Some(true));
        let text = serde_json::to_string(&result.content).unwrap_or_default();
        assert!(text.contains("Rejected (HTTP 422"), "{text}");
        assert!(text.contains("vote for an unknown assertion"), "{text}");
        assert!(text.contains("field `assertion`"), "{text}");
    }

    #[test]
    fn unreachable_node_becomes_tool_error() {
        let error = CallError::Unreachable {
            url: "http://127.0.0.1:1/v1/resolve".to_owned(),
            reason: "connection refused".to_owned(),
        };
        let result = error.to_tool_result();
        assert_eq!(result.is_error, Some(true));
        let text = serde_json::to_string(&result.content).unwrap_or_default();
        assert!(text.contains("cannot reach the node"), "{text}");
    }
}

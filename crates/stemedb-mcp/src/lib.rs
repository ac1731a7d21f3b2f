//! An MCP server for StemeDB: assistants that speak the Model Context Protocol claim, supersede,
//! vote, resolve (with reasons), read history, resolve as of a point, read the audit trail, and
//! subscribe to winner changes, through a running node's HTTP API.
//!
//! `stemedb mcp` is a bridge: it holds no data and signs nothing itself. Every tool call is one
//! request to the node (`/v1/custodial/...` for writes, so the node signs as a custodial agent
//! of the session's API key), and a session is bound to one API key:
//!
//! - over stdio, the key the command was started with (`--token-file` or `STEMEDB_TOKEN`);
//! - over streamable HTTP, the bearer token the client sent with its `initialize` request
//!   (`Authorization: Bearer sdb_...`); a later request of the session that carries another
//!   token is refused.
//!
//! A failed call (a problem+json answer, a node that cannot be reached) is a tool result with
//! `is_error: true` and the problem's text, never a protocol error or a panic.
//!
//! Winner changes are resources, `stemedb://winner/{subject}/{predicate}?lens=...`: reading one
//! resolves the pair now; subscribing to one follows the node's winner feed (`GET /v1/watch`)
//! and sends `notifications/resources/updated` on each change.
//!
//! ```no_run
//! use stemedb_mcp::{Bridge, NodeClient};
//!
//! # async fn run() -> Result<(), stemedb_mcp::McpError> {
//! let node = NodeClient::new("http://127.0.0.1:7410/v1")?;
//! stemedb_mcp::serve_stdio(Bridge::stdio(node, Some("sdb_...".parse()?))).await
//! # }
//! ```

mod error;
mod handler;
mod node;
mod params;
mod session;
mod sse;
mod subscriptions;
mod tools;
mod transport;
mod uri;

pub use error::{CallError, McpError};
pub use handler::Bridge;
pub use node::{NodeClient, Problem};
pub use session::ApiToken;
pub use transport::{HTTP_PATH, serve_http, serve_stdio};
pub use uri::WinnerUri;

//! [`Bridge`], the MCP server of one session: its key, its node, its tools, its winner
//! resources and their subscriptions.
//!
//! The bridge speaks the handshake-era protocol (`initialize`, up to 2025-11-25): resource
//! subscriptions there are `resources/subscribe` and `notifications/resources/updated`, which
//! today's assistants use. A client that probes the 2026 lifecycle falls back to `initialize`.

use std::borrow::Cow;
use std::sync::{Arc, Mutex};

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::model::{
    Implementation, InitializeRequestParams, InitializeResult, ListResourceTemplatesResult,
    PaginatedRequestParams, ProtocolVersion, ReadResourceRequestParams, ReadResourceResponse,
    ReadResourceResult, ResourceContents, ResourceTemplate, ServerCapabilities, ServerConfig,
    SubscribeRequestParams, UnsubscribeRequestParams,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler, tool_handler};

use crate::error::CallError;
use crate::node::NodeClient;
use crate::session::{ApiToken, SessionKey};
use crate::subscriptions::{Follow, Subscriptions};
use crate::tools::resolution_summary;
use crate::uri::{UriError, WINNER_TEMPLATE, WinnerUri};

/// The newest protocol revision served: the last with `initialize` and `resources/subscribe`.
const PROTOCOL_VERSION_MAX: ProtocolVersion = ProtocolVersion::V_2025_11_25;

/// What clients are told the server is for.
const INSTRUCTIONS: &str = "StemeDB stores signed claims that agents make and disagree about. \
    `claim` a value for a subject's predicate, `vote` for the claims you trust, `resolve` to see \
    the winner under a lens with every candidate's reason, `history`, `as_of` and `audit` to look \
    back. Subscribe to stemedb://winner/{subject}/{predicate} to hear when the winner changes.";

/// The MCP server of one session, bridging to a node's HTTP API with the session's key. Over
/// HTTP, each session gets its own (see [`Bridge::http`]).
#[derive(Clone)]
pub struct Bridge {
    pub(crate) node: NodeClient,
    pub(crate) key: Arc<SessionKey>,
    subscriptions: Arc<Subscriptions>,
    tool_router: ToolRouter<Self>,
}

impl std::fmt::Debug for Bridge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bridge")
            .field("node", &self.node.base())
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl Bridge {
    fn new(node: NodeClient, key: SessionKey) -> Self {
        Self {
            node,
            key: Arc::new(key),
            subscriptions: Arc::new(Subscriptions::default()),
            tool_router: Self::tool_router(),
        }
    }

    /// A session over stdio, calling the node with `token` (without one, every tool answers
    /// that a key is needed).
    pub fn stdio(node: NodeClient, token: Option<ApiToken>) -> Self {
        Self::new(node, SessionKey::Fixed(token))
    }

    /// A session over streamable HTTP: bound to the bearer token of its `initialize` request.
    pub fn http(node: NodeClient) -> Self {
        Self::new(node, SessionKey::FromHttp(Mutex::new(None)))
    }

    /// The winner resource's current resolution, as JSON text with a summary.
    async fn read_winner(
        &self,
        uri: &str,
        context: &RequestContext<RoleServer>,
    ) -> Result<ReadResourceResult, CallError> {
        let winner: WinnerUri = uri
            .parse()
            .map_err(|e: UriError| CallError::Input(e.to_string()))?;
        let key = self.key.key(&context.extensions)?;
        let mut query = vec![("subject", winner.subject), ("predicate", winner.predicate)];
        if let Some(lens) = winner.lens {
            query.push(("lens", lens));
        }
        let resolution = self.node.get("/resolve", &query, &key).await?;
        let text = format!("{}\n{resolution}", resolution_summary(&resolution));
        Ok(ReadResourceResult::new(vec![ResourceContents::text(text, uri)]))
    }
}

/// A failed resource call, as a JSON-RPC error carrying the problem's text (resources have no
/// `is_error` result as tools do).
fn resource_error(uri: &str, error: &CallError) -> ErrorData {
    let data = Some(serde_json::json!({ "uri": uri }));
    match error {
        CallError::Input(_) => ErrorData::invalid_params(error.to_string(), data),
        _ => ErrorData::internal_error(error.to_string(), data),
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for Bridge {
    fn get_info(&self) -> ServerConfig {
        let capabilities = ServerCapabilities::builder()
            .enable_tools()
            .enable_resources()
            .enable_resources_subscribe()
            .build();
        ServerConfig::new(capabilities)
            .with_server_info(Implementation::new("stemedb", env!("CARGO_PKG_VERSION")))
            .with_protocol_version(PROTOCOL_VERSION_MAX)
            .with_instructions(INSTRUCTIONS)
    }

    fn supported_protocol_versions(&self) -> Cow<'static, [ProtocolVersion]> {
        Cow::Borrowed(ProtocolVersion::known_up_to(&PROTOCOL_VERSION_MAX))
    }

    async fn initialize(
        &self,
        request: InitializeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<InitializeResult, ErrorData> {
        self.key.bind(&context.extensions);
        context.peer.set_peer_info(request.clone());
        self.negotiate_initialize(&request)
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
        let template = ResourceTemplate::new(WINNER_TEMPLATE, "winner")
            .with_title("The winner of a subject's predicate")
            .with_description(
                "The current resolution (winner, candidates, scores, reasons) of a subject's \
                 predicate under a lens (default consensus); subject, predicate and lens \
                 percent-encoded. Subscribe to be notified when the winner changes.",
            )
            .with_mime_type("text/plain");
        Ok(ListResourceTemplatesResult::with_all_items(vec![template]))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        self.read_winner(&request.uri, &context)
            .await
            .map(Into::into)
            .map_err(|e| resource_error(&request.uri, &e))
    }

    #[allow(deprecated)]
    async fn subscribe(
        &self,
        request: SubscribeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        let uri = request.uri;
        let key = self
            .key
            .key(&context.extensions)
            .map_err(|e| resource_error(&uri, &e))?;
        let follow = Follow {
            node: self.node.clone(),
            key,
            uri: uri.clone(),
            peer: context.peer.clone(),
        };
        self.subscriptions
            .subscribe(follow)
            .await
            .map_err(|e| resource_error(&uri, &e))
    }

    #[allow(deprecated)]
    async fn unsubscribe(
        &self,
        request: UnsubscribeRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        self.subscriptions.unsubscribe(&request.uri);
        Ok(())
    }
}

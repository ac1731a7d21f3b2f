//! The two transports: stdio (one session, the process's life) and streamable HTTP at
//! [`HTTP_PATH`] (a session per client, each bound to its bearer token).

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::body::Incoming;
use hyper::http::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use rmcp::ServiceExt;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::error::McpError;
use crate::handler::Bridge;
use crate::node::NodeClient;

/// Where streamable HTTP is served; any other path is 404.
pub const HTTP_PATH: &str = "/mcp";

/// Most HTTP connections served at once; the next waits for one to close. Each session holds
/// one or two (its requests and its notification stream).
const CONNECTIONS_MAX: usize = 256;

/// Most bytes of one MCP request body: a tool call's arguments are a few hundred bytes, and
/// the node refuses a record above its own limits anyway.
const REQUEST_BODY_BYTES_MAX: usize = 1 << 20;

/// How often an idle notification stream gets a keep-alive, so proxies do not cut it.
const SSE_KEEP_ALIVE_MS: u64 = 15_000;

/// Serves one session over stdin and stdout until the client closes it.
pub async fn serve_stdio(bridge: Bridge) -> Result<(), McpError> {
    let running = bridge
        .serve(rmcp::transport::stdio())
        .await
        .map_err(|e| McpError::Session(e.to_string()))?;
    running
        .waiting()
        .await
        .map_err(|e| McpError::Session(e.to_string()))?;
    Ok(())
}

/// Serves streamable HTTP on `listener` at [`HTTP_PATH`] until `shutdown` completes: each
/// session is a [`Bridge::http`] calling `node`, bound to its client's bearer token. Requests
/// must name a loopback host or one of `allowed_hosts` (`Host` header), against DNS
/// rebinding.
pub async fn serve_http(
    listener: TcpListener,
    node: NodeClient,
    allowed_hosts: Vec<String>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), McpError> {
    let cancel = CancellationToken::new();
    let mut hosts = vec!["localhost".to_owned(), "127.0.0.1".to_owned(), "::1".to_owned()];
    hosts.extend(allowed_hosts);
    let config = StreamableHttpServerConfig::default()
        .with_allowed_hosts(hosts)
        .with_max_request_body_bytes(REQUEST_BODY_BYTES_MAX)
        .with_sse_keep_alive(Some(Duration::from_millis(SSE_KEEP_ALIVE_MS)))
        .with_cancellation_token(cancel.child_token());
    let service: StreamableHttpService<Bridge, LocalSessionManager> = StreamableHttpService::new(
        move || Ok(Bridge::http(node.clone())),
        Arc::new(LocalSessionManager::default()),
        config,
    );
    let slots = Arc::new(Semaphore::new(CONNECTIONS_MAX));
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            () = &mut shutdown => break,
            permit = Arc::clone(&slots).acquire_owned() => permit,
        };
        let Ok(permit) = permit else { break };
        let (stream, _peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of descriptors or a connection reset before accept: keep serving.
                    tracing::warn!(%error, "accept failed");
                    continue;
                }
            },
        };
        let service = service.clone();
        tokio::spawn(async move {
            let handler = hyper::service::service_fn(move |request: Request<Incoming>| {
                let service = service.clone();
                async move { Ok::<_, Infallible>(route(&service, request).await) }
            });
            let served = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), handler)
                .await;
            if let Err(error) = served {
                tracing::debug!(%error, "MCP HTTP connection ended with an error");
            }
            drop(permit);
        });
    }
    cancel.cancel();
    Ok(())
}

async fn route(
    service: &StreamableHttpService<Bridge, LocalSessionManager>,
    request: Request<Incoming>,
) -> Response<BoxBody<Bytes, Infallible>> {
    if request.uri().path() == HTTP_PATH {
        return service.handle(request).await;
    }
    let body = Full::new(Bytes::from_static(b"not found: MCP is served at /mcp\n")).boxed();
    let mut response = Response::new(body);
    *response.status_mut() = StatusCode::NOT_FOUND;
    response
}

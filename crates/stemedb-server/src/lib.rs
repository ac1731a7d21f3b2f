//! StemeDB's server: the HTTP API, API keys, the Prometheus exporter and logging, around an
//! embedded [`Node`].
//!
//! The API is versioned JSON under `/v1` on actix-web, in the node's actix System. Mount it in
//! a host's own `App` with [`configure`], or run it standalone with [`start`] (what
//! `stemedb serve` does):
//!
//! ```no_run
//! use std::sync::Arc;
//! use actix_web::{App, HttpServer, web};
//! use stemedb_server::{Api, configure, keys::KeyStore, HttpConfig};
//!
//! #[actix::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let node = stemedb::Node::start(stemedb::Config::default(), "stemedb-data")?;
//!     let (keys, _) = KeyStore::open("stemedb-data/api".as_ref())?;
//!     let api = web::Data::new(Api::new(node.clone(), Arc::new(keys), HttpConfig::default())?);
//!     HttpServer::new(move || {
//!         App::new()
//!             .route("/hello", web::get().to(|| async { "the host's own route" }))
//!             .configure(configure(api.clone()))
//!     })
//!     .bind("127.0.0.1:8080")?
//!     .run()
//!     .await?;
//!     node.shutdown().await?;
//!     Ok(())
//! }
//! ```
//!
//! - **Who may do what.** Every route but health, readiness and the OpenAPI document needs an
//!   API key (`Authorization: Bearer sdb_<id>_<secret>`, see [`keys`]) with the right role;
//!   a write must come from the key's own agents. Plain records are signed by the server as
//!   a custodial agent whose key it holds.
//! - **Limits.** Per-key token-bucket rate limits and daily record quotas (429 with
//!   `Retry-After`), and a bucket per peer address for requests without a valid key; bodies
//!   over `http.body_bytes_max` (413), batches over `http.batch_records_max` (422), requests
//!   over `http.request_timeout_ms` (503); the node's own queue budgets answer 503 too.
//!   Unknown JSON fields are refused.
//! - **Fair shares** of what clients share, so that no key takes it from the others: the body
//!   budget (the key and its role are checked before a body is read, then its bytes come out of
//!   the key's share; a slow body times out, 408), the outbound budget (answers not yet read;
//!   long lists are cut to `http.response_bytes_max`, and an answer not sent in
//!   `http.send_timeout_ms` closes its connection), the winner feeds (per key; a revoked key's
//!   feeds end within a second or two) and, in the node, the views. See [`admission`] and
//!   [`outbound`].
//! - **Errors** are `application/problem+json` ([`problem`]); no input yields a 500.
//! - **OpenAPI 3.1** at `/v1/openapi.json`, generated from the handlers ([`openapi`]).

pub mod admission;
pub mod auth;
mod config;
mod feeds;
pub mod keys;
mod logging;
mod observe;
mod openapi;
pub mod outbound;
pub mod problem;
mod routes;
mod server_config;
mod telemetry_config;
mod trace_export;
pub mod types;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::from_fn;
use actix_web::{App, HttpServer, web};

pub use config::HttpConfig;
use keys::KeyStore;
pub use logging::LoggingError;
pub use logging::init_logging;
pub use metrics_exporter_prometheus::PrometheusHandle;
pub use observe::{prometheus_recorder, serve_metrics};
pub use openapi::openapi;
use problem::ApiError;
pub use server_config::{DEFAULT_CONFIG_TOML, ServerConfig, StartError};
pub use stemedb_jetstream::{ReplicationConfig, ReplicationMode};
pub use telemetry_config::{LogFormat, TelemetryConfig};
pub use trace_export::{ExportError, TraceExport};

use stemedb::config::ConfigError;
use stemedb::node::Node;

/// What every handler shares: the node, the keys, the limits and the meters.
pub struct Api {
    node: Node,
    keys: Arc<KeyStore>,
    config: HttpConfig,
    meters: auth::Meters,
    bodies: admission::BodyBudget,
    outbound: Arc<outbound::OutboundBudget>,
    feeds: Arc<feeds::FeedSlots>,
    openapi_json: String,
    pub(crate) methods: routes::Methods,
    closing: Arc<tokio::sync::watch::Sender<bool>>,
    /// The recorder `/metrics` renders, if this server serves it.
    metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
}

impl Api {
    /// The state of a server for `node` with `keys` and `config`; refuses a `config` whose
    /// values are out of range or contradict each other (the error names the field).
    pub fn new(node: Node, keys: Arc<KeyStore>, config: HttpConfig) -> Result<Self, ConfigError> {
        config.validate().map_err(ConfigError::invalid_value)?;
        let meters = auth::Meters::new(&config);
        let document = openapi();
        let openapi_json = document.to_pretty_json().unwrap_or_default();
        let methods = routes::Methods::of(&document);
        Ok(Self {
            node,
            keys,
            config,
            meters,
            bodies: admission::BodyBudget::default(),
            outbound: Arc::default(),
            feeds: Arc::default(),
            openapi_json,
            methods,
            closing: Arc::new(tokio::sync::watch::channel(false).0),
            metrics: None,
        })
    }

    /// Serves `handle`'s metrics at `/metrics` (else that route answers 404).
    pub fn with_metrics(mut self, handle: metrics_exporter_prometheus::PrometheusHandle) -> Self {
        self.metrics = Some(handle);
        self
    }

    /// A receiver that turns true when the server stops: open feeds end then.
    pub(crate) fn closing(&self) -> tokio::sync::watch::Receiver<bool> {
        self.closing.subscribe()
    }

    /// A slot for a winner feed of `key` (503 past `http.watchers_max` or the key's share).
    pub(crate) fn feed_slot(&self, key: &str) -> Result<feeds::FeedSlot, ApiError> {
        self.feeds.take(
            key,
            self.config.watchers_max,
            self.config.watchers_per_key_max.min(self.config.watchers_max),
        )
    }
}

fn json_error(error: actix_web::error::JsonPayloadError) -> ApiError {
    use actix_web::error::JsonPayloadError as E;
    if matches!(error, E::OverflowKnownLength { .. } | E::Overflow { .. }) {
        observe::rejected("body_too_large");
    }
    match error {
        E::OverflowKnownLength { length, limit } => ApiError::too_large(
            format!("the body is {length} bytes; the limit is {limit} bytes (http.body_bytes_max)"),
            limit as u64,
        ),
        E::Overflow { limit } => ApiError::too_large(
            format!("the body is over the limit of {limit} bytes (http.body_bytes_max)"),
            limit as u64,
        ),
        E::ContentType => ApiError::unsupported_media_type("the body must be application/json"),
        E::Deserialize(error) if error.is_data() => {
            let message = error.to_string();
            let field = message
                .split('`')
                .nth(1)
                .filter(|_| message.starts_with("unknown field") || message.starts_with("missing field"))
                .unwrap_or("body")
                .to_owned();
            ApiError::unprocessable(field, format!("the body does not fit the schema: {message}"))
        }
        E::Deserialize(error) => ApiError::bad_request(format!("the body is not valid JSON: {error}")),
        E::Payload(actix_web::error::PayloadError::Io(error))
            if error.kind() == std::io::ErrorKind::TimedOut =>
        {
            observe::rejected("body_timeout");
            ApiError::body_timeout(error.to_string())
        }
        other => ApiError::bad_request(format!("the body could not be read: {other}")),
    }
}

/// The `/v1` scope with what its routes need: the API state, JSON, query and path limits and
/// their problem answers, and a problem+json 404 for any other path under `/v1`. Its settings
/// stay inside the scope: a host's own routes keep theirs.
fn api_routes(
    api: web::Data<Api>,
) -> utoipa_actix_web::scope::Scope<
    impl actix_web::dev::ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    let limit = api.config.body_bytes_max;
    let json = web::JsonConfig::default()
        .limit(limit)
        .error_handler(|error, _| json_error(error).into());
    let query = web::QueryConfig::default()
        .error_handler(|error, _| ApiError::bad_request(format!("bad query parameters: {error}")).into());
    let path = web::PathConfig::default()
        .error_handler(|error, _| ApiError::bad_request(format!("bad path parameter: {error}")).into());
    routes::scope()
        .app_data(api)
        .app_data(json)
        .app_data(query)
        .app_data(path)
        .default_service(web::to(not_found))
}

/// Any request no route took: 405 with `Allow` if its path names a route of another method,
/// else 404.
async fn not_found(req: actix_web::HttpRequest) -> Result<actix_web::HttpResponse, ApiError> {
    let allowed = req
        .app_data::<web::Data<Api>>()
        .and_then(|api| api.methods.allowed(req.path()).map(str::to_owned));
    match allowed {
        Some(allow) => Err(ApiError::method_not_allowed(
            format!(
                "{} is not a method of {}; it has {allow}",
                req.method(),
                req.path()
            ),
            allow,
        )),
        None => Err(ApiError::not_found("no such route")),
    }
}

/// Mounts the API (every route under `/v1`) in a host's own actix-web `App`, beside the host's
/// routes: `App::new().configure(configure(api.clone()))`. The API's limits, admission (body
/// budget, request timeout), request metrics and CORS apply to its routes only. `/metrics` is
/// not mounted: a host installs and exports its own recorder (see [`prometheus_recorder`]).
pub fn configure(api: web::Data<Api>) -> impl FnOnce(&mut web::ServiceConfig) {
    move |config| {
        let cors = cors(&api.config.cors_origins);
        config.service(
            api_routes(api)
                .wrap(from_fn(outbound::bound))
                .wrap(from_fn(admission::admit))
                .wrap(from_fn(observe::observe))
                .wrap(cors),
        );
    }
}

/// Builds the standalone app: the API's scope, `/metrics`, and a problem+json 404, every
/// request under admission, request metrics and CORS.
fn app(
    api: web::Data<Api>,
) -> App<
    impl actix_web::dev::ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    let cors = cors(&api.config.cors_origins);
    App::new()
        .app_data(api.clone())
        .service(api_routes(api))
        .service(routes::metrics_route())
        .default_service(web::to(not_found))
        .wrap(from_fn(outbound::bound))
        .wrap(from_fn(admission::admit))
        .wrap(from_fn(observe::observe))
        .wrap(cors)
}

fn cors(origins: &[String]) -> actix_cors::Cors {
    let cors = actix_cors::Cors::default()
        .allowed_methods(["GET", "POST", "DELETE"])
        .allowed_headers([
            actix_web::http::header::AUTHORIZATION,
            actix_web::http::header::CONTENT_TYPE,
        ])
        .max_age(3600);
    if origins.iter().any(|o| o == "*") {
        return cors.allow_any_origin();
    }
    origins
        .iter()
        .fold(cors, |cors, origin| cors.allowed_origin(origin))
}

/// A running server.
pub struct Server {
    /// The addresses it listens on.
    pub addrs: Vec<SocketAddr>,
    /// Stops it.
    pub stopper: Stopper,
    /// Resolves once it stopped.
    pub running: actix_web::dev::Server,
}

/// Stops a server: ends its open winner feeds, then lets requests in progress finish (for up
/// to 5 s) and closes its connections.
#[derive(Clone)]
pub struct Stopper {
    handle: actix_web::dev::ServerHandle,
    closing: Arc<tokio::sync::watch::Sender<bool>>,
}

impl Stopper {
    /// Stops the server gracefully; returns once it stopped.
    pub async fn stop(&self) {
        self.closing.send_replace(true);
        self.handle.stop(true).await;
    }
}

/// Starts serving `api` on `api.config.bind`; with `signals`, SIGINT and SIGTERM stop it
/// gracefully. Must be called inside the node's actix System.
pub fn start(api: Api, signals: bool) -> std::io::Result<Server> {
    let listener = bind(&api.config.bind)?;
    start_on(api, listener, signals)
}

/// Connections the kernel queues for a listener before the server accepts them: actix's own
/// default, room for a burst of new clients.
pub const LISTEN_BACKLOG: i32 = 2048;

/// Binds a listener to `addr` (`host:port`) as the server would: address reuse on, a backlog of
/// [`LISTEN_BACKLOG`]. `stemedb serve` binds with it before it writes anything.
pub fn bind(addr: &str) -> std::io::Result<std::net::TcpListener> {
    use std::net::ToSocketAddrs;
    let mut last = None;
    for addr in addr.to_socket_addrs()? {
        let socket = socket2::Socket::new(socket2::Domain::for_address(addr), socket2::Type::STREAM, None)?;
        socket.set_reuse_address(true)?;
        match socket
            .bind(&addr.into())
            .and_then(|()| socket.listen(LISTEN_BACKLOG))
        {
            Ok(()) => return Ok(socket.into()),
            Err(error) => last = Some(error),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "no address to bind")))
}

/// Starts serving `api` on `listener`, bound beforehand (so a busy address is found before
/// anything is written: `stemedb serve` binds first); as [`start`] otherwise.
pub fn start_on(api: Api, listener: std::net::TcpListener, signals: bool) -> std::io::Result<Server> {
    let config = api.config.clone();
    let closing = api.closing.clone();
    let api = web::Data::new(api);
    let server = HttpServer::new(move || app(api.clone()))
        .workers(config.workers())
        .max_connections(config.connections_max)
        .client_request_timeout(Duration::from_millis(config.request_timeout_ms))
        .on_connect(outbound::on_connect(Duration::from_millis(
            config.send_timeout_ms,
        )))
        .shutdown_timeout(5)
        .disable_signals()
        .listen(listener)?;
    let addrs = server.addrs();
    let running = server.run();
    let stopper = Stopper {
        handle: running.handle(),
        closing,
    };
    if signals {
        let on_signal = stopper.clone();
        actix_rt::spawn(async move {
            use actix_rt::signal::unix::{SignalKind, signal};
            let Ok(mut term) = signal(SignalKind::terminate()) else {
                return tracing::error!("cannot listen for SIGTERM");
            };
            let _ = futures_util::future::select(Box::pin(term.recv()), Box::pin(actix_rt::signal::ctrl_c()))
                .await;
            on_signal.stop().await;
        });
    }
    Ok(Server {
        addrs,
        stopper,
        running,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    /// Every `$ref` of `value`, recursively.
    fn refs<'a>(value: &'a serde_json::Value, found: &mut Vec<&'a str>) {
        match value {
            serde_json::Value::Object(map) => {
                for (key, inner) in map {
                    match (key.as_str(), inner) {
                        ("$ref", serde_json::Value::String(target)) => found.push(target),
                        _ => refs(inner, found),
                    }
                }
            }
            serde_json::Value::Array(items) => items.iter().for_each(|item| refs(item, found)),
            _ => {}
        }
    }

    #[test]
    fn every_reference_of_the_document_resolves() {
        let document = serde_json::to_value(super::openapi()).unwrap();
        let mut found = Vec::new();
        refs(&document, &mut found);
        assert!(!found.is_empty());
        for target in found {
            let pointer = target.strip_prefix('#').unwrap();
            assert!(
                document.pointer(pointer).is_some(),
                "{target} is not in the document"
            );
        }
    }
}

//! `stemedb mcp`: an MCP server bridging assistants to a running node's HTTP API, over stdio
//! (the default) or streamable HTTP (`--http`). See the `stemedb-mcp` crate.

use std::io::Read;
use std::path::{Path, PathBuf};

use clap::Args;
use stemedb_mcp::{ApiToken, Bridge, HTTP_PATH, NodeClient};

use super::CliError;

/// The environment variable holding the API key's token when `--token-file` is not given.
const TOKEN_ENV: &str = "STEMEDB_TOKEN";

/// Most bytes read from a token file: a token is under 100 bytes.
const TOKEN_FILE_BYTES_MAX: u64 = 4096;

/// `stemedb mcp` arguments.
#[derive(Debug, Args)]
pub(crate) struct McpArgs {
    /// The node's HTTP API (plain http://).
    #[arg(long, default_value = "http://127.0.0.1:7410/v1", value_name = "URL")]
    api: String,
    /// Over stdio: a file holding the API key's token (e.g. stemedb-data/api/admin.token);
    /// without it, the STEMEDB_TOKEN environment variable. Writes are signed by the node as a
    /// custodial agent of that key.
    #[arg(long, value_name = "PATH")]
    token_file: Option<PathBuf>,
    /// Serve streamable HTTP at http://ADDR:PORT/mcp instead of stdio. Each MCP session is
    /// bound to the API key its client sends (`Authorization: Bearer sdb_...`); --token-file
    /// and STEMEDB_TOKEN are not used. Port 0 picks a free port; the address is printed on
    /// stderr.
    #[arg(long, value_name = "ADDR:PORT")]
    http: Option<String>,
    /// With --http: a Host name (or host:port) to answer besides localhost, 127.0.0.1 and ::1
    /// (refused otherwise, against DNS rebinding). Repeatable.
    #[arg(long, value_name = "HOST", requires = "http")]
    allowed_host: Vec<String>,
}

/// What the bridge logs, on stderr (stdout carries the protocol over stdio): warnings, such
/// as a winner feed that broke, unless `RUST_LOG` says otherwise.
const LOG_LEVEL: &str = "warn";

pub(crate) fn run(args: &McpArgs) -> Result<(), CliError> {
    let telemetry = stemedb_server::TelemetryConfig {
        log_level: LOG_LEVEL.to_owned(),
        log_format: stemedb_server::LogFormat::Compact,
        ..stemedb_server::TelemetryConfig::default()
    };
    // Logging only: the default configuration exports no spans, so there is none to flush.
    let _no_export = stemedb_server::init_logging(&telemetry).map_err(|e| CliError::Input(e.to_string()))?;
    let node = NodeClient::new(&args.api).map_err(|e| CliError::Input(e.to_string()))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|source| CliError::Io {
            context: "cannot start the async runtime".to_owned(),
            source,
        })?;
    match &args.http {
        None => {
            let token = token(args.token_file.as_deref())?;
            if token.is_none() {
                eprintln!("stemedb mcp: no API key (--token-file or {TOKEN_ENV}): every tool will say so");
            }
            runtime
                .block_on(stemedb_mcp::serve_stdio(Bridge::stdio(node, token)))
                .map_err(|e| CliError::Input(e.to_string()))
        }
        Some(addr) => {
            if args.token_file.is_some() {
                return Err(CliError::Input(
                    "--token-file is for stdio; over --http each client sends its own key \
                     (Authorization: Bearer ...)"
                        .to_owned(),
                ));
            }
            runtime.block_on(serve_http(addr, node, args.allowed_host.clone()))
        }
    }
}

async fn serve_http(addr: &str, node: NodeClient, allowed_hosts: Vec<String>) -> Result<(), CliError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| CliError::Io {
            context: format!("cannot listen on {addr}"),
            source,
        })?;
    let local = listener.local_addr().map_err(|source| CliError::Io {
        context: format!("cannot read the address of {addr}"),
        source,
    })?;
    eprintln!(
        "stemedb mcp: serving MCP (streamable HTTP) at http://{local}{HTTP_PATH}, for the node at {}",
        node.base()
    );
    stemedb_mcp::serve_http(listener, node, allowed_hosts, shutdown_signal())
        .await
        .map_err(|e| CliError::Input(e.to_string()))
}

/// Completes on SIGINT or SIGTERM (or at once if neither can be listened for).
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut terminate) = signal(SignalKind::terminate()) else {
        return;
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
}

/// The token from `--token-file`, else from `STEMEDB_TOKEN`, else none.
fn token(file: Option<&Path>) -> Result<Option<ApiToken>, CliError> {
    let text = match file {
        Some(path) => {
            let mut text = String::new();
            std::fs::File::open(path)
                .and_then(|f| f.take(TOKEN_FILE_BYTES_MAX).read_to_string(&mut text))
                .map_err(|source| CliError::Io {
                    context: format!("cannot read the token file {}", path.display()),
                    source,
                })?;
            text
        }
        None => match std::env::var(TOKEN_ENV) {
            Ok(text) => text,
            Err(_) => return Ok(None),
        },
    };
    text.parse()
        .map(Some)
        .map_err(|e: stemedb_mcp::McpError| CliError::Input(e.to_string()))
}

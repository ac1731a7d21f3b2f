//! `stemedb serve`: the node and its HTTP API, until SIGINT or SIGTERM.

use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;

use super::CliError;
use stemedb::config::Config;
use stemedb::http::keys::KeyStore;
use stemedb::http::{Api, serve_metrics, start};
use stemedb::node::Node;
use stemedb::telemetry::{LogFormat, TelemetryConfig};

/// Where the API keys and custodial agents live, inside the data directory.
const API_DIR: &str = "api";

/// How often the metrics recorder's histograms are folded in between scrapes.
const UPKEEP_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);

/// `stemedb serve` arguments.
#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// The data directory (created if missing).
    #[arg(long, default_value = "stemedb-data", value_name = "DIR")]
    data_dir: PathBuf,
    /// Listen on this address instead of `http.bind`.
    #[arg(long, value_name = "ADDR:PORT")]
    bind: Option<String>,
}

pub(crate) fn run(args: &ServeArgs, config: &Config) -> Result<(), CliError> {
    let mut config = config.clone();
    if let Some(bind) = &args.bind {
        config.http.bind.clone_from(bind);
        config.http.validate().map_err(CliError::Input)?;
    }
    let failed = |what: &str| {
        let what = what.to_owned();
        move |e: &dyn std::fmt::Display| CliError::Input(format!("{what}: {e}"))
    };
    init_logging(&config.telemetry)?;
    // Installed before the node starts, so that the node describes its metrics to it.
    let metrics = if config.telemetry.metrics {
        let recorder = stemedb::telemetry::prometheus_recorder();
        let handle = recorder.handle();
        metrics::set_global_recorder(recorder)
            .map_err(|e| CliError::Input(format!("cannot install the metrics recorder: {e}")))?;
        Some(handle)
    } else {
        None
    };
    actix::System::new().block_on(async move {
        let node = Node::start(config.clone(), &args.data_dir).map_err(|e| failed("cannot start the node")(&e))?;
        let (keys, created) =
            KeyStore::open(&args.data_dir.join(API_DIR)).map_err(|e| failed("cannot open the API keys")(&e))?;
        if let Some(path) = created {
            println!(
                "first start: a development admin key (all roles, bound to a custodial agent) is in {} (mode 0600)",
                path.display()
            );
        }
        let mut api = Api::new(node.clone(), Arc::new(keys), config.http.clone());
        let mut metrics_server = None;
        if let Some(handle) = metrics {
            // Histograms are folded in at each scrape; between scrapes, upkeep bounds them.
            let upkeep = handle.clone();
            actix::spawn(async move {
                let mut every = actix_rt::time::interval(UPKEEP_INTERVAL);
                loop {
                    every.tick().await;
                    upkeep.run_upkeep();
                }
            });
            let bind = &config.telemetry.metrics_bind;
            if bind.is_empty() {
                api = api.with_metrics(handle);
            } else {
                let (addrs, server) = serve_metrics(bind, node.clone(), handle)
                    .map_err(|e| failed(&format!("cannot listen on {bind} for /metrics"))(&e))?;
                for addr in addrs {
                    println!("metrics at http://{addr}/metrics");
                }
                metrics_server = Some(server.handle());
                actix::spawn(server);
            }
        }
        let server = start(api, true).map_err(|e| failed(&format!("cannot listen on {}", config.http.bind))(&e))?;
        for addr in &server.addrs {
            println!("stemedb {} serving http://{addr}/v1 (data in {})", env!("CARGO_PKG_VERSION"), args.data_dir.display());
        }
        let served = server.running.await;
        if let Some(metrics_server) = metrics_server {
            metrics_server.stop(true).await;
        }
        println!("stopping: flushing the journal and the state");
        let stopped = node.shutdown().await;
        served.map_err(|e| failed("the server failed")(&e))?;
        stopped.map_err(|e| failed("shutdown failed")(&e))?;
        println!("stopped");
        Ok(())
    })
}

/// Installs the log subscriber: `telemetry.log_format` on stderr, at `telemetry.log_level`
/// unless `RUST_LOG` says otherwise.
fn init_logging(config: &TelemetryConfig) -> Result<(), CliError> {
    use tracing_subscriber::EnvFilter;
    let filter = match std::env::var(EnvFilter::DEFAULT_ENV) {
        Ok(directives) if !directives.is_empty() => EnvFilter::builder()
            .parse(&directives)
            .map_err(|e| CliError::Input(format!("RUST_LOG = {directives:?}: {e}")))?,
        _ => EnvFilter::builder()
            .parse(&config.log_level)
            .map_err(|e| CliError::Input(format!("telemetry.log_level: {e}")))?,
    };
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let installed = match config.log_format {
        LogFormat::Pretty => builder.pretty().try_init(),
        LogFormat::Compact => builder.compact().try_init(),
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .try_init(),
    };
    installed.map_err(|e| CliError::Input(format!("cannot install the log subscriber: {e}")))
}

//! `stemedb serve`: the node and its HTTP API, until SIGINT or SIGTERM.

use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;

use super::CliError;
use stemedb_server::ServerConfig as Config;
use stemedb_server::keys::KeyStore;
use stemedb_server::{Api, init_logging, serve_metrics, start_on};

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
    // Bind before anything is written: a busy address is one clear line, and leaves no data
    // directory or admin key behind.
    let bind = &config.http.bind;
    let listener = stemedb_server::bind(bind).map_err(|e| failed(&format!("cannot listen on {bind}"))(&e))?;
    let metrics_bind = &config.telemetry.metrics_bind;
    let metrics_listener = if config.telemetry.metrics && !metrics_bind.is_empty() {
        Some(
            stemedb_server::bind(metrics_bind)
                .map_err(|e| failed(&format!("cannot listen on {metrics_bind} for /metrics"))(&e))?,
        )
    } else {
        None
    };
    let trace_export = init_logging(&config.telemetry).map_err(|e| CliError::Input(e.to_string()))?;
    // Installed before the node starts, so that the node describes its metrics to it.
    let metrics = if config.telemetry.metrics {
        let recorder = stemedb_server::prometheus_recorder();
        let handle = recorder.handle();
        metrics::set_global_recorder(recorder)
            .map_err(|e| CliError::Input(format!("cannot install the metrics recorder: {e}")))?;
        Some(handle)
    } else {
        None
    };
    let ran = actix::System::new().block_on(async move {
        let node = config
            .start_node(&args.data_dir)
            .map_err(|e| failed("cannot start the node")(&e))?;
        let served = serve(args, &config, &node, listener, metrics_listener, metrics).await;
        println!("stopping: flushing the journal and the state");
        let stopped = node.shutdown().await;
        served?;
        stopped.map_err(|e| failed("shutdown failed")(&e))?;
        println!("stopped");
        Ok(())
    });
    // Outside the runtime (the exporter's client blocks): the last spans, the shutdown's
    // included, are sent before the process ends.
    if let Some(export) = trace_export
        && let Err(error) = export.shutdown()
    {
        eprintln!("{error}");
    }
    ran
}

/// Serves the started `node` until a signal stops the server. On an error the caller still
/// shuts the node down, so that nothing is torn down outside the System.
async fn serve(
    args: &ServeArgs,
    config: &Config,
    node: &stemedb::Node,
    listener: std::net::TcpListener,
    metrics_listener: Option<std::net::TcpListener>,
    metrics: Option<stemedb_server::PrometheusHandle>,
) -> Result<(), CliError> {
    let failed = |what: &str| {
        let what = what.to_owned();
        move |e: &dyn std::fmt::Display| CliError::Input(format!("{what}: {e}"))
    };
    let (keys, created) =
        KeyStore::open(&args.data_dir.join(API_DIR)).map_err(|e| failed("cannot open the API keys")(&e))?;
    if let Some(path) = created {
        println!(
            "first start: a development admin key (all roles, bound to a custodial agent) is in {} (mode 0600)",
            path.display()
        );
    }
    let mut api = Api::new(node.clone(), Arc::new(keys), config.http.clone())
        .map_err(|e| failed("invalid [http] configuration")(&e))?;
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
        match metrics_listener {
            None => api = api.with_metrics(handle),
            Some(listener) => {
                let (addrs, server) = serve_metrics(listener, node.clone(), handle)
                    .map_err(|e| failed("cannot serve /metrics")(&e))?;
                for addr in addrs {
                    println!("metrics at http://{addr}/metrics");
                }
                metrics_server = Some(server.handle());
                actix::spawn(server);
            }
        }
    }
    let server = start_on(api, listener, true)
        .map_err(|e| failed(&format!("cannot serve on {}", config.http.bind))(&e))?;
    for addr in &server.addrs {
        println!(
            "stemedb {} serving http://{addr}/v1 (data in {})",
            env!("CARGO_PKG_VERSION"),
            args.data_dir.display()
        );
    }
    let served = server.running.await;
    if let Some(metrics_server) = metrics_server {
        metrics_server.stop(true).await;
    }
    served.map_err(|e| failed("the server failed")(&e))
}

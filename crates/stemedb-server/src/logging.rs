//! [`init_logging`]: the tracing subscriber of a server process, and the export of its spans.

use std::io::IsTerminal;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

use crate::trace_export::{self, ExportError, TraceExport};
use crate::{LogFormat, TelemetryConfig};

/// A log subscriber that could not be installed.
#[derive(Debug, thiserror::Error)]
pub enum LoggingError {
    /// `RUST_LOG` or `telemetry.log_level` is not a valid filter.
    #[error("{origin} = {directives:?}: {source}")]
    Filter {
        /// `RUST_LOG` or `telemetry.log_level`.
        origin: &'static str,
        /// The directives given.
        directives: String,
        /// What the parser said.
        source: tracing_subscriber::filter::ParseError,
    },
    /// The span exporter (`telemetry.otlp_*`) could not start.
    #[error(transparent)]
    Export(#[from] ExportError),
    /// A global subscriber is installed already.
    #[error("cannot install the log subscriber: {0}")]
    Install(String),
}

/// Installs the process's log subscriber: `telemetry.log_format` on stderr, at
/// `telemetry.log_level` unless `RUST_LOG` says otherwise; and, if `telemetry.otlp_endpoint`
/// is set, the export of spans at `telemetry.otlp_level`, returned as the [`TraceExport`] to
/// shut down when the server stops. A host that embeds the server and logs on its own does
/// not call it.
pub fn init_logging(config: &TelemetryConfig) -> Result<Option<TraceExport>, LoggingError> {
    let (origin, directives) = match std::env::var(EnvFilter::DEFAULT_ENV) {
        Ok(directives) if !directives.is_empty() => ("RUST_LOG", directives),
        _ => ("telemetry.log_level", config.log_level.clone()),
    };
    let filter = EnvFilter::builder()
        .parse(&directives)
        .map_err(|source| LoggingError::Filter {
            origin,
            directives,
            source,
        })?;
    if config.exports_traces() {
        return init_exporting(config, filter).map(Some);
    }
    // Without export, the subscriber is exactly the plain formatter with a global filter:
    // spans below the log level are disabled at their call sites.
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
    installed.map_err(|error| LoggingError::Install(error.to_string()))?;
    Ok(None)
}

/// The subscriber with export: the log and the exporter each behind a filter of its own, so
/// that the engine's `debug` spans are exported while the log stays at its level.
fn init_exporting(config: &TelemetryConfig, filter: EnvFilter) -> Result<TraceExport, LoggingError> {
    let log = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let log: Box<dyn Layer<Registry> + Send + Sync> = match config.log_format {
        LogFormat::Pretty => log.pretty().with_filter(filter).boxed(),
        LogFormat::Compact => log.compact().with_filter(filter).boxed(),
        LogFormat::Json => log
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .with_filter(filter)
            .boxed(),
    };
    let (export_layer, export) = trace_export::layer::<Registry>(config)?;
    let layers = vec![log, export_layer.boxed()];
    if let Err(error) = Registry::default().with(layers).try_init() {
        // Nothing was exported; the exporter's thread is stopped with it.
        let _ = export.shutdown();
        return Err(LoggingError::Install(error.to_string()));
    }
    trace_export::start_propagating();
    Ok(export)
}

//! [`init_logging`]: the tracing subscriber of a server process.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

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
    /// A global subscriber is installed already.
    #[error("cannot install the log subscriber: {0}")]
    Install(String),
}

/// Installs the process's log subscriber: `telemetry.log_format` on stderr, at
/// `telemetry.log_level` unless `RUST_LOG` says otherwise. A host that embeds the server and
/// logs on its own does not call it.
pub fn init_logging(config: &TelemetryConfig) -> Result<(), LoggingError> {
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
    installed.map_err(|error| LoggingError::Install(error.to_string()))
}

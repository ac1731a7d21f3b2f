//! `[telemetry]`: metrics exposition and logging of `stemedb serve`.

use serde::{Deserialize, Serialize};

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Multi-line, human-readable.
    #[default]
    Pretty,
    /// One line per event.
    Compact,
    /// One JSON object per line, span fields included.
    Json,
}

/// Metrics and logging (`[telemetry]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetryConfig {
    /// Record metrics and serve them at `/metrics` (default true).
    pub metrics: bool,
    /// Where `/metrics` is served: empty (the default) for the API's own address, else a
    /// separate `address:port`.
    pub metrics_bind: String,
    /// Log format on stderr (default pretty).
    pub log_format: LogFormat,
    /// Log level as `tracing` directives (default `info`); `RUST_LOG` overrides it.
    pub log_level: String,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            metrics: true,
            metrics_bind: String::new(),
            log_format: LogFormat::Pretty,
            log_level: "info".to_owned(),
        }
    }
}

impl TelemetryConfig {
    /// Checks the fields; returns a message naming the bad one.
    pub fn validate(&self) -> Result<(), String> {
        if !self.metrics_bind.is_empty() && self.metrics_bind.parse::<std::net::SocketAddr>().is_err() {
            return Err(format!(
                "telemetry.metrics_bind = {:?}: not an address:port (or empty for the API's address)",
                self.metrics_bind
            ));
        }
        tracing_subscriber::EnvFilter::builder()
            .parse(&self.log_level)
            .map_err(|e| format!("telemetry.log_level = {:?}: {e}", self.log_level))?;
        Ok(())
    }
}

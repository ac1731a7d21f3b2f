//! `[telemetry]`: metrics exposition, logging and trace export of `stemedb serve`.
//!
//! Every field is checked by [`TelemetryConfig::validate`] before anything starts, so that a
//! bad value is one clear line naming the key, never a failure halfway through startup.

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

/// The longest `otlp_service_name`, in bytes: a name, not a document; collectors index it.
pub const OTLP_SERVICE_NAME_BYTES_MAX: usize = 256;

/// The default `otlp_service_name`.
pub const OTLP_SERVICE_NAME_DEFAULT: &str = "stemedb";

/// Metrics, logging and trace export (`[telemetry]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
    /// Where spans are exported with OTLP over HTTP (protobuf): an `http://` URL, such as a
    /// collector's `http://127.0.0.1:4318/v1/traces` (a URL without a path gets `/v1/traces`).
    /// Empty (the default) exports nothing and costs nothing.
    pub otlp_endpoint: String,
    /// The `service.name` of the exported spans (default `stemedb`).
    pub otlp_service_name: String,
    /// The share of new traces exported, from 0.0 to 1.0 (default 1.0). A request that carries
    /// a `traceparent` follows its caller's sampling decision instead.
    pub otlp_sampling_ratio: f64,
    /// Which spans are exported, as `tracing` directives (default `info,stemedb=debug`: the
    /// requests, and the engine's spans down to the group commit and the ingest commit). It
    /// filters the export alone: the log keeps `log_level`.
    pub otlp_level: String,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            metrics: true,
            metrics_bind: String::new(),
            log_format: LogFormat::Pretty,
            log_level: "info".to_owned(),
            otlp_endpoint: String::new(),
            otlp_service_name: OTLP_SERVICE_NAME_DEFAULT.to_owned(),
            otlp_sampling_ratio: 1.0,
            otlp_level: "info,stemedb=debug".to_owned(),
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
        self.validate_otlp()
    }

    /// Returns true if and only if spans are exported (`otlp_endpoint` is set).
    pub fn exports_traces(&self) -> bool {
        !self.otlp_endpoint.is_empty()
    }

    /// Checks the `otlp_*` fields, whether or not export is on: a mistake is found when it is
    /// made, not on the day export is turned on.
    fn validate_otlp(&self) -> Result<(), String> {
        if self.exports_traces() {
            otlp_traces_url(&self.otlp_endpoint)?;
        }
        let name = &self.otlp_service_name;
        if name.trim().is_empty()
            || name.len() > OTLP_SERVICE_NAME_BYTES_MAX
            || name.chars().any(char::is_control)
        {
            return Err(format!(
                "telemetry.otlp_service_name = {name:?}: must be 1 to {OTLP_SERVICE_NAME_BYTES_MAX} bytes of \
                 printable text"
            ));
        }
        let ratio = self.otlp_sampling_ratio;
        if !(0.0..=1.0).contains(&ratio) {
            return Err(format!(
                "telemetry.otlp_sampling_ratio = {ratio}: must be from 0.0 (no new trace) to 1.0 (every one)"
            ));
        }
        tracing_subscriber::EnvFilter::builder()
            .parse(&self.otlp_level)
            .map_err(|e| format!("telemetry.otlp_level = {:?}: {e}", self.otlp_level))?;
        Ok(())
    }
}

/// Returns the URL spans are posted to for `endpoint` (`/v1/traces` appended when it has no
/// path), or a message naming `telemetry.otlp_endpoint` if it is not a plain `http://` URL.
/// This build sends OTLP without TLS: an `https://` endpoint is refused rather than sent in
/// clear.
pub(crate) fn otlp_traces_url(endpoint: &str) -> Result<String, String> {
    let refuse = |why: &str| format!("telemetry.otlp_endpoint = {endpoint:?}: {why}");
    if endpoint.starts_with("https://") {
        return Err(refuse(
            "https is not supported by this build (OTLP is sent without TLS); use http:// to a local \
             collector or agent",
        ));
    }
    let Some(rest) = endpoint.strip_prefix("http://") else {
        return Err(refuse(
            "must be an http:// URL, such as http://127.0.0.1:4318/v1/traces",
        ));
    };
    if rest.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(refuse("must not contain spaces or control characters"));
    }
    let (authority, path) = match rest.find('/') {
        Some(slash) => rest.split_at(slash),
        None => (rest, ""),
    };
    if authority.is_empty() || authority.contains('@') {
        return Err(refuse("must name a host (and port), without credentials"));
    }
    Ok(if path.is_empty() || path == "/" {
        format!("http://{authority}/v1/traces")
    } else {
        endpoint.to_owned()
    })
}

#[cfg(test)]
mod tests {
    use super::{TelemetryConfig, otlp_traces_url};

    fn with(edit: impl FnOnce(&mut TelemetryConfig)) -> Result<(), String> {
        let mut config = TelemetryConfig::default();
        edit(&mut config);
        config.validate()
    }

    #[test]
    fn export_is_off_by_default() {
        let config = TelemetryConfig::default();
        assert!(!config.exports_traces());
        assert_eq!(config.validate(), Ok(()));
    }

    #[test]
    fn an_endpoint_without_a_path_gets_the_traces_path() {
        assert_eq!(
            otlp_traces_url("http://127.0.0.1:4318").as_deref(),
            Ok("http://127.0.0.1:4318/v1/traces")
        );
        assert_eq!(
            otlp_traces_url("http://collector:4318/").as_deref(),
            Ok("http://collector:4318/v1/traces")
        );
        assert_eq!(
            otlp_traces_url("http://collector:4318/custom/traces").as_deref(),
            Ok("http://collector:4318/custom/traces")
        );
    }

    #[test]
    fn bad_endpoints_are_refused_by_name() {
        for endpoint in [
            "https://collector:4318",
            "collector:4318",
            "http://",
            "http://a b:1",
            "ftp://x",
            "http://u:p@x:1",
        ] {
            let error = with(|c| c.otlp_endpoint = endpoint.to_owned()).expect_err(endpoint);
            assert!(error.starts_with("telemetry.otlp_endpoint = "), "{error}");
        }
        let error = with(|c| c.otlp_endpoint = "https://x:4318".to_owned()).expect_err("https");
        assert!(error.contains("https is not supported"), "{error}");
    }

    #[test]
    fn sampling_ratio_must_be_a_share() {
        for ratio in [-0.1, 1.5, f64::NAN, f64::INFINITY] {
            let error = with(|c| c.otlp_sampling_ratio = ratio).expect_err("out of range");
            assert!(error.starts_with("telemetry.otlp_sampling_ratio = "), "{error}");
        }
        assert_eq!(with(|c| c.otlp_sampling_ratio = 0.0), Ok(()));
        assert_eq!(with(|c| c.otlp_sampling_ratio = 0.25), Ok(()));
    }

    #[test]
    fn service_name_and_level_are_checked() {
        let error = with(|c| c.otlp_service_name = " ".to_owned()).expect_err("blank");
        assert!(error.starts_with("telemetry.otlp_service_name = "), "{error}");
        let error = with(|c| c.otlp_service_name = "x".repeat(257)).expect_err("long");
        assert!(error.starts_with("telemetry.otlp_service_name = "), "{error}");
        let error = with(|c| c.otlp_level = "stemedb=loud".to_owned()).expect_err("level");
        assert!(error.starts_with("telemetry.otlp_level = "), "{error}");
    }

    #[test]
    fn unknown_keys_are_refused() {
        let parsed: Result<TelemetryConfig, _> = toml::from_str("otlp_endpoit = \"http://x:1\"");
        assert!(parsed.is_err());
        let parsed: TelemetryConfig =
            toml::from_str("otlp_endpoint = \"http://x:4318\"\notlp_sampling_ratio = 0.5").expect("valid");
        assert!(parsed.exports_traces());
        assert_eq!(parsed.validate(), Ok(()));
    }
}
